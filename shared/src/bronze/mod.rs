//! Bronze: raw records from Kafka batches and landed files, appended exactly once.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};

use arrow::record_batch::RecordBatch;
use aws_lambda_events::event::kafka::KafkaEvent;
use aws_lambda_events::event::s3::S3Event;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use object_store::ObjectStoreExt;
use serde::Serialize;
use serde_json::json;

use crate::error::{Error, Result, TriggerError};
use crate::lake::{Lake, Table, batch_of, retry_lost_races};
use crate::rows;
use crate::trigger;

mod landed_file;
pub use landed_file::{FileFormat, LandedRecords, file_format, gzip_writer, split_records};

/// Prefix under the lake root where files are landed.
pub const LANDING_PREFIX: &str = "landing/";

/// What one bronze invocation did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BronzeOutcome {
    /// Records in the trigger event.
    pub received: usize,
    /// Records appended to bronze.
    pub written: usize,
    /// Records skipped because an earlier delivery already wrote them.
    pub already_written: usize,
    /// The bronze commit version, when something was written.
    pub version: Option<i64>,
    /// Something about the input a person should know (for example a `.json` file that is not
    /// JSON, kept as one record that silver quarantines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// Why a landed file could not be read at all, when it could not: it is recorded in
    /// `bronze/failed_files` (once per content) instead of failing every retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// Most records per bronze commit of a landed file: a large file lands as several commits, each
/// recorded in the file's `txn` (app id `landing:KEY:CONTENT_HASH`, version = the chunk's index),
/// so a redelivery or a retry after a crash writes only the chunks not yet written.
pub const LANDED_CHUNK_RECORDS: usize = 100_000;

/// One raw record with its source.
#[derive(Debug, Clone)]
struct RawRecord<'a> {
    payload: &'a [u8],
    source: String,
    topic: Option<String>,
    partition: Option<i32>,
    offset: Option<i64>,
    file_key: Option<String>,
    line: Option<i64>,
    kafka_timestamp: Option<DateTime<Utc>>,
}

