//! Finding this process's Tracy listener through `/proc`, so a test never
//! connects to the client of another test binary running beside it (a
//! client without `ondemand` serves one viewer in its life).

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// `st` of a listening socket in /proc/net/tcp.
pub const LISTEN: Option<&str> = Some("0A");

/// The address of this process's one listening TCP socket (IPv4), which
/// the Tracy client's worker thread opens soon after a runtime starts it.
/// Panics after `timeout` without one.
pub fn tracy_listener(timeout: Duration) -> SocketAddr {
    let deadline = Instant::now() + timeout;
    loop {
        let listening = sockets_of_this_process("tcp", LISTEN);
        if let Some(&addr) = listening.first() {
            assert_eq!(listening.len(), 1, "one Tracy listener: {listening:?}");
            return addr;
        }
        assert!(Instant::now() < deadline, "Tracy never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The local addresses of this process's sockets in `/proc/net/<table>`
/// (in state `state`, if given), found by the inodes of its descriptors.
pub fn sockets_of_this_process(table: &str, state: Option<&str>) -> Vec<SocketAddr> {
    let inodes: HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let text = std::fs::read_to_string(format!("/proc/net/{table}")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, st, inode) = (fields[1], fields[3], fields[9]);
            if !inodes.contains(inode) || state.is_some_and(|wanted| wanted != st) {
                return None;
            }
            // The address is hex in host byte order, 32 bits at a time.
            let (ip, port) = local.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let words: Vec<u32> = (0..ip.len() / 8)
                .map(|i| u32::from_str_radix(&ip[8 * i..8 * i + 8], 16).unwrap())
                .collect();
            let ip = match words.as_slice() {
                [v4] => Ipv4Addr::from(v4.to_ne_bytes()).into(),
                v6 => {
                    let bytes: Vec<u8> = v6.iter().flat_map(|w| w.to_ne_bytes()).collect();
                    Ipv6Addr::from(<[u8; 16]>::try_from(bytes).unwrap()).into()
                }
            };
            Some(SocketAddr::new(ip, port))
        })
        .collect()
}
