//! Files on every backend: round trips, positional I/O, open options,
//! metadata, concurrency and cancellation; and the path functions
//! (`remove_file`, `read_dir`, `rename`, ...), each checked against std's
//! function of the same name on the same prepared trees: equal results on
//! success, equal `ErrorKind` and OS error on failure, equal trees after.

use std::cell::Cell;
use std::fmt::Debug;
use std::io::{self, IoSlice, IoSliceMut, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirEntryExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use loom::fs::{self, File, OpenOptions};
use loom_tests::{checksum, on_each_backend, pattern, say};

/// A unique path in the temp directory (pid, backend, counter), removed
/// when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(tag: &str) -> TempPath {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "loom-fs-test-{}-{}-{tag}-{}",
            std::process::id(),
            loom::rt::backend(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        TempPath(path)
    }
}

impl std::ops::Deref for TempPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempPath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn write_then_read_back_in_odd_chunks() {
    on_each_backend(|| {
        let path = TempPath::new("roundtrip");
        let data = pattern(1, 3 << 20);
        let mut file = File::create(&path).unwrap();
        for chunk in data.chunks(7919) {
            file.write_all(chunk).unwrap();
        }
        assert_eq!(file.stream_position().unwrap(), data.len() as u64);
        file.sync_data().unwrap();
        drop(file);

        let mut file = File::open(&path).unwrap();
        let mut back = Vec::with_capacity(data.len());
        let mut buf = vec![0u8; 4099];
        loop {
            let n = file.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            back.extend_from_slice(&buf[..n]);
        }
        assert_eq!(back.len(), data.len());
        assert_eq!(checksum(&back), checksum(&data));

        // read_to_end from the middle, through &File.
        file.seek(SeekFrom::Start(1_000_003)).unwrap();
        let mut rest = Vec::new();
        (&file).read_to_end(&mut rest).unwrap();
        assert_eq!(checksum(&rest), checksum(&data[1_000_003..]));
    });
}

#[test]
fn vectored_io() {
    on_each_backend(|| {
        let path = TempPath::new("vectored");
        let mut file = File::create_new(&path).unwrap();
        let n = file
            .write_vectored(&[
                IoSlice::new(b"abc"),
                IoSlice::new(b""),
                IoSlice::new(b"defg"),
            ])
            .unwrap();
        assert_eq!(n, 7);
        file.rewind().unwrap();
        let (mut a, mut b) = ([0u8; 2], [0u8; 10]);
        let n = file
            .read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])
            .unwrap();
        assert_eq!(n, 7);
        assert_eq!(&a, b"ab");
        assert_eq!(&b[..5], b"cdefg");
    });
}

#[test]
fn positional_io_leaves_the_cursor_alone() {
    on_each_backend(|| {
        let path = TempPath::new("positional");
        let mut file = File::create_new(&path).unwrap();
        file.write_all(b"head").unwrap();
        let offsets = [100u64, 4096, 10_007, 1 << 20];
        for (i, &offset) in offsets.iter().enumerate() {
            file.write_all_at(&pattern(i as u64, 999), offset).unwrap();
            assert_eq!(file.stream_position().unwrap(), 4);
        }
        for (i, &offset) in offsets.iter().enumerate() {
            let mut buf = vec![0u8; 999];
            file.read_exact_at(&mut buf, offset).unwrap();
            assert_eq!(buf, pattern(i as u64, 999), "offset {offset}");
        }
        assert_eq!(file.stream_position().unwrap(), 4);
        let end = (1 << 20) + 999;
        assert_eq!(file.metadata().unwrap().len(), end);
        // The hole between writes reads as zeroes.
        let mut hole = [1u8; 16];
        file.read_exact_at(&mut hole, 20_000).unwrap();
        assert_eq!(hole, [0; 16]);
        // At and past the end.
        let mut buf = [0u8; 8];
        assert_eq!(file.read_at(&mut buf, end).unwrap(), 0);
        assert_eq!(file.read_at(&mut buf, end + 100).unwrap(), 0);
        assert_eq!(file.read_at(&mut buf, end - 3).unwrap(), 3);
        let err = file.read_exact_at(&mut buf, end - 3).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let err = file.read_at(&mut buf, u64::MAX).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = file.write_at(b"x", 1 << 63).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // The cursor still works as before, and seeking is consistent.
        file.write_all(b"-next").unwrap();
        assert_eq!(file.seek(SeekFrom::End(0)).unwrap(), end);
        assert_eq!(file.seek(SeekFrom::Current(-3)).unwrap(), end - 3);
        let mut start = [0u8; 9];
        file.read_exact_at(&mut start, 0).unwrap();
        assert_eq!(&start, b"head-next");
        assert!(file.seek(SeekFrom::Current(-(end as i64) - 1)).is_err());
    });
}

#[test]
fn append_mode_always_writes_at_the_end() {
    on_each_backend(|| {
        let path = TempPath::new("append");
        fs::write(&path, "one").unwrap();
        let mut log = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .unwrap();
        log.write_all(b"two").unwrap();
        log.seek(SeekFrom::Start(0)).unwrap();
        log.write_all(b"three").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "onetwothree");
        // A second appender, interleaved.
        let other = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .unwrap();
        (&other).write_all(b"|b").unwrap();
        log.write_all(b"|a").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "onetwothree|b|a");
    });
}

#[test]
fn open_errors() {
    on_each_backend(|| {
        let path = TempPath::new("errors");
        let err = File::open(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        File::create_new(&path).unwrap();
        let err = File::create_new(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        let err = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        // Inconsistent options and bad paths are refused before the kernel.
        let err = OpenOptions::new().open(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = OpenOptions::new()
            .read(true)
            .create(true)
            .open(&path)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = File::open("nul\0inside").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = fs::metadata("nul\0inside").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // Writing a read-only file.
        let mut read_only = File::open(&path).unwrap();
        let err = read_only.write(b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
        // A directory is not a file.
        let err = File::create(std::env::temp_dir()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EISDIR));
    });
}

#[test]
fn sync_truncate_and_permissions() {
    on_each_backend(|| {
        use std::os::unix::fs::PermissionsExt;
        let path = TempPath::new("sync");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&path)
            .unwrap();
        file.write_all(&pattern(3, 10_000)).unwrap();
        file.sync_all().unwrap();
        file.sync_data().unwrap();
        // The mode is the requested one less the umask.
        assert_eq!(file.metadata().unwrap().mode() & 0o137, 0);
        file.set_len(100).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 100);
        assert_eq!(file.stream_position().unwrap(), 10_000);
        file.set_len(200).unwrap();
        let mut tail = [1u8; 100];
        file.read_exact_at(&mut tail, 100).unwrap();
        assert_eq!(tail, [0; 100]);
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let meta = file.metadata().unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // set_len on a file not open for writing fails, and nothing changes.
        let reader = File::open(&path).unwrap();
        assert!(reader.set_len(0).is_err());
        assert_eq!(reader.metadata().unwrap().len(), 200);
    });
}

#[test]
fn metadata_of_files_dirs_and_links() {
    on_each_backend(|| {
        let path = TempPath::new("meta");
        let before = SystemTime::now() - Duration::from_secs(5);
        fs::write(&path, pattern(4, 12_345)).unwrap();
        let file = File::open(&path).unwrap();
        let meta = file.metadata().unwrap();
        assert_eq!(meta.len(), 12_345);
        assert!(meta.is_file());
        assert!(!meta.is_dir());
        assert!(!meta.is_symlink());
        assert!(meta.file_type().is_file());
        let modified = meta.modified().unwrap();
        assert!(modified >= before, "{modified:?} < {before:?}");
        assert!(modified <= SystemTime::now() + Duration::from_secs(5));
        assert!(meta.accessed().is_ok());
        assert!(meta.nlink() >= 1);
        assert!(meta.ino() != 0);
        // Agrees with std.
        let std_meta = std::fs::metadata(&*path).unwrap();
        assert_eq!(modified, std_meta.modified().unwrap());
        {
            use std::os::unix::fs::MetadataExt;
            assert_eq!(meta.ino(), std_meta.ino());
            assert_eq!(meta.dev(), std_meta.dev());
            assert_eq!(meta.mode(), std_meta.mode());
            assert_eq!(meta.uid(), std_meta.uid());
        }
        let by_path = fs::metadata(&path).unwrap();
        assert_eq!(by_path.ino(), meta.ino());
        assert_eq!(by_path.len(), 12_345);

        let dir = fs::metadata(std::env::temp_dir()).unwrap();
        assert!(dir.is_dir() && !dir.is_file());

        let link = TempPath::new("meta-link");
        std::os::unix::fs::symlink(&*path, &*link).unwrap();
        assert!(fs::metadata(&link).unwrap().is_file());
        let link_meta = fs::symlink_metadata(&link).unwrap();
        assert!(link_meta.is_symlink(), "{link_meta:?}");
        assert!(link_meta.file_type().is_symlink());
        assert_ne!(link_meta.ino(), meta.ino());

        let missing = TempPath::new("meta-missing");
        let err = fs::metadata(&missing).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    });
}

#[test]
fn read_write_read_to_string_round_trip() {
    on_each_backend(|| {
        let path = TempPath::new("shortcuts");
        for len in [0usize, 1, 4095, 4096, 4097, 100_000, 1 << 20] {
            let data = pattern(len as u64, len);
            fs::write(&path, &data).unwrap();
            assert_eq!(fs::read(&path).unwrap(), data, "len {len}");
        }
        fs::write(&path, "héllo\nwörld").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "héllo\nwörld");
        let mut s = String::from(">");
        File::open(&path).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, ">héllo\nwörld");
        fs::write(&path, [0xff, 0xfe]).unwrap();
        let err = fs::read_to_string(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // A file whose size the metadata does not tell.
        let proc = fs::read_to_string("/proc/self/status");
        if cfg!(target_os = "linux") {
            assert!(proc.unwrap().contains("Pid:"));
        }
    });
}

