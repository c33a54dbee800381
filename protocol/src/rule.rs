//! The one rule from a recorded event to an arc.
//!
//! Every consumer of a campaign's log — the server's live ingest and restart, replays, exports,
//! timelines, the demo player, another node — reads the same [`RecordedEvent`] lines in the same
//! order and calls [`arc_of`] on each, so they all make the same arcs with the same `seq`.
//!
//! The rule looks at one line and, at most, one share it names (the parent of a child share, the
//! credited share of a click or conversion). A line draws an arc when it is resolved (it carries
//! `generation` and `root`) and every end of the arc has a known place:
//! - a root share: a point at its own place;
//! - a child share: from its parent's place to its own;
//! - a click: from its share's place to the visitor's;
//! - a conversion: from the converter's place back to its share's.
//!
//! A share recorded while its parent had not arrived carries no `generation`: it draws nothing
//! then, and its arc comes from the line that records its resolution, later in the log. The facts
//! of a share that later lines use (its place, channel, kind) are those of that resolving line.

use std::collections::HashMap;

use crate::{ArcEvent, ArcKind, InputEvent, Place, RecordedEvent};

/// What the rule needs to know about a share named by a line.
pub trait ShareFacts {
    fn place(&self) -> Option<&Place>;
    fn channel(&self) -> &str;
    fn sharer_kind(&self) -> Option<&str>;
}

/// The share whose facts the arc of `record` needs: a child share's parent, a click's or a
/// conversion's share; `None` for a root share.
pub fn related_share(record: &RecordedEvent) -> Option<&str> {
    match &record.event {
        InputEvent::Share(s) => s.parent.as_deref(),
        InputEvent::Click(c) => Some(&c.share),
        InputEvent::Conversion(c) => Some(&c.share),
    }
}

/// Where an arc of a line runs, and the share facts it carries: borrowed, nothing built.
struct Ends<'a> {
    campaign: &'a str,
    generation: u32,
    root: &'a str,
    kind: ArcKind,
    share: &'a str,
    channel: &'a str,
    sharer_kind: Option<&'a str>,
    from: Option<&'a Place>,
    to: &'a Place,
}

/// The rule itself: the ends of the arc `record` draws, or `None` when it draws none.
fn ends<'a, F: ShareFacts + ?Sized>(
    record: &'a RecordedEvent,
    related: Option<&'a F>,
) -> Option<Ends<'a>> {
    let campaign = record.campaign.as_deref()?;
    let (generation, root) = (record.generation?, record.root.as_deref()?);
    let here = record.at.as_ref();
    let (kind, share, channel, sharer_kind, from, to) = match &record.event {
        InputEvent::Share(s) => {
            let from = match s.parent {
                None => None,
                Some(_) => Some(related?.place()?),
            };
            let kind = s.sharer_kind.as_deref();
            (ArcKind::Share, &*s.id, &*s.channel, kind, from, here?)
        }
        InputEvent::Click(c) => {
            let share = related?;
            let from = Some(share.place()?);
            let (channel, kind) = (share.channel(), share.sharer_kind());
            (ArcKind::Click, &*c.share, channel, kind, from, here?)
        }
        InputEvent::Conversion(c) => {
            let share = related?;
            let (channel, kind) = (share.channel(), share.sharer_kind());
            (
                ArcKind::Conversion,
                &*c.share,
                channel,
                kind,
                Some(here?),
                share.place()?,
            )
        }
    };
    Some(Ends {
        campaign,
        generation,
        root,
        kind,
        share,
        channel,
        sharer_kind,
        from,
        to,
    })
}

/// Whether `record` draws an arc, by the same rule as [`arc_of`], without building it.
pub fn draws<F: ShareFacts + ?Sized>(record: &RecordedEvent, related: Option<&F>) -> bool {
    ends(record, related).is_some()
}

/// The arc `record` draws, numbered `seq`, given the facts of its [`related_share`]; `None` when it
/// draws none (unresolved, an end with no known place, or a related share the log does not know).
pub fn arc_of<F: ShareFacts + ?Sized>(
    record: &RecordedEvent,
    related: Option<&F>,
    seq: u64,
) -> Option<ArcEvent> {
    let ends = ends(record, related)?;
    let (goal, value_cents, reach) = match &record.event {
        InputEvent::Conversion(c) => (Some(c.goal.clone()), Some(c.value_cents), None),
        InputEvent::Share(s) => (None, None, s.reach),
        InputEvent::Click(_) => (None, None, None),
    };
    Some(ArcEvent {
        seq,
        kind: ends.kind,
        goal,
        campaign: ends.campaign.to_owned(),
        share: ends.share.to_owned(),
        root: ends.root.to_owned(),
        generation: ends.generation,
        channel: ends.channel.to_owned(),
        sharer_kind: ends.sharer_kind.map(str::to_owned),
        value_cents,
        reach,
        ts: record.event.ts(),
        from: ends.from.cloned(),
        to: ends.to.clone(),
    })
}

/// A share as the log describes it, kept by readers that have no share tree of their own.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedShare {
    pub place: Option<Place>,
    pub channel: String,
    pub sharer_kind: Option<String>,
}

impl ShareFacts for LoggedShare {
    fn place(&self) -> Option<&Place> {
        self.place.as_ref()
    }
    fn channel(&self) -> &str {
        &self.channel
    }
    fn sharer_kind(&self) -> Option<&str> {
        self.sharer_kind.as_deref()
    }
}

