//! A log entry: one ingest batch, parsed and located by the node that took it, as NDJSON (the
//! event as the producer sent it, and the place it was found at). Every node decodes the same
//! entry into the same batch, so the one rule gives every node the same arcs.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use viralglobe_protocol::{InputEvent, Place};

use crate::engine::Located;

#[derive(Serialize)]
struct LineOut<'a> {
    event: &'a InputEvent,
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<&'a Place>,
}

#[derive(Deserialize)]
struct LineIn<'a> {
    #[serde(borrow)]
    event: &'a RawValue,
    at: Option<Place>,
}

pub(crate) fn encode(batch: &[Located]) -> Vec<u8> {
    let mut out = Vec::with_capacity(batch.len() * 256);
    for located in batch {
        let line = LineOut {
            event: &located.event,
            at: located.place.as_deref(),
        };
        // Serializing our own types to memory cannot fail.
        serde_json::to_writer(&mut out, &line).expect("a located event serializes");
        out.push(b'\n');
    }
    out
}

/// The batch an entry holds. A line that does not decode (an entry written by something else)
/// is skipped and reported by its number, the same on every node.
pub(crate) fn decode(bytes: &[u8]) -> (Vec<Located>, Vec<(usize, String)>) {
    let mut batch = Vec::new();
    let mut bad = Vec::new();
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let decoded = serde_json::from_slice::<LineIn<'_>>(line)
            .map_err(|e| e.to_string())
            .and_then(|l| {
                InputEvent::parse(l.event.get().as_bytes())
                    .map(|event| Located {
                        event,
                        place: l.at.map(Arc::new),
                    })
                    .map_err(|e| match e.field {
                        Some(field) => format!("{field}: {}", e.message),
                        None => e.message,
                    })
            });
        match decoded {
            Ok(located) => batch.push(located),
            Err(error) => bad.push((index + 1, error)),
        }
    }
    (batch, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_comes_back_as_it_went_in() {
        let lines = [
            r#"{"type":"share","id":"s1","campaign":"c","channel":"facebook","sharer":"a","sharer_kind":"cast","reach":120,"ip":"81.2.69.142","ts":"2013-06-01T12:00:00Z"}"#,
            r#"{"type":"click","share":"s1","lat":48.85,"lon":2.35,"city":"Paris","country":"FR","ts":1370088000000}"#,
            r#"{"type":"conversion","id":"v1","share":"s1","goal":"purchase","value_cents":1299,"ts":1370088001000}"#,
        ];
        let batch: Vec<Located> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| Located {
                event: InputEvent::parse(l.as_bytes()).expect("a valid event"),
                place: (i < 2).then(|| {
                    Arc::new(Place {
                        lat: 51.5,
                        lon: -0.1,
                        city: Some("London".into()),
                        country: Some("GB".into()),
                    })
                }),
            })
            .collect();
        let (decoded, bad) = decode(&encode(&batch));
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(decoded.len(), 3);
        for (a, b) in batch.iter().zip(&decoded) {
            assert_eq!(a.event, b.event);
            assert_eq!(a.place, b.place);
        }
    }

    #[test]
    fn a_line_that_is_not_an_event_is_named_and_skipped() {
        let bytes = b"{\"event\":{\"type\":\"click\"}}\nnot json\n";
        let (batch, bad) = decode(bytes);
        assert!(batch.is_empty());
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0].0, 1);
        assert!(bad[0].1.contains(": missing"), "{:?}", bad[0]);
        assert_eq!(bad[1].0, 2);
    }
}
