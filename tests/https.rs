//! `examples/https_server.rs` against a rustls client, on each backend:
//! connections that send garbage instead of a TLS handshake are dropped
//! without disturbing the server; then 100 concurrent keep-alive
//! connections (TLS 1.3 and 1.2, trusting the self-signed certificate the
//! server writes with `--write-cert`) each make several `GET /plaintext`
//! and `POST /echo` requests with 64 KiB bodies, sent with
//! `Content-Length` or chunked, and compare checksums of what comes back;
//! some end with `Connection: close` (the server's `close_notify` must
//! arrive), the rest with the client's own `close_notify`. Then SIGTERM:
//! the server exits 0, promptly, and its last line counts every
//! connection, request and failed handshake.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use loom_examples::http::app::PLAINTEXT;
use loom_tests::{build_example, checksum, listening_addr, pattern};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ProtocolVersion, RootCertStore, StreamOwned};

const CONNECTIONS: usize = 100;
/// Rounds per connection, each a `GET /plaintext` and a `POST /echo`.
const ROUNDS: usize = 3;
const BODY: usize = 64 * 1024;
/// Chunk sizes a chunked body is cut into, in turn: tiny, odd and larger
/// than a TLS record, so chunk boundaries fall anywhere in a record.
const CHUNKS: [usize; 4] = [1, 4093, 17_000, 100];
/// How long any one client read or write may block: a server that stops
/// answering fails the test rather than hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Everything from the server's start to its exit; past this the
/// watchdog kills it, which fails whatever is waiting on it.
const WATCHDOG: Duration = Duration::from_secs(60);
/// The server's `--drain` (2 s) and its linger (1 s), with room.
const EXIT_WITHIN: Duration = Duration::from_secs(5);

/// The example running as a child, watched from its start by a
/// [`Watchdog`], killed (and its scratch directory removed) however the
/// test ends.
struct ServerProcess {
    child: Child,
    watchdog: Option<Watchdog>,
    stdout: BufReader<ChildStdout>,
    /// stderr, read on a thread so a chatty server never blocks on a full
    /// pipe.
    stderr: Option<JoinHandle<String>>,
    addr: SocketAddr,
    dir: PathBuf,
}

impl ServerProcess {
    /// Starts the server on an ephemeral port, writing its certificate
    /// into a fresh directory, and waits for it to say where it listens.
    fn start(backend: &str) -> ServerProcess {
        let dir = std::env::temp_dir().join(format!("loom-https-{}-{backend}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(build_example("https_server"))
            .arg("127.0.0.1:0")
            .args(["--drain", "2", "--write-cert"])
            .arg(dir.join("cert.pem"))
            .env("LOOM_BACKEND", backend)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the https_server example");
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let mut server = ServerProcess {
            stdout: BufReader::new(child.stdout.take().unwrap()),
            // Armed before the first read: a server that never says it is
            // listening is killed, which ends that read.
            watchdog: Some(Watchdog::new(child.id(), WATCHDOG)),
            child,
            stderr: Some(stderr),
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            dir,
        };
        server.addr = listening_addr("https_server", &mut server.stdout);
        server
    }

    /// A client configuration trusting (only) the server's certificate,
    /// offering `versions` and ALPN `http/1.1`.
    fn client_config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> ClientConfig {
        let cert = CertificateDer::from_pem_file(self.dir.join("cert.pem")).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert).unwrap();
        // Deprecated only for lacking post-quantum key exchange; ring is
        // the provider this workspace builds rustls with.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }

    /// Sends SIGTERM and waits (bounded) for the exit: its status (`None`
    /// if it had to be killed, by the watchdog or for not exiting within
    /// [`EXIT_WITHIN`]) and everything the server printed after its first
    /// line.
    fn stop(mut self) -> (Option<ExitStatus>, String, String) {
        let fired = self.watchdog.take().unwrap().disarm();
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) has no memory-safety preconditions; the child is
        // not yet reaped, so `pid` is still ours.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let signalled = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break Some(status).filter(|_| !fired);
            }
            if signalled.elapsed() > EXIT_WITHIN {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut out = String::new();
        self.stdout.read_to_string(&mut out).unwrap();
        let err = self.stderr.take().unwrap().join().unwrap();
        (status, out, err)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Before the child is reaped, after which its pid may be reused.
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.disarm();
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Kills process `pid` if it is still running when the time is up, unless
/// disarmed first.
struct Watchdog {
    /// Dropped to disarm: the thread's wait then ends early.
    disarm: mpsc::Sender<()>,
    /// Whether it fired.
    thread: JoinHandle<bool>,
}

impl Watchdog {
    fn new(pid: u32, limit: Duration) -> Watchdog {
        let (disarm, wait) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let fire = wait.recv_timeout(limit) == Err(RecvTimeoutError::Timeout);
            if fire {
                // SAFETY: kill(2) has no memory-safety preconditions; the
                // test reaps the child only after disarming this, so `pid`
                // is still the server's.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
            fire
        });
        Watchdog { disarm, thread }
    }

    /// Stops the watchdog; whether it had fired.
    fn disarm(self) -> bool {
        drop(self.disarm);
        self.thread.join().unwrap()
    }
}

/// A client's TLS stream; rustls's `StreamOwned` is `BufRead` itself.
type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Connects and completes the TLS handshake.
fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> io::Result<Tls> {
    let sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))?;
    sock.set_nodelay(true)?;
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// What a response carried that the test checks.
struct Answer {
    status: u16,
    close: bool,
    body: Vec<u8>,
}

/// Reads one response: status line, headers, `Content-Length` bytes.
fn read_answer(tls: &mut Tls) -> io::Result<Answer> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut line = String::new();
    if tls.read_line(&mut line)? == 0 {
        return Err(bad("end of stream instead of an answer".to_owned()));
    }
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad(format!("status line {line:?}")))?;
    let (mut length, mut close) = (None, false);
    loop {
        line.clear();
        tls.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| bad(format!("header {header:?}")))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|e| bad(e.to_string()))?);
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    let mut body = vec![0; length.ok_or_else(|| bad("no Content-Length".to_owned()))?];
    tls.read_exact(&mut body)?;
    Ok(Answer {
        status,
        close,
        body,
    })
}

