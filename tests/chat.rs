//! `examples/chat.rs` with 200 clients, one of which connects and then
//! never reads: once its queue fills it is disconnected, and it never slows
//! the others — every other client receives every message, in the order
//! each sender sent them, well within the time limit.
//!
//! The sizes are chosen so that the test can fail. The stalled client's
//! connection holds some 50–100 KB in the kernel (its receive buffer is
//! shrunk to 4 KiB, the server's send buffer capped at 16 KiB), and its
//! queue [`QUEUE`] lines of 1 KB; it is sent [`SENDERS`] × [`MESSAGES`] of
//! those lines, several times what it can hold. A server that waited for
//! room in its queue would stop relaying and every client would miss the
//! deadline; one that never disconnected it would never announce it, and
//! the other clients would wait for that announcement until the deadline.
//!
//! The senders keep only a few lines each under way (until every reading
//! client has read them), as people chatting do: a reading client is then
//! never far behind, so only the stalled client can fill its queue —
//! however slowly this process, which checks every line in a debug build
//! and shares the CPUs with the server, keeps up.

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use loom::net::TcpStream;
use loom::rt::Backend;
use loom::sync::local::{Semaphore, WaitGroup};
use loom_tests::{build_example, listening_addr};

/// Connections, the stalled one included.
const CLIENTS: usize = 200;
/// Clients `1..=SENDERS` send (and receive); client 0 is the stalled one.
const SENDERS: usize = 8;
/// Lines each sender sends.
const MESSAGES: usize = 80;
/// The length of a line as a sender sends it, `\n` included.
const LINE_BYTES: usize = 1000;
/// Lines a sender may have under way: sent, and not yet read by every
/// client but the stalled one.
const IN_FLIGHT: usize = 4;
/// The server's `--queue`: twice what can be under way to a reading
/// client, and a small part of what the stalled client is sent.
const QUEUE: usize = 2 * SENDERS * IN_FLIGHT;
/// The server's `--send-buffer`.
const SEND_BUFFER: usize = 16 * 1024;
/// `SO_RCVBUF` of the stalled client: next to nothing.
const STALLED_RECEIVE_BUFFER: usize = 4096;
/// `SO_RCVBUF` of the stalled client once it reads again, at the end.
const DRAIN_RECEIVE_BUFFER: usize = 1 << 20;
/// Everything on the clients' side: connecting, sending, receiving, and
/// reading the stalled client's connection to its end.
const EXCHANGE_WITHIN: Duration = Duration::from_secs(10);
/// From SIGTERM to the server's exit.
const EXIT_WITHIN: Duration = Duration::from_secs(5);

/// A client's number, as the server gives it.
type Id = u64;

/// The chat example, running as a child process; killed if dropped before
/// it exits.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// Threads collecting its stdout (after the first line) and stderr, so
    /// that it never blocks on a full pipe.
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

/// How the server ended.
struct Exit {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    after: Duration,
}

impl Server {
    fn start(backend: &str) -> Server {
        let mut child = Command::new(build_example("chat"))
            .arg("127.0.0.1:0")
            .args(["--queue", &QUEUE.to_string()])
            .args(["--send-buffer", &SEND_BUFFER.to_string()])
            .env("LOOM_BACKEND", backend)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the chat example");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let addr = listening_addr("chat", &mut stdout);
        let stderr = child.stderr.take().unwrap();
        Server {
            child,
            addr,
            stdout: Some(std::thread::spawn(move || read_all(stdout))),
            stderr: Some(std::thread::spawn(move || read_all(stderr))),
        }
    }

