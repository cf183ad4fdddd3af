//! `loom::io::{stdin, stdout, stderr}` in a child process
//! (`loom-stdio-child`) whose fds 0 and 1 are pipes, regular files or a
//! terminal, under every backend this host has: reads park only the
//! reading fiber (a ticker fiber keeps its 5 ms beat while the test feeds
//! lines slowly), output arrives whole and in order, a closed reader is a
//! `BrokenPipe` error, and the open file descriptions the child shares
//! with the test keep their flags (`O_NONBLOCK` above all).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use loom_tests::say;

const CHILD: &str = env!("CARGO_BIN_EXE_loom-stdio-child");
/// The most any step may take before the test gives up.
const LIMIT: Duration = Duration::from_secs(30);

/// The backends to run the child under: io_uring (where this host allows
/// it) and the native readiness backend.
fn backends() -> Vec<&'static str> {
    let available = loom::rt::Backend::available();
    if !available.contains(&loom::rt::Backend::IoUring) {
        say(format_args!("stdio: io_uring unavailable here; epoll only"));
    }
    available
        .into_iter()
        .map(|backend| backend.name())
        .collect()
}

/// A running child, killed if the test fails before it is waited for.
struct Running {
    child: Child,
    stderr: mpsc::Receiver<String>,
}

impl Running {
    fn start(scenario: &str, backend: &str, stdin: Stdio, stdout: Stdio) -> Running {
        let mut child = Command::new(CHILD)
            .arg(scenario)
            .env("LOOM_BACKEND", backend)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn loom-stdio-child");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            let _ = tx.send(text);
        });
        Running { child, stderr: rx }
    }

    /// Waits (bounded) for the child to exit: its status and stderr.
    fn finish(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "the child did not exit in time");
            thread::sleep(Duration::from_millis(5));
        };
        let stderr = self
            .stderr
            .recv_timeout(LIMIT)
            .expect("the child's stderr closes");
        (status, stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The lines of `source`, read on a thread of their own so that waiting
/// for one is bounded ([`next`]); `\r` (a terminal's) dropped.
fn lines(source: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(source).lines() {
            let Ok(line) = line else { return };
            if tx.send(line.replace('\r', "")).is_err() {
                return;
            }
        }
    });
    rx
}

fn next(lines: &mpsc::Receiver<String>, what: &str) -> String {
    lines
        .recv_timeout(LIMIT)
        .unwrap_or_else(|e| panic!("{what}: no line in time: {e}"))
}

/// Every line until the writer closes (bounded).
fn all(lines: &mpsc::Receiver<String>) -> Vec<String> {
    let deadline = Instant::now() + LIMIT;
    let mut all = Vec::new();
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => all.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => return all,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("output did not end in time"),
        }
    }
}

/// The value of `key=` in the child's report.
fn field<'a>(report: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    report
        .split_whitespace()
        .find_map(|word| word.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {key}= in the child's report: {report}"))
}

fn number(report: &str, key: &str) -> u64 {
    field(report, key)
        .parse()
        .unwrap_or_else(|e| panic!("{key}= is not a number ({e}): {report}"))
}

fn flags(fd: &impl AsRawFd) -> i32 {
    // SAFETY: F_GETFL only reads the flags of an open fd.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0, "F_GETFL: {}", std::io::Error::last_os_error());
    flags
}

fn set_nonblocking(fd: &impl AsRawFd, on: bool) {
    let old = flags(fd);
    let new = if on {
        old | libc::O_NONBLOCK
    } else {
        old & !libc::O_NONBLOCK
    };
    // SAFETY: F_SETFL on an open fd, with flags it just reported.
    let set = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, new) };
    assert_eq!(set, 0, "F_SETFL: {}", std::io::Error::last_os_error());
}

fn scratch_file(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("loom-stdio-{}-{name}", std::process::id()))
}

