//! Scoped fibers: [`scope`], shaped like [`std::thread::scope`]. Fibers
//! spawned in a scope may borrow from the caller's stack, because `scope`
//! returns — or unwinds, or is abandoned with its stack leaked — only after
//! every one of them has finished.
//!
//! How that rule is kept on every path is written once, at the one place a
//! scoped closure's lifetime is erased ([`Scope::spawn_with`]), and in
//! docs/ARCHITECTURE.md ("Scoped fibers").

use std::cell::Cell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::rc::Rc;
use std::thread;

use super::join::JoinHandle;
use crate::list::{Link, List, container_of};
use crate::rt::current::{current_rc, with_current};
use crate::rt::event_loop::EventLoop;
use crate::stack::control::{Fiber, FiberControl, FiberName};
use crate::stats::WaitKind;

/// Creates a scope for spawning fibers that borrow from the caller.
///
/// `f` gets a [`Scope`] to spawn fibers with. They run on the current
/// loop, like any fiber, and may borrow anything that outlives the call to
/// `scope` — locals of the calling fiber included. Every fiber spawned in
/// the scope has finished by the time `scope` returns, whether or not it
/// was joined; the fiber calling `scope` waits for them after `f` returns.
///
/// Like [`std::thread::scope`]: if a scoped fiber panicked and its handle
/// was not joined, `scope` panics (with "a scoped fiber panicked") once
/// all have finished; if `f` panics, the scoped fibers are cancelled, and
/// once all have finished `f`'s panic is resumed.
///
/// # Cancellation
///
/// Waiting for the scoped fibers cannot be cut short — not by cancellation,
/// not by a call-tree deadline (`loom::time::with_deadline`): what they
/// borrow must outlive them. If the calling fiber is cancelled (by a
/// handle, or at shutdown), its scoped fibers are cancelled once `f` is
/// over (or at once, if `f` is already over) and still waited for: their
/// blocking calls then fail with the cancellation error
/// ([`is_cancelled`](crate::fiber::is_cancelled)), so they usually end
/// quickly. A scoped fiber that ignores its cancellation keeps the scope
/// waiting; at shutdown, after the grace period, the runtime abandons both
/// — their stacks are leaked, never freed or reused, so the borrows stay
/// valid.
///
/// Scoped fibers inherit the call-tree deadline in force on the fiber that
/// spawns them (`loom::time::deadline()`): their work is part of that call.
///
/// # Panics
///
/// Outside a fiber; see above for panics of `f` and of scoped fibers.
///
/// # Examples
///
/// ```
/// loom::Runtime::builder().build()?.run(|| {
///     let mut numbers = vec![1, 2, 3, 4];
///     let label = String::from("sum");
///     let (left, right) = numbers.split_at_mut(2);
///     let total = loom::fiber::scope(|s| {
///         // Both halves are borrowed mutably, each by one fiber.
///         let a = s.spawn(|| {
///             left.iter_mut().for_each(|n| *n *= 10);
///             left.iter().sum::<i32>()
///         });
///         let b = s.spawn(|| {
///             right.iter_mut().for_each(|n| *n *= 10);
///             right.iter().sum::<i32>()
///         });
///         // `label` is borrowed, not moved.
///         s.spawn(|| assert_eq!(label, "sum"));
///         a.join().unwrap() + b.join().unwrap()
///     });
///     assert_eq!(total, 100);
///     assert_eq!(numbers, [10, 20, 30, 40]);
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// A [`Scope`] cannot leave its loop's thread (it is not `Sync`):
///
/// ```compile_fail
/// loom::Runtime::builder().build().unwrap().run(|| {
///     loom::fiber::scope(|s| {
///         std::thread::scope(|t| {
///             t.spawn(|| {
///                 s.spawn(|| ());
///             });
///         });
///     });
/// });
/// ```
///
/// and a scoped fiber's handle cannot outlive its scope:
///
/// ```compile_fail
/// loom::Runtime::builder().build().unwrap().run(|| {
///     let mut escaped = None;
///     loom::fiber::scope(|s| escaped = Some(s.spawn(|| ())));
/// });
/// ```
#[track_caller]
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let event_loop = current_rc("loom::fiber::scope");
    let Some(owner) = event_loop.sched.current() else {
        panic!("loom: loom::fiber::scope must be called from a fiber");
    };
    let scope = Scope {
        state: ScopeState {
            event_loop,
            owner,
            running: Cell::new(0),
            owner_waiting: Cell::new(false),
            cancelled: Cell::new(false),
            a_child_panicked: Cell::new(false),
            members: List::new(),
        },
        scope: PhantomData,
        env: PhantomData,
        not_send: PhantomData,
    };
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| f(&scope)));
    // Unwinding past the wait would free what the scoped fibers borrow while
    // they run. Nothing in it panics; if something ever did, abort.
    let abort_if_unwinding = AbortOnUnwind;
    if outcome.is_err() {
        scope.state.cancel();
    }
    scope.state.wait_for_children();
    std::mem::forget(abort_if_unwinding);
    match outcome {
        Err(payload) => panic::resume_unwind(payload),
        Ok(_) if scope.state.a_child_panicked.get() => panic!("a scoped fiber panicked"),
        Ok(value) => value,
    }
}

