//! TCP on every backend: round trips, large transfers, timeouts,
//! cancellation and bad input.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use loom::net::{ListenOptions, TcpListener, TcpStream};
use loom_tests::{checksum, on_each_backend, pattern};

/// Starts an echo server fiber; returns its address.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    loom::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            loom::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

fn echo_round_trips(connections: usize, messages: usize, size: usize) {
    // Both ends of every connection, and the tests running beside this one.
    let fd_limit = loom_tests::raise_fd_limit();
    assert!(
        fd_limit as usize > 2 * connections + 256,
        "{connections} connections need more than RLIMIT_NOFILE {fd_limit} descriptors"
    );
    on_each_backend(move || {
        let addr = echo_server();
        let clients: Vec<_> = (0..connections)
            .map(|c| {
                loom::spawn(move || -> io::Result<()> {
                    let mut stream = TcpStream::connect(addr)?;
                    stream.set_nodelay(true)?;
                    let mut echo = vec![0u8; size];
                    for m in 0..messages {
                        let message = pattern((c * messages + m) as u64, size);
                        stream.write_all(&message)?;
                        stream.read_exact(&mut echo)?;
                        assert_eq!(checksum(&echo), checksum(&message), "conn {c} msg {m}");
                    }
                    Ok(())
                })
            })
            .collect();
        for client in clients {
            client.join().unwrap().unwrap();
        }
    });
}

#[test]
fn echo_one_connection() {
    echo_round_trips(1, 200, 100);
}

#[test]
fn echo_100_connections() {
    echo_round_trips(100, 20, 512);
}

#[test]
fn echo_1000_connections() {
    echo_round_trips(1000, 3, 64);
}

#[test]
fn large_writes_and_partial_reads() {
    on_each_backend(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let data = pattern(7, 8 << 20);
        let expected = checksum(&data);
        let reader = loom::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut received = Vec::new();
            let mut buf = [0u8; 1000]; // odd size: many partial reads
            loop {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                received.extend_from_slice(&buf[..n]);
            }
            received
        });
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(&data).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let received = reader.join().unwrap();
        assert_eq!(received.len(), data.len());
        assert_eq!(checksum(&received), expected);
    });
}

#[test]
fn one_fiber_reads_while_another_writes() {
    on_each_backend(|| {
        let addr = echo_server();
        let stream = Rc::new(TcpStream::connect(addr).unwrap());
        let data = pattern(3, 1 << 20);
        let expected = checksum(&data);
        let reader = {
            let stream = Rc::clone(&stream);
            loom::spawn(move || {
                let mut got = vec![0u8; 1 << 20];
                (&*stream).read_exact(&mut got).unwrap();
                checksum(&got)
            })
        };
        (&*stream).write_all(&data).unwrap();
        assert_eq!(reader.join().unwrap(), expected);
    });
}

#[test]
fn read_timeout_keeps_the_socket_usable() {
    on_each_backend(|| {
        let addr = echo_server();
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(30)))
            .unwrap();
        let mut buf = [0u8; 16];
        let start = Instant::now();
        let err = stream.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        assert!(start.elapsed() >= Duration::from_millis(30));
        // The op was cancelled and reaped; the socket still works.
        stream.write_all(b"after").unwrap();
        stream.read_exact(&mut buf[..5]).unwrap();
        assert_eq!(&buf[..5], b"after");
        assert!(stream.set_read_timeout(Some(Duration::ZERO)).is_err());
    });
}

#[test]
fn cancel_a_fiber_blocked_in_recv() {
    on_each_backend(|| {
        let addr = echo_server();
        let stream = Rc::new(TcpStream::connect(addr).unwrap());
        let blocked = {
            let stream = Rc::clone(&stream);
            loom::spawn(move || {
                let mut buf = [0u8; 64];
                (&*stream).read(&mut buf)
            })
        };
        loom::time::sleep(Duration::from_millis(10)).unwrap();
        blocked.cancel();
        let err = blocked.join().unwrap().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ECANCELED));
        // Nothing is left in flight on the socket: it still echoes.
        (&*stream).write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        (&*stream).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    });
}

