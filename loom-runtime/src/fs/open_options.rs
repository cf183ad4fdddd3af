//! [`OpenOptions`]: which file to open, and how.

use std::io;
use std::path::Path;

use super::{File, c_path};
use crate::op;
use crate::rt::current::run_op;

/// Options for opening a file, as std's `OpenOptions` (with its Unix
/// extensions [`mode`](OpenOptions::mode) and
/// [`custom_flags`](OpenOptions::custom_flags) as plain methods).
///
/// Every option starts out `false`; the mode of created files is `0o666`
/// (less the process umask).
///
/// # Examples
///
/// ```
/// use std::io::Write;
///
/// let path = std::env::temp_dir().join(format!("loom-opts-doc-{}.log", std::process::id()));
/// let file_path = path.clone();
/// loom::Runtime::builder().build()?.run(move || -> std::io::Result<()> {
///     let path = &file_path;
///     let mut log = loom::fs::OpenOptions::new()
///         .append(true)
///         .create(true)
///         .mode(0o600)
///         .open(&path)?;
///     log.write_all(b"one line\n")?;
///     Ok(())
/// })?;
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    mode: u32,
    custom_flags: i32,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// Options with everything off and mode `0o666`.
    pub fn new() -> OpenOptions {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            mode: 0o666,
            custom_flags: 0,
        }
    }

    /// Opens for reading.
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.read = read;
        self
    }

    /// Opens for writing.
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.write = write;
        self
    }

    /// Opens for appending (`O_APPEND`): every write goes to the end of
    /// the file, whatever the position. Implies writing.
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.append = append;
        self
    }

    /// Truncates an existing file to length 0 (`O_TRUNC`). Needs write.
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.truncate = truncate;
        self
    }

    /// Creates the file if it does not exist (`O_CREAT`). Needs write or
    /// append.
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.create = create;
        self
    }

    /// Creates the file, failing with `AlreadyExists` if it exists
    /// (`O_CREAT | O_EXCL`, atomic). Overrides `create` and `truncate`.
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.create_new = create_new;
        self
    }

    /// The permission bits of a created file (before the umask); std's
    /// `OpenOptionsExt::mode`.
    pub fn mode(&mut self, mode: u32) -> &mut OpenOptions {
        self.mode = mode;
        self
    }

    /// Extra `open(2)` flags, e.g. `libc::O_NOFOLLOW`; std's
    /// `OpenOptionsExt::custom_flags`. The access mode bits are ignored,
    /// and `O_CLOEXEC` is always set.
    pub fn custom_flags(&mut self, flags: i32) -> &mut OpenOptions {
        self.custom_flags = flags;
        self
    }

    /// Opens `path` with these options.
    ///
    /// # Errors
    /// `NotFound`, `AlreadyExists` (for `create_new`), `PermissionDenied`,
    /// as the kernel reports them; `InvalidInput` for an inconsistent set
    /// of options (as std: e.g. `create` without `write`) or a path with a
    /// NUL byte; `ECANCELED` if the fiber is cancelled.
    ///
    /// # Panics
    /// Outside a fiber.
    #[track_caller]
    pub fn open<P: AsRef<Path>>(&self, path: P) -> io::Result<File> {
        let flags =
            self.access_mode()? | self.creation_mode()? | (self.custom_flags & !libc::O_ACCMODE);
        let path = c_path(path.as_ref())?;
        let mode = libc::mode_t::try_from(self.mode).map_err(|_| invalid("mode out of range"))?;
        let open = op::OpenAt::new(&path, flags, mode);
        run_op("OpenOptions::open", open, None, None).map(File::from_owned)
    }

    fn access_mode(&self) -> io::Result<i32> {
        match (self.read, self.write, self.append) {
            (true, false, false) => Ok(libc::O_RDONLY),
            (false, true, false) => Ok(libc::O_WRONLY),
            (true, true, false) => Ok(libc::O_RDWR),
            (false, _, true) => Ok(libc::O_WRONLY | libc::O_APPEND),
            (true, _, true) => Ok(libc::O_RDWR | libc::O_APPEND),
            (false, false, false) => Err(invalid(
                "must specify at least one of read, write, or append access",
            )),
        }
    }

    fn creation_mode(&self) -> io::Result<i32> {
        match (self.write, self.append) {
            (true, false) => {}
            (false, false) => {
                if self.truncate || self.create || self.create_new {
                    return Err(invalid(
                        "creating or truncating a file requires write or append access",
                    ));
                }
            }
            (_, true) => {
                if self.truncate && !self.create_new {
                    return Err(invalid("cannot truncate a file opened for appending"));
                }
            }
        }
        Ok(match (self.create, self.truncate, self.create_new) {
            (false, false, false) => 0,
            (true, false, false) => libc::O_CREAT,
            (false, true, false) => libc::O_TRUNC,
            (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
            (_, _, true) => libc::O_CREAT | libc::O_EXCL,
        })
    }
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
