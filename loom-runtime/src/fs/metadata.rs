//! [`Metadata`] and [`FileType`]: what `statx(2)` (Linux) or `fstat(2)`
//! (elsewhere) says about a file.

use std::ffi::CStr;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Information about a file, as std's `fs::Metadata` (which has no public
/// constructor, hence this type). Returned by [`File::metadata`],
/// [`metadata`](super::metadata()) and [`symlink_metadata`](super::symlink_metadata).
///
/// Besides std's portable accessors it has those of std's Unix
/// `MetadataExt` (`mode`, `uid`, `ino`, ...) as plain methods.
///
/// [`File::metadata`]: super::File::metadata
#[derive(Clone, Debug)]
pub struct Metadata {
    file_type: FileType,
    mode: u32,
    len: u64,
    uid: u32,
    gid: u32,
    nlink: u64,
    ino: u64,
    dev: u64,
    rdev: u64,
    blksize: u64,
    blocks: u64,
    accessed: Option<Timestamp>,
    modified: Option<Timestamp>,
    changed: Option<Timestamp>,
    created: Option<Timestamp>,
}

/// Seconds and nanoseconds since the Unix epoch, as the kernel gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Timestamp {
    secs: i64,
    nanos: u32,
}

impl Timestamp {
    fn to_system_time(self) -> io::Result<SystemTime> {
        let whole = Duration::from_secs(self.secs.unsigned_abs());
        let at = if self.secs >= 0 {
            UNIX_EPOCH.checked_add(whole)
        } else {
            UNIX_EPOCH.checked_sub(whole)
        };
        at.and_then(|t| t.checked_add(Duration::from_nanos(u64::from(self.nanos))))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "file timestamp out of SystemTime's range",
                )
            })
    }
}

fn time(ts: Option<Timestamp>, missing: &'static str) -> io::Result<SystemTime> {
    ts.ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, missing))?
        .to_system_time()
}

impl Metadata {
    /// The file's type.
    pub fn file_type(&self) -> FileType {
        self.file_type
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type.is_dir()
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.file_type.is_file()
    }

    /// Whether this is a symbolic link (only ever true for
    /// [`symlink_metadata`](super::symlink_metadata)).
    pub fn is_symlink(&self) -> bool {
        self.file_type.is_symlink()
    }

    /// The size in bytes.
    #[allow(clippy::len_without_is_empty)] // as std's
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The permission bits, as std's `Permissions` (`PermissionsExt::mode`
    /// gives them back).
    pub fn permissions(&self) -> std::fs::Permissions {
        std::fs::Permissions::from_mode(self.mode)
    }

    /// Last modification time.
    ///
    /// # Errors
    /// `Unsupported` if the file system does not record it.
    pub fn modified(&self) -> io::Result<SystemTime> {
        time(self.modified, "modification time is not available")
    }

    /// Last access time.
    ///
    /// # Errors
    /// `Unsupported` if the file system does not record it.
    pub fn accessed(&self) -> io::Result<SystemTime> {
        time(self.accessed, "access time is not available")
    }

    /// Creation (birth) time.
    ///
    /// # Errors
    /// `Unsupported` if the platform or file system does not record it.
    pub fn created(&self) -> io::Result<SystemTime> {
        time(
            self.created,
            "creation time is not available for the filesystem",
        )
    }

    /// Last status change time (`ctime`).
    ///
    /// # Errors
    /// `Unsupported` if the file system does not record it.
    pub fn changed(&self) -> io::Result<SystemTime> {
        time(self.changed, "status change time is not available")
    }

    /// The full `st_mode`: file type and permission bits.
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// Owner's user id.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// Owner's group id.
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// Number of hard links.
    pub fn nlink(&self) -> u64 {
        self.nlink
    }

    /// Inode number.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// Id of the device holding the file.
    pub fn dev(&self) -> u64 {
        self.dev
    }

    /// Device id, for a device special file.
    pub fn rdev(&self) -> u64 {
        self.rdev
    }

    /// Preferred I/O block size.
    pub fn blksize(&self) -> u64 {
        self.blksize
    }

    /// Number of 512-byte blocks allocated.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }
}

/// A file's type, as std's `fs::FileType` (with the Unix `FileTypeExt`
/// tests as plain methods).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileType {
    /// The `S_IFMT` bits of the mode.
    format: u32,
}

