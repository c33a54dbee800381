// The night side: a thin shell over the globe, black with an alpha that rises past the
// terminator (a twilight band of about ±5°), by the sun's direction in the material's uniform.
// Coastlines stay lit through it (the map's brightest blue), as a night photograph's shores do,
// so the land still reads as land.
#import bevy_pbr::forward_io::VertexOutput

// xyz: unit direction towards the sun; w: how dark the night is (0 before the clock is known).
@group(#{MATERIAL_BIND_GROUP}) @binding(0) var<uniform> sun: vec4<f32>;
// The globe's map, with the same texture coordinates as the shell.
@group(#{MATERIAL_BIND_GROUP}) @binding(1) var map: texture_2d<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(2) var map_sampler: sampler;

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    let light = dot(normalize(in.world_normal), sun.xyz);
    let night = 1.0 - smoothstep(-0.09, 0.09, light);
    // Linear blue: ocean 0.003, land 0.07, borders 0.18, coasts 0.46.
    let coast = smoothstep(0.2, 0.42, textureSample(map, map_sampler, in.uv).b);
    return vec4(0.0, 0.0, 0.0, night * sun.w * (1.0 - 0.8 * coast));
}
