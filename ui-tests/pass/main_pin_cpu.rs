// `pin = <cpu>`: the one loop runs on that CPU (Linux only; the CPU must be
// one this process may use, which only the runtime can check).
mod pinned {
    #[loom::main(pin = 0, fibers = 16)]
    pub fn main() {}
}

fn main() {
    if allowed_cpus().contains(&0) {
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
