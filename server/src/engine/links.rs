//! The tracked links the recordings hold: code → the share it belongs to and where it leads.
//!
//! Filled by [`super::ledger::Ledger::follow`] from every share line that carries a `link`, so a
//! restart, a node following the cluster log and live ingest all know the same links. Readers (the
//! redirect) never take the engine's lock.

use std::sync::Arc;

use viralglobe_protocol::{ShareEvent, Timestamp};

use crate::fast_hash::FastDashMap;

/// What one link leads to (its code is the key it is found by).
#[derive(Debug)]
pub(crate) struct Link {
    pub share: Box<str>,
    pub campaign: Arc<str>,
    /// Shared by every link that leads there: a post's child links all lead where it does.
    pub destination: Arc<str>,
    pub channel: Box<str>,
    pub sharer: Box<str>,
    pub parent: Option<Box<str>>,
    pub ts: Timestamp,
}

#[derive(Debug, Default)]
pub(crate) struct Links {
    by_code: FastDashMap<Box<str>, Arc<Link>>,
    /// Each destination once (up to 2 KB each), however many links lead there.
    destinations: FastDashMap<Arc<str>, ()>,
}

impl Links {
    pub(crate) fn get(&self, code: &str) -> Option<Arc<Link>> {
        self.by_code.get(code).map(|l| l.clone())
    }

    /// Notes `share`'s link, if it has one; the first share to claim a code keeps it (a held
    /// share's line and the line that resolves it carry the same link).
    pub(super) fn follow(&self, share: &ShareEvent, campaign: &Arc<str>) {
        let Some(link) = &share.link else { return };
        self.by_code
            .entry(link.code.as_str().into())
            .or_insert_with(|| {
                Arc::new(Link {
                    share: share.id.as_str().into(),
                    campaign: campaign.clone(),
                    destination: self.destination(&link.destination),
                    channel: share.channel.as_str().into(),
                    sharer: share.sharer.as_str().into(),
                    parent: share.parent.as_deref().map(Into::into),
                    ts: share.ts,
                })
            });
    }

    fn destination(&self, url: &str) -> Arc<str> {
        if let Some(known) = self.destinations.get(url) {
            return known.key().clone();
        }
        self.destinations
            .entry(url.into())
            .or_default()
            .key()
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_to_one_destination_share_its_text() {
        let links = Links::default();
        let campaign: Arc<str> = "c".into();
        let share = |id: &str, code: &str| {
            let line = format!(
                r#"{{"type":"share","id":"{id}","campaign":"c","channel":"fb","sharer":"x","link":{{"code":"{code}","destination":"https://a.example/p"}},"ts":1350406800000}}"#
            );
            match viralglobe_protocol::InputEvent::parse(line.as_bytes()) {
                Ok(viralglobe_protocol::InputEvent::Share(share)) => share,
                other => panic!("{other:?}"),
            }
        };
        links.follow(&share("s1", "AAAAAAAAAAA"), &campaign);
        links.follow(&share("s2", "BBBBBBBBBBB"), &campaign);
        let (a, b) = (links.get("AAAAAAAAAAA"), links.get("BBBBBBBBBBB"));
        let (a, b) = (a.expect("a"), b.expect("b"));
        assert!(Arc::ptr_eq(&a.destination, &b.destination));
        assert_eq!((&*a.share, &*b.share), ("s1", "s2"));
    }
}
