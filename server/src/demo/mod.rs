//! The demo: a recorded Bones Brigade launch built into the binary, the player that runs it, and
//! live traffic for a running server. The tools that make the recording are maintainers': `cargo
//! xtask` (the `xtask` crate).

pub(crate) mod embedded;
pub mod figures;
pub(crate) mod player;
pub mod simulate;

pub use embedded::CAMPAIGN;
pub use player::{Pace, records};

use std::{path::Path, sync::Arc};

use anyhow::Context;

use crate::{engine::Engine, hub::Hub, replay::Library};

/// Runs the demo inside a server: plays the campaign into the live feed in a loop at `pace`, and
/// on a thread of its own unpacks the recording (for replays, timelines and exports) and loads it
/// into the engine's statistics.
pub fn start(
    pace: player::Pace,
    hub: &Arc<Hub>,
    engine: &Arc<Engine>,
    library: &Arc<Library>,
    data_dir: &Path,
) -> anyhow::Result<()> {
    player::spawn(hub.clone(), pace).context("cannot start the demo player")?;
    let (engine, library, data_dir) = (engine.clone(), library.clone(), data_dir.to_owned());
    std::thread::Builder::new()
        .name("demo-loader".into())
        .spawn(move || {
            let path = match player::unpack(&data_dir) {
                Ok(path) => {
                    library.register(embedded::CAMPAIGN, path.clone(), player::recording_epoch());
                    Some(path)
                }
                Err(error) => {
                    tracing::error!(%error, "the demo cannot be replayed");
                    None
                }
            };
            engine.load(
                embedded::CAMPAIGN,
                path.as_deref(),
                player::located_records(),
            );
        })
        .context("cannot load the demo campaign")?;
    tracing::info!(
        speed = pace.speed,
        max_rate = pace.max_rate,
        "playing the demo campaign"
    );
    Ok(())
}
