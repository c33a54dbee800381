//! The lines the ledger writes: a share's, a click's or conversion's, and a given-up share's.

use std::sync::Arc;

use viralglobe_protocol::{InputError, InputEvent, Place, RecordedEvent, ShareEvent};

use super::{HeldAction, PendingShare, ShareNode, rejected};

pub(super) fn share_of(event: &InputEvent) -> &str {
    match event {
        InputEvent::Share(s) => s.parent.as_deref().unwrap_or(&s.id),
        InputEvent::Click(c) => &c.share,
        InputEvent::Conversion(c) => &c.share,
    }
}

/// A share's line: resolved with its generation and root, or waiting for its parent.
pub(super) fn share_line(
    share: ShareEvent,
    campaign: &str,
    place: &Option<Arc<Place>>,
    resolved: Option<(u32, String)>,
) -> RecordedEvent {
    let (generation, root) = resolved.unzip();
    RecordedEvent {
        event: InputEvent::Share(share),
        campaign: Some(campaign.to_owned()),
        at: place.as_deref().cloned(),
        generation,
        root,
        hold: None,
        held_at: None,
        given_up: false,
    }
}

/// The line that gives up a waiting share.
pub(super) fn give_up_share(pending: &PendingShare) -> RecordedEvent {
    RecordedEvent {
        event: InputEvent::Share(pending.event.clone()),
        campaign: Some(pending.campaign.to_string()),
        at: pending.place.as_deref().cloned(),
        generation: None,
        root: None,
        hold: None,
        held_at: None,
        given_up: true,
    }
}

/// A click's or conversion's line in the campaign of its (resolved) share.
pub(super) fn action_line(
    event: InputEvent,
    node: &ShareNode,
    place: &Option<Arc<Place>>,
    hold: Option<u64>,
) -> RecordedEvent {
    RecordedEvent {
        event,
        campaign: Some(node.campaign.to_string()),
        at: place.as_deref().cloned(),
        generation: Some(node.generation),
        root: Some(node.root.to_string()),
        hold,
        held_at: None,
        given_up: false,
    }
}

pub(super) fn held_limit(field: &'static str, missing: &str, max: usize) -> InputError {
    rejected(
        field,
        format!("share `{missing}` has not arrived and {max} events already wait (--max-held)"),
    )
}

/// A click or conversion on a share that waits itself, over its campaign's budget.
pub(super) fn campaign_held_limit(campaign: &str, max: usize) -> InputError {
    rejected(
        "share",
        format!(
            "its share waits for its parent and {max} events of campaign `{campaign}` already \
             wait (--max-held-per-campaign)"
        ),
    )
}

/// The journal line that gives up a held click or conversion.
pub(super) fn held_given_up(action: &HeldAction) -> RecordedEvent {
    RecordedEvent {
        event: action.event.clone(),
        campaign: None,
        at: action.place.as_deref().cloned(),
        generation: None,
        root: None,
        hold: Some(action.hold),
        held_at: None,
        given_up: true,
    }
}
