//! [`read_dir`], [`ReadDir`] and [`DirEntry`]: a directory's entries.
//!
//! No backend has an asynchronous way to read a directory (io_uring has no
//! `getdents`), so the stream is opened and read on the blocking pool, in
//! batches: [`read_dir`] opens the directory *and* reads its first
//! [`BATCH`] entries in one pool job, and the iterator fetches each further
//! batch in one more. A directory of up to `BATCH` entries therefore costs
//! a single round trip, and iterating never blocks the loop.
//!
//! As in std, the stream stays open while the [`ReadDir`] or any of its
//! [`DirEntry`]s lives: on Linux an entry's metadata is asked of the open
//! directory (`statx` on its fd with the entry's name), not of its path
//! re-resolved from the root.

use std::collections::VecDeque;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;

use super::{FileType, Metadata, c_path, metadata, on_pool};

/// Most entries one pool job reads: enough for most directories in one
/// round trip, few enough that a huge one is handed out as it is read.
const BATCH: usize = 256;

/// Returns an iterator over the entries of the directory at `path`, as
/// std's `fs::read_dir`: in no particular order, without `.` and `..`.
///
/// Opening the directory and reading its first 256 entries is one job on
/// the blocking pool, on every backend (io_uring has no `getdents`); the
/// [`ReadDir`] reads each further batch of up to 256 in one more.
///
/// # Errors
/// `NotFound`, `NotADirectory`, `PermissionDenied`...; `InvalidInput` for
/// a path with a NUL byte; `ECANCELED` if the fiber is cancelled. Errors
/// reading the entries come from the iterator, as in std.
///
/// # Panics
/// Outside a fiber; so does iterating.
///
/// # Examples
///
/// ```
/// let dir = std::env::temp_dir().join(format!("loom-read-dir-doc-{}", std::process::id()));
/// let root = dir.clone();
/// loom::Runtime::builder().build()?.run(move || -> std::io::Result<()> {
///     loom::fs::create_dir(&root)?;
///     loom::fs::write(root.join("a.txt"), "a")?;
///     loom::fs::create_dir(root.join("sub"))?;
///     let mut names = Vec::new();
///     for entry in loom::fs::read_dir(&root)? {
///         let entry = entry?;
///         names.push((entry.file_name(), entry.file_type()?.is_dir()));
///     }
///     names.sort();
///     assert_eq!(names, [("a.txt".into(), false), ("sub".into(), true)]);
///     Ok(())
/// })?;
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[track_caller]
pub fn read_dir<P: AsRef<Path>>(path: P) -> io::Result<ReadDir> {
    let root = path.as_ref();
    let c_root = c_path(root)?;
    let root = root.to_path_buf();
    let (dir, batch) = on_pool("fs::read_dir", move || {
        let dir = Dir::open(&c_root, root)?;
        // SAFETY: the stream was opened just now and nothing else has it.
        let batch = unsafe { dir.read_batch() };
        Ok((dir, batch))
    })?;
    let mut read_dir = ReadDir {
        dir: Arc::new(dir),
        pending: VecDeque::new(),
        end: false,
    };
    read_dir.push_batch(batch);
    Ok(read_dir)
}

/// An open directory stream, shared by its [`ReadDir`] and its entries and
/// closed when the last of them is dropped.
struct Dir {
    stream: NonNull<libc::DIR>,
    /// The stream's fd, read once: entries ask it for their metadata while
    /// the stream itself may be in a pool thread's hands.
    #[cfg(target_os = "linux")]
    fd: std::os::fd::RawFd,
    root: PathBuf,
}

// SAFETY: the stream is read only by `read_batch`, whose contract gives
// one thread at a time (the `ReadDir`, through `&mut`), and closed only in
// `Drop`, when no one else can reach it; `fd` and `root` are never
// written after `open`.
unsafe impl Send for Dir {}
// SAFETY: as for `Send`: shared references use only `fd` and `root`.
unsafe impl Sync for Dir {}

/// One pool job's worth of entries.
struct Batch {
    entries: Vec<RawEntry>,
    /// The stream's error, which ends it (as std's iterator does).
    error: Option<io::Error>,
    /// The stream has no more to give (its end, or an error).
    end: bool,
}