#[test]
fn shutdown_with_ops_in_flight() {
    on_each_backend(|| {
        let addr = echo_server();
        for _ in 0..20 {
            loom::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                let mut buf = [0u8; 64];
                let _ = stream.read(&mut buf); // blocks until shutdown cancels it
            });
        }
        loom::time::sleep(Duration::from_millis(20)).unwrap();
        // main returns: every fiber is cancelled, every op reaped.
    });
}

#[test]
fn address_in_use() {
    on_each_backend(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = TcpListener::bind(listener.local_addr().unwrap()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    });
}

#[test]
fn connection_refused() {
    on_each_backend(|| {
        // Bind then drop, so the port is (very likely) closed.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = TcpStream::connect(addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    });
}

#[test]
fn peer_reset_mid_write_is_an_error_not_a_signal() {
    on_each_backend(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let closer = loom::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            // Let the client's connect finish before the reset.
            loom::time::sleep(Duration::from_millis(20)).unwrap();
            // SO_LINGER 0: close sends RST.
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: valid fd and option struct.
            unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&stream),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&raw const linger).cast(),
                    size_of::<libc::linger>() as libc::socklen_t,
                );
            }
            drop(stream);
        });
        let mut stream = TcpStream::connect(addr).unwrap();
        closer.join().unwrap();
        loom::time::sleep(Duration::from_millis(10)).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        let err = (0..1000)
            .find_map(|_| stream.write_all(&chunk).err())
            .expect("writing to a reset connection fails");
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            "{err:?}"
        );
    });
}

#[test]
fn connect_timeout_and_host_names() {
    on_each_backend(|| {
        let addr = echo_server();
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        assert_eq!(stream.peer_addr().unwrap(), addr);
        // "localhost" goes through the blocking pool's resolver.
        let by_name = TcpStream::connect(("localhost", addr.port())).unwrap();
        assert_eq!(by_name.peer_addr().unwrap().port(), addr.port());
    });
}

#[test]
fn std_round_trip() {
    on_each_backend(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let std_listener = listener.into_std().unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = TcpListener::from_std(std_listener).unwrap();
        let accepted = loom::spawn(move || listener.accept().unwrap().0);
        let client = TcpStream::connect(addr).unwrap();
        let server = accepted.join().unwrap();
        let mut std_server = server.into_std().unwrap();
        let mut client = client;
        client.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        // A blocking std read: the byte is already there.
        std_server.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
    });
}

#[test]
fn two_fibers_reading_one_socket_never_lose_a_wake_up() {
    on_each_backend(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = loom::spawn(move || listener.accept().unwrap().0);
        let client = TcpStream::connect(addr).unwrap();
        let server = Rc::new(server.join().unwrap());
        const TOTAL: usize = 64 * 1024;
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let server = Rc::clone(&server);
                loom::spawn(move || {
                    let mut got = 0usize;
                    let mut buf = [0u8; 333];
                    loop {
                        match (&*server).read(&mut buf) {
                            Ok(0) => return got,
                            Ok(n) => got += n,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        let mut client = client;
        for chunk in pattern(9, TOTAL).chunks(1000) {
            client.write_all(chunk).unwrap();
            loom::yield_now();
        }
        client.shutdown(Shutdown::Write).unwrap();
        let total: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
        assert_eq!(total, TOTAL);
    });
}

/// A read shorter than the buffer empties the socket, so the poll backend
/// parks the next read without trying it; these are the two cases that
/// must still wake it: more data later, and the end of the stream that
/// arrived with the data (one event, already consumed).
#[test]
fn after_a_short_read_more_data_and_the_end_of_stream_still_arrive() {
    on_each_backend(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = loom::spawn(move || listener.accept().unwrap().0);
        let mut client = TcpStream::connect(addr).unwrap();
        let server = server.join().unwrap();
        // Bounded: a lost wake-up fails the test instead of hanging it.
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 100];

        client.write_all(b"hello").unwrap();
        assert_eq!((&server).read(&mut buf).unwrap(), 5);
        let writer = loom::spawn(move || {
            loom::time::sleep(Duration::from_millis(20)).unwrap();
            client.write_all(b"world").unwrap();
            // Both the data and the end of stream are in the server's
            // socket before it reads again.
            client.shutdown(Shutdown::Write).unwrap();
            loom::time::sleep(Duration::from_millis(20)).unwrap();
            client
        });
        assert_eq!(
            (&server).read(&mut buf).unwrap(),
            5,
            "data after a short read"
        );
        assert_eq!(&buf[..5], b"world");
        let _client = writer.join().unwrap();
        // A timed-out read makes one last attempt, which would find the end
        // of stream too: only the time taken tells a lost wake-up apart.
        let start = Instant::now();
        assert_eq!(
            (&server).read(&mut buf).unwrap(),
            0,
            "end of stream after a short read"
        );
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the end of stream was seen only when the read timed out"
        );
    });
}

