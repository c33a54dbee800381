//! The arcs in flight, as the GPU reads them: a ring of slots in fixed chunks. A new arc takes the
//! next slot (the oldest arc, long landed when the ring is big enough); only the chunks written
//! this frame are uploaded, and only chunks with an arc still animating are drawn. So a frame's
//! CPU cost follows the arcs that arrived, not the arcs in flight.

use std::collections::VecDeque;

use bevy::math::Vec3;
use viralglobe_protocol::ArcEvent;

use super::palette;
use crate::geo::to_unit;

pub const SLOTS_PER_CHUNK: usize = 4096;
pub const CHUNKS: usize = 32;
/// Arcs the ring holds at once.
pub const CAPACITY: usize = SLOTS_PER_CHUNK * CHUNKS;
/// Floats per slot: three vec4.
pub const SLOT_FLOATS: usize = 12;

/// Seconds a head takes to cross the widest arc, a trail's length as a fraction of its arc, and an
/// arrival pulse's duration: what the shader animates with.
pub const FLIGHT_SECS: f32 = 1.8;
pub const TRAIL: f32 = 0.45;
pub const PULSE_SECS: f32 = 0.9;
/// Longest an arc or pulse stays visible after it starts (a root share's pulse is 2.5 pulses).
pub const LIFETIME_SECS: f32 = FLIGHT_SECS * (1.0 + TRAIL) + PULSE_SECS * 2.5;

#[derive(bevy::prelude::Resource)]
pub struct ArcRing {
    slots: Vec<[f32; SLOT_FLOATS]>,
    next: usize,
    /// Per chunk: written since the last upload.
    dirty: [bool; CHUNKS],
    /// Per chunk: display time when its last arc finishes.
    busy_until: [f32; CHUNKS],
    /// (end time, slot) of the arcs animating, oldest first; at most one per slot.
    in_flight: VecDeque<(f32, usize)>,
}

impl Default for ArcRing {
    fn default() -> Self {
        Self {
            slots: vec![[0.0; SLOT_FLOATS]; SLOTS_PER_CHUNK * CHUNKS],
            next: 0,
            dirty: [true; CHUNKS],
            busy_until: [f32::NEG_INFINITY; CHUNKS],
            in_flight: VecDeque::new(),
        }
    }
}

impl ArcRing {
    /// Starts drawing `arc` at display time `now`, its colour scaled by `brightness` (1 as the
    /// palette has it). Arcs without a known origin other than root shares (a click whose share
    /// had no location) are drawn as a pulse where they land.
    pub fn launch(&mut self, arc: &ArcEvent, now: f32, brightness: f32) {
        let to = to_unit(arc.to.lat, arc.to.lon);
        let from = arc.from.as_ref().map(|p| to_unit(p.lat, p.lon));
        let color = palette::of(arc) * brightness;
        let (from, width) = match from {
            Some(from) => (
                from,
                if arc.kind.is_inbound() {
                    1.4
                } else {
                    width(arc)
                },
            ),
            None => (to, -1.0),
        };
        // Short arcs land sooner: a hop across a country should not crawl.
        let span = from.angle_between(to) / std::f32::consts::PI;
        let flight_scale = 0.45 + 0.55 * span.sqrt();
        let slot = self.next;
        self.slots[slot] = [
            from.x,
            from.y,
            from.z,
            now,
            to.x,
            to.y,
            to.z,
            flight_scale,
            color.red,
            color.green,
            color.blue,
            width,
        ];
        let chunk = slot / SLOTS_PER_CHUNK;
        self.dirty[chunk] = true;
        self.busy_until[chunk] = self.busy_until[chunk].max(now + LIFETIME_SECS);
        self.next = (slot + 1) % self.slots.len();
        if self.in_flight.len() == self.slots.len() {
            self.in_flight.pop_front(); // its slot was just taken
        }
        self.in_flight.push_back((now + LIFETIME_SECS, slot));
    }

    /// Forgets every arc (a seek or a restart).
    pub fn clear(&mut self) {
        self.slots.fill([0.0; SLOT_FLOATS]);
        self.dirty = [true; CHUNKS];
        self.busy_until = [f32::NEG_INFINITY; CHUNKS];
        self.next = 0;
        self.in_flight.clear();
    }

    /// Arcs still animating at `now`; drops the finished ones from the count.
    pub fn in_flight(&mut self, now: f32) -> usize {
        let finished = self.in_flight.partition_point(|(until, _)| *until <= now);
        self.in_flight.drain(..finished);
        self.in_flight.len()
    }

    pub fn chunk_busy(&self, chunk: usize, now: f32) -> bool {
        self.busy_until[chunk] > now
    }