/// `POST /echo` with `body`, chunked or with its length, in one write.
fn echo_request(body: &[u8], chunked: bool, close: bool) -> Vec<u8> {
    let mut request = b"POST /echo HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    if close {
        request.extend_from_slice(b"Connection: close\r\n");
    }
    if chunked {
        request.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        let mut rest = body;
        for size in CHUNKS.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, after) = rest.split_at((*size).min(rest.len()));
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(chunk);
            request.extend_from_slice(b"\r\n");
            rest = after;
        }
        request.extend_from_slice(b"0\r\n\r\n");
    } else {
        request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body);
    }
    request
}

/// One client connection, checked to have negotiated `version` and
/// `http/1.1`: `ROUNDS` rounds of `GET /plaintext` and
/// `POST /echo`; with `close_last`, the last request asks the server to
/// close, and its `close_notify` must follow the answer. Returns the
/// requests answered.
fn client(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    version: ProtocolVersion,
    id: usize,
    close_last: bool,
) -> io::Result<u64> {
    let bad =
        |what: String| io::Error::new(io::ErrorKind::InvalidData, format!("client {id}: {what}"));
    let mut tls = connect(addr, config)?;
    if tls.conn.alpn_protocol() != Some(b"http/1.1") {
        return Err(bad(format!("ALPN {:?}", tls.conn.alpn_protocol())));
    }
    if tls.conn.protocol_version() != Some(version) {
        return Err(bad(format!(
            "{:?}, wanted {version:?}",
            tls.conn.protocol_version()
        )));
    }
    let mut answered = 0;
    for round in 0..ROUNDS {
        tls.write_all(b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
        tls.flush()?;
        let answer = read_answer(&mut tls)?;
        if answer.status != 200 || answer.body != PLAINTEXT {
            return Err(bad(format!(
                "/plaintext: {} {:?}",
                answer.status, answer.body
            )));
        }
        answered += 1;

        let body = pattern((id * ROUNDS + round) as u64, BODY);
        let last = close_last && round == ROUNDS - 1;
        let chunked = (id + round).is_multiple_of(2);
        tls.write_all(&echo_request(&body, chunked, last))?;
        tls.flush()?;
        let answer = read_answer(&mut tls)?;
        if answer.status != 200
            || answer.body.len() != body.len()
            || checksum(&answer.body) != checksum(&body)
        {
            return Err(bad(format!(
                "/echo (chunked: {chunked}): {} with {} bytes, checksum {:x}, wanted {} bytes, {:x}",
                answer.status,
                answer.body.len(),
                checksum(&answer.body),
                body.len(),
                checksum(&body)
            )));
        }
        if answer.close != last {
            return Err(bad(format!(
                "Connection: close is {}, wanted {last}",
                answer.close
            )));
        }
        answered += 1;
    }
    if close_last {
        // A clean end: rustls reports a TCP end of file without the
        // server's close_notify as an error.
        let mut rest = Vec::new();
        tls.read_to_end(&mut rest)?;
        if !rest.is_empty() {
            return Err(bad(format!("{} bytes after the last answer", rest.len())));
        }
    } else {
        tls.conn.send_close_notify();
        tls.flush()?;
    }
    Ok(answered)
}

/// A connection that sends `bytes` (maybe none) instead of a ClientHello
/// and then waits for the server to hang up, which it must do promptly
/// (an alert first or not; a reset is fine too).
fn garbage(addr: SocketAddr, bytes: &[u8]) {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    if bytes.is_empty() {
        // Nothing at all: the handshake sees the end of file.
        sock.shutdown(std::net::Shutdown::Write).unwrap();
    } else {
        sock.write_all(bytes).unwrap();
    }
    let mut sink = Vec::new();
    match sock.read_to_end(&mut sink) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "garbage {:?}: the server did not hang up: {e}",
            &bytes[..bytes.len().min(16)]
        ),
    }
}