/// A scope to spawn fibers in; see [`scope`].
///
/// `'scope` is the lifetime of the scope itself: fibers spawned in it may
/// borrow anything that outlives it, and their handles cannot outlive it.
/// `'env` is the lifetime of what the scope borrows from its caller.
///
/// A `Scope` is neither `Send` nor `Sync`: its fibers run on the loop of
/// the fiber that called [`scope`], and only fibers of that loop — the
/// caller and the scoped fibers themselves — can reach it.
///
/// # Examples
///
/// ```
/// use std::cell::Cell;
///
/// loom::Runtime::builder().build()?.run(|| {
///     let done = Cell::new(0);
///     loom::fiber::scope(|s| {
///         for _ in 0..3 {
///             // Scoped fibers may spawn more scoped fibers.
///             s.spawn(|| {
///                 s.spawn(|| done.set(done.get() + 1));
///                 done.set(done.get() + 1);
///             });
///         }
///     });
///     assert_eq!(done.get(), 6);
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Scope<'scope, 'env: 'scope> {
    state: ScopeState,
    /// Invariant in `'scope` and `'env`, as std's: neither may be shortened
    /// or lengthened behind the scope's back.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
    /// Neither `Send` nor `Sync`, whatever the fields: the scope's fibers
    /// and its bookkeeping belong to one loop's thread (invariant 2).
    not_send: PhantomData<*const ()>,
}

/// What a scope keeps track of; lives in the frame of [`scope`], which
/// outlives every fiber spawned in it.
struct ScopeState {
    /// The loop of the fiber that called [`scope`]. Holding it also keeps
    /// the loop's stack pool mapped for as long as this frame exists or is
    /// leaked, whatever happens to the runtime.
    event_loop: Rc<EventLoop>,
    /// The fiber that called [`scope`] and waits for the scoped fibers.
    owner: NonNull<FiberControl>,
    /// Scoped fibers spawned and not yet finished.
    running: Cell<usize>,
    /// The owner is suspended in [`ScopeState::wait_for_children`].
    owner_waiting: Cell<bool>,
    /// Sticky: every scoped fiber, including those spawned from now on, is
    /// cancelled.
    cancelled: Cell<bool>,
    /// A scoped fiber panicked and its handle will not report it.
    a_child_panicked: Cell<bool>,
    /// The scoped fibers that have started and not finished: one
    /// [`Member`] in the frame of each.
    members: List,
}

/// A started scoped fiber's entry in its scope's `members`; lives in the
/// fiber's own frame and unlinks itself when dropped there.
struct Member<'a> {
    link: Link,
    fiber: NonNull<FiberControl>,
    members: &'a List,
}

