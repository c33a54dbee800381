//! Maps keyed by what clients send (share ids, addresses, channel and city names): foldhash,
//! seeded at random per process, instead of std's SipHash. Hashing was about a tenth of the
//! ingest pipeline's time; the random seed keeps keys from being chosen to collide.

pub(crate) type RandomState = foldhash::fast::RandomState;
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, RandomState>;
pub(crate) type FastSet<K> = std::collections::HashSet<K, RandomState>;
pub(crate) type FastDashMap<K, V> = dashmap::DashMap<K, V, RandomState>;
