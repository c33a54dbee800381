//! What the fuzz target of the recording reader (`fuzz/`) checks on arbitrary bytes; the
//! committed corpus runs through the same check in the ordinary tests.

use std::io::Cursor;

use viralglobe_protocol::rule::LogReader;

use crate::{engine, recording::Lines};

/// A recording file of any content: reading it never panics and accounts for every byte (whole
/// lines end to end, then at most a torn last one); the rule numbers its arcs 1, 2, 3…; a restart
/// following its records never panics and, for a file of one campaign, reaches the `seq` the
/// rule does.
pub fn recording(data: &[u8]) {
    let mut lines = Lines::new(Cursor::new(data), 0);
    let (mut end, mut records) = (0, Vec::new());
    for line in lines.by_ref() {
        let line = line.expect("reading from memory cannot fail");
        assert_eq!(line.offset, end, "lines follow each other");
        assert!(line.end > line.offset && line.end <= data.len() as u64);
        end = line.end;
        records.extend(line.record.ok());
    }
    assert_eq!(
        end + lines.torn(),
        data.len() as u64,
        "every byte accounted for"
    );
    let mut log = LogReader::default();
    let seqs: Vec<u64> = records
        .iter()
        .filter_map(|r| log.next_arc(r))
        .map(|a| a.seq)
        .collect();
    assert!(seqs.iter().copied().eq(1..=seqs.len() as u64), "{seqs:?}");
    let followed = engine::follow_in_memory(&records);
    let mut campaigns = records.iter().filter_map(|r| r.campaign.as_deref());
    if let Some(first) = campaigns.next()
        && campaigns.all(|c| c == first)
    {
        let seq = followed
            .iter()
            .find(|(c, _)| c == first)
            .map_or(0, |(_, s)| *s);
        assert_eq!(seq, seqs.len() as u64, "the restart and the rule agree");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_recording_corpus_passes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/recording");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).expect("the committed corpus") {
            let path = entry.expect("an entry").path();
            let data = std::fs::read(&path).expect("a corpus file");
            let result = std::panic::catch_unwind(|| super::recording(&data));
            assert!(result.is_ok(), "{} fails the check", path.display());
            count += 1;
        }
        assert!(count > 0);
    }
}