/// The child reads 20 lines fed 20 ms apart, with a 250 ms pause halfway,
/// from a pipe, and echoes them; its ticker must keep its beat throughout
/// (a read blocking the loop would make a tick at least 250 ms late), and
/// the pipes' descriptions — the test sets `O_NONBLOCK` on them in one
/// round, as a parent using non-blocking I/O would — keep their flags.
#[test]
fn slow_pipe_input_parks_only_the_reading_fiber() {
    for backend in backends() {
        for nonblocking in [false, true] {
            let what = format!("{backend}, parent's pipes non-blocking: {nonblocking}");
            let (child_in, mut feed) = std::io::pipe().unwrap();
            let (echoed, child_out) = std::io::pipe().unwrap();
            let watch_in = child_in.try_clone().unwrap();
            let watch_out = child_out.try_clone().unwrap();
            set_nonblocking(&watch_in, nonblocking);
            set_nonblocking(&watch_out, nonblocking);
            let (in_before, out_before) = (flags(&watch_in), flags(&watch_out));

            let child = Running::start("echo", backend, child_in.into(), child_out.into());
            let echoed = lines(echoed);
            let feeder = thread::spawn(move || {
                for i in 0..20 {
                    writeln!(feed, "line {i} of the slow feed").unwrap();
                    let pause = if i == 9 { 250 } else { 20 };
                    thread::sleep(Duration::from_millis(pause));
                }
            });
            for i in 0..20 {
                assert_eq!(
                    next(&echoed, &what),
                    format!("line {i} of the slow feed"),
                    "{what}"
                );
            }
            feeder.join().unwrap();
            let (status, report) = child.finish();
            assert!(status.success(), "{what}: {status}: {report}");
            assert_eq!(field(&report, "backend"), backend, "{report}");
            assert_eq!(number(&report, "lines"), 20, "{what}: {report}");
            // The feed lasts about 630 ms: 126 ticks if none is late.
            assert!(number(&report, "ticks") >= 40, "{what}: {report}");
            assert!(number(&report, "worst_ms") < 100, "{what}: {report}");
            assert_eq!(flags(&watch_in), in_before, "{what}: stdin's flags");
            assert_eq!(flags(&watch_out), out_before, "{what}: stdout's flags");
        }
    }
}

/// stdin from a regular file: read at the file position the child shares
/// with the test, which ends at the end of the file, flags unchanged.
#[test]
fn stdin_from_a_regular_file() {
    let path = scratch_file("stdin");
    let expected: Vec<String> = (0..500)
        .map(|i| format!("{i} {}", "x".repeat(i % 97)))
        .collect();
    std::fs::write(&path, expected.join("\n") + "\n").unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    for backend in backends() {
        let file = File::open(&path).unwrap();
        let watch = file.try_clone().unwrap();
        let before = flags(&watch);
        let (echoed, child_out) = std::io::pipe().unwrap();
        let child = Running::start("echo", backend, file.into(), child_out.into());
        let echoed = lines(echoed);
        assert_eq!(all(&echoed), expected, "{backend}");
        let (status, report) = child.finish();
        assert!(status.success(), "{backend}: {status}: {report}");
        assert_eq!(number(&report, "lines"), 500, "{backend}: {report}");
        assert_eq!(flags(&watch), before, "{backend}: the file's flags");
        // SAFETY: lseek with SEEK_CUR only reads the position of an open fd.
        let position = unsafe { libc::lseek(watch.as_raw_fd(), 0, libc::SEEK_CUR) };
        assert_eq!(position as u64, len, "{backend}: the shared file position");
    }
    std::fs::remove_file(&path).unwrap();
}

/// stdout to a regular file, alternating with std's `println!`: each
/// reaches the shared file position in program order.
#[test]
fn stdout_to_a_regular_file_interleaves_with_println_by_line() {
    let expected: Vec<String> = (0..20)
        .flat_map(|i| [format!("std {i}"), format!("loom {i}")])
        .collect();
    for backend in backends() {
        let path = scratch_file(&format!("stdout-{backend}"));
        let file = File::create(&path).unwrap();
        let watch = file.try_clone().unwrap();
        let before = flags(&watch);
        let child = Running::start("mixed", backend, Stdio::null(), file.into());
        let (status, report) = child.finish();
        assert!(status.success(), "{backend}: {status}: {report}");
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written.lines().collect::<Vec<_>>(), expected, "{backend}");
        assert_eq!(flags(&watch), before, "{backend}: the file's flags");
        std::fs::remove_file(&path).unwrap();
    }
}

/// A stdout pipe whose reader has gone is a `BrokenPipe` error, not a
/// crash — both when the reader closes while the child writes and when it
/// was gone before the child started.
#[test]
fn stdout_to_a_closed_pipe_is_broken_pipe() {
    for backend in backends() {
        for closed_first in [false, true] {
            let what = format!("{backend}, reader closed before start: {closed_first}");
            let (reader, child_out) = std::io::pipe().unwrap();
            let reader = if closed_first {
                drop(reader);
                None
            } else {
                Some(reader)
            };
            let child = Running::start("broken-pipe", backend, Stdio::null(), child_out.into());
            if let Some(reader) = reader {
                let mut first = String::new();
                BufReader::new(reader).read_line(&mut first).unwrap();
                assert_eq!(first, "line\n", "{what}");
            }
            let (status, report) = child.finish();
            assert!(status.success(), "{what}: {status}: {report}");
            assert_eq!(field(&report, "write_error"), "BrokenPipe", "{what}");
        }
    }
}

