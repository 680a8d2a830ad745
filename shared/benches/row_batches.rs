//! Batches from row structs (serde_arrow, `clickstream::lake::batch_of`) against Arrow builders
//! written by hand, for the two tables written in bulk: bronze/events (by hand: the shipped
//! `bronze::raw_batch`) and silver/events (by hand: a reference here; silver ships row structs).
//!
//! `cargo bench -p clickstream-shared --bench row_batches [-- EVENTS]` (default 200,000 generated
//! events). Prints the median time per batch and per row of each way, in alternating rounds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Date32Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use chrono::Utc;
use clickstream::bronze::raw_batch;
use clickstream::event::validate;
use clickstream::lake::{Table, batch_of, to_days};
use clickstream::rows;
use clickstream::silver::{SilverEvent, silver_batch};
use clickstream::trigger::KafkaMessage;

const ROUNDS: usize = 7;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` runs this as a quick check that both ways
    // build the same batch, with few events and one round.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let events: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(if benchmarking { 200_000 } else { 2_000 });
    let rounds = if benchmarking { ROUNDS } else { 1 };
    let payloads: Vec<Vec<u8>> =
        clickstream_generator::Generator::new(clickstream_generator::GeneratorConfig::new(events))
            .collect();
    let messages: Vec<KafkaMessage> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| KafkaMessage {
            partition: 0,
            offset: i as i64,
            timestamp_ms: 1_700_000_000_000,
            log_append_time: false,
            key: None,
            value: Some(p.clone()),
            headers: Vec::new(),
        })
        .collect();
    let now = Utc::now();
    let silver: Vec<SilverEvent> = payloads
        .iter()
        .filter_map(|p| validate(p, now).ok())
        .map(|event| SilverEvent {
            event,
            source: "kafka",
            ingest_time: now,
        })
        .collect();
    println!(
        "{} bronze rows, {} silver rows, {rounds} rounds each (median)",
        messages.len(),
        silver.len()
    );
    compare(
        "bronze/events",
        rounds,
        messages.len(),
        || bronze_by_rows(&messages, "events"),
        || raw_batch(&messages, "events").unwrap(),
    );
    compare(
        "silver/events",
        rounds,
        silver.len(),
        || silver_batch(&silver).unwrap(),
        || silver_by_hand(&silver),
    );
}

/// Times both ways in alternating rounds; checks they build the same batch.
fn compare(
    table: &str,
    rounds: usize,
    rows: usize,
    by_rows: impl Fn() -> RecordBatch,
    by_hand: impl Fn() -> RecordBatch,
) {
    let (mut rows_times, mut hand_times) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (a, t) = timed(&by_rows);
        rows_times.push(t);
        let (b, t) = timed(&by_hand);
        hand_times.push(t);
        assert_eq!(a.num_rows(), b.num_rows());
        assert_eq!(a.schema(), b.schema(), "{table}: the two ways differ");
    }
    let (r, h) = (median(rows_times), median(hand_times));
    let per_row = |t: Duration| t.as_nanos() as f64 / rows.max(1) as f64;
    println!(
        "{table:<14} row structs {:>8.1} ms ({:>5.1} ns/row)   by hand {:>8.1} ms ({:>5.1} ns/row)   ratio {:.2}",
        r.as_secs_f64() * 1e3,
        per_row(r),
        h.as_secs_f64() * 1e3,
        per_row(h),
        r.as_secs_f64() / h.as_secs_f64()
    );
}

fn timed(f: &impl Fn() -> RecordBatch) -> (RecordBatch, Duration) {
    let start = Instant::now();
    let batch = f();
    (batch, start.elapsed())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// bronze/events from row structs (what `bronze::to_batch` did before it went back to builders).
fn bronze_by_rows(messages: &[KafkaMessage], topic: &str) -> RecordBatch {
    let now = Utc::now().timestamp_micros();
    let sources: Vec<String> = messages
        .iter()
        .map(|m| format!("kafka:{topic}/{}/{}", m.partition, m.offset))
        .collect();
    let rows: Vec<rows::Bronze> = messages
        .iter()
        .zip(&sources)
        .map(|(m, source)| rows::Bronze {
            payload: m.value.as_deref().unwrap_or_default(),
            source,
            topic: Some(topic),
            partition: Some(m.partition),
            offset: Some(m.offset),
            file_key: None,
            line: None,
            kafka_timestamp: Some(m.timestamp_ms * 1000),
            ingest_time: now,
        })
        .collect();
    batch_of(&Table::Bronze.schema(), &rows).unwrap()
}

/// silver/events with Arrow's arrays, column by column (the reference).
fn silver_by_hand(events: &[SilverEvent]) -> RecordBatch {
    use clickstream::event::ValidEvent;
    let text = |f: for<'e> fn(&'e ValidEvent<'_>) -> Option<&'e str>| -> ArrayRef {
        Arc::new(events.iter().map(|s| f(&s.event)).collect::<StringArray>())
    };
    let time = |f: &dyn Fn(&SilverEvent) -> i64| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(events.iter().map(f)).with_timezone("UTC"),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        text(|e| Some(&e.event_id)),
        text(|e| Some(&e.event_type)),
        time(&|s| s.event.event_time.timestamp_micros()),
        text(|e| Some(e.user_key())),
        text(|e| e.user_id.as_deref()),
        text(|e| e.anonymous_id.as_deref()),
        text(|e| e.client_session_id.as_deref()),
        text(|e| e.page_url.as_deref()),
        text(|e| e.page_path.as_deref()),
        text(|e| e.referrer.as_deref()),
        text(|e| e.user_agent.as_deref()),
        text(|e| e.device_type.as_deref()),
        text(|e| e.country.as_deref()),
        text(|e| e.properties.as_deref()),
        text(|e| e.extra.as_deref()),
        time(&|s| s.ingest_time.timestamp_micros()),
        Arc::new(
            events
                .iter()
                .map(|s| Some(s.source))
                .collect::<StringArray>(),
        ),
        Arc::new(Date32Array::from_iter_values(
            events.iter().map(|s| to_days(s.event.event_date())),
        )),
    ];
    RecordBatch::try_new(Table::Silver.schema(), columns).unwrap()
}
