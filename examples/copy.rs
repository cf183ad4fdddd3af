//! Copies a file with `loom::fs`, in 64 KiB chunks: one fiber reading and
//! writing at the file position, or several fibers each copying chunks
//! with `read_at`/`write_at` in parallel. Prints the bytes copied, the rate
//! and the I/O backend (`LOOM_BACKEND=epoll` picks the blocking-pool path).
//!
//! ```text
//! cargo run --release --example copy -- [--fibers N] SRC DST
//! cargo run --release --example copy            # self-test, no setup
//! ```
//!
//! With no paths it writes a 64 MiB temp file, copies it with 1 and with 8
//! fibers, checks each copy byte for byte and removes both files. Both
//! files usually sit in the page cache, so this measures loom's per-call
//! overhead more than the disk.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use loom::fs::{File, OpenOptions};

const CHUNK: usize = 64 * 1024;
const SELF_TEST_BYTES: u64 = 64 << 20;
const SELF_TEST_FIBERS: usize = 8;

fn main() -> io::Result<()> {
    loom_examples::init_logging();
    let mut fibers = 1;
    let mut paths = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--fibers" {
            fibers = args
                .next()
                .and_then(|n| n.to_str()?.parse().ok())
                .filter(|&n: &usize| n > 0)
                .ok_or_else(|| usage("--fibers takes a positive number"))?;
        } else if arg == "-h" || arg == "--help" {
            println!("usage: copy [--fibers N] [SRC DST]");
            return Ok(());
        } else {
            paths.push(PathBuf::from(arg));
        }
    }
    let rt = loom::Runtime::builder().build()?;
    match paths.as_slice() {
        [] => rt.run(self_test),
        [src, dst] => {
            let (src, dst) = (src.clone(), dst.clone());
            rt.run(move || copy_and_report(&src, &dst, fibers).map(drop))
        }
        _ => Err(usage("expected SRC and DST, or no paths for the self-test")),
    }
}

fn usage(message: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{message}\nusage: copy [--fibers N] [SRC DST]"),
    )
}

/// Copies `src` to `dst` and prints what it did.
fn copy_and_report(src: &Path, dst: &Path, fibers: usize) -> io::Result<u64> {
    let start = Instant::now();
    let bytes = if fibers == 1 {
        copy_sequential(src, dst)?
    } else {
        copy_parallel(src, dst, fibers)?
    };
    let secs = start.elapsed().as_secs_f64();
    println!(
        "copied {bytes} bytes in {:.1} ms: {:.0} MB/s ({fibers} fiber{}, {} backend)",
        secs * 1e3,
        bytes as f64 / 1e6 / secs.max(1e-9),
        if fibers == 1 { "" } else { "s" },
        loom::rt::backend(),
    );
    Ok(bytes)
}

/// One fiber: read a chunk, write it, at the file positions.
fn copy_sequential(src: &Path, dst: &Path) -> io::Result<u64> {
    let mut from = File::open(src)?;
    let mut to = File::create(dst)?;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
    to.sync_data()?;
    Ok(total)
}

/// `fibers` fibers, each taking the next unclaimed chunk and copying it
/// with `read_at`/`write_at`; the destination is sized up front.
fn copy_parallel(src: &Path, dst: &Path, fibers: usize) -> io::Result<u64> {
    let from = Rc::new(File::open(src)?);
    let len = from.metadata()?.len();
    let to = Rc::new(
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(dst)?,
    );
    to.set_len(len)?;
    let next = Rc::new(Cell::new(0u64));
    let workers: Vec<_> = (0..fibers)
        .map(|_| {
            let (from, to, next) = (Rc::clone(&from), Rc::clone(&to), Rc::clone(&next));
            loom::spawn(move || -> io::Result<()> {
                let mut buf = vec![0u8; CHUNK];
                loop {
                    let offset = next.get();
                    if offset >= len {
                        return Ok(());
                    }
                    next.set(offset + CHUNK as u64);
                    let n = (len - offset).min(CHUNK as u64) as usize;
                    from.read_exact_at(&mut buf[..n], offset)?;
                    to.write_all_at(&buf[..n], offset)?;
                }
            })
        })
        .collect();
    for worker in workers {
        worker
            .join()
            .map_err(|_| io::Error::other("a copy fiber panicked"))??;
    }
    to.sync_data()?;
    Ok(len)
}

/// Removes its file when dropped, also on an early error return.
struct Temp(PathBuf);

impl Drop for Temp {
    fn drop(&mut self) {
        let path = self.0.clone();
        // Off the loop (unlinking may block on the file system), unless
        // unwinding, when a plain call is the safe choice.
        let removed = if std::thread::panicking() {
            std::fs::remove_file(path)
        } else {
            loom::unblock(move || std::fs::remove_file(path)).and_then(|r| r)
        };
        if let Err(e) = removed {
            eprintln!("cannot remove {}: {e}", self.0.display());
        }
    }
}

fn self_test() -> io::Result<()> {
    let dir = std::env::temp_dir();
    let pid = std::process::id();
    let src = Temp(dir.join(format!("loom-copy-{pid}-src")));
    let dst = Temp(dir.join(format!("loom-copy-{pid}-dst")));
    println!(
        "self-test: {} MiB through {}",
        SELF_TEST_BYTES >> 20,
        dir.display()
    );
    write_pattern(&src.0, SELF_TEST_BYTES)?;
    for fibers in [1, SELF_TEST_FIBERS] {
        let copied = copy_and_report(&src.0, &dst.0, fibers)?;
        if copied != SELF_TEST_BYTES {
            return Err(io::Error::other(format!("copied {copied} bytes")));
        }
        verify(&src.0, &dst.0)?;
    }
    println!("both copies verified; temp files removed");
    Ok(())
}

/// Writes `len` bytes of a xorshift pattern.
fn write_pattern(path: &Path, len: u64) -> io::Result<()> {
    let mut file = File::create(path)?;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut buf = vec![0u8; CHUNK];
    let mut left = len;
    while left > 0 {
        for word in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(CHUNK as u64) as usize;
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Compares two files chunk by chunk.
fn verify(a: &Path, b: &Path) -> io::Result<()> {
    let (a, b) = (File::open(a)?, File::open(b)?);
    let len = a.metadata()?.len();
    if b.metadata()?.len() != len {
        return Err(io::Error::other("copy has the wrong length"));
    }
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut offset = 0;
    while offset < len {
        let n = (len - offset).min(x.len() as u64) as usize;
        a.read_exact_at(&mut x[..n], offset)?;
        b.read_exact_at(&mut y[..n], offset)?;
        if x[..n] != y[..n] {
            return Err(io::Error::other(format!(
                "copy differs in the MiB at {offset}"
            )));
        }
        offset += n as u64;
    }
    Ok(())
}
