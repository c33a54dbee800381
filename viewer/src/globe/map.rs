//! The Earth's surface as an equirectangular image drawn at start: land filled, coastlines and
//! country borders stroked, a faint graticule; with its mipmaps, so coastlines stay clean when the
//! globe is small. Geography: Natural Earth 1:50m (public domain), the asset the browser page uses.

use bevy::{
    asset::RenderAssetUsages,
    image::{ImageAddressMode, ImageFilterMode, ImageSampler, ImageSamplerDescriptor},
    prelude::*,
    render::render_resource::{Extent3d, TextureDimension, TextureFormat},
};
use serde::Deserialize;

const WORLD: &[u8] = include_bytes!("../../../assets/world/world-50m.json");

pub const WIDTH: usize = 4096;
pub const HEIGHT: usize = 2048;

pub const OCEAN: [u8; 4] = [5, 10, 22, 255];
pub const LAND: [u8; 4] = [30, 50, 76, 255];
const COAST: [u8; 4] = [78, 130, 180, 255];
const BORDER: [u8; 4] = [52, 84, 118, 255];
const GRATICULE: [u8; 4] = [11, 20, 36, 255];

type Ring = Vec<[f32; 2]>;

#[derive(Deserialize)]
struct World {
    land: Vec<Vec<Ring>>,
    borders: Vec<Ring>,
}

/// RGBA pixels, row 0 at 90°N, column 0 at 180°W.
pub struct Raster {
    pub pixels: Vec<[u8; 4]>,
}

impl Raster {
    pub fn world() -> Self {
        let world: World =
            serde_json::from_slice(WORLD).expect("the embedded world asset is valid");
        let mut raster = Self {
            pixels: vec![OCEAN; WIDTH * HEIGHT],
        };
        for lat in (-60..=60).step_by(30) {
            raster.line(&[[-180.0, lat as f32], [180.0, lat as f32]], GRATICULE);
        }
        for lon in (-180..180).step_by(30) {
            raster.line(&[[lon as f32, -85.0], [lon as f32, 85.0]], GRATICULE);
        }
        let rings: Vec<&Ring> = world.land.iter().flatten().collect();
        raster.fill(&rings, LAND);
        for ring in &rings {
            raster.line(ring, COAST);
        }
        for line in &world.borders {
            raster.line(line, BORDER);
        }
        raster
    }

    #[cfg(test)]
    pub fn at(&self, lat: f32, lon: f32) -> [u8; 4] {
        let (x, y) = to_pixel([lon, lat]);
        self.pixels[(y as usize).min(HEIGHT - 1) * WIDTH + (x as usize).min(WIDTH - 1)]
    }

    /// Even-odd scanline fill of all rings together (holes are rings too).
    fn fill(&mut self, rings: &[&Ring], color: [u8; 4]) {
        let mut crossings: Vec<Vec<f32>> = vec![Vec::new(); HEIGHT];
        for ring in rings {
            for (a, b) in edges(ring) {
                let ((x0, y0), (x1, y1)) = (to_pixel(a), to_pixel(b));
                let (top, bottom) = (y0.min(y1), y0.max(y1));
                // Rows whose centre lies in [top, bottom).
                let first = (top - 0.5).ceil().max(0.0) as usize;
                let last = ((bottom - 0.5).ceil() as usize).min(HEIGHT);
                for (row, hits) in crossings.iter_mut().enumerate().take(last).skip(first) {
                    let y = row as f32 + 0.5;
                    hits.push(x0 + (y - y0) / (y1 - y0) * (x1 - x0));
                }
            }
        }
        for (row, hits) in crossings.iter_mut().enumerate() {
            hits.sort_by(f32::total_cmp);
            for pair in hits.chunks_exact(2) {
                let start = (pair[0] - 0.5).ceil().max(0.0) as usize;
                let end = ((pair[1] - 0.5).ceil().max(0.0) as usize).min(WIDTH);
                self.pixels[row * WIDTH + start.min(end)..row * WIDTH + end].fill(color);
            }
        }
    }

