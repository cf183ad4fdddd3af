//! `loom::io::splice` and `loom::io::pipe` on every backend: socket →
//! pipe → socket transfers with end of file, a closed peer, misuse,
//! timeouts, deadlines and cancellation. Linux only (splice is).
#![cfg(target_os = "linux")]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use loom::io::{PipeReader, PipeWriter, SpliceFd, pipe, splice};
use loom::net::{TcpListener, TcpStream, UnixStream};
use loom_tests::{checksum, on_each_backend, pattern};

/// A connected TCP pair on loopback: (client, server).
fn tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr: SocketAddr = listener.local_addr()?;
    let accepted = loom::spawn(move || listener.accept().map(|(s, _)| s));
    let client = TcpStream::connect(addr)?;
    Ok((client, accepted.join().unwrap()?))
}

/// Moves everything from `from` to `to` through the pipe until `from`
/// reaches end of file; returns the bytes moved.
fn pump(
    from: &impl SpliceFd,
    to: &impl SpliceFd,
    pipe: &(PipeReader, PipeWriter),
) -> io::Result<u64> {
    let mut total = 0;
    loop {
        let n = splice(from, &pipe.1, 64 * 1024)?;
        if n == 0 {
            return Ok(total);
        }
        let mut left = n;
        while left > 0 {
            left -= splice(&pipe.0, to, left)?;
        }
        total += n as u64;
    }
}

/// 8 MiB from a client through `a` → pipe → `b` to a server, checksummed;
/// the client's shutdown reaches the pump as end of file (0), and the
/// pump's shutdown reaches the server as end of file.
#[test]
fn socket_to_pipe_to_socket_moves_every_byte_then_eof() {
    const LEN: usize = 8 << 20;
    on_each_backend(|| -> io::Result<()> {
        let (mut client, a) = tcp_pair()?;
        let (b, mut server) = tcp_pair()?;
        let sent = pattern(7, LEN);
        let expected = checksum(&sent);
        let writer = loom::spawn(move || -> io::Result<()> {
            client.write_all(&sent)?;
            client.shutdown(Shutdown::Write)
        });
        let reader = loom::spawn(move || -> io::Result<Vec<u8>> {
            let mut got = Vec::with_capacity(LEN);
            server.read_to_end(&mut got)?;
            Ok(got)
        });
        let pipe = pipe()?;
        let moved = pump(&a, &b, &pipe)?;
        b.shutdown(Shutdown::Write)?;
        writer.join().unwrap()?;
        let got = reader.join().unwrap()?;
        assert_eq!(moved, LEN as u64);
        assert_eq!(got.len(), LEN);
        assert_eq!(checksum(&got), expected);
        // End of file stays end of file.
        assert_eq!(splice(&a, &pipe.1, 1024)?, 0);
        // And a pipe whose writer is gone reads as end of file too.
        let (pipe_out, pipe_in) = pipe;
        drop(pipe_in);
        assert_eq!(splice(&pipe_out, &b, 1024)?, 0);
        Ok(())
    })
    .into_iter()
    .collect::<io::Result<Vec<_>>>()
    .unwrap();
}

/// Unix stream sockets splice too, and `len` 0 moves nothing at once.
#[test]
fn unix_sockets_splice_and_zero_len_is_zero() {
    on_each_backend(|| -> io::Result<()> {
        let (mut client, a) = UnixStream::pair()?;
        let (b, mut server) = UnixStream::pair()?;
        let (pipe_out, pipe_in) = pipe()?;
        assert_eq!(splice(&a, &pipe_in, 0)?, 0);
        client.write_all(b"hello")?;
        assert_eq!(splice(&a, &pipe_in, 1024)?, 5);
        assert_eq!(splice(&pipe_out, &b, 1024)?, 5);
        let mut got = [0; 5];
        server.read_exact(&mut got)?;
        assert_eq!(&got, b"hello");
        Ok(())
    })
    .into_iter()
    .collect::<io::Result<Vec<_>>>()
    .unwrap();
}

/// Splicing into a socket whose peer has closed fails with a clear error
/// (`BrokenPipe` or `ConnectionReset`), not a hang or a signal; and a
/// reset peer on the reading side is `ConnectionReset`.
#[test]
fn closed_peer_is_a_clear_error() {
    on_each_backend(|| -> io::Result<()> {
        // Writing side: the server closes; the pump keeps splicing into it.
        let (to, server) = tcp_pair()?;
        drop(server);
        let (pipe_out, pipe_in) = pipe()?;
        let filler = vec![0x5a; 64 * 1024];
        let started = Instant::now();
        let error = loop {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no error from a closed peer"
            );
            (&pipe_in).write_all(&filler)?;
            let mut left = filler.len();
            let result = loop {
                match splice(&pipe_out, &to, left) {
                    Ok(n) => left -= n,
                    Err(e) => break Err(e),
                }
                if left == 0 {
                    break Ok(());
                }
            };
            if let Err(e) = result {
                break e;
            }
        };
        assert!(
            matches!(
                error.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{error:?}"
        );

        // Reading side: the client resets the connection (SO_LINGER 0,
        // then close); the next splice from it reports the reset.
        let (client, from) = tcp_pair()?;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid linger struct of the size passed, on an open fd.
        let set = unsafe {
            libc::setsockopt(
                client.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&raw const linger).cast(),
                size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0);
        drop(client);
        let (_out, pipe_in) = pipe()?;
        let error = splice(&from, &pipe_in, 1024).expect_err("a reset connection");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error:?}");
        Ok(())
    })
    .into_iter()
    .collect::<io::Result<Vec<_>>>()
    .unwrap();
}

