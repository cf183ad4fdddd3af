//! Counting a running process's syscalls with `strace -c -f -p <pid>`.
//!
//! strace is attached to the server for a window of steady load only (the
//! harness waits for strace's "attached" line before it starts counting
//! messages), and detached with `SIGINT`, on which `strace -c` writes its
//! summary table.

use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// An `strace -c` attached (or attaching) to a process.
#[derive(Debug)]
pub struct Strace {
    child: Child,
    attached: Arc<AtomicBool>,
    stderr: Option<JoinHandle<Vec<String>>>,
    output: PathBuf,
}

/// One row of `strace -c`'s summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallCount {
    /// Syscall name, or `total`.
    pub name: String,
    /// Number of calls.
    pub calls: u64,
}

impl Strace {
    /// Starts `strace -c -f -p <pid> -o <output>`; it attaches in the
    /// background, see [`Strace::attached`].
    ///
    /// # Errors
    ///
    /// If `strace` cannot be started (e.g. not installed:
    /// `apt-get install -y strace`).
    pub fn attach(pid: u32, output: &Path) -> io::Result<Strace> {
        let mut child = Command::new("strace")
            .args(["-c", "-f", "-p", &pid.to_string(), "-o"])
            .arg(output)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run strace: {e}")))?;
        let attached = Arc::new(AtomicBool::new(false));
        let stderr = child.stderr.take().expect("stderr is piped");
        let flag = Arc::clone(&attached);
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("attached") {
                    flag.store(true, Ordering::Release);
                }
                lines.push(line);
            }
            lines
        });
        Ok(Strace {
            child,
            attached,
            stderr: Some(reader),
            output: output.to_owned(),
        })
    }

    /// Whether strace reported that it attached to every thread.
    pub fn attached(&self) -> bool {
        self.attached.load(Ordering::Acquire)
    }

    /// Whether strace has exited (e.g. it failed to attach).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Detaches strace (`SIGINT`) and returns its summary, `total` last.
    ///
    /// # Errors
    ///
    /// If strace fails or its summary cannot be read or parsed; the error
    /// includes what strace wrote on stderr.
    pub fn finish(mut self) -> io::Result<Vec<SyscallCount>> {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits in pid_t");
        // SAFETY: plain kill(2) on our own child, which has not been reaped
        // yet (its `Child` is still alive here), so the pid is not reused.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let status = self.child.wait()?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
            .join("\n");
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        let _ = std::fs::remove_file(&self.output);
        let counts = parse_summary(&text);
        if counts.last().is_none_or(|c| c.name != "total") {
            return Err(io::Error::other(format!(
                "strace ({status}) produced no summary; its stderr:\n{stderr}"
            )));
        }
        Ok(counts)
    }
}

/// Parses the table `strace -c` writes:
///
/// ```text
/// % time     seconds  usecs/call     calls    errors syscall
/// ------ ----------- ----------- --------- --------- ----------------
///  60.00    0.000060           1        48           epoll_wait
/// ...
/// 100.00    0.000100           1        70         2 total
/// ```
///
/// The `errors` column may be empty, so the name is the last field and the
/// call count the fourth.
pub fn parse_summary(text: &str) -> Vec<SyscallCount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 5 || fields[0].parse::<f64>().is_err() {
                return None;
            }
            Some(SyscallCount {
                name: (*fields.last()?).to_owned(),
                calls: fields[3].parse().ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strace_summary() {
        let text = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.00    0.000060           1        48           epoll_wait
 40.00    0.000040           2        20         2 read
------ ----------- ----------- --------- --------- ----------------
100.00    0.000100           1        68         2 total
";
        let counts = parse_summary(text);
        assert_eq!(
            counts,
            vec![
                SyscallCount {
                    name: "epoll_wait".into(),
                    calls: 48
                },
                SyscallCount {
                    name: "read".into(),
                    calls: 20
                },
                SyscallCount {
                    name: "total".into(),
                    calls: 68
                },
            ]
        );
    }
}