impl Drop for Member<'_> {
    fn drop(&mut self) {
        if self.link.is_linked() {
            // SAFETY: a member is only ever linked into `self.members`.
            unsafe { self.members.remove(&self.link) };
        }
    }
}

/// Aborts the process if dropped: it is forgotten on the normal path.
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        eprintln!("loom: a fiber scope unwound while its fibers may still run; aborting");
        std::process::abort();
    }
}

const SPAWN: &str = "loom::fiber::Scope::spawn";

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Spawns `f` as a fiber in this scope and returns its handle.
    ///
    /// Like [`crate::spawn`], the new fiber is queued behind the fibers
    /// already runnable and the caller keeps running; spawning takes a
    /// pooled stack and allocates nothing. Unlike it, `f` may borrow
    /// anything that outlives the scope. The fiber is joined (waited for)
    /// before [`scope`] returns, even if its handle is dropped; use
    /// [`ScopedJoinHandle::join`] to get its result earlier, or its panic.
    ///
    /// # Panics
    ///
    /// As [`crate::spawn`]: if the calling fiber is cancelled while waiting
    /// for a stack, if no stack can be reserved, or if `T` is too large to
    /// be kept on the fiber's stack (see
    /// [`Builder::spawn_scoped`](crate::fiber::Builder::spawn_scoped) for
    /// these as errors); also if called from a fiber of another loop.
    ///
    /// # Examples
    ///
    /// ```
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let words = ["fibers", "borrow", "safely"];
    ///     let lengths = loom::fiber::scope(|s| {
    ///         let handles: Vec<_> = words.iter().map(|w| s.spawn(|| w.len())).collect();
    ///         handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    ///     });
    ///     assert_eq!(lengths, [6, 6, 6]);
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + 'scope,
        T: 'scope,
    {
        match self.spawn_with(FiberName::empty(), None, f) {
            Ok(handle) => handle,
            Err(e) => panic!("{SPAWN} failed: {e}"),
        }
    }

    /// Cancels every fiber of this scope — those running and those spawned
    /// in it from now on: their current or next blocking call returns the
    /// cancellation error ([`is_cancelled`](crate::fiber::is_cancelled)), as
    /// [`JoinHandle::cancel`] does. It does not wait for them, and does not
    /// cancel the fiber that called [`scope`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let slept = loom::fiber::scope(|s| {
    ///         let sleepers: Vec<_> = (0..3)
    ///             .map(|_| s.spawn(|| loom::time::sleep(Duration::from_secs(60))))
    ///             .collect();
    ///         loom::yield_now();
    ///         s.cancel();
    ///         sleepers.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    ///     });
    ///     assert!(slept.iter().all(|r| r.as_ref().is_err_and(loom::fiber::is_cancelled)));
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn cancel(&self) {
        self.state.cancel();
    }

    /// Spawns `f` in this scope with the given name and stack size
    /// (`None`: the runtime's default, else already validated).
    #[track_caller]
    pub(super) fn spawn_with<F, T>(
        &'scope self,
        name: FiberName,
        stack_bytes: Option<usize>,
        f: F,
    ) -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + 'scope,
        T: 'scope,
    {
        let state: &'scope ScopeState = &self.state;
        let event_loop = &state.event_loop;
        let on_this_loop = with_current(SPAWN, |lp| ptr::eq(lp, Rc::as_ptr(event_loop)));
        assert!(
            on_this_loop,
            "loom: {SPAWN} must be called from a fiber of the scope's loop"
        );
        let spawner = event_loop.current_fiber(SPAWN);
        let body = move || state.run_child(f);
        // SAFETY: this is the one place a scoped fiber's closure and result
        // lose their lifetime: `body` and `T` borrow only what outlives
        // 'scope, so spawn_unchecked's contract holds by the scope's rule —
        // *`scope` returns only after every child finished*:
        // - the child counts in `running` from here (no switch between the
        //   spawn and the increment) until the last thing it does with the
        //   scope (`run_child`); after that it runs no code that borrows
        //   (a result it leaves is read by its handle, which lives within
        //   'scope, or was dropped before it stopped counting);
        // - `scope` returns only through `wait_for_children`, which ends
        //   only when `running` is 0: after `f` returns, and after `f`
        //   panicked (the unwind is caught, the children cancelled, then
        //   waited for); cancellation and deadlines of the scope's fiber do
        //   not end that wait — it only passes the cancellation on;
        // - the wait cannot unwind (`AbortOnUnwind`); with panic = "abort"
        //   a panic ends the process before anything borrowed is freed;
        // - if the loop abandons the scope's fiber (shutdown, a deadlock
        //   cancellation cannot resolve), it abandons it still waiting:
        //   its stack is leaked — never unmapped or reused, its coroutine
        //   never dropped, so no destructor runs on it — and `state` holds
        //   the loop's `Rc`, keeping its stack pool mapped in any case;
        // - the child runs on the scope's loop (checked above; a `Scope` is
        //   !Send and !Sync), the only thread that may free what it borrows.
        let spawned = unsafe { event_loop.spawn_unchecked(name, stack_bytes, body) }?;
        state.running.set(state.running.get() + 1);
        // SAFETY: the fiber was just spawned and has not run, so its block
        // is valid.
        unsafe { spawned.fiber.as_ref() }.inherit_deadline(spawner);
        Ok(ScopedJoinHandle {
            inner: Some(JoinHandle::new(Rc::clone(event_loop), spawned)),
            scope: state,
        })
    }
}

