//! Read and write timeouts, exactly as std keeps them: socket state
//! (`SO_RCVTIMEO`, `SO_SNDTIMEO`), so a `try_clone` shares them both ways,
//! `into_std` hands them to std and `from_std` adopts the ones set there.
//!
//! loom's sockets never let the kernel apply them (on the poll backends a
//! socket is non-blocking; on io_uring the ring waits, not the socket), so
//! each read or write becomes an op with a deadline. To find the timeout
//! without a system call per read, the socket keeps a copy of the kernel's
//! value — the value the kernel reports back, rounded to its clock tick as
//! std's `read_timeout` shows it. Clones made with `try_clone` share one
//! copy (an `Rc`, made on the first clone). The copy is read from the
//! kernel when a socket is adopted from std; an accepted socket inherits
//! its listener's, as the kernel's copy does.
//!
//! The copy is not refreshed behind loom's back: a timeout set on the fd
//! outside loom while a loom socket holds it (with `setsockopt`, or through
//! a std handle made by `into_std` of another clone) is seen once the fd
//! comes back through `from_std`.
//!
//! A timeout bounds *waiting* only: data already there is returned however
//! short the timeout (the op is tried once even past its deadline).

use std::cell::{Cell, OnceCell};
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::op::Deadline;
use crate::sys::{set_socket_timeout, socket_timeout};

/// Which timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// `SO_RCVTIMEO`: reads, receives, accepts nothing (std's listeners
    /// have none).
    Read = 0,
    /// `SO_SNDTIMEO`: writes and sends.
    Write = 1,
}

impl Direction {
    fn option(self) -> i32 {
        match self {
            Direction::Read => libc::SO_RCVTIMEO,
            Direction::Write => libc::SO_SNDTIMEO,
        }
    }
}

type Pair = [Cell<Option<Duration>>; 2];

/// A socket's copy of its two timeouts; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Timeouts {
    own: Pair,
    /// Set once the socket has been cloned: the copy all clones share.
    shared: OnceCell<Rc<Pair>>,
}

impl Timeouts {
    /// Neither timeout set (a new socket's state).
    pub(crate) fn none() -> Timeouts {
        Timeouts::default()
    }

    /// What the kernel holds for `fd` (a socket adopted from std).
    pub(crate) fn from_kernel(fd: RawFd) -> io::Result<Timeouts> {
        let timeouts = Timeouts::none();
        for direction in [Direction::Read, Direction::Write] {
            timeouts.own[direction as usize].set(socket_timeout(fd, direction.option())?);
        }
        Ok(timeouts)
    }

    /// These values (read, write): a socket accepted on another loop.
    pub(crate) fn from_values(values: [Option<Duration>; 2]) -> Timeouts {
        let timeouts = Timeouts::none();
        for (own, value) in timeouts.own.iter().zip(values) {
            own.set(value);
        }
        timeouts
    }

    /// A copy of these values (an accepted socket's, from its listener).
    pub(crate) fn inherited(&self) -> Timeouts {
        let timeouts = Timeouts::none();
        for (own, from) in timeouts.own.iter().zip(self.pair()) {
            own.set(from.get());
        }
        timeouts
    }

    /// The copy for a clone of this socket: one both share from now on.
    pub(crate) fn share(&self) -> Timeouts {
        let shared = self
            .shared
            .get_or_init(|| Rc::new([Cell::new(self.own[0].get()), Cell::new(self.own[1].get())]));
        Timeouts {
            own: Pair::default(),
            shared: OnceCell::from(Rc::clone(shared)),
        }
    }

    fn pair(&self) -> &Pair {
        self.shared.get().map_or(&self.own, |shared| shared)
    }

    /// The timeout in `direction`.
    #[inline]
    pub(crate) fn get(&self, direction: Direction) -> Option<Duration> {
        self.pair()[direction as usize].get()
    }

    /// std's `set_read_timeout` / `set_write_timeout` on `fd`: `None`
    /// waits forever; zero is refused with `InvalidInput`.
    pub(crate) fn set(
        &self,
        fd: RawFd,
        direction: Direction,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        set_socket_timeout(fd, direction.option(), check_timeout(timeout)?)?;
        let kept = socket_timeout(fd, direction.option())?;
        self.pair()[direction as usize].set(kept);
        Ok(())
    }

    /// The deadline for one op in `direction`, failing with `WouldBlock`
    /// (`EAGAIN`) like std's socket timeouts on Unix.
    #[inline]
    pub(crate) fn deadline(&self, direction: Direction) -> Option<Deadline> {
        self.get(direction).and_then(|timeout| {
            Instant::now().checked_add(timeout).map(|at| Deadline {
                at,
                errno: libc::EAGAIN,
            })
        })
    }
}

/// A timeout as std accepts it: `None` blocks forever, zero is refused
/// (`InvalidInput`).
pub(crate) fn check_timeout(timeout: Option<Duration>) -> io::Result<Option<Duration>> {
    if timeout == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    Ok(timeout)
}

/// The read and write timeouts, as methods of a socket type with a
/// `socket: Socket` field; expands inside its `impl` block.
macro_rules! timeouts {
    () => {
        /// Bounds every later read or receive: one that waits longer fails
        /// with `WouldBlock`; `None` waits forever. Data already waiting is
        /// returned however short the timeout. The timeout is socket state
        /// (`SO_RCVTIMEO`), as in std: clones made with `try_clone` share
        /// it, and `into_std`/`from_std` carry it over.
        ///
        /// # Errors
        /// `InvalidInput` for a zero duration, like std.
        pub fn set_read_timeout(
            &self,
            timeout: Option<std::time::Duration>,
        ) -> std::io::Result<()> {
            self.socket
                .set_timeout(crate::net::timeout::Direction::Read, timeout)
        }

        /// The read timeout, as the kernel keeps it (Linux rounds it up to
        /// its clock tick), like std's.
        pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.socket.timeout(crate::net::timeout::Direction::Read))
        }

        /// Bounds every later write or send; see
        /// [`set_read_timeout`](Self::set_read_timeout) (`SO_SNDTIMEO`).
        ///
        /// # Errors
        /// `InvalidInput` for a zero duration, like std.
        pub fn set_write_timeout(
            &self,
            timeout: Option<std::time::Duration>,
        ) -> std::io::Result<()> {
            self.socket
                .set_timeout(crate::net::timeout::Direction::Write, timeout)
        }

        /// The write timeout, as the kernel keeps it.
        pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.socket.timeout(crate::net::timeout::Direction::Write))
        }
    };
}
pub(crate) use timeouts;
