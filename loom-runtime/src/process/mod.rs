//! Child processes, with the names of [`std::process`]: code moves over by
//! changing its `use` line. Spawning is std's own; waiting for a child and
//! reading or writing its pipes park only the calling fiber, so one loop
//! can run hundreds of children while its other fibers keep going.
//!
//! [`Stdio`], [`ExitStatus`] and [`Output`] are std's types, re-exported.
//!
//! # Examples
//!
//! ```
//! use std::io::{Read, Write};
//! use loom::process::{Command, Stdio};
//!
//! loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
//!     // Ten children at once, each on its own fiber.
//!     let fibers: Vec<_> = (0..10)
//!         .map(|i| {
//!             loom::spawn(move || -> std::io::Result<String> {
//!                 let mut child = Command::new("cat")
//!                     .stdin(Stdio::piped())
//!                     .stdout(Stdio::piped())
//!                     .spawn()?;
//!                 child.stdin.take().unwrap().write_all(format!("child {i}").as_bytes())?;
//!                 let mut echoed = String::new();
//!                 child.stdout.take().unwrap().read_to_string(&mut echoed)?;
//!                 assert!(child.wait()?.success());
//!                 Ok(echoed)
//!             })
//!         })
//!         .collect();
//!     for (i, fiber) in fibers.into_iter().enumerate() {
//!         assert_eq!(fiber.join().unwrap()?, format!("child {i}"));
//!     }
//!
//!     let status = Command::new("sh").args(["-c", "exit 3"]).status()?;
//!     assert_eq!(status.code(), Some(3));
//!     Ok(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # How a wait parks the fiber
//!
//! - **Linux** (5.4 or later, for `waitid` on a pidfd): each child gets a
//!   pidfd (`pidfd_open`) when it is spawned. No SIGCHLD handler is
//!   installed and no thread polls.
//!   - io_uring on Linux 6.7 or later: a wait is one `IORING_OP_WAITID`
//!     op; the kernel reaps the child and completes it.
//!   - epoll, and io_uring before 6.7: the fiber waits for the pidfd to
//!     become readable (epoll readiness, or an io_uring poll), which
//!     happens when the child exits, then reaps it with `waitid(WNOHANG)`.
//!
//!   [`Child::kill`] signals through the pidfd (`pidfd_send_signal`), so it
//!   never reaches another process that reused the pid.
//! - **macOS and the BSDs**: there are no pidfds. A wait polls
//!   `waitpid(WNOHANG)` on the fiber, sleeping between looks (1 ms, doubling
//!   up to 50 ms), so it holds no thread and is cancelled like a sleep, but
//!   may notice an exit up to 50 ms late.
//!
//! # Spawning
//!
//! [`Command::spawn`] (and `output`, `status`) runs std's spawn on the
//! blocking pool ([`crate::blocking`]). Spawning returns only once the new
//! program has been exec'd, and under load that takes a millisecond or more
//! (the exec competes for the CPUs with everything else), time a loop
//! would otherwise spend stopped: a hundred spawns in a row held a loop for
//! 100–270 ms in tests. On the pool the loop keeps running; a spawn costs
//! one hand-off to a pool thread.
//!
//! One consequence: the child's parent *thread* is a pool thread, and pool
//! threads exit after [`crate::blocking::IDLE_TIMEOUT`] idle. Linux's
//! `PR_SET_PDEATHSIG` (set in a `pre_exec` hook) fires when the parent
//! thread exits, so it would kill such a child early; don't use it with
//! loom. The child's CPU affinity is the pool thread's (not pinned, even
//! when the loops are); its signal mask is empty either way, as std clears
//! it in the child.
//!
//! # Cancellation and dropping
//!
//! Every call that waits returns the cancellation error (`ECANCELED`,
//! [`crate::fiber::is_cancelled`]) when its fiber is cancelled, and leaves
//! the child un-reaped: a later [`Child::wait`], from any fiber of the
//! same loop, still gets its status. Dropping a [`Child`] neither kills nor
//! waits for it, as in std: a child that has exited and was never waited
//! for stays a zombie until this process exits.
//!
//! # Differences from std
//!
//! - [`Child`] and its pipes belong to the loop that spawned them
//!   (`!Send`), like loom's sockets; waiting outside a fiber panics.
//! - [`Command::as_std_mut`] gives the std command inside, for the Unix
//!   settings std keeps in `CommandExt`.
//! - A pipe end becomes another command's stdio with `Stdio::try_from`
//!   (std has `From`): it must be put back in blocking mode first.
//! - A cancelled fiber's `spawn` fails with the cancellation error, like
//!   its other blocking calls.

mod child;
mod command;
#[cfg(target_os = "linux")]
mod pidfd;
mod pipes;
#[cfg(not(target_os = "linux"))]
mod waitpid;

#[cfg(target_os = "linux")]
use pidfd::Process;
#[cfg(not(target_os = "linux"))]
use waitpid::Process;

pub use child::Child;
pub use command::Command;
pub use pipes::{ChildStderr, ChildStdin, ChildStdout};
pub use std::process::{ExitStatus, Output, Stdio};