#[test]
fn many_fibers_on_different_files() {
    on_each_backend(|| {
        const FILES: u64 = 48;
        let size = |i: u64| (i * 37_813 % 300_000) as usize + i as usize;
        let paths: Vec<Rc<TempPath>> = (0..FILES)
            .map(|i| Rc::new(TempPath::new(&format!("many{i}"))))
            .collect();
        let writers: Vec<_> = (0..FILES)
            .map(|i| {
                let path = Rc::clone(&paths[i as usize]);
                loom::spawn(move || -> io::Result<()> {
                    let mut file = File::create(&**path)?;
                    for chunk in pattern(i, size(i)).chunks(10_007) {
                        file.write_all(chunk)?;
                    }
                    file.sync_data()
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap().unwrap();
        }
        let readers: Vec<_> = (0..FILES)
            .map(|i| {
                let path = Rc::clone(&paths[i as usize]);
                loom::spawn(move || -> io::Result<(u64, usize)> {
                    // Half with fs::read, half with read_at in 8 KiB pieces.
                    if i % 2 == 0 {
                        let bytes = fs::read(&**path)?;
                        Ok((checksum(&bytes), bytes.len()))
                    } else {
                        let file = File::open(&**path)?;
                        let mut bytes = Vec::new();
                        let mut buf = [0u8; 8192];
                        loop {
                            let n = file.read_at(&mut buf, bytes.len() as u64)?;
                            if n == 0 {
                                break;
                            }
                            bytes.extend_from_slice(&buf[..n]);
                        }
                        Ok((checksum(&bytes), bytes.len()))
                    }
                })
            })
            .collect();
        for (i, reader) in readers.into_iter().enumerate() {
            let expected = pattern(i as u64, size(i as u64));
            let (sum, len) = reader.join().unwrap().unwrap();
            assert_eq!(len, expected.len(), "file {i}");
            assert_eq!(sum, checksum(&expected), "file {i}");
        }
    });
}

#[test]
fn cancelled_fiber_file_calls_return_ecanceled() {
    on_each_backend(|| {
        let path = Rc::new(TempPath::new("cancel-before"));
        fs::write(&**path, "keep").unwrap();
        let file = Rc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&**path)
                .unwrap(),
        );
        let victim = {
            let (path, file) = (Rc::clone(&path), Rc::clone(&file));
            loom::spawn(move || {
                let slept = loom::time::sleep(Duration::from_secs(30));
                assert_eq!(slept.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
                let path: &Path = &path;
                let mut buf = [0u8; 4];
                vec![
                    ("read", (&*file).read(&mut buf).map(drop)),
                    ("read_exact", (&*file).read_exact(&mut buf)),
                    (
                        "read_to_end",
                        (&*file).read_to_end(&mut Vec::new()).map(drop),
                    ),
                    ("write_all", (&*file).write_all(b"gone")),
                    ("read_at", file.read_at(&mut buf, 0).map(drop)),
                    ("write_at", file.write_at(b"gone", 0).map(drop)),
                    ("write_all_at", file.write_all_at(b"gone", 0)),
                    ("sync_all", file.sync_all()),
                    ("sync_data", file.sync_data()),
                    ("set_len", file.set_len(0)),
                    ("metadata", file.metadata().map(drop)),
                    ("open", File::open(path).map(drop)),
                    ("create", File::create(path).map(drop)),
                    ("fs::read", fs::read(path).map(drop)),
                    ("fs::write", fs::write(path, "gone")),
                    ("fs::metadata", fs::metadata(path).map(drop)),
                ]
            })
        };
        loom::time::sleep(Duration::from_millis(5)).unwrap();
        victim.cancel();
        for (call, result) in victim.join().unwrap() {
            let err = result.expect_err(call);
            assert_eq!(err.raw_os_error(), Some(libc::ECANCELED), "{call}: {err}");
        }
        // Nothing happened to the file, and the handle still works.
        assert_eq!(fs::read(&**path).unwrap(), b"keep");
        let mut buf = [0u8; 4];
        file.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"keep");
        assert_eq!((&*file).stream_position().unwrap(), 0);
    });
}

#[test]
fn cancel_a_fiber_blocked_reading_a_fifo() {
    on_each_backend(|| {
        use std::os::unix::ffi::OsStrExt;
        let path = TempPath::new("fifo");
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: `c_path` is a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        // Read+write, so opening does not wait for a peer.
        let fifo = Rc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap(),
        );
        let blocked = {
            let fifo = Rc::clone(&fifo);
            loom::spawn(move || {
                let mut buf = [0u8; 64];
                (&*fifo).read(&mut buf).map(|n| buf[..n].to_vec())
            })
        };
        loom::time::sleep(Duration::from_millis(20)).unwrap();
        assert!(!blocked.is_finished());
        blocked.cancel();
        // On epoll the pool thread cannot be interrupted: the write below is
        // what lets it finish. On io_uring the read is cancelled (or, if the
        // write won the race, completes).
        (&*fifo).write_all(b"ping").unwrap();
        match blocked.join().unwrap() {
            Ok(got) => assert_eq!(got, b"ping"),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ECANCELED), "{e}");
                // Then the bytes are still in the pipe.
                let mut buf = [0u8; 4];
                (&*fifo).read_exact(&mut buf).unwrap();
                assert_eq!(&buf, b"ping");
            }
        }
        // Nothing is left in flight: the FIFO still round-trips.
        (&*fifo).write_all(b"pong").unwrap();
        let mut buf = [0u8; 4];
        (&*fifo).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
    });
}

