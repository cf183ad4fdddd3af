//! The echo servers under test, one function per [`Impl`].
//!
//! Every server binds `127.0.0.1:0`, hands the bound port to `report`, then
//! accepts in a loop and starts one fiber / task / coroutine per
//! connection, which sets `TCP_NODELAY`, reads into a 16 KiB buffer
//! ([`SERVER_BUF`]) and writes every byte it read back (`write_all`) until
//! the peer closes. A server runs until its process is killed.
//!
//! The stackful implementations (loom, may) keep the buffer on the fiber's
//! stack and get 64 KiB stacks (loom's default; may's is raised to match).

use std::io::{self, Read, Write};

use super::{Impl, SERVER_BUF};

/// Called once with the listening port.
pub type Report = fn(u16);

/// Runs the echo server `imp` on the calling thread, forever.
///
/// # Errors
///
/// Failing to start the runtime or to bind; an accept error. A failing
/// connection only ends that connection.
pub fn serve(imp: Impl, report: Report) -> io::Result<()> {
    match imp {
        Impl::LoomIoUring => loom_server(loom::rt::Backend::IoUring, report),
        Impl::LoomEpoll => loom_server(loom::rt::Backend::Epoll, report),
        Impl::Tokio => tokio_server(report),
        Impl::Monoio => monoio_server(report),
        Impl::May => may_server(report),
    }
}

/// loom on `backend`, one fiber per connection.
fn loom_server(backend: loom::rt::Backend, report: Report) -> io::Result<()> {
    let rt = loom::Runtime::builder().backend(backend).build()?;
    rt.run(move || -> io::Result<()> {
        let listener = loom::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        report(port);
        loop {
            let (mut stream, _peer) = listener.accept()?;
            stream.set_nodelay(true)?;
            loom::spawn(move || -> io::Result<()> {
                let mut buf = [0u8; SERVER_BUF];
                loop {
                    let n = stream.read(&mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    stream.write_all(&buf[..n])?;
                }
            });
        }
    })
}

/// tokio, `current_thread` runtime, one task per connection.
fn tokio_server(report: Report) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
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

/// may's stack size, in words: 64 KiB, like loom's default.
const MAY_STACK_WORDS: usize = 64 * 1024 / size_of::<usize>();

/// may with one worker thread, one coroutine per connection; the accept
/// loop is a coroutine too.
fn may_server(report: Report) -> io::Result<()> {
    may::config().set_workers(1).set_stack_size(MAY_STACK_WORDS);
    // The process is already pinned; let may's worker inherit that mask.
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
            // caches thread-local addresses. There is a single worker, and
            // the closure uses no thread-locals of its own (only may's
            // sockets). This is what `may::go!` expands to. Dropping the
            // handle detaches the coroutine.
            drop(unsafe { may::coroutine::spawn(echo) });
        }
    };
    // SAFETY: as above: one worker, no thread-locals of our own.
    let acceptor = unsafe { may::coroutine::spawn(acceptor) };
    acceptor
        .join()
        .map_err(|_| io::Error::other("the may accept coroutine panicked"))?
}
