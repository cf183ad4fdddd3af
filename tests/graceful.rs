//! `examples/graceful.rs` under SIGTERM: 500 keep-alive connections busy
//! with requests; every request the server read is answered, no client
//! sees a reset, and the server exits 0 within its drain deadline.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use loom::net::TcpStream;
use loom::sync::local::WaitGroup;
use loom_tests::{build_example, listening_addr};

const CONNECTIONS: usize = 500;
/// The example's drain deadline (2 s) and linger (1 s), with room.
const EXIT_WITHIN: Duration = Duration::from_secs(6);

fn start_server(backend: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(build_example("graceful"))
        .arg("127.0.0.1:0")
        .env("LOOM_BACKEND", backend)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the graceful example");
    let addr = listening_addr(
        "graceful",
        &mut BufReader::new(child.stdout.as_mut().unwrap()),
    );
    (child, addr)
}

/// How one client's connection ended.
#[derive(Debug)]
struct Ended {
    answered: u64,
}

/// Requests in a loop until the server closes, always two in flight (so
/// a server that closed with a request unread would reset the
/// connection); every request is either answered in full or met by a
/// clean end of file (the server closed before reading it). A reset or a
/// torn answer is an error.
fn client(addr: SocketAddr, id: usize, ready: Rc<WaitGroup>) -> io::Result<Ended> {
    let stream = TcpStream::connect(addr)?;
    let mut reader = BufReader::new(&stream);
    let request = |n: u64| format!("{id}.{n}\n");
    (&stream).write_all(request(0).as_bytes())?;
    let mut answered = 0u64;
    let mut line = String::new();
    loop {
        // The next one goes out before the answer to the last comes back.
        // The server shuts its reading side only after our end of file,
        // so this write never fails on its own.
        (&stream).write_all(request(answered + 1).as_bytes())?;
        line.clear();
        match reader.read_line(&mut line)? {
            0 => return Ok(Ended { answered }),
            _ if line == format!("PONG {}", request(answered)) => answered += 1,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("torn answer {line:?} to {:?}", request(answered)),
                ));
            }
        }
        if answered == 1 {
            ready.done();
        }
    }
}

fn sigterm_drains_keep_alive_connections(backend: &str) {
    loom_tests::raise_fd_limit();
    let (mut server, addr) = start_server(backend);
    let pid = server.id() as i32;
    let outcome = loom::Runtime::builder().build().unwrap().run(
        move || -> io::Result<(Vec<Ended>, Instant)> {
            let ready = Rc::new(WaitGroup::new());
            ready.add(CONNECTIONS);
            let clients: Vec<_> = (0..CONNECTIONS)
                .map(|id| {
                    let ready = Rc::clone(&ready);
                    loom::spawn(move || client(addr, id, ready))
                })
                .collect();
            // Every connection accepted and served once, and busy.
            loom::time::with_timeout(Duration::from_secs(20), || ready.wait())?;
            loom::time::sleep(Duration::from_millis(50))?;
            // SAFETY: kill(2) has no memory-safety preconditions.
            assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
            let signalled = Instant::now();
            let ended = clients
                .into_iter()
                .map(|client| client.join().unwrap())
                .collect::<io::Result<_>>()?;
            Ok((ended, signalled))
        },
    );
    let signalled = outcome
        .as_ref()
        .map_or_else(|_| Instant::now(), |(_, at)| *at);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > EXIT_WITHIN {
            server.kill().unwrap();
            panic!("[{backend}] the server did not exit within {EXIT_WITHIN:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut out = String::new();
    server
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let (ended, _) = outcome.unwrap_or_else(|e| panic!("[{backend}] {e}\n{out}\n{err}"));
    assert!(status.success(), "[{backend}] {status}\n{out}\n{err}");
    assert!(
        out.contains("every connection finished"),
        "[{backend}] {out}"
    );
    assert_eq!(ended.len(), CONNECTIONS);
    let answered: u64 = ended.iter().map(|e| e.answered).sum();
    loom_tests::say(format_args!(
        "[{backend}] {CONNECTIONS} connections answered {answered} requests, all closed cleanly; \
         server exited {:?} after the signal",
        signalled.elapsed()
    ));
}

#[test]
fn sigterm_drains_keep_alive_connections_on_io_uring() {
    if loom::Runtime::builder()
        .backend(loom::rt::Backend::IoUring)
        .build()
        .is_err()
    {
        loom_tests::say(format_args!("io_uring unavailable: skipped"));
        return;
    }
    sigterm_drains_keep_alive_connections("io_uring");
}

#[test]
fn sigterm_drains_keep_alive_connections_on_epoll() {
    sigterm_drains_keep_alive_connections("epoll");
}
