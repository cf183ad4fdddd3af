//! An HTTP/1.1 server: TechEmpower's `/plaintext` and `/json`, and
//! `/echo` for `POST` bodies, on the shared [`loom_examples::http`]
//! module — one fiber per connection, keep-alive, pipelining, limits,
//! idle and request timeouts, graceful shutdown on SIGTERM or SIGINT.
//!
//! ```sh
//! cargo run --release --example http_server -- 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/plaintext
//! curl -i http://127.0.0.1:8080/json
//! curl -i --data-binary @Cargo.toml http://127.0.0.1:8080/echo
//! ```
//!
//! Options: `--drain SECS` (time connections get to finish after the
//! signal, default 5), `--idle SECS` (keep-alive idle timeout, default
//! 60), `--request-timeout SECS` (first byte to answer written, default
//! 10), `--max-body BYTES` (default 1 MiB), `--max-connections N`
//! (default 10 000). `LOOM_BACKEND=epoll` picks the backend; `RUST_LOG`
//! the log level (default `info`).

use std::io;

use loom::net::TcpListener;
use loom::signal::{SIGINT, SIGTERM, Signals};
use loom_examples::http::{Options, Server, app};

fn main() -> io::Result<()> {
    loom_examples::init_logging();
    let options = Options::parse("127.0.0.1:8080", |flag, _| {
        Err(format!("unknown option {flag}"))
    })
    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    loom::Runtime::builder()
        .build()?
        .run(move || serve(options))
}

fn serve(options: Options) -> io::Result<()> {
    // Before anything else, so that a signal from here on is ours.
    let signals = Signals::new(&[SIGTERM, SIGINT])?;
    let listener = TcpListener::bind(&options.addr)?;
    println!("http_server: listening on {}", listener.local_addr()?);
    let server = Server {
        limits: options.limits,
        drain: options.drain,
        signals: &signals,
    };
    let stats = server.run(&listener, Ok, app::route_with_metrics)?;
    println!(
        "http_server: stopped after {} connections, {} requests ({} timed out, {} failed)",
        stats.connections.get(),
        stats.requests.get(),
        stats.timeouts.get(),
        stats.errors.get()
    );
    Ok(())
}