impl FileType {
    fn from_mode(mode: u32) -> FileType {
        FileType {
            format: mode & S_IFMT,
        }
    }

    /// The type a directory entry's `d_type` names; `None` for
    /// `DT_UNKNOWN` (file systems that do not record it) and anything
    /// unexpected, for which the caller must ask the file itself.
    pub(super) fn from_dirent_type(d_type: u8) -> Option<FileType> {
        let format = match d_type {
            libc::DT_REG => S_IFREG,
            libc::DT_DIR => S_IFDIR,
            libc::DT_LNK => S_IFLNK,
            libc::DT_FIFO => S_IFIFO,
            libc::DT_SOCK => S_IFSOCK,
            libc::DT_BLK => S_IFBLK,
            libc::DT_CHR => S_IFCHR,
            _ => return None,
        };
        Some(FileType { format })
    }

    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.format == S_IFDIR
    }

    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.format == S_IFREG
    }

    /// A symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.format == S_IFLNK
    }

    /// A named pipe.
    pub fn is_fifo(&self) -> bool {
        self.format == S_IFIFO
    }

    /// A Unix-domain socket.
    pub fn is_socket(&self) -> bool {
        self.format == S_IFSOCK
    }

    /// A block device.
    pub fn is_block_device(&self) -> bool {
        self.format == S_IFBLK
    }

    /// A character device.
    pub fn is_char_device(&self) -> bool {
        self.format == S_IFCHR
    }
}

impl fmt::Debug for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.format {
            S_IFREG => "file",
            S_IFDIR => "dir",
            S_IFLNK => "symlink",
            S_IFIFO => "fifo",
            S_IFSOCK => "socket",
            S_IFBLK => "block_device",
            S_IFCHR => "char_device",
            _ => "unknown",
        };
        f.debug_tuple("FileType").field(&name).finish()
    }
}

// The `S_IF*` constants as `u32` (libc's are `mode_t`, `u16` on macOS).
#[allow(clippy::unnecessary_cast)]
mod format {
    pub(super) const S_IFMT: u32 = libc::S_IFMT as u32;
    pub(super) const S_IFREG: u32 = libc::S_IFREG as u32;
    pub(super) const S_IFDIR: u32 = libc::S_IFDIR as u32;
    pub(super) const S_IFLNK: u32 = libc::S_IFLNK as u32;
    pub(super) const S_IFIFO: u32 = libc::S_IFIFO as u32;
    pub(super) const S_IFSOCK: u32 = libc::S_IFSOCK as u32;
    pub(super) const S_IFBLK: u32 = libc::S_IFBLK as u32;
    pub(super) const S_IFCHR: u32 = libc::S_IFCHR as u32;
}
use format::{S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK};

#[cfg(target_os = "linux")]
mod imp {
    //! Linux: `statx`, as an io_uring op or on the blocking pool — one op
    //! either way, by fd or by path, as std's own `statx` calls.

    use super::*;
    use crate::op;
    use crate::rt::current::run_op;

    fn zeroed() -> libc::statx {
        // SAFETY: `statx` is a plain C struct of integers, for which all
        // zeroes is a valid value.
        unsafe { std::mem::zeroed() }
    }

    pub(in crate::fs) fn of_fd(fd: RawFd, what: &str) -> io::Result<Metadata> {
        let mut buf = zeroed();
        // `buf` outlives the op: `run_op` returns only once the kernel (or
        // the pool thread) is done writing it.
        run_op(what, op::Statx::new(fd, &mut buf), None, None)?;
        Ok(from_statx(&buf))
    }

    /// `path` relative to `dirfd`; `flags` as `statx(2)`'s.
    fn of_path_at(what: &str, dirfd: RawFd, path: &CStr, flags: i32) -> io::Result<Metadata> {
        let mut buf = zeroed();
        run_op(
            what,
            op::Statx::at(dirfd, path, flags, &mut buf),
            None,
            None,
        )?;
        Ok(from_statx(&buf))
    }

    pub(in crate::fs) fn of_path(path: &CStr, follow: bool) -> io::Result<Metadata> {
        if follow {
            of_path_at("fs::metadata", libc::AT_FDCWD, path, 0)
        } else {
            let flags = libc::AT_SYMLINK_NOFOLLOW;
            of_path_at("fs::symlink_metadata", libc::AT_FDCWD, path, flags)
        }
    }

