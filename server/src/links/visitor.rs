//! Who is visiting: the address behind trusted proxies, and the visit id that stands in for it.
//!
//! The address places the visit and keys its id, then is dropped: the id is a keyed hash of
//! address, user agent, link and hour, with a salt that changes every day and is then forgotten,
//! so a reload within the hour is the same visit, and no id can be turned back into an address.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, RwLock},
    time::Duration,
};

use actix_web::{HttpRequest, http::header::HeaderMap};
use ipnet::IpNet;
use viralglobe_protocol::Timestamp;

use super::codes;

/// The visitor's address: the connection's, or, from a trusted proxy, the nearest address in
/// `Forwarded` (RFC 7239) or else `X-Forwarded-For` that is not itself a trusted proxy.
pub(crate) fn client_address(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    forwarded_client(peer, req.headers(), trusted)
}

fn forwarded_client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_owned())
            .collect()
    };
    let forwarded: Vec<String> = values("forwarded")
        .iter()
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.eq_ignore_ascii_case("for")
                    .then(|| value.trim().trim_matches('"').to_owned())
            })
        })
        .collect();
    let hops = if forwarded.is_empty() {
        values("x-forwarded-for")
    } else {
        forwarded
    };
    // From the nearest hop outwards: the first that is not one of ours is the visitor.
    let mut client = None;
    for hop in hops.iter().rev() {
        let ip = parse_hop(hop)?;
        client = Some(ip);
        if !is_trusted(&ip) {
            break;
        }
    }
    client.or(Some(peer))
}

/// `203.0.113.7`, `203.0.113.7:4711`, `[2001:db8::1]:4711`, `2001:db8::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = hop.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    hop.strip_prefix('[')?.split(']').next()?.parse().ok()
}

/// The day's salt of visit ids. One node draws its own; in cluster mode every node adopts the one
/// kept in Redis, so a visitor sent to another node by the proxy is still one visit.
pub(crate) struct VisitSalt {
    today: RwLock<(u64, [u8; 32])>,
}

