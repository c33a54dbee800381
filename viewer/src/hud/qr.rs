//! The campaign post's QR code in the bottom-right corner (`--qr URL`, a tracked link's address):
//! the audience scans it from the stage screen, and their visits and shares appear on the globe.

use bevy::{
    asset::RenderAssetUsages,
    image::ImageSampler,
    prelude::*,
    render::render_resource::{Extent3d, TextureDimension, TextureFormat},
};
use qrcode::{Color as Module, QrCode};

use super::{PANEL, TEXT, font};

/// The address the QR code holds.
#[derive(Resource, Debug, Clone)]
pub struct QrLink(pub String);

pub(super) fn plugin(app: &mut App) {
    app.add_systems(Startup, spawn.run_if(resource_exists::<QrLink>));
}

/// Light modules around the code, as the QR standard asks.
const QUIET_ZONE: usize = 4;

/// The code as an image: one pixel a module, black on white, drawn with nearest sampling so the
/// modules stay sharp at any size.
pub fn image_of(url: &str) -> Result<Image, qrcode::types::QrError> {
    let code = QrCode::new(url.as_bytes())?;
    let width = code.width();
    let side = width + 2 * QUIET_ZONE;
    let mut data = vec![255u8; side * side * 4];
    for (i, module) in code.to_colors().into_iter().enumerate() {
        if module == Module::Dark {
            let (x, y) = (i % width + QUIET_ZONE, i / width + QUIET_ZONE);
            let at = (y * side + x) * 4;
            data[at..at + 3].fill(0);
        }
    }
    let mut image = Image::new(
        Extent3d {
            width: side as u32,
            height: side as u32,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        data,
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::RENDER_WORLD,
    );
    image.sampler = ImageSampler::nearest();
    Ok(image)
}

fn spawn(mut commands: Commands, link: Res<QrLink>, mut images: ResMut<Assets<Image>>) {
    let image = match image_of(&link.0) {
        Ok(image) => images.add(image),
        Err(error) => {
            warn!("--qr {}: no QR code ({error})", link.0);
            return;
        }
    };
    commands
        .spawn((
            Name::new("qr"),
            Node {
                position_type: PositionType::Absolute,
                right: Val::VMin(2.0),
                // Above the timeline (2 + 7) and the date over its playhead (about 2.5 more).
                bottom: Val::VMin(12.5),
                flex_direction: FlexDirection::Column,
                align_items: AlignItems::Center,
                row_gap: Val::VMin(0.6),
                padding: UiRect::all(Val::VMin(1.0)),
                ..default()
            },
            BackgroundColor(PANEL),
        ))
        .with_children(|panel| {
            panel.spawn((
                ImageNode::new(image),
                Node {
                    width: Val::VMin(18.0),
                    height: Val::VMin(18.0),
                    ..default()
                },
            ));
            panel.spawn((Text::new("scan to join"), font(1.6), TextColor(TEXT)));
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_becomes_a_readable_code_in_the_corner() {
        let url = "https://go.example.com/l/Ab3dE5gH1jK";
        let image = image_of(url).expect("a QR code");
        let side = image.width() as usize;
        let data = image.data.as_ref().expect("pixels");
        let dark = |x: usize, y: usize| data[(y * side + x) * 4] == 0;
        // The quiet zone is light; a finder pattern's corner is dark at the top left.
        assert!(!dark(0, 0) && !dark(QUIET_ZONE - 1, QUIET_ZONE));
        assert!(dark(QUIET_ZONE, QUIET_ZONE));
        // The modules are the code's own, one pixel each.
        let code = QrCode::new(url.as_bytes()).expect("code");
        assert_eq!(side, code.width() + 2 * QUIET_ZONE);

        let mut app = App::new();
        app.add_plugins((MinimalPlugins, AssetPlugin::default()))
            .init_asset::<Image>()
            .insert_resource(QrLink(url.into()))
            .add_plugins(plugin);
        app.update();
        let mut nodes = app.world_mut().query::<&ImageNode>();
        let node = nodes.single(app.world()).expect("one QR image on screen");
        let images = app.world().resource::<Assets<Image>>();
        assert_eq!(
            images.get(&node.image).map(|i| i.width() as usize),
            Some(side)
        );
    }

    #[test]
    fn without_a_link_nothing_is_shown() {
        let mut app = App::new();
        app.add_plugins((MinimalPlugins, AssetPlugin::default()))
            .init_asset::<Image>()
            .add_plugins(plugin);
        app.update();
        let mut nodes = app.world_mut().query::<&ImageNode>();
        assert_eq!(nodes.iter(app.world()).count(), 0);
    }
}