    /// The entry `name` of the directory open on `dirfd`, not following a
    /// symbolic link: std's `DirEntry::metadata` on Linux, which asks the
    /// directory rather than re-resolving the whole path.
    pub(in crate::fs) fn of_entry(dirfd: RawFd, name: &CStr) -> io::Result<Metadata> {
        let flags = libc::AT_SYMLINK_NOFOLLOW;
        of_path_at("DirEntry::metadata", dirfd, name, flags)
    }

    fn from_statx(st: &libc::statx) -> Metadata {
        let has = |bit: u32| st.stx_mask & bit != 0;
        let ts = |bit: u32, t: &libc::statx_timestamp| {
            has(bit).then_some(Timestamp {
                secs: t.tv_sec,
                nanos: t.tv_nsec,
            })
        };
        let mode = u32::from(st.stx_mode);
        Metadata {
            file_type: FileType::from_mode(mode),
            mode,
            len: st.stx_size,
            uid: st.stx_uid,
            gid: st.stx_gid,
            nlink: u64::from(st.stx_nlink),
            ino: st.stx_ino,
            dev: libc::makedev(st.stx_dev_major, st.stx_dev_minor),
            rdev: libc::makedev(st.stx_rdev_major, st.stx_rdev_minor),
            blksize: u64::from(st.stx_blksize),
            blocks: st.stx_blocks,
            accessed: ts(libc::STATX_ATIME, &st.stx_atime),
            modified: ts(libc::STATX_MTIME, &st.stx_mtime),
            changed: ts(libc::STATX_CTIME, &st.stx_ctime),
            created: ts(libc::STATX_BTIME, &st.stx_btime),
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    //! Elsewhere (macOS, BSD): `fstat`/`stat`/`lstat` on the blocking pool.

    use super::*;
    use crate::sys::syscall;

    fn zeroed() -> libc::stat {
        // SAFETY: `stat` is a plain C struct of integers, for which all
        // zeroes is a valid value.
        unsafe { std::mem::zeroed() }
    }

    pub(in crate::fs) fn of_fd(fd: RawFd, what: &str) -> io::Result<Metadata> {
        let mut buf = zeroed();
        super::super::on_pool(what, || {
            // SAFETY: `buf` is a valid stat buffer in this frame, which
            // outlives the pool job (`blocking::run` waits for it).
            syscall!(fstat(fd, &mut buf)).map(drop)
        })?;
        Ok(from_stat(&buf))
    }

    pub(in crate::fs) fn of_path(path: &CStr, follow: bool) -> io::Result<Metadata> {
        let what = if follow {
            "fs::metadata"
        } else {
            "fs::symlink_metadata"
        };
        let mut buf = zeroed();
        super::super::on_pool(what, || {
            // SAFETY: `path` is a valid C string and `buf` a valid stat
            // buffer, both in this frame, which outlives the pool job.
            if follow {
                syscall!(stat(path.as_ptr(), &mut buf)).map(drop)
            } else {
                syscall!(lstat(path.as_ptr(), &mut buf)).map(drop)
            }
        })?;
        Ok(from_stat(&buf))
    }

    #[allow(clippy::unnecessary_cast)] // field types differ between platforms
    fn from_stat(st: &libc::stat) -> Metadata {
        let ts = |secs: libc::time_t, nanos: libc::c_long| {
            Some(Timestamp {
                secs: secs as i64,
                nanos: nanos as u32,
            })
        };
        #[cfg(any(target_vendor = "apple", target_os = "freebsd"))]
        let created = ts(st.st_birthtime, st.st_birthtime_nsec);
        #[cfg(not(any(target_vendor = "apple", target_os = "freebsd")))]
        let created = None;
        let mode = st.st_mode as u32;
        Metadata {
            file_type: FileType::from_mode(mode),
            mode,
            len: st.st_size as u64,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            nlink: st.st_nlink as u64,
            ino: st.st_ino as u64,
            dev: st.st_dev as u64,
            rdev: st.st_rdev as u64,
            blksize: st.st_blksize as u64,
            blocks: st.st_blocks as u64,
            accessed: ts(st.st_atime, st.st_atime_nsec),
            modified: ts(st.st_mtime, st.st_mtime_nsec),
            changed: ts(st.st_ctime, st.st_ctime_nsec),
            created,
        }
    }
}

#[cfg(target_os = "linux")]
pub(super) use imp::of_entry;
pub(super) use imp::{of_fd, of_path};