/// An entry as `readdir` gave it, copied out of the stream's buffer.
struct RawEntry {
    name: CString,
    ino: u64,
    d_type: u8,
}

impl Dir {
    /// `opendir(3)`, as std uses: close-on-exec, and it refuses what is
    /// not a directory with `ENOTDIR`.
    fn open(path: &CStr, root: PathBuf) -> io::Result<Dir> {
        // SAFETY: `path` is a valid C string.
        let stream = unsafe { libc::opendir(path.as_ptr()) };
        let stream = NonNull::new(stream).ok_or_else(io::Error::last_os_error)?;
        Ok(Dir {
            stream,
            // SAFETY: `stream` is an open directory stream; `dirfd` only
            // reads it.
            #[cfg(target_os = "linux")]
            fd: unsafe { libc::dirfd(stream.as_ptr()) },
            root,
        })
    }

    /// Reads up to [`BATCH`] entries, skipping `.` and `..`.
    ///
    /// # Safety
    /// No other thread reads the stream meanwhile.
    unsafe fn read_batch(&self) -> Batch {
        let mut entries = Vec::new();
        while entries.len() < BATCH {
            // `readdir` reports both the end and an error as NULL; only
            // errno tells them apart, so it must start out clear.
            clear_errno();
            // SAFETY: the stream is open (it closes only in Drop) and this
            // thread alone reads it (the contract).
            let entry = unsafe { libc::readdir(self.stream.as_ptr()) };
            if entry.is_null() {
                let error = io::Error::last_os_error();
                return Batch {
                    entries,
                    error: (error.raw_os_error() != Some(0)).then_some(error),
                    end: true,
                };
            }
            // SAFETY: `entry` points at a record the stream just returned,
            // valid until its next `readdir`. Fields are read one by one,
            // never as a whole `dirent`: a record may be shorter than the
            // struct (its name is as long as it needs), as std also
            // assumes. `d_name` is NUL-terminated.
            let raw = unsafe {
                let name = CStr::from_ptr((&raw const (*entry).d_name).cast());
                if name == c"." || name == c".." {
                    continue;
                }
                RawEntry {
                    name: name.to_owned(),
                    ino: dirent_ino(entry),
                    d_type: (*entry).d_type,
                }
            };
            entries.push(raw);
        }
        Batch {
            entries,
            error: None,
            end: false,
        }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // Synchronous, as std's: closing a directory writes nothing back,
        // and `closedir` must also free the stream's buffer. Its error is
        // not actionable (std ignores it too).
        // SAFETY: the stream is open, and this is the last reference to it
        // (`Dir` lives in one `Arc`).
        unsafe { libc::closedir(self.stream.as_ptr()) };
    }
}

/// # Safety
/// `entry` is a record `readdir` just returned.
#[allow(clippy::unnecessary_cast)] // `ino_t` is u64 here, u32 on some targets
unsafe fn dirent_ino(entry: *const libc::dirent) -> u64 {
    #[cfg(not(any(
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "netbsd",
        target_os = "openbsd"
    )))]
    // SAFETY: reads one field of a valid record (the contract).
    let ino = unsafe { (*entry).d_ino };
    #[cfg(any(
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "netbsd",
        target_os = "openbsd"
    ))]
    // SAFETY: as above.
    let ino = unsafe { (*entry).d_fileno };
    ino as u64
}

/// Sets this thread's `errno` to 0.
fn clear_errno() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: `__errno_location` returns this thread's errno, always valid.
    unsafe {
        *libc::__errno_location() = 0;
    }
    #[cfg(any(
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "dragonfly"
    ))]
    // SAFETY: `__error` returns this thread's errno, always valid.
    unsafe {
        *libc::__error() = 0;
    }
    #[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
    // SAFETY: `__errno` returns this thread's errno, always valid.
    unsafe {
        *libc::__errno() = 0;
    }
}

