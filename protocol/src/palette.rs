//! The colours of arcs, one palette for every client: the viewer draws with it and the page
//! gets it from `GET /palette.json`, so a kind or a generation has the same colour everywhere.
//! Outgoing arcs (clicks, child shares) are cool colours that shift with the share's generation;
//! inbound arcs (conversions) warm ones; campaign posts white. Colours are sRGB.

use serde::Serialize;

use crate::{ArcEvent, ArcKind};

/// An sRGB colour, written `#rrggbb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Serialize for Rgb {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2))
    }
}

/// Every colour of the palette, as the page receives it.
#[derive(Debug, Clone, Serialize)]
pub struct Palette {
    /// Outgoing arcs by their share's generation; deeper generations use the last.
    pub generations: [Rgb; 5],
    pub signup: Rgb,
    pub purchase: Rgb,
    /// A campaign post (a share with no parent): a pulse where it was posted.
    pub root_share: Rgb,
}

pub const PALETTE: Palette = Palette {
    generations: [
        Rgb(0x59, 0xe1, 0xff),
        Rgb(0x6c, 0xaa, 0xff),
        Rgb(0xad, 0x81, 0xff),
        Rgb(0xe1, 0x95, 0xff),
        // Magenta, not near-white: campaign posts are white.
        Rgb(0xff, 0x89, 0xe1),
    ],
    signup: Rgb(0x7c, 0xff, 0x89),
    purchase: Rgb(0xff, 0xc4, 0x3f),
    root_share: Rgb(0xff, 0xff, 0xff),
};

pub fn generation(generation: u32) -> Rgb {
    let last = PALETTE.generations.len() - 1;
    PALETTE.generations[(generation as usize).min(last)]
}

/// An arc's colour: conversions by goal (purchases, and sign-ups for every other goal), campaign
/// posts white, the rest by generation.
pub fn of(arc: &ArcEvent) -> Rgb {
    match arc.kind {
        ArcKind::Conversion if arc.goal.as_deref() == Some("purchase") => PALETTE.purchase,
        ArcKind::Conversion => PALETTE.signup,
        ArcKind::Share if arc.from.is_none() => PALETTE.root_share,
        _ => generation(arc.generation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every generation's colour stands apart from the campaign posts' white and from the others.
    #[test]
    fn deep_generations_are_not_mistaken_for_campaign_posts() {
        let distance = |a: Rgb, b: Rgb| {
            a.0.abs_diff(b.0) as u32 + a.1.abs_diff(b.1) as u32 + a.2.abs_diff(b.2) as u32
        };
        let generations = PALETTE.generations;
        for (g, &color) in generations.iter().enumerate() {
            assert!(
                distance(color, PALETTE.root_share) > 120,
                "generation {g} looks white"
            );
            for &other in &generations[g + 1..] {
                assert!(
                    distance(color, other) > 60,
                    "generation {g} looks like another"
                );
            }
        }
        assert_eq!(generation(40), generations[4]);
    }

    #[test]
    fn the_page_gets_css_colours() {
        let json = serde_json::to_value(&PALETTE).expect("JSON");
        assert_eq!(json["generations"][0], "#59e1ff");
        assert_eq!(json["root_share"], "#ffffff");
    }
}
