//! Captions at key moments, found in the arcs themselves: a cast post (where, on which channel,
//! to how many fans), a generation reached for the first time, a revenue milestone. In story mode
//! each shows for a few seconds in the HUD's top band, between its panels; a few wait their turn,
//! older ones give way.

use std::collections::VecDeque;

use bevy::prelude::*;
use viralglobe_protocol::{ArcEvent, ArcKind};

use super::Story;
use crate::{
    AppSystems,
    feed::{FeedReset, NewArcs},
    hud::{
        TEXT, font, grouped,
        top_bar::{self, TopSlot},
    },
    tally::Tally,
};

/// Revenue milestones, in dollars.
const MILESTONES: [u64; 11] = [
    1_000, 10_000, 50_000, 100_000, 250_000, 500_000, 750_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];
/// Seconds a caption shows; the last of them fade it out.
const SHOW_SECS: f32 = 4.5;
const FADE_SECS: f32 = 0.6;
/// Captions waiting their turn; beyond, the oldest waiting one is dropped.
const MAX_WAITING: usize = 3;
/// The caption's box: a dark amber, unlike the HUD's panels and any arc.
pub const CAPTION: Color = Color::srgba(0.45, 0.28, 0.04, 0.92);

/// A moment worth a caption.
#[derive(Debug, Clone, PartialEq)]
pub enum Moment {
    CastPost {
        channel: String,
        city: Option<String>,
        reach: Option<u64>,
    },
    Generation {
        generation: u32,
        city: Option<String>,
    },
    Revenue {
        dollars: u64,
    },
}

impl Moment {
    pub fn caption(&self) -> String {
        match self {
            Self::CastPost {
                channel,
                city,
                reach,
            } => {
                let mut text = format!("A cast post on {}", title(channel));
                if let Some(city) = city {
                    text.push_str(&format!(" from {city}"));
                }
                if let Some(reach) = reach {
                    text.push_str(&format!(", to {} fans", people(*reach)));
                }
                text
            }
            Self::Generation { generation, city } => {
                let mut text = format!("Generation {generation} reached");
                if let Some(city) = city {
                    text.push_str(&format!(", in {city}"));
                }
                let chain = vec!["a share"; (*generation).min(4) as usize].join(" of ");
                // The HUD's font is ASCII: no ellipsis character.
                let more = if *generation > 4 { " ..." } else { "" };
                text.push_str(&format!(": {chain}{more} of a campaign post"));
                text
            }
            Self::Revenue { dollars } => format!("${} of sales from shares", grouped(*dollars)),
        }
    }
}

fn title(channel: &str) -> String {
    match channel {
        "facebook" => "Facebook".into(),
        "twitter" => "Twitter".into(),
        "email" => "email".into(),
        other => other.to_owned(),
    }
}

/// `2_100_000` as "2.1 million", `85_000` as "85,000".
fn people(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{:.1} million", n as f64 / 1e6)
    } else {
        grouped(n)
    }
}

/// What has happened so far, to tell a new moment from an old one.
#[derive(Resource, Debug, Default)]
pub struct Moments {
    deepest: u32,
    revenue_cents: u64,
}

impl Moments {
    /// What an arc of `generation` worth `value_cents` brings that is news: a generation (from
    /// the second) reached first, and the highest revenue milestone it passes.
    fn note(&mut self, generation: u32, value_cents: u64) -> (Option<u32>, Option<u64>) {
        let mut reached = None;
        if generation > self.deepest {
            self.deepest = generation;
            reached = (generation >= 2).then_some(generation);
        }
        let before = self.revenue_cents / 100;
        self.revenue_cents += value_cents;
        let after = self.revenue_cents / 100;
        let milestone = MILESTONES
            .iter()
            .rev()
            .find(|&&m| before < m && m <= after)
            .copied();
        (reached, milestone)
    }

    /// When a recording's moments happen (a generation reached, a revenue milestone), from its
    /// arcs' times, generations and values in time order: where the presenter's clicker steps to.
    pub fn times(arcs: impl Iterator<Item = (i64, u32, u64)>) -> Vec<i64> {
        let mut moments = Self::default();
        arcs.filter_map(|(ts, generation, value_cents)| {
            let (reached, milestone) = moments.note(generation, value_cents);
            (reached.is_some() || milestone.is_some()).then_some(ts)
        })
        .collect()
    }

