//! The HTTP servers under test, one function per [`Impl`].
//!
//! Every server binds `127.0.0.1` on a free port, hands the port to
//! `report`, then accepts in a loop and serves each connection on its own
//! fiber / task / coroutine until the client closes. A server runs until
//! its process is killed. All answer `GET /plaintext` with
//! `Hello, World!` (`text/plain`) and `GET /json` with
//! `{"message":"Hello, World!"}` (`application/json`, serialized per
//! request), with `Server`, `Date` and `Content-Length` headers.
//!
//! * loom (both backends): `loom_examples::http::Connection::serve` with
//!   `app::route` — the `http_server` example's connection code, minus its
//!   accept-loop bookkeeping (connection limit, drain on a signal).
//! * monoio: the same request code (`Exchange::answer` with `app::route`)
//!   in a monoio read/answer/write loop: only the I/O differs from loom.
//! * may_minihttp: as shipped, with an `HttpService` like its own
//!   `techempower_no_db` example (serde_json instead of yarte for `/json`).
//! * hyper: `hyper::server::conn::http1` with `pipeline_flush(true)` and a
//!   `service_fn`, on a tokio `current_thread` runtime.
//!
//! All but may_minihttp set `TCP_NODELAY` on accepted sockets; may_minihttp
//! ships with that line commented out and runs as shipped.

use std::convert::Infallible;
use std::io;

use loom_examples::http::exchange::Exchange;
use loom_examples::http::{Connection, Limits, app};
use serde::Serialize;

use super::{Impl, PLAINTEXT_BODY};

/// Called once with the listening port.
pub type Report = fn(u16);

/// Initial size of a monoio connection's input and output buffers: the
/// same as `loom_examples::http::Connection`'s.
const BUF: usize = 16 * 1024;

/// The `/json` message, serialized per request by the peers that do not
/// run `app::route`.
#[derive(Serialize)]
struct Message {
    message: &'static str,
}

/// The message every `/json` answer carries.
const MESSAGE: Message = Message {
    message: "Hello, World!",
};

/// Runs the HTTP server `imp` forever.
///
/// # Errors
///
/// Failing to start the runtime or to bind; an accept error. A failing
/// connection only ends that connection.
pub fn serve(imp: Impl, report: Report) -> io::Result<()> {
    match imp {
        Impl::LoomIoUring => loom_server(loom::rt::Backend::IoUring, report),
        Impl::LoomEpoll => loom_server(loom::rt::Backend::Epoll, report),
        Impl::MayMinihttp => may_minihttp_server(report),
        Impl::Monoio => monoio_server(report),
        Impl::Hyper => hyper_server(report),
    }
}

// ----------------------------------------------------------------- loom ----

/// loom on `backend`, one loop, one fiber per connection running
/// `Connection::serve` with the example's routes.
fn loom_server(backend: loom::rt::Backend, report: Report) -> io::Result<()> {
    let rt = loom::Runtime::builder().backend(backend).build()?;
    rt.run(move || -> io::Result<()> {
        let listener = loom::net::TcpListener::bind("127.0.0.1:0")?;
        report(listener.local_addr()?.port());
        loop {
            let (stream, _peer) = listener.accept()?;
            stream.set_nodelay(true)?;
            loom::spawn(move || {
                let limits = Limits::default();
                let mut handler = app::route;
                // Errors (a reset) end this connection only; the
                // benchmark's client checks every answer it gets.
                let _ = Connection::default().serve(&mut &stream, &limits, &mut handler, &|| false);
            });
        }
    })
}

// --------------------------------------------------------------- monoio ----

/// monoio on its io_uring driver, one task per connection running
/// [`monoio_connection`].
fn monoio_server(report: Report) -> io::Result<()> {
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().build()?;
    rt.block_on(async move {
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0")?;
        report(listener.local_addr()?.port());
        loop {
            let (stream, _peer) = listener.accept().await?;
            stream.set_nodelay(true)?;
            monoio::spawn(monoio_connection(stream));
        }
    })
}