/// A cancel racing with the data it waits for: the reader either gets the
/// bytes or the cancellation error, and in the latter case the bytes are still in
/// the socket — nothing is lost or duplicated.
#[test]
fn cancel_racing_a_completion_loses_nothing() {
    on_each_backend(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = loom::spawn(move || listener.accept().unwrap().0);
        let mut writer = TcpStream::connect(addr).unwrap();
        let reader = Rc::new(accepted.join().unwrap());
        let (mut delivered, mut interrupted) = (0u32, 0u32);
        for round in 0..200u32 {
            let blocked = {
                let reader = Rc::clone(&reader);
                loom::spawn(move || {
                    let mut buf = [0u8; 4];
                    (&*reader)
                        .read_exact(&mut buf)
                        .map(|()| u32::from_le_bytes(buf))
                })
            };
            loom::yield_now(); // the reader is now blocked in recv
            writer.write_all(&round.to_le_bytes()).unwrap();
            blocked.cancel();
            match blocked.join().unwrap() {
                Ok(value) => {
                    assert_eq!(value, round);
                    delivered += 1;
                }
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::ECANCELED));
                    interrupted += 1;
                    let mut buf = [0u8; 4];
                    (&*reader).read_exact(&mut buf).unwrap();
                    assert_eq!(
                        u32::from_le_bytes(buf),
                        round,
                        "the bytes stayed in the socket"
                    );
                }
            }
        }
        assert_eq!(delivered + interrupted, 200);
    });
}

/// A tiny ring: the submission queue fills up (it is submitted and
/// refilled, never dropped) and the completion queue overflows (the kernel
/// keeps the extra completions until the loop asks for them).
#[test]
fn tiny_ring_survives_full_queues() {
    loom_tests::on_each_backend_with(
        |b| b.fibers(512).ring_entries(4),
        || {
            let addr = echo_server();
            let clients: Vec<_> = (0..200)
                .map(|c| {
                    loom::spawn(move || {
                        let mut stream = TcpStream::connect(addr).unwrap();
                        let message = pattern(c, 300);
                        let mut echo = vec![0u8; 300];
                        for _ in 0..5 {
                            stream.write_all(&message).unwrap();
                            stream.read_exact(&mut echo).unwrap();
                            assert_eq!(echo, message);
                        }
                    })
                })
                .collect();
            for client in clients {
                client.join().unwrap();
            }
        },
    );
}

