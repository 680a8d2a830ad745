//! Bronze from Kafka batches: each partition's records appended once, per source, and a
//! recreated topic refused.

use std::collections::{BTreeMap, BTreeSet};

use aws_lambda_events::event::kafka::KafkaEvent;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{BronzeOutcome, RawRecord, to_batch};
use crate::error::{Error, Result};
use crate::lake::{Lake, Table, retry_lost_races};

/// How far below a partition's watermark a batch may start and still be a redelivery: the
/// event source mapping redelivers at most the batches it had not committed, each at most 10,000
/// records. Further below, the offsets restarted (a recreated topic) or were rewound on purpose,
/// and bronze refuses rather than skip them as written.
pub const MAX_REDELIVERY_REWIND: i64 = 1_000_000;

/// Where a Kafka batch comes from, as bronze names its watermarks: the MSK cluster's ARN, or a
/// self-managed cluster's bootstrap servers (sorted), then `@generation` when one is set. A
/// mapping pointed at another cluster starts new watermarks.
pub fn kafka_source(event: &KafkaEvent, generation: Option<&str>) -> String {
    let cluster = match (&event.event_source_arn, &event.bootstrap_servers) {
        (Some(arn), _) if !arn.is_empty() => arn.clone(),
        (_, Some(servers)) => {
            let mut servers: Vec<&str> = servers.split(',').map(str::trim).collect();
            servers.sort_unstable();
            servers.join(",")
        }
        _ => "unnamed".to_string(),
    };
    match generation {
        Some(generation) => format!("{cluster}@{generation}"),
        None => cluster,
    }
}

/// Appends the records of a Kafka batch. Per source and topic-partition, bronze keeps two `txn`s
/// in the same commit: the highest offset written (app id `kafka:SOURCE:TOPIC:PARTITION`), and
/// the newest Kafka timestamp written (`kafka-produced:...`, in ms). Offsets at or below the
/// first are skipped, so a redelivered batch adds nothing; but such a record produced after
/// everything bronze wrote, or a batch starting more than [`MAX_REDELIVERY_REWIND`] below it,
/// cannot be a redelivery: the topic was recreated, and the batch fails with
/// [`Error::KafkaSourceReset`] instead of being skipped.
pub async fn ingest_kafka(
    lake: &Lake,
    event: &KafkaEvent,
    generation: Option<&str>,
) -> Result<BronzeOutcome> {
    let source = kafka_source(event, generation);
    let messages: Vec<_> = event.records.values().flatten().collect();
    let payloads: Vec<Vec<u8>> = messages
        .iter()
        .map(|r| {
            r.value
                .as_deref()
                .map(|v| BASE64.decode(v).unwrap_or_else(|_| v.as_bytes().to_vec()))
                .unwrap_or_default()
        })
        .collect();
    let records: Vec<KafkaRecord> = messages
        .iter()
        .zip(&payloads)
        .map(|(r, payload)| {
            let topic = r.topic.clone().unwrap_or_default();
            let partition = format!("{source}:{topic}:{}", r.partition);
            KafkaRecord {
                offset_id: format!("kafka:{partition}"),
                produced_id: format!("kafka-produced:{partition}"),
                offset: r.offset,
                produced_ms: r.timestamp.0.timestamp_millis(),
                raw: RawRecord {
                    payload,
                    source: format!("kafka:{topic}/{}/{}", r.partition, r.offset),
                    topic: Some(topic),
                    partition: Some(r.partition as i32),
                    offset: Some(r.offset),
                    file_key: None,
                    line: None,
                    kafka_timestamp: DateTime::from_timestamp_millis(
                        r.timestamp.0.timestamp_millis(),
                    ),
                },
            }
        })
        .collect();
    let (outcome, _) = retry_lost_races(Table::Bronze.path(), || {
        append_new_kafka_records(lake, &records)
    })
    .await?;
    Ok(outcome)
}

/// A Kafka record with the `txn` app ids of its partition.
struct KafkaRecord<'a> {
    /// The partition's highest offset written.
    offset_id: String,
    /// The partition's newest Kafka timestamp written.
    produced_id: String,
    offset: i64,
    produced_ms: i64,
    raw: RawRecord<'a>,
}

/// Appends the records above their partition's `txn` version in bronze, in one commit that raises
/// those versions; refuses records at or below it that cannot have been written.
async fn append_new_kafka_records(
    lake: &Lake,
    records: &[KafkaRecord<'_>],
) -> Result<BronzeOutcome> {
    let mut appender = lake.appender(Table::Bronze).await?;
    let app_ids: BTreeSet<String> = records
        .iter()
        .flat_map(|r| [r.offset_id.clone(), r.produced_id.clone()])
        .collect();
    let app_ids: Vec<String> = app_ids.into_iter().collect();
    // Per partition: the highest offset and the newest timestamp in bronze, raised as this
    // batch's records are taken.
    let written = appender.txn_versions(&app_ids).await?;
    let mut highest = written.clone();
    let mut outcome = BronzeOutcome {
        received: records.len(),
        ..Default::default()
    };
    let mut new = Vec::new();
    // Per partition written: its highest offset and newest timestamp now, the commit's `txn`s.
    let mut txns: BTreeMap<String, i64> = BTreeMap::new();
    for record in records {
        let done = written.get(&record.offset_id).copied().unwrap_or(-1);
        if record.offset <= done {
            check_redelivery(record, done, written.get(&record.produced_id).copied())?;
            outcome.already_written += 1;
            continue;
        }
        if record.offset <= highest.get(&record.offset_id).copied().unwrap_or(-1) {
            // Twice in one batch.
            outcome.already_written += 1;
            continue;
        }
        highest.insert(record.offset_id.clone(), record.offset);
        txns.insert(record.offset_id.clone(), record.offset);
        let newest = highest
            .entry(record.produced_id.clone())
            .or_insert(i64::MIN);
        *newest = (*newest).max(record.produced_ms);
        txns.insert(record.produced_id.clone(), *newest);
        new.push(&record.raw);
    }
    if new.is_empty() {
        return Ok(outcome);
    }
    outcome.written = new.len();
    let batch = to_batch(&new, Utc::now())?;
    let txns: Vec<(String, i64)> = txns.into_iter().collect();
    let info = json!({ "source": "kafka", "records": outcome.written });
    outcome.version = Some(appender.append(lake, batch, &txns, info).await?);
    Ok(outcome)
}

/// Checks that a record at or below its partition's watermark `done` can be one bronze wrote:
/// produced no later than the newest it wrote (when known), and not far below the watermark.
fn check_redelivery(record: &KafkaRecord, done: i64, newest_written: Option<i64>) -> Result<()> {
    let evidence = match newest_written {
        Some(newest) if record.produced_ms > newest => Some(format!(
            "it was produced at {}, after the newest record bronze wrote for this partition ({})",
            millis(record.produced_ms),
            millis(newest)
        )),
        _ if done - record.offset > MAX_REDELIVERY_REWIND => Some(format!(
            "it is {} offsets below it, further than a redelivery goes ({MAX_REDELIVERY_REWIND})",
            done - record.offset
        )),
        _ => None,
    };
    match evidence {
        None => Ok(()),
        Some(evidence) => Err(Error::KafkaSourceReset {
            topic: record.raw.topic.clone().unwrap_or_default(),
            partition: record.raw.partition.unwrap_or_default(),
            offset: record.offset,
            watermark: done,
            evidence,
        }),
    }
}

/// Milliseconds since the epoch as an RFC 3339 time.
fn millis(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.to_rfc3339())
}
