//! Geolocation: IP address → [`Place`], from a MaxMind-format City database.
//!
//! Only this module touches MaxMind. It decodes just the fields an arc needs (city name,
//! country code, coordinates) and caches decoded records by their offset in the database's data
//! section: millions of addresses share a few hundred thousand records, so a record hit costs one
//! walk down the search tree and one hash lookup. In front of it, addresses seen recently map
//! straight to their place: a campaign's visitors come back (and share one address behind a NAT),
//! so most lookups are one hash lookup and no tree walk.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::Deserialize;
use viralglobe_protocol::Place;

use crate::fast_hash::FastDashMap;

/// Where geoipupdate and distribution packages put City databases, in the order we look.
pub(crate) const DEFAULT_LOCATIONS: &[&str] = &[
    "/var/lib/GeoIP/GeoLite2-City.mmdb",
    "/var/lib/GeoIP/GeoIP2-City.mmdb",
    "/var/lib/GeoIP/dbip-city-lite.mmdb",
    "/usr/share/GeoIP/GeoLite2-City.mmdb",
    "/usr/share/GeoIP/GeoIP2-City.mmdb",
    "/usr/share/GeoIP/dbip-city-lite.mmdb",
];

#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("cannot open geo database {path}: {source}")]
    Open {
        path: PathBuf,
        source: maxminddb::MaxMindDbError,
    },
}

/// Why an address has no location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// Private, loopback, link-local, documentation or otherwise not globally routed.
    NotGlobal,
    /// The database has no record, or a record without coordinates.
    NotFound,
    /// No database is loaded.
    NoDatabase,
}

impl Miss {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::NotGlobal => "not_global",
            Self::NotFound => "not_found",
            Self::NoDatabase => "no_database",
        }
    }
}

pub struct GeoDb {
    reader: Option<maxminddb::Reader<Vec<u8>>>,
    description: String,
    /// Decoded records by data-section offset; filled until full, then kept.
    cache: FastDashMap<usize, Option<Arc<Place>>>,
    /// Places by address; emptied when full, so it follows whoever is active now.
    by_address: FastDashMap<IpAddr, Option<Arc<Place>>>,
    cache_capacity: usize,
}

/// The fields we read, in either schema: GeoLite2/GeoIP2/DB-IP City (nested) or ip-location-db's
/// flat repackaging (`city`, `country_code`, `latitude`, `longitude`).
#[derive(Deserialize)]
struct CityRecord<'a> {
    #[serde(default)]
    city: Option<CityName>,
    #[serde(borrow, default)]
    country: Option<Country<'a>>,
    #[serde(default)]
    location: Option<Location>,
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(default)]
    latitude: Option<Coordinate>,
    #[serde(default)]
    longitude: Option<Coordinate>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CityName {
    Nested { names: Names },
    Flat(String),
}

#[derive(Deserialize)]
struct Names {
    #[serde(default)]
    en: Option<String>,
}

#[derive(Deserialize)]
struct Country<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Location {
    latitude: Option<Coordinate>,
    longitude: Option<Coordinate>,
}

/// A latitude or longitude: MaxMind stores doubles, ip-location-db stores single-precision floats,
/// and the MaxMind decoder will not widen one into the other.
struct Coordinate(f64);

