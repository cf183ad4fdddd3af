//! Child program for tests that need a process of their own: a panicking
//! main fiber, a stack overflow, shutdown with blocked fibers (also built
//! with `panic = "abort"`), guard-page exhaustion, spawning at the stack
//! budget, running out of file descriptors, io_uring refused by seccomp.
//! Usage:
//! `loom-child <scenario>`.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::Duration;

fn main() {
    let scenario = std::env::args()
        .nth(1)
        .expect("usage: loom-child <scenario>");
    match scenario.as_str() {
        "panic-main" => panic_main(),
        "overflow" => overflow(),
        "wild-segfault" => wild_segfault(),
        "shutdown" => shutdown(),
        "guard-exhaustion" => guard_exhaustion(),
        "guard-budget" => guard_budget(),
        "emfile" => emfile(),
        "uring-denied" => uring_denied(),
        "scope-shutdown" => scope_shutdown(),
        "scope-child-panic" => scope_child_panic(),
        other => panic!("unknown scenario {other:?}"),
    }
}

fn panic_main() {
    let rt = loom::Runtime::builder().build().unwrap();
    rt.run(|| {
        let _sleeper = loom::spawn(|| loom::time::sleep(Duration::from_secs(3600)));
        loom::yield_now();
        panic!("boom in main");
    });
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    if depth == u64::MAX {
        0
    } else {
        recurse(depth + 1) + frame[3]
    }
}

fn overflow() {
    let rt = loom::Runtime::builder().build().unwrap();
    rt.run(|| {
        let deep = loom::fiber::Builder::new()
            .name("deep")
            .stack_size(32 * 1024)
            .spawn(|| recurse(0))
            .unwrap();
        let _ = deep.join();
        unreachable!("the overflow aborts the process");
    });
}

fn wild_segfault() {
    let rt = loom::Runtime::builder().build().unwrap();
    rt.run(|| {
        // A fault that is not a guard-page hit must reach the default
        // action (SIGSEGV), not the overflow report.
        let wild = black_box(16usize) as *const u8;
        // SAFETY: deliberately unsound: this scenario exists to fault.
        black_box(unsafe { wild.read_volatile() });
    });
}

/// The main fiber returns while fibers are blocked in every kind of
/// blocking call, plus one that ignores cancellation. Must exit 0 under
/// both panic strategies: shutdown never unwinds a suspended fiber.
fn shutdown() {
    let interrupted = Rc::new(Cell::new(0u32));
    let counter = interrupted.clone();
    let rt = loom::Runtime::builder()
        .fibers(8)
        .max_fibers(8)
        .shutdown_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    rt.run(move || {
        let is_interrupted =
            |r: &std::io::Result<()>| r.as_ref().is_err_and(loom::fiber::is_cancelled);
        // Ignores cancellation: must be abandoned after the grace period.
        let stubborn = loom::fiber::Builder::new()
            .name("stubborn")
            .spawn(|| {
                loop {
                    let _ = loom::time::sleep(Duration::from_millis(1));
                    loom::yield_now();
                }
            })
            .unwrap();
        let c = counter.clone();
        let _sleeper = loom::spawn(move || {
            if is_interrupted(&loom::time::sleep(Duration::from_secs(3600))) {
                c.set(c.get() + 1);
            }
        });
        let c = counter.clone();
        let _joiner = loom::spawn(move || {
            let payload = stubborn.join().expect_err("stubborn never finishes");
            let error = payload
                .downcast::<std::io::Error>()
                .expect("an io::Error payload");
            if loom::fiber::is_cancelled(&error) {
                c.set(c.get() + 1);
            }
        });
        // Fill the pool (8 = main + 3 above + 3 holders + the waiter), so the
        // waiter's spawn has to wait for a stack.
        let _holders: Vec<_> = (0..3)
            .map(|_| loom::spawn(|| loom::time::sleep(Duration::from_secs(3600))))
            .collect();
        let c = counter.clone();
        let _waiter = loom::spawn(move || {
            let spawned = loom::fiber::Builder::new().spawn(|| ());
            if spawned.is_err_and(|e| loom::fiber::is_cancelled(&e)) {
                c.set(c.get() + 1);
            }
        });
        loom::yield_now();
    });
    // sleeper, joiner and waiter each saw the cancellation error.
    assert_eq!(
        interrupted.get(),
        3,
        "every blocked fiber observed cancellation"
    );
    println!("shutdown ok");
}

