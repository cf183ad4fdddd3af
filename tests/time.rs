//! Sleeping and the timer wheel seen from fibers.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use loom_tests::runtime;

#[test]
fn sleep_lasts_at_least_its_duration() {
    runtime().run(|| {
        for ms in [1u64, 5, 20, 70] {
            let start = Instant::now();
            loom::time::sleep(Duration::from_millis(ms)).unwrap();
            let took = start.elapsed();
            assert!(
                took >= Duration::from_millis(ms),
                "slept {took:?} for {ms} ms"
            );
            assert!(
                took < Duration::from_millis(ms + 200),
                "slept {took:?} for {ms} ms"
            );
        }
    });
}

#[test]
fn sleepers_wake_in_deadline_order() {
    let order = Rc::new(RefCell::new(Vec::new()));
    let log = order.clone();
    runtime().run(move || {
        let handles: Vec<_> = [30u64, 10, 50, 20, 1, 40]
            .into_iter()
            .map(|ms| {
                let log = log.clone();
                loom::spawn(move || {
                    loom::time::sleep(Duration::from_millis(ms)).unwrap();
                    log.borrow_mut().push(ms);
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
    });
    assert_eq!(*order.borrow(), [1, 10, 20, 30, 40, 50]);
}

#[test]
fn sleep_until_a_past_instant_returns_at_once_but_yields() {
    let order = Rc::new(RefCell::new(Vec::new()));
    let log = order.clone();
    runtime().run(move || {
        let other = {
            let log = log.clone();
            loom::spawn(move || log.borrow_mut().push("other"))
        };
        let start = Instant::now();
        loom::time::sleep_until(start - Duration::from_millis(5)).unwrap();
        loom::time::sleep(Duration::ZERO).unwrap();
        log.borrow_mut().push("main");
        assert!(start.elapsed() < Duration::from_millis(50));
        other.join().unwrap();
    });
    assert_eq!(*order.borrow(), ["other", "main"]);
}

#[test]
fn timers_fire_while_other_fibers_keep_yielding() {
    runtime().run(|| {
        let spinner = loom::spawn(|| {
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(300) {
                loom::yield_now();
            }
        });
        let start = Instant::now();
        loom::time::sleep(Duration::from_millis(10)).unwrap();
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(100),
            "a yielding fiber starved the timer: {took:?}"
        );
        spinner.join().unwrap();
    });
}

#[test]
fn many_concurrent_sleepers_across_wheel_levels() {
    let woke = runtime().run(|| {
        let start = Instant::now();
        let handles: Vec<_> = (0..500u64)
            .map(|i| {
                let ms = 1 + (i * 37) % 150; // spans wheel levels 0 and 1
                loom::spawn(move || {
                    loom::time::sleep(Duration::from_millis(ms)).unwrap();
                    (ms, start.elapsed())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    for (ms, at) in woke {
        assert!(
            at >= Duration::from_millis(ms),
            "woke at {at:?}, asked for {ms} ms"
        );
    }
}

#[test]
fn an_enormous_duration_sleeps_until_cancelled() {
    runtime().run(|| {
        let sleeper = loom::spawn(|| loom::time::sleep(Duration::MAX));
        let far = loom::spawn(|| loom::time::sleep(Duration::from_secs(10 * 365 * 24 * 3600)));
        loom::time::sleep(Duration::from_millis(5)).unwrap();
        assert!(!sleeper.is_finished() && !far.is_finished());
        sleeper.cancel();
        far.cancel();
        assert!(sleeper.join().unwrap().is_err());
        assert!(far.join().unwrap().is_err());
    });
}
