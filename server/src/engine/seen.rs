//! The ids of clicks and conversions already counted, to tell a resent event from a new one.
//!
//! An id is unique within its campaign — the campaign of the share the event names — so two
//! campaigns' producers may both number their clicks `c1`, `c2`… An event waiting for a share that
//! has not arrived has no campaign yet: while it waits its id is kept in the scope of waiting
//! events, [`HELD`], and moves to its campaign's when its share arrives.
//!
//! Kept as 64-bit fingerprints (SipHash-1-3 with a fixed key), not as the ids' text: a table slot
//! is 8 bytes and a control byte, so an id costs 10 to 21 bytes however long it is (the text
//! cost ~76). The key is fixed so every node of a cluster, and every restart, decides alike. Two
//! different ids share a fingerprint with probability about n²/2⁶⁵ — 3 in a million after 10
//! million ids — and the later would be taken for a duplicate. Choosing an id that collides with
//! someone else's means finding a 64-bit second preimage: out of reach.

use std::{
    collections::HashSet,
    hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher},
};

#[derive(Debug, Default)]
pub(super) struct SeenIds {
    fingerprints: HashSet<u64, BuildHasherDefault<Fingerprint>>,
}

/// The scope of the ids of events waiting for a share that has not arrived (no campaign id is
/// empty).
pub(super) const HELD: &str = "";

impl SeenIds {
    fn fingerprint(scope: &str, id: &str) -> u64 {
        // `DefaultHasher::new()` is SipHash-1-3 with zero keys: the same on every node.
        let mut hasher = DefaultHasher::new();
        (scope, id).hash(&mut hasher);
        hasher.finish()
    }

    /// Whether `id` was seen in `scope` (a campaign, or [`HELD`]).
    pub(super) fn contains(&self, scope: &str, id: &str) -> bool {
        self.fingerprints.contains(&Self::fingerprint(scope, id))
    }

    /// Notes `id` in `scope`; false if it was there already.
    pub(super) fn insert(&mut self, scope: &str, id: &str) -> bool {
        self.fingerprints.insert(Self::fingerprint(scope, id))
    }

    pub(super) fn remove(&mut self, scope: &str, id: &str) {
        self.fingerprints.remove(&Self::fingerprint(scope, id));
    }
}

/// The table's own hash of a fingerprint: the fingerprint itself, already uniform.
#[derive(Debug, Default)]
struct Fingerprint(u64);

impl Hasher for Fingerprint {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64`s are hashed here (`write_u64`); other input is still mixed in, not dropped.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_told_apart_and_forgotten() {
        let mut seen = SeenIds::default();
        assert!(seen.insert("a", "c1"));
        assert!(!seen.insert("a", "c1"));
        assert!(seen.contains("a", "c1") && !seen.contains("a", "c2"));
        seen.remove("a", "c1");
        assert!(!seen.contains("a", "c1"));
        // The fingerprint is fixed: a restart or another node decides alike.
        assert_eq!(
            SeenIds::fingerprint("a", "c1"),
            SeenIds::fingerprint("a", "c1")
        );
    }

    /// The same id in two campaigns, or waiting, is three ids; the scope and the id are not
    /// run together (`ab`+`c` is not `a`+`bc`).
    #[test]
    fn an_id_is_scoped_by_its_campaign() {
        let mut seen = SeenIds::default();
        assert!(seen.insert("a", "c1"));
        assert!(seen.insert("b", "c1"));
        assert!(seen.insert(HELD, "c1"));
        assert!(!seen.contains("c", "c1"));
        assert!(seen.insert("ab", "c") && seen.insert("a", "bc"));
    }

    /// A million ids, no two taken for one another.
    #[test]
    fn a_million_ids_are_all_new() {
        let mut seen = SeenIds::default();
        assert!((0..1_000_000).all(|i| seen.insert("a", &format!("click-{i}"))));
    }
}
