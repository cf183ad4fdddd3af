//! What the attribute macros do at run time: `#[loom::test]` runs once per
//! backend and names the backend in failures, `#[loom::fiber]` spawns and
//! returns a handle, names fibers and panics helpfully outside a runtime.
//! (What they accept and reject at compile time is in `ui-tests/`.)
//!
//! The lints below also prove the expansions warning-free in a test build,
//! which trybuild (building binaries, where `#[test]` functions are left
//! out) cannot.
#![deny(warnings, unused_qualifications)]

use std::cell::{Cell, RefCell};
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use loom::rt::Backend;

thread_local! {
    /// The backends `records_its_backend` ran on, on this thread (the main
    /// fiber runs on the thread that calls the test function).
    static RAN_ON: RefCell<Vec<Backend>> = const { RefCell::new(Vec::new()) };
}

#[loom::test]
fn records_its_backend() {
    RAN_ON.with(|ran| ran.borrow_mut().push(loom::rt::backend()));
}

#[test]
fn loom_test_runs_once_per_available_backend() {
    RAN_ON.with(|ran| ran.borrow_mut().clear());
    records_its_backend();
    let ran = RAN_ON.with(|ran| ran.borrow().clone());
    assert_eq!(ran, Backend::available());
    assert!(!ran.is_empty());
}

#[loom::test]
#[should_panic(expected = "loom::test `panics_name_the_backend` failed on backend")]
fn panics_name_the_backend() {
    panic!("boom");
}

#[loom::test]
#[ignore = "run by `a_failure_names_the_backend_and_keeps_the_message`"]
fn always_panics() {
    panic!("the original message");
}

#[test]
fn a_failure_names_the_backend_and_keeps_the_message() {
    let payload = panic::catch_unwind(always_panics).unwrap_err();
    let message = payload
        .downcast_ref::<String>()
        .expect("a formatted message");
    let first = Backend::available()[0];
    assert_eq!(
        *message,
        format!("loom::test `always_panics` failed on backend {first}: the original message")
    );
}

#[loom::test]
fn may_return_ok() -> io::Result<()> {
    loom::time::sleep(std::time::Duration::from_millis(1))?;
    Ok(())
}

#[loom::test]
#[ignore = "run by `an_err_is_returned`"]
fn returns_err() -> Result<(), String> {
    Err(format!("on {}", loom::rt::backend()))
}

#[test]
fn an_err_is_returned() {
    // The first backend's `Err` ends the test (stderr names the backend).
    let first = Backend::available()[0];
    assert_eq!(returns_err(), Err(format!("on {first}")));
}

#[cfg(target_os = "linux")]
#[loom::test(backend = "epoll")]
fn one_named_backend() {
    assert_eq!(loom::rt::backend(), Backend::Epoll);
}

#[loom::test(
    backend = "auto",
    threads = 2,
    stack_size = "32KiB",
    fibers = 8,
    max_fibers = 16
)]
fn runtime_options_apply() {
    assert_eq!(loom::rt::loop_count(), 2);
    assert_eq!(loom::fiber::current().name(), Some("main"));
}

#[loom::test(profile)]
fn with_a_zone() {
    loom::yield_now();
}

#[loom::fiber]
fn double(x: u64) -> u64 {
    x * 2
}

#[loom::fiber]
fn own_name() -> Option<String> {
    loom::fiber::current().name().map(str::to_owned)
}

#[loom::fiber(name = "conn", stack_size = 32768, profile)]
fn named() -> Option<String> {
    loom::fiber::current().name().map(str::to_owned)
}

#[loom::test]
fn a_fiber_returns_a_handle_to_its_result() {
    let handle: loom::JoinHandle<u64> = double(21);
    assert_eq!(handle.join().unwrap(), 42);
    assert_eq!(own_name().join().unwrap().as_deref(), Some("own_name"));
    assert_eq!(named().join().unwrap().as_deref(), Some("conn"));
}

#[loom::fiber]
fn appends(log: Rc<RefCell<Vec<&'static str>>>, word: &'static str) {
    log.borrow_mut().push(word);
}

#[loom::test]
fn calling_a_fiber_spawns_it_without_running_it() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let first = appends(log.clone(), "fiber");
    log.borrow_mut().push("caller");
    first.join().unwrap();
    assert_eq!(*log.borrow(), ["caller", "fiber"]);
}

/// Counts its drops, to check when a fiber's arguments are dropped.
struct Token(Rc<Cell<u32>>);

impl Drop for Token {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

struct Pair {
    used: u32,
    _kept: Token,
}

#[loom::fiber]
fn uses_one_field(pair: Pair, (a, _): (u32, Token), mut total: u32) -> u32 {
    loom::yield_now();
    total += pair.used + a;
    total
}

#[loom::test]
fn arguments_are_owned_by_the_fiber_until_it_ends() {
    let drops = Rc::new(Cell::new(0));
    let pair = Pair {
        used: 1,
        _kept: Token(drops.clone()),
    };
    let handle = uses_one_field(pair, (2, Token(drops.clone())), 3);
    // Neither the untouched field nor the ignored tuple element was
    // dropped by the call: the fiber owns them.
    assert_eq!(drops.get(), 0);
    assert_eq!(handle.join().unwrap(), 6);
    assert_eq!(drops.get(), 2);
}

struct Counter {
    count: u32,
    drops: Token,
}

impl Counter {
    #[loom::fiber]
    fn bump(mut self, by: u32) -> u32 {
        self.count += by;
        self.count
    }

