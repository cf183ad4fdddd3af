//! A Unix-socket echo server and a few client fibers, in one process.
//!
//! `cargo run --example unix_echo [-- SOCKET_PATH]` (default: a fresh path
//! in the temp directory, removed at the end).

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::rc::Rc;

use loom::net::{UnixListener, UnixStream};

const CLIENTS: usize = 4;
const MESSAGES: usize = 100;

fn main() -> io::Result<()> {
    loom_examples::init_logging();
    let path: PathBuf = std::env::args_os().nth(1).map_or_else(
        || std::env::temp_dir().join(format!("loom-unix-echo-{}.sock", std::process::id())),
        PathBuf::from,
    );
    let _ = std::fs::remove_file(&path); // a stale socket file from an earlier run
    let path = Rc::new(path);
    let echoed = loom::Runtime::builder().build()?.run({
        let path = Rc::clone(&path);
        move || -> io::Result<usize> {
            let listener = UnixListener::bind(&*path)?;
            loom::spawn(move || {
                // incoming() ends when main returns and cancels this fiber.
                for mut stream in listener.incoming().flatten() {
                    loom::spawn(move || {
                        let mut buf = [0u8; 4096];
                        while let Ok(n @ 1..) = stream.read(&mut buf) {
                            if stream.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    });
                }
            });
            let clients: Vec<_> = (0..CLIENTS)
                .map(|c| {
                    let path = Rc::clone(&path);
                    loom::spawn(move || -> io::Result<usize> {
                        let mut stream = UnixStream::connect(&*path)?;
                        let mut total = 0;
                        for m in 0..MESSAGES {
                            let message = format!("client {c} message {m}\n");
                            let mut echo = vec![0u8; message.len()];
                            stream.write_all(message.as_bytes())?;
                            stream.read_exact(&mut echo)?;
                            assert_eq!(echo, message.as_bytes());
                            total += echo.len();
                        }
                        Ok(total)
                    })
                })
                .collect();
            clients.into_iter().map(|c| c.join().unwrap()).sum()
        }
    });
    std::fs::remove_file(&*path)?;
    println!(
        "unix_echo: {CLIENTS} clients echoed {} bytes over {}",
        echoed?,
        path.display()
    );
    Ok(())
}
