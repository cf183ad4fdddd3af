//! Stack-overflow reporting for fibers.
//!
//! A fiber that runs off the bottom of its stack touches the guard page
//! below it and the kernel raises SIGSEGV (SIGBUS on some platforms). The
//! handler installed here runs on the thread's alternate signal stack — the
//! fiber stack is exhausted — looks the faulting address up in a fixed table
//! of stack reservations, and if it is a fiber guard page prints
//!
//! ```text
//! fiber '<name>' (#<id>) has overflowed its stack of <N> KiB
//! ```
//!
//! and aborts, as std does for threads. Everything it does is
//! async-signal-safe: atomic loads from a static table, reads of the fiber's
//! control block (at the top of the overflowing stack, which is intact), a
//! message formatted into a buffer on the signal stack, `write(2)` and
//! `abort(3)`. Faults anywhere else go to the handler that was installed
//! before ours (std's, typically), or to the default action.

use super::chunks::guard_slot_top;
use super::control;
use std::io;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::Once;

const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];
static mut PREVIOUS: [MaybeUninit<libc::sigaction>; 2] =
    [MaybeUninit::uninit(), MaybeUninit::uninit()];

fn install_handler() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        for (i, &signal) in SIGNALS.iter().enumerate() {
            // SAFETY: PREVIOUS is written only here, once, before our handler
            // (its only reader) is installed for this signal; sigaction gets
            // valid pointers to initialised structs.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = handle_fault as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                let previous = &raw mut PREVIOUS[i];
                if libc::sigaction(signal, &action, (*previous).as_mut_ptr()) != 0 {
                    log::warn!(
                        "cannot install the fiber stack-overflow handler: {}",
                        io::Error::last_os_error()
                    );
                }
            }
        }
    });
}

extern "C" fn handle_fault(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers.
    let addr = unsafe { fault_address(info) };
    if let Some(top) = guard_slot_top(addr) {
        // SAFETY: `top` is the end of a registered slot whose guard page was
        // hit; the slot's memory above the guard is mapped.
        if let Some(fiber) = unsafe { control::describe_for_overflow(top) } {
            report_overflow_and_abort(&fiber);
        }
    }
    let index = if signal == libc::SIGSEGV { 0 } else { 1 };
    // SAFETY: PREVIOUS[index] was initialised before this handler was
    // installed and is never written again.
    let previous = unsafe { &*(&raw const PREVIOUS).cast::<libc::sigaction>().add(index) };
    let handler = previous.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Not ours: restore the old disposition and return, so the faulting
        // instruction runs again and gets the default action.
        // SAFETY: restoring a disposition the kernel gave us earlier.
        unsafe { libc::sigaction(signal, previous, ptr::null_mut()) };
    } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was registered with SA_SIGINFO, so it
        // has this signature and expects these arguments.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        f(signal, info, context);
    } else {
        // SAFETY: a handler registered without SA_SIGINFO takes the signal only.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        f(signal);
    }
}

/// # Safety
/// `info` points to the siginfo_t of a SIGSEGV/SIGBUS.
unsafe fn fault_address(info: *mut libc::siginfo_t) -> usize {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: forwarded from this function's contract.
    let addr = unsafe { (*info).si_addr() };
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    // SAFETY: forwarded from this function's contract.
    let addr = unsafe { (*info).si_addr };
    addr as usize
}

fn report_overflow_and_abort(fiber: &control::OverflowReport) -> ! {
    let mut buf = [0u8; 256];
    let mut len = 0;
    let mut push = |bytes: &[u8]| {
        let n = bytes.len().min(buf.len() - len);
        buf[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    let mut digits = [0u8; 20];
    push(b"\nfiber '");
    push(fiber.name());
    push(b"' (#");
    push(format_decimal(fiber.id, &mut digits));
    push(b") has overflowed its stack of ");
    push(format_decimal(
        (fiber.stack_bytes / 1024) as u64,
        &mut digits,
    ));
    push(b" KiB\nfatal runtime error: stack overflow, aborting\n");
    // SAFETY: write(2) and abort(3) are async-signal-safe; `buf` is valid
    // for `len` bytes.
    unsafe {
        libc::write(libc::STDERR_FILENO, buf.as_ptr().cast(), len);
        libc::abort();
    }
}

fn format_decimal(mut value: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &digits[i..];
        }
    }
}

/// An alternate signal stack for a loop thread that has none, removed again
/// when dropped. std gives its own threads one; threads created by other
/// means (or with std's handler disabled) may not have one, and without it
/// the overflow handler could not run on an exhausted fiber stack.
#[derive(Debug)]
pub(crate) struct AltStack {
    mapping: *mut libc::c_void,
    len: usize,
}

impl AltStack {
    const BYTES: usize = 64 * 1024;

    /// Installs the overflow handler (once per process) and an alternate
    /// signal stack for this thread if it has none; every loop thread calls
    /// it before its first fiber runs.
    pub(crate) fn ensure() -> io::Result<Option<AltStack>> {
        install_handler();
        // SAFETY: querying with a null new stack only writes `current`.
        let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
        crate::sys::syscall!(sigaltstack(ptr::null(), &mut current))?;
        if current.ss_flags & libc::SS_DISABLE == 0 {
            return Ok(None);
        }
        let page = crate::sys::page_size();
        let len = Self::BYTES + page;
        // SAFETY: a fresh anonymous mapping touches no existing memory.
        let mapping = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANON,
                -1,
                0,
            )
        };
        if mapping == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = AltStack { mapping, len };
        // The lowest page guards the signal stack itself.
        crate::sys::syscall!(mprotect(mapping, page, libc::PROT_NONE))?;
        let new = libc::stack_t {
            // SAFETY: `page` < `len`, so the pointer stays inside the mapping.
            ss_sp: unsafe { mapping.cast::<u8>().add(page) }.cast(),
            ss_flags: 0,
            ss_size: Self::BYTES,
        };
        crate::sys::syscall!(sigaltstack(&new, ptr::null_mut()))?;
        Ok(Some(stack))
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let disable = libc::stack_t {
            ss_sp: ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        // SAFETY: we are not running on the alternate stack (this is ordinary
        // code, not a signal handler), so disabling and unmapping it is sound.
        unsafe {
            libc::sigaltstack(&disable, ptr::null_mut());
            libc::munmap(self.mapping, self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_formatting() {
        let mut d = [0u8; 20];
        assert_eq!(format_decimal(0, &mut d), b"0");
        assert_eq!(format_decimal(64, &mut d), b"64");
        assert_eq!(format_decimal(u64::MAX, &mut d), b"18446744073709551615");
    }
}
