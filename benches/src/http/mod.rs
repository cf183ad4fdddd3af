//! Building blocks of the `http` benchmark binary: HTTP/1.1 servers side
//! by side answering TechEmpower's `/plaintext` and `/json`.
//!
//! * [`servers`] — one server per [`Impl`]: loom (both backends) running
//!   `loom_examples::http::Connection`, monoio running the same request
//!   code (`loom_examples::http::exchange::Exchange`) with its own I/O,
//!   may_minihttp as shipped, and hyper on tokio `current_thread`.
//! * [`client`] — the load generator: one thread, mio, closed loop per
//!   connection with `depth` requests in flight, every response parsed and
//!   checked.
//!
//! Process layout, CPU accounting and rounds come from
//! [`crate::harness`], shared with the `echo` bench.

pub mod client;
pub mod servers;

use std::fmt;
use std::str::FromStr;

/// The `/plaintext` body every server must answer.
pub const PLAINTEXT_BODY: &[u8] = b"Hello, World!";
/// The `/json` body every server must answer (serde_json's serialization
/// of `{"message": "Hello, World!"}`, byte for byte).
pub const JSON_BODY: &[u8] = br#"{"message":"Hello, World!"}"#;

/// Connections every cell opens (the issue's 64).
pub const CONNECTIONS: usize = 64;

/// A server implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Impl {
    /// loom on its io_uring backend, `loom_examples::http::Connection`.
    LoomIoUring,
    /// loom on its epoll backend, the same connection code.
    LoomEpoll,
    /// may_minihttp as shipped, one may worker.
    MayMinihttp,
    /// monoio (io_uring driver) running loom's `Exchange` request code.
    Monoio,
    /// hyper 1.x `http1` on a tokio `current_thread` runtime.
    Hyper,
}

impl Impl {
    /// Every implementation, in the default order.
    pub const ALL: [Impl; 5] = [
        Impl::LoomIoUring,
        Impl::LoomEpoll,
        Impl::MayMinihttp,
        Impl::Monoio,
        Impl::Hyper,
    ];

    /// The name used on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            Impl::LoomIoUring => "loom-io_uring",
            Impl::LoomEpoll => "loom-epoll",
            Impl::MayMinihttp => "may_minihttp",
            Impl::Monoio => "monoio",
            Impl::Hyper => "hyper",
        }
    }

    /// Whether this is one of loom's servers (not a peer).
    pub fn is_loom(self) -> bool {
        matches!(self, Impl::LoomIoUring | Impl::LoomEpoll)
    }
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Impl {
    type Err = String;

    fn from_str(s: &str) -> Result<Impl, String> {
        Impl::ALL
            .into_iter()
            .find(|i| i.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Impl::ALL.iter().map(|i| i.name()).collect();
                format!(
                    "unknown server {s:?} (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// One cell of the benchmark: a route and a pipeline depth, over
/// [`CONNECTIONS`] connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cell {
    /// `/plaintext`, one request in flight per connection.
    Plaintext,
    /// `/plaintext`, 16 requests in flight per connection, written at once.
    Pipelined,
    /// `/json`, one request in flight per connection.
    Json,
}

impl Cell {
    /// Every cell, in the default order.
    pub const ALL: [Cell; 3] = [Cell::Plaintext, Cell::Pipelined, Cell::Json];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Cell::Plaintext => "plaintext",
            Cell::Pipelined => "pipelined",
            Cell::Json => "json",
        }
    }

    /// The request path.
    pub fn path(self) -> &'static str {
        match self {
            Cell::Plaintext | Cell::Pipelined => "/plaintext",
            Cell::Json => "/json",
        }
    }

    /// Requests in flight per connection.
    pub fn depth(self) -> usize {
        match self {
            Cell::Plaintext | Cell::Json => 1,
            Cell::Pipelined => 16,
        }
    }

    /// The body every response must carry.
    pub fn body(self) -> &'static [u8] {
        match self {
            Cell::Plaintext | Cell::Pipelined => PLAINTEXT_BODY,
            Cell::Json => JSON_BODY,
        }
    }

    /// One request, with the headers TechEmpower's load generator sends
    /// (servers must parse a realistic head, not a bare request line).
    pub fn request(self) -> String {
        let accept = match self {
            Cell::Plaintext | Cell::Pipelined => "text/plain",
            Cell::Json => "application/json",
        };
        format!(
            "GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {accept},text/html;q=0.9,\
             application/xhtml+xml;q=0.9,application/xml;q=0.8,*/*;q=0.7\r\n\
             Connection: keep-alive\r\n\r\n",
            self.path()
        )
    }

    /// A human-readable title, e.g. `/plaintext, 64 connections, pipeline
    /// depth 16`.
    pub fn title(self) -> String {
        let depth = match self.depth() {
            1 => "unpipelined".to_owned(),
            d => format!("pipeline depth {d}"),
        };
        format!("{}, {CONNECTIONS} connections, {depth}", self.path())
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Cell {
    type Err = String;

    fn from_str(s: &str) -> Result<Cell, String> {
        Cell::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("unknown cell {s:?} (expected plaintext, pipelined or json)"))
    }
}
