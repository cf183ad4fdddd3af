//! Writing responses into a connection's output buffer: the status line,
//! `Server`, `Date`, `Content-Type`, `Content-Length`, then the body.

use std::cell::Cell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The statuses this server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 200
    Ok,
    /// 400: malformed request.
    BadRequest,
    /// 404
    NotFound,
    /// 405: the path exists, not with this method.
    MethodNotAllowed,
    /// 408: the request did not arrive within its deadline.
    RequestTimeout,
    /// 413: a body over [`Limits::max_body_bytes`](super::Limits).
    PayloadTooLarge,
    /// 431: too many headers, or a head over
    /// [`Limits::max_head_bytes`](super::Limits).
    HeaderFieldsTooLarge,
    /// 500
    InternalServerError,
    /// 501: a transfer coding other than `chunked`.
    NotImplemented,
}

impl Status {
    /// The status line's code and reason phrase.
    pub fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::BadRequest => "400 Bad Request",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::RequestTimeout => "408 Request Timeout",
            Status::PayloadTooLarge => "413 Content Too Large",
            Status::HeaderFieldsTooLarge => "431 Request Header Fields Too Large",
            Status::InternalServerError => "500 Internal Server Error",
            Status::NotImplemented => "501 Not Implemented",
        }
    }
}

/// What a handler fills in. One lives per connection and is reused for
/// every request on it, so its body buffer keeps its capacity.
#[derive(Debug)]
pub struct Response {
    /// The status (200 unless set).
    pub status: Status,
    /// The `Content-Type` (`text/plain` unless set).
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// An empty 200 response with room for a body of `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Response {
        Response {
            status: Status::Ok,
            content_type: "text/plain",
            body: Vec::with_capacity(capacity),
        }
    }

    /// Makes this response `status` with a short text body saying so.
    pub fn error(&mut self, status: Status) {
        self.status = status;
        self.content_type = "text/plain";
        self.body.clear();
        self.body.extend_from_slice(status.line().as_bytes());
        self.body.push(b'\n');
    }

    pub(super) fn reset(&mut self) {
        self.status = Status::Ok;
        self.content_type = "text/plain";
        self.body.clear();
    }

    /// Appends the whole response to `out`; with `close`, it tells the
    /// client this is the last answer on the connection.
    pub(super) fn write_to(&self, out: &mut Vec<u8>, close: bool) {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(self.status.line().as_bytes());
        out.extend_from_slice(b"\r\nServer: loom\r\nDate: ");
        out.extend_from_slice(&http_date());
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(self.content_type.as_bytes());
        // Writing a number into a Vec formats in place: no allocation.
        let _ = write!(out, "\r\nContent-Length: {}\r\n", self.body.len());
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }
}

/// An IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
type HttpDate = [u8; 29];

thread_local! {
    /// The last date formatted on this thread and its second: formatting
    /// happens once a second, not once a response.
    static DATE: Cell<(u64, HttpDate)> = const { Cell::new((u64::MAX, [0; 29])) };
}

/// The `Date` header's value for now.
pub fn http_date() -> HttpDate {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|cache| {
        let (second, date) = cache.get();
        if second == now {
            return date;
        }
        let date = format_date(now);
        cache.set((now, date));
        date
    })
}

fn format_date(unix_seconds: u64) -> HttpDate {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = unix_seconds / 86_400;
    let second_of_day = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    two_digits(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[month as usize - 1]);
    two_digits(&mut out[12..14], year / 100);
    two_digits(&mut out[14..16], year % 100);
    two_digits(&mut out[17..19], second_of_day / 3600);
    two_digits(&mut out[20..22], second_of_day / 60 % 60);
    two_digits(&mut out[23..25], second_of_day % 60);
    out
}

fn two_digits(out: &mut [u8], value: u64) {
    out[0] = b'0' + (value / 10 % 10) as u8;
    out[1] = b'0' + (value % 10) as u8;
}

/// Year, month (1-12) and day (1-31) of a day counted from 1970-01-01:
/// Howard Hinnant's `civil_from_days`, for days on or after the epoch.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_imf_fixdates() {
        assert_eq!(&format_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&format_date(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&format_date(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(
            &format_date(1_796_601_599),
            b"Sun, 06 Dec 2026 23:59:59 GMT"
        );
    }
}
