//! The echo servers under test, one function per [`Impl`].
//!
//! Every server binds `127.0.0.1:0`, hands the bound port to `report`, then
//! accepts in a loop and starts one fiber / task / coroutine per
//! connection, which sets `TCP_NODELAY`, reads into a 16 KiB buffer
//! ([`SERVER_BUF`]) and writes every byte it read back (`write_all`) until
//! the peer closes. A server runs until its process is killed.
//!
//! The floors (`raw-io_uring`, `raw-epoll`) are in the `floor` module;
//! [`serve`] dispatches to them too.
//!
//! The stackful implementations (loom, may) keep the buffer on the fiber's
//! stack and get 64 KiB stacks (loom's default; may's is raised to match).
//!
//! With more than one server thread (`threads` > 1): tokio runs a
//! `multi_thread` runtime with that many workers (one listener, the
//! accept loop on the calling thread, connection tasks on the workers);
//! monoio runs that many threads, each its own runtime with its own
//! listener on the same port (`SO_REUSEPORT`: the kernel spreads incoming
//! connections over the listeners by a hash of the 4-tuple, so the split
//! need not be even); may runs that many workers; loom runs that many
//! loops, each with its own `SO_REUSEPORT` listener, like monoio — or,
//! as `loom-*-balanced`, one listener on loop 0 whose connections
//! `serve_balanced` hands to the loop serving the fewest.

use std::io::{self, Read, Write};
use std::sync::mpsc;

use super::{Impl, SERVER_BUF};

/// Called once with the listening port.
pub type Report = fn(u16);

/// Runs the echo server `imp` with `threads` server threads (see the module
/// docs), forever.
///
/// # Errors
///
/// Failing to start the runtime or to bind; an accept error. A failing
/// connection only ends that connection. An error of kind
/// [`io::ErrorKind::Unsupported`] means `imp` cannot run with `threads`
/// threads (yet); the harness then skips it.
pub fn serve(imp: Impl, threads: usize, report: Report) -> io::Result<()> {
    match imp {
        Impl::LoomIoUring if threads > 1 => {
            loom_multi_loop_server(loom::rt::Backend::IoUring, threads, report)
        }
        Impl::LoomEpoll if threads > 1 => {
            loom_multi_loop_server(loom::rt::Backend::Epoll, threads, report)
        }
        Impl::LoomIoUringBalanced if threads > 1 => {
            loom_balanced_server(loom::rt::Backend::IoUring, threads, report)
        }
        Impl::LoomEpollBalanced if threads > 1 => {
            loom_balanced_server(loom::rt::Backend::Epoll, threads, report)
        }
        Impl::LoomIoUring | Impl::LoomIoUringBalanced => {
            loom_server(loom::rt::Backend::IoUring, report)
        }
        Impl::LoomEpollBalanced => loom_server(loom::rt::Backend::Epoll, report),
        Impl::LoomEpoll => loom_server(loom::rt::Backend::Epoll, report),
        Impl::Tokio => tokio_server(threads, report),
        Impl::Monoio if threads > 1 => monoio_multi_server(threads, report),
        Impl::Monoio => monoio_server(report),
        Impl::May => may_server(threads, report),
        Impl::RawIoUring | Impl::RawEpoll if threads > 1 => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{imp} is single-threaded"),
        )),
        Impl::RawIoUring => super::floor::uring::serve(report),
        Impl::RawEpoll => super::floor::epoll::serve(report),
    }
}

/// loom on `backend` with `threads` loops: every loop binds its own
/// `SO_REUSEPORT` listener on the same port and serves the connections the
/// kernel hands it, one fiber per connection (thread-per-core).
fn loom_multi_loop_server(
    backend: loom::rt::Backend,
    threads: usize,
    report: Report,
) -> io::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let rt = loom_runtime(backend, threads)?;
    rt.run(move || -> io::Result<()> {
        let options = loom::net::ListenOptions::new().reuse_port(true);
        let first = loom::net::TcpListener::bind_with("127.0.0.1:0", &options)?;
        let port = first.local_addr()?.port();
        let bound = Arc::new(AtomicUsize::new(1));
        for index in 1..threads {
            let bound = Arc::clone(&bound);
            let options = options.clone();
            drop(loom::spawn_on(index, move || -> io::Result<()> {
                let listener = loom::net::TcpListener::bind_with(("127.0.0.1", port), &options)?;
                bound.fetch_add(1, Ordering::SeqCst);
                loom_accept_loop(&listener)
            }));
        }
        while bound.load(Ordering::SeqCst) < threads {
            loom::time::sleep(std::time::Duration::from_millis(1))?;
        }
        report(port);
        loom_accept_loop(&first)
    })
}