/// Accept loops that ignore errors do not hang shutdown: `incoming()` ends
/// when its fiber is cancelled, and a loop that swallows the cancellation
/// error still yields, so the loop abandons it after the grace period.
#[test]
fn accept_loops_that_swallow_errors_do_not_hang_shutdown() {
    let start = Instant::now();
    loom_tests::on_each_backend_with(
        |b| b.fibers(16).shutdown_timeout(Duration::from_millis(100)),
        || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            loom::spawn(move || for _stream in listener.incoming().flatten() {});
            let stubborn = TcpListener::bind("127.0.0.1:0").unwrap();
            loom::spawn(move || {
                loop {
                    let _ = stubborn.accept();
                }
            });
            loom::yield_now();
        },
    );
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// This process's descriptors that are IPv4 TCP sockets with `port` at
/// either end. Only these: tests running in parallel open descriptors of
/// their own, and so does Tracy's listener when it is compiled in.
fn fds_on_port(port: u16) -> usize {
    let port = format!(":{port:04X}");
    let inodes: std::collections::HashSet<String> = std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let ours = fields[1].ends_with(&port) || fields[2].ends_with(&port);
            ours.then(|| format!("socket:[{}]", fields[9]))
        })
        .collect();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| inodes.contains(target.to_string_lossy().as_ref()))
        .count()
}

/// An accept cancelled while its connection arrives either returns the
/// connection (wrapped at once, so dropping it closes the fd) or the
/// cancellation error: no descriptor leaks either way.
#[test]
fn cancelled_accepts_leak_no_descriptors() {
    on_each_backend(|| {
        let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let before = fds_on_port(addr.port());
        assert_eq!(before, 1, "the listener");
        for _ in 0..100 {
            let acceptor = {
                let listener = Rc::clone(&listener);
                loom::spawn(move || listener.accept().map(|(stream, _)| stream))
            };
            loom::yield_now(); // blocked in accept
            let client = TcpStream::connect(addr).unwrap();
            acceptor.cancel();
            match acceptor.join().unwrap() {
                Ok(stream) => drop(stream),
                Err(e) => {
                    assert!(loom::fiber::is_cancelled(&e), "{e}");
                    // The connection waits in the backlog: take it now.
                    drop(listener.accept().unwrap());
                }
            }
            drop(client);
        }
        assert_eq!(fds_on_port(addr.port()), before);
    });
}

/// Accepts until cancelled, writing `id` to each connection so the client
/// knows which listener took it; returns how many it accepted.
fn tagging_acceptor(listener: TcpListener, id: u8) -> loom::JoinHandle<usize> {
    loom::spawn(move || {
        let mut accepted = 0;
        for stream in listener.incoming() {
            stream.unwrap().write_all(&[id]).unwrap();
            accepted += 1;
        }
        accepted
    })
}

/// SO_REUSEPORT: two listeners share one port and every connection is
/// accepted by exactly one of them.
#[test]
fn reuse_port_listeners_share_the_connections() {
    const CLIENTS: usize = 64;
    on_each_backend(|| {
        let options = ListenOptions::new().reuse_port(true);
        let first = TcpListener::bind_with("127.0.0.1:0", &options).unwrap();
        let addr = first.local_addr().unwrap();
        let second = TcpListener::bind_with(addr, &options).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
        let acceptors = [tagging_acceptor(first, 0), tagging_acceptor(second, 1)];

        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        let mut seen_by_clients = [0usize; 2];
        for mut client in clients {
            // Bounded: a connection nobody accepts fails the test, not hangs it.
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut id = [0u8; 1];
            client.read_exact(&mut id).unwrap();
            seen_by_clients[usize::from(id[0])] += 1;
        }

        let accepted = acceptors.map(|acceptor| {
            acceptor.cancel();
            acceptor.join().unwrap()
        });
        assert_eq!(accepted, seen_by_clients);
        assert_eq!(accepted[0] + accepted[1], CLIENTS, "{accepted:?}");
        // Linux hashes each connection's 4-tuple (with a random key) onto
        // the group: all 64 on one listener has odds of 2^-63. Other
        // kernels do not balance.
        #[cfg(target_os = "linux")]
        assert!(accepted.iter().all(|&n| n > 0), "{accepted:?}");
    });
}

