//! What loom tells about a running program: a few hundred fibers doing
//! typical things on two loops — echoing over loopback, sleeping, waiting
//! on a channel — the metrics table printed from a fiber, and one fiber
//! that blocks its loop in `std::thread::sleep`, which the stall monitor
//! names.
//!
//! ```sh
//! cargo run --release --example observe
//! ```
//!
//! The README's "Observing a running program" shows its output.

use std::io::{Read, Write};
use std::time::Duration;

use loom::net::{TcpListener, TcpStream};

fn main() -> std::io::Result<()> {
    loom_examples::init_logging();
    let rt = loom::Runtime::builder().threads(2).fibers(512).build()?;
    rt.run(|| {
        // Loop 1: 200 sleepers and a receiver that waits for ever.
        let (tx, rx) = loom::sync::mpsc::channel::<u32>(1);
        let background = loom::rt::spawn_on(1, move || {
            for _ in 0..200 {
                loom::spawn(|| loom::time::sleep(Duration::from_secs(3)));
            }
            rx.recv()
        });
        // Loop 0: 100 echo connections, each with a client fiber sending.
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = loom::spawn(move || -> std::io::Result<()> {
            loop {
                let (mut conn, _) = listener.accept()?;
                loom::spawn(move || {
                    let mut buf = [0u8; 64];
                    while let Ok(n @ 1..) = conn.read(&mut buf) {
                        conn.write_all(&buf[..n])?;
                    }
                    Ok::<(), std::io::Error>(())
                });
            }
        });
        let clients: Vec<_> = (0..100)
            .map(|_| {
                loom::spawn(move || -> std::io::Result<()> {
                    let mut conn = TcpStream::connect(addr)?;
                    let mut buf = [0u8; 64];
                    for _ in 0..1000 {
                        conn.write_all(&buf)?;
                        conn.read_exact(&mut buf)?;
                    }
                    Ok(())
                })
            })
            .collect();
        loom::time::sleep(Duration::from_millis(20))?;
        println!("{}\n", loom::rt::metrics());

        // A fiber that blocks its loop: every client above waits for it.
        loom::fiber::Builder::new()
            .name("report")
            .spawn(|| std::thread::sleep(Duration::from_millis(300)))?
            .join()
            .expect("report does not panic");
        for client in clients {
            client.join().expect("client does not panic")?;
        }
        server.cancel();
        tx.send(0)?;
        background.join().expect("loop 1 does not panic")?;
        loom::time::sleep(Duration::from_millis(50))?; // the monitor's "yielded" line
        println!("\n{}", loom::rt::metrics());
        Ok(())
    })
}
