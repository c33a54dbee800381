//! The heads-up display: campaign, clock and connection (top left), counters and value per visit
//! (top right), story captions between them (`top_bar`), legend (bottom left), replay timeline (bottom), place names on the globe, a
//! campaign link's QR code (bottom right, `--qr`), a help overlay, and a black screen on B. Sizes follow the viewport
//! so a projector shows them as a laptop does.

mod blank;
mod help;
mod labels;
mod legend;
#[cfg(test)]
mod overlap_tests;
mod panel;
mod qr;
mod timeline;
pub mod top_bar;

use bevy::prelude::*;
pub use qr::QrLink;

pub const TEXT: Color = Color::srgb(0.91, 0.94, 1.0);
pub const DIM_TEXT: Color = Color::srgb(0.55, 0.63, 0.74);
pub const PANEL: Color = Color::srgba(0.02, 0.04, 0.08, 0.62);

pub(super) fn plugin(app: &mut App) {
    app.add_plugins((
        top_bar::plugin,
        panel::plugin,
        legend::plugin,
        help::plugin,
        blank::plugin,
        timeline::plugin,
        labels::plugin,
        qr::plugin,
    ));
}

/// A font size in hundredths of the viewport's smaller side.
pub fn font(size: f32) -> TextFont {
    TextFont::from_font_size(FontSize::VMin(size))
}

/// `1234567` as `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Epoch milliseconds as `2012-10-16 17:04 UTC`.
pub fn campaign_time(ms: i64) -> String {
    let text = viralglobe_protocol::Timestamp(ms).to_string();
    format!("{} {} UTC", &text[..10], &text[11..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_times_read_well() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(campaign_time(1_350_406_800_000), "2012-10-16 17:00 UTC");
    }
}
