//! `examples/proxy.rs` as a child process, on each backend, copying and
//! splicing: connections through it to an upstream server in this process,
//! each sending 1 MiB and reading its echo back, checksummed, with abrupt
//! resets mixed in; half-close in both directions; resets while the proxy
//! is blocked on the client; a fresh connection after all that; exit
//! status 0 on SIGTERM.
//!
//! Sizes: every combination (io_uring and epoll, copy and `--splice`)
//! runs the full [`CONNECTIONS`] connections of 1 MiB, [`CONCURRENCY`] at
//! a time, one in [`RESET_EVERY`] of them reset (`SO_LINGER` 0, then
//! close) partway through its upload while its echo is flowing back: about
//! 7-10 s per combination on a 2-core machine, proxy and test both debug
//! builds (building the example the first time comes on top). The four
//! combinations run one after the other (a lock) so that each has the
//! machine to itself; a watchdog kills the proxy and fails the whole test
//! binary after [`LIMIT`], so a bug fails rather than hangs.
//!
//! The upstream server reads a one-byte mode first: `E` echoes until end
//! of file; `R` reads until end of file and only then answers with all it
//! read (so an answer proves the client's half-close got through); `G`
//! sends a greeting and shuts its writing side before reading until end of
//! file (so the client's end of file proves the server's half-close got
//! through while the other direction stays open); `F` floods a client that
//! reads nothing, then reads until end of file. It counts how each
//! connection ended: a clean end of file, or an error — which is how the
//! test sees that a client's reset reached the upstream side as a reset
//! and every other connection closed cleanly. (`F` is the case where, on
//! io_uring, the proxy's blocked write to the client takes the reset's
//! error and its read sees a plain end of file; see
//! `check_end_of_file` in the example.)

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loom::net::{TcpListener, TcpStream};
use loom::rt::Backend;
use loom_tests::{build_example, checksum, listening_addr, pattern};

const CONNECTIONS: usize = 1000;
const SIZE: usize = 1 << 20;
const CONCURRENCY: usize = 100;
const RESET_EVERY: usize = 10;
/// Distinct 1 MiB patterns the connections cycle through (making one per
/// connection would cost more than the transfer in a debug build).
const PATTERNS: usize = 8;
/// The most one combination may take, watchdog included.
const LIMIT: Duration = Duration::from_secs(60);
/// How long the proxy may take to exit after SIGTERM (its drain deadline
/// is 2 s, and every connection has ended by then).
const EXIT_WITHIN: Duration = Duration::from_secs(5);

/// One combination at a time: see the module documentation.
static SERIAL: Mutex<()> = Mutex::new(());

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Copy,
    Splice,
}

/// How the upstream server's connections ended, per mode byte.
#[derive(Default)]
struct Ended {
    clean: Cell<usize>,
    error: Cell<usize>,
}

/// The upstream server's shared state.
#[derive(Default)]
struct Upstream {
    echo: Ended,
    reply: Ended,
    greet: Ended,
    flood: Ended,
    /// Checksums of what `G` connections received, in order.
    greet_received: RefCell<Vec<u64>>,
}

const GREETING_LEN: usize = 200 * 1024;

fn start_upstream() -> io::Result<(SocketAddr, Rc<Upstream>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let state = Rc::new(Upstream::default());
    let shared = Rc::clone(&state);
    loom::spawn(move || {
        while let Ok((stream, _)) = listener.accept() {
            let state = Rc::clone(&shared);
            loom::spawn(move || serve_upstream(&stream, &state));
        }
    });
    Ok((addr, state))
}

fn serve_upstream(mut stream: &TcpStream, state: &Upstream) {
    let mut mode = [0u8];
    let (ended, result) = match stream.read_exact(&mut mode).map(|()| mode[0]) {
        Ok(b'E') => (&state.echo, echo(stream)),
        Ok(b'R') => (&state.reply, reply_after_eof(stream)),
        Ok(b'G') => (&state.greet, greet_first(stream, state)),
        Ok(b'F') => (&state.flood, flood_then_read(stream)),
        _ => (&state.echo, Err(io::Error::other("no mode byte"))),
    };
    let counter = if result.is_ok() {
        &ended.clean
    } else {
        &ended.error
    };
    counter.set(counter.get() + 1);
}

