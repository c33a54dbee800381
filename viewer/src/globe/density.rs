//! The density layer: every landing — drawn or left out by the arc budget — adds light to its
//! place on the globe, and the light fades over a few seconds, so a peak reads as glowing regions
//! (like city lights) rather than as a haze of lines. Heat is kept in half-degree cells of an
//! equirectangular grid and shown on a shell just above the night side as a dot a cell
//! (`density.wgsl`), added to what is behind it.

use bevy::{
    asset::{RenderAssetUsages, embedded_asset},
    prelude::*,
    render::render_resource::{AsBindGroup, Extent3d, TextureDimension, TextureFormat},
    shader::ShaderRef,
};

use crate::{
    AppSystems,
    feed::{FeedReset, NewArcs},
};

/// Cells around the globe and from pole to pole.
pub const WIDTH: usize = 720;
pub const HEIGHT: usize = 360;
/// Seconds of display time in which a landing's light falls to a third (e^-1).
const FADE_SECS: f32 = 4.0;
/// Landings in a cell (within the fade) that light it to 63% of full.
const SATURATION: f32 = 30.0;
/// The spread of a landing's light, in cells (to the dots around its own).
const SIGMA: f32 = 1.2;
/// Warm white, as lights seen from space.
const LIGHT: [f32; 3] = [1.0, 0.86, 0.62];
/// The lights' colour, for the legend.
pub const LIGHT_COLOR: Color = Color::srgb(LIGHT[0], LIGHT[1], LIGHT[2]);
/// Just above the night side (`daylight::SHELL_RADIUS`), under the arcs' landing pulses.
const SHELL_RADIUS: f32 = 1.0012;

pub(super) fn plugin(app: &mut App) {
    embedded_asset!(app, "density.wgsl");
    app.add_systems(Startup, spawn)
        .add_systems(
            Update,
            (clear, note_landings).chain().in_set(AppSystems::Apply),
        )
        .add_systems(Update, show.in_set(AppSystems::Present));
}

/// The layer's material: the heat image, drawn as a dot a cell (`density.wgsl`), additive.
#[derive(Asset, TypePath, AsBindGroup, Debug, Clone)]
pub struct DensityMaterial {
    #[texture(0)]
    pub heat: Handle<Image>,
}

impl Material for DensityMaterial {
    fn fragment_shader() -> ShaderRef {
        "embedded://viralglobe_viewer/globe/density.wgsl".into()
    }

    fn alpha_mode(&self) -> AlphaMode {
        AlphaMode::Add
    }

    fn enable_prepass() -> bool {
        false
    }

    fn enable_shadows() -> bool {
        false
    }
}

/// The heat of each cell, row by row from the north pole, and the image that shows it.
#[derive(Resource)]
pub struct Density {
    pub heat: Vec<f32>,
    image: Handle<Image>,
    /// Whether the image may show light: when not, a frame neither walks the grid nor uploads.
    lit: bool,
}

impl Density {
    /// The cell a place falls in: column by longitude from 180°W, row by latitude from 90°N (the
    /// globe's texture coordinates, `super::sphere`).
    pub fn cell(lat: f64, lon: f64) -> usize {
        let column = (((lon + 180.0) / 360.0 * WIDTH as f64) as usize).min(WIDTH - 1);
        let row = (((90.0 - lat) / 180.0 * HEIGHT as f64) as usize).min(HEIGHT - 1);
        row * WIDTH + column
    }

    /// One landing: its cell, and a Gaussian's share (`SIGMA`) to the cells up to two around it,
    /// so that light gathers into round clusters of dots (longitude wraps; nothing beyond the
    /// poles).
    fn land(&mut self, lat: f64, lon: f64) {
        self.lit = true;
        let at = Self::cell(lat, lon);
        let (row, column) = ((at / WIDTH) as isize, at % WIDTH);
        for dy in -2..=2_isize {
            let y = row + dy;
            if !(0..HEIGHT as isize).contains(&y) {
                continue;
            }
            // A disc, not a square: the corners two cells off both ways get nothing.
            for dx in (-2..=2_isize).filter(|dx| dx * dx + dy * dy <= 5) {
                let x = (column + WIDTH).wrapping_add_signed(dx) % WIDTH;
                let share = (-((dx * dx + dy * dy) as f32) / (2.0 * SIGMA * SIGMA)).exp();
                self.heat[y as usize * WIDTH + x] += share;
            }
        }
    }
}

