//! Arc colours: the shared palette (`viralglobe_protocol::palette`, which the page uses too) in
//! the linear colour space the arc shader blends in.

use bevy::color::{LinearRgba, Srgba};
use viralglobe_protocol::{
    ArcEvent,
    palette::{self, PALETTE, Rgb},
};

fn linear(Rgb(r, g, b): Rgb) -> LinearRgba {
    Srgba::rgb_u8(r, g, b).into()
}

pub fn of(arc: &ArcEvent) -> LinearRgba {
    linear(palette::of(arc))
}

/// What the legend shows: campaign posts, then outgoing arcs by generation, then inbound ones.
pub fn legend() -> Vec<(LinearRgba, String)> {
    let mut entries = vec![(
        linear(PALETTE.root_share),
        "campaign post (pulse)".to_owned(),
    )];
    let last = PALETTE.generations.len() - 1;
    entries.extend(PALETTE.generations.iter().enumerate().map(|(g, &color)| {
        let plus = if g == last { "+" } else { "" };
        (
            linear(color),
            format!("out: click / share, generation {g}{plus}"),
        )
    }));
    entries.push((linear(PALETTE.signup), "in: sign-up".to_owned()));
    entries.push((linear(PALETTE.purchase), "in: purchase".to_owned()));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared sRGB colours come out as the linear values the shader was tuned with.
    #[test]
    fn colours_are_converted_to_linear() {
        let first = linear(PALETTE.generations[0]);
        assert!((first.red - 0.10).abs() < 0.01 && (first.green - 0.75).abs() < 0.01);
        assert_eq!(linear(PALETTE.root_share), LinearRgba::WHITE);
        assert_eq!(legend().len(), 8);
    }
}
