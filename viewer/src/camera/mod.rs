//! The camera: orbit with the mouse, zoom with the wheel; when nobody touches it, it turns toward
//! where arcs are landing (follow, on by default, F) or rotates gently when all is quiet; P frames
//! the presenter's view.

use bevy::{
    camera::Hdr,
    core_pipeline::tonemapping::Tonemapping,
    input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll},
    post_process::bloom::Bloom,
    prelude::*,
};

use crate::{
    AppSystems,
    arcs::{ArcRing, DisplayClock},
    geo::{lat_lon, to_unit},
};

/// Seconds without input before the camera moves by itself.
const IDLE_SECS: f32 = 6.0;
/// Degrees a second of the idle rotation.
const ROTATION_DEG_PER_SEC: f32 = 4.0;
/// The presenter's framing: the Americas and Europe, the launch's main stage.
pub const PRESENTER_VIEW: Orbit = Orbit {
    lat: 28.0,
    lon: -62.0,
    distance: 3.1,
};
const CLOSEST: f32 = 1.35;
const FARTHEST: f32 = 8.0;

/// Where the camera looks from: above a latitude and longitude, at a distance from the centre in
/// globe radii.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Orbit {
    pub lat: f32,
    pub lon: f32,
    pub distance: f32,
}

#[derive(Component, Debug)]
pub struct GlobeCamera {
    /// Where the camera is now and where it eases to.
    pub now: Orbit,
    pub target: Orbit,
    pub follow: bool,
    /// Story mode sets the target; idle wandering keeps out of its way.
    pub directed: bool,
    idle_secs: f32,
}

pub(super) fn plugin(app: &mut App) {
    app.add_systems(Startup, spawn)
        .add_systems(Update, (steer, keys).in_set(AppSystems::Input))
        .add_systems(Update, (wander, ease).chain().in_set(AppSystems::Camera));
}

fn spawn(mut commands: Commands) {
    let start = Orbit {
        lat: 30.0,
        lon: -100.0,
        distance: 3.1,
    };
    commands.spawn((
        Name::new("globe camera"),
        Camera3d::default(),
        // The HUD draws on this camera, also when it renders to an image for an export.
        IsDefaultUiCamera,
        Hdr,
        Tonemapping::AcesFitted,
        Bloom {
            intensity: 0.12,
            ..Bloom::NATURAL
        },
        GlobeCamera {
            now: start,
            target: start,
            follow: true,
            directed: false,
            idle_secs: 0.0,
        },
        transform(start),
    ));
}

fn transform(orbit: Orbit) -> Transform {
    Transform::from_translation(to_unit(orbit.lat as f64, orbit.lon as f64) * orbit.distance)
        .looking_at(Vec3::ZERO, Vec3::Y)
}

fn steer(
    mouse: Option<Res<ButtonInput<MouseButton>>>,
    motion: Option<Res<AccumulatedMouseMotion>>,
    scroll: Option<Res<AccumulatedMouseScroll>>,
    mut camera: Query<&mut GlobeCamera>,
    time: Res<Time>,
) {
    let Ok(mut camera) = camera.single_mut() else {
        return;
    };
    camera.idle_secs += time.delta_secs();
    if let (Some(mouse), Some(motion)) = (mouse, motion)
        && mouse.pressed(MouseButton::Left)
        && motion.delta != Vec2::ZERO
    {
        // A drag across the view turns the globe about a quarter at the default distance.
        let degrees_per_pixel = 0.15 * camera.now.distance / 3.0;
        camera.target.lon -= motion.delta.x * degrees_per_pixel;
        camera.target.lat =
            (camera.target.lat + motion.delta.y * degrees_per_pixel).clamp(-80.0, 80.0);
        camera.idle_secs = 0.0;
    }
    if let Some(scroll) = scroll
        && scroll.delta.y != 0.0
    {
        let factor = (1.0 - scroll.delta.y.signum() * 0.1).max(0.5);
        camera.target.distance = (camera.target.distance * factor).clamp(CLOSEST, FARTHEST);
        camera.idle_secs = 0.0;
    }
}

fn keys(keys: Option<Res<ButtonInput<KeyCode>>>, mut camera: Query<&mut GlobeCamera>) {
    let (Some(keys), Ok(mut camera)) = (keys, camera.single_mut()) else {
        return;
    };
    if keys.just_pressed(KeyCode::KeyF) {
        camera.follow = !camera.follow;
    }
    if keys.just_pressed(KeyCode::KeyP) {
        camera.target = PRESENTER_VIEW;
        camera.idle_secs = 0.0;
    }
}

/// Idle: turn toward the action, or rotate.
fn wander(
    mut camera: Query<&mut GlobeCamera>,
    ring: Res<ArcRing>,
    clock: Res<DisplayClock>,
    time: Res<Time>,
) {
    let Ok(mut camera) = camera.single_mut() else {
        return;
    };
    if camera.idle_secs < IDLE_SECS || camera.directed {
        return;
    }
    match ring
        .recent_destinations(clock.now)
        .filter(|_| camera.follow)
    {
        Some(action) => {
            let (lat, lon) = lat_lon(action);
            camera.target.lat = lat.clamp(-45.0, 55.0);
            camera.target.lon = lon;
        }
        None => camera.target.lon += ROTATION_DEG_PER_SEC * time.delta_secs(),
    }
}

/// Eases toward the target, the short way round.
fn ease(mut camera: Query<(&mut GlobeCamera, &mut Transform)>, time: Res<Time>) {
    let Ok((mut camera, mut at)) = camera.single_mut() else {
        return;
    };
    let k = 1.0 - (-time.delta_secs() * 2.5).exp();
    let target = camera.target;
    let now = &mut camera.now;
    let dlon = (target.lon - now.lon + 540.0).rem_euclid(360.0) - 180.0;
    now.lon = (now.lon + dlon * k + 540.0).rem_euclid(360.0) - 180.0;
    now.lat += (target.lat - now.lat) * k;
    now.distance += (target.distance - now.distance) * k;
    let orbit = *now;
    *at = transform(orbit);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{arc, headless_app};
    use std::time::Duration;
    use viralglobe_protocol::ArcKind;

    #[test]
    fn idle_camera_turns_toward_landing_arcs_and_p_frames_the_presenter_view() {
        let mut app = headless_app();
        crate::configure_sets(&mut app);
        app.init_resource::<ArcRing>()
            .init_resource::<DisplayClock>()
            .insert_resource(bevy::time::TimeUpdateStrategy::ManualDuration(
                Duration::from_millis(500),
            ))
            .init_resource::<ButtonInput<KeyCode>>()
            .add_plugins(plugin);
        app.update();
        // Arcs landing in London.
        let mut ring = app.world_mut().resource_mut::<ArcRing>();
        for seq in 0..20 {
            ring.launch(&arc(seq, ArcKind::Click, 0), 0.0, 1.0);
        }
        for _ in 0..40 {
            app.update();
        }
        let mut query = app.world_mut().query::<&GlobeCamera>();
        let camera = query.single(app.world()).expect("one camera");
        assert!(
            (camera.target.lat - 51.5).abs() < 1.0,
            "{:?}",
            camera.target
        );
        assert!(
            camera.now.lon.abs() < 5.0,
            "turned to London: {:?}",
            camera.now
        );

        app.world_mut()
            .resource_mut::<ButtonInput<KeyCode>>()
            .press(KeyCode::KeyP);
        app.update();
        let camera = query.single(app.world()).expect("one camera");
        assert_eq!(camera.target, PRESENTER_VIEW);
    }
}
