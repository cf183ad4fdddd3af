//! An HTTPS server: the same handler as `http_server` (TechEmpower's
//! `/plaintext` and `/json`, and `/echo` for `POST` bodies) on the shared
//! [`loom_examples::http`] module, over TLS with rustls — one fiber per
//! connection, which does the handshake and then serves HTTP/1.1 over a
//! `rustls::StreamOwned` on a loom `TcpStream` in the same blocking style
//! as plain TCP. Graceful shutdown on SIGTERM or SIGINT; each connection
//! ends with a TLS `close_notify` before its TCP half-close.
//!
//! Without `--cert`/`--key` it makes a self-signed certificate for
//! `localhost` and `127.0.0.1` at start-up (with `rcgen`), so clients must
//! either skip verification (`curl -k`) or trust that certificate, which
//! `--write-cert PATH` writes out in PEM form before the server says it is
//! listening:
//!
//! ```sh
//! cargo run --release --example https_server -- 127.0.0.1:8443 --write-cert /tmp/loom.pem
//! curl -k https://127.0.0.1:8443/plaintext
//! curl --cacert /tmp/loom.pem https://localhost:8443/json
//! curl -k --data-binary @Cargo.toml https://127.0.0.1:8443/echo
//! ```
//!
//! Options: `--cert PATH --key PATH` (a PEM certificate chain, leaf first,
//! and its PEM private key — PKCS#8, PKCS#1 or SEC1), `--write-cert PATH`
//! (write the certificate served — the generated one, or a copy of
//! `--cert` — to `PATH`), and those of `http_server`: `--drain SECS` (time
//! connections get to finish after the signal, default 5), `--idle SECS`
//! (keep-alive idle timeout, default 60), `--request-timeout SECS` (first
//! byte to answer written, default 10; it also bounds the handshake),
//! `--max-body BYTES` (default 1 MiB), `--max-connections N` (default
//! 10 000). `LOOM_BACKEND=epoll` picks the backend; `RUST_LOG` the log
//! level (default `info`; `debug` shows why handshakes failed). The
//! address defaults to `127.0.0.1:8443`.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::path::PathBuf;
use std::sync::Arc;

use loom::net::{TcpListener, TcpStream};
use loom::signal::{SIGINT, SIGTERM, Signals};
use loom_examples::http::{Options, Server, Transport, app};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// The certificate flags, besides the shared ones.
#[derive(Debug, Default)]
struct CertOptions {
    /// `--cert` and `--key`; a generated self-signed pair without them.
    cert: Option<(PathBuf, PathBuf)>,
    write_cert: Option<PathBuf>,
}

/// A connection's TLS stream: rustls over loom's `TcpStream`, whose reads
/// and writes park the fiber, so rustls's blocking-socket API is all the
/// glue there is.
#[derive(Debug)]
struct Tls(StreamOwned<ServerConnection, TcpStream>);

impl Read for Tls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Tls {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Transport for Tls {
    /// `close_notify` first, so the client can tell the end of the answers
    /// from a truncation attack; then TCP's half-close, so the connection
    /// can still read (and drop) what the client sends until it closes.
    fn close_write(&mut self) -> io::Result<()> {
        self.0.conn.send_close_notify();
        self.0.flush()?;
        self.0.sock.shutdown(Shutdown::Write)
    }
}

/// Parses the options, sets up TLS, and serves until a signal.
fn main() -> io::Result<()> {
    loom_examples::init_logging();
    let (options, certs) =
        parse_options().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // Certificates before the runtime: a bad `--cert` fails at once, and
    // key generation never runs on an event loop.
    let config = tls_config(&certs)?;
    loom::Runtime::builder()
        .build()?
        .run(move || serve(options, config))
}

/// Listens, says where, serves until a signal, and sums up.
fn serve(options: Options, config: Arc<ServerConfig>) -> io::Result<()> {
    // Before anything else, so that a signal from here on is ours.
    let signals = Signals::new(&[SIGTERM, SIGINT])?;
    let listener = TcpListener::bind(&options.addr)?;
    println!("https_server: listening on {}", listener.local_addr()?);
    let server = Server {
        limits: options.limits,
        drain: options.drain,
        signals: &signals,
    };
    // Runs on each connection's fiber, under the request timeout, so a
    // client that stalls its handshake holds a fiber only that long.
    let open = |mut sock: TcpStream| -> io::Result<Tls> {
        let mut conn = ServerConnection::new(Arc::clone(&config)).map_err(io::Error::other)?;
        // Finishing the handshake here rather than on the first read keeps
        // handshake failures out of the HTTP code: they end the connection
        // as errors before a `Connection` is set up for it.
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        Ok(Tls(StreamOwned::new(conn, sock)))
    };
    let stats = server.run(&listener, open, app::route_with_metrics)?;
    println!(
        "https_server: stopped after {} connections, {} requests ({} timed out, {} failed)",
        stats.connections.get(),
        stats.requests.get(),
        stats.timeouts.get(),
        stats.errors.get()
    );
    Ok(())
}

/// The server's TLS settings: the certificate from `--cert`/`--key` or a
/// fresh self-signed one (written to `--write-cert` if asked), ring for
/// the cryptography (the crate is built without a default provider), TLS
/// 1.2 and 1.3, ALPN `http/1.1`.
fn tls_config(options: &CertOptions) -> io::Result<Arc<ServerConfig>> {
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {e}"))
    };
    let (chain, key) = match &options.cert {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| invalid(&cert.display().to_string(), &e))?;
            if chain.is_empty() {
                return Err(invalid(
                    &cert.display().to_string(),
                    &"no certificate in it",
                ));
            }
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| invalid(&key.display().to_string(), &e))?;
            if let Some(out) = &options.write_cert {
                std::fs::copy(cert, out)?;
            }
            (chain, key)
        }
        None => {
            let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
            let generated = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
            if let Some(out) = &options.write_cert {
                std::fs::write(out, generated.cert.pem())?;
            }
            let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
            (vec![generated.cert.der().clone()], key.into())
        }
    };
    // Deprecated in rustls 0.23.48 because ring has no post-quantum key
    // exchange; the aws-lc-rs provider that does needs a C/CMake build
    // this workspace avoids, and clients that offer a hybrid group fall
    // back to X25519 with ring. Named explicitly rather than left to `builder()`, which
    // panics if feature unification ever enables a second provider.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| invalid("TLS configuration", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The command line (see the module docs): the shared flags, and the
/// certificate ones.
fn parse_options() -> Result<(Options, CertOptions), String> {
    let (mut cert, mut key, mut write_cert) = (None, None, None);
    let options = Options::parse("127.0.0.1:8443", |flag, value| {
        match flag {
            "--cert" => cert = Some(PathBuf::from(value)),
            "--key" => key = Some(PathBuf::from(value)),
            "--write-cert" => write_cert = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown option {flag}")),
        }
        Ok(())
    })?;
    let cert = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => return Err("--cert and --key go together".to_owned()),
    };
    Ok((options, CertOptions { cert, write_cert }))
}