impl VisitSalt {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            today: RwLock::new((u64::MAX, [0; 32])),
        })
    }

    /// The salt of `day` (days since 1970, UTC): drawn at its first use, and the previous day's
    /// forgotten then.
    pub(super) fn key(&self, day: u64) -> [u8; 32] {
        {
            let today = self.today.read().unwrap_or_else(|p| p.into_inner());
            if today.0 == day {
                return today.1;
            }
        }
        let mut today = self.today.write().unwrap_or_else(|p| p.into_inner());
        if today.0 != day {
            *today = (day, codes::random_key());
        }
        today.1
    }

    fn adopt(&self, day: u64, key: [u8; 32]) {
        let mut today = self.today.write().unwrap_or_else(|p| p.into_inner());
        if today.0 <= day {
            *today = (day, key);
        }
    }

    /// Cluster mode: agree on each day's salt through Redis, off the request path (a redirect
    /// never waits on Redis; until the first answer of a day, this node's own salt is used).
    pub(super) fn share_through(self: &Arc<Self>, redis_url: String) {
        let salt = self.clone();
        let spawned = std::thread::Builder::new()
            .name("visit-salt".into())
            .spawn(move || {
                let mut failing = false;
                loop {
                    let day = day_of(Timestamp::now().0);
                    let proposal = to_hex(&salt.key(day));
                    match crate::cluster::shared_visit_salt(&redis_url, day, &proposal) {
                        Ok(agreed) => {
                            if let Some(key) = from_hex(&agreed) {
                                salt.adopt(day, key);
                            }
                            failing = false;
                        }
                        Err(error) => {
                            if !failing {
                                tracing::warn!(%error, "cannot share the visit salt through Redis; \
                                    until it can, this node counts visits by its own");
                            }
                            failing = true;
                        }
                    }
                    std::thread::sleep(Duration::from_secs(if failing { 5 } else { 30 }));
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start sharing the visit salt");
        }
    }
}

pub(crate) fn day_of(ms: i64) -> u64 {
    (ms.max(0) / 86_400_000) as u64
}

/// One visit of one link by one visitor in one hour: `visit-` and 128 bits of a keyed BLAKE3.
pub(crate) fn visit_id(
    salt: &[u8; 32],
    ip: Option<IpAddr>,
    user_agent: &[u8],
    code: &str,
    ms: i64,
) -> String {
    let mut hasher = blake3::Hasher::new_keyed(salt);
    match ip {
        Some(IpAddr::V4(v4)) => hasher.update(&v4.to_ipv6_mapped().octets()),
        Some(IpAddr::V6(v6)) => hasher.update(&v6.octets()),
        None => hasher.update(&[0; 16]),
    };
    hasher.update(&(user_agent.len() as u64).to_le_bytes());
    hasher.update(user_agent);
    hasher.update(code.as_bytes());
    hasher.update(&((ms.max(0) / 3_600_000) as u64).to_le_bytes());
    let mut id = String::with_capacity(6 + 32);
    id.push_str("visit-");
    id.push_str(&to_hex(&hasher.finalize().as_bytes()[..16]));
    id
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        hex.push(char::from(DIGITS[usize::from(b >> 4)]));
        hex.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    hex
}

fn from_hex(text: &str) -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["127.0.0.0/8".parse().expect("net")];
        let spoofed = headers(&[("x-forwarded-for", "8.8.8.8")]);
        // Anyone else's header is ignored: the connection's address is the visitor's.
        assert_eq!(
            forwarded_client(ip("203.0.113.9"), &spoofed, &trusted),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            forwarded_client(ip("127.0.0.1"), &spoofed, &trusted),
            Some(ip("8.8.8.8"))
        );
        // A chain: the nearest untrusted hop wins over what the visitor claimed before it.
        let chain = headers(&[("x-forwarded-for", "1.1.1.1, 81.2.69.160, 127.0.0.2")]);
        assert_eq!(
            forwarded_client(ip("127.0.0.1"), &chain, &trusted),
            Some(ip("81.2.69.160"))
        );
        let rfc = headers(&[(
            "forwarded",
            r#"for="[2001:db8:cafe::17]:4711";proto=https, for=127.0.0.3"#,
        )]);
        assert_eq!(
            forwarded_client(ip("127.0.0.1"), &rfc, &trusted),
            Some(ip("2001:db8:cafe::17"))
        );
        let garbage = headers(&[("x-forwarded-for", "unknown")]);
        assert_eq!(forwarded_client(ip("127.0.0.1"), &garbage, &trusted), None);
        assert_eq!(
            forwarded_client(ip("127.0.0.1"), &headers(&[]), &trusted),
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn a_visit_is_one_per_visitor_link_and_hour_and_salt() {
        let salt = [7u8; 32];
        let at = 1_700_000_000_000;
        let id = visit_id(&salt, Some(ip("81.2.69.160")), b"UA", "AAAAAAAAAAA", at);
        assert_eq!(id.len(), "visit-".len() + 32);
        assert!(!id.contains("81.2.69.160"));
        assert_eq!(
            id,
            visit_id(
                &salt,
                Some(ip("81.2.69.160")),
                b"UA",
                "AAAAAAAAAAA",
                at + 60_000
            )
        );
        for other in [
            visit_id(&salt, Some(ip("81.2.69.161")), b"UA", "AAAAAAAAAAA", at),
            visit_id(&salt, Some(ip("81.2.69.160")), b"UB", "AAAAAAAAAAA", at),
            visit_id(&salt, Some(ip("81.2.69.160")), b"UA", "AAAAAAAAAAB", at),
            visit_id(
                &salt,
                Some(ip("81.2.69.160")),
                b"UA",
                "AAAAAAAAAAA",
                at + 3_600_000,
            ),
            visit_id(&[8; 32], Some(ip("81.2.69.160")), b"UA", "AAAAAAAAAAA", at),
        ] {
            assert_ne!(id, other);
        }
    }

    #[test]
    fn the_salt_is_drawn_once_a_day_and_agreed_salts_are_adopted() {
        let salt = VisitSalt::new();
        let monday = salt.key(20_000);
        assert_eq!(salt.key(20_000), monday);
        let tuesday = salt.key(20_001);
        assert_ne!(tuesday, monday);
        salt.adopt(20_001, [3; 32]);
        assert_eq!(salt.key(20_001), [3; 32]);
        // A late answer about yesterday does not bring yesterday's salt back.
        salt.adopt(20_000, [4; 32]);
        assert_eq!(salt.key(20_001), [3; 32]);
        assert_eq!(from_hex(&to_hex(&[9; 32])), Some([9; 32]));
    }
}
