//! Waiting for a child on Linux: through a pidfd (`pidfd_open` 5.3,
//! `waitid(P_PIDFD)` 5.4), so no SIGCHLD handler and no reaper thread are
//! needed, and a signal never reaches a recycled pid.
//!
//! How a wait parks the fiber is fixed when the child is spawned, from
//! what the loop's driver can do:
//!
//! - io_uring on Linux 6.7+ (`IORING_OP_WAITID`): one [`op::WaitId`]; the
//!   kernel reaps the child and writes its `siginfo_t` into the waiting
//!   fiber's frame (invariant 1). The pidfd stays blocking: the kernel
//!   reads a non-blocking pidfd as `WNOHANG`.
//! - epoll, and io_uring before 6.7: the pidfd is non-blocking and waited
//!   for with `FiberFd::wait_readable` (epoll readiness, or an io_uring
//!   `POLL_ADD`); it turns readable when the child exits, and a
//!   `waitid(.., WNOHANG)` on the fiber then reaps it. (On io_uring
//!   without the opcode the driver would otherwise run the op's `WNOHANG`
//!   attempt once on the blocking pool and report "still running".)

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use crate::io::fd::FiberFd;
use crate::op;
use crate::rt::current::{run_op, with_current};
use crate::sys::syscall;

const WAIT: &str = "loom::process::Child::wait";

/// A spawned child's pid, its pidfd, and its exit status once reaped.
#[derive(Debug)]
pub(super) struct Process {
    pid: u32,
    pidfd: PidFd,
    status: Option<ExitStatus>,
    /// A wait parks on this loop's driver (see [`PidFd`]).
    _not_send: PhantomData<*const ()>,
}

/// The pidfd, in the form the loop that spawned the child waits on.
#[derive(Debug)]
enum PidFd {
    /// io_uring with `IORING_OP_WAITID`: blocking, waited for by one op.
    Ring(OwnedFd),
    /// Everywhere else: non-blocking, registered, waited for readable.
    Readiness(FiberFd),
}

impl PidFd {
    fn fd(&self) -> RawFd {
        match self {
            PidFd::Ring(fd) => fd.as_raw_fd(),
            PidFd::Readiness(fd) => fd.fd(),
        }
    }
}

impl Process {
    /// Opens a pidfd for `pid`, a child of this process that nothing has
    /// reaped yet (so the pid cannot have been reused).
    pub(super) fn new(pid: u32) -> io::Result<Process> {
        let in_ring = with_current("loom::process::Command::spawn", |lp| {
            lp.driver.has_op(op::WaitId::OPCODE)
        });
        Process::open(pid, in_ring)
    }

    /// [`Process::new`] with the way to wait chosen by the caller (tests
    /// take the readiness way on io_uring, as Linux before 6.7 does).
    fn open(pid: u32, in_ring: bool) -> io::Result<Process> {
        // pidfd_open sets close-on-exec itself, so no other child inherits
        // it.
        let raw = syscall!(syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0))?;
        // SAFETY: pidfd_open just returned this fd; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
        let pidfd = if in_ring {
            PidFd::Ring(fd)
        } else {
            PidFd::Readiness(FiberFd::readiness(fd, "loom::process::Command::spawn")?)
        };
        Ok(Process {
            pid,
            pidfd,
            status: None,
            _not_send: PhantomData,
        })
    }

    pub(super) fn id(&self) -> u32 {
        self.pid
    }

    /// Parks the fiber until the child exits, then reaps it. Cancellation
    /// leaves it un-reaped.
    #[track_caller]
    pub(super) fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let mut info = op::empty_siginfo();
        match &self.pidfd {
            PidFd::Ring(fd) => {
                // The kernel writes `info`, in this frame, when the child
                // exits; the op borrows it and `run_op` returns only once
                // the op's completion is reaped, also when cancelled
                // (invariant 1).
                run_op(WAIT, op::WaitId::new(fd.as_raw_fd(), &mut info), None, None)?;
            }
            PidFd::Readiness(fd) => {
                while !op::reap_if_exited(fd.fd(), &mut info)? {
                    fd.wait_readable(WAIT)?;
                }
            }
        }
        self.reaped(&info)
    }

    /// Reaps the child if it has exited; never parks.
    pub(super) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let mut info = op::empty_siginfo();
        if op::reap_if_exited(self.pidfd.fd(), &mut info)? {
            self.reaped(&info).map(Some)
        } else {
            Ok(None)
        }
    }

    /// SIGKILL through the pidfd, which names this child even after its pid
    /// is reused; once reaped, nothing is sent and `Ok` returned, as std
    /// does.
    pub(super) fn kill(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        syscall!(syscall(
            libc::SYS_pidfd_send_signal,
            self.pidfd.fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        ))
        .map(drop)
    }

    fn reaped(&mut self, info: &libc::siginfo_t) -> io::Result<ExitStatus> {
        // SAFETY: `info` was zeroed and then filled in by waitid for a
        // child that changed state; the status is a plain integer of the
        // union.
        let status = unsafe { info.si_status() };
        let status = exit_status(info.si_code, status)?;
        self.status = Some(status);
        Ok(status)
    }
}