#[test]
fn cancel_fibers_in_the_middle_of_big_reads() {
    on_each_backend(|| {
        let path = Rc::new(TempPath::new("cancel-mid"));
        let data = Rc::new(pattern(9, 4 << 20));
        fs::write(&**path, &*data).unwrap();
        let file = Rc::new(File::open(&**path).unwrap());
        let readers: Vec<_> = (0..16u64)
            .map(|i| {
                let (file, data) = (Rc::clone(&file), Rc::clone(&data));
                loom::spawn(move || -> io::Result<u64> {
                    let mut buf = vec![0u8; 1 << 20];
                    let mut done = 0;
                    loop {
                        let offset = (i * 65_536 + done * 1_048_573) % (3 << 20);
                        let n = file.read_at(&mut buf, offset)?;
                        assert!(n > 0);
                        let end = offset as usize + n;
                        assert!(buf[..n] == data[offset as usize..end], "corrupt read");
                        done += 1;
                    }
                })
            })
            .collect();
        for _ in 0..5 {
            loom::yield_now();
        }
        for reader in &readers {
            reader.cancel();
        }
        for reader in readers {
            let err = reader.join().unwrap().unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::ECANCELED), "{err}");
        }
        // The shared handle is fine, and so is the file.
        let mut whole = Vec::new();
        (&*file).read_to_end(&mut whole).unwrap();
        assert_eq!(checksum(&whole), checksum(&data));
    });
}

#[test]
fn std_conversions_and_debug() {
    on_each_backend(|| {
        use std::os::fd::AsRawFd;
        let path = TempPath::new("std");
        let mut std_file = std::fs::File::create(&*path).unwrap();
        std_file.write_all(b"from std").unwrap();
        let file = File::from_std(std_file);
        let debug = format!("{file:?}");
        assert!(
            debug.contains("fd") && debug.contains("write: true"),
            "{debug}"
        );
        assert!(file.as_raw_fd() >= 0);
        (&file).write_all(b" and loom").unwrap();
        let mut std_file = file.into_std();
        std_file.write_all(b" and std").unwrap();
        drop(std_file);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "from std and loom and std"
        );
        let clone = File::open(&path).unwrap().try_clone().unwrap();
        let mut s = String::new();
        (&clone).read_to_string(&mut s).unwrap();
        assert_eq!(s.len(), 25);
    });
}

#[test]
fn file_moves_to_another_runtime() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<File>();
    on_each_backend(|| {
        let path = TempPath::new("moved");
        let file = File::create(&path).unwrap();
        let other = std::thread::spawn(move || {
            loom_tests::runtime().run(move || {
                (&file).write_all(b"moved").unwrap();
                // Dropped here: closed by this thread's loop.
            })
        });
        loom::unblock(move || other.join()).unwrap().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"moved");
    });
}

// ---------------------------------------------------------------------------
// The path functions, against std.
// ---------------------------------------------------------------------------

/// A fresh directory in the temp directory (see [`TempPath`]), removed with
/// everything in it when dropped.
struct TempDir(TempPath);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path = TempPath::new(tag);
        std::fs::create_dir(&*path).unwrap();
        TempDir(path)
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&*self.0);
    }
}

/// Where std's and loom's calls run: two identical trees for calls that
/// change them, or one tree for both when they only look.
struct Twin {
    _dir: TempDir,
    std: PathBuf,
    loom: PathBuf,
}

impl Twin {
    /// Two trees, each made by `build`.
    fn new(tag: &str, build: impl Fn(&Path)) -> Twin {
        let dir = TempDir::new(tag);
        let base = std::fs::canonicalize(&*dir).unwrap();
        let (std_root, loom_root) = (base.join("std"), base.join("loom"));
        for root in [&std_root, &loom_root] {
            std::fs::create_dir(root).unwrap();
            build(root);
        }
        Twin {
            _dir: dir,
            std: std_root,
            loom: loom_root,
        }
    }

    /// One tree made by `build`, which both look at.
    fn shared(tag: &str, build: impl Fn(&Path)) -> Twin {
        let dir = TempDir::new(tag);
        let root = std::fs::canonicalize(&*dir).unwrap();
        build(&root);
        Twin {
            _dir: dir,
            std: root.clone(),
            loom: root,
        }
    }
}

/// The fixture most tests start from:
///
/// ```text
/// file          "hello", mode 0640
/// empty/
/// full/inner    "inner"
/// full/sub/deep "deep"
/// link-file  -> file
/// link-dir   -> full
/// dangling   -> missing
/// loop-a     -> loop-b,  loop-b -> loop-a
/// ```
fn fixture(root: &Path) {
    use std::os::unix::fs::symlink;
    std::fs::write(root.join("file"), "hello").unwrap();
    std::fs::set_permissions(root.join("file"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::create_dir(root.join("empty")).unwrap();
    std::fs::create_dir_all(root.join("full/sub")).unwrap();
    std::fs::write(root.join("full/inner"), "inner").unwrap();
    std::fs::write(root.join("full/sub/deep"), "deep").unwrap();
    symlink("file", root.join("link-file")).unwrap();
    symlink("full", root.join("link-dir")).unwrap();
    symlink("missing", root.join("dangling")).unwrap();
    symlink("loop-b", root.join("loop-a")).unwrap();
    symlink("loop-a", root.join("loop-b")).unwrap();
}

/// Everything under `root`, one sorted line per entry: name, type, mode,
/// size and link count, or a link's target. (A work list, not recursion:
/// the main fiber's stack is small, and trees here go 60 deep.)
fn snapshot(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                let rel = dir.strip_prefix(root).unwrap().display().to_string();
                out.push(format!("{rel}/ unreadable: {e}"));
                continue;
            }
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.mode() & 0o7777;
            if meta.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.push(format!("{rel} -> {}", target.display()));
            } else if meta.is_dir() {
                out.push(format!("{rel}/ {mode:o}"));
                dirs.push(path);
            } else {
                let kind = if meta.is_file() { "file" } else { "special" };
                let (len, nlink) = (meta.len(), meta.nlink());
                out.push(format!("{rel} {kind} {mode:o} len={len} nlink={nlink}"));
            }
        }
    }
    out.sort();
    out
}

/// `path` relative to `root` (a result naming a place in the tree).
fn rel(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root).unwrap_or(path).to_path_buf()
}

/// Runs std's call in the std tree and loom's in the loom tree and checks
/// they agree: equal values, or errors of equal kind and OS error; then
/// equal trees. Returns loom's result.
#[track_caller]
fn same<T: PartialEq + Debug>(
    twin: &Twin,
    what: &str,
    std_call: impl FnOnce(&Path) -> io::Result<T>,
    loom_call: impl FnOnce(&Path) -> io::Result<T>,
) -> io::Result<T> {
    let expected = std_call(&twin.std);
    let got = loom_call(&twin.loom);
    match (&expected, &got) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}: std and loom disagree"),
        (Err(a), Err(b)) => {
            assert_eq!(a.kind(), b.kind(), "{what}: std {a:?}, loom {b:?}");
            assert_eq!(
                a.raw_os_error(),
                b.raw_os_error(),
                "{what}: std {a:?}, loom {b:?}"
            );
        }
        _ => panic!("{what}: std {expected:?}, loom {got:?}"),
    }
    assert_eq!(
        snapshot(&twin.std),
        snapshot(&twin.loom),
        "{what}: the trees differ afterwards"
    );
    got
}

