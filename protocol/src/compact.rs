//! The compact encoding of arcs (`?encoding=compact` on the live feed): arcs in binary websocket
//! messages, every other message as JSON text as usual. JSON stays the default and the reference;
//! this is for clients that want fewer bytes (about 5× fewer at a few dozen arcs a frame).
//!
//! One message holds the arcs of one frame. Strings (campaigns, share ids, channels, cities,
//! goals…) and places are written once per message into tables and referred to by index; numbers
//! are LEB128 varints (signed ones zigzag-encoded). Coordinates keep 6 decimals (about 0.1 m).
//!
//! ```text
//! message = 0x01 first_seq:varint ts_base:zigzag
//!           strings:varint (len:varint utf8)*
//!           places:varint (lat_e6:zigzag lon_e6:zigzag city:opt country:opt)*
//!           arcs:varint arc*
//! arc     = seq_step:varint flags:u8 generation:varint campaign:idx share:idx root:idx channel:idx
//!           [sharer_kind:idx] ts:zigzag [from:idx] to:idx [goal:idx] [value_cents:varint]
//!           [reach:varint]
//! flags   = kind (bits 0-1: 0 share, 1 click, 2 conversion) | 4 from | 8 goal | 16 value_cents
//!           | 32 reach | 64 sharer_kind
//! opt     = 0 for none, else string index + 1; seq_step from the previous arc (the first from
//!           first_seq); ts relative to ts_base; idx a varint index into its table.
//! ```

use std::collections::HashMap;

use crate::{ArcEvent, ArcKind, Place, Timestamp};

/// The first byte of a message of arcs.
pub const ARCS: u8 = 1;

const FROM: u8 = 4;
const GOAL: u8 = 8;
const VALUE: u8 = 16;
const REACH: u8 = 32;
const SHARER_KIND: u8 = 64;

/// A message that does not decode, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("compact message, byte {at}: {problem}")]
pub struct DecodeError {
    pub at: usize,
    pub problem: &'static str,
}

