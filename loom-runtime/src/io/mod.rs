//! Standard input, output and error whose reads and writes park only the
//! calling fiber: [`stdin`], [`stdout`], [`stderr`], shaped like std's so
//! that `use loom::io::stdin` can replace `use std::io::stdin` — `for line
//! in stdin().lines()`, `stdin().read_line(&mut s)`, `writeln!(stdout(),
//! ..)`, `stdout().flush()` all work unchanged. (Also the fd type behind
//! them, child pipes, signals and process waits, which is internal.) The
//! module also has [`pipe`], an anonymous pipe whose ends park only the
//! calling fiber, and, on Linux, [`splice`], which moves bytes between a
//! socket and a pipe inside the kernel.
//!
//! ```
//! use std::io::Write;
//!
//! loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
//!     // Another fiber keeps running while this one writes (or, with
//!     // `loom::io::stdin().lines()`, waits for input).
//!     let ticker = loom::spawn(|| loom::time::sleep(std::time::Duration::from_millis(1)));
//!     writeln!(loom::io::stdout(), "hello from fiber {}", loom::fiber::current().id())?;
//!     ticker.join().unwrap()?;
//!     loom::io::stdout().flush()
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # The parent's file descriptions are left alone
//!
//! fds 0, 1 and 2 usually share their open file description with the
//! shell (a terminal) or the parent process (a pipe), and `O_NONBLOCK`
//! belongs to the description: switching fd 0 to non-blocking would switch
//! the shell's terminal too, and it would stay so after this process
//! exits. loom never changes the mode of the stdio fds. How a fiber waits
//! instead:
//!
//! | fd is | io_uring | epoll (Linux) | kqueue (macOS) |
//! |---|---|---|---|
//! | pipe, FIFO, terminal, other character device | read/write ops on the fd as it is: the kernel waits inside the op | a private description of the same file (`open("/proc/self/fd/N", O_NONBLOCK)`), registered with epoll | the blocking pool |
//! | socket | ops on the fd as it is | a registered duplicate, each call with `MSG_DONTWAIT` | as epoll |
//! | regular file, block device (or anything else, such as an eventfd) | ops at the shared file position (offset -1) | the blocking pool, on the fd itself (the position stays shared with the parent) | the blocking pool |
//!
//! Fallbacks: where a private description cannot be opened (no `/proc`,
//! no permission, a FIFO's write end with no reader) or epoll refuses it
//! (`/dev/null`), the blocking pool runs the calls on the original fd. If
//! a call on the original fd finds it non-blocking after all (the parent
//! set `O_NONBLOCK`), the poll backends wait for readiness on a registered
//! duplicate of it, and io_uring switches to a private description in
//! blocking mode (io_uring itself waits on non-blocking pipes, sockets
//! and, on recent kernels, terminals, so there this is rare). One race is
//! left: a parent that clears `O_NONBLOCK` again while loom relies on it
//! on a poll backend makes that loop's next call block its thread.
//!
//! The descriptors loom opens itself are close-on-exec and are kept per
//! loop thread until the thread exits (or the next runtime on it uses the
//! stream). A private description of a pipe end counts as one more reader
//! or writer: closing fd 1 does not give the reader end of file, nor does
//! closing fd 0 give the writer `EPIPE`, until this process exits.
//!
//! # Cancellation
//!
//! A fiber cancelled while it waits for input or for room to write gets
//! the cancellation error ([`crate::fiber::is_cancelled`]) at once on
//! io_uring (the op is cancelled in the kernel) and on every readiness
//! path above. A call running on the blocking pool cannot be interrupted:
//! the fiber waits until it returns — for a terminal or pipe on macOS (or
//! where the fallback applies), until input arrives — and a runtime
//! shutting down abandons such a fiber after its shutdown timeout. Bytes a
//! cancelled read had already taken stay in [`Stdin`]'s buffer for the
//! next reader.
//!
//! A call-tree deadline ([`crate::time::with_deadline`]) ends the same
//! waits the same way, with an error of kind `TimedOut` (waiting for the
//! stream's lock included); a call on the blocking pool runs on past it.
//!
//! # Buffering and locking
//!
//! - [`Stdin`] has one buffer (8 KiB, as std's) for the whole process
//!   behind a fiber-aware lock; every call takes the lock for its whole
//!   duration (a `read_line` for the whole line), so fibers reading
//!   concurrently — on any loop — each get whole lines, and
//!   [`Stdin::lock`] (or [`Stdin::lines`]) keeps the others waiting until
//!   it is dropped.
//! - [`Stdout`] and [`Stderr`] are **unbuffered**: each `write` is one
//!   system call, so nothing is left unwritten at exit and `flush` has
//!   nothing to do. `write!`/`writeln!` gather their pieces (up to 1 KiB)
//!   into one write, so a formatted line costs one system call, as with
//!   std's line-buffered stdout. Each stream has a process-wide lock held
//!   for each call (or by [`Stdout::lock`]), so one `writeln!` never
//!   interleaves with another fiber's.
//! - [`Stdout`]'s and [`Stderr`]'s locks are re-entrant, as std's are: a
//!   fiber holding [`Stdout::lock`] may still write through another
//!   handle. [`Stdin`]'s is not (nor is std's): a fiber that locks stdin
//!   again while holding it waits forever.
//!
//! # Mixing with std's handles
//!
//! std's `stdin`, `stdout`, `println!` and `eprintln!` keep working, but
//! block the whole loop while they wait, and have buffers of their own:
//!
//! - Bytes std's `Stdin` has buffered are invisible to loom's, and the
//!   other way round: read standard input through one of them only.
//! - std's `stdout` holds a partial line until its newline (or a flush),
//!   while loom's writes reach fd 1 at once. Output therefore appears in
//!   the order it reaches the fd: whole `println!` and `writeln!` lines
//!   interleave in program order, but text from a `print!` without a
//!   newline may come out after later loom output. Flush std's stdout
//!   before switching to loom's to keep a partial line in place.
//! - stderr is unbuffered in both, so `eprintln!` and
//!   `writeln!(loom::io::stderr(), ..)` interleave in program order.
//!
//! # Outside a fiber
//!
//! On a plain thread, or before a runtime starts, the calls block the
//! thread as std's do (waiting with `poll(2)` if the fd is non-blocking).

pub(crate) mod fd;
mod pipe;
mod private;
#[cfg(target_os = "linux")]
mod splice;
mod stdin;
mod stdio;
mod stdout;

pub use pipe::{PipeReader, PipeWriter, pipe};
#[cfg(target_os = "linux")]
pub use splice::{SpliceFd, splice};
pub use stdin::{Stdin, StdinLock, stdin};
pub use stdout::{Stderr, StderrLock, Stdout, StdoutLock, stderr, stdout};
