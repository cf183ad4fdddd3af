//! A line-based chat server: every line a client sends goes to every other
//! client, prefixed with the sender's number.
//!
//! ```sh
//! cargo run --release --example chat -- 127.0.0.1:7000 [--queue LINES] [--send-buffer BYTES]
//! # then, in two or more other terminals:
//! nc 127.0.0.1 7000
//! ```
//!
//! SIGTERM or Ctrl-C stops the server (exit status 0): it stops accepting
//! and hangs up on every client.
//!
//! # Protocol
//!
//! Lines end with `\n` and hold at most 4 KiB (`MAX_LINE`); a longer one
//! ends the connection. The server sends:
//!
//! - `* you are N`, first, to a newcomer: its number;
//! - `N: text` for each line `text` that client `N` sends (never to `N`
//!   itself), in the order `N` sent them;
//! - notices: `* N joined`, `* N left`, `* N was disconnected: it stopped
//!   reading`. These are best-effort: a client whose queue is full when
//!   one is made misses it.
//!
//! # Back-pressure
//!
//! Each client has a reader fiber, which reads its lines and queues each
//! for every other client, and a writer fiber, which writes its own queue
//! to its socket. The queues are bounded (`--queue`, default 256 lines)
//! and a line is queued with `try_send`, which never waits: a client whose
//! queue is full is disconnected on the spot, and the others are told. So
//! a client that stops reading (or reads more slowly than the room talks)
//! costs at most its queue and its socket buffers, and never slows anyone
//! else. The alternatives are worse: waiting for room would stall the
//! sender's reader, and with it every other client's view of that sender;
//! dropping lines for the slow client would keep it connected with a
//! transcript that silently has holes.
//!
//! A queue has to hold what reaches a client while its writer's last
//! write is in flight. A reader queues one line, then lets the other
//! fibers run, so that is about a line per client speaking at the moment,
//! plus a few dozen from a client pasting a long burst (until the loop
//! next polls for I/O): the default suits rooms where up to a couple of
//! hundred clients may speak at once.
//!
//! The kernel's send buffer is a queue too, and Linux grows it to 4 MiB
//! (`net.ipv4.tcp_wmem`) for a client on a fast link before this server's
//! queue would even start to fill. `--send-buffer` (default 64 KiB, 0 for
//! the kernel's own) caps it, so that a stalled client is found after
//! about that much, not after megabytes.
//!
//! The server runs one loop: the room is a `RefCell`, the queues are the
//! single-loop channels of `loom::sync::local`, and a line is one `Rc<[u8]>`
//! shared by every queue it is in.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use loom::fiber::{Scope, is_cancelled};
use loom::net::{TcpListener, TcpStream};
use loom::signal::{SIGINT, SIGTERM, Signals};
use loom::sync::local::mpsc::{self, Receiver, Sender, TrySendError};

/// The longest line a client may send, its `\n` included.
const MAX_LINE: usize = 4096;
/// Lines a client's queue holds unless `--queue` says otherwise (see
/// "Back-pressure" above).
const DEFAULT_QUEUE: usize = 256;
/// The kernel send buffer per client unless `--send-buffer` says otherwise.
const DEFAULT_SEND_BUFFER: usize = 64 * 1024;
/// The most lines one write takes: Linux's limit on the buffers of one
/// `writev` (`IOV_MAX`).
const MAX_BATCH: usize = 1024;

/// A client's number, given in order of arrival.
type Id = u64;
/// A line as the queues hold it: allocated once, shared by every queue.
type Line = Rc<[u8]>;

/// Command-line options.
struct Options {
    addr: String,
    /// Capacity of each client's queue, in lines.
    queue: usize,
    /// `SO_SNDBUF` for each client's socket; 0 leaves the kernel's own.
    send_buffer: usize,
}

impl Options {
    /// Reads `[ADDR] [--queue LINES] [--send-buffer BYTES]`.
    fn parse() -> io::Result<Options> {
        let mut options = Options {
            addr: "127.0.0.1:7000".to_owned(),
            queue: DEFAULT_QUEUE,
            send_buffer: DEFAULT_SEND_BUFFER,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--queue" => options.queue = number(&arg, args.next())?,
                "--send-buffer" => options.send_buffer = number(&arg, args.next())?,
                _ if !arg.starts_with("--") => options.addr = arg,
                _ => return Err(usage(format_args!("unknown option {arg}"))),
            }
        }
        if options.queue == 0 {
            return Err(usage(format_args!("--queue needs at least 1")));
        }
        Ok(options)
    }
}

/// The value of option `name`, a number.
fn number(name: &str, value: Option<String>) -> io::Result<usize> {
    value
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| usage(format_args!("{name} needs a number")))
}

/// An error saying what is wrong with the command line, and what is right.
fn usage(problem: fmt::Arguments<'_>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{problem}; usage: chat [ADDR] [--queue LINES] [--send-buffer BYTES]"),
    )
}

/// A client as the room knows it.
struct Client {
    /// Its queue; dropping it ends the client's writer once the lines
    /// already queued are written.
    queue: Sender<Line>,
    /// Its socket, for hanging up on it from another client's fiber.
    stream: Rc<TcpStream>,
}