fn spawn(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut images: ResMut<Assets<Image>>,
    mut materials: ResMut<Assets<DensityMaterial>>,
) {
    let image = Image::new_fill(
        Extent3d {
            width: WIDTH as u32,
            height: HEIGHT as u32,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        &[0, 0, 0, 255],
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::MAIN_WORLD | RenderAssetUsages::RENDER_WORLD,
    );
    let image = images.add(image);
    commands.spawn((
        Name::new("density"),
        Mesh3d(meshes.add(super::sphere(SHELL_RADIUS, 192, 96))),
        MeshMaterial3d(materials.add(DensityMaterial {
            heat: image.clone(),
        })),
    ));
    commands.insert_resource(Density {
        heat: vec![0.0; WIDTH * HEIGHT],
        image,
        lit: false,
    });
}

/// The campaign continues from elsewhere (a seek, a restart): its light so far goes.
fn clear(mut resets: MessageReader<FeedReset>, density: Option<ResMut<Density>>) {
    if resets.read().count() > 0
        && let Some(mut density) = density
    {
        density.heat.fill(0.0);
        // Shown once more, dark.
        density.lit = true;
    }
}

fn note_landings(mut arcs: MessageReader<NewArcs>, density: Option<ResMut<Density>>) {
    let Some(mut density) = density else {
        arcs.clear();
        return;
    };
    for arc in arcs.read().flat_map(|batch| &batch.0) {
        density.land(arc.to.lat, arc.to.lon);
    }
}

/// Fades the heat by the frame's time and writes it into the image.
fn show(time: Res<Time>, density: Option<ResMut<Density>>, mut images: ResMut<Assets<Image>>) {
    let Some(mut density) = density else {
        return;
    };
    if !density.lit {
        return;
    }
    let fade = (-time.delta_secs() / FADE_SECS).exp();
    let density = &mut *density;
    let Some(mut image) = images.get_mut(&density.image) else {
        return;
    };
    let Some(data) = image.data.as_mut() else {
        return;
    };
    let mut lit = false;
    for (heat, pixel) in density.heat.iter_mut().zip(data.chunks_exact_mut(4)) {
        *heat *= fade;
        if *heat < 0.01 {
            *heat = 0.0;
        }
        lit |= *heat > 0.0;
        let light = 1.0 - (-*heat / SATURATION).exp();
        for (channel, tint) in pixel.iter_mut().zip(LIGHT) {
            *channel = (light * tint * 255.0) as u8;
        }
    }
    density.lit = lit;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{arc, headless_app, uncap_time};
    use viralglobe_protocol::ArcKind;

    fn app() -> App {
        let mut app = headless_app();
        app.add_plugins(AssetPlugin::default())
            .init_asset::<Image>()
            .init_asset::<Mesh>()
            .init_asset::<DensityMaterial>();
        crate::configure_sets(&mut app);
        app.add_plugins(plugin);
        uncap_time(&mut app);
        app
    }

    fn heat_at(app: &App, lat: f64, lon: f64) -> f32 {
        app.world().resource::<Density>().heat[Density::cell(lat, lon)]
    }

    #[test]
    fn every_landing_lights_its_place_and_the_light_fades() {
        let mut app = app();
        app.update();
        // 20 arcs landing in London, whatever the budget draws of them.
        let arcs: Vec<_> = (0..20).map(|n| arc(n, ArcKind::Click, 0)).collect();
        app.world_mut().write_message(NewArcs(arcs));
        app.update();
        let london = heat_at(&app, 51.51, -0.13);
        assert!(london > 15.0, "{london}");
        assert_eq!(heat_at(&app, 34.05, -118.24), 0.0, "the origin is not lit");
        // The image shows it: London's pixel is lit, the rest of the map dark.
        let density = app.world().resource::<Density>();
        let images = app.world().resource::<Assets<Image>>();
        let data = images
            .get(&density.image)
            .and_then(|i| i.data.clone())
            .expect("the image's pixels");
        let pixel = |at: usize| &data[at * 4..at * 4 + 3];
        assert!(pixel(Density::cell(51.51, -0.13))[0] > 100);
        assert_eq!(pixel(Density::cell(-33.87, 151.21)), [0, 0, 0]);
        // Four seconds later it has faded to about a third; a minute later it is out.
        app.insert_resource(bevy::time::TimeUpdateStrategy::ManualDuration(
            std::time::Duration::from_secs(4),
        ));
        app.update();
        let faded = heat_at(&app, 51.51, -0.13);
        assert!(
            faded < london * 0.45 && faded > london * 0.25,
            "{faded} of {london}"
        );
        app.insert_resource(bevy::time::TimeUpdateStrategy::ManualDuration(
            std::time::Duration::from_secs(10),
        ));
        for _ in 0..6 {
            app.update();
        }
        assert_eq!(heat_at(&app, 51.51, -0.13), 0.0);
        // …and so is its pixel: the last lit frame wrote the dark before the layer went idle.
        let density = app.world().resource::<Density>();
        let images = app.world().resource::<Assets<Image>>();
        let data = images
            .get(&density.image)
            .and_then(|i| i.data.clone())
            .expect("pixels");
        let at = Density::cell(51.51, -0.13) * 4;
        assert_eq!(&data[at..at + 3], [0, 0, 0]);
    }

    #[test]
    fn a_reset_puts_the_light_out() {
        let mut app = app();
        app.update();
        app.world_mut()
            .write_message(NewArcs(vec![arc(1, ArcKind::Share, 0)]));
        app.update();
        assert!(heat_at(&app, 51.51, -0.13) > 0.0);
        app.world_mut().write_message(FeedReset::default());
        app.update();
        assert_eq!(heat_at(&app, 51.51, -0.13), 0.0);
    }
}
