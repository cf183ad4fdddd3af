//! [`Child`]: a running or exited child process, its pipes, and waiting
//! for it.

use std::io::{self, Read};
use std::process::{ExitStatus, Output};

use super::Process;
use super::pipes::{ChildStderr, ChildStdin, ChildStdout};
use crate::fiber::{self, JoinHandle};
use crate::sync::local::oneshot;

/// A child process spawned by [`Command::spawn`](super::Command::spawn),
/// like [`std::process::Child`] but waiting and piping park only the
/// calling fiber.
///
/// Waiting is cancellable: a cancelled fiber's [`wait`](Child::wait)
/// returns the cancellation error (`ECANCELED`, see
/// [`crate::fiber::is_cancelled`]) and leaves the child un-reaped, so a
/// later `wait` still gets its status. Once reaped, the status is kept:
/// `wait` and `try_wait` return it again, and [`kill`](Child::kill) sends
/// nothing.
///
/// Dropping a `Child` neither kills nor waits for it, as in std: a child
/// still running goes on, and once it exits it stays a zombie until this
/// process exits (nothing reaps it in the background — loom installs no
/// SIGCHLD handler). Wait for children you spawn.
///
/// A `Child` belongs to the loop that spawned it (`!Send`): its pidfd and
/// pipes are registered with that loop's driver.
///
/// # Examples
///
/// ```
/// use loom::process::Command;
///
/// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
///     let mut child = Command::new("sleep").arg("10").spawn()?;
///     assert_eq!(child.try_wait()?, None);
///     child.kill()?;
///     let status = child.wait()?;
///     assert!(!status.success());
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Child {
    /// The child's standard input, if the command asked for
    /// [`Stdio::piped`](super::Stdio::piped). Take it (`Option::take`) to
    /// write from another fiber or to close it early.
    pub stdin: Option<ChildStdin>,
    /// The child's standard output, if piped.
    pub stdout: Option<ChildStdout>,
    /// The child's standard error, if piped.
    pub stderr: Option<ChildStderr>,
    process: Process,
}

impl Child {
    /// Takes over a child std has just spawned. If any part cannot be set
    /// up for the loop, the child is killed and reaped before the error is
    /// returned, so a failed spawn leaves no process behind.
    pub(super) fn adopt(mut std: std::process::Child) -> io::Result<Child> {
        let stdin = std.stdin.take();
        let stdout = std.stdout.take();
        let stderr = std.stderr.take();
        let adopted = (|| {
            Ok(Child {
                process: Process::new(std.id())?,
                stdin: stdin.map(ChildStdin::adopt).transpose()?,
                stdout: stdout.map(ChildStdout::adopt).transpose()?,
                stderr: stderr.map(ChildStderr::adopt).transpose()?,
            })
        })();
        if adopted.is_err() {
            // A SIGKILLed child exits at once, so this blocking wait is
            // short; nothing else can reap it for us.
            let _ = std.kill();
            let _ = std.wait();
        }
        adopted
    }

    /// The child's process id. Unlike the status, it may name another
    /// process once the child has been reaped.
    pub fn id(&self) -> u32 {
        self.process.id()
    }

    /// Closes the child's stdin (if piped), so a child reading it is not
    /// left waiting, and parks the fiber until the child exits; returns
    /// its status.
    ///
    /// # Errors
    ///
    /// The cancellation error if the fiber is cancelled (the child is left
    /// un-reaped; wait again later), or `waitid`'s error — `ECHILD` if
    /// something else reaped the child (a `waitpid(-1, ..)` elsewhere, or
    /// SIGCHLD set to `SIG_IGN`).
    ///
    /// # Panics
    ///
    /// Outside a fiber, unless the status is already known.
    #[track_caller]
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        self.process.wait()
    }

    /// The child's status if it has exited (reaping it), `None` if it is
    /// still running. Never parks; works outside a runtime too.
    ///
    /// # Errors
    ///
    /// `waitid`'s error, as for [`wait`](Child::wait).
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.process.try_wait()
    }

    /// Sends SIGKILL. On Linux the signal goes through the child's pidfd,
    /// so it can never hit another process that reused the pid. If the
    /// child has already been reaped, nothing is sent and `Ok(())` is
    /// returned, as std does; an exited child not yet reaped takes the
    /// signal harmlessly.
    ///
    /// # Errors
    ///
    /// The system call's error.
    pub fn kill(&mut self) -> io::Result<()> {
        self.process.kill()
    }

    /// Closes stdin, reads all of stdout and stderr (those that are piped)
    /// and waits for the child to exit.
    ///
    /// Both pipes are read at the same time — stderr by a helper fiber of
    /// this loop, spawned only when both are piped — so a child that fills
    /// one pipe while the parent reads the other cannot deadlock.
    ///
    /// # Errors
    ///
    /// A read's or the wait's error; the cancellation error if the fiber is
    /// cancelled, which stops the helper fiber too. As the child is
    /// consumed, after an error it is dropped un-reaped (see [`Child`]).
    /// Spawning the helper fiber waits for a stack if the loop has none
    /// free, and fails like [`fiber::Builder::spawn`].
    ///
    /// # Panics
    ///
    /// Outside a fiber.
    ///
    /// # Examples
    ///
    /// ```
    /// use loom::process::{Command, Stdio};
    ///
    /// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
    ///     let child = Command::new("sh")
    ///         .args(["-c", "echo to stdout; echo to stderr >&2"])
    ///         .stdout(Stdio::piped())
    ///         .stderr(Stdio::piped())
    ///         .spawn()?;
    ///     let output = child.wait_with_output()?;
    ///     assert_eq!(output.stdout, b"to stdout\n");
    ///     assert_eq!(output.stderr, b"to stderr\n");
    ///     assert!(output.status.success());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let (stdout, stderr) = match (self.stdout.take(), self.stderr.take()) {
            (None, None) => (Vec::new(), Vec::new()),
            (Some(out), None) => (read_all(out)?, Vec::new()),
            (None, Some(err)) => (Vec::new(), read_all(err)?),
            (Some(out), Some(err)) => read_both(out, err)?,
        };
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

fn read_all(mut pipe: impl Read) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    pipe.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads stdout on this fiber and stderr on a helper fiber, at once.
#[track_caller]
fn read_both(out: ChildStdout, err: ChildStderr) -> io::Result<(Vec<u8>, Vec<u8>)> {
    // The result comes back by channel rather than `join`: a cancelled
    // `join` detaches the fiber it waited for, where this must stop it.
    let (sender, receiver) = oneshot::channel();
    let helper = fiber::Builder::new()
        .name("loom::process stderr")
        .spawn(move || {
            let _ = sender.send(read_all(err));
        })?;
    let helper = StopOnDrop(helper);
    let stdout = read_all(out)?;
    let stderr = receiver.recv()??;
    drop(helper);
    Ok((stdout, stderr))
}

/// Cancels a helper fiber that is still running when its result is no
/// longer wanted (the caller failed or was cancelled), so it closes its
/// pipe and ends instead of reading on; then detaches it.
struct StopOnDrop(JoinHandle<()>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if !self.0.is_finished() {
            self.0.cancel();
        }
    }
}