/// The message for `arcs` (in order; at least one).
pub fn encode(arcs: &[&ArcEvent]) -> Vec<u8> {
    let Some(first) = arcs.first() else {
        return Vec::new();
    };
    let mut tables = Tables::default();
    let mut body = Vec::with_capacity(arcs.len() * 24);
    let mut seq = first.seq;
    let ts_base = first.ts.0;
    for arc in arcs {
        varint(&mut body, arc.seq.wrapping_sub(seq));
        seq = arc.seq;
        let kind = match arc.kind {
            ArcKind::Share => 0,
            ArcKind::Click => 1,
            ArcKind::Conversion => 2,
        };
        let flags = kind
            | if arc.from.is_some() { FROM } else { 0 }
            | if arc.goal.is_some() { GOAL } else { 0 }
            | if arc.value_cents.is_some() { VALUE } else { 0 }
            | if arc.reach.is_some() { REACH } else { 0 }
            | if arc.sharer_kind.is_some() {
                SHARER_KIND
            } else {
                0
            };
        body.push(flags);
        varint(&mut body, u64::from(arc.generation));
        for s in [&arc.campaign, &arc.share, &arc.root, &arc.channel] {
            let i = tables.string(s);
            varint(&mut body, i);
        }
        if let Some(kind) = &arc.sharer_kind {
            let i = tables.string(kind);
            varint(&mut body, i);
        }
        zigzag(&mut body, arc.ts.0.wrapping_sub(ts_base));
        if let Some(from) = &arc.from {
            let i = tables.place(from);
            varint(&mut body, i);
        }
        let i = tables.place(&arc.to);
        varint(&mut body, i);
        if let Some(goal) = &arc.goal {
            let i = tables.string(goal);
            varint(&mut body, i);
        }
        if let Some(value) = arc.value_cents {
            varint(&mut body, value);
        }
        if let Some(reach) = arc.reach {
            varint(&mut body, reach);
        }
    }
    let mut out = Vec::with_capacity(body.len() + tables.bytes + 16);
    out.push(ARCS);
    varint(&mut out, first.seq);
    zigzag(&mut out, ts_base);
    varint(&mut out, tables.strings.len() as u64);
    for s in &tables.strings {
        varint(&mut out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
    varint(&mut out, tables.places.len() as u64);
    out.extend_from_slice(&tables.place_bytes);
    varint(&mut out, arcs.len() as u64);
    out.extend_from_slice(&body);
    out
}

/// The arcs of a message made by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Vec<ArcEvent>, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    if r.byte()? != ARCS {
        return Err(r.error("not a message of arcs"));
    }
    let mut seq = r.varint()?;
    let ts_base = r.zigzag()?;
    let strings = (0..r.count()?)
        .map(|_| {
            let len = r.count()?;
            let text = r.take(len)?;
            std::str::from_utf8(text)
                .map(str::to_owned)
                .map_err(|_| r.error("a string that is not UTF-8"))
        })
        .collect::<Result<Vec<String>, _>>()?;
    // Each reads its index, then finds it in its table.
    let string = |r: &mut Reader<'_>| {
        let i = r.varint()?;
        strings
            .get(i as usize)
            .cloned()
            .ok_or_else(|| r.error("a string index past the table"))
    };
    let optional = |r: &mut Reader<'_>| match r.varint()? {
        0 => Ok(None),
        i => strings
            .get(i as usize - 1)
            .cloned()
            .map(Some)
            .ok_or_else(|| r.error("a string index past the table")),
    };
    let mut places = Vec::new();
    for _ in 0..r.count()? {
        let lat = r.zigzag()? as f64 / 1e6;
        let lon = r.zigzag()? as f64 / 1e6;
        let city = optional(&mut r)?;
        let country = optional(&mut r)?;
        places.push(Place {
            lat,
            lon,
            city,
            country,
        });
    }
    let place = |r: &mut Reader<'_>| {
        let i = r.varint()?;
        places
            .get(i as usize)
            .cloned()
            .ok_or_else(|| r.error("a place index past the table"))
    };
    let n = r.count()?;
    let mut arcs = Vec::with_capacity(n);
    for _ in 0..n {
        seq = seq.wrapping_add(r.varint()?);
        let flags = r.byte()?;
        let kind = match flags & 3 {
            0 => ArcKind::Share,
            1 => ArcKind::Click,
            2 => ArcKind::Conversion,
            _ => return Err(r.error("an unknown kind")),
        };
        let generation =
            u32::try_from(r.varint()?).map_err(|_| r.error("a generation past u32"))?;
        let campaign = string(&mut r)?;
        let share = string(&mut r)?;
        let root = string(&mut r)?;
        let channel = string(&mut r)?;
        let sharer_kind = match flags & SHARER_KIND {
            0 => None,
            _ => Some(string(&mut r)?),
        };
        let ts = Timestamp(ts_base.wrapping_add(r.zigzag()?));
        let from = match flags & FROM {
            0 => None,
            _ => Some(place(&mut r)?),
        };
        let to = place(&mut r)?;
        let goal = match flags & GOAL {
            0 => None,
            _ => Some(string(&mut r)?),
        };
        let value_cents = (flags & VALUE != 0).then(|| r.varint()).transpose()?;
        let reach = (flags & REACH != 0).then(|| r.varint()).transpose()?;
        arcs.push(ArcEvent {
            seq,
            kind,
            goal,
            campaign,
            share,
            root,
            generation,
            channel,
            sharer_kind,
            value_cents,
            reach,
            ts,
            from,
            to,
        });
    }
    if r.at != bytes.len() {
        return Err(r.error("bytes after the last arc"));
    }
    Ok(arcs)
}

/// The times of a message's arcs, without building them (for clients that only count and time
/// arcs, such as the benchmark's subscribers).
pub fn times(bytes: &[u8]) -> Result<Vec<Timestamp>, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    if r.byte()? != ARCS {
        return Err(r.error("not a message of arcs"));
    }
    r.varint()?;
    let ts_base = r.zigzag()?;
    for _ in 0..r.count()? {
        let len = r.count()?;
        r.take(len)?;
    }
    for _ in 0..r.count()? {
        for _ in 0..4 {
            r.varint()?;
        }
    }
    let n = r.count()?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        r.varint()?;
        let flags = r.byte()?;
        let indexes = 5 + usize::from(flags & SHARER_KIND != 0);
        for _ in 0..indexes {
            r.varint()?;
        }
        times.push(Timestamp(ts_base.wrapping_add(r.zigzag()?)));
        let rest = 1 + [FROM, GOAL, VALUE, REACH]
            .iter()
            .filter(|&&f| flags & f != 0)
            .count();
        for _ in 0..rest {
            r.varint()?;
        }
    }
    Ok(times)
}

/// A message's tables as they fill: each string and place once.
#[derive(Default)]
struct Tables<'a> {
    strings: Vec<&'a str>,
    string_index: HashMap<&'a str, u64>,
    places: Vec<&'a Place>,
    place_index: HashMap<(u64, u64), Vec<(u64, &'a Place)>>,
    place_bytes: Vec<u8>,
    bytes: usize,
}