/// The wait status std's `ExitStatus` holds (what `waitpid` reports), made
/// from the `si_code` and `si_status` that `waitid` reports.
fn exit_status(code: i32, status: i32) -> io::Result<ExitStatus> {
    let raw = match code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_KILLED => status,
        libc::CLD_DUMPED => status | 0x80,
        // Only WEXITED was asked for; anything else is the kernel's
        // surprise, not a status to invent.
        code => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("waitid reported si_code {code} for an exited child"),
            ));
        }
    };
    Ok(ExitStatus::from_raw(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siginfo_becomes_the_wait_status_std_reads() {
        let exited = exit_status(libc::CLD_EXITED, 3).unwrap();
        assert_eq!(exited.code(), Some(3));
        let killed = exit_status(libc::CLD_KILLED, libc::SIGKILL).unwrap();
        assert_eq!(killed.signal(), Some(libc::SIGKILL));
        assert!(!killed.core_dumped());
        let dumped = exit_status(libc::CLD_DUMPED, libc::SIGSEGV).unwrap();
        assert_eq!(dumped.signal(), Some(libc::SIGSEGV));
        assert!(dumped.core_dumped());
        let odd = exit_status(libc::CLD_STOPPED, libc::SIGSTOP).unwrap_err();
        assert_eq!(odd.kind(), io::ErrorKind::InvalidData);
    }

    /// A wait is one ring op exactly where the kernel has
    /// `IORING_OP_WAITID` (io_uring on Linux 6.7+), so CI on 6.1 takes the
    /// readiness way on both backends.
    #[test]
    fn the_wait_is_a_ring_op_on_io_uring_from_linux_6_7() {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut numbers = release
            .split(|c: char| !c.is_ascii_digit())
            .map(|n| n.parse::<u32>().unwrap());
        let kernel = (numbers.next().unwrap(), numbers.next().unwrap());
        for backend in crate::rt::Backend::available() {
            let rt = crate::Runtime::builder().backend(backend).build().unwrap();
            rt.run(move || {
                let mut child = std::process::Command::new("true").spawn().unwrap();
                let process = Process::new(child.id()).unwrap();
                let in_ring = backend == crate::rt::Backend::IoUring && kernel >= (6, 7);
                assert_eq!(
                    matches!(process.pidfd, PidFd::Ring(_)),
                    in_ring,
                    "{backend} on {kernel:?}"
                );
                drop(process);
                child.wait().unwrap();
            });
        }
    }

    /// The way Linux before 6.7 waits on io_uring (readable pidfd, then
    /// `WNOHANG`), taken on this kernel on purpose: a cancelled wait leaves
    /// the child to a later one, which gets its status.
    #[test]
    fn the_readiness_wait_works_on_every_backend() {
        use std::time::{Duration, Instant};
        for backend in crate::rt::Backend::available() {
            let rt = crate::Runtime::builder().backend(backend).build().unwrap();
            rt.run(move || {
                #[expect(clippy::zombie_processes, reason = "reaped below, through the pidfd")]
                let child = std::process::Command::new("sh")
                    .args(["-c", "sleep 0.2; exit 7"])
                    .spawn()
                    .unwrap();
                let mut process = Process::open(child.id(), false).unwrap();
                assert!(matches!(process.pidfd, PidFd::Readiness(_)));
                assert_eq!(process.try_wait().unwrap(), None);
                let waiter = crate::spawn(move || {
                    let result = process.wait();
                    (process, result)
                });
                crate::time::sleep(Duration::from_millis(20)).unwrap();
                waiter.cancel();
                let (mut process, result) = waiter.join().unwrap();
                let error = result.unwrap_err();
                assert!(crate::fiber::is_cancelled(&error), "{backend}: {error}");
                let start = Instant::now();
                assert_eq!(process.wait().unwrap().code(), Some(7), "{backend}");
                assert!(start.elapsed() < Duration::from_secs(5), "{backend}");
                assert_eq!(process.try_wait().unwrap().unwrap().code(), Some(7));
            });
        }
    }
}
