//! The file patterns of a target declaration: `*` matches any run of characters (including none and
//! leading dots) within one path component; `/` separates components; everything else is literal.
//! A pattern matches a relative path only if both have the same number of components.

use std::path::Path;

/// A compiled file pattern, e.g. `*.onnx` or `quarantine/*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePattern {
    source: String,
    components: Vec<String>,
}

impl FilePattern {
    /// Compiles a pattern (relative to a cache directory).
    pub fn new(pattern: &str) -> Self {
        let components =
            pattern.split('/').filter(|c| !c.is_empty() && *c != ".").map(str::to_string).collect();
        FilePattern { source: pattern.to_string(), components }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `relative` (a path relative to the cache dir) matches.
    pub fn matches(&self, relative: &Path) -> bool {
        let parts: Vec<String> =
            relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        parts.len() == self.components.len()
            && self.components.iter().zip(&parts).all(|(p, s)| component_matches(p.as_bytes(), s.as_bytes()))
    }

    /// Whether a single file name matches a one-component pattern (or the last component of the pattern).
    pub fn matches_name(&self, name: &str) -> bool {
        self.components.last().is_some_and(|p| component_matches(p.as_bytes(), name.as_bytes()))
    }
}

/// Matches one component: `*` = any run of bytes. Iterative with single-star backtracking (linear-ish,
/// bounded by `pattern.len() * text.len()` steps).
fn component_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_matches_within_one_component() {
        let p = FilePattern::new("*.onnx");
        assert!(p.matches(Path::new("small-0123456789abcdef.onnx")));
        assert!(p.matches(Path::new(".onnx")));
        assert!(!p.matches(Path::new("small.onnx.lock")));
        assert!(!p.matches(Path::new("small.onnx.123-4.partial")));
        assert!(!p.matches(Path::new("quarantine/small.onnx")));
        let q = FilePattern::new("quarantine/*");
        assert!(q.matches(Path::new("quarantine/small.onnx.1700")));
        assert!(!q.matches(Path::new("small.onnx")));
    }

    #[test]
    fn compiled_patterns() {
        assert!(FilePattern::new(".*.tmp").matches(Path::new(".abc-def.123-9.tmp")));
        assert!(FilePattern::new("*-*").matches(Path::new("abc-def")));
        assert!(!FilePattern::new("*-*").matches(Path::new("abcdef")));
        assert!(FilePattern::new("a*b*c").matches(Path::new("axxbyybzc")));
        assert!(!FilePattern::new("a*b*c").matches(Path::new("axxbyyb")));
    }
}
