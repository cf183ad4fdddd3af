//! `raw-epoll`: the echo server on bare epoll (libc, not mio), no
//! runtime.
//!
//! One thread, one epoll instance, edge-triggered, non-blocking sockets.
//! The listener accepts until `EAGAIN` on every edge; each connection gets
//! a slab slot with its [`SERVER_BUF`] buffer and is registered for
//! `EPOLLIN | EPOLLET` under its slot number. On an edge the connection
//! reads and writes back what it read, and reads again only while a read
//! filled the whole buffer (a short read means the socket was drained, and
//! the next arrival raises a new edge). A write that hits `EAGAIN` keeps
//! the unsent rest, adds `EPOLLOUT` to the registration, and resumes on
//! that edge (taking `EPOLLOUT` off again once the rest is out). EOF or any
//! error closes the connection (closing the fd removes it from epoll).
//!
//! One `epoll_wait` per loop turn, with room for `MAX_EVENTS` events. An
//! event for a slot closed and reused earlier in the same batch reaches
//! the new connection, which then just finds nothing to read.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::super::SERVER_BUF;
use super::super::servers::Report;
use super::{Slab, listener};

/// Events one `epoll_wait` can return.
const MAX_EVENTS: usize = 4096;

/// The listener's token (connections use their slot number).
const LISTENER: u64 = u64::MAX;

/// Readiness that may mean there is something to read (or an EOF / error
/// to find by reading).
const READ_READY: u32 = (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLRDHUP) as u32;

/// What [`Conn::pump`] left the connection waiting for.
enum Wait {
    /// The next read edge.
    Readable,
    /// Room to write the rest of the echo.
    Writable,
}

/// One connection: its socket and its buffer, `len` bytes of which were
/// read and `sent` of those echoed so far.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    buf: Box<[u8]>,
    len: usize,
    sent: usize,
    /// Whether the socket may hold unread data (since the last edge).
    unread: bool,
    /// Whether the registration includes `EPOLLOUT`.
    want_out: bool,
}

impl Conn {
    /// Writes what is pending and reads and echoes until the socket is
    /// drained or full. `Ok(None)` at EOF.
    fn pump(&mut self) -> io::Result<Option<Wait>> {
        loop {
            while self.sent < self.len {
                match self.stream.write(&self.buf[self.sent..self.len]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => self.sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Ok(Some(Wait::Writable));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if !self.unread {
                return Ok(Some(Wait::Readable));
            }
            match self.stream.read(&mut self.buf) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    self.len = n;
                    self.sent = 0;
                    self.unread = n == self.buf.len();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.unread = false;
                    return Ok(Some(Wait::Readable));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// `epoll_ctl(op)` of `fd` for `events` under `token`.
fn ctl(epoll: &OwnedFd, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
    let mut event = libc::epoll_event { events, u64: token };
    // SAFETY: `event` is a live epoll_event; both fds are open (the caller
    // owns them).
    if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd, &mut event) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

const IN: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
const IN_OUT: u32 = IN | libc::EPOLLOUT as u32;

/// The epoll instance, the listener and the connections.
struct Server {
    epoll: OwnedFd,
    listener: TcpListener,
    conns: Slab<Conn>,
}

impl Server {
    /// Accepts until the queue is empty.
    fn accept_all(&mut self) -> io::Result<()> {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _peer)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ECONNABORTED, EMFILE, ...: drop this one, keep serving.
                Err(e) => {
                    eprintln!("raw-epoll: accept failed: {e}");
                    return Ok(());
                }
            };
            stream.set_nonblocking(true)?;
            stream.set_nodelay(true)?;
            let fd = stream.as_raw_fd();
            let index = self.conns.insert(Conn {
                stream,
                buf: vec![0; SERVER_BUF].into_boxed_slice(),
                len: 0,
                sent: 0,
                unread: true,
                want_out: false,
            });
            // Registering reports data that is already there.
            if let Err(e) = ctl(&self.epoll, libc::EPOLL_CTL_ADD, fd, IN, index as u64) {
                self.conns.remove(index);
                return Err(e);
            }
        }
    }

    /// Handles readiness `events` of connection `index`.
    fn ready(&mut self, index: usize, events: u32) {
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        if events & READ_READY != 0 {
            conn.unread = true;
        }
        let wait = match conn.pump() {
            Ok(Some(wait)) => wait,
            Ok(None) | Err(_) => {
                self.conns.remove(index);
                return;
            }
        };
        let want_out = matches!(wait, Wait::Writable);
        if want_out != conn.want_out {
            let fd = conn.stream.as_raw_fd();
            let events = if want_out { IN_OUT } else { IN };
            if ctl(&self.epoll, libc::EPOLL_CTL_MOD, fd, events, index as u64).is_err() {
                self.conns.remove(index);
                return;
            }
            conn.want_out = want_out;
        }
    }
}

/// Runs the `raw-epoll` echo server forever (see the module docs).
///
/// # Errors
///
/// Failing to bind or to create the epoll instance; a failing `epoll_wait`.
pub fn serve(report: Report) -> io::Result<()> {
    let listener = listener()?;
    listener.set_nonblocking(true)?;
    // SAFETY: plain syscall; the fd it returns is owned right below.
    let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `epfd` is a new fd nobody else owns.
    let epoll = unsafe { OwnedFd::from_raw_fd(epfd) };
    let events = (libc::EPOLLIN | libc::EPOLLET) as u32;
    ctl(
        &epoll,
        libc::EPOLL_CTL_ADD,
        listener.as_raw_fd(),
        events,
        LISTENER,
    )?;
    let port = listener.local_addr()?.port();
    let mut server = Server {
        epoll,
        listener,
        conns: Slab::new(),
    };
    report(port);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
    loop {
        // SAFETY: `events` has room for MAX_EVENTS entries, the count
        // passed; the epoll fd is open.
        let n = unsafe {
            libc::epoll_wait(
                server.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                MAX_EVENTS as libc::c_int,
                -1,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in &events[..n as usize] {
            // Copies: `epoll_event` is packed on x86-64.
            let (token, ready) = (event.u64, event.events);
            if token == LISTENER {
                server.accept_all()?;
            } else {
                server.ready(token as usize, ready);
            }
        }
    }
}