impl<'a> Tables<'a> {
    fn string(&mut self, s: &'a str) -> u64 {
        if let Some(&i) = self.string_index.get(s) {
            return i;
        }
        let i = self.strings.len() as u64;
        self.strings.push(s);
        self.string_index.insert(s, i);
        self.bytes += s.len() + 2;
        i
    }

    fn place(&mut self, place: &'a Place) -> u64 {
        let key = (place.lat.to_bits(), place.lon.to_bits());
        if let Some(i) = self
            .place_index
            .get(&key)
            .and_then(|same| same.iter().find(|(_, p)| *p == place))
            .map(|(i, _)| *i)
        {
            return i;
        }
        let city = place.city.as_deref().map_or(0, |c| self.string(c) + 1);
        let country = place.country.as_deref().map_or(0, |c| self.string(c) + 1);
        let i = self.places.len() as u64;
        self.places.push(place);
        self.place_index.entry(key).or_default().push((i, place));
        zigzag(&mut self.place_bytes, (place.lat * 1e6).round() as i64);
        zigzag(&mut self.place_bytes, (place.lon * 1e6).round() as i64);
        varint(&mut self.place_bytes, city);
        varint(&mut self.place_bytes, country);
        i
    }
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn zigzag(out: &mut Vec<u8>, n: i64) {
    varint(out, ((n << 1) ^ (n >> 63)) as u64);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, problem: &'static str) -> DecodeError {
        DecodeError {
            at: self.at,
            problem,
        }
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| self.error("the message ends early"))?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| self.error("the message ends early"))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut n = 0_u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(self.error("a number longer than 64 bits"))
    }

    fn zigzag(&mut self) -> Result<i64, DecodeError> {
        let n = self.varint()?;
        Ok(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    /// A length or count: no more than the bytes left could hold, so a bad one cannot make the
    /// reader allocate without bound.
    fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        if n > (self.bytes.len() - self.at) as u64 {
            return Err(self.error("a count past the message's end"));
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(lat: f64, lon: f64, city: Option<&str>) -> Place {
        Place {
            lat,
            lon,
            city: city.map(str::to_owned),
            country: city.map(|_| "US".to_owned()),
        }
    }

    fn arcs() -> Vec<ArcEvent> {
        let la = place(34.0549, -118.243, Some("Los Angeles"));
        let post = ArcEvent {
            seq: 41,
            kind: ArcKind::Share,
            goal: None,
            campaign: "bones-brigade".into(),
            share: "s1".into(),
            root: "s1".into(),
            generation: 0,
            channel: "facebook".into(),
            sharer_kind: Some("cast".into()),
            value_cents: None,
            reach: Some(4_200_000),
            ts: Timestamp(1_350_406_800_000),
            from: None,
            to: la.clone(),
        };
        let click = |seq, to: Place| ArcEvent {
            seq,
            kind: ArcKind::Click,
            sharer_kind: None,
            reach: None,
            generation: 0,
            ts: Timestamp(1_350_406_800_000 - 5 + seq as i64),
            from: Some(la.clone()),
            to,
            ..post.clone()
        };
        let sale = ArcEvent {
            seq: 47,
            kind: ArcKind::Conversion,
            goal: Some("purchase".into()),
            value_cents: Some(1_999),
            reach: None,
            generation: 3,
            from: Some(place(-33.8688, 151.2093, Some("Sydney"))),
            ..post.clone()
        };
        vec![
            post.clone(),
            click(42, place(35.6895, 139.6917, Some("Tokyo"))),
            click(45, place(-0.000_001, 0.0, None)),
            sale,
        ]
    }

    #[test]
    fn arcs_come_back_as_they_went() {
        let arcs = arcs();
        let bytes = encode(&arcs.iter().collect::<Vec<_>>());
        assert_eq!(decode(&bytes).expect("decodes"), arcs);
        let sent: Vec<Timestamp> = arcs.iter().map(|a| a.ts).collect();
        assert_eq!(times(&bytes).expect("times"), sent);
        let json: usize = arcs
            .iter()
            .map(|a| serde_json::to_string(a).expect("JSON").len())
            .sum();
        assert!(bytes.len() * 2 < json, "{} against {json}", bytes.len());
    }

    #[test]
    fn a_bad_message_is_an_error_not_a_panic() {
        let bytes = encode(&arcs().iter().collect::<Vec<_>>());
        for end in 0..bytes.len() {
            assert!(decode(&bytes[..end]).is_err(), "cut at {end}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert_eq!(
            decode(&extra).expect_err("refused").problem,
            "bytes after the last arc"
        );
        assert_eq!(
            decode(&[2]).expect_err("refused").problem,
            "not a message of arcs"
        );
        // A huge count is refused before anything is allocated for it.
        assert!(decode(&[1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }
}