fn echo(mut stream: &TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

fn reply_after_eof(mut stream: &TcpStream) -> io::Result<()> {
    let mut all = Vec::new();
    stream.read_to_end(&mut all)?;
    stream.write_all(&all)
}

fn greet_first(mut stream: &TcpStream, state: &Upstream) -> io::Result<()> {
    stream.write_all(&pattern(99, GREETING_LEN))?;
    stream.shutdown(Shutdown::Write)?;
    let mut all = Vec::new();
    stream.read_to_end(&mut all)?;
    state.greet_received.borrow_mut().push(checksum(&all));
    Ok(())
}

/// Floods the client for a while (it reads nothing, so the proxy's
/// writes to it block), then reads until end of file: only a client's
/// clean end of file may end that read without an error.
fn flood_then_read(mut stream: &TcpStream) -> io::Result<()> {
    let flood = vec![0x46; 8 << 20];
    match loom::time::with_timeout(FLOOD_FOR, || stream.write_all(&flood)) {
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
        other => other?,
    }
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).map(drop)
}

/// How long [`flood_then_read`] writes; its clients reset later.
const FLOOD_FOR: Duration = Duration::from_millis(100);

/// The proxy child and its output, read by threads so it never blocks on
/// a full pipe.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    output: Arc<Mutex<String>>,
    drains: Vec<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start(backend: Backend, mode: Mode, upstream: SocketAddr) -> Proxy {
        let mut command = Command::new(build_example("proxy"));
        command
            .arg("127.0.0.1:0")
            .arg(upstream.to_string())
            .env("LOOM_BACKEND", backend.name())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if mode == Mode::Splice {
            command.arg("--splice");
        }
        let mut child = command.spawn().expect("start the proxy example");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let addr = listening_addr("proxy", &mut stdout);
        let output = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let drains = vec![
            drain(stdout, Arc::clone(&output)),
            drain(stderr, Arc::clone(&output)),
        ];
        Proxy {
            child,
            addr,
            output,
            drains,
        }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// SIGTERM; the exit status, within [`EXIT_WITHIN`].
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        let sent = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM to the proxy");
        let signalled = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if signalled.elapsed() > EXIT_WITHIN {
                let _ = self.child.kill();
                panic!(
                    "the proxy did not exit within {EXIT_WITHIN:?} of SIGTERM\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for drain in std::mem::take(&mut self.drains) {
            drain.join().unwrap();
        }
        (status, self.output())
    }
}

impl Drop for Proxy {
    /// On a failure path: the proxy must not outlive the test.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain(from: impl Read + Send + 'static, to: Arc<Mutex<String>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            let mut to = to.lock().unwrap();
            to.push_str(&line);
            to.push('\n');
        }
    })
}

/// Kills the proxy and fails the test binary if not disarmed (dropped)
/// within `limit`.
struct Watchdog {
    disarm: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn arm(what: String, pid: u32, limit: Duration) -> Watchdog {
        let (disarm, disarmed) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = disarmed.recv_timeout(limit) {
                eprintln!("{what}: still running after {limit:?}; killing the proxy and failing");
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                std::process::exit(101);
            }
        });
        Watchdog {
            disarm: Some(disarm),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.disarm.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Resets the connection when `stream` is closed (`SO_LINGER` 0).
fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid linger struct of the length passed, on an open fd.
    let set = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "SO_LINGER");
}

/// The patterns and their checksums.
struct Patterns {
    data: Vec<Vec<u8>>,
    sums: Vec<u64>,
}

impl Patterns {
    fn new() -> Patterns {
        let data: Vec<_> = (0..PATTERNS).map(|i| pattern(i as u64, SIZE)).collect();
        let sums = data.iter().map(|d| checksum(d)).collect();
        Patterns { data, sums }
    }
}

/// One connection that runs to the end: `E`, 1 MiB up while the echo
/// comes back, then half-close; everything must come back, then end of
/// file.
fn echo_client(
    addr: SocketAddr,
    id: usize,
    patterns: &Patterns,
    got: &mut Vec<u8>,
) -> io::Result<()> {
    let data = &patterns.data[id % PATTERNS];
    let stream = TcpStream::connect(addr)?;
    got.clear();
    loom::fiber::scope(|s| {
        let writer = s.spawn(|| -> io::Result<()> {
            (&stream).write_all(b"E")?;
            (&stream).write_all(data)?;
            stream.shutdown(Shutdown::Write)
        });
        (&stream).read_to_end(got)?;
        writer.join().unwrap()
    })?;
    if got.len() != SIZE || checksum(got) != patterns.sums[id % PATTERNS] {
        return Err(io::Error::other(format!(
            "connection {id}: {} bytes came back, checksum {:x}, expected {SIZE} bytes, {:x}",
            got.len(),
            checksum(got),
            patterns.sums[id % PATTERNS]
        )));
    }
    Ok(())
}

