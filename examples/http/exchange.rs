//! Answering every whole request at the start of a connection's input in
//! one go: the part of a connection that does not do I/O, shared by loom's
//! connection loop and by the benchmark's peer servers, so that they all
//! run the same handler code.

use std::mem::MaybeUninit;

use super::request::{self, MAX_HEADERS, Parsed, Request};
use super::{Limits, Response, Status};

/// A connection's reusable parsing and answering state; allocates only
/// while a body or a response is larger than any before it.
#[derive(Debug)]
pub struct Exchange {
    /// A chunked body, decoded.
    chunked: Vec<u8>,
    response: Response,
}

/// What [`Exchange::answer`] did with the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answered {
    /// Input bytes consumed (whole requests).
    pub consumed: usize,
    /// Requests answered (error answers included).
    pub requests: usize,
    /// Whether the last answer closes the connection (the client asked,
    /// the request was rejected, or the server is stopping): write the
    /// output, then close.
    pub close: bool,
}

impl Default for Exchange {
    fn default() -> Exchange {
        Exchange {
            chunked: Vec::new(),
            response: Response::with_capacity(1024),
        }
    }
}

impl Exchange {
    /// Answers the whole requests at the start of `input` in order,
    /// appending the answers to `out`, and stops at the first partial one,
    /// at a rejected one (answered with its error status) or at one after
    /// which the connection closes. With `last`, the final answer says
    /// `Connection: close` (a stopping server's last word).
    pub fn answer(
        &mut self,
        input: &[u8],
        limits: &Limits,
        handler: &mut impl FnMut(&Request<'_>, &mut Response),
        out: &mut Vec<u8>,
        last: bool,
    ) -> Answered {
        let mut answered = Answered {
            consumed: 0,
            requests: 0,
            close: false,
        };
        loop {
            let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
            let rest = &input[answered.consumed..];
            self.response.reset();
            match request::parse(rest, limits, &mut headers, &mut self.chunked) {
                Parsed::Partial => break,
                Parsed::Complete { request, len } => {
                    handler(&request, &mut self.response);
                    answered.consumed += len;
                    answered.close =
                        !request.keep_alive || (last && answered.consumed == input.len());
                }
                Parsed::Reject(status) => {
                    self.response.error(status);
                    answered.close = true;
                }
            }
            answered.requests += 1;
            self.response.write_to(out, answered.close);
            if answered.close {
                break;
            }
        }
        answered
    }

    /// Appends a lone error answer that closes the connection (e.g. 408
    /// when a request's deadline passed before it arrived whole).
    pub fn reject(&mut self, status: Status, out: &mut Vec<u8>) {
        self.response.error(status);
        self.response.write_to(out, true);
    }
}