/// `same` for an expression written once: `$fs` names `std::fs` in std's
/// run and `loom::fs` in loom's, `$root` the tree's root.
macro_rules! same {
    ($twin:expr, |$root:ident, $fs:ident| $body:expr) => {
        same(
            $twin,
            stringify!($body),
            |$root: &Path| {
                #[allow(unused_imports)]
                use std::fs as $fs;
                $body
            },
            |$root: &Path| {
                #[allow(unused_imports)]
                use loom::fs as $fs;
                $body
            },
        )
    };
}

/// What std's and loom's `Metadata` both tell, comparable.
macro_rules! meta_key {
    ($m:expr) => {{
        let m = $m;
        (
            (m.is_file(), m.is_dir(), m.is_symlink()),
            (m.len(), m.mode(), m.nlink(), m.ino(), m.dev()),
            (m.uid(), m.gid(), m.modified().ok()),
        )
    }};
}

/// What std's and loom's `FileType` both tell, comparable.
macro_rules! type_key {
    ($t:expr) => {{
        let t = $t;
        (
            (t.is_file(), t.is_dir(), t.is_symlink()),
            (
                t.is_fifo(),
                t.is_socket(),
                t.is_block_device(),
                t.is_char_device(),
            ),
        )
    }};
}

fn kind<T: Debug>(result: io::Result<T>) -> io::ErrorKind {
    result.expect_err("expected an error").kind()
}

