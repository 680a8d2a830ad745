//! Silver: validates, types and deduplicates the rows one bronze commit added.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, Date32Array, StringArray, StringBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::TimestampMicrosecondType;
use arrow::record_batch::RecordBatch;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use deltalake::datafusion::prelude::{col, lit};
use deltalake::protocol::SaveMode;
use serde::Serialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::event::{RejectReason, ValidEvent, validate};
use crate::gold::to_days;
use crate::lake::{Lake, Table, added_files, commit_properties, read_data_files, txn_version};
use crate::schema;

/// What one silver invocation did. `input = valid + quarantined + duplicates` always holds.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SilverOutcome {
    /// The bronze commit processed.
    pub bronze_version: i64,
    /// True when an earlier delivery already processed this commit (nothing was written).
    pub already_processed: bool,
    /// Bronze rows the commit added.
    pub input: usize,
    /// Rows appended to silver/events.
    pub valid: usize,
    /// Rows appended to silver/quarantine.
    pub quarantined: usize,
    /// Valid rows whose event_id was already in silver (or earlier in the same commit).
    pub duplicates: usize,
    /// Quarantined rows per reason code.
    pub quarantined_by_reason: BTreeMap<String, usize>,
    /// The silver/events commit version written.
    pub silver_version: Option<i64>,
}

/// The `txn` app id marking bronze commit `version` as processed in silver tables.
fn app_id(bronze_version: i64) -> String {
    format!("bronze:{bronze_version}")
}

/// Processes exactly the rows bronze commit `bronze_version` added. Idempotent: the commit is
/// recorded as a `txn` in the same silver commit, and checked first.
pub async fn process_bronze_commit(lake: &Lake, bronze_version: i64) -> Result<SilverOutcome> {
    let app = app_id(bronze_version);
    let mut outcome = SilverOutcome {
        bronze_version,
        ..Default::default()
    };
    let silver = lake.table(Table::Silver).await?;
    if txn_version(&silver, &app).await?.is_some() {
        outcome.already_processed = true;
        return Ok(outcome);
    }
    let bronze = lake.table(Table::Bronze).await?;
    let files: Vec<String> = added_files(&bronze, bronze_version)
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let rows = read_data_files(&bronze, &files).await?;

    let mut valid = Vec::new();
    let mut rejected = Vec::new();
    for batch in &rows {
        let payload = batch.column(0).as_binary::<i32>();
        let source = batch.column(1).as_string::<i32>();
        let ingest = batch.column(8).as_primitive::<TimestampMicrosecondType>();
        for i in 0..batch.num_rows() {
            outcome.input += 1;
            let ingest_time =
                DateTime::from_timestamp_micros(ingest.value(i)).unwrap_or_else(Utc::now);
            let raw = payload.value(i);
            match validate(raw, ingest_time) {
                Ok(e) => valid.push((e, source.value(i), ingest_time)),
                Err(r) => rejected.push((raw, r, source.value(i), ingest_time)),
            }
        }
    }

    let existing = existing_ids(
        lake,
        &silver,
        valid.iter().map(|(e, _, _)| e.event_id.as_str()),
    )
    .await?;
    let mut seen = HashSet::with_capacity(valid.len());
    valid.retain(|(e, _, _)| {
        let fresh = !existing.contains(&e.event_id) && seen.insert(e.event_id.clone());
        if !fresh {
            outcome.duplicates += 1;
        }
        fresh
    });
    outcome.valid = valid.len();
    outcome.quarantined = rejected.len();
    for (_, r, _, _) in &rejected {
        *outcome
            .quarantined_by_reason
            .entry(r.reason.code().to_string())
            .or_default() += 1;
    }
    let counts = json!({
        "bronze_version": bronze_version,
        "input": outcome.input,
        "valid": outcome.valid,
        "quarantined": outcome.quarantined,
        "duplicates": outcome.duplicates,
    });

    if !rejected.is_empty() {
        let quarantine = lake.table(Table::Quarantine).await?;
        if txn_version(&quarantine, &app).await?.is_none() {
            let batch = quarantine_batch(&rejected)?;
            append(
                quarantine,
                Table::Quarantine,
                batch,
                &app,
                bronze_version,
                counts.clone(),
            )
            .await?;
        }
    }
    let batch = silver_batch(&valid)?;
    let written = append(silver, Table::Silver, batch, &app, bronze_version, counts).await?;
    outcome.silver_version = written.version().map(|v| v as i64);
    Ok(outcome)
}

