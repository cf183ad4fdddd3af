//! The calls that act on names in the tree rather than on an open file:
//! removing, creating, renaming and linking (kernel ops where io_uring has
//! them), and the ones std builds from several system calls (copying,
//! canonicalising, removing a tree), which run whole on the blocking pool.
//!
//! Each returns the error std's function of the same name returns for the
//! same input: the single-call ones make std's very system call (through
//! the op's io_uring opcode, or its `attempt` on the pool), and the
//! composite ones run std's own function on a pool thread.

use std::io;
use std::path::{Path, PathBuf};

use super::{c_path, metadata, on_pool};
use crate::op;
use crate::rt::current::run_op;

/// Removes the file at `path`, as std's `fs::remove_file` (`unlink(2)`): the
/// name goes; the file itself when its last name and open handle do. A symbolic
/// link is removed, not its target. On io_uring a kernel op
/// (`IORING_OP_UNLINKAT`, Linux 5.11); on the poll backends and older kernels a
/// blocking-pool job.
///
/// # Errors
/// `NotFound`; `IsADirectory` (Linux) or `PermissionDenied` for a
/// directory; `PermissionDenied` without write access to the parent...;
/// `ECANCELED` if the fiber is cancelled.
///
/// # Panics
/// Outside a fiber.
#[track_caller]
pub fn remove_file<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = c_path(path.as_ref())?;
    run_op("fs::remove_file", op::UnlinkAt::file(&path), None, None)
}

/// Removes the empty directory at `path`, as std's `fs::remove_dir`
/// (`rmdir(2)`). On io_uring a kernel op (`IORING_OP_UNLINKAT` with
/// `AT_REMOVEDIR`, Linux 5.11); on the poll backends and older kernels a
/// blocking-pool job.
///
/// # Errors
/// `NotFound`; `DirectoryNotEmpty`; `NotADirectory` for a file or a
/// symbolic link; `InvalidInput` for a path ending in `.`...; `ECANCELED`
/// if the fiber is cancelled.
///
/// # Panics
/// Outside a fiber.
#[track_caller]
pub fn remove_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = c_path(path.as_ref())?;
    run_op("fs::remove_dir", op::UnlinkAt::dir(&path), None, None)
}

/// Removes the directory at `path` and everything in it, as std's
/// `fs::remove_dir_all` — which it runs, whole, in one blocking-pool job
/// on every backend: std's walk is safe against a concurrent swap of a
/// directory for a symbolic link (it never follows one out of the tree),
/// and one job costs one round trip rather than one per entry.
///
/// A cancelled fiber's call fails at once; once the job has started it
/// runs to its end, and its result is reported.
///
/// # Errors
/// As std's: `NotFound`, `NotADirectory`, the first error removing an
/// entry...; `ECANCELED` if the fiber is cancelled before it started.
///
/// # Panics
/// Outside a fiber.
#[track_caller]
pub fn remove_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    on_pool("fs::remove_dir_all", || std::fs::remove_dir_all(path))
}

/// Creates a directory at `path`, as std's `fs::create_dir` (`mkdir(2)`, mode
/// `0o777` less the umask). On io_uring a kernel op (`IORING_OP_MKDIRAT`, Linux
/// 5.15); on the poll backends and older kernels a blocking-pool job.
///
/// # Errors
/// `AlreadyExists` if anything is at `path`; `NotFound` if its parent is
/// missing; `NotADirectory` if an ancestor is a file...; `ECANCELED` if
/// the fiber is cancelled.
///
/// # Panics
/// Outside a fiber.
#[track_caller]
pub fn create_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = c_path(path.as_ref())?;
    run_op("fs::create_dir", op::MkDirAt::new(&path, 0o777), None, None)
}