    fn line(&mut self, points: &[[f32; 2]], color: [u8; 4]) {
        for pair in points.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if (a[0] - b[0]).abs() > 180.0 {
                continue; // the antimeridian, not a line across the map
            }
            let ((x0, y0), (x1, y1)) = (to_pixel(a), to_pixel(b));
            let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as usize;
            for i in 0..=steps {
                let t = i as f32 / steps as f32;
                let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
                let (x, y) = ((x as usize).min(WIDTH - 1), (y as usize).min(HEIGHT - 1));
                self.pixels[y * WIDTH + x] = color;
            }
        }
    }

    /// The image with its mipmap chain, for the globe's material.
    pub fn into_image(self) -> Image {
        let base: Vec<u8> = self.pixels.iter().flatten().copied().collect();
        let mut mips = base.clone();
        let (mut w, mut h) = (WIDTH, HEIGHT);
        let mut level = base.clone();
        let mut levels = 1;
        while w > 1 && h > 1 {
            level = halve(&level, w, h);
            w /= 2;
            h /= 2;
            mips.extend_from_slice(&level);
            levels += 1;
        }
        let mut image = Image::new(
            Extent3d {
                width: WIDTH as u32,
                height: HEIGHT as u32,
                depth_or_array_layers: 1,
            },
            TextureDimension::D2,
            base,
            TextureFormat::Rgba8UnormSrgb,
            RenderAssetUsages::RENDER_WORLD,
        );
        // `Image::new` takes one level; the chain follows it in the same buffer.
        image.data = Some(mips);
        image.texture_descriptor.mip_level_count = levels;
        image.sampler = ImageSampler::Descriptor(ImageSamplerDescriptor {
            address_mode_u: ImageAddressMode::Repeat,
            mag_filter: ImageFilterMode::Linear,
            min_filter: ImageFilterMode::Linear,
            mipmap_filter: ImageFilterMode::Linear,
            // No anisotropic filtering: lavapipe (Mesa 22.3) spends minutes on a frame that
            // shows a pole, where the sphere's texture coordinates span the map in a pixel
            // (the story camera, drawn back over the Arctic, hung a 720p export).
            ..default()
        });
        image
    }
}

/// Edges of a closed ring. An edge that crosses the antimeridian becomes two that meet the map's
/// edges, and the ring is closed along both edges toward a pole: two crossings' closings overlap
/// beyond the second and cancel in the even-odd fill, leaving the stretch between them; a ring
/// around a pole (one crossing) is closed across that pole.
fn edges(ring: &[[f32; 2]]) -> Vec<([f32; 2], [f32; 2])> {
    let mean_lat = ring.iter().map(|p| p[1]).sum::<f32>() / ring.len().max(1) as f32;
    let pole = if mean_lat >= 0.0 { 90.0 } else { -90.0 };
    let mut out = Vec::with_capacity(ring.len() + 4);
    for i in 0..ring.len() {
        let (a, b) = (ring[i], ring[(i + 1) % ring.len()]);
        if (a[0] - b[0]).abs() > 180.0 {
            let edge = if a[0] > 0.0 { 180.0 } else { -180.0 };
            let b_shifted = b[0] + 2.0 * edge;
            let run = b_shifted - a[0];
            // An edge from one side of the seam to the other (both ends at ±180) meets it at `a`.
            let t = if run.abs() < 1e-6 {
                0.0
            } else {
                (edge - a[0]) / run
            };
            let lat = a[1] + (b[1] - a[1]) * t;
            out.push((a, [edge, lat]));
            out.push(([-edge, lat], b));
            out.push(([edge, lat], [edge, pole]));
            out.push(([-edge, lat], [-edge, pole]));
        } else {
            out.push((a, b));
        }
    }
    out
}

fn to_pixel([lon, lat]: [f32; 2]) -> (f32, f32) {
    (
        (lon + 180.0) / 360.0 * WIDTH as f32,
        (90.0 - lat) / 180.0 * HEIGHT as f32,
    )
}

/// One mip level down: each pixel the mean of four (in sRGB bytes; close enough for a map).
fn halve(level: &[u8], w: usize, h: usize) -> Vec<u8> {
    let (hw, hh) = (w / 2, h / 2);
    let mut out = vec![0u8; hw * hh * 4];
    for y in 0..hh {
        for x in 0..hw {
            for c in 0..4 {
                let at =
                    |dx: usize, dy: usize| level[((2 * y + dy) * w + 2 * x + dx) * 4 + c] as u32;
                out[(y * hw + x) * 4 + c] =
                    ((at(0, 0) + at(1, 0) + at(0, 1) + at(1, 1) + 2) / 4) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continents_are_land_and_oceans_are_water() {
        let map = Raster::world();
        for (lat, lon, what) in [
            (39.0, -100.0, "Kansas"),
            (-15.0, -55.0, "Brazil"),
            (48.0, 10.0, "Germany"),
            (-25.0, 134.0, "Australia"),
            (62.0, 100.0, "Siberia"),
            (-80.0, 0.0, "Antarctica"),
            (68.0, 178.0, "Chukotka, beside the antimeridian"),
        ] {
            assert_eq!(map.at(lat, lon), LAND, "{what} should be land");
        }
        for (lat, lon, what) in [
            (30.0, -40.0, "the Atlantic"),
            (5.0, -145.0, "the Pacific"),
            (-30.0, 80.0, "the Indian Ocean"),
            (75.0, -170.0, "the Chukchi Sea"),
        ] {
            assert_eq!(map.at(lat, lon), OCEAN, "{what} should be water");
        }
    }
}
