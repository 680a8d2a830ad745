//! Producing generated events to a Kafka topic (`clickstream generate --brokers`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use indicatif::ProgressBar;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Deserialize;

/// Messages awaiting the broker's acknowledgement before the producer waits.
const MAX_IN_FLIGHT: usize = 20_000;

/// What a produce run did.
#[derive(Debug, Default)]
pub struct Produced {
    pub acknowledged: usize,
    pub failed: usize,
    pub elapsed: Duration,
}

/// The partition key of an event: its user, so that a user's events stay in one partition and in
/// order. Records that are not JSON objects have none.
fn user_key(line: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Who {
        user_id: Option<String>,
        anonymous_id: Option<String>,
    }
    let who: Who = serde_json::from_slice(line).ok()?;
    who.user_id.or(who.anonymous_id)
}

/// `lines` paced at `rate` per second from now (the i-th due i / rate seconds later), as
/// [`produce`] takes them; not paced when `rate` is zero.
pub fn paced(
    lines: impl Iterator<Item = Vec<u8>>,
    rate: f64,
) -> impl Iterator<Item = (Option<chrono::DateTime<chrono::Utc>>, Vec<u8>)> {
    let started = chrono::Utc::now();
    lines.enumerate().map(move |(i, line)| {
        let due = (rate > 0.0)
            .then(|| started + chrono::Duration::microseconds((i as f64 / rate * 1e6) as i64));
        (due, line)
    })
}

/// Produces `records` to `topic`, each when the wall clock reaches its time (at once when it has
/// none), until they end or `stop` is set, and waits for every acknowledgement.
pub async fn produce(
    brokers: &str,
    topic: &str,
    records: impl Iterator<Item = (Option<chrono::DateTime<chrono::Utc>>, Vec<u8>)>,
    stop: &std::sync::atomic::AtomicBool,
    bar: &ProgressBar,
) -> Result<Produced> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .context("creating the Kafka producer")?;
    let started = Instant::now();
    let mut produced = Produced::default();
    let mut pending = FuturesUnordered::new();
    let settle = |result: Result<_, _>, produced: &mut Produced| match result {
        Ok(Ok(_)) => {
            produced.acknowledged += 1;
            bar.inc(1);
        }
        Ok(Err((e, _))) => {
            produced.failed += 1;
            tracing::warn!("message not acknowledged: {e}");
        }
        Err(_) => produced.failed += 1,
    };
    for (due, line) in records {
        if let Some(wait) = due.and_then(|at| (at - chrono::Utc::now()).to_std().ok()) {
            tokio::time::sleep(wait).await;
        }
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let key = user_key(&line);
        let mut record = FutureRecord::to(topic).payload(&line);
        if let Some(k) = &key {
            record = record.key(k);
        }
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| anyhow::anyhow!("producing to {topic} at {brokers}: {e}"))?;
        pending.push(delivery);
        while pending.len() >= MAX_IN_FLIGHT {
            if let Some(r) = pending.next().await {
                settle(r, &mut produced);
            }
        }
    }
    while let Some(r) = pending.next().await {
        settle(r, &mut produced);
    }
    produced.elapsed = started.elapsed();
    Ok(produced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_keyed_by_user_then_anonymous_id() {
        assert_eq!(
            user_key(br#"{"user_id":"u1","anonymous_id":"a1"}"#).as_deref(),
            Some("u1")
        );
        assert_eq!(user_key(br#"{"anonymous_id":"a1"}"#).as_deref(), Some("a1"));
        assert_eq!(user_key(b"not json"), None);
    }
}
