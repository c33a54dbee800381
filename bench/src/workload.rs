//! Deterministic campaign traffic, as NDJSON lines the server ingests: every run measures the
//! same input.

use std::{
    io::Write,
    net::{IpAddr, Ipv4Addr},
    time::{SystemTime, UNIX_EPOCH},
};

/// A small, deterministic generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A realistic address mix: a hot set seen over and over, a long tail, 3% private addresses
/// (which cannot be placed).
pub fn ip_mix(rng: &mut Rng, n: usize) -> Vec<IpAddr> {
    let tail: Vec<u32> = (0..50_000).map(|_| rng.next_u64() as u32).collect();
    (0..n)
        .map(|_| {
            let roll = rng.below(100);
            let ip = if roll < 3 {
                Ipv4Addr::new(10, rng.below(256) as u8, rng.below(256) as u8, 1)
            } else if roll < 80 {
                Ipv4Addr::from(tail[rng.below(2_000) as usize])
            } else {
                Ipv4Addr::from(tail[rng.below(tail.len() as u64) as usize])
            };
            IpAddr::V4(ip)
        })
        .collect()
}

/// Epoch milliseconds now: live events carry the time they were sent, which is how subscribers
/// measure latency.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One campaign's events: its post first, then re-shares (2%), conversions (5%) and clicks on
/// random earlier shares, every event with a unique id.
pub struct CampaignTraffic {
    rng: Rng,
    ips: Vec<IpAddr>,
    campaign: String,
    shares: u64,
    events: u64,
    /// With a bound: no more shares after this many, and clicks and conversions without ids.
    bound: Option<u64>,
}

impl CampaignTraffic {
    pub fn new(campaign: &str, seed: u64) -> Self {
        let mut rng = Rng(seed.max(1));
        let ips = ip_mix(&mut rng, 100_000);
        Self {
            rng,
            ips,
            campaign: campaign.to_owned(),
            shares: 0,
            events: 0,
            bound: None,
        }
    }

    /// Traffic that leaves the server's state bounded: `shares` shares first, then only clicks
    /// and conversions, with no ids to remember.
    pub fn bounded(campaign: &str, seed: u64, shares: u64) -> Self {
        Self {
            bound: Some(shares),
            ..Self::new(campaign, seed)
        }
    }

    /// Appends the next event, stamped `ts`.
    pub fn write_event(&mut self, ts: i64, out: &mut Vec<u8>) {
        let roll = self.rng.below(100);
        let sharing = self.bound.is_none_or(|bound| self.shares < bound);
        let bounded = self.bound.is_some();
        let id = |prefix: char, n: u64, c: &str| match bounded {
            true => String::new(),
            false => format!(r#""id":"{c}{prefix}{n}","#),
        };
        match roll {
            _ if self.shares == 0 => self.write_share(ts, out),
            _ if sharing && bounded => self.write_share(ts, out),
            0..2 if sharing => self.write_share(ts, out),
            2..7 => {
                let (n, ip, share) = self.next_ids();
                let c = &self.campaign;
                let id = id('v', n, c);
                let _ = writeln!(
                    out,
                    r#"{{"type":"conversion",{id}"share":"{c}s{share}","goal":"purchase","value_cents":1499,"ip":"{ip}","ts":{ts}}}"#
                );
            }
            _ => {
                let (n, ip, share) = self.next_ids();
                let c = &self.campaign;
                let id = id('c', n, c);
                let _ = writeln!(
                    out,
                    r#"{{"type":"click",{id}"share":"{c}s{share}","ip":"{ip}","ts":{ts}}}"#
                );
            }
        }
    }

    /// Appends a share: the campaign's post if it is the first, else a re-share of an earlier one.
    pub fn write_share(&mut self, ts: i64, out: &mut Vec<u8>) {
        let (n, ip, parent) = self.next_ids();
        let c = &self.campaign;
        let id = self.shares;
        let _ = if id == 0 {
            writeln!(
                out,
                r#"{{"type":"share","id":"{c}s0","campaign":"{c}","channel":"facebook","sharer":"cast","sharer_kind":"cast","reach":4200000,"ip":"2.56.184.10","ts":{ts}}}"#
            )
        } else {
            writeln!(
                out,
                r#"{{"type":"share","id":"{c}s{id}","parent":"{c}s{parent}","campaign":"{c}","channel":"twitter","sharer":"fan{n}","sharer_kind":"fan","ip":"{ip}","ts":{ts}}}"#
            )
        };
        self.shares += 1;
    }

    /// Appends a click on an existing share, with an id or without.
    pub fn write_click(&mut self, ts: i64, with_id: bool, out: &mut Vec<u8>) {
        let (n, ip, share) = self.next_ids();
        let c = &self.campaign;
        let id = match with_id {
            true => format!(r#""id":"{c}c{n}","#),
            false => String::new(),
        };
        let _ = writeln!(
            out,
            r#"{{"type":"click",{id}"share":"{c}s{share}","ip":"{ip}","ts":{ts}}}"#
        );
    }

    /// A batch of `n` events, the k-th stamped `ts(k)`.
    pub fn batch(&mut self, n: usize, mut ts: impl FnMut(u64) -> i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(n * 150);
        for _ in 0..n {
            let at = ts(self.events);
            self.write_event(at, &mut out);
        }
        out
    }

    /// Event number, a source address and an existing share, for the next event.
    fn next_ids(&mut self) -> (u64, IpAddr, u64) {
        self.events += 1;
        let ip = self.ips[self.rng.below(self.ips.len() as u64) as usize];
        let share = self.rng.below(self.shares.max(1));
        (self.events, ip, share)
    }
}

/// Campaign time for recorded traffic: 20 events a second from the film's launch.
pub fn launch_time(event: u64) -> i64 {
    1_350_406_800_000 + event as i64 * 50
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_campaign_opens_with_its_post_and_every_id_is_new() {
        let mut traffic = CampaignTraffic::new("t", 3);
        let body = traffic.batch(5_000, launch_time);
        let lines: Vec<serde_json::Value> = body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("each line is JSON"))
            .collect();
        assert_eq!(lines.len(), 5_000);
        assert_eq!(lines[0]["id"], "ts0");
        assert!(lines[0].get("parent").is_none());
        let ids: std::collections::HashSet<&str> =
            lines.iter().filter_map(|l| l["id"].as_str()).collect();
        assert_eq!(ids.len(), lines.len());
        let kinds = |k: &str| lines.iter().filter(|l| l["type"] == k).count();
        assert!(kinds("click") > 4_000 && kinds("share") > 50 && kinds("conversion") > 150);
    }
}