/// With mprotect guards, more stacks than `vm.max_map_count` allows must be
/// a clear error naming the sysctl.
fn guard_exhaustion() {
    let max_map_count: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .expect("read vm.max_map_count")
        .trim()
        .parse()
        .unwrap();
    let fibers = max_map_count / 2 + 1000;
    let err = loom::Runtime::builder()
        .fibers(fibers)
        .max_fibers(fibers)
        .stack_size(16 * 1024)
        .build()
        .expect_err("reserving past vm.max_map_count must fail");
    println!("{err}");
    assert_eq!(err.kind(), std::io::ErrorKind::OutOfMemory);
    assert!(err.to_string().contains("vm.max_map_count"), "{err}");
    // The failed reservation was cleaned up: a normal runtime still works.
    let rt = loom::Runtime::builder().fibers(16).build().unwrap();
    assert_eq!(rt.run(|| loom::spawn(|| 5).join().unwrap()), 5);
    println!("guard exhaustion ok");
}

/// Maps pages and `mprotect`s every other one, so the process holds about
/// `count` more memory mappings (they stay until the process exits): a way
/// to shrink the stack budget without touching the system-wide sysctl.
fn use_up_mappings(count: usize) {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let len = (count + 1) * page;
    // SAFETY: an anonymous mapping at a kernel-chosen address touches no
    // existing memory.
    let region = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(region, libc::MAP_FAILED, "map the filler region");
    for i in (1..count).step_by(2) {
        // SAFETY: page `i` lies inside the region mapped above, which
        // nothing else uses.
        let ok = unsafe { libc::mprotect(region.cast::<u8>().add(i * page).cast(), page, 0) };
        assert_eq!(ok, 0, "mprotect filler page {i}");
    }
}

/// Mappings the process holds now.
fn mappings_in_use() -> usize {
    loom::rt::stack_budget()
        .mappings_in_use()
        .expect("Linux lists mappings")
}

/// Spawns `count` detached fibers that each sleep `nap`, and waits for all
/// of them; returns the most that were alive at once.
fn spawn_sleepers(count: usize, nap: Duration) -> usize {
    let alive = Rc::new(Cell::new(0usize));
    let peak = Rc::new(Cell::new(0usize));
    let done = Rc::new(Cell::new(0usize));
    for _ in 0..count {
        let (alive, peak, done) = (alive.clone(), peak.clone(), done.clone());
        drop(loom::spawn(move || {
            alive.set(alive.get() + 1);
            peak.set(peak.get().max(alive.get()));
            loom::time::sleep(nap).unwrap();
            alive.set(alive.get() - 1);
            done.set(done.get() + 1);
        }));
    }
    while done.get() < count {
        loom::time::sleep(Duration::from_millis(1)).unwrap();
    }
    peak.get()
}

/// A runtime whose `max_fibers` is far above any stack budget.
fn far_past_the_budget() -> loom::Runtime {
    loom::Runtime::builder()
        .fibers(16)
        .max_fibers(100_000)
        .stack_size(16 * 1024)
        .build()
        .unwrap()
}