/// The entries of a directory, as std's `fs::ReadDir`: an iterator of
/// `io::Result<`[`DirEntry`]`>`, returned by [`read_dir`].
///
/// When the entries read so far are used up, the next call reads another
/// batch on the blocking pool (suspending only the calling fiber). After an
/// error — the stream's own or the fiber's cancellation — the iterator
/// ends, so a loop that skips errors cannot spin.
///
/// # Panics
/// `next` panics outside a fiber when it has to read another batch.
pub struct ReadDir {
    dir: Arc<Dir>,
    pending: VecDeque<io::Result<DirEntry>>,
    end: bool,
}

impl ReadDir {
    fn push_batch(&mut self, batch: Batch) {
        self.pending.extend(batch.entries.into_iter().map(|raw| {
            Ok(DirEntry {
                dir: Arc::clone(&self.dir),
                name: raw.name,
                ino: raw.ino,
                d_type: raw.d_type,
            })
        }));
        self.pending.extend(batch.error.map(Err));
        self.end = batch.end;
    }
}

impl Iterator for ReadDir {
    type Item = io::Result<DirEntry>;

    fn next(&mut self) -> Option<io::Result<DirEntry>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if self.end {
                return None;
            }
            let dir = &*self.dir;
            // SAFETY: `&mut self`: this `ReadDir`, the stream's only
            // reader, waits for the job.
            let read = on_pool("ReadDir::next", || Ok(unsafe { dir.read_batch() }));
            match read {
                Ok(batch) => self.push_batch(batch),
                Err(e) => {
                    self.end = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReadDir").field(&self.dir.root).finish()
    }
}

/// An entry of a directory, as std's `fs::DirEntry`, yielded by
/// [`ReadDir`]. Its name, path, type (where the file system records it) and
/// inode number come with it; [`metadata`](DirEntry::metadata) asks the
/// file system, suspending only the calling fiber.
pub struct DirEntry {
    dir: Arc<Dir>,
    name: CString,
    ino: u64,
    d_type: u8,
}

impl DirEntry {
    /// The entry's full path: the path given to [`read_dir`] joined with
    /// the entry's name.
    pub fn path(&self) -> PathBuf {
        self.dir.root.join(self.name_os())
    }

    /// The entry's name, without any leading path.
    pub fn file_name(&self) -> OsString {
        self.name_os().to_os_string()
    }

    fn name_os(&self) -> &OsStr {
        OsStr::from_bytes(self.name.to_bytes())
    }

    /// The entry's metadata, not following a symbolic link (as std's:
    /// like [`symlink_metadata`](super::symlink_metadata) of
    /// [`path`](DirEntry::path)). On Linux it is a `statx` of the name in
    /// the still-open directory — an io_uring op, or a pool job on epoll;
    /// elsewhere `lstat` of the path on the blocking pool.
    ///
    /// # Errors
    /// `NotFound` if the entry was removed since it was read...;
    /// `ECANCELED` if the fiber is cancelled.
    ///
    /// # Panics
    /// Outside a fiber.
    #[track_caller]
    pub fn metadata(&self) -> io::Result<Metadata> {
        #[cfg(target_os = "linux")]
        {
            metadata::of_entry(self.dir.fd, &self.name)
        }
        #[cfg(not(target_os = "linux"))]
        {
            metadata::of_path(&c_path(&self.path())?, false)
        }
    }

    /// The entry's type, not following a symbolic link. Usually known from
    /// reading the directory, with no further call; on file systems that do
    /// not record it, it is [`metadata`](DirEntry::metadata)'s.
    ///
    /// # Errors
    /// As [`metadata`](DirEntry::metadata), when it is needed.
    ///
    /// # Panics
    /// Outside a fiber, when the metadata is needed.
    #[track_caller]
    pub fn file_type(&self) -> io::Result<FileType> {
        match FileType::from_dirent_type(self.d_type) {
            Some(file_type) => Ok(file_type),
            None => self.metadata().map(|m| m.file_type()),
        }
    }

    /// The entry's inode number, as the directory records it (std's Unix
    /// `DirEntryExt::ino`).
    pub fn ino(&self) -> u64 {
        self.ino
    }
}

impl fmt::Debug for DirEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DirEntry").field(&self.path()).finish()
    }
}
