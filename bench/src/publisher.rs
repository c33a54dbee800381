//! Paced live traffic: events posted every 10 ms at a steady rate, each stamped with the time it
//! was sent.

use std::time::Duration;

use anyhow::ensure;
use tokio::time::{Instant, MissedTickBehavior};

use crate::{
    http::Connection,
    workload::{CampaignTraffic, now_ms},
};

/// Posts `rate` events a second of `traffic` for `span`; returns the events acknowledged.
/// A late step sends what fell due, so the offered rate holds even when a post is slow.
pub async fn publish(
    address: &str,
    mut traffic: CampaignTraffic,
    rate: f64,
    span: Duration,
) -> anyhow::Result<u64> {
    let mut connection = Connection::open(address).await?;
    let mut step = tokio::time::interval(Duration::from_millis(10));
    step.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let started = Instant::now();
    let (mut sent, mut accepted) = (0u64, 0u64);
    while started.elapsed() < span {
        step.tick().await;
        let due = (rate * started.elapsed().as_secs_f64()) as u64;
        if due <= sent {
            continue;
        }
        let now = now_ms();
        let body = traffic.batch((due - sent) as usize, |_| now);
        let answer = connection.post("/v1/events", &body).await?;
        ensure!(
            answer.status / 100 == 2,
            "ingest answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        accepted += answer.accepted()?;
        sent = due;
    }
    Ok(accepted)
}
