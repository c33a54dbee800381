//! The demo data, built into the binary so the demo runs with nothing else on the machine.

/// The campaign the embedded recording holds.
pub const CAMPAIGN: &str = "bones-brigade";

/// The recorded Bones Brigade campaign (zstd-compressed NDJSON of `RecordedEvent`s).
pub(crate) static RECORDING: &[u8] = include_bytes!("../../../demo-data/bones-brigade.ndjson.zst");

/// The MaxMind-format City database that places every address the demo uses.
pub(crate) static GEO_DB: &[u8] = include_bytes!("../../../demo-data/demo-city.mmdb");
