//! Pinning a loop thread to a CPU.

use std::io;

/// The CPUs this process may run on, and a way to put the mask back.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub(crate) struct Pinned {
    previous: libc::cpu_set_t,
}

#[cfg(target_os = "linux")]
fn current_mask() -> io::Result<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    crate::sys::syscall!(sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set))?;
    Ok(set)
}

/// The CPUs in this thread's affinity mask, in ascending order.
#[cfg(target_os = "linux")]
pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
    let mask = current_mask()?;
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET only reads `mask`, within CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &mask) })
        .collect())
}

/// Checks that `cpu` is in this thread's affinity mask.
#[cfg(target_os = "linux")]
pub(crate) fn check_cpu(cpu: usize) -> io::Result<()> {
    let mask = current_mask()?;
    // SAFETY: CPU_ISSET only reads `mask`; out-of-range indices return false.
    if cpu < libc::CPU_SETSIZE as usize && unsafe { libc::CPU_ISSET(cpu, &mask) } {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot pin to CPU {cpu}: it is not in this process's affinity mask"),
        ))
    }
}

/// Pins the calling thread to `cpu` until the returned value is dropped.
#[cfg(target_os = "linux")]
pub(crate) fn pin_current_thread(cpu: usize) -> io::Result<Pinned> {
    check_cpu(cpu)?;
    let previous = current_mask()?;
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET write within it
    // (`cpu` < CPU_SETSIZE was checked above).
    let mut only = unsafe { std::mem::zeroed::<libc::cpu_set_t>() };
    // SAFETY: as above.
    unsafe {
        libc::CPU_ZERO(&mut only);
        libc::CPU_SET(cpu, &mut only);
    }
    crate::sys::syscall!(sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &only))?;
    Ok(Pinned { previous })
}

#[cfg(target_os = "linux")]
impl Drop for Pinned {
    fn drop(&mut self) {
        // SAFETY: restores a mask the kernel reported for this thread.
        unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &self.previous) };
    }
}

#[cfg(not(target_os = "linux"))]
#[derive(Debug)]
pub(crate) struct Pinned;

#[cfg(not(target_os = "linux"))]
pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
    check_cpu(0).map(|()| Vec::new())
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn check_cpu(_cpu: usize) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "pinning loops to CPUs is only supported on Linux",
    ))
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn pin_current_thread(cpu: usize) -> io::Result<Pinned> {
    check_cpu(cpu).map(|()| Pinned)
}
