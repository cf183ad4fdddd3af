//! A small HTTP/1.1 server on loom, in blocking style: one fiber per
//! connection, `httparse` for heads, keep-alive and pipelining, bodies by
//! `Content-Length` or chunked, explicit limits and timeouts, graceful
//! shutdown. The examples `http_server` and `https_server` run it; the
//! HTTP benchmark runs its request code on the peer runtimes too.
//!
//! The path of a request: [`connection::Connection::serve`] reads into the
//! connection's buffer → [`exchange::Exchange::answer`] finds whole
//! requests ([`request::parse`]), calls the handler for each, and appends
//! the answers ([`Response`]) to one output buffer → one write.
//!
//! ```no_run
//! use loom::net::TcpListener;
//! use loom::signal::{SIGINT, SIGTERM, Signals};
//! use loom_examples::http::{Limits, Server, app};
//!
//! loom::Runtime::builder().build()?.run(|| {
//!     let signals = Signals::new(&[SIGTERM, SIGINT])?;
//!     let listener = TcpListener::bind("127.0.0.1:8080")?;
//!     let server = Server {
//!         limits: Limits::default(),
//!         drain: std::time::Duration::from_secs(5),
//!         signals: &signals,
//!     };
//!     server.run(&listener, Ok, app::route)?;
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::time::Duration;

pub mod app;
pub mod connection;
pub mod exchange;
pub mod options;
pub mod request;
pub mod response;
pub mod server;

pub use connection::{Connection, Ending, Transport};
pub use options::Options;
pub use request::Request;
pub use response::{Response, Status};
pub use server::{Server, Stats};

/// What one connection may ask of the server. Every field bounds memory or
/// time a client can make the server spend.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Headers per request, at most [`request::MAX_HEADERS`]; more is 431.
    pub max_headers: usize,
    /// Bytes of request line and headers; more is 431.
    pub max_head_bytes: usize,
    /// Bytes of body; more is 413.
    pub max_body_bytes: usize,
    /// How long a connection may wait between requests before it is
    /// closed.
    pub idle_timeout: Duration,
    /// How long a request may take from its first byte arriving to its
    /// answer being written: a client that sends its request slowly (or
    /// reads its answer slowly) is cut off after this.
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_headers: 64,
            max_head_bytes: 8 * 1024,
            max_body_bytes: 1024 * 1024,
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            max_connections: 10_000,
        }
    }
}