/// Neither end a pipe, or an end used the wrong way round: the kernel's
/// error, at once.
#[test]
fn misuse_is_refused() {
    on_each_backend(|| -> io::Result<()> {
        let (a, b) = UnixStream::pair()?;
        let error = splice(&a, &b, 16).expect_err("socket to socket");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error:?}");
        let (pipe_out, pipe_in) = pipe()?;
        let error = splice(&pipe_in, &a, 16).expect_err("from a write end");
        assert_eq!(error.raw_os_error(), Some(libc::EBADF), "{error:?}");
        let error = splice(&a, &pipe_out, 16).expect_err("into a read end");
        assert_eq!(error.raw_os_error(), Some(libc::EBADF), "{error:?}");
        Ok(())
    })
    .into_iter()
    .collect::<io::Result<Vec<_>>>()
    .unwrap();
}

/// A splice waiting on an idle socket ends on the socket's read timeout
/// (`WouldBlock`), on a call-tree deadline (`TimedOut`) and on
/// cancellation; the same holds for a full pipe on the writing side.
#[test]
fn waits_end_on_timeouts_deadlines_and_cancellation() {
    on_each_backend(|| -> io::Result<()> {
        let (_client, idle) = tcp_pair()?;
        let (_pipe_out, pipe_in) = pipe()?;

        idle.set_read_timeout(Some(Duration::from_millis(50)))?;
        let started = Instant::now();
        let error = splice(&idle, &pipe_in, 1024).expect_err("read timeout");
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock, "{error:?}");
        assert!(started.elapsed() >= Duration::from_millis(50));
        idle.set_read_timeout(None)?;

        let started = Instant::now();
        let error =
            loom::time::with_timeout(Duration::from_millis(50), || splice(&idle, &pipe_in, 1024))
                .expect_err("deadline");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(5));

        let error = loom::fiber::scope(|s| {
            let waiting = s.spawn(|| splice(&idle, &pipe_in, 1024));
            loom::time::sleep(Duration::from_millis(20)).unwrap();
            waiting.cancel();
            waiting.join().unwrap().expect_err("cancelled")
        });
        assert!(loom::fiber::is_cancelled(&error), "{error:?}");

        // A full pipe: the writing side waits for room, and a deadline
        // ends that wait too.
        let (mut client, from) = tcp_pair()?;
        client.write_all(&vec![1u8; 512 * 1024])?;
        let mut queued = 0;
        let error = loom::time::with_timeout(Duration::from_millis(200), || -> io::Result<()> {
            loop {
                queued += splice(&from, &pipe_in, 1 << 20)?;
            }
        })
        .expect_err("the pipe fills");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error:?}");
        assert!(queued >= 4096, "only {queued} bytes fit in the pipe");
        Ok(())
    })
    .into_iter()
    .collect::<io::Result<Vec<_>>>()
    .unwrap();
}

/// Fibers read and write a pipe concurrently, each parking only itself.
#[test]
fn pipe_between_fibers() {
    on_each_backend(|| -> io::Result<()> {
        const LEN: usize = 1 << 20;
        let (mut reader, mut writer) = pipe()?;
        let data = pattern(3, LEN);
        let expected = checksum(&data);
        let producer = loom::spawn(move || writer.write_all(&data));
        let mut got = Vec::new();
        reader.read_to_end(&mut got)?;
        producer.join().unwrap()?;
        assert_eq!(checksum(&got), expected);
        Ok(())
    })
    .into_iter()
    .collect::<io::Result<Vec<_>>>()
    .unwrap();
}

/// On io_uring the kernel runs each splice on a worker thread of its own
/// (io-wq) that blocks until bytes can move; loom waits for a socket's
/// readiness in the ring first, so splices waiting on idle connections
/// hold no such thread.
#[test]
fn idle_splices_hold_no_kernel_threads_on_io_uring() {
    const IDLE: usize = 64;
    let Ok(rt) = loom::Runtime::builder()
        .backend(loom::rt::Backend::IoUring)
        .build()
    else {
        loom_tests::say(format_args!("io_uring unavailable: skipped"));
        return;
    };
    let workers = rt.run(|| {
        let pairs: Vec<_> = (0..IDLE).map(|_| UnixStream::pair().unwrap()).collect();
        let pipes: Vec<_> = (0..IDLE).map(|_| pipe().unwrap()).collect();
        loom::fiber::scope(|s| {
            for ((_, idle), (_, pipe_in)) in pairs.iter().zip(&pipes) {
                s.spawn(move || splice(idle, pipe_in, 1024));
            }
            loom::time::sleep(Duration::from_millis(200)).unwrap();
            let workers = io_wq_workers();
            s.cancel();
            workers
        })
    });
    // Other tests of this binary may have a few workers of their own.
    assert!(
        workers < IDLE / 2,
        "{workers} io_uring worker threads for {IDLE} idle splices"
    );
}

/// Threads of this process that are io_uring workers.
fn io_wq_workers() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("iou-wrk"))
        .count()
}
