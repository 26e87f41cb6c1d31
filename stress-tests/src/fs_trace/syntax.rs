//! The syntax of a strace line, without meaning: the `<tid> <ts>` head, a call's top-level
//! arguments, its result and duration, quoted strings and `<path>` annotations with strace's escapes.
//!
//! Kept apart from [`super::parse`] (which turns calls into file-system ops) so the tokenizer, the
//! part that must survive arbitrary file names, can be read and tested on its own.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

/// A call split into its parts.
pub(super) struct Call<'a> {
    pub(super) name: &'a str,
    pub(super) args: Vec<&'a str>,
    pub(super) ok: bool,
    /// The numeric result (`= 4096`), when it is a decimal number.
    pub(super) value: Option<i64>,
    /// The path annotation of the result (`= 3</tmp/x>`), if any.
    pub(super) ret_path: Option<FdArg>,
    pub(super) duration: Option<f64>,
}

/// An fd argument: `3</path>`, `3</path>(deleted)`, `AT_FDCWD</cwd>`, `3<pipe:[1]>`, `3`.
pub(super) struct FdArg {
    pub(super) cwd: bool,
    /// Only file-system paths (absolute); pipes and sockets have none.
    pub(super) path: Option<PathBuf>,
    pub(super) deleted: bool,
}

/// `<tid> <secs.micros> <rest>`.
pub(super) fn split_head(line: &str) -> Option<(u32, f64, &str)> {
    let (pid, rest) = line.split_once(char::is_whitespace)?;
    let (ts, rest) = rest.trim_start().split_once(' ')?;
    let (secs, micros) = ts.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(secs) || !digits(micros) {
        return None;
    }
    Some((pid.parse().ok()?, ts.parse().ok()?, rest.trim_start()))
}

/// `name(args) = result <duration>`; with `open_ended`, the text of an unfinished call (no result).
pub(super) fn parse_call(text: &str, open_ended: bool) -> Option<Call<'_>> {
    let (name, rest) = text.split_once('(')?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let (args, after) = split_args(rest);
    let Some(after) = after else {
        return open_ended.then_some(Call {
            name,
            args,
            ok: false,
            value: None,
            ret_path: None,
            duration: None,
        });
    };
    let mut result = after.trim_start().strip_prefix('=')?.trim();
    let mut duration = None;
    if let Some(open) = result.rfind('<').filter(|_| result.ends_with('>'))
        && let Ok(d) = result[open + 1..result.len() - 1].parse::<f64>()
    {
        duration = Some(d);
        result = result[..open].trim_end();
    }
    let value_end = result.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).unwrap_or(result.len());
    let value = &result[..value_end];
    let ok = match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).is_ok(),
        None => value.parse::<i64>().is_ok_and(|v| v >= 0),
    };
    let ret_path = result[value_end..].starts_with('<').then(|| parse_fd(result)).flatten();
    Some(Call { name, args, ok, value: value.parse::<i64>().ok(), ret_path, duration })
}

/// Splits `a, "b, c", 3</x>, {l_type=F_WRLCK, ...}) = 0` at the top-level commas; returns the
/// arguments and the text after the closing parenthesis (None if the text ends first).
pub(super) fn split_args(s: &str) -> (Vec<&str>, Option<&str>) {
    let bytes = s.as_bytes();
    let (mut args, mut depth, mut start, mut i) = (Vec::new(), 0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = skip_escaped(bytes, i + 1, b'"');
                continue;
            }
            b'<' => {
                i = skip_escaped(bytes, i + 1, b'>');
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' if depth == 0 => {
                let last = s[start..i].trim();
                if !(last.is_empty() && args.is_empty()) {
                    args.push(last);
                }
                return (args, Some(&s[i + 1..]));
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                args.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let last = s[start..].trim();
    if !last.is_empty() {
        args.push(last);
    }
    (args, None)
}

/// The index just after the `end` byte that closes a quoted run starting at `i` (backslash escapes
/// skipped), or the length if it never closes.
pub(super) fn skip_escaped(bytes: &[u8], mut i: usize, end: u8) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == end => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Decodes strace's escaping (`\n`, `\t`, `\"`, `\\`, octal `\303`, hex `\x41`) up to the unescaped
/// `end` byte; returns the bytes and the index after `end`.
pub(super) fn unescape(bytes: &[u8], end: u8) -> (Vec<u8>, usize) {
    let (mut out, mut i) = (Vec::new(), 0usize);
    while i < bytes.len() {
        let b = bytes[i];
        if b == end {
            return (out, i + 1);
        }
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = bytes.get(i) else { break };
        i += 1;
        let simple = match e {
            b'n' => Some(b'\n'),
            b't' => Some(b'\t'),
            b'r' => Some(b'\r'),
            b'v' => Some(0x0b),
            b'f' => Some(0x0c),
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'0'..=b'7' | b'x' => None,
            other => Some(other),
        };
        if let Some(c) = simple {
            out.push(c);
            continue;
        }
        let (radix, max, first) = if e == b'x' { (16, 2, i) } else { (8, 3, i - 1) };
        let len = bytes[first..].iter().take(max).take_while(|c| (**c as char).is_digit(radix)).count();
        let digits = std::str::from_utf8(&bytes[first..first + len]).unwrap_or("");
        match u32::from_str_radix(digits, radix) {
            Ok(v) => out.push((v & 0xff) as u8),
            Err(_) => out.push(e), // `\x` without digits: keep the letter
        }
        i = first + len;
    }
    (out, bytes.len())
}

/// A quoted string argument (`"a\"b"` or `""...`), decoded.
pub(super) fn decode_string(arg: &str) -> Option<Vec<u8>> {
    let body = arg.strip_prefix('"')?;
    Some(unescape(body.as_bytes(), b'"').0)
}

/// An fd argument or result with its optional `<path>` annotation and `(deleted)` marker (strace 6
/// prints it after the annotation; older versions inside it, as ` (deleted)`).
pub(super) fn parse_fd(arg: &str) -> Option<FdArg> {
    let (head, annotation) = match arg.split_once('<') {
        Some((head, rest)) => (head, Some(rest)),
        None => (arg, None),
    };
    let cwd = head == "AT_FDCWD";
    if !cwd && head.parse::<i64>().is_err() {
        return None;
    }
    let Some(annotation) = annotation else { return Some(FdArg { cwd, path: None, deleted: false }) };
    let (mut bytes, used) = unescape(annotation.as_bytes(), b'>');
    let mut deleted = annotation.as_bytes()[used..].starts_with(b"(deleted)");
    if let Some(stripped) = bytes.strip_suffix(b" (deleted)") {
        bytes = stripped.to_vec();
        deleted = true;
    }
    let path = bytes.starts_with(b"/").then(|| normalize(Path::new(&OsString::from_vec(bytes))));
    Some(FdArg { cwd, path, deleted })
}

/// Lexical normalisation: drops `.` components, folds `..` (a symlinked parent would be resolved
/// differently by the kernel, but the paths compared here come from the same kind of argument).
pub(super) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
