//! Per-minute rate limits for what browsers and producers may make (links, conversions), bounded
//! in memory: one counter per key for the current minute, at most `max_keys` keys.

use std::{
    hash::Hash,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::fast_hash::FastMap;

const WINDOW: Duration = Duration::from_secs(60);

pub(crate) struct RateLimit<K> {
    per_minute: u32,
    max_keys: usize,
    window: Mutex<Window<K>>,
}

struct Window<K> {
    started: Instant,
    counts: FastMap<K, u32>,
}

impl<K: Eq + Hash> RateLimit<K> {
    pub(super) fn new(per_minute: u32, max_keys: usize) -> Self {
        Self {
            per_minute,
            max_keys,
            window: Mutex::new(Window {
                started: Instant::now(),
                counts: FastMap::default(),
            }),
        }
    }

    /// Counts one use by `key`; `Err(retry_after)` when `key` used up this minute, or when the
    /// minute has seen `max_keys` keys already (memory stays bounded whoever asks).
    pub(super) fn take(&self, key: K) -> Result<(), Duration> {
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now.duration_since(window.started) >= WINDOW {
            window.started = now;
            window.counts.clear();
        }
        let retry_after = WINDOW.saturating_sub(now.duration_since(window.started));
        if window.counts.len() >= self.max_keys && !window.counts.contains_key(&key) {
            return Err(retry_after);
        }
        let count = window.counts.entry(key).or_default();
        if *count >= self.per_minute {
            return Err(retry_after);
        }
        *count += 1;
        Ok(())
    }
}

/// The key an address is limited by: IPv6 by its /64 (one subscriber's network), IPv4 as is.
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_quota_and_no_more_and_keys_are_bounded() {
        let limit = RateLimit::new(3, 2);
        for _ in 0..3 {
            limit.take("a").expect("within the quota");
        }
        let retry = limit.take("a").expect_err("over the quota");
        assert!(retry <= WINDOW && retry > Duration::from_secs(50));
        limit.take("b").expect("another key");
        limit
            .take("c")
            .expect_err("a third key while two are counted");
    }

    #[test]
    fn ipv6_addresses_of_one_network_share_a_key() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(
            address_key(mapped),
            "192.0.2.7".parse::<IpAddr>().expect("ip")
        );
    }
}
