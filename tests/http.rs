//! `examples/http_server.rs` end to end (the example run as a child on
//! each backend, driven by a real HTTP client and by raw sockets for what
//! clients normally hide: pipelining, slow and malformed requests), and
//! the shared HTTP module's steady state without allocations.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use loom_tests::{
    CountingAlloc, build_example, checksum, listening_addr, pattern, thread_allocations,
};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// A bound on anything one client waits for, so a bug fails a test rather
/// than hang it.
const PATIENCE: Duration = Duration::from_secs(10);

/// The example running as a child; killed if a test fails before it
/// stopped the server itself.
struct Server {
    child: Child,
    addr: SocketAddr,
    backend: &'static str,
}

impl Server {
    fn start(backend: &'static str, args: &[&str]) -> Server {
        let mut child = Command::new(build_example("http_server"))
            .arg("127.0.0.1:0")
            .args(args)
            .env("LOOM_BACKEND", backend)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the http_server example");
        let addr = listening_addr(
            "http_server",
            &mut BufReader::new(child.stdout.as_mut().unwrap()),
        );
        Server {
            child,
            addr,
            backend,
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns its stdout.
    fn stop(mut self, within: Duration) -> String {
        assert_eq!(
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) },
            0
        );
        let signalled = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                signalled.elapsed() < within,
                "[{}] the server did not exit within {within:?} of SIGTERM",
                self.backend
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(
            status.success(),
            "[{}] {status}\n{out}\n{err}",
            self.backend
        );
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The backends this host has, by the names `LOOM_BACKEND` takes.
fn backends() -> Vec<&'static str> {
    loom::rt::Backend::available()
        .into_iter()
        .map(|backend| match backend {
            loom::rt::Backend::IoUring => "io_uring",
            _ => "epoll",
        })
        .collect()
}

/// A response as a client sees it.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn closes(&self) -> bool {
        self.head
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n")
    }
}

/// Reads one response with a `Content-Length` body.
fn read_answer(reader: &mut impl BufRead) -> io::Result<Answer> {
    let mut head = String::new();
    loop {
        let before = head.len();
        if reader.read_line(&mut head)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if &head[before..] == "\r\n" {
            break;
        }
    }
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("a Content-Length");
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Answer { status, head, body })
}

/// Whether the server closed the connection (cleanly: no reset).
fn sees_end_of_file(reader: &mut impl Read) -> bool {
    let mut rest = Vec::new();
    matches!(reader.read_to_end(&mut rest), Ok(0))
}

/// A ureq client that returns error statuses as answers.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

#[test]
fn a_real_client_gets_every_route() {
    for backend in backends() {
        let server = Server::start(backend, &[]);
        let agent = agent();
        let mut plain = agent.get(server.url("/plaintext")).call().unwrap();
        assert_eq!(plain.status(), 200);
        assert_eq!(plain.headers()["server"], "loom");
        let date = plain.headers()["date"].to_str().unwrap().to_owned();
        assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
        assert_eq!(plain.body_mut().read_to_vec().unwrap(), b"Hello, World!");
        let mut json = agent.get(server.url("/json")).call().unwrap();
        assert_eq!(json.headers()["content-type"], "application/json");
        assert_eq!(
            json.body_mut().read_to_string().unwrap(),
            r#"{"message":"Hello, World!"}"#
        );
        let sent = pattern(7, 300 * 1024);
        let mut echoed = agent.post(server.url("/echo")).send(&sent[..]).unwrap();
        assert_eq!(echoed.status(), 200);
        let got = echoed
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .unwrap();
        assert_eq!(checksum(&got), checksum(&sent), "[{backend}] echoed body");
        let missing = agent.get(server.url("/nope")).call().unwrap();
        assert_eq!(missing.status(), 404);
        let wrong = agent.post(server.url("/json")).send("x").unwrap();
        assert_eq!(wrong.status(), 405);
        let out = server.stop(PATIENCE);
        assert!(out.contains("5 requests"), "[{backend}] {out}");
    }
}

