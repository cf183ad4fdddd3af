//! A TCP echo server on one loop: `cargo run --release --example echo
//! [ADDR]` (default `127.0.0.1:7000`). The backend is `Auto`, so
//! `LOOM_BACKEND=epoll` picks epoll. Each connection is a fiber that echoes
//! every byte back; an idle server sleeps in the kernel. SIGTERM or SIGINT
//! ends it: the main fiber returns, which cancels every connection fiber.
//!
//! The connection handlers carry `#[loom::profile]`: built with
//! `--features tracy`, each call shows as a zone in Tracy (see the README's
//! "Profiling with Tracy").
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use loom::net::{TcpListener, TcpStream};

/// The per-connection work, one zone per call when profiling.
#[loom::profile]
mod handlers {
    use std::io::{self, Read, Write};

    use loom::net::TcpStream;

    /// Reads what is there and writes it back; `Ok(false)` at end of
    /// stream.
    pub fn echo_once(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<bool> {
        let n = stream.read(buf)?;
        if n == 0 {
            return Ok(false);
        }
        stream.write_all(&buf[..n])?;
        Ok(true)
    }
}

/// One fiber per connection, with a smaller stack than the default: it
/// holds a 16 KiB buffer and little else.
#[loom::fiber(name = "conn", stack_size = "32KiB")]
fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = [0u8; 16 * 1024];
    while handlers::echo_once(&mut stream, &mut buf)? {}
    Ok(())
}

#[loom::fiber(name = "accept")]
fn accept_loop(listener: TcpListener) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                // Detached: the handle is dropped, the fiber runs on.
                serve(stream);
            }
            Err(e) if loom::fiber::is_cancelled(&e) => return,
            // Out of fds and the like: accept backs off by itself.
            Err(e) => eprintln!("echo: accept: {e}"),
        }
    }
}

/// Installs the logger, then runs [`fiber_main::main`]. `#[loom::main]`
/// builds its runtime before its body runs, and building it is when an
/// io_uring the host refuses is logged (with the epoll used instead), so
/// the logger cannot wait for the body: it goes here, first.
fn main() -> std::io::Result<()> {
    loom_examples::init_logging();
    fiber_main::main()
}

/// The server, as the main fiber. In a module of its own because
/// `#[loom::main]` goes on a function named `main`, and the crate's `main`
/// is the one above.
mod fiber_main {
    use loom::net::TcpListener;
    use loom::signal::{SIGINT, SIGTERM, Signals};

    use super::accept_loop;

    #[loom::main]
    pub fn main() -> std::io::Result<()> {
        let addr = std::env::args()
            .nth(1)
            .unwrap_or_else(|| "127.0.0.1:7000".to_owned());
        // Before anything else, so a signal from here on is this fiber's.
        let signals = Signals::new(&[SIGTERM, SIGINT])?;
        let listener = TcpListener::bind(addr.as_str())?;
        println!(
            "echo: listening on {} ({} backend); SIGTERM or Ctrl-C stops",
            listener.local_addr()?,
            loom::rt::backend()
        );
        accept_loop(listener);
        // Parks the main fiber until a signal arrives.
        signals.recv()?;
        println!("echo: signal received, shutting down");
        Ok(())
    }
}