/// The clients connected, and what happened to them so far.
struct Room {
    /// Who is in. Never borrowed across a blocking call, so a fiber that
    /// blocks while another uses the room cannot make it panic.
    clients: RefCell<HashMap<Id, Client>>,
    /// Capacity of each client's queue.
    queue: usize,
    /// The next newcomer's number; also how many came so far.
    next_id: Cell<Id>,
    /// Clients disconnected because their queue filled.
    cut_off: Cell<u64>,
}

impl Room {
    /// An empty room whose clients' queues hold `queue` lines each.
    fn new(queue: usize) -> Room {
        Room {
            clients: RefCell::new(HashMap::new()),
            queue,
            next_id: Cell::new(0),
            cut_off: Cell::new(0),
        }
    }

    /// Lets a client in: gives it a number and a queue, which already
    /// holds its welcome line, and tells the others.
    fn join(&self, stream: Rc<TcpStream>) -> (Id, Receiver<Line>) {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (queue, receiver) = mpsc::channel(self.queue);
        // Cannot fail: the queue is new, and holds at least one line.
        let _ = queue.try_send(notice(format_args!("you are {id}")));
        self.clients
            .borrow_mut()
            .insert(id, Client { queue, stream });
        self.announce(id, format_args!("{id} joined"));
        (id, receiver)
    }

    /// Queues `text`, a line client `id` sent, for everyone else. Returns
    /// `false` if `id` is no longer in the room (it was disconnected while
    /// its reader still had lines in hand), and queues nothing then.
    fn say(&self, id: Id, text: &[u8]) -> bool {
        if !self.clients.borrow().contains_key(&id) {
            return false;
        }
        let mut line = Vec::with_capacity(text.len() + 24);
        let _ = write!(line, "{id}: ");
        line.extend_from_slice(text);
        self.broadcast(id, line.into());
        true
    }

    /// Takes client `id` out of the room, if it is still in, hangs up on
    /// it and tells the others.
    fn leave(&self, id: Id) {
        let client = self.clients.borrow_mut().remove(&id);
        if let Some(client) = client {
            hang_up(client);
            self.announce(id, format_args!("{id} left"));
        }
    }

    /// Queues `line` for every client but `from`, without ever waiting: a
    /// client whose queue is full is disconnected instead.
    fn broadcast(&self, from: Id, line: Line) {
        for (id, client) in self.deliver(from, &line) {
            println!(
                "chat: client {id} disconnected: its queue of {} lines filled",
                self.queue
            );
            self.cut_off.set(self.cut_off.get() + 1);
            hang_up(client);
            self.announce(
                id,
                format_args!("{id} was disconnected: it stopped reading"),
            );
        }
    }

    /// Queues `line` for every client but `from`; takes the clients whose
    /// queue is full out of the room and returns them.
    fn deliver(&self, from: Id, line: &Line) -> Vec<(Id, Client)> {
        let mut clients = self.clients.borrow_mut();
        let mut full = Vec::new();
        for (&id, client) in clients.iter() {
            if id == from {
                continue;
            }
            match client.queue.try_send(Rc::clone(line)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => full.push(id),
                // Its writer is gone: its fibers are on their way out and
                // take it out of the room themselves.
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
        full.into_iter()
            .filter_map(|id| clients.remove(&id).map(|client| (id, client)))
            .collect()
    }

    /// Queues a notice about client `about` for everyone else who has room
    /// for it. Notices are not worth disconnecting anyone for: when a crowd
    /// leaves at once, each of its readers announces its leaving before the
    /// writers of those who stay get a turn, which could fill their queues
    /// with no fault of theirs.
    fn announce(&self, about: Id, text: fmt::Arguments<'_>) {
        let line = notice(text);
        for (&id, client) in self.clients.borrow().iter() {
            if id != about {
                let _ = client.queue.try_send(Rc::clone(&line));
            }
        }
    }
}

/// A line from the server itself.
fn notice(text: fmt::Arguments<'_>) -> Line {
    format!("* {text}\n").into_bytes().into()
}

/// Ends a client's connection, from whichever fiber: its writer finds its
/// queue gone, or its write failing; its reader reads end of file; the
/// client reads what the kernel already holds for it, then end of file.
fn hang_up(client: Client) {
    drop(client.queue);
    // An error means the connection is already down, which is the goal.
    let _ = client.stream.shutdown(Shutdown::Both);
}

/// Serves one client until it leaves or is disconnected: its reader in
/// this fiber, its writer in a second one.
fn serve_client(room: &Room, stream: TcpStream, send_buffer: usize) {
    if let Err(e) = configure(&stream, send_buffer) {
        eprintln!("chat: setting up a connection: {e}");
        return;
    }
    let stream = Rc::new(stream);
    let (id, queue) = room.join(Rc::clone(&stream));
    loom::fiber::scope(|s| {
        s.spawn(|| {
            let written = write_queue(&stream, &queue);
            // Writing failed (or the client was let go): stop reading too.
            room.leave(id);
            report(id, written);
        });
        let read = read_lines(room, id, &stream);
        room.leave(id);
        report(id, read);
    });
}

/// Sets a connection up for chat: small lines sent at once, and a kernel
/// send buffer of `send_buffer` bytes (0: the kernel's own).
fn configure(stream: &TcpStream, send_buffer: usize) -> io::Result<()> {
    stream.set_nodelay(true)?;
    if send_buffer > 0 {
        cap_send_buffer(stream, send_buffer)?;
    }
    Ok(())
}

/// Sets `SO_SNDBUF`, which `loom::net::TcpStream` (like std's) has no
/// method for. Linux doubles the value for its bookkeeping and stops
/// growing the buffer by itself.
fn cap_send_buffer(stream: &TcpStream, bytes: usize) -> io::Result<()> {
    let bytes = libc::c_int::try_from(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "--send-buffer is too large"))?;
    // SAFETY: the descriptor is `stream`'s, open while it is borrowed;
    // setsockopt reads `size_of::<c_int>()` bytes at the pointer, which
    // points at `bytes`, alive for the call.
    let status = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
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

/// Says each line the client sends, until it closes, sends a line that is
/// too long, or is no longer in the room.
fn read_lines(room: &Room, id: Id, stream: &TcpStream) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::with_capacity(MAX_LINE);
    loop {
        line.clear();
        let n = reader
            .by_ref()
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        if !line.ends_with(b"\n") {
            if n == MAX_LINE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a line longer than {MAX_LINE} bytes"),
                ));
            }
            // The last line, ended by the end of the stream.
            line.push(b'\n');
        }
        if !room.say(id, &line) {
            return Ok(());
        }
        // Lines already read in would otherwise all be queued before any
        // writer runs: a client pasting a burst would fill every queue by
        // itself. Queue one, then let the other fibers, writers among
        // them, run.
        if !reader.buffer().is_empty() {
            loom::yield_now();
        }
    }
}

