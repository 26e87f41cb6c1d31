//! File patterns of a target declaration, and the role each cache file plays.
//!
//! Patterns use [`globset`] syntax relative to the cache directory, with `*` and `?` confined to one
//! path component (`**` crosses directories), `[abc]` classes and `{a,b}` alternatives. `globset` was
//! chosen over the `glob` crate because it matches *paths we already hold* (the snapshot walks the cache
//! once) against many patterns at once, while `glob` walks the file system itself for one pattern.
//!
//! A role takes one pattern or a list; an entry starting with `!` takes files out of that role
//! (`final = ["*", "!*.meta"]`). The `ignore` list takes sidecars and metadata out of every role before
//! roles are assigned. The content roles (final, partial, lock, quarantine) must then be disjoint:
//! a file two of them match is an error of the spec (see [`FileRoles::roles_of`]), never resolved by a
//! silent precedence, because a lock read as a model, or a model probed as a lock, is a false verdict.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::target::{FilePatterns, SpecError};

/// One pattern or a list of them, as written in the spec.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum PatternList {
    /// `final = "*.onnx"`.
    One(String),
    /// `final = ["*.onnx", "!*.tmp.onnx"]`.
    Many(Vec<String>),
}

impl Default for PatternList {
    fn default() -> Self {
        PatternList::Many(Vec::new())
    }
}

impl PatternList {
    /// The entries as written (`!` included).
    pub fn entries(&self) -> Vec<&str> {
        match self {
            PatternList::One(p) => vec![p.as_str()],
            PatternList::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }

    /// No entries at all.
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }
}

impl std::fmt::Display for PatternList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.entries().join(", "))
    }
}

impl From<&str> for PatternList {
    fn from(p: &str) -> Self {
        PatternList::One(p.to_string())
    }
}

/// A compiled pattern list: a path matches when some positive entry matches and no `!` entry does.
#[derive(Debug, Clone)]
pub struct FilePattern {
    source: String,
    include: GlobSet,
    exclude: GlobSet,
    includes: usize,
}

impl PartialEq for FilePattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for FilePattern {}

impl FilePattern {
    /// Compiles a list; the error names the bad entry.
    pub fn compile(list: &PatternList) -> Result<Self, String> {
        let mut include = GlobSetBuilder::new();
        let mut exclude = GlobSetBuilder::new();
        let mut includes = 0;
        for entry in list.entries() {
            let (negated, glob) = match entry.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, entry),
            };
            let glob = glob.strip_prefix("./").unwrap_or(glob);
            if glob.is_empty() {
                return Err(format!("empty pattern in `{list}`"));
            }
            let compiled = GlobBuilder::new(glob)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("pattern `{entry}`: {}", e.kind()))?;
            if negated {
                exclude.add(compiled);
            } else {
                includes += 1;
                include.add(compiled);
            }
        }
        if includes == 0 && !list.is_empty() {
            return Err(format!("`{list}` has only `!` entries, so it matches nothing"));
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| e.to_string());
        Ok(FilePattern {
            source: list.to_string(),
            include: build(include)?,
            exclude: build(exclude)?,
            includes,
        })
    }

    /// Compiles one pattern known to be valid (literal patterns in code and tests). An invalid one
    /// matches nothing; specs are compiled with [`FilePattern::compile`], which reports errors.
    pub fn new(pattern: &str) -> Self {
        Self::compile(&PatternList::from(pattern)).unwrap_or_else(|_| FilePattern {
            source: pattern.to_string(),
            include: GlobSet::empty(),
            exclude: GlobSet::empty(),
            includes: 0,
        })
    }

    /// The list as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `relative` (a path relative to the cache dir) matches.
    pub fn matches(&self, relative: &Path) -> bool {
        self.includes > 0 && self.include.is_match(relative) && !self.exclude.is_match(relative)
    }
}

/// What a file of a download cache is, by the spec's patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A published model.
    Final,
    /// A download in progress.
    Partial,
    /// A lock file (only its held state matters; never read as content).
    Lock,
    /// A file the target moved aside on purpose.
    Quarantine,
    /// A sidecar or metadata file (`ignore`): not model content, never read as content.
    Ignored,
}

impl Role {
    /// The spec key of the role.
    pub fn key(self) -> &'static str {
        match self {
            Role::Final => "final",
            Role::Partial => "partial",
            Role::Lock => "lock",
            Role::Quarantine => "quarantine",
            Role::Ignored => "ignore",
        }
    }
}

/// The compiled `[files]` table: which role a cache file plays.
#[derive(Debug, Clone)]
pub struct FileRoles {
    /// `final`.
    pub final_: FilePattern,
    /// `partial`.
    pub partial: FilePattern,
    /// `lock` (empty when the target has none).
    pub lock: Option<FilePattern>,
    /// `quarantine`.
    pub quarantine: Option<FilePattern>,
    /// `ignore`.
    pub ignore: Option<FilePattern>,
}

impl FileRoles {
    /// Compiles every role of `files`; `origin` names the spec in errors.
    pub fn compile(files: &FilePatterns, origin: &str) -> Result<Self, SpecError> {
        let one = |key: &str, list: &PatternList| {
            FilePattern::compile(list).map_err(|message| SpecError::Invalid {
                origin: origin.to_string(),
                message: format!("files.{key}: {message}"),
            })
        };
        let optional = |key: &str, list: &Option<PatternList>| match list {
            Some(l) if !l.is_empty() => one(key, l).map(Some),
            _ => Ok(None),
        };
        Ok(FileRoles {
            final_: one("final", &files.final_)?,
            partial: one("partial", &files.partial)?,
            lock: optional("lock", &files.lock)?,
            quarantine: optional("quarantine", &files.quarantine)?,
            ignore: if files.ignore.is_empty() { None } else { Some(one("ignore", &files.ignore)?) },
        })
    }