/// Appends the records of a Kafka batch. Per topic-partition, the highest offset written is kept as
/// a Delta `txn` (app id `kafka:TOPIC:PARTITION`) in the same commit; offsets at or below it are
/// skipped, so a redelivered batch adds nothing.
pub async fn ingest_kafka(lake: &Lake, event: &KafkaEvent) -> Result<BronzeOutcome> {
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
            KafkaRecord {
                app_id: format!("kafka:{topic}:{}", r.partition),
                offset: r.offset,
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

/// A Kafka record with the `txn` app id of its partition.
struct KafkaRecord<'a> {
    app_id: String,
    offset: i64,
    raw: RawRecord<'a>,
}

/// Appends the records above their partition's `txn` version in bronze, in one commit that raises
/// those versions.
async fn append_new_kafka_records(
    lake: &Lake,
    records: &[KafkaRecord<'_>],
) -> Result<BronzeOutcome> {
    let mut appender = lake.appender(Table::Bronze).await?;
    let app_ids: BTreeSet<String> = records.iter().map(|r| r.app_id.clone()).collect();
    let app_ids: Vec<String> = app_ids.into_iter().collect();
    // Per partition: the highest offset in bronze, raised as this batch's records are taken.
    let mut highest = appender.txn_versions(&app_ids).await?;
    let mut outcome = BronzeOutcome {
        received: records.len(),
        ..Default::default()
    };
    let mut new = Vec::new();
    // Per partition written: its highest offset now, the commit's `txn`.
    let mut txns: BTreeMap<String, i64> = BTreeMap::new();
    for record in records {
        let done = highest.get(&record.app_id).copied().unwrap_or(-1);
        if record.offset <= done {
            outcome.already_written += 1;
            continue;
        }
        highest.insert(record.app_id.clone(), record.offset);
        txns.insert(record.app_id.clone(), record.offset);
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

/// The `txn` app id of a landed file: its key and a hash of its bytes, so the same content under
/// the same key is written once however often it is landed or notified (an S3 e_tag would not do:
/// a directory's changes with every copy).
pub fn landed_file_id(key: &str, bytes: &[u8]) -> String {
    format!("landing:{key}:{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// Appends the records of files landed under `landing/` named by an S3 notification, in commits
/// of at most [`LANDED_CHUNK_RECORDS`] records recorded under [`landed_file_id`], so a redelivered
/// notification or a re-landed copy adds nothing.
pub async fn ingest_landed(lake: &Lake, event: &S3Event) -> Result<Vec<BronzeOutcome>> {
    let store = lake.store()?;
    let mut outcomes = Vec::new();
    for object in trigger::objects(event)? {
        let Some(key) = lake
            .relative_key(&object.key)
            .filter(|k| k.starts_with(LANDING_PREFIX))
        else {
            return Err(TriggerError::ForeignObject {
                key: object.key,
                expected: format!("under {}{LANDING_PREFIX}", lake.key_prefix()),
            }
            .into());
        };
        let path = object_store::path::Path::from(key);
        let bytes = store.get(&path).await?.bytes().await?;
        let app_id = landed_file_id(key, &bytes);
        let size = bytes.len();
        let records = match split_records(key, bytes) {
            Ok(records) => records,
            Err(Error::LandedFile { reason, .. }) => {
                outcomes.push(record_failed_file(lake, key, &app_id, size, &reason).await?);
                continue;
            }
            Err(e) => return Err(e),
        };
        let ingest_time = Utc::now();
        let mut line = 0;
        for (chunk, ranges) in records.ranges.chunks(LANDED_CHUNK_RECORDS).enumerate() {
            let chunk_records: Vec<RawRecord> = ranges
                .iter()
                .enumerate()
                .map(|(i, range)| RawRecord {
                    payload: &records.buffer[range.clone()],
                    source: format!("file:{key}#{}", line + i + 1),
                    topic: None,
                    partition: None,
                    offset: None,
                    file_key: Some(key.to_string()),
                    line: Some((line + i) as i64 + 1),
                    kafka_timestamp: None,
                })
                .collect();
            line += ranges.len();
            let landed = LandedChunk {
                key,
                file_id: &app_id,
                chunk: chunk as i64,
                records: chunk_records,
                ingest_time,
            };
            let (outcome, _) =
                retry_lost_races(Table::Bronze.path(), || append_landed_chunk(lake, &landed))
                    .await?;
            outcomes.push(outcome);
        }
        if records.ranges.is_empty() {
            outcomes.push(BronzeOutcome::default());
        }
        if let (Some(warning), Some(last)) = (&records.warning, outcomes.last_mut()) {
            tracing::warn!(file = key, "{warning}");
            last.warning = Some(format!("{key}: {warning}"));
        }
    }
    Ok(outcomes)
}

/// One chunk of a landed file's records.
struct LandedChunk<'a> {
    key: &'a str,
    /// The file's [`landed_file_id`], its `txn` app id.
    file_id: &'a str,
    /// The chunk's index, its `txn` version.
    chunk: i64,
    records: Vec<RawRecord<'a>>,
    ingest_time: DateTime<Utc>,
}

/// Appends a chunk of a landed file unless the file's `txn` says it is in bronze already.
async fn append_landed_chunk(lake: &Lake, landed: &LandedChunk<'_>) -> Result<BronzeOutcome> {
    let mut appender = lake.appender(Table::Bronze).await?;
    let received = landed.records.len();
    let done = appender.txn_version(landed.file_id).await?;
    if done.is_some_and(|v| landed.chunk <= v) {
        return Ok(BronzeOutcome {
            received,
            already_written: received,
            ..Default::default()
        });
    }
    let batch = to_batch(&landed.records, landed.ingest_time)?;
    let info = json!({
        "source": "landing", "file": landed.key, "chunk": landed.chunk, "records": received
    });
    let txns = [(landed.file_id.to_string(), landed.chunk)];
    let version = appender.append(lake, batch, &txns, info).await?;
    Ok(BronzeOutcome {
        received,
        written: received,
        version: Some(version),
        ..Default::default()
    })
}

/// Records a landed file that cannot be read in `bronze/failed_files`, under its
/// [`landed_file_id`] as the commit's `txn`, so the same content is recorded once however often
/// it is notified. A retry could not read it either, so the notification succeeds.
async fn record_failed_file(
    lake: &Lake,
    key: &str,
    file_id: &str,
    size: usize,
    reason: &str,
) -> Result<BronzeOutcome> {
    tracing::warn!(
        file = key,
        "cannot be read ({reason}): recorded in {}",
        Table::FailedFiles.path()
    );
    retry_lost_races(Table::FailedFiles.path(), || async {
        let mut appender = lake.appender(Table::FailedFiles).await?;
        if appender.txn_version(file_id).await?.is_none() {
            let row = rows::FailedFile {
                file_key: key,
                file_id,
                size_bytes: size as i64,
                reason,
                failed_at: Utc::now().timestamp_micros(),
            };
            let batch = batch_of(&Table::FailedFiles.schema(), &[row])?;
            let info = json!({ "source": "landing", "file": key, "unreadable": reason });
            let txns = [(file_id.to_string(), 0)];
            appender.append(lake, batch, &txns, info).await?;
        }
        Ok(())
    })
    .await?;
    Ok(BronzeOutcome {
        unreadable: Some(format!("{key}: {reason}")),
        ..Default::default()
    })
}

/// Copies a local file under `landing/` (keeping its name) and returns the S3 notification for it,
/// as S3 would send it to the bronze-writer.
pub async fn land_file(lake: &Lake, file: &std::path::Path) -> Result<S3Event> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::LandedFile {
            key: file.display().to_string(),
            reason: "no file name".into(),
        })?;
    let key = format!("{LANDING_PREFIX}{name}");
    file_format(&key)?;
    let bytes = tokio::fs::read(file).await?;
    let size = bytes.len() as u64;
    let put = lake
        .store()?
        .put(&object_store::path::Path::from(key.as_str()), bytes.into())
        .await?;
    let etag = put.e_tag.unwrap_or_else(|| format!("{size:x}"));
    Ok(trigger::s3_put_event(
        lake.bucket(),
        &lake.object_key(&key),
        size,
        &etag,
        Utc::now(),
    ))
}

/// A bronze batch holding Kafka messages as `topic` records (for tools and benchmarks).
pub fn raw_batch(messages: &[trigger::KafkaMessage], topic: &str) -> Result<RecordBatch> {
    let records: Vec<RawRecord> = messages
        .iter()
        .map(|m| RawRecord {
            payload: m.value.as_deref().unwrap_or_default(),
            source: format!("kafka:{topic}/{}/{}", m.partition, m.offset),
            topic: Some(topic.to_string()),
            partition: Some(m.partition),
            offset: Some(m.offset),
            file_key: None,
            line: None,
            kafka_timestamp: DateTime::from_timestamp_millis(m.timestamp_ms),
        })
        .collect();
    to_batch(&records, Utc::now())
}

/// The bronze batch of `records` (owned, or borrowed from elsewhere), built column by column with
/// Arrow's builders rather than from [`rows::Bronze`] structs (whose fields these columns follow):
/// bronze writes whole files of records at once, and by hand is faster here.
/// `cargo bench -p clickstream-shared --bench row_batches` (2026-12-06, release, 200,000
/// generated events): 64 ms by hand, 149 ms from row structs (2.3x). Silver's writer stays on
/// row structs, the faster of its two ways (162 ms against 194 ms by hand).
fn to_batch<'a, R: Borrow<RawRecord<'a>>>(
    records: &[R],
    ingest_time: DateTime<Utc>,
) -> Result<RecordBatch> {
    use arrow::array::{
        ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, StringBuilder,
        TimestampMicrosecondBuilder,
    };
    use std::sync::Arc;
    let n = records.len();
    let mut payload =
        BinaryBuilder::with_capacity(n, records.iter().map(|r| r.borrow().payload.len()).sum());
    let mut source = StringBuilder::new();
    let mut topic = StringBuilder::new();
    let mut partition = Int32Builder::with_capacity(n);
    let mut offset = Int64Builder::with_capacity(n);
    let mut file_key = StringBuilder::new();
    let mut line = Int64Builder::with_capacity(n);
    let mut kafka_ts = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut ingest = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    for r in records.iter().map(R::borrow) {
        payload.append_value(r.payload);
        source.append_value(&r.source);
        topic.append_option(r.topic.as_deref());
        partition.append_option(r.partition);
        offset.append_option(r.offset);
        file_key.append_option(r.file_key.as_deref());
        line.append_option(r.line);
        kafka_ts.append_option(r.kafka_timestamp.map(|t| t.timestamp_micros()));
        ingest.append_value(ingest_time.timestamp_micros());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(payload.finish()),
        Arc::new(source.finish()),
        Arc::new(topic.finish()),
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        Arc::new(file_key.finish()),
        Arc::new(line.finish()),
        Arc::new(kafka_ts.finish()),
        Arc::new(ingest.finish()),
    ];
    Ok(RecordBatch::try_new(Table::Bronze.schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landed_file_id_follows_key_and_content() {
        let id = landed_file_id("landing/a.jsonl", b"{}\n");
        assert_eq!(id, landed_file_id("landing/a.jsonl", b"{}\n"));
        assert_ne!(id, landed_file_id("landing/a.jsonl", b"{} \n"));
        assert_ne!(id, landed_file_id("landing/b.jsonl", b"{}\n"));
    }
}