    /// The chunk's slots as the shader's storage buffer bytes, if written since the last call.
    pub fn take_dirty(&mut self, chunk: usize) -> Option<Vec<u8>> {
        if !std::mem::take(&mut self.dirty[chunk]) {
            return None;
        }
        let range = chunk * SLOTS_PER_CHUNK..(chunk + 1) * SLOTS_PER_CHUNK;
        Some(
            self.slots[range]
                .iter()
                .flatten()
                .flat_map(|f| f.to_le_bytes())
                .collect(),
        )
    }

    /// The width of every arc animating (its kind shows in it), for tests.
    #[cfg(test)]
    pub fn widths(&self) -> Vec<f32> {
        self.in_flight
            .iter()
            .map(|&(_, slot)| self.slots[slot][11])
            .collect()
    }

    /// The red, green and blue of every arc animating, for tests.
    #[cfg(test)]
    pub fn colors(&self) -> Vec<[f32; 3]> {
        self.in_flight
            .iter()
            .map(|&(_, slot)| {
                [
                    self.slots[slot][8],
                    self.slots[slot][9],
                    self.slots[slot][10],
                ]
            })
            .collect()
    }

    /// Where the most recent arcs land, weighted towards the newest: where the action is.
    pub fn recent_destinations(&self, now: f32) -> Option<Vec3> {
        let sum: Vec3 = self
            .in_flight
            .iter()
            .rev()
            .take(512)
            .map(|&(until, slot)| {
                let s = &self.slots[slot];
                let weight = ((until - now) / LIFETIME_SECS).clamp(0.0, 1.0);
                Vec3::new(s[4], s[5], s[6]) * weight
            })
            .sum();
        (sum.length() > 1e-3).then(|| sum.normalize())
    }
}

/// Child shares draw wider than clicks: they are where a cascade branches.
fn width(arc: &ArcEvent) -> f32 {
    match arc.kind {
        viralglobe_protocol::ArcKind::Share => 2.0,
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::arc;
    use viralglobe_protocol::ArcKind;

    /// The float at `index` of an uploaded chunk.
    fn float(chunk: &[u8], index: usize) -> f32 {
        let bytes = &chunk[index * 4..index * 4 + 4];
        f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }

    #[test]
    fn arcs_take_consecutive_slots_and_mark_their_chunk() {
        let mut ring = ArcRing::default();
        for c in 0..CHUNKS {
            ring.take_dirty(c);
        }
        ring.launch(&arc(1, ArcKind::Click, 0), 10.0, 1.0);
        ring.launch(&arc(2, ArcKind::Conversion, 0), 10.0, 1.0);
        let chunk = ring.take_dirty(0).expect("chunk 0 was written");
        assert_eq!(chunk.len(), SLOTS_PER_CHUNK * SLOT_FLOATS * 4);
        assert_eq!(float(&chunk, 3), 10.0, "start time of slot 0");
        assert_eq!(float(&chunk, SLOT_FLOATS + 3), 10.0, "slot 1 written");
        assert_eq!(float(&chunk, 2 * SLOT_FLOATS + 7), 0.0, "slot 2 not");
        assert!(ring.take_dirty(0).is_none(), "uploaded once");
        assert!(ring.take_dirty(1).is_none());
        assert!(ring.chunk_busy(0, 10.0 + LIFETIME_SECS - 0.1));
        assert!(!ring.chunk_busy(0, 10.0 + LIFETIME_SECS + 0.1));
        assert!(!ring.chunk_busy(1, 10.0));
    }

    #[test]
    fn finished_arcs_leave_the_count_and_a_clear_forgets_all() {
        let mut ring = ArcRing::default();
        ring.launch(&arc(1, ArcKind::Click, 0), 0.0, 1.0);
        ring.launch(&arc(2, ArcKind::Click, 1), 5.0, 1.0);
        assert_eq!(ring.in_flight(1.0), 2);
        assert_eq!(ring.in_flight(LIFETIME_SECS + 1.0), 1);
        ring.clear();
        assert_eq!(ring.in_flight(5.0), 0);
        assert!(!ring.chunk_busy(0, 5.0));
    }

    #[test]
    fn the_ring_wraps_onto_its_oldest_slots() {
        let mut ring = ArcRing::default();
        for seq in 0..(SLOTS_PER_CHUNK * CHUNKS + 1) as u64 {
            ring.launch(&arc(seq, ArcKind::Click, 0), seq as f32, 1.0);
        }
        assert_eq!(
            ring.in_flight(0.0),
            SLOTS_PER_CHUNK * CHUNKS,
            "the overwritten arc is gone"
        );
        let first = ring.take_dirty(0).expect("written");
        assert_eq!(
            float(&first, 3),
            (SLOTS_PER_CHUNK * CHUNKS) as f32,
            "slot 0 reused"
        );
    }
}
