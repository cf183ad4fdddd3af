//! Finding one request at the start of a connection's input: the head
//! with `httparse`, the body by `Content-Length` or chunked. No I/O: the
//! caller reads, this only looks at bytes.

use std::mem::MaybeUninit;

use super::{Limits, Status};

/// The most headers a request may have whatever [`Limits::max_headers`]
/// says: the size of the array `httparse` fills, on the stack.
pub const MAX_HEADERS: usize = 64;

/// A parsed request, borrowing the connection's input buffer.
#[derive(Debug)]
pub struct Request<'b> {
    /// `GET`, `POST`, ...
    pub method: &'b str,
    /// The request target as sent (`/json`, `/search?q=x`).
    pub path: &'b str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The headers in the order sent.
    pub headers: &'b [httparse::Header<'b>],
    /// The body (decoded if it was chunked); empty without one.
    pub body: &'b [u8],
    /// Whether the connection stays open after the answer, from the
    /// version and the `Connection` header.
    pub keep_alive: bool,
}

impl Request<'_> {
    /// The value of the first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

/// What the start of the input holds.
#[derive(Debug)]
pub enum Parsed<'b> {
    /// A whole request, `len` bytes of input long.
    Complete {
        /// The request.
        request: Request<'b>,
        /// Input bytes it took, head and body.
        len: usize,
    },
    /// Not a whole request yet: read more (the input may also be empty).
    Partial,
    /// Malformed or over a limit: answer this status and close, since
    /// where the next request would start is unknown.
    Reject(Status),
}

/// Parses the request at the start of `input`. `headers` is scratch space
/// for the head, `chunked` for a chunked body (a `Content-Length` body is
/// borrowed from `input` as it is).
pub fn parse<'b>(
    input: &'b [u8],
    limits: &Limits,
    headers: &'b mut [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS],
    chunked: &'b mut Vec<u8>,
) -> Parsed<'b> {
    let mut head = httparse::Request::new(&mut []);
    let max_headers = limits.max_headers.min(MAX_HEADERS);
    let head_len = match head.parse_with_uninit_headers(input, &mut headers[..max_headers]) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if input.len() > limits.max_head_bytes => {
            return Parsed::Reject(Status::HeaderFieldsTooLarge);
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Reject(Status::HeaderFieldsTooLarge);
        }
        Err(_) => return Parsed::Reject(Status::BadRequest),
    };
    if head_len > limits.max_head_bytes {
        return Parsed::Reject(Status::HeaderFieldsTooLarge);
    }
    let (Some(method), Some(path), Some(minor_version)) = (head.method, head.path, head.version)
    else {
        return Parsed::Reject(Status::BadRequest);
    };
    let headers: &'b [httparse::Header<'b>] = head.headers;
    let framing = match Framing::of(headers, limits) {
        Ok(framing) => framing,
        Err(status) => return Parsed::Reject(status),
    };
    let rest = &input[head_len..];
    let (body, body_len): (&'b [u8], usize) = match framing {
        Framing::Length(len) if rest.len() < len => return Parsed::Partial,
        Framing::Length(len) => (&rest[..len], len),
        Framing::Chunked => match decode_chunked(rest, limits.max_body_bytes, chunked) {
            Chunked::Done(len) => (chunked.as_slice(), len),
            Chunked::Partial => return Parsed::Partial,
            Chunked::Reject(status) => return Parsed::Reject(status),
        },
    };
    let request = Request {
        method,
        path,
        minor_version,
        headers,
        body,
        keep_alive: keep_alive(minor_version, headers),
    };
    Parsed::Complete {
        request,
        len: head_len + body_len,
    }
}

/// How the body's end is found (RFC 9112 section 6).
enum Framing {
    Length(usize),
    Chunked,
}

