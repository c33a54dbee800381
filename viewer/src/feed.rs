//! What every source (live feed, file replay, server replay) hands the rest of the viewer: arcs as
//! they arrive, and resets when the campaign starts over from another point.

use bevy::prelude::*;
use viralglobe_protocol::ArcEvent;

use crate::tally::Tally;

/// Arcs that arrived this frame, in order. Every one is counted; when more arrive in one frame
/// than the globe can launch, a sample is drawn.
#[derive(Message, Debug, Clone)]
pub struct NewArcs(pub Vec<ArcEvent>);

/// The campaign continues from another point (a seek, a restart, a loop, a reconnect): arcs in
/// flight go, and the counters become `counts`.
#[derive(Message, Debug, Clone, Default)]
pub struct FeedReset {
    pub counts: Tally,
}

/// Campaign time of the latest arc received: the live campaign clock.
#[derive(Resource, Debug, Default)]
pub struct LatestArcTime(pub Option<i64>);

pub(super) fn plugin(app: &mut App) {
    app.add_message::<NewArcs>()
        .add_message::<FeedReset>()
        .init_resource::<LatestArcTime>();
}
