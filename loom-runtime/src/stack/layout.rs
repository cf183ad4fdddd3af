//! Where things go in a fiber's stack slot, and the first frame a fiber
//! runs: the control block at the top (`control.rs`), the fiber's
//! `thread::Result<T>` under it, then the stack corosensei runs on.

use std::io;
use std::mem::MaybeUninit;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::thread;

use corosensei::Yielder;
use corosensei::stack::STACK_ALIGNMENT;

use super::control::{FiberControl, FiberName, SlotIdent, TOP_BYTES, control_addr};
use super::pool::{PooledStack, StackSlot};
use crate::sys::page_size;

/// Stack a fiber keeps below its result slot, at the least.
const MIN_FRAME_BYTES: usize = 8 * 1024;

/// Where a fiber returning `T` keeps its result and where its usable stack
/// begins, as distances below the slot's (page-aligned) top. The one place
/// that decides the layout drawn in `control.rs`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResultLayout {
    result_below_top: usize,
    base_below_top: usize,
}

impl ResultLayout {
    /// Lays out `thread::Result<T>` under the control block, refusing types
    /// that would leave less than `MIN_FRAME_BYTES` of the stack to run on.
    pub(crate) fn of<T>(stack_bytes: usize) -> io::Result<ResultLayout> {
        let size = size_of::<thread::Result<T>>();
        let align = align_of::<thread::Result<T>>();
        // Offsets from a page-aligned top keep their alignment only for
        // alignments up to a page.
        let result_below_top = if align <= page_size() {
            Some(crate::sys::round_up(TOP_BYTES + size, align))
        } else {
            None
        };
        let layout = result_below_top.map(|result_below_top| ResultLayout {
            result_below_top,
            base_below_top: crate::sys::round_up(result_below_top, STACK_ALIGNMENT),
        });
        match layout {
            Some(layout) if layout.base_below_top + MIN_FRAME_BYTES <= stack_bytes => Ok(layout),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a fiber's return value of {} bytes (alignment {align}) does not fit its {} KiB \
                     stack with {} KiB to spare; return a Box or use a larger stack_size",
                    size_of::<T>(),
                    stack_bytes / 1024,
                    MIN_FRAME_BYTES / 1024
                ),
            )),
        }
    }
}

/// Writes the control block and the coroutine into `slot`.
///
/// # Safety
/// Nothing else uses `slot`'s memory, and `layout` is
/// `ResultLayout::of::<T>` for the slot's stack size. Whatever `f` and `T`
/// borrow stays valid until the fiber has finished — for ever if it never
/// does (a fiber abandoned at shutdown: its stack is leaked, never unmapped
/// or reused, and its coroutine never dropped). `'static` types meet this
/// trivially; scoped fibers (`fiber/scope.rs`) meet it by their scope's
/// wait.
#[inline]
pub(crate) unsafe fn init_fiber<F, T>(
    slot: StackSlot,
    layout: ResultLayout,
    id: u64,
    name: FiberName,
    f: F,
) -> NonNull<FiberControl>
where
    F: FnOnce() -> T,
{
    let control_addr = control_addr(slot.top);
    let result_addr = slot.top - layout.result_below_top;
    let base = slot.top - layout.base_below_top;
    debug_assert!(base >= slot.guard + page_size() + MIN_FRAME_BYTES);
    let control = control_addr as *mut FiberControl;
    // SAFETY: the slot's top bytes are ours (contract) and page-aligned top
    // minus a multiple of 64 satisfies the block's alignment.
    unsafe { control.write(FiberControl::new(slot, result_addr as *mut u8, id, name)) };
    // SAFETY: a slot's top is mapped, and its identity bytes are only ever
    // accessed as a SlotIdent (the pool's free-list node sits below them).
    unsafe { SlotIdent::at(slot.top) }.publish(id, &name);
    let entry_control = control.cast_const();
    let body = move |yielder: &Yielder<(), ()>, ()| {
        // SAFETY: the block outlives the coroutine running on its stack.
        unsafe { fiber_entry::<F, T>(&*entry_control, yielder, f) }
    };
    // SAFETY: what `body` borrows — `f`'s borrows and `T`'s — outlives the
    // coroutine's run, or for ever if it is abandoned (this function's
    // contract): corosensei's condition for a non-'static closure.
    let coroutine =
        unsafe { corosensei::Coroutine::with_stack_unchecked(PooledStack::new(&slot, base), body) };
    // SAFETY: `control` was initialised above; nothing else references it yet.
    unsafe {
        (*control)
            .coroutine
            .get()
            .write(MaybeUninit::new(coroutine));
        NonNull::new_unchecked(control)
    }
}

/// The first frame of every fiber.
///
/// # Safety
/// `control` is this fiber's block and `control.result` points to space for
/// a `thread::Result<T>` in the same slot.
unsafe fn fiber_entry<F, T>(control: &FiberControl, yielder: &Yielder<(), ()>, f: F)
where
    F: FnOnce() -> T,
{
    control.yielder.set(yielder);
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    if control.detached.get() {
        // Nobody will look at it; drop it here, on the fiber's own stack,
        // where a panicking destructor harms no one else.
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(outcome))) {
            std::mem::forget(payload);
        }
    } else {
        // SAFETY: `result` is reserved for exactly this type (contract) and
        // is written once, here.
        unsafe { control.result.cast::<thread::Result<T>>().write(outcome) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(align(256))]
    struct Aligned {
        _bytes: [u8; 300],
    }

    #[test]
    fn result_layout_is_aligned_and_clear_of_the_control_block() {
        fn check<T>() {
            let top = 64 * 1024 * 4; // any page-aligned address will do
            let layout = ResultLayout::of::<T>(64 * 1024).unwrap();
            let result = top - layout.result_below_top;
            assert_eq!(result % align_of::<thread::Result<T>>(), 0);
            assert!(result + size_of::<thread::Result<T>>() <= control_addr(top));
            assert_eq!((top - layout.base_below_top) % STACK_ALIGNMENT, 0);
            assert!(layout.base_below_top >= layout.result_below_top);
        }
        check::<()>();
        check::<u8>();
        check::<u128>();
        check::<Aligned>();
        check::<String>();
    }

    #[test]
    fn result_layout_refuses_results_that_leave_too_little_stack() {
        assert!(ResultLayout::of::<[u8; 4096]>(16 * 1024).is_ok());
        let err = ResultLayout::of::<[u8; 12 * 1024]>(16 * 1024).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
