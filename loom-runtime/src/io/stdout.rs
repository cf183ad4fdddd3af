//! [`Stdout`] and [`Stderr`]: unbuffered, each stream behind a
//! process-wide lock, with `write!` sent as few writes as its length
//! allows.

use std::fmt;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::stdio::{self, Stream};
use crate::sync::{Mutex, MutexGuard};

/// How much of one `write!` is gathered before it is written: a line of
/// ordinary length goes out in a single `write(2)`.
const GATHER: usize = 1024;

static STDOUT: LazyLock<StreamLock> = LazyLock::new(StreamLock::default);
static STDERR: LazyLock<StreamLock> = LazyLock::new(StreamLock::default);

/// An output stream's process-wide lock, re-entrant for its holder — a
/// fiber, or a plain thread — as std's stdout lock is, so a fiber holding
/// [`Stdout::lock`] can still `writeln!(stdout(), ..)` from code it calls.
#[derive(Default)]
struct StreamLock {
    mutex: Mutex<()>,
    /// The holder's identity (see [`holder`]) while `mutex` is held, else 0.
    owner: AtomicUsize,
}

/// Who is asking for a lock: the running fiber's control block, or (in a
/// plain thread, or in loop code) a thread-local's address — both unique
/// among the holders alive at one time.
fn holder() -> usize {
    thread_local! {
        static THREAD: u8 = const { 0 };
    }
    match crate::rt::current::try_with_current(|lp| lp.sched.current()) {
        Some(Some(fiber)) => fiber.as_ptr() as usize,
        _ => THREAD.with(|mark| std::ptr::from_ref(mark) as usize),
    }
}

/// A taken [`StreamLock`].
enum Held {
    /// The outermost lock of its holder, which releases the stream.
    Outer {
        _guard: MutexGuard<'static, ()>,
        owner: &'static AtomicUsize,
    },
    /// Taken again by the holder of an `Outer`.
    Nested,
    /// The fiber was cancelled, or its call-tree deadline passed, while
    /// it waited for the lock: the error every call then returns, kept as
    /// its errno so that making it again allocates nothing.
    Refused(i32),
}

impl StreamLock {
    fn lock(&'static self) -> Held {
        let me = holder();
        // Relaxed: only this holder ever stores its own identity (while it
        // holds the mutex) and clears it before releasing, so reading its
        // own identity here can only mean it holds the lock now.
        if self.owner.load(Ordering::Relaxed) == me {
            return Held::Nested;
        }
        match self.mutex.lock() {
            Ok(guard) => {
                self.owner.store(me, Ordering::Relaxed);
                Held::Outer {
                    _guard: guard,
                    owner: &self.owner,
                }
            }
            Err(e) => Held::Refused(e.raw_os_error().unwrap_or(libc::ETIMEDOUT)),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Held::Outer { owner, .. } = self {
            // Before the guard (a field, dropped after this) releases the
            // mutex.
            owner.store(0, Ordering::Relaxed);
        }
    }
}

/// Writes `bytes` to `stream`, all of it unless an error stops it.
fn write_all(stream: Stream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match stdio::write(stream, bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `write!` on a locked stream: the pieces `format_args!` produces are
/// gathered on the stack and written together, so one formatted line is
/// one write — whole on a pipe or terminal even beside other writers
/// (std's `println!`, other processes), as std's line buffering gives.
fn write_fmt(stream: Stream, args: fmt::Arguments<'_>) -> io::Result<()> {
    if let Some(text) = args.as_str() {
        return write_all(stream, text.as_bytes());
    }
    struct Gather {
        stream: Stream,
        buf: [u8; GATHER],
        len: usize,
        error: Option<io::Error>,
    }
    impl Gather {
        fn flush(&mut self) -> io::Result<()> {
            let len = std::mem::take(&mut self.len);
            write_all(self.stream, &self.buf[..len])
        }
    }
    impl fmt::Write for Gather {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let result = if self.len + s.len() <= GATHER {
                self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
                self.len += s.len();
                Ok(())
            } else {
                // Too long to gather: what was gathered, then this piece.
                self.flush()
                    .and_then(|()| write_all(self.stream, s.as_bytes()))
            };
            result.map_err(|e| {
                self.error = Some(e);
                fmt::Error
            })
        }
    }
    let mut gather = Gather {
        stream,
        buf: [0; GATHER],
        len: 0,
        error: None,
    };
    match fmt::write(&mut gather, args) {
        Ok(()) => gather.flush(),
        Err(_) => Err(gather
            .error
            .unwrap_or_else(|| io::Error::other("formatter error"))),
    }
}

/// The handle, lock and constructor of one output stream; `Stdout` and
/// `Stderr` differ only in their fd, lock and names.
macro_rules! output {
    (
        $handle:ident, $lock:ident, $ctor:ident, $stream:expr, $mutex:ident,
        $name:literal, $std:literal, $example:literal
    ) => {
        #[doc = concat!("A handle to the process's ", $name, ", made by [`", stringify!($ctor), "`].")]
        ///
        /// Writes park only the calling fiber while the pipe, socket or
        /// terminal is full; see the [module documentation](crate::io) for
        /// how on each backend and file type.
        ///
        /// **Unbuffered**: each `write` is one `write(2)` (std's stdout
        /// buffers a line; its stderr does not buffer either), so nothing
        /// is ever left behind at exit or on a crash, and `flush` has
        /// nothing to do. A `write!`/`writeln!` is gathered (up to 1 KiB)
        /// and written at once, so a formatted line costs one system call,
        /// as with std's line buffering, and stays whole. Code making many
        /// small `write` calls can wrap the lock in a
        /// [`BufWriter`](std::io::BufWriter).
        ///
        #[doc = concat!("Each call holds the stream's process-wide lock, so a `write!` or a `write_all` is never interleaved with another fiber's (or thread's) writes to it through loom; [`", stringify!($handle), "::lock`] holds it across calls. Writes through std's `", $std, "` (`println!`, `eprintln!`) go to the same fd without that lock; see the module documentation.")]
        ///
        /// # Examples
        ///
        /// ```
        /// use std::io::Write;
        ///
        /// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
        #[doc = concat!("    let mut out = loom::io::", stringify!($ctor), "();")]
        #[doc = concat!("    writeln!(out, \"", $example, " {}\", 42)?;")]
        ///     out.flush()
        /// })?;
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub struct $handle {
            _private: (),
        }

        #[doc = concat!("A locked [`", stringify!($handle), "`], made by [`", stringify!($handle), "::lock`]: the stream is this fiber's until it is dropped.")]
        ///
        /// If the fiber was cancelled while waiting for the lock, the lock
        /// holds nothing and every write returns the cancellation error
        /// ([`crate::fiber::is_cancelled`]); if its call-tree deadline
        /// ([`crate::time::with_deadline`]) passed, `TimedOut`.
        pub struct $lock<'a> {
            held: Held,
            _stream: std::marker::PhantomData<&'a ()>,
        }

        #[doc = concat!("A handle to the process's ", $name, "; see [`", stringify!($handle), "`].")]
        ///
        /// # Examples
        ///
        /// ```
        /// use std::io::Write;
        ///
        /// loom::Runtime::builder().build()?.run(|| {
        #[doc = concat!("    loom::io::", stringify!($ctor), "().write_all(b\"", $example, "\\n\")")]
        /// })?;
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub fn $ctor() -> $handle {
            $handle { _private: () }
        }

        impl $handle {
            /// Locks the stream for this fiber (waiting for another
            /// holder), so a series of writes comes out together.
            ///
            /// The lock is re-entrant, as std's is: the fiber holding it
            #[doc = concat!("may still write through another `", stringify!($handle), "` handle.")]
            ///
            /// # Examples
            ///
            /// ```
            /// use std::io::Write;
            ///
            /// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
            #[doc = concat!("    let mut out = loom::io::", stringify!($ctor), "().lock();")]
            #[doc = concat!("    out.write_all(b\"", $example, ", \")?;")]
            ///     out.write_all(b"all together\n")
            /// })?;
            /// # Ok::<(), std::io::Error>(())
            /// ```
            #[track_caller]
            pub fn lock(&self) -> $lock<'static> {
                $lock {
                    held: $mutex.lock(),
                    _stream: std::marker::PhantomData,
                }
            }
        }

        impl Write for &$handle {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.lock().write(buf)
            }

            fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
                self.lock().write_all(buf)
            }

            fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> io::Result<()> {
                self.lock().write_fmt(args)
            }

            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        impl Write for $handle {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                (&*self).write(buf)
            }

            fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
                (&*self).write_all(buf)
            }

            fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> io::Result<()> {
                (&*self).write_fmt(args)
            }

            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        impl $lock<'_> {
            fn check(&self) -> io::Result<()> {
                match self.held {
                    Held::Refused(errno) => Err(io::Error::from_raw_os_error(errno)),
                    Held::Outer { .. } | Held::Nested => Ok(()),
                }
            }
        }

        impl Write for $lock<'_> {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.check()?;
                stdio::write($stream, buf)
            }

            fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
                self.check()?;
                write_all($stream, buf)
            }

            fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> io::Result<()> {
                self.check()?;
                write_fmt($stream, args)
            }

            fn flush(&mut self) -> io::Result<()> {
                self.check()
            }
        }

        impl AsRawFd for $handle {
            fn as_raw_fd(&self) -> RawFd {
                $stream.fd()
            }
        }

        impl AsFd for $handle {
            fn as_fd(&self) -> BorrowedFd<'_> {
                // SAFETY: the stdio fds belong to the process for its whole
                // life (or are not open, which any call on them reports);
                // std's own handles borrow them the same way.
                unsafe { BorrowedFd::borrow_raw($stream.fd()) }
            }
        }

        impl AsRawFd for $lock<'_> {
            fn as_raw_fd(&self) -> RawFd {
                $stream.fd()
            }
        }

        impl AsFd for $lock<'_> {
            fn as_fd(&self) -> BorrowedFd<'_> {
                // SAFETY: as for the handle.
                unsafe { BorrowedFd::borrow_raw($stream.fd()) }
            }
        }

        impl fmt::Debug for $handle {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($handle)).finish_non_exhaustive()
            }
        }

        impl fmt::Debug for $lock<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($lock))
                    .field("locked", &!matches!(self.held, Held::Refused(_)))
                    .finish_non_exhaustive()
            }
        }
    };
}

output!(
    Stdout,
    StdoutLock,
    stdout,
    Stream::Out,
    STDOUT,
    "standard output",
    "std::io::stdout",
    "hello from a fiber"
);
output!(
    Stderr,
    StderrLock,
    stderr,
    Stream::Err,
    STDERR,
    "standard error",
    "std::io::stderr",
    "a note from a fiber"
);