async fn append(
    table: DeltaTable,
    kind: Table,
    batch: RecordBatch,
    app: &str,
    version: i64,
    counts: serde_json::Value,
) -> Result<DeltaTable> {
    table
        .write(vec![batch])
        .with_save_mode(SaveMode::Append)
        .with_partition_columns(kind.partition_columns().iter().copied())
        .with_commit_properties(commit_properties(app, version, counts))
        .await
        .map_err(Error::delta(kind.path()))
}

/// The event_ids among `ids` that silver already holds.
async fn existing_ids<'a>(
    lake: &Lake,
    silver: &DeltaTable,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashSet<String>> {
    let wanted: HashSet<&str> = ids.collect();
    if wanted.is_empty()
        || silver
            .snapshot()
            .map(|s| s.log_data().num_files())
            .unwrap_or(0)
            == 0
    {
        return Ok(HashSet::new());
    }
    // Files whose event_id range misses the batch's are skipped on their min/max statistics:
    // with time-ordered ids (ULID, UUIDv7, counters) that is nearly all of them.
    let (Some(lo), Some(hi)) = (wanted.iter().min(), wanted.iter().max()) else {
        return Ok(HashSet::new());
    };
    let in_range = col("event_id").between(lit(*lo), lit(*hi));
    let mut found = HashSet::new();
    for batch in lake.read(silver, &["event_id"], Some(in_range)).await? {
        let col = batch.column(0).as_string::<i32>();
        for id in col.iter().flatten() {
            if wanted.contains(id) {
                found.insert(id.to_string());
            }
        }
    }
    Ok(found)
}

/// Builds a silver/events batch from validated events with their source and ingest time.
pub fn silver_batch(events: &[(ValidEvent, &str, DateTime<Utc>)]) -> Result<RecordBatch> {
    let text = |f: fn(&ValidEvent) -> Option<&str>| -> ArrayRef {
        Arc::new(events.iter().map(|(e, _, _)| f(e)).collect::<StringArray>())
    };
    let time = |f: &dyn Fn(&(ValidEvent, &str, DateTime<Utc>)) -> i64| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(events.iter().map(f)).with_timezone("UTC"),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        text(|e| Some(&e.event_id)),
        text(|e| Some(&e.event_type)),
        time(&|(e, _, _)| e.event_time.timestamp_micros()),
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
        time(&|(_, _, ingest)| ingest.timestamp_micros()),
        Arc::new(
            events
                .iter()
                .map(|(_, source, _)| Some(*source))
                .collect::<StringArray>(),
        ),
        Arc::new(Date32Array::from_iter_values(
            events.iter().map(|(e, _, _)| to_days(e.event_date())),
        )),
    ];
    Ok(RecordBatch::try_new(schema::SILVER.clone(), columns)?)
}

fn quarantine_batch(
    rows: &[(&[u8], crate::event::Rejection, &str, DateTime<Utc>)],
) -> Result<RecordBatch> {
    let mut raw = StringBuilder::new();
    let mut reason = StringBuilder::new();
    let mut detail = StringBuilder::new();
    let mut source = StringBuilder::new();
    let mut ingest = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    for (bytes, r, src, t) in rows {
        match std::str::from_utf8(bytes) {
            Ok(text) if r.reason != RejectReason::NotUtf8 => raw.append_value(text),
            _ => raw.append_value(BASE64.encode(bytes)),
        }
        reason.append_value(r.reason.code());
        detail.append_value(&r.detail);
        source.append_value(src);
        ingest.append_value(t.timestamp_micros());
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(raw.finish()),
        Arc::new(reason.finish()),
        Arc::new(detail.finish()),
        Arc::new(source.finish()),
        Arc::new(ingest.finish()),
    ];
    Ok(RecordBatch::try_new(schema::QUARANTINE.clone(), cols)?)
}
