//! CPU time of a local broker process, found by its listening port:
//! /proc/net/tcp{,6} (port → socket inode) → /proc/*/fd (inode → pid) → /proc/<pid>/stat
//! (utime + stime, in clock ticks).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};

/// TCP state LISTEN in /proc/net/tcp.
const TCP_LISTEN: &str = "0A";

/// One listening socket from /proc/net/tcp{,6}.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub addr: IpAddr,
    pub port: u16,
    pub inode: u64,
}

/// Parses the text of /proc/net/tcp or /proc/net/tcp6 into its LISTEN sockets.
/// Addresses are hex in host byte order per 32-bit word (little-endian on x86/arm64).
pub fn parse_proc_net_tcp(text: &str) -> Vec<Listener> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state), Some(inode)) = (cols.get(1), cols.get(3), cols.get(9))
        else {
            continue;
        };
        if *state != TCP_LISTEN {
            continue;
        }
        let Some((ip_hex, port_hex)) = local.split_once(':') else {
            continue;
        };
        let (Ok(port), Ok(inode), Some(addr)) = (
            u16::from_str_radix(port_hex, 16),
            inode.parse::<u64>(),
            parse_hex_ip(ip_hex),
        ) else {
            continue;
        };
        out.push(Listener { addr, port, inode });
    }
    out
}

fn parse_hex_ip(hex: &str) -> Option<IpAddr> {
    let words: Option<Vec<u32>> = (0..hex.len() / 8)
        .map(|i| {
            let w = hex.get(i * 8..i * 8 + 8)?;
            // Each word is printed as the host-order u32 of the network-order bytes.
            u32::from_str_radix(w, 16).ok().map(u32::swap_bytes)
        })
        .collect();
    let words = words?;
    match words.as_slice() {
        [a] if hex.len() == 8 => Some(IpAddr::from(a.to_be_bytes())),
        [a, b, c, d] if hex.len() == 32 => {
            let mut bytes = [0u8; 16];
            for (chunk, w) in bytes.chunks_exact_mut(4).zip([a, b, c, d]) {
                chunk.copy_from_slice(&w.to_be_bytes());
            }
            Some(IpAddr::from(bytes))
        }
        _ => None,
    }
}

/// Does the listener serve `target`? A loopback target matches any local listener on the port
/// (the broker may listen on 0.0.0.0); otherwise the address must match or be unspecified.
pub fn listener_matches(l: &Listener, target: &SocketAddr) -> bool {
    if l.port != target.port() {
        return false;
    }
    let unspecified = l.addr.is_unspecified()
        || matches!(l.addr, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_unspecified()));
    target.ip().is_loopback() || unspecified || l.addr == target.ip()
}

/// The pid of the local process listening on `target`, if any.
pub fn find_listening_pid(target: &SocketAddr) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(
                parse_proc_net_tcp(&text)
                    .into_iter()
                    .filter(|l| listener_matches(l, target))
                    .map(|l| l.inode),
            );
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                if wanted.iter().any(|w| link.as_os_str() == w.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// utime + stime (clock ticks) from the text of /proc/<pid>/stat. The command name may contain
/// spaces and parentheses, so fields are counted after the last ')'.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ')': field 3 (state) is index 0, so utime (field 14) is index 11, stime index 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    utime.checked_add(stime)
}

/// CPU seconds used so far by `pid`.
pub fn process_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_stat_cpu_ticks(&stat)?;
    Some(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// The 1-minute load average (how busy the shared machine was), from /proc/loadavg.
pub fn load_average_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU seconds used so far by this process.
pub fn own_cpu_s() -> Option<f64> {
    process_cpu_s(std::process::id())
}

/// CPU accounting of one broker process over a run.
#[derive(Debug, Clone, Copy)]
pub struct BrokerCpu {
    pub pid: u32,
    start_s: f64,
}

impl BrokerCpu {
    /// Starts accounting for the process listening on `addr` (or `pid` when given).
    pub fn start(addr: &str, pid: Option<u32>) -> Option<Self> {
        let pid = match pid {
            Some(p) => p,
            None => {
                let sa: SocketAddr = addr.parse().ok()?;
                find_listening_pid(&sa)?
            }
        };
        Some(Self {
            pid,
            start_s: process_cpu_s(pid)?,
        })
    }

    /// (pid, CPU seconds since start).
    pub fn finish(&self) -> Option<(u32, f64)> {
        Some((self.pid, (process_cpu_s(self.pid)? - self.start_s).max(0.0)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2A9F 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0
   1: 00000000:2694 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
   2: 0100007F:2A9F 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 20 4 30 10 -1
   3: garbage
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn parses_listeners_and_skips_other_states() {
        let l = parse_proc_net_tcp(TCP);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].addr, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(l[0].port, 10911);
        assert_eq!(l[0].inode, 123456);
        assert_eq!(l[1].port, 9876);
        assert!(l[1].addr.is_unspecified());
        let l6 = parse_proc_net_tcp(TCP6);
        assert_eq!(l6.len(), 1);
        assert_eq!(l6[0].addr, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(l6[0].port, 8080);
    }

    #[test]
    fn matching_rules() {
        let l = parse_proc_net_tcp(TCP);
        let t: SocketAddr = "127.0.0.1:10911".parse().unwrap();
        assert!(listener_matches(&l[0], &t));
        assert!(!listener_matches(&l[1], &t));
        let remote: SocketAddr = "10.1.2.3:9876".parse().unwrap();
        assert!(listener_matches(&l[1], &remote)); // 0.0.0.0 listener
        let remote2: SocketAddr = "10.1.2.3:10911".parse().unwrap();
        assert!(!listener_matches(&l[0], &remote2)); // bound to loopback only
    }

    #[test]
    fn stat_ticks_with_odd_command_names() {
        let stat = "1234 (fer rocket) (x)) S 1 1234 1234 0 -1 4194560 500 0 0 0 150 25 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(175));
        assert_eq!(parse_stat_cpu_ticks("1 (x) S 1 2"), None);
        assert_eq!(parse_stat_cpu_ticks("no paren"), None);
    }

    #[test]
    fn finds_our_own_listener_and_reads_our_cpu() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert_eq!(find_listening_pid(&addr), Some(std::process::id()));
        let cpu = BrokerCpu::start(&addr.to_string(), None).unwrap();
        assert_eq!(cpu.pid, std::process::id());
        assert!(cpu.finish().unwrap().1 >= 0.0);
        assert!(BrokerCpu::start("not an addr", None).is_none());
    }
}
