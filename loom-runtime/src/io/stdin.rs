//! [`Stdin`]: std's shape — one process-wide buffer behind a lock — with
//! reads that park only the calling fiber.

use std::fmt;
use std::io::{self, BufRead, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::LazyLock;

use super::stdio::{self, Stream};
use crate::sync::{Mutex, MutexGuard};

/// std's stdin buffer size: a read fetches up to this much.
const CAPACITY: usize = 8 * 1024;

/// The bytes read from fd 0 and not yet consumed, shared by every handle
/// on every loop, so a handle dropped with data left in the buffer loses
/// nothing.
#[derive(Default)]
struct Buffer {
    /// Allocated on first read.
    data: Vec<u8>,
    pos: usize,
    filled: usize,
}

static BUFFER: LazyLock<Mutex<Buffer>> = LazyLock::new(Mutex::default);

/// A handle to the process's standard input, made by [`stdin`].
///
/// Like [`std::io::Stdin`]: reads go through one process-wide buffer
/// behind a lock, so every handle sees the same data, and [`lock`]ing it
/// keeps other fibers (on any loop) and threads out until the lock is
/// dropped. Unlike std's, a read waiting for input parks only the calling
/// fiber; see the [module documentation](crate::io) for how on each
/// backend and file type, and what a cancelled read does.
///
/// [`lock`]: Stdin::lock
///
/// # Examples
///
/// Echo each line, uppercased (the loop keeps running other fibers while
/// this one waits for input):
///
/// ```no_run
/// use std::io::Write;
///
/// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
///     let mut out = loom::io::stdout();
///     for line in loom::io::stdin().lines() {
///         writeln!(out, "{}", line?.to_uppercase())?;
///     }
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Stdin {
    _private: (),
}

/// A locked [`Stdin`], made by [`Stdin::lock`]: [`Read`] and [`BufRead`]
/// with the buffer held until it is dropped.
///
/// If the fiber was cancelled while waiting for the lock, the lock holds
/// nothing and every call returns the cancellation error
/// ([`crate::fiber::is_cancelled`]); if its call-tree deadline
/// ([`crate::time::with_deadline`]) passed, every call returns `TimedOut`.
pub struct StdinLock<'a> {
    /// The errno of the refused lock's error otherwise, so that making it
    /// again allocates nothing.
    guard: Result<MutexGuard<'a, Buffer>, i32>,
}

/// A handle to the process's standard input. Cheap: the buffer is shared
/// by all handles; see [`Stdin`].
///
/// # Examples
///
/// ```no_run
/// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
///     let mut name = String::new();
///     loom::io::stdin().read_line(&mut name)?;
///     println!("hello, {}", name.trim_end());
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn stdin() -> Stdin {
    Stdin { _private: () }
}

impl Stdin {
    /// Locks the buffer for this fiber (waiting for another holder),
    /// giving [`BufRead`] and a buffered [`Read`].
    ///
    /// The lock is not re-entrant: a fiber that locks stdin while it holds
    /// the lock already waits forever, as with std's `Stdin`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::io::BufRead;
    ///
    /// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
    ///     let mut input = loom::io::stdin().lock();
    ///     let first = input.fill_buf()?.first().copied();
    ///     println!("starts with {first:?}");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn lock(&self) -> StdinLock<'static> {
        StdinLock {
            guard: BUFFER
                .lock()
                .map_err(|e| e.raw_os_error().unwrap_or(libc::ETIMEDOUT)),
        }
    }

    /// Reads a line, with its `\n`, and appends it to `buf`, as
    /// [`BufRead::read_line`]; 0 at end of input. The lock is held for the
    /// whole line, so fibers reading concurrently each get whole lines.
    ///
    /// # Errors
    /// As [`BufRead::read_line`] (`InvalidData` if the line is not UTF-8);
    /// the cancellation error if the fiber is cancelled while waiting,
    /// `TimedOut` if its call-tree deadline passes first.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
    ///     let mut line = String::new();
    ///     while loom::io::stdin().read_line(&mut line)? > 0 {
    ///         print!("{line}");
    ///         line.clear();
    ///     }
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn read_line(&self, buf: &mut String) -> io::Result<usize> {
        self.lock().read_line(buf)
    }

    /// The lines of standard input, without their line endings, as
    /// [`BufRead::lines`]; the lock is held until the iterator is dropped.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// loom::Runtime::builder().build()?.run(|| -> std::io::Result<usize> {
    ///     let mut count = 0;
    ///     for line in loom::io::stdin().lines() {
    ///         line?;
    ///         count += 1;
    ///     }
    ///     Ok(count)
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn lines(self) -> io::Lines<StdinLock<'static>> {
        self.lock().lines()
    }
}

