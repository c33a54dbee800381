//! `GET /v1/campaigns/{id}/timeline?buckets=N`: a campaign's activity per time bucket.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use viralglobe_protocol::{Timeline, TimelineBucket, Timestamp};

use super::ReplayError;
use crate::recording::index::RecordingIndex;

const MINUTE_MS: i64 = 60_000;
/// Buckets when the client does not say, and the most it may ask for.
const DEFAULT_BUCKETS: usize = 200;
const MAX_BUCKETS: usize = 10_000;

#[derive(Debug, Deserialize)]
pub(crate) struct TimelineQuery {
    buckets: Option<usize>,
}

pub(crate) async fn timeline(
    req: actix_web::HttpRequest,
    access: web::Data<crate::auth::Access>,
    campaign: web::Path<String>,
    query: web::Query<TimelineQuery>,
    library: web::Data<super::Library>,
) -> Result<HttpResponse, actix_web::Error> {
    access.check_read_request(&req)?.check(&campaign)?;
    let buckets = query.buckets.unwrap_or(DEFAULT_BUCKETS);
    if !(1..=MAX_BUCKETS).contains(&buckets) {
        return Err(ReplayError::BadQuery {
            field: "buckets",
            message: format!("from 1 to {MAX_BUCKETS}, not {buckets}"),
        }
        .into());
    }
    let library = library.into_inner();
    let timeline = web::block(move || {
        let index = library.open(&campaign)?;
        Ok::<_, ReplayError>(build(&index, buckets))
    })
    .await??;
    Ok(HttpResponse::Ok().json(timeline))
}

/// About `buckets` buckets of whole minutes covering the campaign, from its first minute.
pub(crate) fn build(index: &RecordingIndex, buckets: usize) -> Timeline {
    let (first, last) = index.span().unwrap_or((0, 0));
    let from = first.div_euclid(MINUTE_MS) * MINUTE_MS;
    let minutes = (last - from) / MINUTE_MS + 1;
    let per_bucket = (minutes + buckets as i64 - 1) / buckets as i64;
    let bucket_ms = per_bucket.max(1) * MINUTE_MS;
    let count = ((last - from) / bucket_ms + 1) as usize;
    let mut out = vec![TimelineBucket::default(); count];
    for (start, bucket) in index.minutes(from, last + 1) {
        let i = ((start - from) / bucket_ms) as usize;
        if let Some(slot) = out.get_mut(i) {
            *slot += bucket;
        }
    }
    Timeline {
        campaign: index.campaign.clone(),
        from: Timestamp(from),
        to: Timestamp(last),
        bucket_ms,
        buckets: out,
    }
}
