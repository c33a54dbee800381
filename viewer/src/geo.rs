//! Positions on the unit globe. North is +Y; longitude 0 faces +Z and 90°E faces +X, so the
//! equirectangular map texture wraps the sphere with u = (lon + 180) / 360.

use bevy::math::Vec3;

/// The point of the unit sphere at a latitude and longitude, in degrees.
pub fn to_unit(lat: f64, lon: f64) -> Vec3 {
    let (lat, lon) = (lat.to_radians(), lon.to_radians());
    Vec3::new(
        (lat.cos() * lon.sin()) as f32,
        lat.sin() as f32,
        (lat.cos() * lon.cos()) as f32,
    )
}

/// Latitude and longitude, in degrees, of a direction from the globe's centre.
pub fn lat_lon(direction: Vec3) -> (f32, f32) {
    let d = direction.normalize_or(Vec3::Z);
    (
        d.y.clamp(-1.0, 1.0).asin().to_degrees(),
        d.x.atan2(d.z).to_degrees(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lat_lon_round_trips_and_axes_are_as_documented() {
        assert!(to_unit(90.0, 0.0).abs_diff_eq(Vec3::Y, 1e-6));
        assert!(to_unit(0.0, 0.0).abs_diff_eq(Vec3::Z, 1e-6));
        assert!(to_unit(0.0, 90.0).abs_diff_eq(Vec3::X, 1e-6));
        let (lat, lon) = lat_lon(to_unit(34.05, -118.24));
        assert!((lat - 34.05).abs() < 1e-3 && (lon + 118.24).abs() < 1e-3);
    }
}
