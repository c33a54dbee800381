//! The read API and operational endpoints.

mod campaigns;
mod health;

pub use campaigns::{campaign_stats, list_campaigns};
pub use health::{healthz, metrics};
