//! Files, shaped like `std::fs`: [`File`], [`OpenOptions`], [`Metadata`]
//! and the [`read`], [`read_to_string`], [`write()`], [`metadata`] and
//! [`symlink_metadata`] shortcuts.
//!
//! Every call suspends only the calling fiber; the loop runs the others
//! meanwhile. Regular files are never "ready" in the epoll/kqueue sense —
//! a read may always block on the disk — so on the poll backends each call
//! is a round trip to the blocking pool (see [`crate::blocking`]). On
//! io_uring it is a kernel op: open, read, write, fsync and statx complete
//! asynchronously in the kernel, with no thread of loom's involved.
//!
//! Seeking (`lseek`) never blocks and is a plain system call on every
//! backend. [`File::set_len`] (`ftruncate`) goes through the blocking pool
//! everywhere.
//!
//! Cancellation: a cancelled fiber's file calls return the cancellation
//! error (`ECANCELED`, see [`crate::fiber::is_cancelled`]) without doing
//! anything. A call already under
//! way when the fiber is cancelled either completes (and reports its real
//! result, e.g. the bytes read) or is abandoned before it touched the file;
//! the file is never left with a half-applied operation that the caller was
//! not told about. std's `read_exact`, `read_to_end` and `write_all` retry
//! only `Interrupted` (a real `EINTR`), so a cancelled fiber leaves them at
//! once.
//!
//! Files are not tied to a loop: a [`File`] is `Send` and `Sync` and can be
//! moved to another runtime's fiber, but its methods must be called from a
//! fiber (they panic elsewhere).
//!
//! # Examples
//!
//! ```
//! let dir = std::env::temp_dir();
//! let path = dir.join(format!("loom-fs-doc-{}.txt", std::process::id()));
//! let file_path = path.clone();
//! loom::Runtime::builder().build()?.run(move || -> std::io::Result<()> {
//!     let path = &file_path;
//!     loom::fs::write(&path, "hello, file")?;
//!     assert_eq!(loom::fs::read_to_string(&path)?, "hello, file");
//!     let meta = loom::fs::metadata(&path)?;
//!     assert!(meta.is_file());
//!     assert_eq!(meta.len(), 11);
//!     Ok(())
//! })?;
//! std::fs::remove_file(&path)?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod file;
mod metadata;
mod open_options;

pub use file::File;
pub use metadata::{FileType, Metadata};
pub use open_options::OpenOptions;

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::rt::current::with_current;

/// Reads the whole file at `path` into a vector, sized from the file's
/// length up front.
///
/// # Errors
/// As [`File::open`] and [`File::read`](std::io::Read::read) report them:
/// `NotFound`, `PermissionDenied`, `ECANCELED` if the fiber is cancelled.
///
/// # Panics
/// Outside a fiber.
#[track_caller]
pub fn read<P: AsRef<Path>>(path: P) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let hint = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::new();
    file.read_to_end_hinted(&mut bytes, usize::try_from(hint).unwrap_or(0))?;
    Ok(bytes)
}

/// Reads the whole file at `path` into a string.
///
/// # Errors
/// As [`read`]; `InvalidData` if the contents are not UTF-8.
///
/// # Panics
/// Outside a fiber.
#[track_caller]
pub fn read_to_string<P: AsRef<Path>>(path: P) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// Writes `contents` to the file at `path`, creating it if needed and
/// truncating it otherwise.
///
/// # Errors
/// As [`File::create`] and [`write_all`](std::io::Write::write_all) report
/// them; `ECANCELED` if the fiber is cancelled (the file may then hold a
/// prefix of `contents`).
///
/// # Panics
/// Outside a fiber.
#[track_caller]
pub fn write<P: AsRef<Path>, C: AsRef<[u8]>>(path: P, contents: C) -> io::Result<()> {
    let file = File::create(path)?;
    io::Write::write_all(&mut &file, contents.as_ref())
}

/// The metadata of the file at `path`, following symbolic links.
///
/// # Errors
/// `NotFound`, `PermissionDenied`...; `ECANCELED` if the fiber is
/// cancelled.
///
/// # Panics
/// Outside a fiber.
#[track_caller]
pub fn metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    metadata::of_path(&c_path(path.as_ref())?, true)
}

/// The metadata of the file at `path` itself: for a symbolic link, the
/// link's, not its target's.
///
/// # Errors
/// As [`metadata`].
///
/// # Panics
/// Outside a fiber.
#[track_caller]
pub fn symlink_metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    metadata::of_path(&c_path(path.as_ref())?, false)
}

/// `path` as a C string; an interior NUL is `InvalidInput`, as in std.
fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "file name contained an unexpected NUL byte",
        )
    })
}

/// Runs `f` on the blocking pool, suspending only the calling fiber; a
/// panic in `f` resumes here. `f` may borrow from the caller's frame.
#[track_caller]
fn on_pool<T: Send>(what: &str, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    match with_current(what, |lp| crate::blocking::run(lp, f))? {
        Ok(result) => result,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}