/// One connection that resets partway: uploads `cut` bytes while reading
/// what comes back, then resets (`SO_LINGER` 0, close) with the echo
/// still flowing.
fn reset_client(addr: SocketAddr, id: usize, patterns: &Patterns) -> io::Result<()> {
    let data = &patterns.data[id % PATTERNS];
    let cut = 64 * 1024 + (id * 7919) % (SIZE / 2);
    let stream = TcpStream::connect(addr)?;
    loom::fiber::scope(|s| {
        s.spawn(|| {
            let mut buf = [0u8; 16 * 1024];
            while matches!((&stream).read(&mut buf), Ok(n) if n > 0) {}
        });
        let sent = (&stream)
            .write_all(b"E")
            .and_then(|()| (&stream).write_all(&data[..cut]));
        // The reader is cancelled: its read returns at once.
        set_linger_zero(&stream);
        s.cancel();
        sent
    })
    // `stream` closes here: a reset.
}

/// The load: `connections`, [`CONCURRENCY`] at a time; returns how many
/// ran to the end and how many were reset.
fn load(addr: SocketAddr, connections: usize) -> io::Result<(usize, usize)> {
    let patterns = Rc::new(Patterns::new());
    let workers: Vec<_> = (0..CONCURRENCY.min(connections))
        .map(|w| {
            let patterns = Rc::clone(&patterns);
            loom::spawn(move || -> io::Result<(usize, usize)> {
                let (mut clean, mut reset) = (0, 0);
                let mut got = Vec::with_capacity(SIZE);
                for id in (w..connections).step_by(CONCURRENCY) {
                    if id % RESET_EVERY == RESET_EVERY / 2 {
                        reset_client(addr, id, &patterns)?;
                        reset += 1;
                    } else {
                        echo_client(addr, id, &patterns, &mut got)?;
                        clean += 1;
                    }
                }
                Ok((clean, reset))
            })
        })
        .collect();
    workers.into_iter().try_fold((0, 0), |(c, r), worker| {
        let (clean, reset) = worker.join().unwrap()?;
        Ok((c + clean, r + reset))
    })
}

/// Waits (bounded) until the upstream side of every connection ended.
fn wait_for_upstream(ended: &Ended, total: usize) -> io::Result<()> {
    let started = Instant::now();
    while ended.clean.get() + ended.error.get() < total {
        if started.elapsed() > Duration::from_secs(10) {
            return Err(io::Error::other(format!(
                "after 10 s only {} clean + {} failed of {total} upstream connections ended",
                ended.clean.get(),
                ended.error.get()
            )));
        }
        loom::time::sleep(Duration::from_millis(5))?;
    }
    Ok(())
}

/// Client → upstream half-close: the upstream answers only after it read
/// end of file, and closes after answering.
fn half_close_from_client(addr: SocketAddr, upstream: &Upstream) -> io::Result<()> {
    let data = pattern(5, 300 * 1024);
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(b"R")?;
    stream.write_all(&data)?;
    stream.shutdown(Shutdown::Write)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    assert_eq!(answer.len(), data.len(), "the answer after the half-close");
    assert_eq!(checksum(&answer), checksum(&data));
    wait_for_upstream(&upstream.reply, 1)?;
    assert_eq!(
        upstream.reply.clean.get(),
        1,
        "the upstream side ended cleanly"
    );
    Ok(())
}