/// With mprotect guards and `max_fibers` far above what the mapping limit
/// allows, spawning past the budget waits for a free stack (back-pressure)
/// instead of failing, and so does spawning after the kernel refuses a
/// mapping the budget counted on.
fn guard_budget() {
    install_logger();
    let max_map_count = loom::rt::stack_budget()
        .max_map_count()
        .expect("mprotect guards on Linux have a mapping limit");
    // Leave room for about 300 guarded stacks.
    let target = max_map_count - loom::rt::RESERVED_MAPPINGS - 600;
    use_up_mappings(target - mappings_in_use());
    let rt = far_past_the_budget();
    let budget = rt.stack_budget().expect("mprotect guards have a budget");
    assert!((200..=320).contains(&budget), "budget {budget}");
    assert_eq!(rt.fiber_limit(), budget);
    println!("budget {budget} stacks");
    rt.run(move || {
        let peak = spawn_sleepers(3 * budget, Duration::from_millis(5));
        // The main fiber holds one stack.
        assert_eq!(peak, budget - 1, "spawns waited at the budget");
        println!(
            "waited at the budget: peak {peak} of {} sleepers",
            3 * budget
        );
    });

    // A runtime whose budget the program then takes away: growth fails in
    // the kernel, and spawns wait at what the pool holds.
    let rt = far_past_the_budget();
    let budget = rt.stack_budget().unwrap();
    rt.run(move || {
        // Leave the kernel room for about 50 more stacks.
        let target = max_map_count - 100;
        use_up_mappings(target - mappings_in_use());
        let peak = spawn_sleepers(budget, Duration::from_millis(5));
        let shrunk = loom::rt::stack_budget().stacks();
        assert!(peak < budget / 2, "peak {peak} of budget {budget}");
        println!("kernel refused growth: peak {peak} of {budget} sleepers (budget now {shrunk:?})");
    });
    println!("guard budget ok");
}

/// Prints `log` records to stderr, so a test can see the runtime's log
/// lines (the fallback reason, for one).
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        eprintln!("[{}] {}", record.level(), record.args());
    }

    fn flush(&self) {}
}

fn install_logger() {
    static LOGGER: StderrLogger = StderrLogger;
    log::set_logger(&LOGGER).expect("no logger yet");
    log::set_max_level(log::LevelFilter::Info);
}

fn echo_once(stream: &mut loom::net::TcpStream, message: &[u8]) -> std::io::Result<()> {
    use std::io::{Read, Write};
    stream.write_all(message)?;
    let mut echo = vec![0u8; message.len()];
    stream.read_exact(&mut echo)?;
    assert_eq!(echo, message);
    Ok(())
}

fn spawn_echo_handler(mut stream: loom::net::TcpStream) {
    use std::io::{Read, Write};
    loom::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            if stream.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    });
}

