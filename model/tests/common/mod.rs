//! What the tests share: the synchronisation types they are written
//! against — the model checker's, or std's under Miri — a runner for one
//! scenario, and a model of the eventfd that wakes a parked loop.

#![allow(dead_code, unused_imports)]

#[cfg(not(miri))]
pub use loom_model::{
    sync::atomic::{AtomicBool, AtomicUsize},
    sync::{Arc, Condvar, Mutex},
    thread,
};
#[cfg(miri)]
pub use std::{
    sync::atomic::{AtomicBool, AtomicUsize},
    sync::{Arc, Condvar, Mutex},
    thread,
};

/// A cell whose accesses the model checker checks for data races (loom's
/// `UnsafeCell`); a plain `UnsafeCell` under Miri, which checks them itself.
#[cfg(not(miri))]
pub use loom_model::cell::UnsafeCell;

#[cfg(miri)]
#[derive(Debug, Default)]
pub struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(miri)]
impl<T> UnsafeCell<T> {
    pub fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// Runs `scenario` in every interleaving the model checker explores: with
/// at most `preemptions` preemptions per execution unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise. Under Miri, runs it a few times
/// on real threads (Miri picks a random interleaving and weak-memory
/// outcome each time).
pub fn check(preemptions: usize, scenario: impl Fn() + Sync + Send + 'static) {
    #[cfg(not(miri))]
    {
        let mut builder = loom_model::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(preemptions);
        }
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = std::sync::Arc::clone(&runs);
        builder.check(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            scenario();
        });
        if std::env::var_os("MODEL_STATS").is_some() {
            eprintln!(
                "explored {} executions",
                runs.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
    }
    #[cfg(miri)]
    {
        let _ = preemptions;
        let runs = std::env::var("MODEL_MIRI_RUNS")
            .ok()
            .and_then(|runs| runs.parse().ok())
            .unwrap_or(16);
        for _ in 0..runs {
            scenario();
        }
    }
}

/// An eventfd in counter mode: writes add one, a read waits for a non-zero
/// count and resets it. What a producer signals when `push` returns
/// `Ok(true)`, and what a loop that `prepare_to_sleep` allowed to sleep
/// waits on (the kernel wait returns as soon as the count is non-zero, also
/// for a signal sent before the wait began).
#[derive(Debug, Default)]
pub struct EventFd {
    count: Mutex<u64>,
    readable: Condvar,
    /// Every write ever made, for the tests' accounting.
    writes: AtomicUsize,
}

impl EventFd {
    pub fn new() -> EventFd {
        EventFd {
            count: Mutex::new(0),
            readable: Condvar::new(),
            writes: AtomicUsize::new(0),
        }
    }

    pub fn write(&self) {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *self.count.lock().unwrap() += 1;
        self.readable.notify_one();
    }

    /// Blocks until the count is non-zero, then resets it. A wait nothing
    /// ends is what the model checker reports as a deadlock.
    pub fn read(&self) -> u64 {
        let mut count = self.count.lock().unwrap();
        while *count == 0 {
            count = self.readable.wait(count).unwrap();
        }
        std::mem::take(&mut *count)
    }

    pub fn writes(&self) -> usize {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }
}
