//! Ports for listeners whose address must be known before they open: a
//! quorum's voter list names every voter's controller port before any
//! voter starts, so a test reserves the ports first (bind, read, release)
//! and the node binds them a moment later.
//!
//! Port 0 is no good for that: the kernel hands out the same ephemeral
//! range to every outgoing connection, and on a busy test machine some
//! client connection takes the released port before the node binds it
//! (CI saw "cannot listen on the controller listener …: Address already in
//! use"). So these ports come from below the ephemeral range
//! (`net.ipv4.ip_local_port_range`), where no connection's local port
//! lands, at a random place so that parallel test processes rarely pick the
//! same one, and each is checked free before it is returned.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};

/// The lowest port handed out: below it are ports services commonly use.
const LOWEST: u16 = 10_000;

/// Attempts at a random base before giving up.
const ATTEMPTS: usize = 200;

/// `count` consecutive ports on 127.0.0.1, free at the time of the call;
/// returns the first.
pub fn reserve_local_ports(count: u16) -> io::Result<u16> {
    let highest = ephemeral_low().saturating_sub(count.max(1));
    if highest <= LOWEST {
        // No room below the ephemeral range: fall back to port 0 (one port).
        if count <= 1 {
            return Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port());
        }
        return Err(io::Error::other(
            "no port range below the ephemeral range to reserve ports from",
        ));
    }
    let span = u64::from(highest - LOWEST);
    for _ in 0..ATTEMPTS {
        let base = LOWEST + u16::try_from(random() % span).expect("span fits in u16");
        let all_free = (0..count).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if all_free {
            return Ok(base);
        }
    }
    Err(io::Error::other(format!(
        "no {count} consecutive free ports found below the ephemeral range"
    )))
}

/// One port on 127.0.0.1, free at the time of the call.
pub fn reserve_local_port() -> io::Result<u16> {
    reserve_local_ports(1)
}

/// The low end of the kernel's ephemeral port range (Linux's default 32768
/// where it cannot be read).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A random number without a `rand` dependency: std's randomly keyed
/// hasher over a per-process counter.
fn random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_are_below_the_ephemeral_range_and_bindable() {
        let base = reserve_local_ports(3).expect("ports");
        assert!(base >= LOWEST);
        assert!(base + 2 < ephemeral_low());
        for i in 0..3 {
            TcpListener::bind(("127.0.0.1", base + i)).expect("still free");
        }
    }
}
