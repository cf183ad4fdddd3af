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
use std::time::Duration;

use loom::net::TcpListener;
use loom::signal::{SIGINT, SIGTERM, Signals};
use loom_examples::http::{Limits, Server, app};

struct Options {
    addr: String,
    limits: Limits,
    drain: Duration,
}

fn main() -> io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let options = parse_options().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
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
    let stats = server.run(&listener, Ok, app::route)?;
    println!(
        "http_server: stopped after {} connections, {} requests ({} timed out, {} failed)",
        stats.connections.get(),
        stats.requests.get(),
        stats.timeouts.get(),
        stats.errors.get()
    );
    Ok(())
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        addr: "127.0.0.1:8080".to_owned(),
        limits: Limits::default(),
        drain: Duration::from_secs(5),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        let seconds = |v: String| {
            v.parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or(format!("{arg}: not a number of seconds: {v}"))
        };
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{arg}: {e}"));
        match arg.as_str() {
            "--drain" => options.drain = seconds(value()?)?,
            "--idle" => options.limits.idle_timeout = seconds(value()?)?,
            "--request-timeout" => options.limits.request_timeout = seconds(value()?)?,
            "--max-body" => options.limits.max_body_bytes = number(value()?)?,
            "--max-connections" => options.limits.max_connections = number(value()?)?,
            _ if !arg.starts_with("--") => options.addr = arg,
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    Ok(options)
}
