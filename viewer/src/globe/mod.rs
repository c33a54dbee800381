//! The globe: the Earth as a textured sphere, its night side by the campaign clock, the light of
//! recent landings (`density.rs`), and its atmosphere, on a deep-space background.

mod atmosphere;
mod daylight;
pub mod density;
pub mod map;

use bevy::{
    asset::{RenderAssetUsages, embedded_asset},
    mesh::{Indices, PrimitiveTopology},
    prelude::*,
};

use crate::geo::to_unit;
use atmosphere::{AtmosphereMaterial, SHELL_RADIUS};
use daylight::{NightMaterial, NightShell};

pub const SPACE: Color = Color::srgb(0.004, 0.008, 0.02);

pub(super) fn plugin(app: &mut App) {
    embedded_asset!(app, "atmosphere.wgsl");
    embedded_asset!(app, "night.wgsl");
    app.add_plugins((
        MaterialPlugin::<AtmosphereMaterial>::default(),
        MaterialPlugin::<NightMaterial>::default(),
        MaterialPlugin::<density::DensityMaterial>::default(),
        density::plugin,
    ))
    .insert_resource(ClearColor(SPACE))
    .add_systems(Startup, spawn)
    .add_systems(
        Update,
        daylight::follow_the_sun.in_set(crate::AppSystems::Present),
    );
}

fn spawn(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut images: ResMut<Assets<Image>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    mut atmospheres: ResMut<Assets<AtmosphereMaterial>>,
    mut nights: ResMut<Assets<NightMaterial>>,
) {
    let surface = images.add(map::Raster::world().into_image());
    commands.spawn((
        Name::new("globe"),
        Mesh3d(meshes.add(sphere(1.0, 192, 96))),
        MeshMaterial3d(materials.add(StandardMaterial {
            base_color_texture: Some(surface.clone()),
            // The map's own colours, unlit: a dark night-side look that reads on any projector.
            unlit: true,
            ..default()
        })),
    ));
    let night = nights.add(NightMaterial {
        sun: Vec4::ZERO,
        map: surface,
    });
    commands.insert_resource(NightShell(night.clone()));
    commands.spawn((
        Name::new("night side"),
        Mesh3d(meshes.add(sphere(daylight::SHELL_RADIUS, 192, 96))),
        MeshMaterial3d(night),
    ));
    commands.spawn((
        Name::new("atmosphere"),
        Mesh3d(meshes.add(sphere(SHELL_RADIUS, 96, 48))),
        MeshMaterial3d(atmospheres.add(AtmosphereMaterial::default())),
    ));
}

/// A latitude/longitude sphere whose texture coordinates match the equirectangular map
/// (u = (lon + 180) / 360, v = (90 - lat) / 180) and whose points match [`to_unit`].
fn sphere(radius: f32, sectors: u32, stacks: u32) -> Mesh {
    let mut positions = Vec::new();
    let mut normals = Vec::new();
    let mut uvs = Vec::new();
    for j in 0..=stacks {
        let v = j as f32 / stacks as f32;
        let lat = 90.0 - 180.0 * v;
        for i in 0..=sectors {
            let u = i as f32 / sectors as f32;
            let lon = 360.0 * u - 180.0;
            let normal = to_unit(lat as f64, lon as f64);
            positions.push(normal * radius);
            normals.push(normal);
            uvs.push([u, v]);
        }
    }
    let row = sectors + 1;
    let mut indices = Vec::new();
    for j in 0..stacks {
        for i in 0..sectors {
            let (a, b) = (j * row + i, (j + 1) * row + i);
            indices.extend([a, b, a + 1, a + 1, b, b + 1]);
        }
    }
    Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::RENDER_WORLD,
    )
    .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, positions)
    .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, normals)
    .with_inserted_attribute(Mesh::ATTRIBUTE_UV_0, uvs)
    .with_inserted_indices(Indices::U32(indices))
}