/// loom on `backend` with `threads` loops and one listener, on loop 0:
/// `serve_balanced` hands each connection to the loop serving the fewest.
fn loom_balanced_server(
    backend: loom::rt::Backend,
    threads: usize,
    report: Report,
) -> io::Result<()> {
    let rt = loom_runtime(backend, threads)?;
    rt.run(move || -> io::Result<()> {
        let listener = loom::net::TcpListener::bind("127.0.0.1:0")?;
        report(listener.local_addr()?.port());
        listener.serve_balanced(|mut stream| {
            // A failing connection only ends that connection.
            let _ = stream
                .set_nodelay(true)
                .and_then(|()| loom_echo(&mut stream));
        })
    })
}

/// Accepts forever, one echo fiber per connection on the current loop.
fn loom_accept_loop(listener: &loom::net::TcpListener) -> io::Result<()> {
    loop {
        let (mut stream, _peer) = listener.accept()?;
        stream.set_nodelay(true)?;
        loom::spawn(move || loom_echo(&mut stream));
    }
}

/// One loom connection's echo loop, until the peer closes.
fn loom_echo(stream: &mut loom::net::TcpStream) -> io::Result<()> {
    let mut buf = [0u8; SERVER_BUF];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

/// The most fibers a loom loop may hold at once. The bench runs up to
/// 10 000 connections (one fiber each, plus the accept loop) per loop;
/// this is loom's default (`DEFAULT_MAX_FIBERS`), set explicitly so the
/// 10 000-connection cell does not depend on it. Stacks beyond the 1 024
/// reserved at start-up are mapped on demand, during the connection phase
/// (outside the measured window). Below Linux 6.13 the mapping budget
/// (`vm.max_map_count`, two mappings per stack) may cap it lower: the
/// server then says so on stderr.
const LOOM_MAX_FIBERS: usize = 64 * 1024;

/// A loom runtime on `backend` with `threads` loops and the bench's fiber
/// limit ([`LOOM_MAX_FIBERS`]); everything else is loom's default. Notes
/// on stderr when the stack budget caps it lower.
fn loom_runtime(backend: loom::rt::Backend, threads: usize) -> io::Result<loom::Runtime> {
    let rt = loom::Runtime::builder()
        .backend(backend)
        .threads(threads)
        .max_fibers(LOOM_MAX_FIBERS)
        .build()?;
    let limit = rt.fiber_limit();
    if limit < LOOM_MAX_FIBERS {
        eprintln!("note: loom can hold only {limit} fibers per loop here (stack budget)");
    }
    Ok(rt)
}

/// loom on `backend`, one fiber per connection.
fn loom_server(backend: loom::rt::Backend, report: Report) -> io::Result<()> {
    let rt = loom_runtime(backend, 1)?;
    rt.run(move || -> io::Result<()> {
        let listener = loom::net::TcpListener::bind("127.0.0.1:0")?;
        report(listener.local_addr()?.port());
        loom_accept_loop(&listener)
    })
}

/// tokio, one task per connection: a `current_thread` runtime, or with
/// `threads` > 1 a `multi_thread` runtime with `threads` workers.
fn tokio_server(threads: usize, report: Report) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let rt = if threads > 1 {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_io()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?
    };
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        report(listener.local_addr()?.port());
        loop {
            let (mut stream, _peer) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let mut buf = [0u8; SERVER_BUF];
                loop {
                    let n = stream.read(&mut buf).await?;
                    if n == 0 {
                        return io::Result::Ok(());
                    }
                    stream.write_all(&buf[..n]).await?;
                }
            });
        }
    })
}

/// monoio on its io_uring driver, one task per connection. monoio's I/O
/// takes buffers by value (the kernel owns them while an operation is in
/// flight), so the buffer is a `Vec` passed back and forth.
fn monoio_server(report: Report) -> io::Result<()> {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().build()?;
    rt.block_on(async move {
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0")?;
        report(listener.local_addr()?.port());
        loop {
            let (mut stream, _peer) = listener.accept().await?;
            stream.set_nodelay(true)?;
            monoio::spawn(async move {
                let mut buf = Vec::with_capacity(SERVER_BUF);
                loop {
                    // Reads into the spare capacity and sets the length.
                    let (res, b) = stream.read(buf).await;
                    buf = b;
                    if res? == 0 {
                        return io::Result::Ok(());
                    }
                    let (res, b) = stream.write_all(buf).await;
                    buf = b;
                    res?;
                    buf.clear();
                }
            });
        }
    })
}

/// monoio with `threads` threads, each its own io_uring runtime and its own
/// listener on the same port (`SO_REUSEPORT`), serving the connections its
/// listener accepts exactly as [`monoio_server`] does.
fn monoio_multi_server(threads: usize, report: Report) -> io::Result<()> {
    reuseport_threads("monoio", threads, report, monoio_thread)
}

