//! Dead letters: what a consumer could not take, with why and where it was in its stream. Sent to
//! the broker's dead-letter destination when the source names one (`dlq=`), or appended to
//! `DATA_DIR/dead-letter/<source>.ndjson`. A visitor's address is never kept: an `ip` field is
//! dropped, and anything in a line that is not JSON that reads like an address is masked.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    path::PathBuf,
    time::Instant,
};

/// Most bytes of the original line a letter keeps.
const MAX_KEPT: usize = 64 * 1024;
/// Most bytes of a source's dead-letter file: past it, the file becomes `<source>.ndjson.1`
/// (replacing the one before) and a new one starts, so a stream of bad messages holds at most
/// twice this much of the disk.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// One dead letter, as a JSON line: `{"source", "position", "line", "reason", "message", "at"}`.
pub(super) fn letter(
    source: &str,
    position: &str,
    line: Option<u64>,
    reason: &str,
    text: &[u8],
) -> Vec<u8> {
    let kept = &text[..text.len().min(MAX_KEPT)];
    let message = match serde_json::from_slice::<serde_json::Value>(kept) {
        Ok(serde_json::Value::Object(mut event)) => {
            event.remove("ip");
            serde_json::Value::Object(event).to_string()
        }
        _ => mask_addresses(&String::from_utf8_lossy(kept)),
    };
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut bytes = serde_json::to_vec(&serde_json::json!({
        "source": source,
        "position": position,
        "line": line,
        "reason": reason,
        "message": message,
        "at": at,
    }))
    .unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Masks runs that read like an IPv4 address (four dotted numbers) or an IPv6 one (hex groups
/// with two colons or more).
fn mask_addresses(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let dots = run.matches('.').count();
        let colons = run.matches(':').count();
        let v4 = dots == 3
            && run
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        let v6 = colons >= 2 && run.bytes().any(|b| b.is_ascii_hexdigit());
        if v4 || v6 {
            out.push_str("(address)");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_hexdigit() || c == '.' || c == ':' {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The dead-letter file of one source.
pub(super) struct DeadLetters {
    path: PathBuf,
    max_bytes: u64,
    warned: Option<Instant>,
}

impl DeadLetters {
    pub(super) fn new(dir: PathBuf, source: &str) -> Self {
        let name: String = source
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Self {
            path: dir.join(format!("{name}.ndjson")),
            max_bytes: MAX_FILE_BYTES,
            warned: None,
        }
    }

    /// Appends a letter; a failure (a full disk) is logged, a line a minute at most, and the
    /// letter counted all the same: a dead letter never stops the stream.
    pub(super) fn write(&mut self, letter: &[u8]) {
        if fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.max_bytes) {
            let _ = fs::rename(&self.path, self.path.with_extension("ndjson.1"));
        }
        let written = self
            .path
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
            })
            .and_then(|mut file| file.write_all(letter));
        if let Err(error) = written
            && self.warned.is_none_or(|at| at.elapsed().as_secs() >= 60)
        {
            self.warned = Some(Instant::now());
            tracing::warn!(path = %self.path.display(), %error, "cannot write a dead letter");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_keeps_no_address() {
        let letter = letter(
            "s",
            "1-0",
            Some(2),
            "bad",
            br#"{"type":"click","ip":"2.56.184.10","ts":"x"}"#,
        );
        let text = String::from_utf8(letter).expect("utf-8");
        assert!(!text.contains("2.56.184.10"), "{text}");
        assert!(text.contains(r#"\"type\":\"click\""#), "{text}");
        let letter = letter_of("not json from 10.1.2.3 and 2001:db8::1, at 12:30");
        assert!(
            !letter.contains("10.1.2.3") && !letter.contains("2001:db8::1"),
            "{letter}"
        );
        assert!(letter.contains("at 12:30"), "{letter}");
    }

    #[test]
    fn a_source_keeps_at_most_two_files_of_letters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut letters = DeadLetters::new(dir.path().to_owned(), "redis://h/s");
        letters.max_bytes = 1_000;
        let one = letter_of("not an event");
        for _ in 0..100 {
            letters.write(one.as_bytes());
        }
        let mut files: Vec<_> = fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        assert_eq!(files.len(), 2, "{files:?}");
        for file in &files {
            let len = fs::metadata(file).expect("file").len();
            assert!(len < 1_000 + one.len() as u64, "{}: {len}", file.display());
        }
        // The newest letters are in the current file.
        assert!(files[0].to_string_lossy().ends_with(".ndjson"));
    }

    fn letter_of(text: &str) -> String {
        String::from_utf8(letter("s", "1-0", None, "bad", text.as_bytes())).expect("utf-8")
    }
}
