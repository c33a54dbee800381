//! The text panels: campaign, clock and source state; counters, value per visit and what sharing
//! brought.

use bevy::prelude::*;

use super::{
    DIM_TEXT, PANEL, TEXT, campaign_time, font, grouped,
    top_bar::{self, TopSlot},
};
use crate::{
    AppSystems, Source,
    arcs::ArcsInFlight,
    attribution::Attribution,
    feed::{FeedReset, LatestArcTime, NewArcs},
    net::{CampaignName, ConnectionState, LinkHealth},
    replay::Playback,
    tally::Tally,
};

#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Campaign,
    Clock,
    Status,
    Counters,
    ValuePerVisit,
    Attribution,
}

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<Tally>()
        .init_resource::<Attribution>()
        .add_systems(Startup, spawn)
        .add_systems(Update, count.in_set(AppSystems::Apply))
        .add_systems(Update, show.in_set(AppSystems::Present));
}

fn spawn(mut commands: Commands, slots: Query<(Entity, &TopSlot)>) {
    let panel = |left: bool| Node {
        flex_direction: FlexDirection::Column,
        align_items: if left {
            AlignItems::FlexStart
        } else {
            AlignItems::FlexEnd
        },
        row_gap: Val::VMin(0.6),
        padding: UiRect::all(Val::VMin(1.4)),
        ..default()
    };
    let line = |field: Field, size: f32, color: Color| {
        (field, Text::new(""), font(size), TextColor(color))
    };
    let (Some(left), Some(right)) = (
        top_bar::find(&slots, TopSlot::Left),
        top_bar::find(&slots, TopSlot::Right),
    ) else {
        return;
    };
    commands.spawn((
        Name::new("campaign panel"),
        ChildOf(left),
        panel(true),
        BackgroundColor(PANEL),
        children![
            line(Field::Campaign, 3.4, TEXT),
            line(Field::Clock, 2.2, TEXT),
            line(Field::Status, 1.6, DIM_TEXT),
        ],
    ));
    commands.spawn((
        Name::new("counters panel"),
        ChildOf(right),
        panel(false),
        BackgroundColor(PANEL),
        children![
            (
                line(Field::Counters, 2.1, TEXT),
                TextLayout::justify(Justify::Right)
            ),
            (
                line(Field::ValuePerVisit, 1.6, DIM_TEXT),
                TextLayout::justify(Justify::Right)
            ),
            (
                line(Field::Attribution, 1.6, DIM_TEXT),
                TextLayout::justify(Justify::Right)
            ),
        ],
    ));
}

fn count(
    mut tally: ResMut<Tally>,
    mut latest: ResMut<LatestArcTime>,
    mut resets: MessageReader<FeedReset>,
    mut arcs: MessageReader<NewArcs>,
) {
    if let Some(reset) = resets.read().last() {
        *tally = reset.counts.clone();
    }
    for arc in arcs.read().flat_map(|batch| &batch.0) {
        tally.count(arc);
        latest.0 = Some(latest.0.map_or(arc.ts.0, |t| t.max(arc.ts.0)));
    }
}

#[allow(clippy::too_many_arguments)]
fn show(
    mut fields: Query<(&Field, &mut Text)>,
    tally: Res<Tally>,
    source: Res<State<Source>>,
    name: Res<CampaignName>,
    playback: Option<Res<Playback>>,
    latest: Res<LatestArcTime>,
    connection: Option<Res<ConnectionState>>,
    health: Res<LinkHealth>,
    in_flight: Res<ArcsInFlight>,
    attribution: Res<Attribution>,
) {
    for (field, mut text) in &mut fields {
        let value = match field {
            Field::Campaign => {
                if name.0.is_empty() {
                    "Viral Globe".to_owned()
                } else {
                    name.0.clone()
                }
            }
            Field::Clock => playback
                .as_ref()
                .map(|p| p.ts_ms as i64)
                .or(latest.0)
                .map(campaign_time)
                .unwrap_or_else(|| "waiting for the first arc".into()),
            Field::Status => status(
                source.get(),
                playback.as_deref(),
                connection.as_deref(),
                &health,
                in_flight.0,
            ),
            Field::Counters => counters(&tally),
            Field::ValuePerVisit => value_per_visit(&tally),
            Field::Attribution => attribution.headline(),
        };
        if text.0 != value {
            text.0 = value;
        }
    }
}

fn status(
    source: &Source,
    playback: Option<&Playback>,
    connection: Option<&ConnectionState>,
    health: &LinkHealth,
    in_flight: usize,
) -> String {
    let mut parts = vec![source.label().to_owned()];
    if let Some(p) = playback {
        let state = if p.at_end {
            "at the end"
        } else if p.playing {
            "playing"
        } else {
            "paused"
        };
        parts.push(format!("{state} at {}x", speed(p.speed)));
        if p.looping {
            parts.push("looping".into());
        }
    }
    match connection {
        Some(ConnectionState::Connecting) => parts.push("connecting...".into()),
        Some(ConnectionState::Connected) => parts.push("connected".into()),
        Some(ConnectionState::Retrying { error, retry_in }) => {
            parts.push(format!(
                "disconnected, retrying in {:.0}s ({error})",
                retry_in.as_secs_f32().ceil()
            ));
        }
        None => {}
    }
    if health.dropped_arcs > 0 {
        parts.push(format!(
            "{} arcs dropped by a slow link",
            grouped(health.dropped_arcs)
        ));
    }
    parts.push(format!(
        "{} arcs in flight | H: help",
        grouped(in_flight as u64)
    ));
    parts.join(" | ")
}

fn speed(speed: f64) -> String {
    if speed >= 10.0 {
        grouped(speed.round() as u64)
    } else {
        format!("{speed}")
    }
}

fn counters(tally: &Tally) -> String {
    let mut lines = vec![
        format!("{}  shares", grouped(tally.counts.shares)),
        format!("{}  clicks", grouped(tally.counts.clicks)),
        format!("{}  sign-ups", grouped(tally.counts.signups)),
        format!("{}  purchases", grouped(tally.counts.purchases)),
    ];
    if tally.counts.other_conversions > 0 {
        lines.push(format!(
            "{}  conversions",
            grouped(tally.counts.other_conversions)
        ));
    }
    lines.push(format!(
        "${}  revenue",
        grouped(tally.counts.revenue_cents / 100)
    ));
    lines.push(format!("{}  generations", tally.max_generation + 1));
    lines.join("\n")
}

fn value_per_visit(tally: &Tally) -> String {
    let channels = tally.value_per_visit();
    if channels.is_empty() {
        return String::new();
    }
    let mut lines = vec!["value per visit".to_owned()];
    lines.extend(channels.iter().map(|(name, vpv)| match vpv {
        Some(vpv) => format!("{name}  ${vpv:.2}"),
        // No visit is no data, not $0.00 (and the HUD's font has no dash but the hyphen).
        None => format!("{name}  no visits yet"),
    }));
    lines.join("\n")
}
