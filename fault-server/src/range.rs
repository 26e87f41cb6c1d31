//! What a `Range` request header asks of a body of known length (RFC 9110 §14.2), for the one form
//! a downloader resuming a partial file sends: a single byte range.

/// Outcome of interpreting a `Range` header against a body of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// No usable range: serve the whole body with 200 (RFC 9110 lets a server ignore ranges it
    /// does not support, e.g. multi-range requests).
    Full,
    /// Serve bytes `start..=end` with 206.
    Partial { start: u64, end: u64 },
    /// Syntactically valid but outside the body: 416.
    Unsatisfiable,
}

/// Interpret `bytes=a-b`, `bytes=a-` and `bytes=-n` against a body of `len` bytes.
pub(crate) fn parse_range(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, true) => return RangeRequest::Full,
        // Suffix range: the last n bytes.
        (true, false) => match b.parse::<u64>() {
            Ok(0) => return RangeRequest::Unsatisfiable,
            Ok(n) => Some((len.saturating_sub(n), len.checked_sub(1))),
            Err(_) => return RangeRequest::Full,
        },
        (false, _) => {
            let Ok(start) = a.parse::<u64>() else {
                return RangeRequest::Full;
            };
            let end = if b.is_empty() {
                len.checked_sub(1)
            } else {
                match b.parse::<u64>() {
                    Ok(end) if end >= start => Some(end.min(len.saturating_sub(1))),
                    _ => return RangeRequest::Full,
                }
            };
            Some((start, end))
        }
    };
    match parsed {
        Some((start, Some(end))) if start < len && start <= end => RangeRequest::Partial { start, end },
        _ => RangeRequest::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_forms_are_interpreted_against_the_length() {
        use RangeRequest::*;
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(parse_range(Some("bytes=2-5"), 10), Partial { start: 2, end: 5 });
        assert_eq!(parse_range(Some("bytes=2-"), 10), Partial { start: 2, end: 9 });
        assert_eq!(parse_range(Some("bytes=-3"), 10), Partial { start: 7, end: 9 });
        assert_eq!(parse_range(Some("bytes=5-100"), 10), Partial { start: 5, end: 9 });
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), Full);
    }
}