/// One thread of [`monoio_multi_server`].
fn monoio_thread(port: u16, bound: &mut dyn FnMut(u16)) -> io::Result<()> {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().build()?;
    rt.block_on(async move {
        let opts = monoio::net::ListenerOpts::new().reuse_port(true);
        let listener = monoio::net::TcpListener::bind_with_config(("127.0.0.1", port), &opts)?;
        bound(listener.local_addr()?.port());
        loop {
            let (mut stream, _peer) = listener.accept().await?;
            stream.set_nodelay(true)?;
            monoio::spawn(async move {
                let mut buf = Vec::with_capacity(SERVER_BUF);
                loop {
                    let (res, b) = stream.read(buf).await;
                    buf = b;
                    if res? == 0 {
                        return io::Result::Ok(());
                    }
                    let (res, b) = stream.write_all(buf).await;
                    buf = b;
                    res?;
                    buf.clear();
                }
            });
        }
    })
}

/// One thread of a `reuseport_threads` server: binds `127.0.0.1:port`
/// with `SO_REUSEPORT` (port 0: any free port), calls `bound` with the
/// bound port, then serves forever.
pub type ServeThread = fn(port: u16, bound: &mut dyn FnMut(u16)) -> io::Result<()>;

/// What a [`reuseport_threads`] thread tells the coordinating thread.
enum ThreadEvent {
    Bound(u16),
    Exited(io::Result<()>),
}

/// Runs `threads` threads named `<name>-<i>`, each running `serve`: thread 0
/// binds any free port; once it has, the others bind the same one; once all
/// have, calls `report(port)` (so no connection can arrive before every
/// listener is there). Returns when the first thread exits, with its result.
fn reuseport_threads(
    name: &str,
    threads: usize,
    report: Report,
    serve: ServeThread,
) -> io::Result<()> {
    let (tx, rx) = mpsc::channel::<ThreadEvent>();
    let spawn = |i: usize, port: u16| -> io::Result<()> {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name(format!("{name}-{i}"))
            .spawn(move || {
                let ready = tx.clone();
                let mut bound = move |port: u16| {
                    let _ = ready.send(ThreadEvent::Bound(port));
                };
                let result = serve(port, &mut bound);
                let _ = tx.send(ThreadEvent::Exited(result));
            })
            .map(drop)
    };
    let exited = |result: io::Result<()>| {
        result.and(Err(io::Error::other(
            "a server thread stopped before every listener was bound",
        )))
    };
    let recv = |rx: &mpsc::Receiver<ThreadEvent>| {
        rx.recv()
            .map_err(|_| io::Error::other("a server thread panicked"))
    };
    spawn(0, 0)?;
    let port = match recv(&rx)? {
        ThreadEvent::Bound(port) => port,
        ThreadEvent::Exited(result) => return exited(result),
    };
    for i in 1..threads {
        spawn(i, port)?;
    }
    // Only the threads hold senders now: if they all die, `recv` fails.
    drop(tx);
    for _ in 1..threads {
        match recv(&rx)? {
            ThreadEvent::Bound(_) => {}
            ThreadEvent::Exited(result) => return exited(result),
        }
    }
    report(port);
    loop {
        if let ThreadEvent::Exited(result) = recv(&rx)? {
            return result;
        }
    }
}

/// may's stack size, in words: 64 KiB, like loom's default.
const MAY_STACK_WORDS: usize = 64 * 1024 / size_of::<usize>();

/// may with `threads` worker threads (normally one), one coroutine per
/// connection; the accept loop is a coroutine too.
fn may_server(threads: usize, report: Report) -> io::Result<()> {
    may::config()
        .set_workers(threads)
        .set_stack_size(MAY_STACK_WORDS);
    // The process is already pinned; let may's workers inherit that mask.
    may::config().set_worker_pin(false);
    let listener = may::net::TcpListener::bind("127.0.0.1:0")?;
    report(listener.local_addr()?.port());
    let acceptor = move || -> io::Result<()> {
        loop {
            let (mut stream, _peer) = listener.accept()?;
            stream.set_nodelay(true)?;
            let echo = move || -> io::Result<()> {
                let mut buf = [0u8; SERVER_BUF];
                loop {
                    let n = stream.read(&mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    stream.write_all(&buf[..n])?;
                }
            };
            // SAFETY: `may::coroutine::spawn` is unsafe because a coroutine
            // may migrate between worker threads, which breaks code that
            // caches thread-local addresses. The closure uses no
            // thread-locals of its own (only may's sockets), so migrating
            // (with more than one worker) is harmless. This is what `may::go!` expands to. Dropping the
            // handle detaches the coroutine.
            drop(unsafe { may::coroutine::spawn(echo) });
        }
    };
    // SAFETY: as above: no thread-locals of our own.
    let acceptor = unsafe { may::coroutine::spawn(acceptor) };
    acceptor
        .join()
        .map_err(|_| io::Error::other("the may accept coroutine panicked"))?
}
