// Arcs animated on the GPU: the CPU writes each arc once (three vec4 per slot) and every frame only
// the clock changes. Each slot owns a ribbon of SEGMENTS quads along the great circle and one quad
// at the destination for the arrival pulse.
#import bevy_pbr::{
    mesh_view_bindings::view,
    view_transformations::position_world_to_clip,
}

// x: display time now (seconds); y: seconds a head takes to land; z: trail length as a fraction
// of the arc; w: seconds a pulse lasts.
@group(#{MATERIAL_BIND_GROUP}) @binding(0) var<uniform> clock: vec4<f32>;
// Per slot: [origin.xyz, start], [dest.xyz, flight scale], [rgb, width (negative: a point event)].
@group(#{MATERIAL_BIND_GROUP}) @binding(1) var<storage, read> slots: array<vec4<f32>>;

struct Vertex {
    // x: slot, y: position along the arc (0..1) or -1 for the pulse quad, z: ribbon side.
    @location(0) position: vec3<f32>,
    // Corner of the pulse quad.
    @location(2) uv: vec2<f32>,
};

struct VertexOutput {
    @builtin(position) clip: vec4<f32>,
    @location(0) color: vec3<f32>,
    // x: brightness along the trail; y: 1 for the pulse quad; z: across the ribbon (-1..1);
    // w: how much of the arc faces the camera (0 behind the limb, 1 in front).
    @location(1) shade: vec4<f32>,
    @location(2) corner: vec2<f32>,
};

// Thin: the soft profile across it (bright core, dim edges) reads as a glow, not a band.
const RIBBON_WIDTH: f32 = 0.0022;

fn hidden() -> VertexOutput {
    var out: VertexOutput;
    out.clip = vec4(0.0, 0.0, -2.0, 1.0);
    out.color = vec3(0.0);
    out.shade = vec4(0.0);
    out.corner = vec2(0.0);
    return out;
}

// 1 where a point of an arc faces the camera, falling to 0 as it goes round the limb: arcs over
// the far side fade out instead of crossing the disc in front of the near side.
fn facing(here: vec3<f32>) -> f32 {
    let to_eye = normalize(view.world_position - here);
    return smoothstep(-0.05, 0.25, dot(normalize(here), to_eye));
}

// Great-circle point at `t`, lifted by a height that grows with the arc's length.
fn arc_point(origin: vec3<f32>, dest: vec3<f32>, angle: f32, t: f32) -> vec3<f32> {
    var dir: vec3<f32>;
    if angle < 1e-4 {
        dir = origin;
    } else {
        let s = sin(angle);
        dir = (sin((1.0 - t) * angle) * origin + sin(t * angle) * dest) / s;
    }
    let lift = (0.015 + 0.13 * angle / 3.14159) * sin(3.14159 * t);
    return normalize(dir) * (1.001 + lift);
}

@vertex
fn vertex(vertex: Vertex) -> VertexOutput {
    let slot = u32(vertex.position.x) * 3u;
    let a = slots[slot];
    let b = slots[slot + 1u];
    let c = slots[slot + 2u];
    let origin = a.xyz;
    let dest = b.xyz;
    let flight = clock.y * b.w;
    let age = clock.x - a.w;
    if flight <= 0.0 || age < 0.0 {
        return hidden();
    }
    let point_event = c.w < 0.0;
    var out: VertexOutput;
    out.color = c.rgb;
    out.corner = vertex.uv;

    if vertex.position.y < 0.0 {
        // Arrival pulse: a ring that grows and fades once the head lands (at once for a point).
        var pulse_age = age - flight;
        var size = 0.035;
        var length = clock.w;
        if point_event {
            pulse_age = age;
            size = 0.08;
            length = clock.w * 2.5;
        }
        let p = pulse_age / length;
        if p < 0.0 || p > 1.0 {
            return hidden();
        }
        let n = normalize(dest);
        var helper = vec3(0.0, 1.0, 0.0);
        if abs(n.y) > 0.99 {
            helper = vec3(1.0, 0.0, 0.0);
        }
        let u = normalize(cross(helper, n));
        let v = cross(n, u);
        let radius = size * (0.15 + 0.85 * p);
        let world = n * 1.0015 + (u * vertex.uv.x + v * vertex.uv.y) * radius;
        out.clip = position_world_to_clip(world);
        out.shade = vec4(1.0 - p, 1.0, 0.0, facing(n));
        return out;
    }

    if point_event {
        return hidden();
    }
    // The visible stretch runs origin the tail dest the head; vertices outside it collapse onto its
    // ends, so the ribbon shortens instead of popping.
    let head_at = age / flight;
    let tail_at = head_at - clock.z;
    if tail_at >= 1.0 {
        return hidden();
    }
    let head = min(head_at, 1.0);
    let tail = max(tail_at, 0.0);
    let t = clamp(vertex.position.y, tail, head);
    let angle = acos(clamp(dot(origin, dest), -1.0, 1.0));
    let here = arc_point(origin, dest, angle, t);
    let ahead = arc_point(origin, dest, angle, min(t + 0.01, 1.0));
    let behind = arc_point(origin, dest, angle, max(t - 0.01, 0.0));
    let tangent = normalize(ahead - behind + vec3(1e-6, 0.0, 0.0));
    let to_eye = normalize(view.world_position - here);
    let side = normalize(cross(tangent, to_eye) + vec3(0.0, 1e-6, 0.0));
    let trail = clamp((t - tail_at) / clock.z, 0.0, 1.0);
    let width = RIBBON_WIDTH * abs(c.w) * (0.35 + 0.65 * trail);
    out.clip = position_world_to_clip(here + side * width * vertex.position.z);
    out.shade = vec4(trail, 0.0, vertex.position.z, facing(here));
    return out;
}

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    if in.shade.y > 0.5 {
        let d = length(in.corner);
        let ring = smoothstep(0.6, 0.85, d) * (1.0 - smoothstep(0.9, 1.0, d));
        let core = (1.0 - smoothstep(0.0, 0.35, d)) * 0.6;
        return vec4(in.color * (ring + core) * max(in.shade.x, 0.0) * in.shade.w * 0.8, 0.0);
    }
    // Brightest at the head, fading along the trail; additive, so alpha stays 0. Interpolation can
    // leave the trail a hair below 0, where pow is NaN — which bloom spread into black-and-white
    // speckles wherever arcs crowd (around the campaign's post at the peak): clamped first.
    let glow = pow(clamp(in.shade.x, 0.0, 1.0), 1.6);
    let across = 1.0 - abs(in.shade.z);
    let profile = across * (0.35 + 0.65 * across);
    return vec4(in.color * (0.04 + 0.55 * glow * glow) * profile * 1.6 * in.shade.w, 0.0);
}
