//! Maintainer tools, kept out of the user binary: the demo campaign's audience cities (from a real
//! City database), its seeded generator (run through the server's own pipeline), and the check
//! that keeps the crates' modules layered. `cargo xtask --help`.

pub mod cities;
pub mod cycles;
pub mod generate;

use std::path::Path;

use viralglobe_server::demo::figures;

/// File names inside `demo-data/`.
pub const CITIES_FILE: &str = "cities.tsv";
pub const GEO_DB_FILE: &str = "demo-city.mmdb";
pub const RECORDING_FILE: &str = "bones-brigade.ndjson.zst";
pub const PARAMS_FILE: &str = "params.json";

/// zstd level of the committed recording: small enough to commit, quick enough to regenerate.
const COMPRESSION_LEVEL: i32 = 12;

/// Regenerates the demo in `dir` from its `cities.tsv` and `seed`: the demo geo database, the
/// recording and the parameters. Returns the published figures next to the generated ones.
pub fn regenerate(dir: &Path, seed: u64) -> anyhow::Result<Vec<figures::Figure>> {
    let cities = cities::from_tsv(&std::fs::read_to_string(dir.join(CITIES_FILE))?)?;
    let params = generate::Params::bones_brigade(seed);
    let epoch = (params.start.0 / 1_000) as u64;
    std::fs::write(
        dir.join(GEO_DB_FILE),
        cities::build_database(&cities, epoch)?,
    )?;
    let lines = generate::events(&params, &cities);
    let scratch = std::env::temp_dir().join(format!("viralglobe-demo-{}", std::process::id()));
    let recorded = generate::record(&lines, &dir.join(GEO_DB_FILE), &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    let (recording, stats) = recorded?;
    let compressed = zstd::encode_all(recording.as_slice(), COMPRESSION_LEVEL)?;
    std::fs::write(dir.join(RECORDING_FILE), compressed)?;
    std::fs::write(
        dir.join(PARAMS_FILE),
        serde_json::to_string_pretty(&params)? + "\n",
    )?;
    tracing::info!(
        events = lines.len(),
        bytes = recording.len(),
        "demo campaign recorded"
    );
    Ok(figures::published(&stats))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn regenerating_the_demo_with_its_seed_gives_the_committed_bytes() {
        let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo-data");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(
            committed.join(super::CITIES_FILE),
            dir.path().join(super::CITIES_FILE),
        )
        .expect("cities");
        super::regenerate(dir.path(), 2012).expect("regenerate");
        for file in [
            super::RECORDING_FILE,
            super::GEO_DB_FILE,
            super::PARAMS_FILE,
        ] {
            let fresh = std::fs::read(dir.path().join(file)).expect("fresh");
            let kept = std::fs::read(committed.join(file)).expect("committed");
            assert!(fresh == kept, "{file} differs from a fresh generation");
        }
    }
}
