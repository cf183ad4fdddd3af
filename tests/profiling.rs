//! Profiler zones (`loom::__private::zone!`, what `#[loom::profile]`
//! expands to) seen from a user's crate: free without the `tracy` feature,
//! harmless anywhere with it — in fibers across switches, on several loops,
//! on plain threads, in runtimes one after another and side by side, and
//! after the profiler was shut down. (The zones' nesting is checked by the
//! unit tests in `loom-runtime/src/profiling/tests.rs`, against a
//! recorder.) Run with `--features tracy` or `--features tracy-fibers` to
//! exercise a real Tracy client (no viewer needed).

use std::time::Duration;

use loom_tests::runtime;

/// What the macros generate at the top of a profiled function.
fn handle(n: u32) -> u32 {
    let __loom_zone = ::loom::__private::zone!(concat!(module_path!(), "::handle"));
    if n == 0 { 0 } else { 1 + handle(n - 1) }
}

/// Zones open across yields and sleeps, nested deeper than replay records.
fn work() {
    let _outer = loom::__private::zone!("profiling::work");
    for i in 0..3 {
        let _inner = loom::__private::zone!("profiling::work::step");
        assert_eq!(handle(20), 20);
        if i % 2 == 0 {
            loom::yield_now();
        } else {
            loom::time::sleep(Duration::from_millis(1)).unwrap();
        }
    }
}

fn fibers() {
    let handles: Vec<_> = (0..8).map(|_| loom::spawn(work)).collect();
    work();
    for handle in handles {
        handle.join().unwrap();
    }
}

#[cfg(not(feature = "tracy"))]
#[test]
fn zones_are_zero_sized_and_free_without_tracy() {
    use loom::__private::profiling::Zone;
    assert_eq!(size_of::<Zone>(), 0);
    assert!(!std::mem::needs_drop::<Zone>());
    let zone = loom::__private::zone!("off");
    assert_eq!(size_of_val(&zone), 0);
}

#[test]
fn zones_on_a_plain_thread_without_a_runtime() {
    assert_eq!(handle(3), 3);
    std::thread::spawn(|| handle(3)).join().unwrap();
}

#[test]
fn zones_in_fibers_across_switches() {
    runtime().run(fibers);
}

#[test]
fn zones_on_every_loop() {
    let rt = loom::Runtime::builder()
        .threads(2)
        .fibers(32)
        .build()
        .unwrap();
    rt.run(|| {
        let other = loom::spawn_on(1, fibers);
        fibers();
        other.join().unwrap();
        loom::broadcast(|| handle(5)).into_iter().for_each(|h| {
            assert_eq!(h.join().unwrap(), 5);
        });
    });
}

#[test]
fn zones_in_blocking_jobs() {
    runtime().run(|| {
        let _zone = loom::__private::zone!("profiling::unblock");
        assert_eq!(loom::unblock(|| handle(4)).unwrap(), 4);
    });
}

#[test]
fn runtimes_one_after_another_and_side_by_side() {
    for _ in 0..3 {
        runtime().run(fibers);
    }
    let side_by_side: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(|| runtime().run(fibers)))
        .collect();
    for thread in side_by_side {
        thread.join().unwrap();
    }
    // Between runtimes the profiler keeps running (until exit), and zones
    // on plain threads keep working.
    assert_eq!(handle(3), 3);
}

#[test]
fn a_zone_open_on_a_plain_thread_while_runtimes_end() {
    let (opened, open) = std::sync::mpsc::channel();
    let (close, closed) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let _zone = loom::__private::zone!("profiling::held");
        opened.send(()).unwrap();
        closed.recv().unwrap();
    });
    open.recv().unwrap();
    // The profiler outlives runtimes (it is shut down at exit, after
    // waiting for zones like this one), so their ends ignore the zone.
    runtime().run(fibers);
    close.send(()).unwrap();
    holder.join().unwrap();
}

/// The client loom builds (tracy-client-sys `=0.30.1` with `only-localhost`
/// and without `broadcast`) listens on loopback only, opens no UDP socket,
/// refuses a viewer of another protocol version, and welcomes a Tracy 0.14
/// viewer (protocol 82), naming this process: what the Tracy v0.14.1
/// profiler needs to connect. Speaks the first bytes of the wire protocol
/// itself, so no viewer is needed.
#[cfg(all(feature = "tracy", target_os = "linux"))]
#[test]
fn the_client_welcomes_a_tracy_0_14_viewer_on_loopback_only() {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};

    use crate::listener::{LISTEN, sockets_of_this_process, tracy_listener};

    /// Tracy 0.14's `ProtocolVersion` (common/TracyProtocol.hpp).
    const PROTOCOL: u32 = 82;
    const HANDSHAKE_WELCOME: u8 = 1;
    const HANDSHAKE_PROTOCOL_MISMATCH: u8 = 2;
    /// `WelcomeMessage` (packed): eight 8-byte fields (`pid` is the 7th),
    /// two flag bytes, a 12-byte CPU vendor, a 4-byte CPU id, a 64-byte
    /// program name and 1024 bytes of host information.
    const WELCOME_BYTES: usize = 8 * 8 + 2 + 12 + 4 + 64 + 1024;
    const PID_OFFSET: usize = 6 * 8;

    /// Opens a viewer connection and sends the handshake for `protocol`.
    fn handshake(addr: SocketAddr, protocol: u32) -> TcpStream {
        let mut viewer = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        viewer
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        viewer.write_all(b"TracyPrf").unwrap();
        viewer.write_all(&protocol.to_le_bytes()).unwrap();
        viewer
    }

    // The first runtime of the process starts the client (if no other test
    // got there first); its worker thread opens the listener soon after.
    runtime().run(fibers);
    let listener = tracy_listener(Duration::from_secs(10));
    assert!(listener.ip().is_loopback(), "Tracy listens on {listener}");
    assert!(sockets_of_this_process("tcp6", LISTEN).is_empty());
    for udp in ["udp", "udp6"] {
        let any = sockets_of_this_process(udp, None);
        assert!(any.is_empty(), "UDP sockets (a broadcast?): {any:?}");
    }

    let mut status = [0u8];
    let mut refused = handshake(listener, PROTOCOL - 1);
    refused.read_exact(&mut status).unwrap();
    assert_eq!(status[0], HANDSHAKE_PROTOCOL_MISMATCH);

    let mut viewer = handshake(listener, PROTOCOL);
    viewer.read_exact(&mut status).unwrap();
    assert_eq!(status[0], HANDSHAKE_WELCOME);
    let mut welcome = vec![0u8; WELCOME_BYTES];
    viewer.read_exact(&mut welcome).unwrap();
    let pid = u64::from_le_bytes(welcome[PID_OFFSET..PID_OFFSET + 8].try_into().unwrap());
    assert_eq!(pid, u64::from(std::process::id()));
    // Hanging up is what a closing viewer does; the client stops sending.
}

/// Shared with tests/tracy_stream.rs, whose viewer reads past the
/// handshake (in a process of its own: the client serves one viewer).
#[cfg(all(feature = "tracy", target_os = "linux"))]
#[path = "tracy/listener.rs"]
mod listener;