impl Read for &Stdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.lock().read(buf)
    }

    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        self.lock().read_to_end(buf)
    }

    fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
        self.lock().read_to_string(buf)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.lock().read_exact(buf)
    }
}

impl Read for Stdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        (&*self).read_to_end(buf)
    }

    fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
        (&*self).read_to_string(buf)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        (&*self).read_exact(buf)
    }
}

impl StdinLock<'_> {
    fn buffer(&mut self) -> io::Result<&mut Buffer> {
        self.guard
            .as_deref_mut()
            .map_err(|errno| io::Error::from_raw_os_error(*errno))
    }
}

impl BufRead for StdinLock<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let buffer = self.buffer()?;
        if buffer.pos >= buffer.filled {
            if buffer.data.is_empty() {
                buffer.data = vec![0; CAPACITY];
            }
            // Reset first: an error leaves an empty buffer, not stale data.
            buffer.pos = 0;
            buffer.filled = 0;
            buffer.filled = stdio::read(&mut buffer.data)?;
        }
        Ok(&buffer.data[buffer.pos..buffer.filled])
    }

    fn consume(&mut self, amount: usize) {
        if let Ok(buffer) = self.buffer() {
            buffer.pos = (buffer.pos + amount).min(buffer.filled);
        }
    }
}

impl Read for StdinLock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let buffer = self.buffer()?;
        // A large read with nothing buffered skips the copy, as std's
        // BufReader does.
        if buffer.pos >= buffer.filled && buf.len() >= CAPACITY {
            return stdio::read(buf);
        }
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }

    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let buffer = self.buffer()?;
        let buffered = buffer.filled - buffer.pos;
        buf.extend_from_slice(&buffer.data[buffer.pos..buffer.filled]);
        buffer.pos = buffer.filled;
        Ok(buffered + Unbuffered.read_to_end(buf)?)
    }

    fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
        // As std: on invalid UTF-8, `buf` is left as it was.
        let mut bytes = Vec::new();
        self.read_to_end(&mut bytes)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            )
        })?;
        buf.push_str(&text);
        Ok(text.len())
    }
}

/// fd 0 past the buffer, for reading everything that is left.
struct Unbuffered;

impl Read for Unbuffered {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        stdio::read(buf)
    }
}

impl AsRawFd for Stdin {
    fn as_raw_fd(&self) -> RawFd {
        Stream::In.fd()
    }
}

impl AsFd for Stdin {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: fd 0 is the process's stdin for its whole life (or not
        // open, which any call on it reports); std's own `Stdin` borrows
        // it the same way.
        unsafe { BorrowedFd::borrow_raw(Stream::In.fd()) }
    }
}

impl AsRawFd for StdinLock<'_> {
    fn as_raw_fd(&self) -> RawFd {
        Stream::In.fd()
    }
}

impl AsFd for StdinLock<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: as for `Stdin`.
        unsafe { BorrowedFd::borrow_raw(Stream::In.fd()) }
    }
}

impl fmt::Debug for Stdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stdin").finish_non_exhaustive()
    }
}

impl fmt::Debug for StdinLock<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StdinLock")
            .field("locked", &self.guard.is_ok())
            .finish_non_exhaustive()
    }
}