/// The share a line resolves, with the facts later lines use; `None` for any other line (a click,
/// a conversion, a share recorded while it waits for its parent).
pub fn resolved_share(record: &RecordedEvent) -> Option<(&str, LoggedShare)> {
    // Resolved means a campaign, `generation` and `root`, as in `ends` and the server's tree.
    match &record.event {
        InputEvent::Share(s)
            if record.campaign.is_some()
                && record.generation.is_some()
                && record.root.is_some() =>
        {
            let share = LoggedShare {
                place: record.at.clone(),
                channel: s.channel.clone(),
                sharer_kind: s.sharer_kind.clone(),
            };
            Some((&s.id, share))
        }
        _ => None,
    }
}

/// Reads one campaign's log forward from its start, numbering arcs as every other reader does.
#[derive(Debug, Default)]
pub struct LogReader {
    shares: HashMap<String, LoggedShare>,
    arcs: u64,
}

impl LogReader {
    /// Takes the next line of the log; returns the arc it draws, if any.
    pub fn next_arc(&mut self, record: &RecordedEvent) -> Option<ArcEvent> {
        self.learn(record);
        let arc = self.arc_at(record, self.arcs + 1)?;
        self.arcs += 1;
        Some(arc)
    }

    /// Remembers the share a line resolves, without numbering anything. A share's facts are those
    /// of the line that resolves it (the line the server's share tree is built from); a line that
    /// records a share still waiting for its parent tells nothing yet.
    pub fn learn(&mut self, record: &RecordedEvent) {
        if let Some((id, share)) = resolved_share(record) {
            self.shares.insert(id.to_owned(), share);
        }
    }

    /// Whether `record` draws an arc, by the facts learnt so far.
    pub fn draws(&self, record: &RecordedEvent) -> bool {
        draws(
            record,
            related_share(record).and_then(|id| self.shares.get(id)),
        )
    }

    /// The arc `record` draws as arc number `seq`, by the facts learnt so far.
    pub fn arc_at(&self, record: &RecordedEvent, seq: u64) -> Option<ArcEvent> {
        let related = related_share(record).and_then(|id| self.shares.get(id));
        arc_of(record, related, seq)
    }

    /// Arcs numbered so far by [`Self::next_arc`].
    pub fn arcs(&self) -> u64 {
        self.arcs
    }

    /// Shares learnt so far.
    pub fn shares(&self) -> usize {
        self.shares.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(
        json: &str,
        campaign: Option<&str>,
        at: bool,
        resolved: Option<(u32, &str)>,
    ) -> RecordedEvent {
        RecordedEvent {
            event: InputEvent::parse(json.as_bytes()).expect("event"),
            campaign: campaign.map(str::to_owned),
            at: at.then_some(Place {
                lat: 1.0,
                lon: 2.0,
                city: None,
                country: None,
            }),
            generation: resolved.map(|(g, _)| g),
            root: resolved.map(|(_, r)| r.to_owned()),
            hold: None,
            held_at: None,
            given_up: false,
        }
    }

    const ROOT: &str = r#"{"type":"share","id":"s1","campaign":"c","channel":"facebook","sharer":"a","ts":1350406800001}"#;
    const CHILD: &str = r#"{"type":"share","id":"s2","parent":"s1","campaign":"c","channel":"twitter","sharer":"b","ts":1350406800002}"#;
    const CLICK: &str = r#"{"type":"click","share":"s1","ts":1350406800003}"#;
    const BUY: &str = r#"{"type":"conversion","share":"s2","goal":"purchase","value_cents":99,"ts":1350406800004}"#;

    #[test]
    fn every_end_must_be_placed_and_the_line_resolved() {
        let mut log = LogReader::default();
        let root = log
            .next_arc(&line(ROOT, Some("c"), true, Some((0, "s1"))))
            .expect("root");
        assert_eq!((root.seq, root.from.is_none()), (1, true));
        // Held child: nothing until the line that resolves it.
        assert!(log.next_arc(&line(CHILD, Some("c"), true, None)).is_none());
        let child = log
            .next_arc(&line(CHILD, Some("c"), true, Some((1, "s1"))))
            .expect("child");
        assert_eq!(
            (child.seq, child.generation, child.from.is_some()),
            (2, 1, true)
        );
        // A visitor with no place draws nothing, and takes no seq.
        assert!(
            log.next_arc(&line(CLICK, Some("c"), false, Some((0, "s1"))))
                .is_none()
        );
        let click = log
            .next_arc(&line(CLICK, Some("c"), true, Some((0, "s1"))))
            .expect("click");
        assert_eq!((click.seq, click.channel.as_str()), (3, "facebook"));
        let buy = log
            .next_arc(&line(BUY, Some("c"), true, Some((1, "s1"))))
            .expect("buy");
        assert_eq!(
            (buy.seq, buy.channel.as_str(), buy.value_cents),
            (4, "twitter", Some(99))
        );
        // A journal line (no campaign) never draws.
        assert!(
            log.next_arc(&line(CLICK, None, true, Some((0, "s1"))))
                .is_none()
        );
    }

    #[test]
    fn an_unplaced_share_draws_nothing_from_or_to_it() {
        let mut log = LogReader::default();
        assert!(
            log.next_arc(&line(ROOT, Some("c"), false, Some((0, "s1"))))
                .is_none()
        );
        assert!(
            log.next_arc(&line(CHILD, Some("c"), true, Some((1, "s1"))))
                .is_none()
        );
        assert!(
            log.next_arc(&line(CLICK, Some("c"), true, Some((0, "s1"))))
                .is_none()
        );
        let buy = log.next_arc(&line(BUY, Some("c"), true, Some((1, "s1"))));
        assert_eq!(
            buy.map(|a| a.seq),
            Some(1),
            "its child is placed: the purchase lands there"
        );
    }
}
