//! Where a connection had got to in its campaign's arc line, kept on the network thread so that
//! a reconnect resumes there (`since`, `epoch`) instead of losing or repeating arcs.

use viralglobe_protocol::{ReplayControl, ServerMessage};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Position {
    /// A live feed's `hello` says where the feed starts; a replay's only names the epoch.
    live: bool,
    campaign: Option<String>,
    epoch: Option<String>,
    /// The `seq` of the last arc received.
    seq: u64,
    /// The replay's speed and state as last asked, so a resumed replay plays on the same way.
    speed: Option<f64>,
    playing: Option<bool>,
}

impl Position {
    pub fn live(campaign: Option<String>) -> Self {
        Self {
            live: true,
            campaign,
            ..Self::default()
        }
    }

    pub fn replay(campaign: String) -> Self {
        Self {
            campaign: Some(campaign),
            ..Self::default()
        }
    }

    /// Follows one message from the server.
    pub fn saw(&mut self, message: &ServerMessage) {
        match message {
            ServerMessage::Hello { campaigns, .. } if self.epoch.is_none() => {
                let ours = campaigns
                    .iter()
                    .find(|c| self.campaign.as_deref() == Some(c.id.as_str()));
                if let Some(ours) = ours {
                    self.epoch.clone_from(&ours.epoch);
                    if self.live {
                        self.seq = ours.seq;
                    }
                }
            }
            ServerMessage::Arc(arc) => self.seq = arc.seq,
            ServerMessage::Arcs { arcs } => self.seq = arcs.last().map_or(self.seq, |a| a.seq),
            ServerMessage::Reset { campaign, epoch }
                if self.campaign.as_ref() == Some(campaign) =>
            {
                self.epoch = Some(epoch.clone());
                self.seq = 0;
            }
            _ => {}
        }
    }

    /// Follows one control sent to a replay.
    pub fn sent(&mut self, control: &ReplayControl) {
        match control {
            ReplayControl::Speed { speed } => self.speed = Some(*speed),
            ReplayControl::Pause => self.playing = Some(false),
            ReplayControl::Play => self.playing = Some(true),
            _ => {}
        }
    }

    /// Query parameters that resume here; none before the first `hello` of the campaign.
    pub fn resume_query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if let (Some(_), Some(epoch)) = (&self.campaign, &self.epoch) {
            query.push(("since", self.seq.to_string()));
            query.push(("epoch", epoch.clone()));
        }
        if let Some(speed) = self.speed {
            query.push(("speed", speed.to_string()));
        }
        if self.playing == Some(false) {
            query.push(("paused", "true".into()));
        }
        query
    }

    /// Whether a connection has been made before: the viewer already shows this campaign.
    pub fn resumes(&self) -> bool {
        self.epoch.is_some()
    }
}

#[cfg(test)]
mod tests {
    use viralglobe_protocol::{ArcKind, CampaignSummary, LiveFilter};

    use super::*;
    use crate::test_support::arc;

    #[test]
    fn follows_hello_arcs_and_resets() {
        let mut position = Position::live(Some("bones-brigade".into()));
        assert!(position.resume_query().is_empty());
        position.saw(&ServerMessage::Hello {
            protocol: 1,
            server: "s".into(),
            filter: LiveFilter::default(),
            campaigns: vec![CampaignSummary {
                id: "bones-brigade".into(),
                epoch: Some("e1".into()),
                seq: 41,
                ..CampaignSummary::default()
            }],
            max_rate: None,
        });
        assert_eq!(
            position.resume_query(),
            [("since", "41".into()), ("epoch", "e1".into())]
        );
        position.saw(&ServerMessage::Arcs {
            arcs: vec![arc(42, ArcKind::Click, 0), arc(43, ArcKind::Click, 0)],
        });
        position.sent(&ReplayControl::Pause);
        assert_eq!(
            position.resume_query(),
            [
                ("since", "43".into()),
                ("epoch", "e1".into()),
                ("paused", "true".into())
            ]
        );
        position.saw(&ServerMessage::Reset {
            campaign: "bones-brigade".into(),
            epoch: "e2".into(),
        });
        assert_eq!(
            position.resume_query()[..2],
            [("since", "0".into()), ("epoch", "e2".into())]
        );
    }
}
