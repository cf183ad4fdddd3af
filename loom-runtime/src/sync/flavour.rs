//! The two flavours every primitive comes in, and the lock each uses for
//! its own short bookkeeping.
//!
//! [`Local`] primitives are shared between fibers of one loop: their state
//! sits behind a `Cell` flag instead of a lock, their handles are `Rc`s, and
//! they are `!Send`. [`Shared`] primitives work between loops and plain
//! threads: their state sits behind a `std::sync::Mutex`, held only for a
//! few instructions and never across a fiber switch or user code, and
//! wake-ups of fibers on other loops go through those loops' mailboxes.

use std::cell::{Cell, UnsafeCell};
use std::marker::PhantomData;
use std::ops::Deref;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};

/// Selects the [`Local`] or [`Shared`] flavour of a primitive. Sealed.
pub trait Flavour: private::Sealed + Sized + 'static {
    #[doc(hidden)]
    type Lock<S>: private::RawLock<S>;
    #[doc(hidden)]
    type Ref<X>: Deref<Target = X> + Clone;
    #[doc(hidden)]
    const CROSS_THREAD: bool;
    #[doc(hidden)]
    fn new_ref<X>(value: X) -> Self::Ref<X>;
}

/// Primitives for fibers of one loop: no atomics, no locks, `!Send`.
#[derive(Debug)]
pub enum Local {}

/// Primitives that work across loops and threads: `Send + Sync` when what
/// they hold is `Send`.
#[derive(Debug)]
pub enum Shared {}

impl Flavour for Local {
    type Lock<S> = LocalLock<S>;
    type Ref<X> = Rc<X>;
    const CROSS_THREAD: bool = false;
    fn new_ref<X>(value: X) -> Rc<X> {
        Rc::new(value)
    }
}

impl Flavour for Shared {
    type Lock<S> = SharedLock<S>;
    type Ref<X> = Arc<X>;
    const CROSS_THREAD: bool = true;
    fn new_ref<X>(value: X) -> Arc<X> {
        Arc::new(value)
    }
}

pub(crate) use private::RawLock;

mod private {
    /// Access to a primitive's bookkeeping, one closure at a time. The
    /// closures are the runtime's own: they never run user code (values
    /// of user types are moved in and out, never dropped inside) and never
    /// switch fibers, so holding a lock is always brief and never nested.
    pub trait RawLock<S> {
        /// Wraps `state`.
        fn new(state: S) -> Self;
        /// Runs `f` with exclusive access to the state.
        fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R;
        /// Exclusive access through an exclusive borrow.
        fn get_mut(&mut self) -> &mut S;
    }

    pub trait Sealed {}
    impl Sealed for super::Local {}
    impl Sealed for super::Shared {}
}

/// The [`Local`] flavour's lock: a re-entrancy flag, no atomics.
#[derive(Debug)]
pub struct LocalLock<S> {
    busy: Cell<bool>,
    state: UnsafeCell<S>,
    /// Local primitives stay on their loop's thread.
    _not_send: PhantomData<*const ()>,
}

impl<S> RawLock<S> for LocalLock<S> {
    fn new(state: S) -> Self {
        LocalLock {
            busy: Cell::new(false),
            state: UnsafeCell::new(state),
            _not_send: PhantomData,
        }
    }

    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        // The closures never re-enter (see RawLock), but this check is what
        // makes the `&mut` below sound whatever they do.
        assert!(
            !self.busy.replace(true),
            "loom: a local sync primitive was used re-entrantly"
        );
        // SAFETY: `busy` guarantees this is the only live borrow, and the
        // type is !Send and !Sync, so no other thread can reach it.
        let result = f(unsafe { &mut *self.state.get() });
        self.busy.set(false);
        result
    }

    fn get_mut(&mut self) -> &mut S {
        self.state.get_mut()
    }
}

/// The [`Shared`] flavour's lock.
#[derive(Debug)]
pub struct SharedLock<S> {
    state: Mutex<S>,
}

impl<S> RawLock<S> for SharedLock<S> {
    fn new(state: S) -> Self {
        SharedLock {
            state: Mutex::new(state),
        }
    }

    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        // No user code runs under the lock (see RawLock), so it is never
        // poisoned by a panic that left the state half-updated.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut state)
    }

    fn get_mut(&mut self) -> &mut S {
        self.state.get_mut().unwrap_or_else(PoisonError::into_inner)
    }
}