/// Creates the directory at `path` and any missing ancestors, as std's
/// `fs::create_dir_all`, with std's algorithm made of loom's own calls (so
/// each step is an io_uring op where the kernel has one): try the
/// directory, then each ancestor up the path until one exists or is
/// created; then create the missing ones downwards. A directory that
/// appears meanwhile (another process racing to create the same tree)
/// counts as success. The empty path and a root succeed with nothing to do.
///
/// # Errors
/// `NotADirectory` if an ancestor is a file; `AlreadyExists` if a file is
/// at `path`; `PermissionDenied`...; `ECANCELED` if the fiber is cancelled.
///
/// # Panics
/// Outside a fiber.
///
/// # Examples
///
/// ```
/// let root = std::env::temp_dir().join(format!("loom-create-dir-all-doc-{}", std::process::id()));
/// let tree = root.clone();
/// loom::Runtime::builder().build()?.run(move || -> std::io::Result<()> {
///     loom::fs::create_dir_all(tree.join("a/b/c"))?;
///     assert!(loom::fs::metadata(tree.join("a/b/c"))?.is_dir());
///     loom::fs::create_dir_all(tree.join("a/b"))?; // already there: fine
///     loom::fs::remove_dir_all(&tree)?;
///     assert!(!loom::fs::exists(&tree)?);
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn create_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    // Neither the empty path (the parent of a one-component relative
    // path) nor a root is ever created.
    let nothing_to_do = |p: &Path| p.as_os_str().is_empty() || p.parent().is_none();
    let path = path.as_ref();
    let mut missing: Vec<&Path> = Vec::new();
    for ancestor in path.ancestors() {
        if nothing_to_do(ancestor) {
            break;
        }
        match create_dir(ancestor) {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(ancestor),
            // Only `AlreadyExists` is worth asking about: a file there is
            // an error, and any other error stands as it is.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && is_dir(ancestor) => break,
            Err(e) => return Err(e),
        }
    }
    for &dir in missing.iter().rev() {
        match create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && is_dir(dir) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether a directory is at `path` (following symbolic links), as std's
/// `Path::is_dir`: any error means no.
#[track_caller]
fn is_dir(path: &Path) -> bool {
    super::metadata(path).is_ok_and(|m| m.is_dir())
}

/// Renames `from` to `to`, as std's `fs::rename` (`rename(2)`): atomic,
/// replacing a file (or an empty directory, for a directory) at `to`; both must
/// be on one file system. On io_uring a kernel op (`IORING_OP_RENAMEAT`, Linux
/// 5.11); on the poll backends and older kernels a blocking-pool job.
///
/// # Errors
/// `NotFound` if `from` or `to`'s parent is missing; `CrossesDevices`
/// across file systems; `IsADirectory`, `NotADirectory`,
/// `DirectoryNotEmpty` when the two do not fit; `InvalidInput` for moving a
/// directory into itself...; `ECANCELED` if the fiber is cancelled.
///
/// # Panics
/// Outside a fiber.
#[track_caller]
pub fn rename<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<()> {
    let from = c_path(from.as_ref())?;
    let to = c_path(to.as_ref())?;
    run_op("fs::rename", op::RenameAt::new(&from, &to), None, None)
}

/// Copies the contents and permission bits of the file `from` to `to`,
/// creating or truncating it, and returns the bytes copied — std's
/// `fs::copy`, run in one blocking-pool job on every backend (it is
/// several calls, and on Linux uses `copy_file_range`, which io_uring does
/// not offer).
///
/// A cancelled fiber's call fails at once; once the job has started it
/// runs to its end, and its result is reported.
///
/// # Errors
/// As std's: `NotFound`; `InvalidInput` if `from` is not a regular file
/// (nor a link to one)...; `ECANCELED` if the fiber is cancelled before it
/// started.
///
/// # Panics
/// Outside a fiber.
#[track_caller]
pub fn copy<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<u64> {
    let (from, to) = (from.as_ref(), to.as_ref());
    on_pool("fs::copy", || std::fs::copy(from, to))
}

/// Makes `link` a new name for the file `original` names, as std's
/// `fs::hard_link` (`linkat(2)` without flags, so a symbolic link `original` is
/// linked itself, not its target). On io_uring a kernel op (`IORING_OP_LINKAT`,
/// Linux 5.15); on the poll backends and older kernels a blocking-pool job.
///
/// # Errors
/// `NotFound`; `AlreadyExists` if `link` exists; `PermissionDenied` for a
/// directory `original`; `CrossesDevices` across file systems...;
/// `ECANCELED` if the fiber is cancelled.
///
/// # Panics
/// Outside a fiber.
#[track_caller]
pub fn hard_link<P: AsRef<Path>, Q: AsRef<Path>>(original: P, link: Q) -> io::Result<()> {
    let original = c_path(original.as_ref())?;
    let link = c_path(link.as_ref())?;
    run_op(
        "fs::hard_link",
        op::LinkAt::new(&original, &link),
        None,
        None,
    )
}

/// The target of the symbolic link at `path`, as written in the link, as
/// std's `fs::read_link` (`readlink(2)`, on the blocking pool on every
/// backend: io_uring has no readlink).
///
/// # Errors
/// `NotFound`; `InvalidInput` if `path` is not a symbolic link...;
/// `ECANCELED` if the fiber is cancelled.
///
/// # Panics
/// Outside a fiber.
#[track_caller]
pub fn read_link<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    let path = path.as_ref();
    on_pool("fs::read_link", || std::fs::read_link(path))
}

