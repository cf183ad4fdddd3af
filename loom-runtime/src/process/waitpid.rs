//! Waiting for a child where there are no pidfds (macOS, the BSDs): the
//! fiber polls `waitpid(pid, WNOHANG)`, sleeping on the timer wheel between
//! tries — 1 ms at first, doubling to [`MAX_NAP`] — so a wait holds no
//! thread, honours cancellation like any sleep, and notices an exit at most
//! [`MAX_NAP`] late. (kqueue's `EVFILT_PROC` would wake the fiber at the
//! exit itself, but mio does not expose it.)

use std::io;
use std::marker::PhantomData;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use crate::sys::syscall;

/// The longest sleep between two looks at a running child.
const MAX_NAP: Duration = Duration::from_millis(50);

/// A spawned child's pid and its exit status once reaped.
#[derive(Debug)]
pub(super) struct Process {
    pid: u32,
    status: Option<ExitStatus>,
    /// Kept like the pidfd version, so `Child` is `!Send` everywhere.
    _not_send: PhantomData<*const ()>,
}

impl Process {
    /// Takes `pid`, a child of this process that nothing has reaped yet.
    pub(super) fn new(pid: u32) -> io::Result<Process> {
        Ok(Process {
            pid,
            status: None,
            _not_send: PhantomData,
        })
    }

    pub(super) fn id(&self) -> u32 {
        self.pid
    }

    /// Sleeps the fiber between `WNOHANG` looks until the child has
    /// exited. Cancellation leaves it un-reaped.
    #[track_caller]
    pub(super) fn wait(&mut self) -> io::Result<ExitStatus> {
        let mut nap = Duration::from_millis(1);
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            crate::time::sleep(nap)?;
            nap = (nap * 2).min(MAX_NAP);
        }
    }

    /// Reaps the child if it has exited; never parks.
    pub(super) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let mut raw = 0;
        loop {
            match syscall!(waitpid(self.pid as libc::pid_t, &mut raw, libc::WNOHANG)) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
                Ok(0) => return Ok(None),
                Ok(_) => {
                    let status = ExitStatus::from_raw(raw);
                    self.status = Some(status);
                    return Ok(Some(status));
                }
            }
        }
    }

    /// SIGKILL by pid, which is safe until the child is reaped (only then
    /// can the pid be reused); after that nothing is sent and `Ok` is
    /// returned, as std does.
    pub(super) fn kill(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        syscall!(kill(self.pid as libc::pid_t, libc::SIGKILL)).map(drop)
    }
}
