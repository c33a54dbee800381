//! The read API, the browser page and operational endpoints.

mod campaigns;
mod health;
mod page;

pub use campaigns::{campaign_stats, list_campaigns};
pub use health::{healthz, metrics};
pub use page::{app_js, index, style_css, world_json};