/// The absolute path `path` names, with every symbolic link, `.` and `..`
/// resolved, as std's `fs::canonicalize` (`realpath(3)`, on the blocking
/// pool on every backend).
///
/// # Errors
/// `NotFound` if any part is missing (or a link dangles);
/// `FilesystemLoop` for a symbolic-link loop...; `ECANCELED` if the fiber
/// is cancelled.
///
/// # Panics
/// Outside a fiber.
#[track_caller]
pub fn canonicalize<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    let path = path.as_ref();
    on_pool("fs::canonicalize", || std::fs::canonicalize(path))
}

/// Changes the permission bits of the file at `path`, following symbolic
/// links, as std's `fs::set_permissions` (`chmod(2)`, on the blocking pool
/// on every backend). [`Metadata::permissions`](super::Metadata::permissions)
/// gives std's `Permissions` to start from.
///
/// # Errors
/// `NotFound`; `PermissionDenied` if not the owner...; `ECANCELED` if the
/// fiber is cancelled.
///
/// # Panics
/// Outside a fiber.
#[track_caller]
pub fn set_permissions<P: AsRef<Path>>(path: P, perm: std::fs::Permissions) -> io::Result<()> {
    let path = path.as_ref();
    on_pool("fs::set_permissions", || {
        std::fs::set_permissions(path, perm)
    })
}

/// Whether anything is at `path`, following symbolic links, as std's
/// `fs::exists`: `Ok(false)` only when the answer is surely no (`NotFound`,
/// which includes a dangling link); any other error — a permission problem,
/// a file where a directory should be, a link loop — is returned, since
/// the answer is then unknown. One [`metadata`](super::metadata()) call:
/// `statx`, an io_uring op, or a pool job on the poll backends.
///
/// # Errors
/// `PermissionDenied`, `NotADirectory`, `FilesystemLoop`...; `ECANCELED`
/// if the fiber is cancelled.
///
/// # Panics
/// Outside a fiber.
#[track_caller]
pub fn exists<P: AsRef<Path>>(path: P) -> io::Result<bool> {
    match metadata::of_path(&c_path(path.as_ref())?, true) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates a symbolic link at `link` whose contents are `original`, as std's
/// `std::os::unix::fs::symlink` (`symlink(2)`): `original` is not resolved and
/// need not exist; a relative one is taken relative to the link's directory
/// when the link is followed. On io_uring a kernel op (`IORING_OP_SYMLINKAT`,
/// Linux 5.15); on the poll backends and older kernels a blocking-pool job.
///
/// Re-exported as `loom::fs::unix::symlink`.
///
/// # Errors
/// `AlreadyExists` if anything is at `link`; `NotFound` if its parent is
/// missing...; `ECANCELED` if the fiber is cancelled.
///
/// # Panics
/// Outside a fiber.
#[track_caller]
pub fn symlink<P: AsRef<Path>, Q: AsRef<Path>>(original: P, link: Q) -> io::Result<()> {
    let original = c_path(original.as_ref())?;
    let link = c_path(link.as_ref())?;
    run_op(
        "fs::symlink",
        op::SymlinkAt::new(&original, &link),
        None,
        None,
    )
}