/// Cancelling a fiber that waits for input ends its read at once, and
/// stdin keeps working for the next reader.
#[test]
fn a_read_waiting_for_input_is_cancelled_promptly() {
    for backend in backends() {
        let (child_in, mut feed) = std::io::pipe().unwrap();
        let (echoed, child_out) = std::io::pipe().unwrap();
        let child = Running::start("cancel", backend, child_in.into(), child_out.into());
        let echoed = lines(echoed);
        assert_eq!(next(&echoed, backend), "ready", "{backend}");
        feed.write_all(b"after the cancel\n").unwrap();
        assert_eq!(next(&echoed, backend), "got after the cancel", "{backend}");
        drop(feed);
        let (status, report) = child.finish();
        assert!(status.success(), "{backend}: {status}: {report}");
        assert_eq!(field(&report, "cancelled"), "true", "{backend}: {report}");
        assert!(number(&report, "took_ms") < 100, "{backend}: {report}");
    }
}

/// Two fibers reading lines at once get whole lines, each exactly once.
#[test]
fn concurrent_readers_get_whole_lines() {
    for backend in backends() {
        let (child_in, mut feed) = std::io::pipe().unwrap();
        let (echoed, child_out) = std::io::pipe().unwrap();
        let child = Running::start("two-readers", backend, child_in.into(), child_out.into());
        let echoed = lines(echoed);
        let feeder = thread::spawn(move || {
            for chunk in 0..20 {
                let text: String = (0..10)
                    .map(|i| format!("input {}\n", chunk * 10 + i))
                    .collect();
                feed.write_all(text.as_bytes()).unwrap();
                thread::sleep(Duration::from_millis(2));
            }
        });
        let mut seen: Vec<String> = all(&echoed)
            .into_iter()
            .map(|line| {
                let (tag, rest) = line.split_once(' ').expect("a tagged line");
                assert!(tag == "a" || tag == "b", "{backend}: {line}");
                rest.to_owned()
            })
            .collect();
        feeder.join().unwrap();
        let (status, report) = child.finish();
        assert!(status.success(), "{backend}: {status}: {report}");
        seen.sort_by_key(|line| line[6..].parse::<u32>().expect("a numbered line"));
        let expected: Vec<String> = (0..200).map(|i| format!("input {i}")).collect();
        assert_eq!(seen, expected, "{backend}");
        assert!(
            number(&report, "a") > 0 && number(&report, "b") > 0,
            "{report}"
        );
    }
}

/// stdin read outside a runtime (blocking the thread, as std's), then in
/// three runtimes one after another on the same thread: each loop sets up
/// its own way to wait, and the buffer carries over.
#[test]
fn stdin_outside_and_across_runtimes() {
    for backend in backends() {
        let (child_in, mut feed) = std::io::pipe().unwrap();
        let (echoed, child_out) = std::io::pipe().unwrap();
        let child = Running::start("runtimes", backend, child_in.into(), child_out.into());
        let echoed = lines(echoed);
        for (i, tag) in ["outside", "first", "second", "third"].iter().enumerate() {
            writeln!(feed, "line {i}").unwrap();
            assert_eq!(
                next(&echoed, backend),
                format!("{tag} line {i}"),
                "{backend}"
            );
            thread::sleep(Duration::from_millis(20));
        }
        let (status, report) = child.finish();
        assert!(status.success(), "{backend}: {status}: {report}");
    }
}

/// A pseudo-terminal as stdin and stdout, like an interactive shell's: the
/// child echoes lines fed slowly while its ticker keeps time, end of input
/// is the terminal's ^D, and the terminal's description — blocking, or
/// made non-blocking by the test — keeps its flags.
#[test]
fn a_terminal_as_stdin_and_stdout() {
    for backend in backends() {
        for nonblocking in [false, true] {
            let what = format!("{backend}, terminal non-blocking: {nonblocking}");
            let (master, terminal) = open_pty();
            set_nonblocking(&terminal, nonblocking);
            let before = flags(&terminal);
            let child = Running::start(
                "echo",
                backend,
                terminal.try_clone().unwrap().into(),
                terminal.try_clone().unwrap().into(),
            );
            let echoed = lines(File::from(master.try_clone().unwrap()));
            let mut keyboard = File::from(master);
            for i in 0..10 {
                writeln!(keyboard, "typed line {i}").unwrap();
                assert_eq!(next(&echoed, &what), format!("typed line {i}"), "{what}");
                thread::sleep(Duration::from_millis(20));
            }
            keyboard.write_all(b"\x04").unwrap();
            let (status, report) = child.finish();
            assert!(status.success(), "{what}: {status}: {report}");
            assert_eq!(number(&report, "lines"), 10, "{what}: {report}");
            assert!(number(&report, "worst_ms") < 100, "{what}: {report}");
            assert_eq!(flags(&terminal), before, "{what}: the terminal's flags");
        }
    }
}

