//! Reading a campaign's arcs from its recording, for a subscriber that resumes or fell behind:
//! the same arcs, with the same `seq`, that the live feed sent.

use std::sync::Arc;

use actix_web::web;
use viralglobe_protocol::{ArcEvent, Encoding, LiveFilter};

use crate::{
    replay::{Library, ReplayError, cursor::Cursor, cursor::Progress},
    ws::{Ended, Outbox},
};

/// Arcs per frame while catching up.
const ARCS_PER_FRAME: usize = 1_000;

/// Sends the arcs after `since` up to and including `to` that `filter` wants, at full speed.
/// Fails when the recording cannot be read; within, whether the client took every arc.
pub(super) async fn send_recorded(
    out: &mut Outbox,
    library: Arc<Library>,
    filter: &LiveFilter,
    encoding: Encoding,
    since: u64,
    to: u64,
) -> Result<Result<(), Ended>, ReplayError> {
    let Some(campaign) = filter.campaign.clone() else {
        return Ok(Ok(()));
    };
    if to <= since {
        return Ok(Ok(()));
    }
    let read_error = |source: std::io::Error| ReplayError::Read {
        campaign: campaign.clone(),
        source,
    };
    let name = campaign.clone();
    let index = web::block(move || library.open(&name))
        .await
        .map_err(|e| read_error(std::io::Error::other(e.to_string())))??;
    let seek = index.clone();
    let mut cursor = web::block(move || Cursor::seek_seq(&seek, since))
        .await
        .map_err(|e| read_error(std::io::Error::other(e.to_string())))?
        .map_err(read_error)?;
    while cursor.arcs() < to {
        let (index, filter) = (index.clone(), filter.clone());
        let block = web::block(move || {
            let mut arcs: Vec<ArcEvent> = Vec::new();
            let before = cursor.arcs();
            let progress =
                cursor.advance_growing(&index, i64::MAX, to, &filter, ARCS_PER_FRAME, &mut arcs);
            let moved = cursor.arcs() > before;
            (cursor, arcs, progress.map(|p| (p, moved)))
        });
        let (moved_cursor, arcs, outcome) = block
            .await
            .map_err(|e| read_error(std::io::Error::other(e.to_string())))?;
        cursor = moved_cursor;
        let (progress, moved) = outcome.map_err(read_error)?;
        if !arcs.is_empty()
            && let Err(ended) = out.arcs(arcs, encoding).await
        {
            return Ok(Err(ended));
        }
        if progress == Progress::End && !moved {
            tracing::warn!(
                campaign,
                at = cursor.arcs(),
                to,
                "the recording ends before the arcs published"
            );
            break;
        }
    }
    Ok(Ok(()))
}
