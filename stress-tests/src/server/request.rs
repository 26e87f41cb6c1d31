//! The small part of HTTP/1.1 request parsing the server needs: request line, headers, `Range`.
//!
//! Only body-less requests are served (GET, HEAD); anything else is answered with 405 and the
//! connection closed, so a request body never has to be skipped.

/// Largest request head accepted; bigger heads close the connection.
pub(crate) const MAX_HEAD_BYTES: usize = 16 * 1024;

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub method: String,
    /// The path of the request target, without query string.
    pub path: String,
    /// `true` for HTTP/1.0.
    pub http10: bool,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Whether the client wants the connection kept open after this response.
    pub fn keep_alive(&self) -> bool {
        let connection = self.header("connection").map(str::to_ascii_lowercase);
        match connection.as_deref() {
            Some(v) if v.contains("close") => false,
            Some(v) if v.contains("keep-alive") => true,
            _ => !self.http10,
        }
    }
}

/// Index just past the blank line ending the head in `buf`, if complete.
pub(crate) fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Parse a complete head (including the terminating blank line). `None` when malformed.
pub(crate) fn parse_head(head: &[u8]) -> Option<RequestHead> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?;
    let version = request_line.next()?;
    if request_line.next().is_some() || !version.starts_with("HTTP/1.") {
        return None;
    }
    let path = target.split(['?', '#']).next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    Some(RequestHead { method, path, http10: version == "HTTP/1.0", headers })
}

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
    fn parses_request_line_headers_and_strips_query() {
        let head = parse_head(b"GET /a/b.onnx?x=1 HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\n\r\n")
            .expect("valid head");
        assert_eq!(head.method, "GET");
        assert_eq!(head.path, "/a/b.onnx");
        assert_eq!(head.header("range"), Some("bytes=0-1"));
        assert!(head.keep_alive());
        assert!(parse_head(b"GARBAGE\r\n\r\n").is_none());
    }

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