/// Out of file descriptors: `accept` reports EMFILE without spinning,
/// established connections keep being served, and accepting resumes once
/// descriptors are free. The backend comes from `LOOM_BACKEND`.
fn emfile() {
    use loom::net::{TcpListener, TcpStream};
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::time::Instant;

    let rt = loom::Runtime::builder().fibers(16).build().unwrap();
    let backend = rt.backend();
    rt.run(move || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let emfiles = Rc::new(Cell::new(0u32));
        let attempts = Rc::new(Cell::new(0u32));
        let (e, a) = (emfiles.clone(), attempts.clone());
        // The accept loop every server has: log the error and go on.
        let _acceptor = loom::spawn(move || {
            loop {
                a.set(a.get() + 1);
                match listener.accept() {
                    Ok((stream, _)) => spawn_echo_handler(stream),
                    Err(err) if err.raw_os_error() == Some(libc::EMFILE) => e.set(e.get() + 1),
                    Err(err) if loom::fiber::is_cancelled(&err) => return,
                    Err(err) => panic!("unexpected accept error: {err}"),
                }
            }
        });
        let mut established = TcpStream::connect(addr).unwrap();
        echo_once(&mut established, b"before").unwrap();

        // Lower the limit a little above what is open, then use up every
        // remaining descriptor but one.
        // SAFETY: dup of a valid fd; the result is closed right away.
        let next_fd = unsafe { libc::dup(0) };
        // SAFETY: closing the fd dup just returned.
        unsafe { libc::close(next_fd) };
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: valid rlimit struct to fill in.
        let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        assert_eq!(got, 0);
        limit.rlim_cur = next_fd as libc::rlim_t + 8;
        // SAFETY: valid rlimit struct; the hard limit is unchanged.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
        let mut fillers = Vec::new();
        loop {
            // SAFETY: dup of stdin; ownership goes to the OwnedFd.
            let fd = unsafe { libc::dup(0) };
            if fd < 0 {
                break;
            }
            // SAFETY: dup returned a fresh fd we own.
            fillers.push(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        fillers.pop(); // exactly one free descriptor: the next client's
        let before = attempts.get();
        let mut waiting = TcpStream::connect(addr).unwrap();
        // The server cannot accept it: no descriptor left.
        let window = Instant::now();
        loom::time::sleep(Duration::from_millis(200)).unwrap();
        let spins = attempts.get() - before;
        assert!(emfiles.get() >= 1, "accept reported EMFILE");
        assert!(
            spins <= 20,
            "accept retried {spins} times in {:?}: it must back off",
            window.elapsed()
        );
        // Existing connections are still served.
        echo_once(&mut established, b"during").unwrap();
        // Free descriptors: the pending connection is accepted and served.
        fillers.clear();
        echo_once(&mut waiting, b"after").unwrap();
        println!(
            "emfile ok on {backend}: {} EMFILE errors, {spins} accept calls in 200 ms",
            emfiles.get()
        );
    });
}

/// Makes `io_uring_setup` fail with EPERM for this process and its
/// children, as Docker's default seccomp profile does.
fn deny_io_uring() {
    use libc::{
        BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W, EPERM, SECCOMP_MODE_FILTER,
        SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, sock_filter, sock_fprog,
    };
    let stmt = |code: u32, k: u32| sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let filter = [
        // A = seccomp_data.nr (offset 0)
        stmt(BPF_LD | BPF_W | BPF_ABS, 0),
        sock_filter {
            code: (BPF_JMP | BPF_JEQ | BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_io_uring_setup as u32,
        },
        stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM as u32),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    ];
    let program = sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: plain prctl calls; `program` and `filter` outlive the call
    // (the kernel copies the filter).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                SECCOMP_MODE_FILTER as libc::c_ulong,
                &raw const program
            ),
            0,
            "installing the seccomp filter: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// io_uring refused: an explicit `IoUring` runtime fails to build with a
/// clear error, `Auto` falls back to epoll with one log line naming the
/// reason, and I/O works. With `LOOM_CHILD_EXEC=<program>`, that program
/// then runs under the same filter (the demo, in the tests).
fn uring_denied() {
    use loom::rt::Backend;
    install_logger();
    deny_io_uring();
    let err = loom::Runtime::builder()
        .backend(Backend::IoUring)
        .build()
        .expect_err("io_uring_setup is denied");
    println!("explicit io_uring: {err}");
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    let rt = loom::Runtime::builder().fibers(8).build().unwrap();
    assert_eq!(rt.backend(), Backend::Epoll);
    rt.run(|| {
        let listener = loom::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        loom::spawn(move || spawn_echo_handler(listener.accept().unwrap().0));
        let mut stream = loom::net::TcpStream::connect(addr).unwrap();
        echo_once(&mut stream, b"fallback works").unwrap();
    });
    println!("auto chose {}", Backend::Epoll);
    if let Some(program) = std::env::var_os("LOOM_CHILD_EXEC") {
        use std::os::unix::process::CommandExt;
        let args: Vec<String> = std::env::var("LOOM_CHILD_EXEC_ARGS")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let mut command = std::process::Command::new(program);
        // RUST_LOG removed: the program logs at its own default level,
        // whatever the environment `cargo test` ran in says.
        command
            .args(args)
            .env_remove("LOOM_CHILD_EXEC")
            .env_remove("RUST_LOG");
        // `NAME=value` for the exec'd program only (this child must not
        // see it: it builds runtimes of its own above).
        if let Ok(var) = std::env::var("LOOM_CHILD_EXEC_ENV") {
            let (name, value) = var
                .split_once('=')
                .expect("LOOM_CHILD_EXEC_ENV is NAME=value");
            command.env(name, value);
        }
        let err = command.exec();
        panic!("exec failed: {err}");
    }
}

/// What `scope_shutdown` reads after its runtime ended.
#[derive(Default)]
struct ScopeReport {
    /// The cooperative scope's events, in order.
    events: std::cell::RefCell<Vec<&'static str>>,
    /// Where the stubborn scope's fiber keeps `SCOPE_SENTINEL` and the
    /// counter its scoped fiber bumps.
    sentinel_at: Cell<usize>,
    counter_at: Cell<usize>,
    stubborn_scope_returned: Cell<bool>,
    stubborn_frame_dropped: Cell<bool>,
}

const SCOPE_SENTINEL: u64 = 0x5c09_e5c0_9e5c_09e5;

/// Marks its frame's destructors as run.
struct FrameDropped(Rc<ScopeReport>);

impl Drop for FrameDropped {
    fn drop(&mut self) {
        self.0.stubborn_frame_dropped.set(true);
    }
}

/// The main fiber returns while two fibers have a `loom::fiber::scope`
/// open. In one, the scoped fibers are cancelled by the shutdown — one
/// keeps working a while after it — and the scope returns only after both
/// finished. In the other, a scoped fiber ignores cancellation: both it and
/// the scope's fiber are abandoned, their stacks leaked — still mapped,
/// never unwound. Must exit 0 under both panic strategies.
fn scope_shutdown() {
    let report = Rc::new(ScopeReport::default());
    let seen = report.clone();
    let rt = loom::Runtime::builder()
        .fibers(16)
        .shutdown_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    rt.run(move || {
        let cooperative = seen.clone();
        drop(loom::spawn(move || {
            let events = &cooperative.events;
            let borrowed = String::from("on the scope's stack");
            loom::fiber::scope(|s| {
                s.spawn(|| {
                    let slept = loom::time::sleep(Duration::from_secs(3600));
                    if slept.is_err_and(|e| loom::fiber::is_cancelled(&e)) {
                        events.borrow_mut().push("sleeper cancelled");
                    }
                });
                s.spawn(|| {
                    let _ = loom::time::sleep(Duration::from_secs(3600));
                    // Work on after the cancellation, still borrowing.
                    let until = std::time::Instant::now() + Duration::from_millis(20);
                    while std::time::Instant::now() < until {
                        assert_eq!(borrowed.len(), 20);
                        loom::yield_now();
                    }
                    events.borrow_mut().push("worker done");
                });
                let _ = loom::time::sleep(Duration::from_secs(3600));
            });
            events.borrow_mut().push("scope returned");
        }));
        let stubborn = seen.clone();
        drop(loom::spawn(move || {
            let _frame = FrameDropped(stubborn.clone());
            let sentinel = black_box(SCOPE_SENTINEL);
            let counter = Cell::new(0u64);
            stubborn
                .sentinel_at
                .set(std::ptr::from_ref(&sentinel) as usize);
            stubborn.counter_at.set(counter.as_ptr() as usize);
            loom::fiber::scope(|s| {
                s.spawn(|| {
                    loop {
                        counter.set(counter.get() + 1);
                        let _ = loom::time::sleep(Duration::from_millis(1));
                        loom::yield_now();
                    }
                });
            });
            stubborn.stubborn_scope_returned.set(true);
        }));
        loom::yield_now();
    });
    assert_eq!(
        *report.events.borrow(),
        ["sleeper cancelled", "worker done", "scope returned"]
    );
    assert!(
        !report.stubborn_scope_returned.get(),
        "abandoned, not returned"
    );
    assert!(
        !report.stubborn_frame_dropped.get(),
        "an abandoned fiber's frame is never unwound"
    );
    // SAFETY: the addresses are of locals in the abandoned scope's frame,
    // whose stack loom leaks, never unmaps or reuses — what this checks.
    let (sentinel, counter) = unsafe {
        (
            std::ptr::read_volatile(report.sentinel_at.get() as *const u64),
            std::ptr::read_volatile(report.counter_at.get() as *const u64),
        )
    };
    assert_eq!(sentinel, SCOPE_SENTINEL);
    assert!(counter > 0, "the stubborn scoped fiber ran");
    println!("scope shutdown ok");
}

/// A scoped fiber panics while another is still working: the scope panics
/// once the other finished (unwind), or the process aborts at once (abort).
fn scope_child_panic() {
    let rt = loom::Runtime::builder().fibers(16).build().unwrap();
    rt.run(|| {
        let finished = Cell::new(false);
        loom::fiber::scope(|s| {
            s.spawn(|| {
                loom::time::sleep(Duration::from_millis(20)).unwrap();
                finished.set(true);
                println!("the other scoped fiber finished");
            });
            s.spawn(|| panic!("boom in a scoped fiber"));
        });
        unreachable!("the scope panics or the process aborts");
    });
}
