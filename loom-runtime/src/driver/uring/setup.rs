//! Creating a ring: the set-up flags to try, newest first, and the opcodes
//! and features a ring must have before loom uses it.

use std::io;

use io_uring::{IoUring, Probe, opcode};

use super::named;

/// Every opcode some loom operation submits; `Auto` falls back to the
/// poll backend unless the kernel supports all of them.
const REQUIRED_OPCODES: &[(u8, &str)] = &[
    (opcode::Accept::CODE, "accept"),
    (opcode::Connect::CODE, "connect"),
    (opcode::Recv::CODE, "recv"),
    (opcode::Send::CODE, "send"),
    (opcode::Read::CODE, "read"),
    (opcode::Write::CODE, "write"),
    (opcode::Readv::CODE, "readv"),
    (opcode::Writev::CODE, "writev"),
    (opcode::RecvMsg::CODE, "recvmsg"),
    (opcode::SendMsg::CODE, "sendmsg"),
    (opcode::Shutdown::CODE, "shutdown"),
    (opcode::Close::CODE, "close"),
    (opcode::OpenAt::CODE, "openat"),
    (opcode::Fsync::CODE, "fsync"),
    (opcode::Statx::CODE, "statx"),
    (opcode::AsyncCancel::CODE, "async_cancel"),
];

/// Completion-queue entries per submission-queue entry: with the default
/// 1 024, room for one completion per connection of a server with 10 000
/// connections (see `Builder::ring_entries`); `setup_clamp` caps it at the
/// kernel's limit.
const CQ_PER_SQ_ENTRY: u32 = 16;

/// Setup flags tried in order: each later set drops the flag the kernel
/// may have refused (`EINVAL`) in the one before — `DEFER_TASKRUN` (Linux
/// 6.1), then `SINGLE_ISSUER` (6.0), then `COOP_TASKRUN` (5.19).
/// `R_DISABLED` (5.10) lets the loop's thread, not the building thread,
/// become the single issuer.
const SETUP_ATTEMPTS: &[SetupFlags] = &[
    SetupFlags::new(true, true, true),
    SetupFlags::new(true, false, true),
    SetupFlags::new(false, false, true),
    SetupFlags::new(false, false, false),
];

/// One set of optional setup flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SetupFlags {
    /// `SINGLE_ISSUER` together with `R_DISABLED`.
    single_issuer: bool,
    defer_taskrun: bool,
    coop_taskrun: bool,
}

impl SetupFlags {
    const fn new(single_issuer: bool, defer_taskrun: bool, coop_taskrun: bool) -> SetupFlags {
        SetupFlags {
            single_issuer,
            defer_taskrun,
            coop_taskrun,
        }
    }

    fn describe(self) -> &'static str {
        match (self.single_issuer, self.defer_taskrun, self.coop_taskrun) {
            (true, true, true) => "SINGLE_ISSUER|R_DISABLED|DEFER_TASKRUN|COOP_TASKRUN",
            (true, false, true) => "SINGLE_ISSUER|R_DISABLED|COOP_TASKRUN",
            (true, true, false) => "SINGLE_ISSUER|R_DISABLED|DEFER_TASKRUN",
            (true, false, false) => "SINGLE_ISSUER|R_DISABLED",
            (false, true, true) => "DEFER_TASKRUN|COOP_TASKRUN",
            (false, true, false) => "DEFER_TASKRUN",
            (false, false, true) => "COOP_TASKRUN",
            (false, false, false) => "no flags",
        }
    }
}

/// A ring of `entries` with the most set-up flags the kernel accepts;
/// also says which.
pub(super) fn build(entries: u32) -> io::Result<(IoUring, &'static str)> {
    build_with(entries, SETUP_ATTEMPTS)
}

/// Creates a ring with the first of `attempts` the kernel accepts.
fn build_with(entries: u32, attempts: &[SetupFlags]) -> io::Result<(IoUring, &'static str)> {
    let mut last_error = None;
    for &flags in attempts {
        let mut builder = IoUring::builder();
        builder
            .setup_cqsize(entries.saturating_mul(CQ_PER_SQ_ENTRY))
            .setup_clamp();
        if flags.single_issuer {
            builder.setup_single_issuer().setup_r_disabled();
        }
        if flags.defer_taskrun {
            builder.setup_defer_taskrun();
        }
        if flags.coop_taskrun {
            builder.setup_coop_taskrun();
        }
        match builder.build(entries) {
            Ok(ring) => return Ok((ring, flags.describe())),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                log::debug!("loom: io_uring refused {} (EINVAL)", flags.describe());
                last_error = Some(e);
            }
            Err(e) => return Err(named("io_uring_setup", e)),
        }
    }
    Err(named(
        "io_uring_setup",
        last_error.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL)),
    ))
}