/// Writes the client's queue to its socket, every line waiting (up to
/// `MAX_BATCH`) in one write, until the queue is dropped (the client left or was disconnected)
/// or a write fails. Taking them all matters: lines arrive while a write is
/// in flight, and a writer that took fewer than that per write would fall
/// further behind with every write, however fast its client reads.
fn write_queue(stream: &TcpStream, queue: &Receiver<Line>) -> io::Result<()> {
    let mut batch = Vec::new();
    while let Ok(first) = queue.recv() {
        batch.push(first);
        batch.extend(queue.try_iter().take(MAX_BATCH - 1));
        write_lines(stream, &batch)?;
        batch.clear();
    }
    Ok(())
}

/// Writes `lines` whole, in as few system calls as the kernel allows, with
/// no copy into a buffer of our own (`Write::write_all_vectored` is not
/// stable yet).
fn write_lines(mut stream: &TcpStream, lines: &[Line]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = lines.iter().map(|line| IoSlice::new(line)).collect();
    let mut unwritten = &mut slices[..];
    while !unwritten.is_empty() {
        match stream.write_vectored(unwritten)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => IoSlice::advance_slices(&mut unwritten, n),
        }
    }
    Ok(())
}

/// Reports how a client's reader or writer ended, if worth a line: not a
/// shutdown, nor the connection going down, which is how clients leave.
fn report(id: Id, outcome: io::Result<()>) {
    if let Err(e) = outcome {
        let ordinary = is_cancelled(&e)
            || matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::NotConnected
            );
        if !ordinary {
            eprintln!("chat: client {id}: {e}");
        }
    }
}

/// Accepts clients until cancelled, each served by a fiber of `s`.
fn accept_loop<'scope>(
    s: &'scope Scope<'scope, '_>,
    listener: &'scope TcpListener,
    room: &'scope Room,
    send_buffer: usize,
) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                s.spawn(move || serve_client(room, stream, send_buffer));
            }
            Err(e) if is_cancelled(&e) => return,
            // Out of descriptors and the like: accept backs off by itself.
            Err(e) => eprintln!("chat: accept: {e}"),
        }
    }
}

/// Runs the chat server until SIGTERM or SIGINT.
fn serve(options: &Options) -> io::Result<()> {
    // First, so that a signal from here on is ours.
    let signals = Signals::new(&[SIGTERM, SIGINT])?;
    let listener = TcpListener::bind(&options.addr)?;
    println!("chat: listening on {}", listener.local_addr()?);
    let room = Room::new(options.queue);
    let stopped_by = loom::fiber::scope(|s| {
        s.spawn(|| accept_loop(s, &listener, &room, options.send_buffer));
        let signal = signals.recv();
        // Every client's reader and writer end with the cancellation
        // error, and the scope waits for them.
        s.cancel();
        signal
    })?;
    println!(
        "chat: signal {stopped_by}: stopped; {} clients came, {} disconnected for not reading",
        room.next_id.get(),
        room.cut_off.get()
    );
    Ok(())
}

/// One loop is plenty: the work per line is a few queue operations per
/// client, and one loop needs no locks.
fn main() -> io::Result<()> {
    loom_examples::init_logging();
    let options = Options::parse()?;
    loom::Runtime::builder()
        .build()?
        .run(move || serve(&options))
}
