// The density layer as a dot matrix: each cell of the heat grid (`density.rs`) is a round dot lit
// by the cell's heat, so a crowd of landings reads as a glowing cluster of points — lights seen
// from space — and never as a square of texels.
#import bevy_pbr::forward_io::VertexOutput

@group(#{MATERIAL_BIND_GROUP}) @binding(0) var heat: texture_2d<f32>;

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    let grid = vec2<f32>(textureDimensions(heat));
    let at = in.uv * grid;
    let cell = min(vec2<u32>(floor(at)), vec2<u32>(grid) - 1u);
    let light = textureLoad(heat, cell, 0).rgb;
    // 0 at the cell's centre, 1 at the middle of its sides.
    let d = length(fract(at) - 0.5) * 2.0;
    var dot = 1.0 - smoothstep(0.5, 0.85, d);
    // Where a cell is smaller than a couple of pixels its dot would shimmer: its average instead.
    let cell_px = max(fwidth(at.x), fwidth(at.y));
    dot = mix(dot, 0.4, smoothstep(0.35, 0.7, cell_px));
    // Additive, so alpha stays 0.
    return vec4(light * dot * 1.6, 0.0);
}