/// Refuses a ring that lacks a feature or opcode loom relies on.
/// The opcodes a ring supports, from its probe.
#[derive(Clone, Copy, Debug)]
pub(super) struct Opcodes([u64; 4]);

impl Opcodes {
    /// Whether the kernel runs `code` as a ring op.
    #[inline]
    pub(super) fn has(&self, code: u8) -> bool {
        self.0[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }
}

/// Refuses a ring that lacks a feature or a required opcode loom relies
/// on; returns every opcode it supports, so that ops added by later kernels
/// can fall back to the blocking pool where they are missing.
pub(super) fn check(ring: &IoUring) -> io::Result<Opcodes> {
    if !ring.params().is_feature_ext_arg() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring lacks IORING_FEAT_EXT_ARG (timed waits need Linux 5.11)",
        ));
    }
    if !ring.params().is_feature_nodrop() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring lacks IORING_FEAT_NODROP (Linux 5.5)",
        ));
    }
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| named("io_uring probe", e))?;
    let missing: Vec<&str> = REQUIRED_OPCODES
        .iter()
        .filter(|(code, _)| !probe.is_supported(*code))
        .map(|(_, name)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("io_uring lacks opcodes: {}", missing.join(", ")),
        ));
    }
    let mut opcodes = Opcodes([0; 4]);
    for code in 0..=u8::MAX {
        if probe.is_supported(code) {
            opcodes.0[usize::from(code / 64)] |= 1 << (code % 64);
        }
    }
    Ok(opcodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// To stderr even when the test passes (libtest captures `eprintln!`).
    fn say(message: &str) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "{message}");
    }

    /// The running kernel's (major, minor) version.
    fn kernel_version() -> (u32, u32) {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut numbers = release
            .split(|c: char| !c.is_ascii_digit())
            .map(|n| n.parse().unwrap());
        (numbers.next().unwrap(), numbers.next().unwrap())
    }

    #[test]
    fn setup_takes_every_flag_the_kernel_has() {
        let Ok((_ring, setup)) = build(8) else {
            // Refused outright (seccomp, io_uring_disabled): nothing to check.
            say("io_uring refused here: set-up flags not checked");
            return;
        };
        let expected = match kernel_version() {
            v if v >= (6, 1) => "SINGLE_ISSUER|R_DISABLED|DEFER_TASKRUN|COOP_TASKRUN",
            v if v >= (6, 0) => "SINGLE_ISSUER|R_DISABLED|COOP_TASKRUN",
            v if v >= (5, 19) => "COOP_TASKRUN",
            _ => "no flags",
        };
        assert_eq!(setup, expected, "kernel {:?}", kernel_version());
    }

    #[test]
    fn a_refused_flag_set_falls_back_to_the_next() {
        // DEFER_TASKRUN without SINGLE_ISSUER: EINVAL on every kernel (a
        // rule since 6.1, an unknown flag before).
        let refused = SetupFlags::new(false, true, false);
        let plain = SetupFlags::new(false, false, false);
        if build_with(8, &[plain]).is_err() {
            say("io_uring refused here: the set-up fallback not checked");
            return;
        }
        let (_ring, setup) = build_with(8, &[refused, plain]).unwrap();
        assert_eq!(setup, "no flags");
        let err = build_with(8, &[refused]).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    }

    #[test]
    fn the_opcode_set_matches_the_probe() {
        let Ok(ring) = IoUring::new(8) else {
            say("io_uring refused here: the opcode set not checked");
            return;
        };
        let Ok(opcodes) = check(&ring) else {
            say("io_uring lacks a required opcode here: the opcode set not checked");
            return;
        };
        for (code, name) in REQUIRED_OPCODES {
            assert!(opcodes.has(*code), "{name}");
        }
        // IORING_OP_LAST grows with each kernel; nothing past 255 exists.
        assert!(!opcodes.has(u8::MAX));
        let waitid = kernel_version() >= (6, 7);
        assert_eq!(opcodes.has(opcode::WaitId::CODE), waitid);
    }

    #[test]
    fn the_kernel_has_every_opcode_and_feature_loom_uses() {
        match crate::driver::uring::Uring::probe() {
            Ok(()) => {}
            // Below 5.11 (or where io_uring is refused) Auto must fall back.
            Err(e) if kernel_version() < (5, 11) => {
                say(&format!("no io_uring on this kernel: {e}"))
            }
            Err(e) => panic!("kernel {:?}: {e}", kernel_version()),
        }
    }
}
