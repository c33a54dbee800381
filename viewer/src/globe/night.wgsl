// The night side: a thin shell over the globe, black with an alpha that rises past the
// terminator (a twilight band of about ±5°), by the sun's direction in the material's uniform.
#import bevy_pbr::forward_io::VertexOutput

// xyz: unit direction towards the sun; w: how dark the night is (0 before the clock is known).
@group(#{MATERIAL_BIND_GROUP}) @binding(0) var<uniform> sun: vec4<f32>;

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    let light = dot(normalize(in.world_normal), sun.xyz);
    let night = 1.0 - smoothstep(-0.09, 0.09, light);
    return vec4(0.0, 0.0, 0.0, night * sun.w);
}
