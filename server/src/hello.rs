//! The first message of every websocket, the live feed's and replays': the counters of the
//! campaigns a filter selects, each with where its arc line stands.

use viralglobe_protocol::{CampaignSummary, LiveFilter, PROTOCOL_VERSION, ServerMessage};

use crate::{
    engine::Engine,
    hub::{LineCounts, Offset},
};

/// A campaign's counters with where its arc line stands (its epoch and last `seq`).
pub(crate) fn with_offset(
    mut summary: CampaignSummary,
    offset_of: impl Fn(&str) -> Option<Offset>,
) -> CampaignSummary {
    if let Some(offset) = offset_of(&summary.id) {
        summary.epoch = Some(offset.epoch.to_string());
        summary.seq = offset.seq;
    }
    summary
}

/// The counters of a campaign's line so far, where they are not its statistics' (the demo's loop).
pub(crate) fn count_line(summary: &mut CampaignSummary, line: &LineCounts) {
    summary.shares = line.shares;
    summary.clicks = line.clicks;
    summary.conversions = line.conversions;
    summary.goals = line.goals.clone();
    summary.revenue_cents = line.revenue_cents;
    summary.max_generation = line.max_generation;
}

/// `hello` for `filter`, each campaign's epoch and last `seq` as `offset_of` tells them.
pub(crate) fn hello(
    engine: &Engine,
    filter: &LiveFilter,
    offset_of: impl Fn(&str) -> Option<Offset>,
) -> ServerMessage {
    let campaigns = engine
        .summaries(|id| filter.wants_campaign(id))
        .into_iter()
        .map(|c| with_offset(c, &offset_of))
        .collect();
    ServerMessage::Hello {
        protocol: PROTOCOL_VERSION,
        server: concat!("viralglobe-server/", env!("CARGO_PKG_VERSION")).into(),
        filter: filter.clone(),
        campaigns,
        max_rate: None,
    }
}