/// Sharing needs SO_REUSEPORT on every listener: without it on either
/// side, the second bind fails.
#[test]
fn without_reuse_port_the_second_bind_is_refused() {
    on_each_backend(|| {
        let plain = ListenOptions::new();
        let shared = ListenOptions::new().reuse_port(true);
        for (first, second) in [(&plain, &plain), (&shared, &plain), (&plain, &shared)] {
            let listener = TcpListener::bind_with("127.0.0.1:0", first).unwrap();
            let addr = listener.local_addr().unwrap();
            let err = TcpListener::bind_with(addr, second).unwrap_err();
            assert_eq!(
                err.kind(),
                io::ErrorKind::AddrInUse,
                "{first:?} then {second:?}: {err}"
            );
        }
        // bind is bind_with(ListenOptions::new()): no reuse_port either.
        let listener = TcpListener::bind_with("127.0.0.1:0", &shared).unwrap();
        let err = TcpListener::bind(listener.local_addr().unwrap()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    });
}

#[test]
fn backlog_option_and_bad_addresses() {
    on_each_backend(|| {
        // The smallest queue still accepts.
        let listener =
            TcpListener::bind_with("127.0.0.1:0", &ListenOptions::new().backlog(1)).unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tagging_acceptor(listener, 7);
        for _ in 0..3 {
            let mut client = TcpStream::connect(addr).unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut id = [0u8; 1];
            client.read_exact(&mut id).unwrap();
            assert_eq!(id, [7]);
        }
        acceptor.cancel();
        assert_eq!(acceptor.join().unwrap(), 3);

        // Past i32::MAX is clamped (and the kernel caps it at somaxconn).
        let huge = ListenOptions::new().backlog(u32::MAX);
        drop(TcpListener::bind_with("127.0.0.1:0", &huge).unwrap());
        drop(TcpListener::bind_with("127.0.0.1:0", &ListenOptions::default()).unwrap());

        // TEST-NET-1: on no interface of this host.
        let err = TcpListener::bind_with("192.0.2.1:0", &ListenOptions::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrNotAvailable, "{err}");
        // No port: refused by the parser before any system call.
        let err = TcpListener::bind_with("no-port-here", &ListenOptions::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    });
}

/// What std reports for the same timeout on a socket of its own (the
/// kernel rounds it to its clock tick).
fn std_rounded(timeout: Duration) -> Option<Duration> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.read_timeout().unwrap()
}

#[test]
fn timeouts_are_socket_state_shared_with_clones_and_std() {
    on_each_backend(|| {
        let addr = echo_server();
        let a = TcpStream::connect(addr).unwrap();
        let b = a.try_clone().unwrap();
        let t = Duration::from_millis(250);
        a.set_read_timeout(Some(t)).unwrap();
        assert_eq!(b.read_timeout().unwrap(), std_rounded(t), "clone sees a's");
        b.set_write_timeout(Some(t)).unwrap();
        assert_eq!(
            a.write_timeout().unwrap(),
            std_rounded(t),
            "a sees the clone's"
        );
        // A clone of a clone shares with both.
        let c = b.try_clone().unwrap();
        c.set_read_timeout(None).unwrap();
        assert_eq!(a.read_timeout().unwrap(), None);
        // Rounded as std rounds it.
        let odd = Duration::from_micros(30_001);
        a.set_read_timeout(Some(odd)).unwrap();
        assert_eq!(a.read_timeout().unwrap(), std_rounded(odd));

        // into_std hands both to std ...
        let std_stream = a.into_std().unwrap();
        assert_eq!(std_stream.read_timeout().unwrap(), std_rounded(odd));
        assert_eq!(std_stream.write_timeout().unwrap(), std_rounded(t));
        // ... and from_std adopts what std set, and honours it.
        let short = Duration::from_millis(40);
        std_stream.set_read_timeout(Some(short)).unwrap();
        let mut adopted = TcpStream::from_std(std_stream).unwrap();
        assert_eq!(adopted.read_timeout().unwrap(), std_rounded(short));
        let start = Instant::now();
        let err = adopted.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        assert!(start.elapsed() >= short);
        drop((b, c));
    });
}

#[test]
fn a_short_timeout_bounds_waiting_not_data_already_there() {
    on_each_backend(|| {
        let addr = echo_server();
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(b"waiting").unwrap();
        // Let the echo arrive, then read it under the shortest timeout.
        let mut buf = [0u8; 7];
        stream.read_exact(&mut buf[..1]).unwrap();
        loom::time::sleep(Duration::from_millis(20)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_nanos(1)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_nanos(1)))
            .unwrap();
        let n = stream.read(&mut buf[1..]).unwrap();
        assert_eq!(&buf[..1 + n], &b"waiting"[..1 + n]);
        assert_eq!(n, 6, "all the waiting bytes");
        // With nothing left, the same timeout fails at once.
        let err = stream.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        // A write with room in the buffer goes through.
        assert_eq!(stream.write(b"more").unwrap(), 4);
        stream.set_read_timeout(None).unwrap();
        stream.read_exact(&mut buf[..4]).unwrap();
        assert_eq!(&buf[..4], b"more");
    });
}

