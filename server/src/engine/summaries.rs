//! Every campaign's counters as of the last batch, published for readers — each websocket's
//! `hello`, the campaign list — so that they never take the engine's lock: a client connecting
//! does not wait for a batch being applied, however large.

use std::{collections::BTreeMap, sync::RwLock};

use viralglobe_protocol::CampaignSummary;

#[derive(Default)]
pub(crate) struct Summaries(RwLock<BTreeMap<String, CampaignSummary>>);

impl Summaries {
    /// Replaces the summaries of the campaigns that changed.
    pub(super) fn publish(&self, changed: Vec<CampaignSummary>) {
        if changed.is_empty() {
            return;
        }
        let mut all = self.0.write().unwrap_or_else(|p| p.into_inner());
        for summary in changed {
            all.insert(summary.id.clone(), summary);
        }
    }

    /// The summaries of the campaigns `wanted` names, sorted by id.
    pub(crate) fn of(&self, wanted: impl Fn(&str) -> bool) -> Vec<CampaignSummary> {
        let all = self.0.read().unwrap_or_else(|p| p.into_inner());
        all.values().filter(|s| wanted(&s.id)).cloned().collect()
    }
}
