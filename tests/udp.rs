//! UDP on every backend: echo with checksums, connected sockets,
//! timeouts, peeking, cancellation and options.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use loom::net::UdpSocket;
use loom_tests::{checksum, on_each_backend, pattern};

/// Starts a fiber echoing every datagram back to its sender; returns its
/// address.
fn echo_server() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    loom::spawn(move || {
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                return;
            };
            if socket.send_to(&buf[..n], from).is_err() {
                return;
            }
        }
    });
    addr
}

#[test]
fn echo_send_to_recv_from() {
    on_each_backend(|| {
        let server = echo_server();
        let clients: Vec<_> = (0..8u64)
            .map(|c| {
                loom::spawn(move || -> io::Result<()> {
                    let socket = UdpSocket::bind("127.0.0.1:0")?;
                    let mut buf = vec![0u8; 65536];
                    for m in 0..50u64 {
                        // Sizes from 1 byte to ~9 KiB (several fragments' worth).
                        let size = 1 + ((c * 50 + m) * 181 % 9000) as usize;
                        let message = pattern(c * 1000 + m, size);
                        assert_eq!(socket.send_to(&message, server)?, size);
                        let (n, from) = socket.recv_from(&mut buf)?;
                        assert_eq!(from, server);
                        assert_eq!(n, size, "client {c} datagram {m}");
                        assert_eq!(checksum(&buf[..n]), checksum(&message));
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
fn connected_send_and_recv() {
    on_each_backend(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        assert_eq!(
            a.peer_addr().unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        a.connect(b_addr).unwrap();
        b.connect(a_addr).unwrap();
        assert_eq!(a.peer_addr().unwrap(), b_addr);
        let mut buf = [0u8; 4096];
        for i in 0..20u64 {
            let message = pattern(i, 100 + i as usize * 100);
            assert_eq!(a.send(&message).unwrap(), message.len());
            let n = b.recv(&mut buf).unwrap();
            assert_eq!(checksum(&buf[..n]), checksum(&message));
            assert_eq!(b.send(&buf[..n]).unwrap(), n);
            let n = a.recv(&mut buf).unwrap();
            assert_eq!(checksum(&buf[..n]), checksum(&message));
        }
        // A receive waits in one fiber while another sends.
        let b = Rc::new(b);
        let receiver = {
            let b = Rc::clone(&b);
            loom::spawn(move || {
                let mut buf = [0u8; 16];
                let n = b.recv(&mut buf).unwrap();
                buf[..n].to_vec()
            })
        };
        loom::time::sleep(Duration::from_millis(5)).unwrap();
        a.send(b"late").unwrap();
        assert_eq!(receiver.join().unwrap(), b"late");
    });
}

#[test]
fn read_timeout_keeps_the_socket_usable() {
    on_each_backend(|| {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let timeout = Duration::from_millis(30);
        socket.set_read_timeout(Some(timeout)).unwrap();
        assert_eq!(socket.read_timeout().unwrap(), std_rounded(timeout));
        let mut buf = [0u8; 16];
        let start = Instant::now();
        let err = socket.recv_from(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        assert!(start.elapsed() >= timeout);
        // The op was cancelled and reaped; the socket still works.
        socket
            .send_to(b"self", socket.local_addr().unwrap())
            .unwrap();
        let (n, from) = socket.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"self");
        assert_eq!(from, socket.local_addr().unwrap());
        // Connected receives time out too.
        socket.connect(socket.local_addr().unwrap()).unwrap();
        let err = socket.recv(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        let err = socket.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = socket.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        socket.set_write_timeout(Some(timeout)).unwrap();
        assert_eq!(socket.write_timeout().unwrap(), std_rounded(timeout));
        socket.set_read_timeout(None).unwrap();
        assert_eq!(socket.read_timeout().unwrap(), None);
    });
}

#[test]
fn peek_leaves_the_datagram_queued() {
    on_each_backend(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.send_to(b"first", b.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = b.peek_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"first"[..], a.local_addr().unwrap()));
        b.connect(a.local_addr().unwrap()).unwrap();
        assert_eq!(b.peek(&mut buf).unwrap(), 5);
        assert_eq!(b.recv(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"first");
    });
}

#[test]
fn cancel_a_fiber_blocked_in_recv_from() {
    on_each_backend(|| {
        let socket = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let blocked = {
            let socket = Rc::clone(&socket);
            loom::spawn(move || {
                let mut buf = [0u8; 64];
                socket.recv_from(&mut buf).map(|(n, _)| n)
            })
        };
        loom::time::sleep(Duration::from_millis(10)).unwrap();
        blocked.cancel();
        let err = blocked.join().unwrap().unwrap_err();
        assert!(loom::fiber::is_cancelled(&err), "{err}");
        // Nothing is left in flight: the next datagram reaches us.
        let addr = socket.local_addr().unwrap();
        socket.send_to(b"ping", addr).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(socket.recv_from(&mut buf).unwrap(), (4, addr));
    });
}

#[test]
fn options_clone_and_std_round_trip() {
    on_each_backend(|| {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(!socket.broadcast().unwrap());
        socket.set_broadcast(true).unwrap();
        assert!(socket.broadcast().unwrap());
        socket.set_ttl(42).unwrap();
        assert_eq!(socket.ttl().unwrap(), 42);
        assert!(socket.take_error().unwrap().is_none());
        assert!(format!("{socket:?}").starts_with("UdpSocket"));

        let clone = socket.try_clone().unwrap();
        let addr = socket.local_addr().unwrap();
        assert_eq!(clone.local_addr().unwrap(), addr);
        clone.send_to(b"via clone", addr).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(socket.recv_from(&mut buf).unwrap().0, 9);

        let std_socket = socket.into_std().unwrap();
        assert_eq!(std_socket.local_addr().unwrap(), addr);
        let socket = UdpSocket::from_std(std_socket).unwrap();
        clone.send_to(b"again", addr).unwrap();
        assert_eq!(socket.recv_from(&mut buf).unwrap().0, 5);

        let empty: &[SocketAddr] = &[];
        let err = socket.send_to(b"x", empty).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // IPv6 works too where the host has it.
        if let Ok(v6) = UdpSocket::bind("[::1]:0") {
            let v6_addr = v6.local_addr().unwrap();
            v6.send_to(b"six", v6_addr).unwrap();
            assert_eq!(v6.recv_from(&mut buf).unwrap(), (3, v6_addr));
        }
    });
}

/// What std reports for the same read timeout (the kernel rounds it to its
/// clock tick).
fn std_rounded(timeout: Duration) -> Option<Duration> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(timeout)).unwrap();
    socket.read_timeout().unwrap()
}

#[test]
fn timeouts_are_shared_with_clones_and_bound_only_waiting() {
    on_each_backend(|| {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let clone = socket.try_clone().unwrap();
        let timeout = Duration::from_millis(100);
        clone.set_read_timeout(Some(timeout)).unwrap();
        assert_eq!(socket.read_timeout().unwrap(), std_rounded(timeout));
        // A datagram already queued is received however short the timeout.
        socket
            .set_read_timeout(Some(Duration::from_nanos(1)))
            .unwrap();
        let here = socket.local_addr().unwrap();
        socket.send_to(b"queued", here).unwrap();
        loom::time::sleep(Duration::from_millis(10)).unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = clone.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"queued");
        let err = socket.recv_from(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        // std sees the timeout loom set, and loom the one std set.
        let std_socket = clone.into_std().unwrap();
        assert_eq!(
            std_socket.read_timeout().unwrap(),
            std_rounded(Duration::from_nanos(1))
        );
        std_socket.set_write_timeout(Some(timeout)).unwrap();
        let back = UdpSocket::from_std(std_socket).unwrap();
        assert_eq!(back.write_timeout().unwrap(), std_rounded(timeout));
    });
}