#[test]
fn remove_file_matches_std() {
    on_each_backend(|| {
        let twin = Twin::new("remove-file", fixture);
        let r = same!(&twin, |r, fs| fs::remove_file(r.join("missing")));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        let r = same!(&twin, |r, fs| fs::remove_file(r.join("empty")));
        assert_eq!(kind(r), io::ErrorKind::IsADirectory);
        let r = same!(&twin, |r, fs| fs::remove_file(r.join("full")));
        assert_eq!(kind(r), io::ErrorKind::IsADirectory);
        let r = same!(&twin, |r, fs| fs::remove_file(r.join("file/x")));
        assert_eq!(kind(r), io::ErrorKind::NotADirectory);
        // Links go themselves, not their targets.
        same!(&twin, |r, fs| fs::remove_file(r.join("link-file"))).unwrap();
        same!(&twin, |r, fs| fs::remove_file(r.join("link-dir"))).unwrap();
        same!(&twin, |r, fs| fs::remove_file(r.join("dangling"))).unwrap();
        same!(&twin, |r, fs| fs::remove_file(r.join("full/sub/deep"))).unwrap();
        same!(&twin, |r, fs| fs::remove_file(r.join("file"))).unwrap();
        let r = same!(&twin, |r, fs| fs::remove_file(r.join("file")));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        let r = same!(&twin, |_r, fs| fs::remove_file(""));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        let r = same!(&twin, |r, fs| fs::remove_file(r.join("nul\0byte")));
        assert_eq!(kind(r), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn remove_dir_matches_std() {
    on_each_backend(|| {
        let twin = Twin::new("remove-dir", fixture);
        let r = same!(&twin, |r, fs| fs::remove_dir(r.join("missing")));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        let r = same!(&twin, |r, fs| fs::remove_dir(r.join("file")));
        assert_eq!(kind(r), io::ErrorKind::NotADirectory);
        let r = same!(&twin, |r, fs| fs::remove_dir(r.join("full")));
        assert_eq!(kind(r), io::ErrorKind::DirectoryNotEmpty);
        let r = same!(&twin, |r, fs| fs::remove_dir(r.join("link-dir")));
        assert_eq!(kind(r), io::ErrorKind::NotADirectory);
        let r = same!(&twin, |r, fs| fs::remove_dir(r.join("empty/.")));
        assert_eq!(kind(r), io::ErrorKind::InvalidInput);
        let r = same!(&twin, |r, fs| fs::remove_dir(r.join("file/x")));
        assert_eq!(kind(r), io::ErrorKind::NotADirectory);
        same!(&twin, |r, fs| fs::remove_dir(r.join("empty"))).unwrap();
        same!(&twin, |r, fs| fs::remove_file(r.join("full/sub/deep"))).unwrap();
        same!(&twin, |r, fs| fs::remove_dir(r.join("full/sub/"))).unwrap();
        let r = same!(&twin, |r, fs| fs::remove_dir(r.join("empty")));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
    });
}

#[test]
fn remove_dir_all_matches_std() {
    on_each_backend(|| {
        use std::os::unix::fs::symlink;
        let twin = Twin::new("remove-dir-all", |root| {
            fixture(root);
            // A tree with links out of it: removing the tree must not
            // follow them.
            std::fs::create_dir(root.join("keep")).unwrap();
            std::fs::write(root.join("keep/precious"), "keep me").unwrap();
            std::fs::create_dir_all(root.join("tree/a/b/c")).unwrap();
            std::fs::write(root.join("tree/a/b/c/leaf"), "leaf").unwrap();
            for i in 0..40 {
                std::fs::write(root.join(format!("tree/a/f{i}")), "x").unwrap();
            }
            symlink("../keep", root.join("tree/escape")).unwrap();
            symlink("../../keep/precious", root.join("tree/a/escape-file")).unwrap();
        });
        let r = same!(&twin, |r, fs| fs::remove_dir_all(r.join("missing")));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        let r = same!(&twin, |r, fs| fs::remove_dir_all(r.join("file")));
        assert!(r.is_err());
        // A link to a directory: the link goes, the directory stays.
        same!(&twin, |r, fs| fs::remove_dir_all(r.join("link-dir"))).unwrap();
        assert!(twin.loom.join("full/sub/deep").exists());
        same!(&twin, |r, fs| fs::remove_dir_all(r.join("tree"))).unwrap();
        assert_eq!(
            std::fs::read(twin.loom.join("keep/precious")).unwrap(),
            b"keep me"
        );
        same!(&twin, |r, fs| fs::remove_dir_all(r.join("empty"))).unwrap();
        same!(&twin, |r, fs| fs::remove_dir_all(r.join("full"))).unwrap();
        let r = same!(&twin, |r, fs| fs::remove_dir_all(r.join("full")));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
    });
}

#[test]
fn create_dir_matches_std() {
    on_each_backend(|| {
        let twin = Twin::new("create-dir", fixture);
        same!(&twin, |r, fs| fs::create_dir(r.join("new"))).unwrap();
        same!(&twin, |r, fs| fs::create_dir(r.join("new/trailing/"))).unwrap();
        for existing in ["new", "file", "empty", "link-dir", "link-file", "dangling"] {
            let r = same!(&twin, |r, fs| fs::create_dir(r.join(existing)));
            assert_eq!(kind(r), io::ErrorKind::AlreadyExists, "{existing}");
        }
        let r = same!(&twin, |r, fs| fs::create_dir(r.join("missing/new")));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        let r = same!(&twin, |r, fs| fs::create_dir(r.join("file/new")));
        assert_eq!(kind(r), io::ErrorKind::NotADirectory);
        let r = same!(&twin, |r, fs| fs::create_dir(r.join("loop-a/new")));
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ELOOP));
        // Through a link to a directory.
        same!(&twin, |r, fs| fs::create_dir(r.join("link-dir/made"))).unwrap();
        let r = same!(&twin, |_r, fs| fs::create_dir(""));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
    });
}

#[test]
fn create_dir_all_matches_std() {
    on_each_backend(|| {
        let twin = Twin::new("create-dir-all", fixture);
        same!(&twin, |r, fs| fs::create_dir_all(r.join("a/b/c"))).unwrap();
        same!(&twin, |r, fs| fs::create_dir_all(r.join("a/b"))).unwrap();
        same!(&twin, |r, fs| fs::create_dir_all(r.join("a/b/c/"))).unwrap();
        same!(&twin, |r, fs| fs::create_dir_all(r.join("a/./x/../y"))).unwrap();
        same!(&twin, |r, fs| fs::create_dir_all(
            r.join("link-dir/made/deeper")
        ))
        .unwrap();
        same!(&twin, |r, fs| fs::create_dir_all(r.join("empty"))).unwrap();
        let deep: PathBuf = (0..60).map(|i| format!("d{i}")).collect();
        same!(&twin, |r, fs| fs::create_dir_all(r.join(&deep))).unwrap();
        let r = same!(&twin, |r, fs| fs::create_dir_all(r.join("file")));
        assert_eq!(kind(r), io::ErrorKind::AlreadyExists);
        let r = same!(&twin, |r, fs| fs::create_dir_all(r.join("file/x/y")));
        assert_eq!(kind(r), io::ErrorKind::NotADirectory);
        let r = same!(&twin, |r, fs| fs::create_dir_all(r.join("link-file/x")));
        assert_eq!(kind(r), io::ErrorKind::NotADirectory);
        let r = same!(&twin, |r, fs| fs::create_dir_all(r.join("dangling/x")));
        assert_eq!(kind(r), io::ErrorKind::AlreadyExists);
        let r = same!(&twin, |r, fs| fs::create_dir_all(r.join("loop-a/x")));
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ELOOP));
        // Nothing to create: the empty path and the root.
        same!(&twin, |_r, fs| fs::create_dir_all("")).unwrap();
        same!(&twin, |_r, fs| fs::create_dir_all("/")).unwrap();
        let r = same!(&twin, |r, fs| fs::create_dir_all(r.join("nul\0/x")));
        assert_eq!(kind(r), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn rename_matches_std() {
    on_each_backend(|| {
        let twin = Twin::new("rename", fixture);
        same!(&twin, |r, fs| fs::rename(r.join("file"), r.join("renamed"))).unwrap();
        let r = same!(&twin, |r, fs| fs::rename(r.join("file"), r.join("again")));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        // Into a directory that does not exist.
        let r = same!(&twin, |r, fs| fs::rename(
            r.join("renamed"),
            r.join("nodir/x")
        ));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        let r = same!(&twin, |r, fs| fs::rename(r.join("empty"), r.join("full")));
        assert_eq!(kind(r), io::ErrorKind::DirectoryNotEmpty);
        let r = same!(&twin, |r, fs| fs::rename(
            r.join("renamed"),
            r.join("empty")
        ));
        assert_eq!(kind(r), io::ErrorKind::IsADirectory);
        let r = same!(&twin, |r, fs| fs::rename(
            r.join("empty"),
            r.join("renamed")
        ));
        assert_eq!(kind(r), io::ErrorKind::NotADirectory);
        let r = same!(&twin, |r, fs| fs::rename(
            r.join("full"),
            r.join("full/sub/in")
        ));
        assert_eq!(kind(r), io::ErrorKind::InvalidInput);
        let r = same!(&twin, |r, fs| fs::rename(r.join("renamed/x"), r.join("y")));
        assert_eq!(kind(r), io::ErrorKind::NotADirectory);
        // Replacing a file, and an empty directory.
        same!(&twin, |r, fs| fs::rename(
            r.join("full/inner"),
            r.join("renamed")
        ))
        .unwrap();
        same!(&twin, |r, fs| fs::create_dir(r.join("empty2"))).unwrap();
        same!(&twin, |r, fs| fs::rename(r.join("empty2"), r.join("empty"))).unwrap();
        // A link is renamed, not its target.
        same!(&twin, |r, fs| fs::rename(
            r.join("link-dir"),
            r.join("moved-link")
        ))
        .unwrap();
        same!(&twin, |r, fs| fs::rename(
            r.join("dangling"),
            r.join("full/dangling")
        ))
        .unwrap();
        // Onto itself: nothing happens.
        same!(&twin, |r, fs| fs::rename(
            r.join("renamed"),
            r.join("renamed")
        ))
        .unwrap();
    });
}

#[test]
fn copy_matches_std() {
    on_each_backend(|| {
        let twin = Twin::new("copy", |root| {
            fixture(root);
            std::fs::write(root.join("big"), pattern(7, 3 << 20)).unwrap();
        });
        assert_eq!(
            same!(&twin, |r, fs| fs::copy(r.join("file"), r.join("copy"))).unwrap(),
            5
        );
        // Over an existing file; through a link; a big one.
        same!(&twin, |r, fs| fs::copy(
            r.join("full/inner"),
            r.join("copy")
        ))
        .unwrap();
        same!(&twin, |r, fs| fs::copy(
            r.join("link-file"),
            r.join("via-link")
        ))
        .unwrap();
        same!(&twin, |r, fs| fs::copy(r.join("big"), r.join("full/big"))).unwrap();
        assert_eq!(
            checksum(&std::fs::read(twin.loom.join("full/big")).unwrap()),
            checksum(&pattern(7, 3 << 20))
        );
        let r = same!(&twin, |r, fs| fs::copy(r.join("missing"), r.join("x")));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        let r = same!(&twin, |r, fs| fs::copy(r.join("dangling"), r.join("x")));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        let r = same!(&twin, |r, fs| fs::copy(r.join("empty"), r.join("x")));
        assert_eq!(kind(r), io::ErrorKind::InvalidInput);
        let r = same!(&twin, |r, fs| fs::copy(r.join("file"), r.join("nodir/x")));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        let r = same!(&twin, |r, fs| fs::copy(r.join("file"), r.join("empty")));
        assert_eq!(kind(r), io::ErrorKind::IsADirectory);
    });
}

#[test]
fn hard_link_matches_std() {
    on_each_backend(|| {
        let twin = Twin::new("hard-link", fixture);
        same!(&twin, |r, fs| fs::hard_link(r.join("file"), r.join("hard"))).unwrap();
        assert_eq!(
            std::fs::metadata(twin.loom.join("file")).unwrap().nlink(),
            2
        );
        for taken in ["hard", "empty", "link-file", "dangling"] {
            let r = same!(&twin, |r, fs| fs::hard_link(r.join("file"), r.join(taken)));
            assert_eq!(kind(r), io::ErrorKind::AlreadyExists, "{taken}");
        }
        let r = same!(&twin, |r, fs| fs::hard_link(r.join("missing"), r.join("x")));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        let r = same!(&twin, |r, fs| fs::hard_link(
            r.join("file"),
            r.join("nodir/x")
        ));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        // Directories cannot be hard-linked, even by root.
        let r = same!(&twin, |r, fs| fs::hard_link(r.join("empty"), r.join("x")));
        assert_eq!(kind(r), io::ErrorKind::PermissionDenied);
        // A link is linked itself (no flags: not followed), dangling or not.
        same!(&twin, |r, fs| fs::hard_link(
            r.join("link-file"),
            r.join("hard-link")
        ))
        .unwrap();
        same!(&twin, |r, fs| fs::hard_link(
            r.join("dangling"),
            r.join("hard-dangling")
        ))
        .unwrap();
        assert!(
            std::fs::symlink_metadata(twin.loom.join("hard-link"))
                .unwrap()
                .is_symlink()
        );
    });
}

#[test]
fn symlink_matches_std() {
    on_each_backend(|| {
        let twin = Twin::new("symlink", fixture);
        let both = |what: &str, original: &str, link: &str| {
            same(
                &twin,
                what,
                |r| std::os::unix::fs::symlink(original, r.join(link)),
                |r| fs::unix::symlink(original, r.join(link)),
            )
        };
        both("relative", "file", "s1").unwrap();
        both("to a directory", "full/sub", "s2").unwrap();
        both("to nothing", "/no/such/place", "s3").unwrap();
        assert_eq!(
            kind(both("taken", "x", "file")),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(both("taken by a link", "x", "s1")),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(both("no parent", "x", "nodir/s")),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            kind(both("file parent", "x", "file/s")),
            io::ErrorKind::NotADirectory
        );
        assert_eq!(
            kind(both("empty target", "", "s4")),
            io::ErrorKind::NotFound
        );
        assert_eq!(kind(both("NUL", "x\0", "s5")), io::ErrorKind::InvalidInput);
        assert_eq!(std::fs::read(twin.loom.join("s1")).unwrap(), b"hello");
    });
}

#[test]
fn read_link_and_canonicalize_match_std() {
    on_each_backend(|| {
        let twin = Twin::shared("read-link", |root| {
            fixture(root);
            std::os::unix::fs::symlink("self", root.join("self")).unwrap();
            std::os::unix::fs::symlink("full/sub/../inner", root.join("winding")).unwrap();
        });
        for link in ["link-file", "link-dir", "dangling", "loop-a", "winding"] {
            same!(&twin, |r, fs| fs::read_link(r.join(link))).unwrap();
        }
        let r = same!(&twin, |r, fs| fs::read_link(r.join("file")));
        assert_eq!(kind(r), io::ErrorKind::InvalidInput);
        let r = same!(&twin, |r, fs| fs::read_link(r.join("missing")));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        let r = same!(&twin, |r, fs| fs::read_link(r.join("file/x")));
        assert_eq!(kind(r), io::ErrorKind::NotADirectory);

        let canon = |path: &str| {
            same!(&twin, |r, fs| fs::canonicalize(r.join(path))
                .map(|p| rel(r, &p)))
        };
        assert_eq!(canon("full/sub/../inner").unwrap(), Path::new("full/inner"));
        assert_eq!(
            canon("link-dir/sub/deep").unwrap(),
            Path::new("full/sub/deep")
        );
        assert_eq!(canon("winding").unwrap(), Path::new("full/inner"));
        assert_eq!(canon(".").unwrap(), Path::new(""));
        assert_eq!(kind(canon("missing")), io::ErrorKind::NotFound);
        assert_eq!(kind(canon("dangling")), io::ErrorKind::NotFound);
        assert_eq!(kind(canon("file/x")), io::ErrorKind::NotADirectory);
        for looping in ["loop-a", "self", "loop-b/x"] {
            let err = canon(looping).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{looping}");
        }
        let r = same!(&twin, |_r, fs| fs::canonicalize(""));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
    });
}

#[test]
fn set_permissions_matches_std() {
    on_each_backend(|| {
        let twin = Twin::new("set-permissions", fixture);
        let mode = std::fs::Permissions::from_mode;
        same!(&twin, |r, fs| fs::set_permissions(
            r.join("file"),
            mode(0o600)
        ))
        .unwrap();
        same!(&twin, |r, fs| fs::set_permissions(
            r.join("empty"),
            mode(0o711)
        ))
        .unwrap();
        // Through a link: the target changes.
        same!(&twin, |r, fs| fs::set_permissions(
            r.join("link-file"),
            mode(0o604)
        ))
        .unwrap();
        same!(&twin, |r, fs| fs::set_permissions(
            r.join("full/inner"),
            mode(0o4755)
        ))
        .unwrap();
        let r = same!(&twin, |r, fs| fs::set_permissions(
            r.join("missing"),
            mode(0o600)
        ));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        let r = same!(&twin, |r, fs| fs::set_permissions(
            r.join("dangling"),
            mode(0o600)
        ));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        // Loom's own metadata sees the change.
        let meta = fs::metadata(twin.loom.join("file")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o604);
    });
}

#[test]
fn exists_and_metadata_match_std() {
    on_each_backend(|| {
        let twin = Twin::shared("exists", fixture);
        let paths = [
            "file",
            "empty",
            "full/sub/deep",
            "link-file",
            "link-dir",
            "dangling",
            "loop-a",
            "missing",
            "file/x",
            "link-file/x",
            "full/../file",
            "",
        ];
        for path in paths {
            let exists = same!(&twin, |r, fs| fs::exists(r.join(path)));
            let metadata = same!(&twin, |r, fs| fs::metadata(r.join(path))
                .map(|m| meta_key!(m)));
            let symlink = same!(&twin, |r, fs| fs::symlink_metadata(r.join(path))
                .map(|m| meta_key!(m)));
            match path {
                "missing" | "dangling" => assert!(!exists.unwrap(), "{path}"),
                "file/x" | "link-file/x" => {
                    assert_eq!(kind(exists), io::ErrorKind::NotADirectory, "{path}");
                }
                "loop-a" => {
                    assert_eq!(exists.unwrap_err().raw_os_error(), Some(libc::ELOOP));
                    assert!(symlink.as_ref().unwrap().0.2, "a loop is a link");
                }
                _ => assert!(exists.unwrap(), "{path}"),
            }
            if path == "link-file" {
                assert!(metadata.unwrap().0.0 && symlink.unwrap().0.2);
            }
        }
        let r = same!(&twin, |_r, fs| fs::exists(""));
        assert!(!r.unwrap());
        let r = same!(&twin, |r, fs| fs::exists(r.join("nul\0")));
        assert_eq!(kind(r), io::ErrorKind::InvalidInput);
    });
}

/// Every entry of a directory as both read it, sorted: name, path, type,
/// the entry's own metadata and inode.
macro_rules! listing {
    ($fs:ident, $root:expr, $dir:expr) => {{
        let root: &Path = $root;
        $fs::read_dir(root.join($dir)).and_then(|entries| {
            let mut all = Vec::new();
            for entry in entries {
                let entry = entry?;
                let meta = entry.metadata()?;
                // The entry's own inode number (`d_ino`), compared with
                // std's: on overlay and 9p file systems (CI's VM) it need
                // not equal the one `stat` reports.
                all.push((
                    entry.file_name(),
                    rel(root, &entry.path()),
                    type_key!(entry.file_type()?),
                    meta_key!(meta),
                    entry.ino(),
                ));
            }
            all.sort();
            Ok(all)
        })
    }};
}

#[test]
fn read_dir_matches_std() {
    on_each_backend(|| {
        let twin = Twin::shared("read-dir", |root| {
            fixture(root);
            let fifo =
                std::ffi::CString::new(root.join("fifo").into_os_string().into_encoded_bytes())
                    .unwrap();
            // SAFETY: `fifo` is a valid C string.
            assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
            std::mem::forget(std::os::unix::net::UnixListener::bind(root.join("socket")).unwrap());
        });
        let top = same!(&twin, |r, fs| listing!(fs, r, "")).unwrap();
        let names: Vec<_> = top.iter().map(|e| e.0.to_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "dangling",
                "empty",
                "fifo",
                "file",
                "full",
                "link-dir",
                "link-file",
                "loop-a",
                "loop-b",
                "socket"
            ]
        );
        assert_eq!(
            same!(&twin, |r, fs| listing!(fs, r, "full")).unwrap().len(),
            2
        );
        assert_eq!(same!(&twin, |r, fs| listing!(fs, r, "empty")).unwrap(), []);
        // Through a link: the target's entries, under the link's path.
        let via_link = same!(&twin, |r, fs| listing!(fs, r, "link-dir/")).unwrap();
        assert_eq!(via_link[0].1, Path::new("link-dir/inner"));
        let r = same!(&twin, |r, fs| listing!(fs, r, "missing"));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        let r = same!(&twin, |r, fs| listing!(fs, r, "file"));
        assert_eq!(kind(r), io::ErrorKind::NotADirectory);
        let r = same!(&twin, |r, fs| listing!(fs, r, "dangling"));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
        let r = same!(&twin, |r, fs| listing!(fs, r, "loop-a"));
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ELOOP));
        let r = same!(&twin, |_r, fs| fs::read_dir("").map(drop));
        assert_eq!(kind(r), io::ErrorKind::NotFound);
    });
}

#[test]
fn read_dir_of_a_big_directory_in_batches() {
    on_each_backend(|| {
        const FILES: usize = 1000;
        let twin = Twin::shared("read-dir-big", |root| {
            for i in 0..FILES {
                std::fs::write(root.join(format!("entry-{i:04}")), i.to_string()).unwrap();
            }
        });
        let root = twin.loom.clone();
        let expected = {
            let mut names: Vec<_> = std::fs::read_dir(&root)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        // Another fiber keeps running while this one reads batches.
        let ticks = Rc::new(Cell::new(0u64));
        let stop = Rc::new(Cell::new(false));
        let ticker = {
            let (ticks, stop) = (Rc::clone(&ticks), Rc::clone(&stop));
            loom::spawn(move || {
                while !stop.get() {
                    ticks.set(ticks.get() + 1);
                    loom::yield_now();
                }
            })
        };
        let mut names = Vec::new();
        for entry in fs::read_dir(&root).unwrap() {
            let entry = entry.unwrap();
            assert!(entry.file_type().unwrap().is_file());
            names.push(entry.file_name());
        }
        stop.set(true);
        ticker.join().unwrap();
        names.sort();
        assert_eq!(names.len(), FILES);
        assert_eq!(names, expected);
        assert!(
            ticks.get() >= 3,
            "the other fiber ran {} times",
            ticks.get()
        );
        // Entries outlive their iterator and still answer.
        let kept: Vec<_> = fs::read_dir(&root).unwrap().map(Result::unwrap).collect();
        let last = kept.last().unwrap();
        let meta = last.metadata().unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.ino(), last.ino());
        assert_eq!(
            fs::read_to_string(last.path()).unwrap().len(),
            meta.len() as usize
        );
    });
}

#[test]
fn dir_entry_metadata_after_removal_matches_std() {
    on_each_backend(|| {
        let twin = Twin::new("entry-gone", fixture);
        let r = same(
            &twin,
            "metadata of an entry removed after reading it",
            |root| {
                let entry = std::fs::read_dir(root.join("full"))?
                    .map(Result::unwrap)
                    .find(|e| e.file_name() == "inner")
                    .unwrap();
                std::fs::remove_file(entry.path())?;
                entry.metadata().map(|m| meta_key!(m))
            },
            |root| {
                let entry = fs::read_dir(root.join("full"))?
                    .map(Result::unwrap)
                    .find(|e| e.file_name() == "inner")
                    .unwrap();
                fs::remove_file(entry.path())?;
                entry.metadata().map(|m| meta_key!(m))
            },
        );
        assert_eq!(kind(r), io::ErrorKind::NotFound);
    });
}

#[test]
fn read_dir_types_and_debug() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<fs::ReadDir>();
    assert_send_sync::<fs::DirEntry>();
    on_each_backend(|| {
        let dir = TempDir::new("read-dir-debug");
        std::fs::write(dir.join("x"), "").unwrap();
        let mut entries = fs::read_dir(&*dir).unwrap();
        assert_eq!(format!("{entries:?}"), format!("ReadDir({:?})", &*dir));
        let entry = entries.next().unwrap().unwrap();
        assert_eq!(
            format!("{entry:?}"),
            format!("DirEntry({:?})", dir.join("x"))
        );
        assert!(entries.next().is_none());
        assert!(entries.next().is_none());
        // An entry may move to another thread's runtime and still answer.
        let other = std::thread::spawn(move || {
            loom_tests::runtime().run(move || entry.metadata().map(|m| m.len()))
        });
        assert_eq!(
            loom::unblock(move || other.join())
                .unwrap()
                .unwrap()
                .unwrap(),
            0
        );
    });
}

