//! What the fuzz targets in `fuzz/` check on arbitrary bytes. The committed corpus runs through
//! the same checks in the ordinary tests, so whatever the fuzzer once found stays found.

use crate::{InputEvent, ReplayControl, compact, replay::check_speed};

/// An NDJSON line from a producer: parsing never panics, a failure says what is wrong, and an
/// event that parses comes back the same from its own JSON.
pub fn event_line(data: &[u8]) {
    match InputEvent::parse(data) {
        Ok(event) => {
            let json = serde_json::to_vec(&event).expect("a parsed event serializes");
            let again = InputEvent::parse(&json)
                .unwrap_or_else(|e| panic!("its own JSON does not parse: {e:?}"));
            assert_eq!(again, event, "its own JSON parses differently");
        }
        Err(error) => assert!(!error.message.is_empty(), "an error without a message"),
    }
}

/// A replay client's control message: parsing never panics, a speed that passes is one the
/// server plays at, and a message that parses comes back the same from its own JSON.
pub fn replay_control(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ReplayControl::parse(text) {
        Ok(control) => {
            if let ReplayControl::Speed { speed } = control {
                assert!(check_speed(speed).is_ok(), "speed {speed} passed");
            }
            let json = serde_json::to_string(&control).expect("a control serializes");
            assert_eq!(ReplayControl::parse(&json), Ok(control));
        }
        Err(message) => assert!(!message.is_empty()),
    }
}

/// A binary message of compact arcs, as a client receives it: decoding never panics (a bad one is
/// an error naming the byte), the times read without decoding agree, and arcs that decode come
/// back the same from their own encoding.
pub fn compact_arcs(data: &[u8]) {
    match compact::decode(data) {
        Ok(arcs) => {
            let times = compact::times(data).expect("what decodes has times");
            assert_eq!(times, arcs.iter().map(|a| a.ts).collect::<Vec<_>>());
            if arcs.is_empty() {
                return;
            }
            let again = compact::decode(&compact::encode(&arcs.iter().collect::<Vec<_>>()))
                .expect("its own encoding decodes");
            // Coordinates keep 6 decimals: compare what survives a round of the encoding.
            let settled = compact::decode(&compact::encode(&again.iter().collect::<Vec<_>>()))
                .expect("decodes");
            assert_eq!(settled, again, "the encoding is not stable");
        }
        Err(error) => assert!(error.at <= data.len(), "an error past the end: {error}"),
    }
}

/// Runs every file of the committed corpus `fuzz/corpus/<target>` through `check`.
#[cfg(test)]
pub(crate) fn replay_corpus(target: &str, check: fn(&[u8])) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.expect("a corpus entry").path();
        let data = std::fs::read(&path).expect("a corpus file");
        let result = std::panic::catch_unwind(|| check(&data));
        assert!(result.is_ok(), "{} fails the check", path.display());
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_line_corpus_passes() {
        assert!(replay_corpus("event_line", event_line) > 0);
    }

    #[test]
    fn the_compact_arcs_corpus_passes() {
        assert!(replay_corpus("compact_arcs", compact_arcs) > 0);
    }

    #[test]
    fn the_replay_control_corpus_passes() {
        assert!(replay_corpus("replay_control", replay_control) > 0);
    }
}
