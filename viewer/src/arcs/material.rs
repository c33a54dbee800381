//! The arcs' material and the one mesh every chunk draws: per slot, a ribbon along the arc and a
//! quad for the arrival pulse. The vertices carry only slot numbers and positions along the arc;
//! the shader finds the rest in the chunk's storage buffer.

use bevy::{
    asset::RenderAssetUsages,
    math::Vec4,
    mesh::{Indices, MeshVertexBufferLayoutRef, PrimitiveTopology},
    pbr::{MaterialPipeline, MaterialPipelineKey},
    prelude::*,
    render::{
        render_resource::{AsBindGroup, RenderPipelineDescriptor, SpecializedMeshPipelineError},
        storage::ShaderBuffer,
    },
    shader::ShaderRef,
};

use super::ring::SLOTS_PER_CHUNK;

/// Quads along each ribbon.
const SEGMENTS: u32 = 20;

#[derive(Asset, TypePath, AsBindGroup, Debug, Clone)]
pub struct ArcMaterial {
    /// Display time now, flight seconds, trail fraction, pulse seconds.
    #[uniform(0)]
    pub clock: Vec4,
    #[storage(1, read_only)]
    pub slots: Handle<ShaderBuffer>,
}

impl Material for ArcMaterial {
    fn vertex_shader() -> ShaderRef {
        "embedded://viralglobe_viewer/arcs/arcs.wgsl".into()
    }

    fn fragment_shader() -> ShaderRef {
        "embedded://viralglobe_viewer/arcs/arcs.wgsl".into()
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

    fn specialize(
        _pipeline: &MaterialPipeline,
        descriptor: &mut RenderPipelineDescriptor,
        _layout: &MeshVertexBufferLayoutRef,
        _key: MaterialPipelineKey<Self>,
    ) -> Result<(), SpecializedMeshPipelineError> {
        // Ribbons face the camera from either side as arcs turn.
        descriptor.primitive.cull_mode = None;
        Ok(())
    }
}

/// The mesh of one chunk: the same for every chunk, since slots are numbered within a chunk.
pub fn chunk_mesh() -> Mesh {
    let per_slot = (SEGMENTS + 1) * 2 + 4;
    let mut positions = Vec::with_capacity(SLOTS_PER_CHUNK * per_slot as usize);
    let mut corners = Vec::with_capacity(positions.capacity());
    let mut indices = Vec::with_capacity(SLOTS_PER_CHUNK * (SEGMENTS as usize + 1) * 6);
    for slot in 0..SLOTS_PER_CHUNK as u32 {
        let base = slot * per_slot;
        for i in 0..=SEGMENTS {
            let t = i as f32 / SEGMENTS as f32;
            positions.push([slot as f32, t, -1.0]);
            positions.push([slot as f32, t, 1.0]);
            corners.extend([[0.0, 0.0]; 2]);
        }
        for i in 0..SEGMENTS {
            let a = base + i * 2;
            indices.extend([a, a + 1, a + 2, a + 1, a + 3, a + 2]);
        }
        let quad = base + (SEGMENTS + 1) * 2;
        for corner in [[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]] {
            positions.push([slot as f32, -1.0, 0.0]);
            corners.push(corner);
        }
        indices.extend([quad, quad + 1, quad + 2, quad, quad + 2, quad + 3]);
    }
    Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::RENDER_WORLD,
    )
    .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, positions)
    .with_inserted_attribute(Mesh::ATTRIBUTE_UV_0, corners)
    .with_inserted_indices(Indices::U32(indices))
}
