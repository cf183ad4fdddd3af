// `pin_cpus = [..]`: loop i runs on the i-th CPU listed (Linux only; the
// CPUs must be ones this process may use, which only the runtime can check).
mod pinned {
    #[loom::main(threads = 2, pin_cpus = [0, 1], fibers = 16)]
    pub fn main() {
        assert_eq!(loom::rt::loop_count(), 2);
    }
}

fn main() {
    let allowed = allowed_cpus();
    if allowed.contains(&0) && allowed.contains(&1) {
        pinned::main();
    }
}

/// The CPUs this process may run on, from `Cpus_allowed_list: 0-1,4`.
fn allowed_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(list) = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
    else {
        return Vec::new();
    };
    list.trim()
        .split(',')
        .filter_map(|range| {
            let (first, last) = range.split_once('-').unwrap_or((range, range));
            Some(first.parse::<usize>().ok()?..=last.parse::<usize>().ok()?)
        })
        .flatten()
        .collect()
}
