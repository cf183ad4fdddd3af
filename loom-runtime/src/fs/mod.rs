//! Files and the file-system tree, shaped like `std::fs`: [`File`],
//! [`OpenOptions`], [`Metadata`], [`read_dir`] with [`ReadDir`] and
//! [`DirEntry`], the path functions ([`remove_file`], [`create_dir_all`],
//! [`rename`], [`copy`], ...) and [`unix::symlink`].
//!
//! Every call suspends only the calling fiber; the loop runs the others
//! meanwhile. Each returns the error std's function of the same name
//! returns for the same input.
//!
//! # How each call runs
//!
//! Regular files and path lookups are never "ready" in the epoll/kqueue
//! sense — they may always wait on the disk — so on the **poll backends**
//! (epoll, kqueue) every call below is a round trip to the blocking pool
//! (see [`crate::blocking`]). On **io_uring** most are kernel ops, which
//! complete in the kernel with no thread of loom's involved:
//!
//! | call | io_uring op (Linux version) |
//! |---|---|
//! | [`File::open`], [`OpenOptions::open`], [`File::create`] | `OPENAT` (5.6) |
//! | reads and writes, positional or not | `READ`, `WRITE`, `READV`, `WRITEV` |
//! | [`File::sync_all`], [`File::sync_data`] | `FSYNC` |
//! | [`File::metadata`], [`metadata()`], [`symlink_metadata`], [`exists`], [`DirEntry::metadata`] | `STATX` (5.6) |
//! | [`File::set_len`] | `FTRUNCATE` (6.9) |
//! | [`remove_file`], [`remove_dir`] | `UNLINKAT` (5.11) |
//! | [`rename`] | `RENAMEAT` (5.11) |
//! | [`create_dir`], [`create_dir_all`] (one op per directory) | `MKDIRAT` (5.15) |
//! | [`hard_link`] | `LINKAT` (5.15) |
//! | [`unix::symlink`] | `SYMLINKAT` (5.15) |
//!
//! The ops of the first four rows are among those loom requires before it
//! picks io_uring at all. The others are optional: on a kernel older than
//! an op's version, that call runs on the blocking pool instead, making
//! the very same system call — the driver decides per op, from the ring's
//! opcode probe.
//!
//! These have no io_uring op and run on the **blocking pool on every
//! backend**: [`read_dir`] and [`ReadDir`]'s iteration (`opendir` and
//! `readdir`, one pool job per batch of up to 256 entries), [`copy`],
//! [`remove_dir_all`], [`read_link`], [`canonicalize`],
//! [`set_permissions`], [`File::set_permissions`] — the composite ones by
//! running std's own function in a single job. On macOS and the BSDs there
//! is no `statx`: metadata is `fstat`/`stat`/`lstat` on the pool.
//!
//! Seeking (`lseek`) never blocks and is a plain system call on every
//! backend. [`DirEntry::file_type`] usually needs no call at all (the
//! directory records it).
//!
//! # Cancellation
//!
//! A cancelled fiber's file calls return the cancellation error
//! (`ECANCELED`, see [`crate::fiber::is_cancelled`]) without doing
//! anything. A call already under
//! way when the fiber is cancelled either completes (and reports its real
//! result, e.g. the bytes read) or is abandoned before it touched the file;
//! the file is never left with a half-applied operation that the caller was
//! not told about. A pool job that has started (a [`copy`], a
//! [`remove_dir_all`]) runs to its end. std's `read_exact`, `read_to_end`
//! and `write_all` retry only `Interrupted` (a real `EINTR`), so a
//! cancelled fiber leaves them at once; a [`ReadDir`] ends after the error.
//!
//! Files are not tied to a loop: a [`File`] is `Send` and `Sync` and can be
//! moved to another runtime's fiber, but its methods must be called from a
//! fiber (they panic elsewhere). The same holds for [`ReadDir`] and
//! [`DirEntry`].
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
//!     let renamed = path.with_extension("bak");
//!     loom::fs::rename(&path, &renamed)?;
//!     assert!(!loom::fs::exists(&path)?);
//!     loom::fs::remove_file(&renamed)?;
//!     Ok(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod dir;
mod file;
mod metadata;
mod open_options;
mod paths;

pub use dir::{DirEntry, ReadDir, read_dir};
pub use file::File;
pub use metadata::{FileType, Metadata};
pub use open_options::OpenOptions;
pub use paths::{
    canonicalize, copy, create_dir, create_dir_all, exists, hard_link, read_link, remove_dir,
    remove_dir_all, remove_file, rename, set_permissions,
};

pub mod unix {
    //! Unix-only calls, as std's `std::os::unix::fs`: [`symlink`].
    //!
    //! loom has no `os` module of its own, so these live under `loom::fs`
    //! rather than at `loom::os::unix::fs`; the names and signatures are
    //! std's, so switching `std::os::unix::fs::symlink` to
    //! `loom::fs::unix::symlink` is the whole port.
    //!
    //! # Examples
    //!
    //! ```
    //! let link = std::env::temp_dir().join(format!("loom-symlink-doc-{}", std::process::id()));
    //! let at = link.clone();
    //! loom::Runtime::builder().build()?.run(move || -> std::io::Result<()> {
    //!     loom::fs::unix::symlink("/nowhere/at/all", &at)?;
    //!     assert_eq!(loom::fs::read_link(&at)?, std::path::Path::new("/nowhere/at/all"));
    //!     assert!(loom::fs::symlink_metadata(&at)?.is_symlink());
    //!     assert!(!loom::fs::exists(&at)?); // it dangles
    //!     loom::fs::remove_file(&at)
    //! })?;
    //! # Ok::<(), std::io::Error>(())
    //! ```

    pub use super::paths::symlink;
}

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
/// As [`metadata()`].
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