impl ScopeState {
    /// The body of every scoped fiber: runs `f`, then stops counting as
    /// running. What it returns is `None` if its handle is gone (the
    /// result was dropped here, while the scope still waited).
    fn run_child<T>(&self, f: impl FnOnce() -> T) -> Option<thread::Result<T>> {
        let me = self.event_loop.current_fiber("a scoped fiber");
        if self.cancelled.get() {
            me.cancelled.set(true);
        }
        let outcome = {
            let member = Member {
                link: Link::new(),
                fiber: NonNull::from(me),
                members: &self.members,
            };
            // SAFETY: `member` stays in this block's frame and is never
            // moved; its Drop unlinks it before the block ends.
            unsafe { self.members.push_back(&member.link) };
            let outcome = panic::catch_unwind(AssertUnwindSafe(f));
            if me.detached.get() {
                // Nobody will see the result: drop it now, while the scope
                // still waits, since it may borrow from the scope's caller.
                if outcome.is_err() {
                    self.a_child_panicked.set(true);
                }
                drop_quietly(outcome);
                None
            } else {
                Some(outcome)
            }
        };
        self.child_finished();
        outcome
    }

    /// The last thing a scoped fiber does with its scope.
    fn child_finished(&self) {
        let left = self.running.get() - 1;
        self.running.set(left);
        if left == 0 && self.owner_waiting.get() {
            // The owner runs again only after this fiber has switched out
            // for good: it does not switch between here and its return.
            self.event_loop.sched.wake(self.owner);
        }
    }

    fn cancel(&self) {
        self.cancelled.set(true);
        self.members.for_each(|link| {
            // SAFETY: only `Member`s are linked here, and a linked member
            // is alive in its fiber's frame. Cancelling only queues the
            // fiber; it does not touch `members`.
            let fiber = unsafe { (*container_of!(link, Member<'static>, link)).fiber };
            self.event_loop.cancel(fiber);
        });
    }

    /// Suspends the owner until every scoped fiber has finished.
    /// Deliberately not a cancellation point: the owner's cancellation is
    /// passed on to the scoped fibers, and the wait goes on.
    fn wait_for_children(&self) {
        // SAFETY: the owner is the running fiber (it called `scope`, whose
        // frame holds `self`), so its block is valid.
        let owner = unsafe { self.owner.as_ref() };
        debug_assert_eq!(self.event_loop.sched.current(), Some(self.owner));
        while self.running.get() > 0 {
            if owner.cancelled.get() && !self.cancelled.get() {
                self.cancel();
            }
            self.owner_waiting.set(true);
            self.event_loop.sched.suspend(WaitKind::Join);
            self.owner_waiting.set(false);
        }
    }
}

/// Drops a result nobody will look at; a panicking destructor must not
/// unwind out of the fiber before it stopped counting as running.
fn drop_quietly<T>(outcome: thread::Result<T>) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(outcome))) {
        std::mem::forget(payload);
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("running", &self.state.running.get())
            .field("cancelled", &self.state.cancelled.get())
            .field("a_child_panicked", &self.state.a_child_panicked.get())
            .finish_non_exhaustive()
    }
}

