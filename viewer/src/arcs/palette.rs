//! Arc colours: outgoing arcs (clicks, child shares) in cool colours that shift with the share's
//! generation; inbound arcs (conversions) in warm ones; root shares pulse white. The legend shows
//! these same values.

use bevy::color::LinearRgba;
use viralglobe_protocol::{ArcEvent, ArcKind};

/// Outgoing colours by generation; deeper generations use the last.
pub const GENERATIONS: [LinearRgba; 5] = [
    LinearRgba::rgb(0.10, 0.75, 1.00),
    LinearRgba::rgb(0.15, 0.40, 1.00),
    LinearRgba::rgb(0.42, 0.22, 1.00),
    LinearRgba::rgb(0.75, 0.30, 1.00),
    // Magenta, not the near-white it was: root shares are white.
    LinearRgba::rgb(1.00, 0.25, 0.75),
];
pub const SIGNUP: LinearRgba = LinearRgba::rgb(0.20, 1.00, 0.25);
pub const PURCHASE: LinearRgba = LinearRgba::rgb(1.00, 0.55, 0.05);
pub const ROOT_SHARE: LinearRgba = LinearRgba::rgb(1.00, 1.00, 1.00);

pub fn generation(generation: u32) -> LinearRgba {
    GENERATIONS[(generation as usize).min(GENERATIONS.len() - 1)]
}

pub fn of(arc: &ArcEvent) -> LinearRgba {
    match arc.kind {
        ArcKind::Conversion if arc.goal.as_deref() == Some("purchase") => PURCHASE,
        ArcKind::Conversion => SIGNUP,
        ArcKind::Share if arc.from.is_none() => ROOT_SHARE,
        _ => generation(arc.generation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every generation's colour stands apart from the root's white and from the others.
    #[test]
    fn deep_generations_are_not_mistaken_for_campaign_posts() {
        let distance = |a: LinearRgba, b: LinearRgba| {
            (a.red - b.red).abs() + (a.green - b.green).abs() + (a.blue - b.blue).abs()
        };
        for (g, &color) in GENERATIONS.iter().enumerate() {
            assert!(
                distance(color, ROOT_SHARE) > 0.6,
                "generation {g} looks white"
            );
            for &other in &GENERATIONS[g + 1..] {
                assert!(
                    distance(color, other) > 0.3,
                    "generation {g} looks like another"
                );
            }
        }
        assert_eq!(generation(40), GENERATIONS[4]);
    }
}