impl Framing {
    fn of(headers: &[httparse::Header<'_>], limits: &Limits) -> Result<Framing, Status> {
        let mut length: Option<usize> = None;
        let mut chunked = false;
        for header in headers {
            if header.name.eq_ignore_ascii_case("content-length") {
                let value = parse_length(header.value).ok_or(Status::BadRequest)?;
                // Two different lengths: one of two parties on the path
                // would frame the body wrongly (request smuggling).
                if length.is_some_and(|seen| seen != value) {
                    return Err(Status::BadRequest);
                }
                length = Some(value);
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                // Only `chunked` alone is understood; a coding before it
                // (gzip, chunked) would need decoding this server lacks.
                if !header.value.trim_ascii().eq_ignore_ascii_case(b"chunked") || chunked {
                    return Err(Status::NotImplemented);
                }
                chunked = true;
            }
        }
        match (length, chunked) {
            // Both: the same smuggling ambiguity; refuse rather than pick.
            (Some(_), true) => Err(Status::BadRequest),
            (Some(len), false) if len > limits.max_body_bytes => Err(Status::PayloadTooLarge),
            (Some(len), false) => Ok(Framing::Length(len)),
            (None, true) => Ok(Framing::Chunked),
            (None, false) => Ok(Framing::Length(0)),
        }
    }
}

fn parse_length(value: &[u8]) -> Option<usize> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn keep_alive(minor_version: u8, headers: &[httparse::Header<'_>]) -> bool {
    let mut keep_alive = minor_version >= 1;
    for header in headers {
        if header.name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    return false;
                }
                if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    keep_alive
}

enum Chunked {
    /// The body is in `out`; this many input bytes carried it.
    Done(usize),
    Partial,
    Reject(Status),
}

/// Decodes a chunked body from the start of `input` into `out` (cleared
/// first). Incomplete input is decoded again from the start next time: a
/// body is bounded by `max_body`, so this costs at most a few passes over
/// it, and keeps no state between reads.
fn decode_chunked(input: &[u8], max_body: usize, out: &mut Vec<u8>) -> Chunked {
    out.clear();
    let mut at = 0;
    loop {
        let (size_len, size) = match httparse::parse_chunk_size(&input[at..]) {
            Ok(httparse::Status::Complete((len, size))) => (len, size),
            Ok(httparse::Status::Partial) => return Chunked::Partial,
            Err(_) => return Chunked::Reject(Status::BadRequest),
        };
        at += size_len;
        let Ok(size) = usize::try_from(size) else {
            return Chunked::Reject(Status::PayloadTooLarge);
        };
        if size == 0 {
            return match end_of_trailers(&input[at..]) {
                Some(len) => Chunked::Done(at + len),
                None if input.len() - at > 8 * 1024 => {
                    Chunked::Reject(Status::HeaderFieldsTooLarge)
                }
                None => Chunked::Partial,
            };
        }
        if out.len() + size > max_body {
            return Chunked::Reject(Status::PayloadTooLarge);
        }
        let Some(data) = input.get(at..at + size + 2) else {
            return Chunked::Partial;
        };
        if !data.ends_with(b"\r\n") {
            return Chunked::Reject(Status::BadRequest);
        }
        out.extend_from_slice(&data[..size]);
        at += size + 2;
    }
}

/// The length of the (ignored) trailer section, through its empty line.
fn end_of_trailers(input: &[u8]) -> Option<usize> {
    if input.starts_with(b"\r\n") {
        return Some(2);
    }
    input
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_one(input: &[u8], limits: &Limits) -> Result<(String, Vec<u8>, usize, bool), Status> {
        let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut chunked = Vec::new();
        match parse(input, limits, &mut headers, &mut chunked) {
            Parsed::Complete { request, len } => Ok((
                format!("{} {}", request.method, request.path),
                request.body.to_vec(),
                len,
                request.keep_alive,
            )),
            Parsed::Partial => Ok((String::new(), Vec::new(), 0, false)),
            Parsed::Reject(status) => Err(status),
        }
    }

    #[test]
    fn bodies_by_length_and_chunked() {
        let limits = Limits::default();
        let plain = b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET";
        let (line, body, len, keep_alive) = parse_one(plain, &limits).unwrap();
        assert_eq!(
            (line.as_str(), body.as_slice()),
            ("POST /echo", &b"hello"[..])
        );
        assert_eq!(len, plain.len() - 3);
        assert!(keep_alive);
        let chunked = b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-T: 1\r\n\r\n";
        let (_, body, len, _) = parse_one(chunked, &limits).unwrap();
        assert_eq!(body, b"hello world");
        assert_eq!(len, chunked.len());
        // Every prefix of a request is partial, never wrong.
        for end in 0..chunked.len() {
            assert_eq!(
                parse_one(&chunked[..end], &limits).unwrap().2,
                0,
                "prefix {end}"
            );
        }
    }

    #[test]
    fn limits_and_malformed_requests_are_rejected() {
        let limits = Limits {
            max_headers: 2,
            max_head_bytes: 80,
            max_body_bytes: 4,
            ..Limits::default()
        };
        let reject = |input: &[u8]| parse_one(input, &limits).unwrap_err();
        assert_eq!(
            reject(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
            Status::HeaderFieldsTooLarge
        );
        assert_eq!(
            reject(b"GET / HTTP/1.1\r\nno colon\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(reject(&[b'a'; 120]), Status::HeaderFieldsTooLarge);
        assert_eq!(
            reject(format!("GET /{} HTTP/1.1\r\n", "x".repeat(100)).as_bytes()),
            Status::HeaderFieldsTooLarge
        );
        assert_eq!(
            reject(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
            Status::PayloadTooLarge
        );
        assert_eq!(
            reject(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n"),
            Status::PayloadTooLarge
        );
        assert_eq!(
            reject(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(
            reject(b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(
            reject(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Status::BadRequest
        );
        assert_eq!(
            reject(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Status::NotImplemented
        );
        assert_eq!(
            reject(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY"),
            Status::BadRequest
        );
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        let limits = Limits::default();
        let keep = |input: &[u8]| parse_one(input, &limits).unwrap().3;
        assert!(keep(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!keep(
            b"GET / HTTP/1.1\r\nConnection: Upgrade, close\r\n\r\n"
        ));
        assert!(!keep(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(keep(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    }
}