/// An owned permission to join a scoped fiber; see [`Scope::spawn`].
///
/// Dropping it does not detach the fiber from the scope: [`scope`] still
/// waits for it, and reports its panic. Like [`JoinHandle`], it is
/// `!Send`.
pub struct ScopedJoinHandle<'scope, T> {
    /// `None` only while `join` or `drop` takes it.
    inner: Option<JoinHandle<Option<thread::Result<T>>>>,
    scope: &'scope ScopeState,
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the fiber to finish and returns its result: `Ok` with its
    /// return value, or `Err` with the payload it panicked with, like
    /// [`std::thread::ScopedJoinHandle::join`]. A panic reported here is
    /// not reported again by [`scope`].
    ///
    /// # Cancellation
    ///
    /// As [`JoinHandle::join`]: if the joining fiber is cancelled, `join`
    /// returns `Err` with an [`std::io::Error`] `ECANCELED` payload; the
    /// fiber keeps running, and [`scope`] still waits for it (and reports
    /// its panic, if it panics).
    ///
    /// # Panics
    ///
    /// If the fiber has not finished and the caller is that fiber itself.
    ///
    /// # Examples
    ///
    /// ```
    /// loom::Runtime::builder().build()?.run(|| {
    ///     let base = 40;
    ///     loom::fiber::scope(|s| {
    ///         let ok = s.spawn(|| base + 2);
    ///         let failed = s.spawn(|| -> i32 { panic!("boom") });
    ///         assert_eq!(ok.join().unwrap(), 42);
    ///         assert!(failed.join().is_err()); // handled: `scope` does not panic
    ///     });
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn join(mut self) -> thread::Result<T> {
        let inner = self.take_inner();
        match inner.join() {
            Ok(Some(result)) => result,
            // The fiber leaves `None` only if its handle was dropped, and
            // this one was not.
            Ok(None) => unreachable!("loom: a joined scoped fiber dropped its own result"),
            Err(interrupted) => Err(interrupted),
        }
    }

    /// Whether the fiber has finished (returned or panicked). Never blocks.
    pub fn is_finished(&self) -> bool {
        self.inner().is_finished()
    }

    /// Cancels the fiber, as [`JoinHandle::cancel`] does.
    pub fn cancel(&self) {
        self.inner().cancel();
    }

    /// The fiber's id and name.
    pub fn fiber(&self) -> Fiber {
        self.inner().fiber()
    }

    fn inner(&self) -> &JoinHandle<Option<thread::Result<T>>> {
        self.inner
            .as_ref()
            .expect("a scoped handle holds its JoinHandle until join or drop")
    }

    fn take_inner(&mut self) -> JoinHandle<Option<thread::Result<T>>> {
        self.inner
            .take()
            .expect("a scoped handle holds its JoinHandle until join or drop")
    }
}

impl<T> Drop for ScopedJoinHandle<'_, T> {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        if inner.is_finished() {
            // Finished: `join` returns at once. Its panic is unobserved, so
            // the scope reports it, as std's does.
            if let Ok(Some(Err(_))) = inner.join() {
                self.scope.a_child_panicked.set(true);
            }
        }
        // Unfinished: dropping `inner` detaches the fiber, which then drops
        // its own result and reports its own panic (`run_child`).
    }
}

impl<T> fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedJoinHandle")
            .field("fiber", &self.fiber())
            .field("finished", &self.is_finished())
            .finish()
    }
}
