//! Input events: what producers `POST /v1/events`, one JSON object per NDJSON line.
//!
//! ```json
//! {"type":"share","id":"s1","campaign":"bones-brigade","channel":"facebook","sharer":"tonyhawk","sharer_kind":"cast","reach":4200000,"ip":"2.56.184.10","ts":"2012-10-16T17:00:00Z"}
//! {"type":"click","id":"c1","share":"s1","ip":"1.21.128.10","ts":1350406801000}
//! {"type":"conversion","id":"v1","share":"s1","goal":"purchase","value_cents":1499,"ip":"1.42.0.10","ts":1350406806000}
//! ```
//!
//! Parsing is hand-written rather than derived so that every error names its field, unknown
//! fields are ignored (producers may send more than we read), and no line is buffered twice.

use std::{fmt, net::IpAddr};

use serde::{
    Deserialize, Deserializer, Serialize,
    de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor},
};

use crate::Timestamp;

/// Longest accepted id (share, click, conversion, campaign ids).
pub const MAX_ID_LEN: usize = 256;
/// Longest accepted campaign id; campaign ids also name recording files.
pub const MAX_CAMPAIGN_LEN: usize = 64;
/// Longest `city` or `country` a producer may name.
pub const MAX_PLACE_NAME_LEN: usize = 128;

/// One event from a producer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputEvent {
    Share(ShareEvent),
    Click(ClickEvent),
    Conversion(ConversionEvent),
}

/// A share: one link created for one share action by one sharer on one channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShareEvent {
    /// The share's id; clicks and conversions name it in `share`, child shares in `parent`.
    pub id: String,
    pub campaign: String,
    /// `facebook`, `twitter`, `email`, …
    pub channel: String,
    pub sharer: String,
    /// Who the sharer is to the campaign, e.g. `cast` or `fan`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sharer_kind: Option<String>,
    /// Fans or followers of the sharer on this channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reach: Option<u64>,
    /// The share whose link brought this sharer; absent for the campaign's own posts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The tool that created the share link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// A tracked link the server minted for this share (`POST /v1/links`, or a visitor's
    /// browser through `vg.js`): its visits are this share's clicks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<ShareLink>,
    #[serde(flatten)]
    pub origin: Origin,
    pub ts: Timestamp,
}

/// A share's tracked link: `/l/{code}` redirects to `destination` and records a click.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareLink {
    /// Base62, [`LINK_CODE_LEN`] characters: 64 random bits or more, so codes cannot be guessed.
    pub code: String,
    /// Where a visit lands: an http(s) URL of at most [`MAX_DESTINATION_LEN`] bytes.
    pub destination: String,
}

/// Characters of a link code: 62^11 > 2^64, so eleven base62 characters hold 64 random bits.
pub const LINK_CODE_LEN: usize = 11;
/// Longest link destination accepted.
pub const MAX_DESTINATION_LEN: usize = 2048;

/// A link code is exactly [`LINK_CODE_LEN`] base62 characters.
pub fn check_link_code(code: &str) -> Result<(), InputError> {
    if code.len() != LINK_CODE_LEN || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(InputError::field(
            "code",
            format!("must be {LINK_CODE_LEN} letters and digits"),
        ));
    }
    Ok(())
}

/// A destination is an absolute http or https URL with a host, at most
/// [`MAX_DESTINATION_LEN`] bytes, with no spaces or control characters.
pub fn check_destination(url: &str) -> Result<(), InputError> {
    let field = |message: &str| InputError::field("destination", message);
    if url.len() > MAX_DESTINATION_LEN {
        return Err(field(&format!("longer than {MAX_DESTINATION_LEN} bytes")));
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return Err(field("must be an http:// or https:// URL"));
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(field("must not hold spaces or control characters"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(field("must name a host"));
    }
    Ok(())
}

/// A visit through a share's link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClickEvent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub share: String,
    #[serde(flatten)]
    pub origin: Origin,
    pub ts: Timestamp,
}

/// A goal reached by a visitor, credited to the share whose link brought them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConversionEvent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub share: String,
    /// `signup`, `purchase`, …
    pub goal: String,
    pub value_cents: u64,
    /// Reported by a visitor's browser (`vg.js`), which nobody can verify; revenue to trust comes
    /// server to server.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unverified: bool,
    #[serde(flatten)]
    pub origin: Origin,
    pub ts: Timestamp,
}