#[test]
fn set_len_matches_std() {
    on_each_backend(|| {
        let twin = Twin::new("set-len", fixture);
        same(
            &twin,
            "set_len on a file open for writing",
            |r| {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(r.join("file"))?;
                file.set_len(3)?;
                file.set_len(10_000)?;
                file.metadata().map(|m| m.len())
            },
            |r| {
                let file = OpenOptions::new().write(true).open(r.join("file"))?;
                file.set_len(3)?;
                file.set_len(10_000)?;
                file.metadata().map(|m| m.len())
            },
        )
        .unwrap();
        let r = same(
            &twin,
            "set_len on a read-only file",
            |r| std::fs::File::open(r.join("file"))?.set_len(0),
            |r| File::open(r.join("file"))?.set_len(0),
        );
        assert_eq!(kind(r), io::ErrorKind::InvalidInput);
        let r = same(
            &twin,
            "set_len beyond i64::MAX",
            |r| std::fs::File::create(r.join("file"))?.set_len(u64::MAX),
            |r| File::create(r.join("file"))?.set_len(u64::MAX),
        );
        assert_eq!(kind(r), io::ErrorKind::InvalidInput);
        let r = same(
            &twin,
            "sync_all and sync_data",
            |r| {
                let file = std::fs::File::open(r.join("full/inner"))?;
                file.sync_all()?;
                file.sync_data()?;
                file.metadata().map(|m| m.len())
            },
            |r| {
                let file = File::open(r.join("full/inner"))?;
                file.sync_all()?;
                file.sync_data()?;
                file.metadata().map(|m| m.len())
            },
        );
        assert_eq!(r.unwrap(), 5);
    });
}

