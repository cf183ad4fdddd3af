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

use std::io;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::control;

/// Maximum number of stack reservations alive at once, over all loops.
/// Pools grow by doubling, so this is never the binding limit in practice.
pub const MAX_CHUNKS: usize = 1024;

struct ChunkRecord {
    claimed: AtomicBool,
    /// Start of the reservation, or 0 while the record is not published.
    start: AtomicUsize,
    len: AtomicUsize,
    stride: AtomicUsize,
    guard_bytes: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: ChunkRecord = ChunkRecord {
    claimed: AtomicBool::new(false),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    stride: AtomicUsize::new(0),
    guard_bytes: AtomicUsize::new(0),
};

static CHUNKS: [ChunkRecord; MAX_CHUNKS] = [EMPTY; MAX_CHUNKS];

/// Publishes a reservation of `len` bytes made of `stride`-byte slots, each
/// starting with `guard_bytes` of guard. Installs the signal handler on
/// first use.
pub(crate) fn register_chunk(
    start: usize,
    len: usize,
    stride: usize,
    guard_bytes: usize,
) -> io::Result<usize> {
    install_handler();
    for (index, record) in CHUNKS.iter().enumerate() {
        if record
            .claimed
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            record.len.store(len, Ordering::Relaxed);
            record.stride.store(stride, Ordering::Relaxed);
            record.guard_bytes.store(guard_bytes, Ordering::Relaxed);
            // Publish last: the handler reads `start` with Acquire first.
            record.start.store(start, Ordering::Release);
            return Ok(index);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!("too many fiber stack reservations alive at once (limit {MAX_CHUNKS})"),
    ))
}

pub(crate) fn unregister_chunk(index: usize) {
    let record = &CHUNKS[index];
    record.start.store(0, Ordering::Release);
    record.claimed.store(false, Ordering::Release);
}

/// If `addr` lies in the guard page of a slot, the slot's top address.
fn guard_slot_top(addr: usize) -> Option<usize> {
    for record in &CHUNKS {
        let start = record.start.load(Ordering::Acquire);
        if start == 0 || addr < start {
            continue;
        }
        let len = record.len.load(Ordering::Relaxed);
        let stride = record.stride.load(Ordering::Relaxed);
        let guard = record.guard_bytes.load(Ordering::Relaxed);
        if addr - start < len && (addr - start) % stride < guard {
            let slot = (addr - start) / stride;
            return Some(start + (slot + 1) * stride);
        }
    }
    None
}

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

    /// Installs an alternate signal stack if the thread has none.
    pub(crate) fn ensure() -> io::Result<Option<AltStack>> {
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

    #[test]
    fn guard_lookup_maps_addresses_to_slots() {
        // A fake reservation far from anything real; only the table is used.
        let start = 0x7000_0000_0000usize;
        let index = register_chunk(start, 3 * 0x5000, 0x5000, 0x1000).unwrap();
        assert_eq!(guard_slot_top(start), Some(start + 0x5000));
        assert_eq!(guard_slot_top(start + 0x5000 + 0xfff), Some(start + 0xa000));
        assert_eq!(
            guard_slot_top(start + 0x1000),
            None,
            "the stack itself is not a guard"
        );
        assert_eq!(guard_slot_top(start + 3 * 0x5000), None, "past the end");
        unregister_chunk(index);
        assert_eq!(guard_slot_top(start), None);
    }
}