/// Where an event happened: an IP address to geolocate, or an explicit position.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Origin {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

impl InputEvent {
    /// The producer's event id, used to ignore re-sent events (a share's id is its event id).
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Share(s) => Some(&s.id),
            Self::Click(c) => c.id.as_deref(),
            Self::Conversion(c) => c.id.as_deref(),
        }
    }

    /// The share a click or conversion belongs to (its campaign is that share's).
    pub fn share(&self) -> Option<&str> {
        match self {
            Self::Share(_) => None,
            Self::Click(c) => Some(&c.share),
            Self::Conversion(c) => Some(&c.share),
        }
    }

    pub fn ts(&self) -> Timestamp {
        match self {
            Self::Share(s) => s.ts,
            Self::Click(c) => c.ts,
            Self::Conversion(c) => c.ts,
        }
    }

    pub fn origin(&self) -> &Origin {
        match self {
            Self::Share(s) => &s.origin,
            Self::Click(c) => &c.origin,
            Self::Conversion(c) => &c.origin,
        }
    }

    pub fn origin_mut(&mut self) -> &mut Origin {
        match self {
            Self::Share(s) => &mut s.origin,
            Self::Click(c) => &mut c.origin,
            Self::Conversion(c) => &mut c.origin,
        }
    }

    /// Drops the address once it has placed the event: recordings, the cluster's log and
    /// everything read from them keep the place, never a visitor's address.
    pub fn forget_address(&mut self) {
        self.origin_mut().ip = None;
    }

    /// Parses one NDJSON line (or one element of a JSON array).
    pub fn parse(json: &[u8]) -> Result<Self, InputError> {
        let mut failed_field = None;
        let mut de = serde_json::Deserializer::from_slice(json);
        let seed = EventSeed {
            failed_field: &mut failed_field,
        };
        let parsed = seed
            .deserialize(&mut de)
            .and_then(|event| de.end().map(|()| event));
        parsed.map_err(|e| {
            // serde_json appends "at line L column C"; within one line only the column matters.
            let msg = e.to_string();
            let msg = match msg.rfind(" at line ") {
                Some(i) => format!("{} (column {})", &msg[..i], e.column()),
                None => msg,
            };
            InputError {
                field: failed_field,
                message: bounded(&msg),
            }
        })
    }
}

/// Bytes of a value an error message quotes; the rest is said by its length.
pub const MAX_QUOTED: usize = 120;

/// `message` with every quoted value (`"…"` or `` `…` ``) cut to [`MAX_QUOTED`] bytes and its
/// length: an answer never echoes a whole value back, however large the value sent.
pub fn bounded(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(1024));
    let mut quote: Option<(char, usize)> = None; // the open quote, and bytes inside so far
    let mut escaped = false;
    for c in message.chars() {
        match quote {
            None => {
                if c == '"' || c == '`' {
                    quote = Some((c, 0));
                }
                out.push(c);
            }
            Some((open, inside)) => {
                let closes = c == open && !escaped;
                escaped = !escaped && c == '\\' && open == '"';
                if closes {
                    if inside > MAX_QUOTED {
                        out.push_str(&format!("…{c} ({inside} bytes)"));
                    } else {
                        out.push(c);
                    }
                    quote = None;
                    continue;
                }
                if inside < MAX_QUOTED && inside + c.len_utf8() <= MAX_QUOTED {
                    out.push(c);
                }
                quote = Some((open, inside + c.len_utf8()));
            }
        }
    }
    out
}