/// Permission bits stop everyone but root (who has `CAP_DAC_OVERRIDE`):
/// as root the cases below would succeed, so this test then says so and
/// checks only what root cannot do either.
#[test]
fn permission_errors_match_std() {
    on_each_backend(|| {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let twin = Twin::new("permissions", |root| {
            fixture(root);
            std::fs::create_dir(root.join("ro")).unwrap();
            std::fs::write(root.join("ro/file"), "ro").unwrap();
            std::fs::create_dir(root.join("closed")).unwrap();
            std::fs::write(root.join("closed/file"), "closed").unwrap();
            let mode = std::fs::Permissions::from_mode;
            std::fs::set_permissions(root.join("ro"), mode(0o555)).unwrap();
            std::fs::set_permissions(root.join("closed"), mode(0o000)).unwrap();
        });
        // What root cannot do either.
        let r = same!(&twin, |r, fs| fs::hard_link(r.join("full"), r.join("x")));
        assert_eq!(kind(r), io::ErrorKind::PermissionDenied);
        if root {
            say(format_args!(
                "permission_errors_match_std: running as root, which permission bits do not \
                 stop; only the cases root cannot do either were checked"
            ));
        } else {
            let denied = [
                same!(&twin, |r, fs| fs::create_dir(r.join("ro/new"))),
                same!(&twin, |r, fs| fs::create_dir_all(r.join("ro/a/b"))),
                same!(&twin, |r, fs| fs::remove_file(r.join("ro/file"))),
                same!(&twin, |r, fs| fs::rename(r.join("ro/file"), r.join("out"))),
                same!(&twin, |r, fs| fs::hard_link(
                    r.join("file"),
                    r.join("ro/link")
                )),
                same!(&twin, |r, fs| fs::remove_dir_all(r.join("ro"))),
                same!(&twin, |r, fs| fs::copy(r.join("file"), r.join("ro/copy"))
                    .map(drop)),
                same!(&twin, |r, fs| fs::read_dir(r.join("closed")).map(drop)),
                same!(&twin, |r, fs| fs::exists(r.join("closed/file")).map(drop)),
                same!(&twin, |r, fs| fs::metadata(r.join("closed/file")).map(drop)),
                same!(&twin, |r, fs| fs::canonicalize(r.join("closed/file"))
                    .map(drop)),
                same!(&twin, |r, fs| fs::read_link(r.join("closed/file"))
                    .map(drop)),
            ];
            for (i, r) in denied.into_iter().enumerate() {
                assert_eq!(kind(r), io::ErrorKind::PermissionDenied, "case {i}");
            }
            let r = same(
                &twin,
                "symlink in a read-only directory",
                |r| std::os::unix::fs::symlink("x", r.join("ro/s")),
                |r| fs::unix::symlink("x", r.join("ro/s")),
            );
            assert_eq!(kind(r), io::ErrorKind::PermissionDenied);
        }
        for root in [&twin.std, &twin.loom] {
            for dir in ["ro", "closed"] {
                std::fs::set_permissions(root.join(dir), std::fs::Permissions::from_mode(0o755))
                    .unwrap();
            }
        }
    });
}

