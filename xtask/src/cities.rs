//! The demo's cities: real places, with real coordinates and a real address block, as found in a
//! City database (we ship cities from DB-IP City Lite), and the small MaxMind-format database
//! built from them.

use std::{
    collections::HashMap,
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr},
    path::Path,
};

use maxminddb_writer::{Database, metadata::IpVersion, paths::IpAddrWithMask};
use serde::Serialize;

/// Cities the audience of an American skateboarding film comes from, with how much of it each
/// brings (relative weights; the US is about half, California the heart of it).
pub const AUDIENCE: &[(&str, &str, f64)] = &[
    ("Los Angeles", "US", 60.0),
    ("San Diego", "US", 22.0),
    ("San Francisco", "US", 16.0),
    ("Huntington Beach", "US", 8.0),
    ("Santa Cruz", "US", 6.0),
    ("San Jose", "US", 7.0),
    ("Oakland", "US", 5.0),
    ("Sacramento", "US", 5.0),
    ("Long Beach", "US", 7.0),
    ("Santa Barbara", "US", 4.0),
    ("New York", "US", 24.0),
    ("Brooklyn", "US", 8.0),
    ("Seattle", "US", 10.0),
    ("Portland", "US", 10.0),
    ("Chicago", "US", 11.0),
    ("Austin", "US", 8.0),
    ("Houston", "US", 7.0),
    ("Dallas", "US", 7.0),
    ("Denver", "US", 9.0),
    ("Phoenix", "US", 8.0),
    ("Las Vegas", "US", 6.0),
    ("Salt Lake City", "US", 5.0),
    ("Atlanta", "US", 6.0),
    ("Miami", "US", 6.0),
    ("Orlando", "US", 4.0),
    ("Tampa", "US", 4.0),
    ("Philadelphia", "US", 7.0),
    ("Boston", "US", 7.0),
    ("Minneapolis", "US", 5.0),
    ("Detroit", "US", 4.0),
    ("Columbus", "US", 4.0),
    ("Nashville", "US", 3.0),
    ("Kansas City", "US", 3.0),
    ("Honolulu", "US", 4.0),
    ("Albuquerque", "US", 2.0),
    ("Richmond", "US", 3.0),
    ("Pittsburgh", "US", 3.0),
    ("Cleveland", "US", 3.0),
    ("Toronto", "CA", 9.0),
    ("Vancouver", "CA", 8.0),
    ("Montreal", "CA", 6.0),
    ("Calgary", "CA", 3.0),
    ("London", "GB", 14.0),
    ("Manchester", "GB", 4.0),
    ("Bristol", "GB", 3.0),
    ("Glasgow", "GB", 2.0),
    ("Sydney", "AU", 9.0),
    ("Melbourne", "AU", 8.0),
    ("Brisbane", "AU", 4.0),
    ("Perth", "AU", 3.0),
    ("Auckland", "NZ", 3.0),
    ("Berlin", "DE", 6.0),
    ("Hamburg", "DE", 3.0),
    ("Munich", "DE", 3.0),
    ("Cologne", "DE", 2.0),
    ("Paris", "FR", 7.0),
    ("Marseille", "FR", 2.0),
    ("Bordeaux", "FR", 2.0),
    ("Barcelona", "ES", 6.0),
    ("Madrid", "ES", 4.0),
    ("Lisbon", "PT", 2.0),
    ("Amsterdam", "NL", 4.0),
    ("Copenhagen", "DK", 3.0),
    ("Stockholm", "SE", 4.0),
    ("Malmo", "SE", 2.0),
    ("Oslo", "NO", 2.0),
    ("Helsinki", "FI", 2.0),
    ("Zurich", "CH", 2.0),
    ("Vienna", "AT", 2.0),
    ("Milan", "IT", 3.0),
    ("Rome", "IT", 2.0),
    ("Prague", "CZ", 2.0),
    ("Warsaw", "PL", 2.0),
    ("Dublin", "IE", 2.0),
    ("Moscow", "RU", 3.0),
    ("Tel Aviv", "IL", 1.0),
    ("Tokyo", "JP", 7.0),
    ("Osaka", "JP", 3.0),
    ("Seoul", "KR", 3.0),
    ("Hong Kong", "HK", 2.0),
    ("Singapore", "SG", 2.0),
    ("Manila", "PH", 1.0),
    ("Jakarta", "ID", 1.0),
    ("Sao Paulo", "BR", 7.0),
    ("Rio de Janeiro", "BR", 4.0),
    ("Florianopolis", "BR", 2.0),
    ("Buenos Aires", "AR", 3.0),
    ("Santiago", "CL", 2.0),
    ("Lima", "PE", 1.0),
    ("Bogota", "CO", 1.0),
    ("Mexico City", "MX", 4.0),
    ("Guadalajara", "MX", 2.0),
    ("Cape Town", "ZA", 2.0),
    ("Johannesburg", "ZA", 1.0),
];

/// One city of the demo: where it is and an address block a geo database places there.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoCity {
    pub name: String,
    pub country: String,
    pub lat: f64,
    pub lon: f64,
    pub network: Ipv4Addr,
    pub prefix: u8,
    pub weight: f64,
}

impl DemoCity {
    /// The `n`-th host of the city's block (wrapping), never the network or broadcast address.
    pub fn host(&self, n: u64) -> Ipv4Addr {
        let size = 1u64 << (32 - u32::from(self.prefix));
        let offset = 1 + n % (size - 2).max(1);
        Ipv4Addr::from(u32::from(self.network) + offset as u32)
    }
}