    /// Starts from where a reset puts the campaign: what came before is no news.
    pub fn reset(&mut self, counts: &Tally) {
        self.deepest = counts.max_generation;
        self.revenue_cents = counts.counts.revenue_cents;
    }

    pub fn observe(&mut self, arc: &ArcEvent) -> Vec<Moment> {
        let mut moments = Vec::new();
        if arc.kind == ArcKind::Share
            && arc.generation == 0
            && arc.sharer_kind.as_deref() == Some("cast")
        {
            moments.push(Moment::CastPost {
                channel: arc.channel.clone(),
                city: arc.to.city.clone(),
                reach: arc.reach,
            });
        }
        let (generation, milestone) = self.note(arc.generation, arc.value_cents.unwrap_or(0));
        if let Some(generation) = generation {
            moments.push(Moment::Generation {
                generation,
                city: arc.to.city.clone(),
            });
        }
        if let Some(dollars) = milestone {
            moments.push(Moment::Revenue { dollars });
        }
        moments
    }
}

/// The caption showing, and those waiting.
#[derive(Resource, Debug, Default)]
pub struct Captions {
    pub showing: Option<(String, f32)>,
    pub waiting: VecDeque<String>,
}

impl Captions {
    pub fn push(&mut self, text: String) {
        if self.waiting.len() >= MAX_WAITING {
            self.waiting.pop_front();
        }
        self.waiting.push_back(text);
    }

    /// Lets `secs` pass; the next caption shows when the current one is done.
    pub fn advance(&mut self, secs: f32) {
        if let Some((_, left)) = &mut self.showing {
            *left -= secs;
            if *left <= 0.0 {
                self.showing = None;
            }
        }
        if self.showing.is_none()
            && let Some(next) = self.waiting.pop_front()
        {
            self.showing = Some((next, SHOW_SECS));
        }
    }
}

#[derive(Component)]
struct CaptionBox;
#[derive(Component)]
struct CaptionText;

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<Moments>()
        .init_resource::<Captions>()
        .add_systems(Startup, spawn)
        .add_systems(Update, find.in_set(AppSystems::Apply))
        .add_systems(Update, show.in_set(AppSystems::Present));
}

/// The caption box, in the top band between the panels (where the story camera never frames
/// anything: it keeps what it follows in the middle of the view).
fn spawn(mut commands: Commands, slots: Query<(Entity, &TopSlot)>) {
    let mut caption = commands.spawn((
        Name::new("caption"),
        CaptionBox,
        Node {
            padding: UiRect::axes(Val::VMin(2.0), Val::VMin(1.0)),
            ..default()
        },
        BackgroundColor(CAPTION),
        Visibility::Hidden,
        children![(
            CaptionText,
            Text::new(""),
            font(2.6),
            TextColor(TEXT),
            TextLayout::justify(Justify::Center),
        )],
    ));
    if let Some(middle) = top_bar::find(&slots, TopSlot::Middle) {
        caption.insert(ChildOf(middle));
    }
}

fn find(
    mut moments: ResMut<Moments>,
    mut captions: ResMut<Captions>,
    mut resets: MessageReader<FeedReset>,
    mut arcs: MessageReader<NewArcs>,
    time: Res<Time>,
) {
    if let Some(reset) = resets.read().last() {
        moments.reset(&reset.counts);
        *captions = Captions::default();
    }
    for arc in arcs.read().flat_map(|batch| &batch.0) {
        for moment in moments.observe(arc) {
            captions.push(moment.caption());
        }
    }
    captions.advance(time.delta_secs());
}

