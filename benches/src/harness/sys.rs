//! Linux plumbing: CPU pinning, CPU time and resident memory read from
//! `/proc`, and the file-descriptor limit.

use std::fs;
use std::io;

/// Pins the calling thread to `cpu`. Threads it creates afterwards inherit
/// the mask, so calling this first thing in `main` pins the whole process.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    pin_current_thread_to(&[cpu])
}

/// Restricts the calling thread (and the threads it creates afterwards) to
/// the CPUs `cpus`; see [`pin_current_thread`].
pub fn pin_current_thread_to(cpus: &[usize]) -> io::Result<()> {
    let names: Vec<String> = cpus.iter().map(usize::to_string).collect();
    let names = names.join(",");
    if cpus.is_empty() || cpus.iter().any(|&cpu| cpu >= libc::CPU_SETSIZE as usize) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {names} is out of range"),
        ));
    }
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set = unsafe { std::mem::zeroed::<libc::cpu_set_t>() };
    // SAFETY: CPU_ZERO/CPU_SET write within `set`; every `cpu` <
    // CPU_SETSIZE was checked above.
    unsafe {
        libc::CPU_ZERO(&mut set);
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the
    // calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("cannot pin to CPU {names}: {e}"),
        ));
    }
    Ok(())
}

/// Number of CPUs online.
pub fn online_cpus() -> usize {
    // SAFETY: sysconf only reads a system parameter.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// The first field of a `schedstat` file: nanoseconds spent on a CPU.
fn schedstat_ns(text: &str) -> io::Result<u64> {
    text.split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed schedstat"))
}

/// Nanoseconds process `pid` has spent on a CPU: the sum over its live
/// threads of `/proc/<pid>/task/<tid>/schedstat`'s first field.
///
/// Threads that have exited are not counted (their time is gone from
/// `task/`), so take both samples of a window while the server's threads
/// are all alive; none of the servers starts or stops threads under
/// steady load.
pub fn process_cpu_ns(pid: u32) -> io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = entry?.path().join("schedstat");
        match fs::read_to_string(&path) {
            Ok(text) => total += schedstat_ns(&text)?,
            // The thread exited between listing and reading.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// Number of threads process `pid` has right now.
pub fn thread_count(pid: u32) -> io::Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/task"))?.count())
}

/// Nanoseconds the calling thread has spent on a CPU.
pub fn thread_cpu_ns() -> io::Result<u64> {
    schedstat_ns(&fs::read_to_string("/proc/thread-self/schedstat")?)
}

/// Nanoseconds CPUs `cpus` have spent busy (not idle, not waiting for
/// I/O) since boot, from `/proc/stat` (10 ms resolution: `USER_HZ` is 100
/// on Linux). Compared with the server's and the client's own CPU time
/// over a window, it shows how much else ran on the benchmark's CPUs.
pub fn cpus_busy_ns(cpus: &[usize]) -> io::Result<u64> {
    const NS_PER_TICK: u64 = 10_000_000;
    let stat = fs::read_to_string("/proc/stat")?;
    let mut ticks = 0;
    for cpu in cpus {
        let label = format!("cpu{cpu}");
        let line = stat
            .lines()
            .find(|l| l.split_whitespace().next() == Some(label.as_str()))
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no {label} in /proc/stat"))
            })?;
        // user nice system idle iowait irq softirq steal guest guest_nice;
        // guest time is already included in user/nice.
        for (i, field) in line.split_whitespace().skip(1).take(8).enumerate() {
            let value: u64 = field
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc/stat"))?;
            if i != 3 && i != 4 {
                ticks += value;
            }
        }
    }
    Ok(ticks * NS_PER_TICK)
}

/// Raises the soft `RLIMIT_NOFILE` of this process to its hard limit (the
/// most an unprivileged process may) and checks that at least `need` file
/// descriptors are allowed. Child processes inherit the raised limit.
///
/// # Errors
///
/// If the hard limit is below `need` (the message says how to raise it),
/// or the limit cannot be read or set.
pub fn raise_nofile(need: u64) -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_max != libc::RLIM_INFINITY && limit.rlim_max < need {
        return Err(io::Error::other(format!(
            "{need} file descriptors are needed but the hard RLIMIT_NOFILE is {}; \
             raise it (e.g. `ulimit -Hn {need}` as root, or LimitNOFILE= / \
             /etc/security/limits.conf) and run again",
            limit.rlim_max
        )));
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a valid rlimit; a soft limit equal to the hard
        // one is always allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

/// Resident memory of process `pid` in KiB: `Rss` from
/// `/proc/<pid>/smaps_rollup`, or `VmRSS` from `/proc/<pid>/status` on
/// kernels without it.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let field = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
    };
    if let Ok(text) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        && let Some(kib) = field(&text, "Rss:")
    {
        return Ok(kib);
    }
    let text = fs::read_to_string(format!("/proc/{pid}/status"))?;
    field(&text, "VmRSS:")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS in status"))
}
