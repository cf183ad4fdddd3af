//! Unix-domain sockets on every backend: streams over paths, abstract
//! names and pairs, large transfers, credentials, datagrams, errors,
//! timeouts and cancellation.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use loom::net::{UnixDatagram, UnixListener, UnixStream};
use loom_tests::{checksum, on_each_backend, pattern};

/// A socket path in the temp directory, unique to this process and call,
/// removed (if it exists) when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(tag: &str) -> TempPath {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("loom-{}-{tag}-{n}.sock", std::process::id());
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&path);
        TempPath(path)
    }
}

impl AsRef<Path> for TempPath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A Linux abstract name unique to this process and call.
#[cfg(target_os = "linux")]
fn abstract_addr(tag: &str) -> SocketAddr {
    use std::os::linux::net::SocketAddrExt;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = format!("loom-{}-{tag}-{n}", std::process::id());
    SocketAddr::from_abstract_name(name).unwrap()
}

/// Spawns a fiber accepting connections and echoing each in its own fiber.
fn serve_echo(listener: UnixListener) {
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
}

/// `connections` clients, each sending `messages` checksummed messages
/// through an echo server and checking what comes back.
fn echo_clients(connect: impl Fn() -> io::Result<UnixStream> + Clone + 'static) {
    let clients: Vec<_> = (0..10u64)
        .map(|c| {
            let connect = connect.clone();
            loom::spawn(move || -> io::Result<()> {
                let mut stream = connect()?;
                for m in 0..20u64 {
                    let message = pattern(c * 100 + m, 1 + (m as usize * 997) % 20_000);
                    let mut echo = vec![0u8; message.len()];
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
}

#[test]
fn stream_echo_over_a_path() {
    on_each_backend(|| {
        let path = Rc::new(TempPath::new("echo"));
        let listener = UnixListener::bind(&*path).unwrap();
        let local = listener.local_addr().unwrap();
        assert_eq!(local.as_pathname(), Some(path.0.as_path()));
        assert!(format!("{listener:?}").starts_with("UnixListener"));
        serve_echo(listener);
        let p = Rc::clone(&path);
        echo_clients(move || UnixStream::connect(&*p));
        let stream = UnixStream::connect(&*path).unwrap();
        assert_eq!(
            stream.peer_addr().unwrap().as_pathname(),
            Some(path.0.as_path())
        );
        assert!(stream.local_addr().unwrap().is_unnamed());
        // connect_addr with a std address reaches the same listener.
        let mut stream = UnixStream::connect_addr(&local).unwrap();
        stream.write_all(b"addr").unwrap();
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"addr");
    });
}

#[cfg(target_os = "linux")]
#[test]
fn stream_echo_over_an_abstract_name() {
    use std::os::linux::net::SocketAddrExt;
    on_each_backend(|| {
        let addr = abstract_addr("echo");
        let listener = UnixListener::bind_addr(&addr).unwrap();
        let local = listener.local_addr().unwrap();
        assert_eq!(local.as_abstract_name(), addr.as_abstract_name());
        assert_eq!(local.as_pathname(), None);
        serve_echo(listener);
        let a = addr.clone();
        echo_clients(move || UnixStream::connect_addr(&a));
        let stream = UnixStream::connect_addr(&addr).unwrap();
        let peer = stream.peer_addr().unwrap();
        assert_eq!(peer.as_abstract_name(), addr.as_abstract_name());
        // The name is in use while the listener lives.
        let err = UnixListener::bind_addr(&addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    });
}

#[test]
fn stream_large_transfer() {
    on_each_backend(|| {
        let path = TempPath::new("large");
        let listener = UnixListener::bind(&path).unwrap();
        let data = pattern(7, 8 << 20);
        let expected = checksum(&data);
        let reader = loom::spawn(move || {
            let (mut stream, peer) = listener.accept().unwrap();
            assert!(peer.is_unnamed());
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
        let mut stream = UnixStream::connect(&path).unwrap();
        stream.write_all(&data).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let received = reader.join().unwrap();
        assert_eq!(received.len(), data.len());
        assert_eq!(checksum(&received), expected);
    });
}

#[test]
fn stream_pair_both_ways_at_once() {
    on_each_backend(|| {
        let (a, b) = UnixStream::pair().unwrap();
        assert!(a.local_addr().unwrap().is_unnamed());
        assert!(a.peer_addr().unwrap().is_unnamed());
        assert!(format!("{a:?}").starts_with("UnixStream"));
        let (a, b) = (Rc::new(a), Rc::new(b));
        let data = pattern(3, 2 << 20);
        let expected = checksum(&data);
        // Each side writes 2 MiB while a fiber of its own reads the other's.
        let readers: Vec<_> = [Rc::clone(&a), Rc::clone(&b)]
            .into_iter()
            .map(|s| {
                loom::spawn(move || {
                    let mut got = vec![0u8; 2 << 20];
                    (&*s).read_exact(&mut got).unwrap();
                    checksum(&got)
                })
            })
            .collect();
        let writer = {
            let (b, data) = (Rc::clone(&b), data.clone());
            loom::spawn(move || (&*b).write_all(&data).unwrap())
        };
        (&*a).write_all(&data).unwrap();
        writer.join().unwrap();
        for reader in readers {
            assert_eq!(reader.join().unwrap(), expected);
        }
        // Vectored I/O goes through the same paths.
        let bufs = [io::IoSlice::new(b"vec"), io::IoSlice::new(b"tored")];
        assert_eq!((&*a).write_vectored(&bufs).unwrap(), 8);
        let mut got = [0u8; 8];
        let (x, y) = got.split_at_mut(3);
        let n = (&*b)
            .read_vectored(&mut [io::IoSliceMut::new(x), io::IoSliceMut::new(y)])
            .unwrap();
        (&*b).read_exact(&mut got[n..]).unwrap();
        assert_eq!(&got, b"vectored");
        // Closing one end is end-of-file at the other.
        drop(a);
        let mut buf = [0u8; 4];
        assert_eq!((&*b).read(&mut buf).unwrap(), 0);
    });
}

#[test]
fn peer_cred_is_this_process() {
    on_each_backend(|| {
        // SAFETY: these calls have no preconditions.
        let (uid, gid, pid) = unsafe { (libc::geteuid(), libc::getegid(), libc::getpid()) };
        let (a, _b) = UnixStream::pair().unwrap();
        let cred = a.peer_cred().unwrap();
        assert_eq!((cred.uid, cred.gid), (uid, gid));
        assert_eq!(cred.pid, Some(pid));

        let path = TempPath::new("cred");
        let listener = UnixListener::bind(&path).unwrap();
        let client = UnixStream::connect(&path).unwrap();
        let (server, _) = listener.accept().unwrap();
        for stream in [&client, &server] {
            let cred = stream.peer_cred().unwrap();
            assert_eq!((cred.uid, cred.gid, cred.pid), (uid, gid, Some(pid)));
        }
    });
}

#[test]
fn datagrams_over_paths() {
    on_each_backend(|| {
        let (pa, pb) = (TempPath::new("dgram-a"), TempPath::new("dgram-b"));
        let a = UnixDatagram::bind(&pa).unwrap();
        let b = UnixDatagram::bind(&pb).unwrap();
        assert_eq!(a.local_addr().unwrap().as_pathname(), Some(pa.0.as_path()));
        let b = Rc::new(b);
        // b echoes every datagram back to its sender's path.
        let echo = {
            let b = Rc::clone(&b);
            loom::spawn(move || {
                let mut buf = vec![0u8; 65536];
                for _ in 0..30 {
                    let (n, from) = b.recv_from(&mut buf).unwrap();
                    let to = from.as_pathname().expect("the sender is bound").to_owned();
                    b.send_to(&buf[..n], &to).unwrap();
                }
            })
        };
        let mut buf = vec![0u8; 65536];
        for i in 0..30u64 {
            let message = pattern(i, 1 + (i as usize * 1499) % 40_000);
            assert_eq!(a.send_to(&message, &pb).unwrap(), message.len());
            let (n, from) = a.recv_from(&mut buf).unwrap();
            assert_eq!(from.as_pathname(), Some(pb.0.as_path()));
            assert_eq!(n, message.len());
            assert_eq!(checksum(&buf[..n]), checksum(&message), "datagram {i}");
        }
        echo.join().unwrap();

        // An unbound sender shows up as unnamed; send_to_addr takes std's.
        let unbound = UnixDatagram::unbound().unwrap();
        unbound.send_to(b"anon", &pb).unwrap();
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"anon");
        assert!(from.is_unnamed());
        let a_addr = a.local_addr().unwrap();
        b.send_to_addr(b"by addr", &a_addr).unwrap();
        assert_eq!(a.peek_from(&mut buf).unwrap().0, 7);
        assert_eq!(a.recv(&mut buf).unwrap(), 7);

        // Connected: send/recv and peer_addr.
        assert_eq!(
            unbound.peer_addr().unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        unbound.connect(&pa).unwrap();
        assert_eq!(
            unbound.peer_addr().unwrap().as_pathname(),
            Some(pa.0.as_path())
        );
        unbound.send(b"connected").unwrap();
        assert_eq!(a.recv(&mut buf).unwrap(), 9);
        assert_eq!(&buf[..9], b"connected");
        assert!(format!("{a:?}").starts_with("UnixDatagram"));
    });
}

#[test]
fn datagram_pair() {
    on_each_backend(|| {
        let (a, b) = UnixDatagram::pair().unwrap();
        let b = Rc::new(b);
        // A receive waits in one fiber while another sends.
        let receiver = {
            let b = Rc::clone(&b);
            loom::spawn(move || {
                let mut buf = vec![0u8; 65536];
                (0..20u64)
                    .map(|_| {
                        let (n, from) = b.recv_from(&mut buf).unwrap();
                        assert!(from.is_unnamed());
                        checksum(&buf[..n])
                    })
                    .collect::<Vec<_>>()
            })
        };
        loom::time::sleep(Duration::from_millis(5)).unwrap();
        let sent: Vec<_> = (0..20u64)
            .map(|i| {
                let message = pattern(i, 100 * (i as usize + 1));
                assert_eq!(a.send(&message).unwrap(), message.len());
                checksum(&message)
            })
            .collect();
        assert_eq!(receiver.join().unwrap(), sent);
        b.send(b"back").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(a.peek(&mut buf).unwrap(), 4);
        assert_eq!(a.recv(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"back");
    });
}

#[cfg(target_os = "linux")]
#[test]
fn datagrams_over_an_abstract_name() {
    use std::os::linux::net::SocketAddrExt;
    on_each_backend(|| {
        let addr = abstract_addr("dgram");
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let client = UnixDatagram::bind_addr(&abstract_addr("dgram-client")).unwrap();
        client.send_to_addr(b"hello", &addr).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(
            from.as_abstract_name(),
            client.local_addr().unwrap().as_abstract_name()
        );
        server.connect_addr(&from).unwrap();
        server.send(b"world").unwrap();
        assert_eq!(client.recv(&mut buf).unwrap(), 5);
    });
}

#[test]
fn bind_on_an_existing_path_is_addr_in_use() {
    on_each_backend(|| {
        let path = TempPath::new("inuse");
        let listener = UnixListener::bind(&path).unwrap();
        let err = UnixListener::bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let err = UnixDatagram::bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        // Also a stale socket file with nobody listening: std behaves the
        // same, so servers remove the file first.
        drop(listener);
        let err = UnixListener::bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let err = UnixStream::connect(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    });
}

#[test]
fn connect_to_a_missing_path_is_not_found() {
    on_each_backend(|| {
        let path = TempPath::new("missing");
        let err = UnixStream::connect(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let socket = UnixDatagram::unbound().unwrap();
        let err = socket.send_to(b"x", &path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let err = socket.connect(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    });
}

#[test]
fn bad_paths_are_invalid_input() {
    on_each_backend(|| {
        let err = UnixListener::bind("nul\0inside").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let long = std::env::temp_dir().join("x".repeat(200));
        let err = UnixStream::connect(&long).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn cancel_a_fiber_blocked_in_read() {
    on_each_backend(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let a = Rc::new(a);
        let blocked = {
            let a = Rc::clone(&a);
            loom::spawn(move || {
                let mut buf = [0u8; 64];
                (&*a).read(&mut buf)
            })
        };
        loom::time::sleep(Duration::from_millis(10)).unwrap();
        blocked.cancel();
        let err = blocked.join().unwrap().unwrap_err();
        assert!(loom::fiber::is_cancelled(&err), "{err}");
        // Nothing is left in flight on the socket: the next read gets data.
        (&b).write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        (&*a).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    });
}

#[test]
fn read_timeouts_keep_sockets_usable() {
    on_each_backend(|| {
        let timeout = Duration::from_millis(30);
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.set_read_timeout(Some(timeout)).unwrap();
        let std_socket = std::os::unix::net::UnixStream::pair().unwrap().0;
        std_socket.set_read_timeout(Some(timeout)).unwrap();
        assert_eq!(
            a.read_timeout().unwrap(),
            std_socket.read_timeout().unwrap()
        );
        let mut buf = [0u8; 8];
        let start = Instant::now();
        let err = a.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        assert!(start.elapsed() >= timeout);
        b.write_all(b"after").unwrap();
        a.read_exact(&mut buf[..5]).unwrap();
        assert_eq!(&buf[..5], b"after");
        let err = a.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

        let (c, d) = UnixDatagram::pair().unwrap();
        c.set_read_timeout(Some(timeout)).unwrap();
        let err = c.recv(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        d.send(b"dgram").unwrap();
        assert_eq!(c.recv(&mut buf).unwrap(), 5);
        let err = c.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

        // A write timeout bounds a write into a full buffer.
        b.set_write_timeout(Some(timeout)).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        let err = (0..10_000)
            .find_map(|_| b.write(&chunk).err())
            .expect("the socket buffer fills up");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
    });
}

#[test]
fn connect_waits_while_the_backlog_is_full() {
    on_each_backend(|| {
        let path = TempPath::new("backlog");
        let std_listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // Shrink the backlog so that most connects find it full.
        // SAFETY: a valid listening socket.
        let rc = unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&std_listener), 1) };
        assert_eq!(rc, 0);
        let listener = UnixListener::from_std(std_listener).unwrap();
        let path = Rc::new(path);
        let clients: Vec<_> = (0..16u8)
            .map(|i| {
                let path = Rc::clone(&path);
                loom::spawn(move || -> io::Result<()> {
                    let mut stream = UnixStream::connect(&*path)?;
                    stream.write_all(&[i])
                })
            })
            .collect();
        // Let every client reach connect before accepting anything.
        loom::time::sleep(Duration::from_millis(20)).unwrap();
        let mut seen = Vec::new();
        for _ in 0..16 {
            let (mut stream, _) = listener.accept().unwrap();
            let mut byte = [0u8];
            stream.read_exact(&mut byte).unwrap();
            seen.push(byte[0]);
        }
        for client in clients {
            client.join().unwrap().unwrap();
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..16).collect::<Vec<_>>());
    });
}

#[test]
fn clone_and_std_round_trips() {
    on_each_backend(|| {
        let path = TempPath::new("std");
        let listener = UnixListener::bind(&path).unwrap();
        let std_listener = listener.into_std().unwrap();
        let listener = UnixListener::from_std(std_listener).unwrap();
        let listener = listener.try_clone().unwrap();
        assert!(listener.take_error().unwrap().is_none());
        let client = UnixStream::connect(&path).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut server = UnixStream::from_std(server.into_std().unwrap()).unwrap();
        let mut writer = client.try_clone().unwrap();
        writer.write_all(b"dup").unwrap();
        let mut buf = [0u8; 3];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"dup");
        assert!(client.take_error().unwrap().is_none());

        let (a, b) = UnixDatagram::pair().unwrap();
        let a = UnixDatagram::from_std(a.into_std().unwrap()).unwrap();
        a.try_clone().unwrap().send(b"x").unwrap();
        assert_eq!(b.recv(&mut buf).unwrap(), 1);
        b.shutdown(Shutdown::Both).unwrap();
    });
}

#[test]
fn stream_timeouts_are_socket_state_like_std() {
    on_each_backend(|| {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let clone = a.try_clone().unwrap();
        let std_pair = std::os::unix::net::UnixStream::pair().unwrap().0;
        let timeout = Duration::from_millis(70);
        std_pair.set_read_timeout(Some(timeout)).unwrap();
        let rounded = std_pair.read_timeout().unwrap();
        clone.set_read_timeout(Some(timeout)).unwrap();
        assert_eq!(a.read_timeout().unwrap(), rounded, "shared with the clone");
        // Data already there comes back under the shortest timeout.
        b.write_all(b"ready").unwrap();
        a.set_read_timeout(Some(Duration::from_nanos(1))).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(a.read(&mut buf).unwrap(), 5);
        let err = a.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        // into_std hands it to std; from_std takes std's back.
        a.set_read_timeout(Some(timeout)).unwrap();
        let std_a = a.into_std().unwrap();
        assert_eq!(std_a.read_timeout().unwrap(), rounded);
        std_a.set_write_timeout(Some(timeout)).unwrap();
        let back = UnixStream::from_std(std_a).unwrap();
        assert_eq!(back.write_timeout().unwrap(), rounded);
        drop((clone, b));
    });
}
