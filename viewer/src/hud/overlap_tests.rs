//! The HUD at the sizes presenters use (720p, 1080p, 4K): the whole viewer over its demo at the
//! launch's peak in story mode with a QR code, laid out by Bevy's UI as it would be on screen
//! (no GPU: the renderer has no backend; the camera targets an image of the size). No HUD block
//! — panels, caption, legend, timeline with its labels, QR — covers another.

use bevy::{
    prelude::*,
    ui::{ComputedNode, UiGlobalTransform},
};

use crate::{story::Captions, test_support::whole_viewer};

/// The HUD's blocks, by name; each is checked with everything drawn inside it.
const BLOCKS: [&str; 6] = [
    "campaign panel",
    "counters panel",
    "caption",
    "legend",
    "timeline",
    "qr",
];

fn demo_at_the_peak(size: UVec2) -> App {
    whole_viewer(
        &[
            "--demo",
            "--story",
            "--qr",
            "https://viralglobe.example/l/bones-brigade",
            "--from",
            "2012-10-17T14:00:00Z",
            "--speed",
            "3000",
        ],
        size,
    )
}

/// The screen rectangle a block covers: its own node and every visible node inside it.
fn covered(app: &mut App, root: Entity) -> Option<Rect> {
    let world = app.world();
    let mut rect: Option<Rect> = None;
    let mut stack = vec![root];
    while let Some(entity) = stack.pop() {
        let e = world.entity(entity);
        if e.get::<InheritedVisibility>().is_some_and(|v| !v.get()) {
            continue;
        }
        if let (Some(node), Some(at)) = (e.get::<ComputedNode>(), e.get::<UiGlobalTransform>())
            && !node.is_empty()
        {
            let own = Rect::from_center_size(at.translation, node.size());
            rect = Some(rect.map_or(own, |r| r.union(own)));
        }
        if let Some(children) = e.get::<Children>() {
            stack.extend(children.iter());
        }
    }
    rect
}

#[test]
fn no_hud_block_covers_another_at_720p_1080p_and_4k() {
    for size in [
        UVec2::new(1280, 720),
        UVec2::new(1920, 1080),
        UVec2::new(3840, 2160),
    ] {
        let mut app = demo_at_the_peak(size);
        // Until a caption shows (the peak brings one within seconds), and a little more.
        let mut shown = 0;
        for _ in 0..600 {
            app.update();
            if app.world().resource::<Captions>().showing.is_some() {
                shown += 1;
                if shown == 5 {
                    break;
                }
            }
        }
        assert_eq!(shown, 5, "no caption at the peak at {size}");
        let named: Vec<(String, Entity)> = app
            .world_mut()
            .query::<(Entity, &Name)>()
            .iter(app.world())
            .map(|(e, name)| (name.to_string(), e))
            .collect();
        let mut boxes = Vec::new();
        for block in BLOCKS {
            let (_, entity) = named
                .iter()
                .find(|(name, _)| name == block)
                .unwrap_or_else(|| panic!("no {block} in the HUD"));
            let rect = covered(&mut app, *entity)
                .unwrap_or_else(|| panic!("the {block} is not shown at {size}"));
            let screen = Rect::new(0.0, 0.0, size.x as f32, size.y as f32);
            assert_eq!(
                screen.intersect(rect),
                rect,
                "the {block} leaves the screen at {size}"
            );
            boxes.push((block, rect));
        }
        for (i, (a, ra)) in boxes.iter().enumerate() {
            for (b, rb) in &boxes[i + 1..] {
                assert!(
                    ra.intersect(*rb).is_empty(),
                    "at {size} the {a} ({ra:?}) and the {b} ({rb:?}) overlap"
                );
            }
        }
    }
}