/// One connection on monoio: read after any leftover bytes, answer every
/// whole request with loom's [`Exchange`] (the code loom's `Connection`
/// runs), write all the answers at once, keep the partial rest. Buffers
/// go to the kernel by value (monoio's owned-buffer I/O) and come back.
async fn monoio_connection(mut stream: monoio::net::TcpStream) -> io::Result<()> {
    use monoio::buf::IoBufMut;
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

    let limits = Limits::default();
    let most = limits.max_head_bytes + limits.max_body_bytes;
    let mut handler = app::route;
    let mut exchange = Exchange::default();
    let mut input: Vec<u8> = Vec::with_capacity(BUF);
    let mut output: Vec<u8> = Vec::with_capacity(BUF);
    loop {
        if input.len() == input.capacity() {
            // A request larger than the buffer: grow, as loom's
            // `Connection` does, up to what the limits allow.
            if input.len() >= most {
                return Ok(());
            }
            input.reserve(input.capacity());
        }
        let filled = input.len();
        // Reads into the spare capacity after the leftover bytes; the
        // slice sets the vector's length to `filled + n`.
        let (read, slice) = stream.read(input.slice_mut(filled..)).await;
        input = slice.into_inner();
        if read? == 0 {
            return Ok(());
        }
        let answered = exchange.answer(&input, &limits, &mut handler, &mut output, false);
        if answered.requests == 0 {
            continue;
        }
        input.copy_within(answered.consumed.., 0);
        input.truncate(input.len() - answered.consumed);
        let (written, out) = stream.write_all(output).await;
        output = out;
        written?;
        output.clear();
        if answered.close {
            return Ok(());
        }
    }
}

// --------------------------------------------------------- may_minihttp ----

/// may_minihttp's service: TechEmpower's two routes, written like the
/// crate's own `techempower_no_db` example.
#[derive(Debug, Clone, Copy)]
struct Techempower;

impl may_minihttp::HttpService for Techempower {
    fn call(
        &mut self,
        req: may_minihttp::Request,
        rsp: &mut may_minihttp::Response,
    ) -> io::Result<()> {
        use bytes::BufMut;

        match req.path() {
            "/json" => {
                rsp.header("Content-Type: application/json");
                serde_json::to_writer(rsp.body_mut().writer(), &MESSAGE)?;
            }
            "/plaintext" => {
                rsp.header("Content-Type: text/plain").body("Hello, World!");
            }
            _ => {
                rsp.status_code(404, "Not Found");
            }
        }
        Ok(())
    }
}

/// A new [`Techempower`] per connection, as in the crate's example.
#[derive(Debug)]
struct TechempowerFactory;

impl may_minihttp::HttpServiceFactory for TechempowerFactory {
    type Service = Techempower;

    fn new_service(&self, _id: usize) -> Techempower {
        Techempower
    }
}

/// may_minihttp with one may worker.
fn may_minihttp_server(report: Report) -> io::Result<()> {
    use may_minihttp::HttpServiceFactory;

    // The settings of the crate's techempower example (pool capacity,
    // 0x1000-word stacks), with one worker. The process is already pinned;
    // may's workers inherit that mask.
    may::config()
        .set_workers(1)
        .set_pool_capacity(500)
        .set_stack_size(0x1000);
    may::config().set_worker_pin(false);
    // `start` binds the address it is given and does not say the port, so
    // find a free one first (the harness runs one server at a time).
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let server = TechempowerFactory.start(("127.0.0.1", port))?;
    report(port);
    server
        .join()
        .map_err(|_| io::Error::other("the may_minihttp accept coroutine panicked"))
}

// ---------------------------------------------------------------- hyper ----

/// The body and content type hyper answers for `path`, `None` for 404.
fn hyper_body(path: &str) -> Option<(bytes::Bytes, &'static str)> {
    match path {
        "/plaintext" => Some((bytes::Bytes::from_static(PLAINTEXT_BODY), "text/plain")),
        "/json" => {
            // Serialized per request, as TechEmpower's rules ask.
            let json = serde_json::to_vec(&MESSAGE).expect("a static message serializes");
            Some((bytes::Bytes::from(json), "application/json"))
        }
        _ => None,
    }
}

/// hyper's service: TechEmpower's two routes.
async fn hyper_route(
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<http_body_util::Full<bytes::Bytes>>, Infallible> {
    use hyper::header::{CONTENT_TYPE, HeaderValue, SERVER};

    let (status, body, content_type) = match hyper_body(req.uri().path()) {
        Some((body, content_type)) => (hyper::StatusCode::OK, body, content_type),
        None => (
            hyper::StatusCode::NOT_FOUND,
            bytes::Bytes::new(),
            "text/plain",
        ),
    };
    let mut response = hyper::Response::new(http_body_util::Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(SERVER, HeaderValue::from_static("hyper"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

/// hyper 1.x `http1` on a tokio `current_thread` runtime, one task per
/// connection; `pipeline_flush(true)` so pipelined answers leave in one
/// write, as the other servers' do.
fn hyper_server(report: Report) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        report(listener.local_addr()?.port());
        loop {
            let (stream, _peer) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .pipeline_flush(true)
                    .serve_connection(io, hyper::service::service_fn(hyper_route))
                    .await;
            });
        }
    })
}