/// A file system that refuses changes even to root, and a rename across
/// file systems.
#[cfg(target_os = "linux")]
#[test]
fn proc_refusals_match_std() {
    on_each_backend(|| {
        let twin = Twin::new("proc", fixture);
        let status = "/proc/self/status";
        let r = same!(&twin, |_r, fs| fs::remove_file(status));
        assert!(r.is_err());
        let r = same!(&twin, |_r, fs| fs::create_dir("/proc/self/loom-new"));
        assert!(r.is_err());
        let r = same!(&twin, |r, fs| fs::rename(
            r.join("file"),
            "/proc/self/loom-file"
        ));
        assert!(r.is_err());
        let r = same!(&twin, |r, fs| fs::hard_link(status, r.join("status-link")));
        assert!(r.is_err());
        // The running process's executable, through /proc's magic link.
        same!(&twin, |_r, fs| fs::read_link("/proc/self/cwd")).unwrap();
        same!(&twin, |_r, fs| fs::canonicalize("/proc/self/cwd")).unwrap();
    });
}

#[test]
fn cancelled_fiber_path_calls_do_nothing() {
    on_each_backend(|| {
        let dir = Rc::new(TempDir::new("cancel-paths"));
        fixture(&dir);
        let victim = {
            let dir = Rc::clone(&dir);
            loom::spawn(move || {
                let slept = loom::time::sleep(Duration::from_secs(30));
                assert_eq!(slept.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
                let r: &Path = &dir;
                let perm = std::fs::Permissions::from_mode(0o600);
                vec![
                    ("remove_file", fs::remove_file(r.join("file"))),
                    ("remove_dir", fs::remove_dir(r.join("empty"))),
                    ("remove_dir_all", fs::remove_dir_all(r.join("full"))),
                    ("create_dir", fs::create_dir(r.join("new"))),
                    ("create_dir_all", fs::create_dir_all(r.join("new/deeper"))),
                    ("rename", fs::rename(r.join("file"), r.join("renamed"))),
                    ("copy", fs::copy(r.join("file"), r.join("copy")).map(drop)),
                    ("hard_link", fs::hard_link(r.join("file"), r.join("hard"))),
                    ("symlink", fs::unix::symlink("file", r.join("soft"))),
                    ("read_dir", fs::read_dir(r).map(drop)),
                    ("read_link", fs::read_link(r.join("link-file")).map(drop)),
                    ("canonicalize", fs::canonicalize(r).map(drop)),
                    ("set_permissions", fs::set_permissions(r.join("file"), perm)),
                    ("exists", fs::exists(r.join("file")).map(drop)),
                    ("symlink_metadata", fs::symlink_metadata(r).map(drop)),
                ]
            })
        };
        let before = snapshot(&dir);
        loom::time::sleep(Duration::from_millis(5)).unwrap();
        victim.cancel();
        for (call, result) in victim.join().unwrap() {
            let err = result.expect_err(call);
            assert_eq!(err.raw_os_error(), Some(libc::ECANCELED), "{call}: {err}");
        }
        assert_eq!(snapshot(&dir), before);
    });
}

/// A `ReadDir` whose fiber is cancelled hands out what it has read, then
/// the cancellation, then ends: a loop that skips errors cannot spin.
#[test]
fn cancelled_read_dir_ends_after_the_error() {
    on_each_backend(|| {
        let dir = Rc::new(TempDir::new("cancel-read-dir"));
        for i in 0..600 {
            std::fs::write(dir.join(format!("f{i}")), "").unwrap();
        }
        // Cancelled only once it has its first batch.
        let opened = Rc::new(Cell::new(false));
        let reader = {
            let (dir, opened) = (Rc::clone(&dir), Rc::clone(&opened));
            loom::spawn(move || {
                let mut entries = fs::read_dir(&**dir).unwrap();
                let first = entries.next().unwrap().unwrap();
                opened.set(true);
                let slept = loom::time::sleep(Duration::from_secs(30));
                assert_eq!(slept.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
                let mut ok = 1;
                let mut errors = Vec::new();
                for entry in entries.by_ref() {
                    match entry {
                        Ok(_) => ok += 1,
                        Err(e) => errors.push(e.raw_os_error()),
                    }
                }
                assert!(entries.next().is_none());
                // Already read, so still there.
                assert!(first.file_type().unwrap().is_file());
                (ok, errors)
            })
        };
        while !opened.get() {
            loom::time::sleep(Duration::from_millis(1)).unwrap();
        }
        reader.cancel();
        let (ok, errors) = reader.join().unwrap();
        assert_eq!(ok, 256, "one batch");
        assert_eq!(errors, [Some(libc::ECANCELED)]);
    });
}

/// Each call suspends only its own fiber: another fiber runs while it
/// waits, on the kernel or on the pool.
#[test]
fn path_calls_let_other_fibers_run() {
    on_each_backend(|| {
        let dir = TempDir::new("other-fibers");
        fixture(&dir);
        let ticks = Rc::new(Cell::new(0u64));
        let stop = Rc::new(Cell::new(false));
        let ticker = {
            let (ticks, stop) = (Rc::clone(&ticks), Rc::clone(&stop));
            loom::spawn(move || {
                while !stop.get() {
                    ticks.set(ticks.get() + 1);
                    loom::yield_now();
                }
            })
        };
        let r: &Path = &dir;
        let check = |call: &str, f: &dyn Fn() -> io::Result<()>| {
            let before = ticks.get();
            f().unwrap_or_else(|e| panic!("{call}: {e}"));
            assert!(
                ticks.get() > before,
                "{call}: no other fiber ran while it waited"
            );
        };
        check("create_dir", &|| fs::create_dir(r.join("made")));
        check("rename", &|| fs::rename(r.join("made"), r.join("moved")));
        check("remove_dir", &|| fs::remove_dir(r.join("moved")));
        check("hard_link", &|| {
            fs::hard_link(r.join("file"), r.join("hard"))
        });
        check("remove_file", &|| fs::remove_file(r.join("hard")));
        check("symlink", &|| fs::unix::symlink("file", r.join("soft")));
        check("copy", &|| {
            fs::copy(r.join("file"), r.join("copy")).map(drop)
        });
        check("read_dir", &|| fs::read_dir(r).map(drop));
        check("canonicalize", &|| {
            fs::canonicalize(r.join("soft")).map(drop)
        });
        check("exists", &|| fs::exists(r.join("soft")).map(drop));
        check("create_dir_all", &|| fs::create_dir_all(r.join("a/b")));
        check("remove_dir_all", &|| fs::remove_dir_all(r.join("a")));
        check("read_link", &|| fs::read_link(r.join("soft")).map(drop));
        check("set_permissions", &|| {
            fs::set_permissions(r.join("copy"), std::fs::Permissions::from_mode(0o600))
        });
        let copy = OpenOptions::new().write(true).open(r.join("copy")).unwrap();
        check("set_len", &|| copy.set_len(1));
        stop.set(true);
        ticker.join().unwrap();
    });
}