    #[loom::fiber(name = "shared")]
    fn read(self: Rc<Self>) -> u32 {
        self.count
    }

    #[loom::fiber]
    fn count_only(self) -> u32 {
        loom::yield_now();
        self.count
    }
}

#[loom::test]
fn methods_take_self_by_value() {
    let drops = Rc::new(Cell::new(0));
    let counter = Counter {
        count: 1,
        drops: Token(drops.clone()),
    };
    assert_eq!(counter.bump(2).join().unwrap(), 3);
    let shared = Rc::new(Counter {
        count: 7,
        drops: Token(drops.clone()),
    });
    assert_eq!(Rc::clone(&shared).read().join().unwrap(), 7);
    assert_eq!(shared.drops.0.get(), 1);
    let whole = Counter {
        count: 5,
        drops: Token(drops.clone()),
    };
    let handle = whole.count_only();
    assert_eq!(drops.get(), 1, "`self` is moved whole into the fiber");
    assert_eq!(handle.join().unwrap(), 5);
    assert_eq!(drops.get(), 2);
}

#[loom::fiber]
fn generic<T: Clone + 'static>(value: T) -> (T, T) {
    (value.clone(), value)
}

#[loom::test]
fn generic_fibers_work_for_static_types() {
    assert_eq!(generic("a").join().unwrap(), ("a", "a"));
    assert_eq!(generic(3u8).join().unwrap(), (3, 3));
}

#[loom::fiber(stack_size = "1MiB")]
fn deep() -> usize {
    // More than the 64 KiB default: an overflow would abort the process.
    let buffer = std::hint::black_box([1u8; 96 * 1024]);
    buffer.iter().map(|&b| usize::from(b)).sum()
}

#[loom::test(stack_size = "16KiB")]
fn stack_size_of_a_fiber_is_applied() {
    assert_eq!(deep().join().unwrap(), 96 * 1024);
}

thread_local! {
    static PANIC_LINE: Cell<Option<u32>> = const { Cell::new(None) };
}

#[test]
fn a_fiber_called_outside_a_runtime_panics_at_the_call() {
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if info
            .payload_as_str()
            .is_some_and(|m| m.contains("#[loom::fiber]"))
        {
            PANIC_LINE.with(|line| line.set(info.location().map(|l| l.line())));
        } else {
            previous(info);
        }
    }));
    let expected_line = line!() + 1;
    let payload = panic::catch_unwind(AssertUnwindSafe(|| double(1))).unwrap_err();
    let message = payload
        .downcast_ref::<String>()
        .expect("a formatted message");
    assert_eq!(
        *message,
        "loom: `double` is a #[loom::fiber] and spawns a fiber; call it from inside a loom \
         runtime (#[loom::main], #[loom::test] or Runtime::run)"
    );
    assert_eq!(PANIC_LINE.with(Cell::get), Some(expected_line));
}

#[loom::profile]
mod profiled {
    pub fn add(a: u32, b: u32) -> u32 {
        a + b
    }

    pub struct Acc(pub u32);

    impl Acc {
        pub fn push(&mut self, n: u32) {
            self.0 = add(self.0, n);
        }

        pub const fn get(&self) -> u32 {
            self.0
        }
    }

    pub trait Twice {
        fn once(&self) -> u32;

        fn twice(&self) -> u32 {
            self.once() * 2
        }
    }

    impl Twice for Acc {
        fn once(&self) -> u32 {
            self.get()
        }
    }
}

#[loom::test]
fn profiled_code_runs_unchanged() {
    use profiled::Twice;
    let mut acc = profiled::Acc(1);
    acc.push(2);
    assert_eq!(acc.twice(), 6);
}

/// The limits loom-macros checks at compile time mirror the runtime's.
#[test]
fn compile_time_limits_match_the_runtime() {
    assert_eq!(loom::fiber::MIN_STACK_BYTES, 16 * 1024);
    assert_eq!(loom::fiber::MAX_STACK_BYTES, 1 << 30);
    assert_eq!(loom::fiber::MAX_NAME_BYTES, 46);
    assert_eq!(loom::rt::MAX_THREADS, 1024);
    assert_eq!(loom::rt::DEFAULT_FIBERS, 1024);
}

#[test]
fn the_fiber_module_and_the_fiber_macro_coexist() {
    let runtime = loom::Runtime::builder().fibers(4).build().unwrap();
    let name = runtime.run(|| {
        loom::fiber::Builder::new()
            .name("built")
            .spawn(|| loom::fiber::current().name().map(str::to_owned))
            .unwrap()
            .join()
            .unwrap()
    });
    assert_eq!(name.as_deref(), Some("built"));
}