fn https_serves_concurrent_clients(backend: &str) {
    let server = ServerProcess::start(backend);
    let started = Instant::now();
    let addr = server.addr;
    let tls13 = Arc::new(server.client_config(&[&rustls::version::TLS13]));
    let tls12 = Arc::new(server.client_config(&[&rustls::version::TLS12]));

    // Not TLS at all: plain HTTP, random bytes, an immediate end of file.
    const GARBAGE: usize = 3;
    garbage(addr, b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n");
    garbage(addr, &pattern(7, 4096));
    garbage(addr, b"");
    // The server is still fine.
    let after_garbage = client(addr, &tls13, ProtocolVersion::TLSv1_3, CONNECTIONS, false);

    // All connect at once; every fourth speaks TLS 1.2, every other one
    // has the server close.
    let barrier = Arc::new(Barrier::new(CONNECTIONS));
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|id| {
            let (config, version) = match id % 4 {
                3 => (Arc::clone(&tls12), ProtocolVersion::TLSv1_2),
                _ => (Arc::clone(&tls13), ProtocolVersion::TLSv1_3),
            };
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                client(addr, &config, version, id, id.is_multiple_of(2))
            })
        })
        .collect();
    let results: Vec<io::Result<u64>> = std::iter::once(after_garbage)
        .chain(clients.into_iter().map(|c| c.join().unwrap()))
        .collect();
    let served = started.elapsed();

    let stopping = Instant::now();
    let (status, out, err) = server.stop();
    let stopped = stopping.elapsed();
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "[{backend}] {} clients failed: {failed:?}\n{out}\n{err}",
        failed.len()
    );
    match status {
        Some(status) => assert!(status.success(), "[{backend}] {status}\n{out}\n{err}"),
        None => panic!(
            "[{backend}] the server was killed: it ran over {WATCHDOG:?} or did not exit \
             within {EXIT_WITHIN:?} of SIGTERM\n{out}\n{err}"
        ),
    }
    let answered: u64 = results.iter().map(|r| *r.as_ref().unwrap()).sum();
    assert_eq!(answered, ((CONNECTIONS + 1) * ROUNDS * 2) as u64);
    // The garbage connections count as failed; nothing timed out.
    let connections = GARBAGE + 1 + CONNECTIONS;
    let summary = format!(
        "https_server: stopped after {connections} connections, {answered} requests (0 timed out, {GARBAGE} failed)"
    );
    assert!(
        out.contains(&summary),
        "[{backend}] wanted {summary:?} in\n{out}\n{err}"
    );
    loom_tests::say(format_args!(
        "[{backend}] {CONNECTIONS} TLS connections answered {answered} requests in {served:?}; \
         {GARBAGE} garbage handshakes dropped; exited 0 {stopped:?} after SIGTERM"
    ));
}

#[test]
fn https_serves_concurrent_clients_on_io_uring() {
    if loom::Runtime::builder()
        .backend(loom::rt::Backend::IoUring)
        .build()
        .is_err()
    {
        loom_tests::say(format_args!("io_uring unavailable: skipped"));
        return;
    }
    https_serves_concurrent_clients("io_uring");
}

#[test]
fn https_serves_concurrent_clients_on_epoll() {
    https_serves_concurrent_clients("epoll");
}