    /// Sends SIGTERM and waits for the exit, at most [`EXIT_WITHIN`].
    fn stop(&mut self) -> Exit {
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) has no memory-safety preconditions, and `pid` is
        // our child's, not reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let signalled = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                signalled.elapsed() < EXIT_WITHIN,
                "the server did not exit within {EXIT_WITHIN:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        Exit {
            status,
            stdout: self.stdout.take().unwrap().join().unwrap(),
            stderr: self.stderr.take().unwrap().join().unwrap(),
            after: signalled.elapsed(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A no-op once it has been waited for.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_all(mut from: impl Read) -> String {
    let mut text = String::new();
    let _ = from.read_to_string(&mut text);
    text
}

/// Sets `SO_RCVBUF` (which neither loom's streams nor std's have a method
/// for). Linux doubles the value and stops tuning the buffer by itself.
fn set_receive_buffer(stream: &TcpStream, bytes: usize) -> io::Result<()> {
    let bytes = libc::c_int::try_from(bytes).unwrap();
    // SAFETY: the descriptor is `stream`'s, open while it is borrowed;
    // setsockopt reads `size_of::<c_int>()` bytes at the pointer, which
    // points at `bytes`, alive for the call.
    let status = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const bytes).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Line `seq` of sender `sender` as it sends it: both numbers, then filler
/// that differs from line to line, so a line delivered to the wrong place
/// or torn cannot pass for another.
fn line(sender: usize, seq: usize) -> String {
    let mut line = format!("{sender} {seq} ");
    let filler = char::from(b'a' + ((sender * 7 + seq) % 26) as u8);
    line.extend(std::iter::repeat_n(filler, LINE_BYTES - 1 - line.len()));
    line.push('\n');
    line
}

/// What the clients share.
struct Clients {
    /// The server's number for each client, by index.
    ids: RefCell<[Id; CLIENTS]>,
    /// Counts the clients still to learn their number; senders start once
    /// every client has, so that every client is sent every line.
    joined: WaitGroup,
    /// Counts the clients still reading; each keeps its connection until
    /// all are done, so that no one is sent a flood of `left` notices while
    /// still reading.
    reading: WaitGroup,
    /// Every sender's lines, `[sender][seq]` (sender 0 sends none).
    lines: Vec<Vec<String>>,
    /// For each line, how many clients have it so far: `[sender][seq]`.
    arrivals: Vec<Vec<Cell<usize>>>,
    /// Lines each sender may still send before the ones it sent arrive
    /// everywhere: [`IN_FLIGHT`] at first.
    credits: Vec<Semaphore>,
}

impl Clients {
    fn new() -> Clients {
        let joined = WaitGroup::new();
        joined.add(CLIENTS - 1);
        let reading = WaitGroup::new();
        reading.add(CLIENTS - 1);
        let lines = (0..=SENDERS)
            .map(|sender| (0..MESSAGES).map(|seq| line(sender, seq)).collect())
            .collect();
        let arrivals = (0..=SENDERS)
            .map(|_| (0..MESSAGES).map(|_| Cell::new(0)).collect())
            .collect();
        let credits = (0..=SENDERS).map(|_| Semaphore::new(IN_FLIGHT)).collect();
        Clients {
            ids: RefCell::new([0; CLIENTS]),
            joined,
            reading,
            lines,
            arrivals,
            credits,
        }
    }

    /// Counts an arrival of line `seq` of `sender`; once every reading
    /// client but the sender has it, the sender may send one more.
    fn arrived(&self, sender: usize, seq: usize) {
        let arrivals = &self.arrivals[sender][seq];
        arrivals.set(arrivals.get() + 1);
        if arrivals.get() == CLIENTS - 2 {
            self.credits[sender].add_permits(1);
        }
    }
}

/// What one client read, checked line by line as it arrived.
#[derive(Debug, Default)]
struct Transcript {
    /// For each sender, the number of its next line.
    next: [usize; SENDERS + 1],
    /// Lines from senders.
    messages: usize,
    /// Clients the server announced as disconnected for not reading.
    cut_off: Vec<Id>,
}

impl Transcript {
    /// Checks `text`, a line the server sent: a notice (of which only
    /// disconnections count), or the next line of one of the senders, byte
    /// for byte, with that sender's number in front. Returns the sender
    /// and the line's number for the latter.
    fn record(&mut self, text: &[u8], clients: &Clients) -> Result<Option<(usize, usize)>, String> {
        let text = std::str::from_utf8(text).map_err(|e| e.to_string())?;
        if let Some(notice) = text.strip_prefix("* ") {
            if let Some(id) = notice.strip_suffix(" was disconnected: it stopped reading\n") {
                self.cut_off.push(id.parse().map_err(|_| shorten(text))?);
            }
            return Ok(None);
        }
        let sender: usize = text
            .split_once(": ")
            .and_then(|(_, said)| said.split_once(' '))
            .and_then(|(sender, _)| sender.parse().ok())
            .filter(|sender| (1..=SENDERS).contains(sender))
            .ok_or_else(|| format!("not a line from a sender: {}", shorten(text)))?;
        let seq = self.next[sender];
        let from = format!("{}: ", clients.ids.borrow()[sender]);
        let expected = clients.lines[sender].get(seq).map(String::as_str);
        if text.strip_prefix(&from) != expected {
            return Err(format!(
                "expected line {seq} of sender {sender} (client {from}), got {}",
                shorten(text)
            ));
        }
        self.next[sender] += 1;
        self.messages += 1;
        Ok(Some((sender, seq)))
    }
}

/// The start of a long line, for a message.
fn shorten(text: &str) -> String {
    format!("{:?}", text.get(..40).unwrap_or(text))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Reads the server's first line, `* you are N`, and returns `N`.
fn read_welcome(reader: &mut impl BufRead) -> io::Result<Id> {
    let mut welcome = String::new();
    reader.read_line(&mut welcome)?;
    welcome
        .strip_prefix("* you are ")
        .and_then(|id| id.trim_end().parse().ok())
        .ok_or_else(|| invalid(format!("unexpected welcome {welcome:?}")))
}

/// Client `index` (not the stalled one): joins, sends its lines if it is a
/// sender, and reads until it has every other sender's lines and the
/// announcement that the stalled client was disconnected.
fn client(addr: SocketAddr, index: usize, clients: &Clients) -> io::Result<Transcript> {
    let stream = TcpStream::connect(addr)?;
    let mut reader = BufReader::new(&stream);
    clients.ids.borrow_mut()[index] = read_welcome(&mut reader)?;
    clients.joined.done();
    let transcript = if (1..=SENDERS).contains(&index) {
        loom::fiber::scope(|s| {
            let sending = s.spawn(|| send(&stream, index, clients));
            let transcript = receive(&mut reader, (SENDERS - 1) * MESSAGES, clients)?;
            joined(sending.join())?;
            Ok::<_, io::Error>(transcript)
        })?
    } else {
        receive(&mut reader, SENDERS * MESSAGES, clients)?
    };
    clients.reading.done();
    clients.reading.wait()?;
    Ok(transcript)
}

/// Sends sender `index`'s lines once every client is in the room, each as
/// soon as a credit allows.
fn send(mut stream: &TcpStream, index: usize, clients: &Clients) -> io::Result<()> {
    clients.joined.wait()?;
    for line in &clients.lines[index] {
        clients.credits[index].acquire()?.forget();
        stream.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Reads lines until `expected` lines from senders and the stalled
/// client's disconnection have come.
fn receive(
    reader: &mut impl BufRead,
    expected: usize,
    clients: &Clients,
) -> io::Result<Transcript> {
    let stalled = clients.ids.borrow()[0];
    let mut transcript = Transcript::default();
    let mut text = Vec::new();
    while transcript.messages < expected || !transcript.cut_off.contains(&stalled) {
        text.clear();
        if reader.read_until(b'\n', &mut text)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the server hung up after {} of {expected} lines",
                    transcript.messages
                ),
            ));
        }
        if let Some((sender, seq)) = transcript.record(&text, clients).map_err(invalid)? {
            clients.arrived(sender, seq);
        }
    }
    Ok(transcript)
}

/// Reads what the stalled client was sent, to the end of its connection:
/// a prefix of each sender's lines, perhaps cut mid-line.
fn read_to_end(reader: &mut BufReader<TcpStream>, clients: &Clients) -> io::Result<Transcript> {
    // Its tiny window would have the server's kernel send the rest a few
    // KiB per window probe.
    set_receive_buffer(reader.get_ref(), DRAIN_RECEIVE_BUFFER)?;
    let mut transcript = Transcript::default();
    let mut text = Vec::new();
    loop {
        text.clear();
        match reader.read_until(b'\n', &mut text) {
            Ok(0) => return Ok(transcript),
            // Torn by the disconnection: the end must follow.
            Ok(_) if !text.ends_with(b"\n") => {}
            Ok(_) => {
                transcript.record(&text, clients).map_err(invalid)?;
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(transcript),
            Err(e) => return Err(e),
        }
    }
}

/// The result of a scoped fiber that returns an `io::Result`. A join cut
/// short (by the deadline, or cancellation) reports an `io::Error` as if it
/// were the fiber's panic: that is returned, a real panic resumed.
fn joined<T>(result: std::thread::Result<io::Result<T>>) -> io::Result<T> {
    match result {
        Ok(outcome) => outcome,
        Err(payload) => match payload.downcast::<io::Error>() {
            Ok(error) => Err(*error),
            Err(panic) => std::panic::resume_unwind(panic),
        },
    }
}

/// What the clients saw.
struct Outcome {
    /// The stalled client's number and transcript.
    stalled: (Id, Transcript),
    /// The others', by index (1..).
    others: Vec<Transcript>,
    /// From the first connection to the last client done.
    exchange: Duration,
    /// Reading the stalled client's connection to its end, afterwards.
    drain: Duration,
}

/// Runs the clients against the server at `addr`, all within
/// [`EXCHANGE_WITHIN`].
fn chat(addr: SocketAddr) -> io::Result<Outcome> {
    let outcome: io::Result<Outcome> = loom::time::with_timeout(EXCHANGE_WITHIN, || {
        let start = Instant::now();
        // Connects first, so that it is sent everything the others are.
        let stalled = TcpStream::connect(addr)?;
        set_receive_buffer(&stalled, STALLED_RECEIVE_BUFFER)?;
        let mut stalled = BufReader::new(stalled);
        let clients = Clients::new();
        clients.ids.borrow_mut()[0] = read_welcome(&mut stalled)?;
        let others = loom::fiber::scope(|s| {
            let clients = &clients;
            let handles: Vec<_> = (1..CLIENTS)
                .map(|index| s.spawn(move || client(addr, index, clients)))
                .collect();
            handles
                .into_iter()
                .enumerate()
                .map(|(i, handle)| {
                    joined(handle.join())
                        .map_err(|e| io::Error::new(e.kind(), format!("client {}: {e}", i + 1)))
                })
                .collect::<io::Result<Vec<_>>>()
        })?;
        let exchange = start.elapsed();
        let stalled = read_to_end(&mut stalled, &clients)
            .map_err(|e| io::Error::new(e.kind(), format!("the stalled client: {e}")))?;
        Ok(Outcome {
            stalled: (clients.ids.borrow()[0], stalled),
            others,
            exchange,
            drain: start.elapsed() - exchange,
        })
    });
    outcome.map_err(|e| match e.kind() {
        io::ErrorKind::TimedOut => io::Error::new(
            e.kind(),
            format!("{e} (everything has {EXCHANGE_WITHIN:?}: a client stalled the others?)"),
        ),
        _ => e,
    })
}

fn stalled_client_is_cut_off_and_others_get_everything(backend: Backend) {
    loom_tests::raise_fd_limit();
    let name = backend.name();
    let mut server = Server::start(name);
    let addr = server.addr;
    let outcome = loom::Runtime::builder()
        .backend(backend)
        .build()
        .unwrap()
        .run(move || chat(addr));
    let exit = server.stop();
    let log = format!(
        "server stdout:\n{}\nserver stderr:\n{}",
        exit.stdout, exit.stderr
    );
    let outcome = outcome.unwrap_or_else(|e| panic!("[{name}] {e}\n{log}"));

    let (stalled_id, stalled) = &outcome.stalled;
    let all = SENDERS * MESSAGES;
    assert!(
        stalled.messages < all,
        "[{name}] the stalled client was never cut off: it got all {all} lines\n{log}"
    );
    for (i, transcript) in outcome.others.iter().enumerate() {
        assert_eq!(
            transcript.cut_off,
            [*stalled_id],
            "[{name}] client {}: announced as disconnected\n{log}",
            i + 1
        );
    }
    assert!(exit.status.success(), "[{name}] {}\n{log}", exit.status);
    let cut_off_lines: Vec<_> = exit
        .stdout
        .lines()
        .filter(|line| line.contains("disconnected:"))
        .collect();
    assert_eq!(
        cut_off_lines,
        [format!(
            "chat: client {stalled_id} disconnected: its queue of {QUEUE} lines filled"
        )],
        "[{name}]\n{log}"
    );
    assert!(
        exit.stdout
            .contains(&format!("{CLIENTS} clients came, 1 disconnected")),
        "[{name}]\n{log}"
    );
    loom_tests::say(format_args!(
        "[{name}] {} clients got all {all} lines ({} KB each) in {:?}; the stalled client \
         was cut off after {} lines, and read them to the end in {:?}; the server exited \
         {:?} after SIGTERM",
        CLIENTS - 1,
        all * LINE_BYTES / 1000,
        outcome.exchange,
        stalled.messages,
        outcome.drain,
        exit.after
    ));
}

#[test]
fn stalled_client_is_cut_off_and_others_get_everything_on_io_uring() {
    if loom::Runtime::builder()
        .backend(Backend::IoUring)
        .build()
        .is_err()
    {
        loom_tests::say(format_args!("io_uring unavailable: skipped"));
        return;
    }
    stalled_client_is_cut_off_and_others_get_everything(Backend::IoUring);
}

#[test]
fn stalled_client_is_cut_off_and_others_get_everything_on_epoll() {
    stalled_client_is_cut_off_and_others_get_everything(Backend::Epoll);
}