#[derive(Serialize)]
struct Location {
    latitude: f64,
    longitude: f64,
}

/// ASCII-folds the few accented letters in our city names, so `São Paulo` matches `Sao Paulo`.
fn fold(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ã' | 'ä' => 'a',
            'é' | 'è' | 'ê' => 'e',
            'í' => 'i',
            'ó' | 'ô' | 'ö' | 'õ' => 'o',
            'ú' | 'ü' => 'u',
            'ç' => 'c',
            other => other,
        })
        .collect()
}

/// Finds every [`AUDIENCE`] city in a City database (GeoLite2, DB-IP Lite): the largest IPv4 block (at
/// most a /16, at least a /24) the database places in it, with its coordinates.
pub fn extract(database: &Path) -> anyhow::Result<Vec<DemoCity>> {
    let reader = maxminddb::Reader::open_readfile(database)?;
    let wanted: HashMap<(&str, &str), f64> = AUDIENCE
        .iter()
        .map(|(name, cc, w)| ((*name, *cc), *w))
        .collect();
    let mut best: HashMap<(&str, &str), DemoCity> = HashMap::new();
    for found in reader.within("0.0.0.0/0".parse()?, Default::default())? {
        let found = found?;
        let network = found.network()?;
        let (IpAddr::V4(ip), prefix) = (network.network(), network.prefix()) else {
            continue;
        };
        if !(16..=24).contains(&prefix) {
            continue;
        }
        let Some(place) = viralglobe_server::decode_place(&found) else {
            continue;
        };
        let (Some(name), Some(country)) = (place.city.as_deref(), place.country.as_deref()) else {
            continue;
        };
        let folded = fold(name);
        let Some((key, weight)) = wanted
            .iter()
            .find(|((n, cc), _)| *n == folded && *cc == country)
            .map(|(k, w)| (*k, *w))
        else {
            continue;
        };
        let better = best.get(&key).is_none_or(|b| prefix < b.prefix);
        if better {
            best.insert(
                key,
                DemoCity {
                    name: key.0.to_owned(),
                    country: key.1.to_owned(),
                    lat: place.lat,
                    lon: place.lon,
                    network: ip,
                    prefix,
                    weight,
                },
            );
        }
    }
    let cities: Vec<DemoCity> = AUDIENCE
        .iter()
        .filter_map(|(name, cc, _)| {
            let city = best.remove(&(*name, *cc));
            if city.is_none() {
                tracing::warn!(
                    city = name,
                    country = cc,
                    "not found in the database; skipped"
                );
            }
            city
        })
        .collect();
    Ok(cities)
}

pub const TSV_HEADER: &str = "# city\tcountry\tlatitude\tlongitude\tnetwork\tweight";

pub fn to_tsv(cities: &[DemoCity]) -> String {
    let mut out = format!("{TSV_HEADER}\n");
    for c in cities {
        let _ = writeln!(
            out,
            "{}\t{}\t{:.4}\t{:.4}\t{}/{}\t{}",
            c.name, c.country, c.lat, c.lon, c.network, c.prefix, c.weight
        );
    }
    out
}

pub fn from_tsv(text: &str) -> anyhow::Result<Vec<DemoCity>> {
    let mut cities = Vec::new();
    for (number, line) in (1..).zip(text.lines()) {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let bad = |what: &str| anyhow::anyhow!("cities line {number}: bad {what}: {line}");
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 6 {
            return Err(bad("field count"));
        }
        let (network, prefix) = f[4].split_once('/').ok_or_else(|| bad("network"))?;
        cities.push(DemoCity {
            name: f[0].to_owned(),
            country: f[1].to_owned(),
            lat: f[2].parse().map_err(|_| bad("latitude"))?,
            lon: f[3].parse().map_err(|_| bad("longitude"))?,
            network: network.parse().map_err(|_| bad("network"))?,
            prefix: prefix.parse().map_err(|_| bad("prefix"))?,
            weight: f[5].parse().map_err(|_| bad("weight"))?,
        });
    }
    Ok(cities)
}

#[derive(Serialize)]
struct CityRecord<'a> {
    city: CityNames<'a>,
    country: IsoCode<'a>,
    location: Location,
}

#[derive(Serialize)]
struct CityNames<'a> {
    names: EnglishName<'a>,
}

#[derive(Serialize)]
struct EnglishName<'a> {
    en: &'a str,
}

#[derive(Serialize)]
struct IsoCode<'a> {
    iso_code: &'a str,
}

/// A MaxMind-format City database (the GeoLite2 schema, just the fields we read) that places
/// each city's block in that city. Same cities in, same bytes out.
pub fn build_database(cities: &[DemoCity], build_epoch: u64) -> anyhow::Result<Vec<u8>> {
    let mut db = Database::default();
    db.metadata.ip_version = IpVersion::V4;
    db.metadata.database_type = "ViralGlobe-Demo-City".into();
    db.metadata.languages = vec!["en".into()];
    db.metadata.binary_format_major_version = 2;
    db.metadata.binary_format_minor_version = 0;
    db.metadata.build_epoch = build_epoch;
    for c in cities {
        let record = CityRecord {
            city: CityNames {
                names: EnglishName { en: &c.name },
            },
            country: IsoCode {
                iso_code: &c.country,
            },
            location: Location {
                latitude: c.lat,
                longitude: c.lon,
            },
        };
        let data = db
            .insert_value(&record)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        db.insert_node(IpAddrWithMask::new(IpAddr::V4(c.network), c.prefix), data);
    }
    db.write_to(Vec::new())
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}