/// Upstream → client half-close: the greeting ends in end of file while
/// the client has not finished sending; then the client's upload still
/// arrives whole.
fn half_close_from_upstream(addr: SocketAddr, upstream: &Upstream) -> io::Result<()> {
    let data = pattern(6, 300 * 1024);
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(b"G")?;
    let mut greeting = Vec::new();
    stream.read_to_end(&mut greeting)?;
    assert_eq!(checksum(&greeting), checksum(&pattern(99, GREETING_LEN)));
    stream.write_all(&data)?;
    stream.shutdown(Shutdown::Write)?;
    wait_for_upstream(&upstream.greet, 1)?;
    assert_eq!(
        upstream.greet.clean.get(),
        1,
        "the upstream side ended cleanly"
    );
    assert_eq!(*upstream.greet_received.borrow(), [checksum(&data)]);
    Ok(())
}

/// Resets while the proxy is blocked writing to the client (which reads
/// nothing) and waiting to read from it (which sends nothing more): the
/// reset must reach the upstream side as one, not as an end of file.
fn reset_while_proxy_blocked(addr: SocketAddr, upstream: &Upstream) -> io::Result<()> {
    const ROUNDS: usize = 20;
    let clients: Vec<_> = (0..ROUNDS)
        .map(|_| {
            loom::spawn(move || -> io::Result<()> {
                let stream = TcpStream::connect(addr)?;
                (&stream).write_all(b"F")?;
                loom::time::sleep(3 * FLOOD_FOR)?;
                set_linger_zero(&stream);
                Ok(())
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap()?;
    }
    wait_for_upstream(&upstream.flood, ROUNDS)?;
    assert_eq!(
        (upstream.flood.clean.get(), upstream.flood.error.get()),
        (0, ROUNDS),
        "upstream (clean, failed) endings of connections whose clients reset"
    );
    Ok(())
}

/// After everything: a fresh connection still gets its echo.
fn fresh_connection_works(addr: SocketAddr) -> io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(b"Ehello")?;
    stream.shutdown(Shutdown::Write)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    assert_eq!(answer, "hello");
    Ok(())
}

fn run(backend: Backend, mode: Mode) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !Backend::available().contains(&backend) {
        loom_tests::say(format_args!(
            "proxy [{backend}, {mode:?}]: {backend} unavailable, skipped"
        ));
        return;
    }
    loom_tests::raise_fd_limit();
    let what = format!("proxy [{backend}, {mode:?}]");
    let rt = loom::Runtime::builder().build().unwrap();
    let watched = what.clone();
    let (proxy, outcome) = rt.run(move || {
        let (upstream_addr, upstream) = start_upstream().unwrap();
        let proxy = Proxy::start(backend, mode, upstream_addr);
        let _watchdog = Watchdog::arm(watched, proxy.child.id(), LIMIT);
        let started = Instant::now();
        let outcome = (|| -> io::Result<(usize, usize, Duration)> {
            let (clean, reset) = load(proxy.addr, CONNECTIONS)?;
            wait_for_upstream(&upstream.echo, CONNECTIONS)?;
            // Every reset reached the upstream side as an error, every
            // other connection ended there cleanly.
            assert_eq!(
                (upstream.echo.clean.get(), upstream.echo.error.get()),
                (clean, reset),
                "upstream (clean, failed) endings against the clients' (clean, reset)"
            );
            half_close_from_client(proxy.addr, &upstream)?;
            half_close_from_upstream(proxy.addr, &upstream)?;
            reset_while_proxy_blocked(proxy.addr, &upstream)?;
            fresh_connection_works(proxy.addr)?;
            Ok((clean, reset, started.elapsed()))
        })();
        (proxy, outcome)
    });
    let output = proxy.output();
    let (clean, reset, took) = outcome.unwrap_or_else(|e| panic!("{what}: {e}\n{output}"));
    let (status, output) = proxy.terminate();
    assert!(status.success(), "{what}: exit {status}\n{output}");
    assert!(output.contains("proxy: stopped"), "{what}:\n{output}");
    loom_tests::say(format_args!(
        "{what}: {clean} connections × 1 MiB echoed intact, {reset} reset midway, half-close \
         both ways, resets while blocked passed on, exit 0 on SIGTERM; {:.1} s",
        took.as_secs_f64()
    ));
}

#[test]
fn io_uring_copy() {
    run(Backend::IoUring, Mode::Copy);
}

#[test]
fn io_uring_splice() {
    run(Backend::IoUring, Mode::Splice);
}

#[test]
fn epoll_copy() {
    run(Backend::Epoll, Mode::Copy);
}

#[test]
fn epoll_splice() {
    run(Backend::Epoll, Mode::Splice);
}
