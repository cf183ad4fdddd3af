//! The floors: echo servers with no runtime at all, written directly on
//! the kernel interfaces the runtimes under test use — what the kernel
//! allows, against which every runtime's server CPU per message is
//! compared (`cpu_vs_raw_io_uring`, `cpu_vs_raw_epoll`).
//!
//! * [`uring`] — `raw-io_uring`: one ring, recv / send / accept SQEs, one
//!   `io_uring_enter` per loop turn.
//! * [`epoll`] — `raw-epoll`: edge-triggered epoll, non-blocking
//!   `read` / `write`, one `epoll_wait` per loop turn.
//!
//! Both are single-threaded (`servers::serve` refuses them more than one
//! server thread, with [`io::ErrorKind::Unsupported`]), keep one [`SERVER_BUF`] buffer per
//! connection in a slab indexed by connection number, set `TCP_NODELAY`,
//! echo every byte back (finishing short writes before reading again),
//! close a connection on EOF or any error on it, and run forever.
//!
//! [`SERVER_BUF`]: super::SERVER_BUF

pub mod epoll;
pub mod uring;

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};

/// `listen(2)` backlog of the floors' listeners (the kernel caps it at
/// `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// Binds `127.0.0.1:0` with a [`BACKLOG`]-deep accept queue.
fn listener() -> io::Result<TcpListener> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    // Listening again on a listening socket only changes its backlog.
    // SAFETY: plain syscall on a socket the listener owns.
    if unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(listener)
}

/// Sets `TCP_NODELAY` on socket `fd`.
fn set_nodelay(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a live c_int and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A slab of connections: slot `i` holds connection `i` or is free; freed
/// slots are reused first.
#[derive(Debug)]
struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Slab<T> {
    fn new() -> Slab<T> {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Stores `value`; returns its index.
    fn insert(&mut self, value: T) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(value);
                i
            }
            None => {
                self.slots.push(Some(value));
                self.slots.len() - 1
            }
        }
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.slots.get_mut(i).and_then(Option::as_mut)
    }

    /// Removes (drops) the value at `i`.
    fn remove(&mut self, i: usize) {
        if self.slots.get_mut(i).and_then(Option::take).is_some() {
            self.free.push(i);
        }
    }
}