#[test]
fn an_accepted_stream_has_its_listeners_timeouts() {
    use std::os::fd::AsRawFd;
    on_each_backend(|| {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let timeval = libc::timeval {
            tv_sec: 0,
            tv_usec: 300_000,
        };
        // SAFETY: a valid timeval of the size passed.
        let set = unsafe {
            libc::setsockopt(
                std_listener.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeval).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0);
        let listener = TcpListener::from_std(std_listener).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = loom::spawn(move || TcpStream::connect(addr).unwrap());
        let (accepted, _) = listener.accept().unwrap();
        let _client = client.join().unwrap();
        let kernel = accepted.into_std().unwrap().read_timeout().unwrap();
        assert_eq!(
            kernel,
            Some(Duration::from_millis(300)),
            "the kernel's copy"
        );
        let (accepted, _) = {
            let client = loom::spawn(move || TcpStream::connect(addr).unwrap());
            let pair = listener.accept().unwrap();
            drop(client.join().unwrap());
            pair
        };
        assert_eq!(accepted.read_timeout().unwrap(), kernel, "loom's copy");
    });
}

/// `serve_balanced` on two loops: connections held open alternate between
/// the loops; once loop 1's have closed, the next ones all go to loop 1;
/// each is served on the loop that reported it.
#[test]
fn serve_balanced_hands_each_connection_to_the_least_loaded_loop() {
    loom_tests::on_each_backend_with(
        |b| b.threads(2).fibers(64),
        || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let (done_tx, done_rx) = loom::sync::mpsc::channel::<u8>(64);
            let server = loom::spawn(move || {
                listener.serve_balanced(move |mut stream| {
                    let index = loom::rt::loop_index() as u8;
                    let _ = stream.write_all(&[index]);
                    let mut buf = [0u8; 64];
                    while let Ok(n @ 1..) = stream.read(&mut buf) {
                        if stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = done_tx.send(index);
                })
            });
            let connect = || {
                let mut client = TcpStream::connect(addr).unwrap();
                let mut index = [0];
                client.read_exact(&mut index).unwrap();
                (client, index[0])
            };
            let mut held: Vec<_> = (0..16).map(|_| connect()).collect();
            let on_loop_1 = held.iter().filter(|(_, index)| *index == 1).count();
            assert_eq!(on_loop_1, 8, "16 connections held open split 8/8");
            for (client, _) in &mut held {
                client.write_all(b"ping").unwrap();
                let mut echo = [0; 4];
                client.read_exact(&mut echo).unwrap();
                assert_eq!(&echo, b"ping");
            }
            held.retain(|(_, index)| *index == 0);
            for _ in 0..8 {
                assert_eq!(done_rx.recv(), Ok(1), "only loop 1's connections closed");
            }
            // The handler has returned; its count goes right after.
            loom::time::sleep(Duration::from_millis(50)).unwrap();
            let next: Vec<_> = (0..8).map(|_| connect()).collect();
            assert!(
                next.iter().all(|(_, index)| *index == 1),
                "new connections go to the loop with none: {:?}",
                next.iter().map(|(_, index)| index).collect::<Vec<_>>()
            );
            server.cancel();
            server.join().unwrap().unwrap();
        },
    );
}