impl<'de> Deserialize<'de> for Coordinate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Coordinate;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a float or a double")
            }
            fn visit_f32<E>(self, v: f32) -> Result<Coordinate, E> {
                Ok(Coordinate(f64::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Coordinate, E> {
                Ok(Coordinate(v))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The place a database record describes, if it has coordinates.
pub fn decode_place<S: AsRef<[u8]>>(found: &maxminddb::LookupResult<'_, S>) -> Option<Place> {
    let record = found.decode::<CityRecord<'_>>().ok()??;
    let (lat, lon) = match &record.location {
        Some(Location {
            latitude: Some(lat),
            longitude: Some(lon),
        }) => (lat.0, lon.0),
        _ => (record.latitude?.0, record.longitude?.0),
    };
    let city = match record.city {
        Some(CityName::Nested { names }) => names.en,
        Some(CityName::Flat(name)) => Some(name),
        None => None,
    };
    let country = record
        .country
        .and_then(|c| c.iso_code)
        .or(record.country_code);
    Some(Place {
        lat,
        lon,
        city: city.filter(|c| !c.is_empty()),
        country: country.filter(|c| !c.is_empty()).map(str::to_owned),
    })
}

impl GeoDb {
    /// Opens the database at `path`, or the first one found in [`DEFAULT_LOCATIONS`].
    /// With neither, every address resolves to "no location".
    pub fn open(path: Option<&Path>, cache_capacity: usize) -> Result<Self, GeoError> {
        let found = path.map(Path::to_path_buf).or_else(|| {
            DEFAULT_LOCATIONS
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
        });
        let Some(path) = found else {
            tracing::warn!(
                "no geo database given (--geoip) or found in /var/lib/GeoIP or /usr/share/GeoIP: \
                 events locate only by explicit lat/lon"
            );
            return Ok(Self::without_database());
        };
        let reader = maxminddb::Reader::open_readfile(&path).map_err(|source| GeoError::Open {
            path: path.clone(),
            source,
        })?;
        let meta = reader.metadata();
        let description = format!(
            "{} ({}, built {})",
            path.display(),
            meta.database_type,
            meta.build_epoch
        );
        tracing::info!(database = %description, "geo database loaded");
        Ok(Self {
            reader: Some(reader),
            description,
            cache: FastDashMap::default(),
            by_address: FastDashMap::default(),
            cache_capacity,
        })
    }

    /// A database held in memory (the demo's, embedded in the binary).
    pub(crate) fn from_bytes(
        bytes: Vec<u8>,
        name: &str,
        cache_capacity: usize,
    ) -> Result<Self, GeoError> {
        let reader = maxminddb::Reader::from_source(bytes).map_err(|source| GeoError::Open {
            path: name.into(),
            source,
        })?;
        let description = format!("{name} ({})", reader.metadata().database_type);
        Ok(Self {
            reader: Some(reader),
            description,
            cache: FastDashMap::default(),
            by_address: FastDashMap::default(),
            cache_capacity,
        })
    }

    pub(crate) fn without_database() -> Self {
        Self {
            reader: None,
            description: "none".into(),
            cache: FastDashMap::default(),
            by_address: FastDashMap::default(),
            cache_capacity: 0,
        }
    }

    pub(crate) fn description(&self) -> &str {
        &self.description
    }

    /// The place of `ip`, or why it has none.
    pub fn locate(&self, ip: IpAddr) -> Result<Arc<Place>, Miss> {
        if !is_global(ip) {
            return Err(Miss::NotGlobal);
        }
        if let Some(hit) = self.by_address.get(&ip) {
            return hit.clone().ok_or(Miss::NotFound);
        }
        let place = self.locate_record(ip)?;
        if self.cache_capacity > 0 {
            if self.by_address.len() >= self.cache_capacity {
                self.by_address.clear();
            }
            self.by_address.insert(ip, place.clone());
        }
        place.ok_or(Miss::NotFound)
    }

    /// The place of the record `ip` falls in (`None`: a record without coordinates), through the
    /// record cache.
    fn locate_record(&self, ip: IpAddr) -> Result<Option<Arc<Place>>, Miss> {
        let reader = self.reader.as_ref().ok_or(Miss::NoDatabase)?;
        let found = reader.lookup(ip).map_err(|_| Miss::NotFound)?;
        let offset = found.offset().ok_or(Miss::NotFound)?;
        if let Some(hit) = self.cache.get(&offset) {
            return Ok(hit.clone());
        }
        let place = decode_place(&found).map(Arc::new);
        if self.cache.len() < self.cache_capacity {
            self.cache.insert(offset, place.clone());
        }
        Ok(place)
    }

    /// Decodes without the cache: what a lookup costs on a miss (for benchmarks).
    pub fn locate_uncached(&self, ip: IpAddr) -> Option<Place> {
        decode_place(&self.reader.as_ref()?.lookup(ip).ok()?)
    }
}

/// Whether `ip` is a globally routed unicast address that a geo database can place.
pub(crate) fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_global_v4(v4),
            None => is_global_v6(v6),
        },
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || ip.is_multicast()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b))) // benchmarking
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0)) // discard-only
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_reserved_addresses_are_not_global() {
        for ip in [
            "10.1.2.3",
            "192.168.0.1",
            "127.0.0.1",
            "100.64.0.1",
            "169.254.1.1",
            "0.1.2.3",
        ] {
            assert!(!is_global(ip.parse().expect("ip")), "{ip}");
        }
        for ip in [
            "::1",
            "fe80::1",
            "fd00::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_global(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["8.8.8.8", "2.56.184.10", "2a00:1450::1", "::ffff:8.8.8.8"] {
            assert!(is_global(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn without_a_database_global_addresses_miss_with_a_reason() {
        let geo = GeoDb::without_database();
        assert_eq!(
            geo.locate("8.8.8.8".parse().expect("ip")),
            Err(Miss::NoDatabase)
        );
        assert_eq!(
            geo.locate("10.0.0.1".parse().expect("ip")),
            Err(Miss::NotGlobal)
        );
    }
}
