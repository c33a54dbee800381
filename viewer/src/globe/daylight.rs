//! Day and night by the campaign clock: the night side of the Earth dims, so a campaign's daily
//! rhythm shows where its audience is awake. The sun's position is the usual low-precision solar
//! ephemeris (about 0.1° over the century), plenty for a terminator.

use bevy::{prelude::*, render::render_resource::AsBindGroup, shader::ShaderRef};

use crate::{feed::LatestArcTime, geo::to_unit, replay::Playback};

/// Radius of the night shell, just above the map.
pub const SHELL_RADIUS: f32 = 1.001;
/// How dark the middle of the night is (alpha of black over the map).
const NIGHT: f32 = 0.55;

#[derive(Asset, TypePath, AsBindGroup, Debug, Clone)]
pub struct NightMaterial {
    /// xyz: unit direction towards the sun; w: darkness of the night (0: no clock yet).
    #[uniform(0)]
    pub sun: Vec4,
    /// The globe's map: the night leaves its coastlines lit, so land reads as land.
    #[texture(1)]
    #[sampler(2)]
    pub map: Handle<Image>,
}

impl Material for NightMaterial {
    fn fragment_shader() -> ShaderRef {
        "embedded://viralglobe_viewer/globe/night.wgsl".into()
    }

    fn alpha_mode(&self) -> AlphaMode {
        AlphaMode::Blend
    }

    fn enable_prepass() -> bool {
        false
    }

    fn enable_shadows() -> bool {
        false
    }
}

/// The night shell's material.
#[derive(Resource)]
pub struct NightShell(pub Handle<NightMaterial>);

/// Latitude and longitude, in degrees, of the point where the sun is overhead at `ts_ms` (UTC
/// epoch milliseconds).
pub fn subsolar_point(ts_ms: i64) -> (f64, f64) {
    // Days from J2000.0 (2000-01-01 12:00 UTC).
    let d = ts_ms as f64 / 86_400_000.0 - 10_957.5;
    let mean_anomaly = (357.529 + 0.985_600_28 * d).to_radians();
    let mean_longitude = 280.459 + 0.985_647_36 * d;
    let ecliptic_longitude =
        (mean_longitude + 1.915 * mean_anomaly.sin() + 0.020 * (2.0 * mean_anomaly).sin())
            .to_radians();
    let obliquity = (23.439 - 0.000_000_36 * d).to_radians();
    let declination = (obliquity.sin() * ecliptic_longitude.sin()).asin();
    let right_ascension = (obliquity.cos() * ecliptic_longitude.sin())
        .atan2(ecliptic_longitude.cos())
        .to_degrees();
    let sidereal_degrees = (18.697_374_558 + 24.065_709_824_419_08 * d) * 15.0;
    let lon = (right_ascension - sidereal_degrees + 180.0).rem_euclid(360.0) - 180.0;
    (declination.to_degrees(), lon)
}

/// Points the night shell away from the sun of the campaign's clock: the replay's playhead, or
/// the latest live arc's time.
pub fn follow_the_sun(
    shell: Option<Res<NightShell>>,
    playback: Option<Res<Playback>>,
    latest: Res<LatestArcTime>,
    mut materials: ResMut<Assets<NightMaterial>>,
) {
    let Some(shell) = shell else { return };
    let clock = playback.map(|p| p.ts_ms as i64).or(latest.0);
    let sun = match clock {
        Some(ts) => {
            let (lat, lon) = subsolar_point(ts);
            to_unit(lat, lon).extend(NIGHT)
        }
        None => Vec4::ZERO,
    };
    if materials.get(&shell.0).is_some_and(|m| m.sun != sun)
        && let Some(mut material) = materials.get_mut(&shell.0)
    {
        material.sun = sun;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> (f64, f64) {
        let ts = viralglobe_protocol::Timestamp::parse_rfc3339(rfc3339).expect("a time");
        subsolar_point(ts.0)
    }

    #[test]
    fn the_sun_stands_where_the_calendar_says() {
        // Where the mean sun would be, 15° a hour west of Greenwich at noon, corrected by the
        // equation of time: a sun running early stands further west, a late one further east.
        // The December solstice of 2012 (11:12 UTC, the sun 2 minutes early): over the Tropic of
        // Capricorn, at 12° E less 0.5°.
        let (lat, lon) = at("2012-12-21T11:12:00Z");
        assert!((lat + 23.44).abs() < 0.1, "{lat}");
        assert!((lon - 11.5).abs() < 1.0, "{lon}");
        // The March equinox of 2012 (05:14 UTC, the sun 7.5 minutes late): over the equator, at
        // 101.5° E plus 1.9°.
        let (lat, lon) = at("2012-03-20T05:14:00Z");
        assert!(lat.abs() < 0.1, "{lat}");
        assert!((lon - 103.4).abs() < 1.0, "{lon}");
        // The demo's first post, 2012-10-16 17:00 UTC (the sun 14 minutes early): 9° south, at
        // 75° W less 3.5°, off the coast of Peru.
        let (lat, lon) = at("2012-10-16T17:00:00Z");
        assert!((lat + 8.9).abs() < 0.5, "{lat}");
        assert!((lon + 78.5).abs() < 1.0, "{lon}");
    }
}