    /// Compiles a `[files]` table that [`crate::TargetSpec::validate`] already accepted (every spec the
    /// suite receives was validated when it was read); a list that does not compile matches nothing.
    pub fn from_validated(files: &FilePatterns) -> Self {
        let one = |l: &PatternList| FilePattern::compile(l).unwrap_or_else(|_| FilePattern::new(""));
        let optional = |l: &Option<PatternList>| l.as_ref().filter(|l| !l.is_empty()).map(one);
        FileRoles {
            final_: one(&files.final_),
            partial: one(&files.partial),
            lock: optional(&files.lock),
            quarantine: optional(&files.quarantine),
            ignore: (!files.ignore.is_empty()).then(|| one(&files.ignore)),
        }
    }

    /// Every role that claims `relative`: `[Ignored]` when `ignore` matches (it wins over every other
    /// role), else each content role whose patterns match. More than one entry is an overlap.
    pub fn roles_of(&self, relative: &Path) -> Vec<Role> {
        if self.ignore.as_ref().is_some_and(|p| p.matches(relative)) {
            return vec![Role::Ignored];
        }
        let mut roles = Vec::new();
        let candidates = [
            (Some(&self.final_), Role::Final),
            (Some(&self.partial), Role::Partial),
            (self.lock.as_ref(), Role::Lock),
            (self.quarantine.as_ref(), Role::Quarantine),
        ];
        for (pattern, role) in candidates {
            if pattern.is_some_and(|p| p.matches(relative)) {
                roles.push(role);
            }
        }
        roles
    }

    /// The one role of `relative`, if any. On an overlap (which `check-spec` rejects), the roles that
    /// never let a file be read as content come first: ignore, lock, quarantine, partial, final.
    pub fn role_of(&self, relative: &Path) -> Option<Role> {
        let roles = self.roles_of(relative);
        [Role::Ignored, Role::Lock, Role::Quarantine, Role::Partial, Role::Final]
            .into_iter()
            .find(|r| roles.contains(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(toml_text: &str) -> FilePatterns {
        toml::from_str(toml_text).expect("files table")
    }

    #[test]
    fn star_stays_within_one_component_and_matches_leading_dots() {
        let p = FilePattern::new("*.onnx");
        assert!(p.matches(Path::new("small-0123456789abcdef.onnx")));
        assert!(p.matches(Path::new(".onnx")));
        assert!(!p.matches(Path::new("small.onnx.lock")));
        assert!(!p.matches(Path::new("quarantine/small.onnx")));
        assert!(FilePattern::new("quarantine/*").matches(Path::new("quarantine/small.onnx.1700")));
        assert!(FilePattern::new(".*.tmp").matches(Path::new(".abc-def.123-9.tmp")));
        assert!(FilePattern::new("**/*.bin").matches(Path::new("a/b/c.bin")));
    }

    #[test]
    fn a_bang_entry_takes_files_out_of_a_role() {
        let p =
            FilePattern::compile(&PatternList::Many(vec!["*".into(), "!*.meta".into(), "!*.lock".into()]))
                .unwrap();
        assert!(p.matches(Path::new("abc.def")));
        assert!(!p.matches(Path::new("abc.def.meta")));
        assert!(!p.matches(Path::new("abc.def.lock")));
    }

    #[test]
    fn a_list_of_only_exclusions_or_a_bad_glob_is_rejected_with_the_entry_named() {
        let only_not = FilePattern::compile(&PatternList::Many(vec!["!*.meta".into()])).unwrap_err();
        assert!(only_not.contains("only `!` entries"), "{only_not}");
        let bad = FilePattern::compile(&PatternList::One("models/[a-".into())).unwrap_err();
        assert!(bad.contains("models/[a-"), "{bad}");
    }

    #[test]
    fn ignore_wins_and_two_content_roles_on_one_file_are_an_overlap() {
        let f = files(
            r#"final = ["*", "!*.lock"]
               partial = "*.tmp*"
               lock = "*.lock"
               ignore = ["*.meta", "*.json"]"#,
        );
        let roles = FileRoles::compile(&f, "test").unwrap();
        assert_eq!(roles.roles_of(Path::new("a.b.meta")), vec![Role::Ignored]);
        assert_eq!(roles.roles_of(Path::new("a.b.lock")), vec![Role::Lock]);
        assert_eq!(roles.roles_of(Path::new("a.b")), vec![Role::Final]);
        assert_eq!(roles.roles_of(Path::new("a.tmp123")), vec![Role::Final, Role::Partial]);
        assert_eq!(roles.role_of(Path::new("a.tmp123")), Some(Role::Partial));
        assert_eq!(roles.roles_of(Path::new("sub/a")), Vec::<Role>::new());
    }

    #[test]
    fn one_pattern_or_a_list_parses() {
        let one = files("final = \"*.onnx\"\npartial = \"*.partial\"");
        assert_eq!(one.final_, PatternList::One("*.onnx".into()));
        let many = files("final = [\"snapshots/*/*\", \"blobs/*\"]\npartial = []");
        assert_eq!(many.final_.entries(), vec!["snapshots/*/*", "blobs/*"]);
    }
}