/// A socket as stdin and stdout (inetd style): lines fed slowly come back
/// while the ticker keeps time, and the socket's description — blocking,
/// or made non-blocking by the test — keeps its flags.
#[test]
fn a_socket_as_stdin_and_stdout() {
    for backend in backends() {
        for nonblocking in [false, true] {
            let what = format!("{backend}, socket non-blocking: {nonblocking}");
            let (mine, theirs) = UnixStream::pair().unwrap();
            set_nonblocking(&theirs, nonblocking);
            let before = flags(&theirs);
            let child = Running::start(
                "echo",
                backend,
                OwnedFd::from(theirs.try_clone().unwrap()).into(),
                OwnedFd::from(theirs.try_clone().unwrap()).into(),
            );
            let echoed = lines(mine.try_clone().unwrap());
            let mut feed = &mine;
            for i in 0..10 {
                writeln!(feed, "socket line {i}").unwrap();
                assert_eq!(next(&echoed, &what), format!("socket line {i}"), "{what}");
                thread::sleep(Duration::from_millis(20));
            }
            mine.shutdown(Shutdown::Write).unwrap();
            let (status, report) = child.finish();
            assert!(status.success(), "{what}: {status}: {report}");
            assert_eq!(number(&report, "lines"), 10, "{what}: {report}");
            assert!(number(&report, "worst_ms") < 100, "{what}: {report}");
            assert_eq!(flags(&theirs), before, "{what}: the socket's flags");
        }
    }
}

/// stdin that is non-blocking and cannot be reopened (an eventfd made
/// with `EFD_NONBLOCK`, whose 8-byte counter the test fills with a line):
/// on epoll the blocking pool's read says `EAGAIN`, and the fiber then
/// waits for readiness on a duplicate; io_uring waits in the kernel. The
/// flags stay as they were.
#[cfg(target_os = "linux")]
#[test]
fn non_blocking_stdin_that_cannot_be_reopened() {
    for backend in backends() {
        // SAFETY: eventfd has no memory-safety preconditions.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        assert!(raw >= 0, "eventfd: {}", std::io::Error::last_os_error());
        // SAFETY: eventfd just returned it, and nothing else owns it.
        let event = unsafe { OwnedFd::from_raw_fd(raw) };
        let before = flags(&event);
        let (echoed, child_out) = std::io::pipe().unwrap();
        let child = Running::start(
            "one-line",
            backend,
            event.try_clone().unwrap().into(),
            child_out.into(),
        );
        let echoed = lines(echoed);
        // Long enough for the child to find nothing there and wait.
        thread::sleep(Duration::from_millis(100));
        File::from(event.try_clone().unwrap())
            .write_all(b"event!!\n")
            .unwrap();
        assert_eq!(next(&echoed, backend), "event!!", "{backend}");
        let (status, report) = child.finish();
        assert!(status.success(), "{backend}: {status}: {report}");
        assert_eq!(flags(&event), before, "{backend}: the eventfd's flags");
    }
}

/// A pseudo-terminal pair (master, slave) in canonical mode without echo,
/// so what the child writes is all the master reads.
fn open_pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes the two fds; the name, termios and window
    // size arguments may be null.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty just opened both, and nothing else owns them.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    // SAFETY: all-zero bytes are a valid termios (plain integers), which
    // tcgetattr then fills in.
    let mut termios: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and a writable termios.
    let got = unsafe { libc::tcgetattr(slave.as_raw_fd(), &mut termios) };
    assert_eq!(got, 0, "tcgetattr: {}", std::io::Error::last_os_error());
    termios.c_lflag &= !(libc::ECHO | libc::ECHOE | libc::ECHOK | libc::ECHONL);
    // SAFETY: a valid fd and the termios tcgetattr filled in.
    let set = unsafe { libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &termios) };
    assert_eq!(set, 0, "tcsetattr: {}", std::io::Error::last_os_error());
    (master, slave)
}

#[test]
fn the_output_locks_are_re_entrant_like_std() {
    loom_tests::on_each_backend(|| {
        let mut outer = loom::io::stderr().lock();
        // A second lock, and a write through another handle, by the same
        // fiber: std's stdout/stderr locks allow it, and so must loom's
        // (a deadlock would be cancelled by the loop, failing the writes).
        let mut inner = loom::io::stderr().lock();
        inner.write_all(b"").unwrap();
        write!(loom::io::stderr(), "").unwrap();
        drop(inner);
        outer.write_all(b"").unwrap();
        // Another fiber waits for the outer lock, then gets it.
        let other = loom::spawn(|| loom::io::stderr().lock().write_all(b"").is_ok());
        loom::yield_now();
        assert!(!other.is_finished());
        drop(outer);
        assert!(other.join().unwrap());
    });
}
