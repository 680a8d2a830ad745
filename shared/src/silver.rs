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
use deltalake::protocol::SaveMode;
use serde::Serialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::event::{RejectReason, ValidEvent, validate};
use crate::gold::to_days;
use crate::lake::{Lake, Table, commit_properties, read_added_rows, txn_version};
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
    let rows = read_added_rows(&bronze, bronze_version, &[]).await?;

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

    let mut known = KNOWN_IDS.lock().await;
    let known = KnownIds::up_to_date(&mut known, lake, &silver).await?;
    let mut seen = HashSet::with_capacity(valid.len());
    valid.retain(|(e, _, _)| {
        let fresh = !known.contains(&e.event_id) && seen.insert(hash_id(&e.event_id));
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
    if let Some(v) = outcome.silver_version {
        known.added(v, valid.iter().map(|(e, _, _)| e.event_id.as_str()));
    }
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

/// The event_ids in silver up to a table version, as 128-bit hashes (xxh3; a false match among a
/// billion ids has a probability near 1e-20). A warm process (a Lambda container between
/// invocations, the embedded pipeline) keeps it and catches up from the commits added since,
/// instead of reading every silver file for every bronze commit.
struct KnownIds {
    /// The silver table's URL and Delta table id.
    table: String,
    version: i64,
    ids: HashSet<u128>,
}

/// The warm process's [`KnownIds`]; held for a whole silver invocation.
static KNOWN_IDS: tokio::sync::Mutex<Option<KnownIds>> = tokio::sync::Mutex::const_new(None);

/// Past this many new silver commits, one scan of all of silver is cheaper than catching up.
const MAX_CATCH_UP_COMMITS: i64 = 200;

impl KnownIds {
    /// Brings `cache` up to `silver`'s version: reads the event_ids the commits since added
    /// (skipping compactions), or all of silver when the cache is cold or too far behind.
    async fn up_to_date<'a>(
        cache: &'a mut Option<KnownIds>,
        lake: &Lake,
        silver: &DeltaTable,
    ) -> Result<&'a mut KnownIds> {
        // The table's id as well as its URL: a table deleted and created again is another table.
        let id = silver.snapshot().map(|s| s.metadata().id().to_string());
        let table = format!("{}#{}", silver.table_url(), id.unwrap_or_default());
        let version = silver.version().map_or(-1, |v| v as i64);
        let usable = cache.as_ref().is_some_and(|c| {
            c.table == table && c.version <= version && version - c.version <= MAX_CATCH_UP_COMMITS
        });
        if !usable {
            let mut ids = HashSet::new();
            let has_files = silver
                .snapshot()
                .is_ok_and(|s| s.log_data().num_files() > 0);
            if has_files {
                for batch in lake.read(silver, &["event_id"], None).await? {
                    ids.extend(
                        batch
                            .column(0)
                            .as_string::<i32>()
                            .iter()
                            .flatten()
                            .map(hash_id),
                    );
                }
            }
            *cache = Some(KnownIds {
                table,
                version,
                ids,
            });
        }
        let known = cache.as_mut().expect("cache was just filled");
        for v in known.version + 1..=version {
            for batch in read_added_rows(silver, v, &["event_id"]).await? {
                let ids = batch.column(0).as_string::<i32>();
                known.ids.extend(ids.iter().flatten().map(hash_id));
            }
        }
        known.version = version;
        Ok(known)
    }

    fn contains(&self, id: &str) -> bool {
        self.ids.contains(&hash_id(id))
    }

    /// Records the ids of commit `version`, written by this process; if another writer
    /// committed in between, the next call catches up from the log instead.
    fn added<'a>(&mut self, version: i64, ids: impl Iterator<Item = &'a str>) {
        if version == self.version + 1 {
            self.ids.extend(ids.map(hash_id));
            self.version = version;
        }
    }
}

fn hash_id(id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(id.as_bytes())
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