fn show(
    story: Res<Story>,
    captions: Res<Captions>,
    mut boxes: Query<(&mut Visibility, &mut BackgroundColor), With<CaptionBox>>,
    mut texts: Query<(&mut Text, &mut TextColor), With<CaptionText>>,
) {
    let showing = captions.showing.as_ref().filter(|_| story.on);
    let alpha = showing.map_or(0.0, |(_, left)| (left / FADE_SECS).clamp(0.0, 1.0));
    for (mut visibility, mut background) in &mut boxes {
        visibility.set_if_neq(if showing.is_some() {
            Visibility::Inherited
        } else {
            Visibility::Hidden
        });
        background.0 = CAPTION.with_alpha(CAPTION.alpha() * alpha);
    }
    for (mut text, mut color) in &mut texts {
        if let Some((caption, _)) = showing
            && text.0 != *caption
        {
            text.0 = caption.clone();
        }
        color.0 = TEXT.with_alpha(alpha);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::arc;

    #[test]
    fn moments_come_from_the_arcs() {
        let mut moments = Moments::default();
        let mut post = arc(1, ArcKind::Share, 0);
        post.sharer_kind = Some("cast".into());
        post.reach = Some(2_100_000);
        assert_eq!(
            moments.observe(&post)[0].caption(),
            "A cast post on Facebook from London, to 2.1 million fans"
        );
        assert!(
            moments.observe(&arc(2, ArcKind::Click, 1)).is_empty(),
            "generation 1 is no news"
        );
        let deep = moments.observe(&arc(3, ArcKind::Share, 3));
        assert_eq!(
            deep[0].caption(),
            "Generation 3 reached, in London: a share of a share of a share of a campaign post"
        );
        assert!(
            moments.observe(&arc(4, ArcKind::Share, 3)).is_empty(),
            "once per generation"
        );
        let mut sale = arc(5, ArcKind::Conversion, 1);
        sale.value_cents = Some(99_999);
        assert!(moments.observe(&sale).is_empty(), "$999.99");
        sale.value_cents = Some(1);
        assert_eq!(
            moments.observe(&sale),
            vec![Moment::Revenue { dollars: 1_000 }]
        );
        // A big sale past several milestones names the highest.
        sale.value_cents = Some(6_000_000);
        assert_eq!(
            moments.observe(&sale),
            vec![Moment::Revenue { dollars: 50_000 }]
        );
    }

    #[test]
    fn a_recording_s_moments_are_found_by_the_captions_rules() {
        // (ts, generation, value_cents): generation 1 is no news, 2 and 3 are, 3 again is not;
        // $1,000 and $10,000 are milestones.
        let arcs = [
            (1, 1, 0),
            (2, 2, 0),
            (3, 2, 99_999),
            (4, 3, 1),
            (5, 3, 0),
            (6, 1, 900_000),
        ];
        assert_eq!(Moments::times(arcs.into_iter()), vec![2, 4, 6]);
    }

    #[test]
    fn a_reset_makes_what_came_before_no_news() {
        let mut moments = Moments::default();
        let mut counts = Tally {
            max_generation: 5,
            ..Tally::default()
        };
        counts.counts.revenue_cents = 20_000_000;
        moments.reset(&counts);
        assert!(moments.observe(&arc(1, ArcKind::Share, 4)).is_empty());
        let mut sale = arc(2, ArcKind::Conversion, 1);
        sale.value_cents = Some(5_000_000);
        assert_eq!(
            moments.observe(&sale),
            vec![Moment::Revenue { dollars: 250_000 }]
        );
    }

    #[test]
    fn captions_take_turns_and_few_wait() {
        let mut captions = Captions::default();
        for n in 0..6 {
            captions.push(format!("c{n}"));
        }
        assert_eq!(captions.waiting.len(), MAX_WAITING);
        captions.advance(0.0);
        assert_eq!(captions.showing.as_ref().map(|s| s.0.as_str()), Some("c3"));
        captions.advance(SHOW_SECS - 0.1);
        assert_eq!(captions.showing.as_ref().map(|s| s.0.as_str()), Some("c3"));
        captions.advance(0.2);
        assert_eq!(captions.showing.as_ref().map(|s| s.0.as_str()), Some("c4"));
    }

    #[test]
    fn a_caption_shows_only_in_story_mode() {
        let mut app = crate::test_support::headless_app();
        crate::configure_sets(&mut app);
        app.insert_resource(Story { on: false }).add_plugins(plugin);
        app.update();
        let mut post = arc(1, ArcKind::Share, 0);
        post.sharer_kind = Some("cast".into());
        app.world_mut().write_message(NewArcs(vec![post]));
        app.update();
        let mut boxes = app
            .world_mut()
            .query_filtered::<&Visibility, With<CaptionBox>>();
        assert_eq!(boxes.single(app.world()).ok(), Some(&Visibility::Hidden));
        app.world_mut().resource_mut::<Story>().on = true;
        app.update();
        assert_eq!(boxes.single(app.world()).ok(), Some(&Visibility::Inherited));
        let mut texts = app.world_mut().query_filtered::<&Text, With<CaptionText>>();
        assert_eq!(
            texts.single(app.world()).map(|t| t.0.as_str()).ok(),
            Some("A cast post on Facebook from London")
        );
    }
}