/// `/metrics`, scraped as Prometheus would: every sample well formed, and
/// the numbers move with the traffic.
#[test]
fn metrics_are_served_for_prometheus() {
    for backend in backends() {
        let server = Server::start(backend, &[]);
        let agent = agent();
        let scrape = || {
            let mut answer = agent.get(server.url("/metrics")).call().unwrap();
            assert_eq!(answer.status(), 200);
            assert_eq!(
                answer.headers()["content-type"],
                "text/plain; version=0.0.4"
            );
            answer.body_mut().read_to_string().unwrap()
        };
        let sample = |text: &str, name: &str| -> u64 {
            let line = text
                .lines()
                .find(|line| line.starts_with(name))
                .unwrap_or_else(|| panic!("[{backend}] no {name} in\n{text}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        let first = scrape();
        for line in first.lines().filter(|line| !line.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("loom_"), "[{backend}] {line}");
            value
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("[{backend}] {line}"));
        }
        // The accept loop and this connection's fiber, at least.
        assert!(
            sample(&first, "loom_fibers_live{loop=\"0\"}") >= 2,
            "{first}"
        );
        for _ in 0..20 {
            agent.get(server.url("/plaintext")).call().unwrap();
        }
        let second = scrape();
        let ops = |text: &str| sample(text, "loom_ops_completed_total{loop=\"0\"}");
        assert!(
            ops(&second) >= ops(&first) + 20,
            "[{backend}]\n{first}\n{second}"
        );
        // Present (a loaded test machine may deschedule the loop: no 0).
        sample(&second, "loom_stalls_total{loop=\"0\"}");
        let wrong = agent.post(server.url("/metrics")).send("x").unwrap();
        assert_eq!(wrong.status(), 405);
        server.stop(PATIENCE);
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    for backend in backends() {
        let server = Server::start(backend, &[]);
        let stream = server.connect();
        // Sixteen requests in one write, bodies by length and chunked.
        let mut batch = Vec::new();
        for i in 0..16 {
            match i % 4 {
                0 => batch.extend_from_slice(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"),
                1 => batch.extend_from_slice(b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n"),
                2 => {
                    let body = format!("request {i}");
                    write!(batch, "POST /echo HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
                }
                _ => write!(
                    batch,
                    "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nreq\r\n{:x}\r\nuest {i}\r\n0\r\n\r\n",
                    format!("uest {i}").len()
                )
                .unwrap(),
            }
        }
        (&stream).write_all(&batch).unwrap();
        let mut reader = BufReader::new(&stream);
        for i in 0..16 {
            let answer = read_answer(&mut reader).unwrap();
            assert_eq!(answer.status, 200, "[{backend}] request {i}: {answer:?}");
            let expected = match i % 4 {
                0 => b"Hello, World!".to_vec(),
                1 => br#"{"message":"Hello, World!"}"#.to_vec(),
                _ => format!("request {i}").into_bytes(),
            };
            assert_eq!(answer.body, expected, "[{backend}] request {i}");
        }
        // A request sent a byte at a time arrives whole.
        for byte in b"GET /plaintext HTTP/1.1\r\nConnection: close\r\n\r\n" {
            (&stream).write_all(&[*byte]).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        let last = read_answer(&mut reader).unwrap();
        assert!(last.closes(), "[{backend}] {last:?}");
        assert!(
            sees_end_of_file(&mut reader),
            "[{backend}] open after Connection: close"
        );
        server.stop(PATIENCE);
    }
}

#[test]
fn requests_over_a_limit_are_refused_and_closed() {
    let too_many_headers = {
        let mut request = String::from("GET /plaintext HTTP/1.1\r\n");
        for i in 0..65 {
            request.push_str(&format!("X-{i}: y\r\n"));
        }
        request + "\r\n"
    };
    let huge_head = format!("GET /plaintext HTTP/1.1\r\nX: {}\r\n\r\n", "y".repeat(9000));
    let cases: [(&str, &[u8], u16); 6] = [
        ("too many headers", too_many_headers.as_bytes(), 431),
        ("a head over 8 KiB", huge_head.as_bytes(), 431),
        (
            "a body over the limit",
            b"POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n",
            413,
        ),
        (
            "a chunked body over the limit",
            b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1001\r\n",
            413,
        ),
        ("no colon", b"GET / HTTP/1.1\r\nbroken header\r\n\r\n", 400),
        (
            "two lengths",
            b"POST /echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
        ),
    ];
    for backend in backends() {
        let server = Server::start(backend, &["--max-body", "4096"]);
        for (what, request, status) in cases {
            let stream = server.connect();
            (&stream).write_all(request).unwrap();
            let mut reader = BufReader::new(&stream);
            let answer = read_answer(&mut reader).unwrap();
            assert_eq!(answer.status, status, "[{backend}] {what}: {answer:?}");
            assert!(answer.closes(), "[{backend}] {what}: {answer:?}");
            let _ = stream.shutdown(Shutdown::Write);
            assert!(
                sees_end_of_file(&mut reader),
                "[{backend}] {what}: left open"
            );
        }
        server.stop(PATIENCE);
    }
}

#[test]
fn idle_and_slow_clients_are_cut_off() {
    for backend in backends() {
        let server = Server::start(backend, &["--idle", "0.4", "--request-timeout", "0.4"]);
        // Idle: closed once the idle timeout passed, not before.
        let idle = server.connect();
        let connected = Instant::now();
        assert!(sees_end_of_file(&mut &idle), "[{backend}] idle connection");
        let waited = connected.elapsed();
        assert!(
            (Duration::from_millis(350)..Duration::from_secs(3)).contains(&waited),
            "[{backend}] idle connection closed after {waited:?}"
        );
        // Slow: half a request, then nothing; 408 at the deadline.
        let slow = server.connect();
        (&slow)
            .write_all(b"GET /plaintext HTTP/1.1\r\nHost:")
            .unwrap();
        let started = Instant::now();
        let mut reader = BufReader::new(&slow);
        let answer = read_answer(&mut reader).unwrap();
        assert_eq!(answer.status, 408, "[{backend}] {answer:?}");
        let waited = started.elapsed();
        assert!(
            (Duration::from_millis(350)..Duration::from_secs(3)).contains(&waited),
            "[{backend}] 408 after {waited:?}"
        );
        let _ = slow.shutdown(Shutdown::Write);
        assert!(
            sees_end_of_file(&mut reader),
            "[{backend}] slow connection left open"
        );
        // Busy: requests every 100 ms keep a connection open past the
        // idle timeout.
        let busy = server.connect();
        let mut reader = BufReader::new(&busy);
        for _ in 0..10 {
            (&busy)
                .write_all(b"GET /plaintext HTTP/1.1\r\n\r\n")
                .unwrap();
            assert_eq!(
                read_answer(&mut reader).unwrap().status,
                200,
                "[{backend}] busy"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server.stop(PATIENCE);
    }
}

/// Clients in a loop of keep-alive requests when SIGTERM comes: each
/// request is answered or met by a clean close; no reset; exit 0.
#[test]
fn sigterm_drains_busy_connections() {
    const CLIENTS: usize = 40;
    for backend in backends() {
        let server = Server::start(backend, &["--drain", "3"]);
        let addr = server.addr;
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                std::thread::spawn(move || -> io::Result<u64> {
                    let stream = TcpStream::connect(addr)?;
                    stream.set_read_timeout(Some(PATIENCE))?;
                    let mut reader = BufReader::new(&stream);
                    let mut answered = 0;
                    loop {
                        if let Err(e) = (&stream).write_all(b"GET /json HTTP/1.1\r\n\r\n") {
                            // The server closed after its last answer.
                            assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
                            return Ok(answered);
                        }
                        match read_answer(&mut reader) {
                            Ok(answer) => {
                                assert_eq!(answer.status, 200);
                                answered += 1;
                                if answer.closes() {
                                    return Ok(answered);
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                                return Ok(answered);
                            }
                            Err(e) => return Err(e),
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let idle = server.connect();
        let out = server.stop(Duration::from_secs(8));
        let mut total = 0;
        for client in clients {
            let answered = client
                .join()
                .unwrap()
                .unwrap_or_else(|e| panic!("[{backend}] client: {e}"));
            assert!(answered > 0, "[{backend}] a client got no answer");
            total += answered;
        }
        assert!(sees_end_of_file(&mut &idle), "[{backend}] idle connection");
        assert!(
            out.contains(&format!("{} connections", CLIENTS + 1)),
            "[{backend}] {out}"
        );
        loom_tests::say(format_args!(
            "[{backend}] {CLIENTS} busy clients answered {total} requests before SIGTERM ended them cleanly"
        ));
    }
}

/// The module's steady state: a keep-alive connection answering
/// `/plaintext` and `/json` allocates nothing per request (server and
/// client are fibers on one loop, so this thread's count is both).
#[test]
fn steady_state_requests_do_not_allocate() {
    use loom_examples::http::{Connection, Limits, app};
    let measured = loom_tests::on_each_backend(|| {
        let listener = loom::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = loom::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut connection = Connection::default();
            connection
                .serve(&mut &stream, &Limits::default(), &mut app::route, &|| false)
                .unwrap()
        });
        let client = loom::net::TcpStream::connect(addr).unwrap();
        let requests =
            b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\nGET /json HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut answers = [0u8; 4096];
        let mut exchange = |client: &loom::net::TcpStream| {
            (&*client).write_all(requests).unwrap();
            let mut got = 0;
            // Two answers: both bodies are the last bytes of their answer.
            while !answers[..got].ends_with(br#"{"message":"Hello, World!"}"#) {
                got += (&*client).read(&mut answers[got..]).unwrap();
            }
        };
        for _ in 0..100 {
            exchange(&client);
        }
        let before = thread_allocations();
        for _ in 0..1000 {
            exchange(&client);
        }
        let allocations = thread_allocations() - before;
        drop(client);
        server.join().unwrap();
        allocations
    });
    assert_eq!(
        measured,
        vec![0; measured.len()],
        "allocations in 2000 requests, per backend"
    );
}
