//! Wire types of Viral Globe: the compatibility contract between producers, the server, the
//! viewer and browsers.
//!
//! Everything that crosses a process boundary is defined here and nowhere else:
//! - [`input`]: the events producers send (`share`, `click`, `conversion`), one JSON object each;
//! - [`record`]: one line of a campaign recording (an accepted event plus what the server resolved);
//! - [`arc`]: the arcs the live feed and replays stream;
//! - [`compact`]: the compact binary encoding of arcs (`?encoding=compact`);
//! - [`live`]: the messages of a live-feed websocket;
//! - [`replay`]: replay control messages, the replay clock, and the timeline;
//! - [`palette`]: the colours of arcs, the same in every client;
//! - [`rule`]: the one rule from a recorded event to an arc, which every reader of a log applies;
//! - [`stats`]: the read API's campaign summaries and statistics;
//! - [`attribution`]: root credit by cascade, virality by generation, delays and places.
//!
//! Changes follow [`PROTOCOL_VERSION`]: adding an optional field is compatible; renaming,
//! removing or changing the meaning of a field bumps the version. So is adding a message type:
//! clients ignore messages whose `type` they do not know.

pub mod arc;
pub mod attribution;
pub mod compact;
#[doc(hidden)]
pub mod fuzzing;
pub mod input;
pub mod live;
pub mod palette;
pub mod record;
pub mod replay;
pub mod rule;
pub mod stats;
mod timestamp;

pub use arc::{ArcEvent, ArcKind, Place};
pub use input::{ClickEvent, ConversionEvent, InputError, InputEvent, ShareEvent, ShareLink};
pub use live::{Encoding, FilterError, Generations, LiveFilter, ServerMessage, SkippedArcs};
pub use record::RecordedEvent;
pub use replay::{ReplayClock, ReplayControl, Timeline, TimelineBucket};
pub use stats::{CampaignStats, CampaignSummary, GoalTally, Tally};
pub use timestamp::Timestamp;

/// Version of the live-feed and recording protocol, sent in every `hello`.
pub const PROTOCOL_VERSION: u32 = 1;
