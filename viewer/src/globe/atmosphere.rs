//! The atmosphere's material: additive, drawn on a shell a little larger than the globe.

use bevy::{prelude::*, render::render_resource::AsBindGroup, shader::ShaderRef};

/// Radius of the shell the glow is drawn on, in globe radii.
pub const SHELL_RADIUS: f32 = 1.18;

#[derive(Asset, TypePath, AsBindGroup, Debug, Clone, Default)]
pub struct AtmosphereMaterial {}

impl Material for AtmosphereMaterial {
    fn fragment_shader() -> ShaderRef {
        "embedded://viralglobe_viewer/globe/atmosphere.wgsl".into()
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