/// Why a line was rejected, naming the field when one is to blame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    pub message: String,
}

impl InputError {
    fn field(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            message: message.into(),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "field `{field}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for InputError {}

impl<'de> Deserialize<'de> for InputEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        EventSeed {
            failed_field: &mut None,
        }
        .deserialize(d)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum EventType {
    Share,
    Click,
    Conversion,
}

/// Every field any event type may carry, collected before the type is known (it may come last).
#[derive(Default)]
struct Fields {
    ty: Option<EventType>,
    id: Option<String>,
    campaign: Option<String>,
    channel: Option<String>,
    sharer: Option<String>,
    sharer_kind: Option<String>,
    reach: Option<u64>,
    parent: Option<String>,
    tool: Option<String>,
    link: Option<ShareLink>,
    unverified: Option<bool>,
    share: Option<String>,
    goal: Option<String>,
    value_cents: Option<u64>,
    ts: Option<Timestamp>,
    origin: Origin,
}

struct EventSeed<'a> {
    failed_field: &'a mut Option<&'static str>,
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_> {
    type Value = InputEvent;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<InputEvent, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EventSeed<'_> {
    type Value = InputEvent;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object with a `type` of share, click or conversion")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InputEvent, A::Error> {
        let mut f = Fields::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            macro_rules! take {
                ($name:literal, $slot:expr) => {{
                    *self.failed_field = Some($name);
                    $slot = map.next_value()?;
                    *self.failed_field = None;
                }};
            }
            match key.as_ref() {
                "type" => {
                    *self.failed_field = Some("type");
                    let ty: std::borrow::Cow<'de, str> = map.next_value()?;
                    f.ty = Some(match ty.as_ref() {
                        "share" => EventType::Share,
                        "click" => EventType::Click,
                        "conversion" => EventType::Conversion,
                        other => {
                            return Err(de::Error::custom(format!(
                                "unknown event type `{other}`, expected share, click or conversion"
                            )));
                        }
                    });
                    *self.failed_field = None;
                }
                "id" => take!("id", f.id),
                "campaign" => take!("campaign", f.campaign),
                "channel" => take!("channel", f.channel),
                "sharer" => take!("sharer", f.sharer),
                "sharer_kind" => take!("sharer_kind", f.sharer_kind),
                "reach" => take!("reach", f.reach),
                "parent" => take!("parent", f.parent),
                "tool" => take!("tool", f.tool),
                "link" => take!("link", f.link),
                "unverified" => take!("unverified", f.unverified),
                "share" => take!("share", f.share),
                "goal" => take!("goal", f.goal),
                "value_cents" => take!("value_cents", f.value_cents),
                "ts" => take!("ts", f.ts),
                "ip" => take!("ip", f.origin.ip),
                "lat" => take!("lat", f.origin.lat),
                "lon" => take!("lon", f.origin.lon),
                "city" => take!("city", f.origin.city),
                "country" => take!("country", f.origin.country),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        f.build().map_err(|e| {
            *self.failed_field = e.field;
            de::Error::custom(e.message)
        })
    }
}

fn required<T>(value: Option<T>, field: &'static str, ty: &str) -> Result<T, InputError> {
    value.ok_or_else(|| InputError::field(field, format!("missing, required for a {ty}")))
}

fn check_id(value: &str, field: &'static str) -> Result<(), InputError> {
    if value.is_empty() {
        return Err(InputError::field(field, "must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(InputError::field(
            field,
            format!("longer than {MAX_ID_LEN} bytes"),
        ));
    }
    Ok(())
}

/// Campaign ids name files in the data directory, so they are restricted to a safe alphabet.
pub fn check_campaign_id(value: &str) -> Result<(), InputError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if value.is_empty() || value.len() > MAX_CAMPAIGN_LEN {
        return Err(InputError::field(
            "campaign",
            format!("must be 1 to {MAX_CAMPAIGN_LEN} characters"),
        ));
    }
    if !value.chars().all(ok_char) || value.starts_with('.') {
        return Err(InputError::field(
            "campaign",
            "may hold only letters, digits, '-', '_' and '.', and not start with '.'",
        ));
    }
    Ok(())
}

impl Origin {
    fn check(&self) -> Result<(), InputError> {
        match (self.lat, self.lon) {
            (Some(lat), _) if !(-90.0..=90.0).contains(&lat) => {
                Err(InputError::field("lat", "must be between -90 and 90"))
            }
            (_, Some(lon)) if !(-180.0..=180.0).contains(&lon) => {
                Err(InputError::field("lon", "must be between -180 and 180"))
            }
            (Some(_), None) => Err(InputError::field("lon", "missing, `lat` needs `lon`")),
            (None, Some(_)) => Err(InputError::field("lat", "missing, `lon` needs `lat`")),
            _ => Ok(()),
        }
    }
}

/// Earliest and latest event times accepted: 2000-01-01 and 2100-01-01 (epoch milliseconds). A
/// time outside is a producer's bug (seconds for milliseconds, say), not a campaign.
pub const EARLIEST_TS: i64 = 946_684_800_000;
pub const LATEST_TS: i64 = 4_102_444_800_000;
/// Largest `value_cents` of one conversion ($10 billion) and `reach` of one share (100 billion):
/// above, a value is a mistake, and sums of them must not overflow.
pub const MAX_VALUE_CENTS: u64 = 1_000_000_000_000;
pub const MAX_REACH: u64 = 100_000_000_000;

impl Fields {
    fn build(self) -> Result<InputEvent, InputError> {
        let ty = self.ty.ok_or_else(|| {
            InputError::field("type", "missing, expected share, click or conversion")
        })?;
        let ts = self.ts.ok_or_else(|| InputError::field("ts", "missing"))?;
        if !(EARLIEST_TS..LATEST_TS).contains(&ts.0) {
            return Err(InputError::field(
                "ts",
                format!(
                    "{} is not between 2000-01-01 and 2100-01-01 (epoch milliseconds or RFC 3339)",
                    ts.0
                ),
            ));
        }
        if self.value_cents.is_some_and(|v| v > MAX_VALUE_CENTS) {
            return Err(InputError::field(
                "value_cents",
                format!("at most {MAX_VALUE_CENTS} (ten billion dollars)"),
            ));
        }
        if self.reach.is_some_and(|r| r > MAX_REACH) {
            return Err(InputError::field("reach", format!("at most {MAX_REACH}")));
        }
        self.origin.check()?;
        if let Some(id) = &self.id {
            check_id(id, "id")?;
        }
        for (value, field) in [(&self.sharer_kind, "sharer_kind"), (&self.tool, "tool")] {
            if let Some(value) = value {
                check_id(value, field)?;
            }
        }
        for (value, field) in [
            (&self.origin.city, "city"),
            (&self.origin.country, "country"),
        ] {
            if value.as_ref().is_some_and(|v| v.len() > MAX_PLACE_NAME_LEN) {
                return Err(InputError::field(
                    field,
                    format!("longer than {MAX_PLACE_NAME_LEN} bytes"),
                ));
            }
        }
        Ok(match ty {
            EventType::Share => {
                let id = required(self.id, "id", "share")?;
                let campaign = required(self.campaign, "campaign", "share")?;
                check_campaign_id(&campaign)?;
                let channel = required(self.channel, "channel", "share")?;
                check_id(&channel, "channel")?;
                let sharer = required(self.sharer, "sharer", "share")?;
                check_id(&sharer, "sharer")?;
                if let Some(link) = &self.link {
                    check_link_code(&link.code).map_err(|e| InputError {
                        field: Some("link"),
                        message: format!("`code` {}", e.message),
                    })?;
                    check_destination(&link.destination).map_err(|e| InputError {
                        field: Some("link"),
                        message: format!("`destination` {}", e.message),
                    })?;
                }
                if let Some(parent) = &self.parent {
                    check_id(parent, "parent")?;
                    if *parent == id {
                        return Err(InputError::field(
                            "parent",
                            "a share cannot be its own parent",
                        ));
                    }
                }
                InputEvent::Share(ShareEvent {
                    id,
                    campaign,
                    channel,
                    sharer,
                    sharer_kind: self.sharer_kind,
                    reach: self.reach,
                    parent: self.parent,
                    tool: self.tool,
                    link: self.link,
                    origin: self.origin,
                    ts,
                })
            }
            EventType::Click => {
                let share = required(self.share, "share", "click")?;
                check_id(&share, "share")?;
                InputEvent::Click(ClickEvent {
                    id: self.id,
                    share,
                    origin: self.origin,
                    ts,
                })
            }
            EventType::Conversion => {
                let share = required(self.share, "share", "conversion")?;
                check_id(&share, "share")?;
                let goal = required(self.goal, "goal", "conversion")?;
                check_id(&goal, "goal")?;
                InputEvent::Conversion(ConversionEvent {
                    id: self.id,
                    share,
                    goal,
                    value_cents: self.value_cents.unwrap_or(0),
                    unverified: self.unverified.unwrap_or(false),
                    origin: self.origin,
                    ts,
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> InputError {
        InputEvent::parse(line.as_bytes()).expect_err(line)
    }

    #[test]
    fn parses_the_documented_examples() {
        let share = r#"{"type":"share","id":"s2","parent":"s1","campaign":"bones-brigade","channel":"twitter","sharer":"fan42","sharer_kind":"fan","ip":"2.200.244.10","ts":1350406802000}"#;
        let InputEvent::Share(s) = InputEvent::parse(share.as_bytes()).expect("share") else {
            panic!("not a share")
        };
        assert_eq!(s.parent.as_deref(), Some("s1"));
        assert_eq!(s.ts, Timestamp(1_350_406_802_000));
        let conv = r#"{"ts":"2012-10-16T17:00:06Z","type":"conversion","id":"v1","share":"s2","goal":"purchase","value_cents":1499,"ip":"1.42.0.10"}"#;
        let InputEvent::Conversion(c) = InputEvent::parse(conv.as_bytes()).expect("conv") else {
            panic!("not a conversion")
        };
        assert_eq!((c.value_cents, c.ts), (1499, Timestamp(1_350_406_806_000)));
    }

    #[test]
    fn errors_name_the_field() {
        let e = err(r#"{"type":"click","ip":"1.2.3.4","ts":1350406800000}"#);
        assert_eq!(e.field, Some("share"));
        let e = err(
            r#"{"type":"share","id":"s","campaign":"c","channel":"fb","sharer":"x","reach":"lots","ts":1350406800000}"#,
        );
        assert_eq!(e.field, Some("reach"), "{e}");
        let e = err(r#"{"type":"click","share":"s","ip":"999.1.1.1","ts":1350406800000}"#);
        assert_eq!(e.field, Some("ip"), "{e}");
        let e = err(r#"{"type":"click","share":"s","ts":"last tuesday"}"#);
        assert_eq!(e.field, Some("ts"), "{e}");
        let e = err(r#"{"type":"clack","share":"s","ts":1350406800000}"#);
        assert_eq!(e.field, Some("type"), "{e}");
        let e = err(
            r#"{"type":"share","id":"s","campaign":"../etc","channel":"fb","sharer":"x","ts":1350406800000}"#,
        );
        assert_eq!(e.field, Some("campaign"), "{e}");
        let e = err(
            r#"{"type":"share","id":"s","parent":"s","campaign":"c","channel":"fb","sharer":"x","ts":1350406800000}"#,
        );
        assert_eq!(e.field, Some("parent"), "{e}");
        let e = err(r#"{"type":"click","share":"s","lat":91,"lon":0,"ts":1350406800000}"#);
        assert_eq!(e.field, Some("lat"), "{e}");
    }

    #[test]
    fn an_error_quotes_a_large_value_only_in_part() {
        let huge = "x".repeat(10_000_000);
        let e = err(&format!(
            r#"{{"type":"{huge}","share":"s","ts":1350406800000}}"#
        ));
        assert_eq!(e.field, Some("type"));
        assert!(e.message.len() < 400, "{} bytes", e.message.len());
        assert!(e.message.contains("(10000000 bytes)"), "{}", e.message);
        let e = err(&format!(r#"{{"type":"click","share":"s","ts":"{huge}"}}"#));
        assert_eq!(e.field, Some("ts"));
        assert!(e.message.len() < 400, "{}", e.message);
        let e = err(&format!(
            r#"{{"type":"click","share":"s","value_cents":"{huge}","ts":1}}"#
        ));
        assert!(e.message.len() < 400, "{}", e.message);
        // Short values are quoted whole.
        let e = err(r#"{"type":"clack","share":"s","ts":1350406800000}"#);
        assert!(e.message.contains("`clack`"), "{}", e.message);
    }

    #[test]
    fn syntax_errors_have_no_field_but_a_column() {
        let e = err(r#"{"type":"click","share":"s","#);
        assert_eq!(e.field, None);
        assert!(e.message.contains("column"), "{e}");
        let e = err(r#"{"type":"click","share":"s","ts":1350406800000} trailing"#);
        assert!(e.message.contains("trailing"), "{e}");
    }

    #[test]
    fn links_are_checked_and_kept() {
        let line = r#"{"type":"share","id":"s","campaign":"c","channel":"fb","sharer":"x","link":{"code":"Ab3dE5gH1jK","destination":"https://shop.example/a?b=1#c"},"ts":1350406800000}"#;
        let event = InputEvent::parse(line.as_bytes()).expect("share with a link");
        assert_eq!(serde_json::to_string(&event).expect("json"), line);
        for bad in [
            r#"{"code":"short","destination":"https://a.example"}"#,
            r#"{"code":"Ab3dE5gH1j-","destination":"https://a.example"}"#,
            r#"{"code":"Ab3dE5gH1jK","destination":"javascript:alert(1)"}"#,
            r#"{"code":"Ab3dE5gH1jK","destination":"https:///path"}"#,
            r#"{"code":"Ab3dE5gH1jK","destination":"https://a.example/ b"}"#,
        ] {
            let e = err(&format!(
                r#"{{"type":"share","id":"s","campaign":"c","channel":"fb","sharer":"x","link":{bad},"ts":1350406800000}}"#
            ));
            assert_eq!(e.field, Some("link"), "{bad}: {e}");
        }
        let long = format!("https://a.example/{}", "x".repeat(MAX_DESTINATION_LEN));
        assert!(check_destination(&long).is_err());
        assert!(check_destination("HTTP://A.example").is_ok());
    }

    #[test]
    fn unverified_conversions_say_so() {
        let line = r#"{"type":"conversion","share":"s","goal":"purchase","value_cents":5,"unverified":true,"ts":1350406800000}"#;
        let InputEvent::Conversion(c) = InputEvent::parse(line.as_bytes()).expect("conversion")
        else {
            panic!("not a conversion")
        };
        assert!(c.unverified);
        assert_eq!(
            serde_json::to_string(&InputEvent::Conversion(c)).expect("json"),
            line
        );
    }

    #[test]
    fn serializes_back_to_the_input_shape() {
        let line =
            r#"{"type":"click","id":"c1","share":"s1","ip":"1.21.128.10","ts":1350406801000}"#;
        let event = InputEvent::parse(line.as_bytes()).expect("click");
        assert_eq!(serde_json::to_string(&event).expect("json"), line);
    }
}
