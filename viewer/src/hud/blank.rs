//! B blanks the screen to black and back, as presentation remotes' "blank" key does: a black
//! layer over the globe and the HUD alike.

use bevy::prelude::*;

use crate::AppSystems;

#[derive(Component)]
struct Blank;

pub(super) fn plugin(app: &mut App) {
    app.add_systems(Startup, spawn)
        .add_systems(Update, toggle.in_set(AppSystems::Input));
}

fn spawn(mut commands: Commands) {
    commands.spawn((
        Name::new("blank"),
        Blank,
        Node {
            position_type: PositionType::Absolute,
            width: Val::Percent(100.0),
            height: Val::Percent(100.0),
            ..default()
        },
        BackgroundColor(Color::BLACK),
        // Over everything else the HUD draws.
        GlobalZIndex(i32::MAX),
        Visibility::Hidden,
    ));
}

fn toggle(keys: Option<Res<ButtonInput<KeyCode>>>, mut blank: Query<&mut Visibility, With<Blank>>) {
    if keys.is_some_and(|k| k.just_pressed(KeyCode::KeyB)) {
        for mut visibility in &mut blank {
            visibility.toggle_visible_hidden();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headless_app;

    #[test]
    fn b_blanks_the_screen_and_b_again_brings_it_back() {
        let mut app = headless_app();
        app.init_resource::<ButtonInput<KeyCode>>();
        crate::configure_sets(&mut app);
        app.add_plugins(plugin);
        app.update();
        let mut query = app.world_mut().query_filtered::<&Visibility, With<Blank>>();
        assert_eq!(query.single(app.world()).ok(), Some(&Visibility::Hidden));
        let press = |app: &mut App| {
            let mut keys = app.world_mut().resource_mut::<ButtonInput<KeyCode>>();
            keys.release(KeyCode::KeyB);
            keys.clear();
            keys.press(KeyCode::KeyB);
            app.update();
        };
        press(&mut app);
        assert_eq!(query.single(app.world()).ok(), Some(&Visibility::Visible));
        press(&mut app);
        assert_eq!(query.single(app.world()).ok(), Some(&Visibility::Hidden));
    }
}
