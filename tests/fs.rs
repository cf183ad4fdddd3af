//! Files on every backend: round trips, positional I/O, open options,
//! metadata, concurrency and cancellation.

use std::io::{self, IoSlice, IoSliceMut, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use loom::fs::{self, File, OpenOptions};
use loom_tests::{checksum, on_each_backend, pattern};

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
