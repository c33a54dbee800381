// The atmosphere: a glow that hugs the globe's rim and fades into space. Drawn on a shell around
// the globe; each fragment measures how close its view ray passes to the Earth.
#import bevy_pbr::{forward_io::VertexOutput, mesh_view_bindings::view}

const COLOR: vec3<f32> = vec3(0.25, 0.55, 1.0);

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    let eye = view.world_position;
    let ray = normalize(in.world_position.xyz - eye);
    // Distance from the globe's centre to the ray, in globe radii.
    let closest = length(cross(eye, ray));
    var glow: f32;
    if closest > 1.0 {
        glow = exp(-(closest - 1.0) / 0.045) * (1.0 - smoothstep(1.12, 1.18, closest));
    } else {
        glow = pow(closest, 14.0) * 0.35;
    }
    return vec4(COLOR * glow * 0.6, 0.0);
}
