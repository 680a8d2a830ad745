//! Silver: validates, types and deduplicates bronze rows into `silver/events`, rejects into
//! `silver/quarantine`.
//!
//! Each invocation catches up every bronze commit not yet processed (bounded, so one invocation
//! stays within Lambda's limits), in one commit per table. The idempotency state is one
//! watermark per table: the `txn` app id [`WATERMARK_APP_ID`] with the highest bronze version
//! processed, written in the same commit as the rows. A notification that arrives late, twice,
//! out of order or for a covered version finds nothing above the watermark and changes nothing;
//! no bronze commit can be stranded, since the next invocation starts where the last one ended.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, Date32Array, StringArray, StringBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder,
};
use arrow::record_batch::RecordBatch;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use deltalake::protocol::SaveMode;
use serde::Serialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::event::{RejectReason, Rejection, ValidEvent, validate};
use crate::gold::to_days;
use crate::lake::{
    Lake, Table, added_files, commit_properties, fold_date_files, partition_date, read_added_rows,
    read_data_files, retry_lost_races, txn_version, typed_column,
};
use crate::maintenance::compact_small_files;
use crate::schema;

/// `txn` app id in silver/events and silver/quarantine: the highest bronze version processed.
pub const WATERMARK_APP_ID: &str = "bronze";
/// Most bronze commits one invocation processes.
pub const MAX_COMMITS_PER_RUN: usize = 200;
/// One invocation stops adding bronze commits once it holds this many rows.
pub const MAX_ROWS_PER_RUN: usize = 100_000;

/// What one silver catch-up did. `input = valid + quarantined + duplicates` always holds.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SilverOutcome {
    /// First and last bronze commit processed; none when silver was already up to date.
    pub bronze_versions: Option<(i64, i64)>,
    /// True when every bronze commit was already processed (nothing was written).
    pub already_processed: bool,
    /// Bronze rows the processed commits added.
    pub input: usize,
    /// Rows appended to silver/events.
    pub valid: usize,
    /// Rows in silver/quarantine from these commits.
    pub quarantined: usize,
    /// Valid rows whose event_id was already in silver (or earlier in the same run).
    pub duplicates: usize,
    /// Quarantined rows per reason code.
    pub quarantined_by_reason: BTreeMap<String, usize>,
    /// The silver/events commit version written.
    pub silver_version: Option<i64>,
    /// More bronze commits wait than one run takes: call again.
    pub remaining: bool,
    /// Commit races lost (and retried) on the way.
    pub retries: u32,
    /// Small silver/events files merged away by the compaction in passing of the dates written
    /// ([`crate::maintenance::compact_small_files`]).
    pub compacted_files: usize,
}

/// Processes the bronze commits above silver's watermark (at most [`MAX_COMMITS_PER_RUN`] commits
/// or about [`MAX_ROWS_PER_RUN`] rows), writing one commit to each silver table. A commit that
/// loses a race with another writer is retried from a fresh read of the tables, where it finds the
/// other writer's rows (as duplicates) and watermark (as already processed).
pub async fn catch_up(lake: &Lake) -> Result<SilverOutcome> {
    let (outcome, retries) = retry_lost_races(Table::Silver.path(), || try_catch_up(lake)).await?;
    Ok(SilverOutcome { retries, ..outcome })
}

/// The highest bronze version silver has processed (-1 before the first).
pub async fn watermark(lake: &Lake) -> Result<i64> {
    let silver = lake.table(Table::Silver).await?;
    Ok(txn_version(&silver, WATERMARK_APP_ID).await?.unwrap_or(-1))
}

/// One bronze row, validated.
struct Row<'a> {
    bronze_version: i64,
    raw: &'a [u8],
    source: &'a str,
    ingest_time: DateTime<Utc>,
}

async fn try_catch_up(lake: &Lake) -> Result<SilverOutcome> {
    let mut outcome = SilverOutcome::default();
    // Silver's state and bronze's latest version (from its log alone: bronze's new commits are
    // then read by name, without its file list), at once: a fresh process loads both.
    let (silver, latest) = tokio::try_join!(
        lake.table(Table::Silver),
        lake.latest_version(Table::Bronze)
    )?;
    let done = txn_version(&silver, WATERMARK_APP_ID).await?.unwrap_or(-1);
    if latest <= done {
        outcome.already_processed = true;
        return Ok(outcome);
    }

    let bronze = lake.unloaded_table(Table::Bronze)?;
    let (commits, last) = added_bronze(&bronze, done, latest).await?;
    outcome.bronze_versions = Some((done + 1, last));
    outcome.remaining = last < latest;
    let rows = bronze_rows(&commits)?;
    let (mut valid, mut rejected) = (Vec::new(), Vec::new());
    for (row, checked) in validate_all(&rows).into_iter().enumerate() {
        match checked {
            Ok(event) => valid.push((event, &rows[row])),
            Err(rejection) => rejected.push((rejection, &rows[row])),
        }
    }
    outcome.input = valid.len() + rejected.len();
    for (r, _) in &rejected {
        *outcome
            .quarantined_by_reason
            .entry(r.reason.code().to_string())
            .or_default() += 1;
    }
    outcome.quarantined = rejected.len();

    // Dedup against the silver events of the same and adjacent dates, and within the run. The
    // dates the index does not hold (for a fresh process, every date the batch touches) are read
    // while quarantine's commit is written: neither needs the other. Quarantine's commit is still
    // written before silver's (see `write_quarantine`).
    let mut warm_index = lake.warm().silver.lock().await;
    // Each valid event's date and id hash, computed once.
    let keys: Vec<(i32, u128)> = valid
        .iter()
        .map(|(e, _)| (to_days(e.event_date()), hash_id(&e.event_id)))
        .collect();
    let dates: HashSet<i32> = keys.iter().flat_map(|&(d, _)| [d - 1, d, d + 1]).collect();
    let index = DedupIndex::caught_up(&mut warm_index, &silver).await?;
    let missing = index.missing(&dates);
    let quarantine_counts = json!({
        "bronze_from": done + 1,
        "bronze_to": last,
        "input": outcome.input,
        "quarantined": outcome.quarantined,
    });
    let (loaded, ()) = tokio::try_join!(
        LoadedDates::read(&silver, &missing),
        write_quarantine(lake, rejected, last, quarantine_counts)
    )?;
    let candidates = keys.iter().map(|&(_, id)| id).collect();
    let in_loaded = loaded.found(&candidates);
    let mut seen = HashSet::with_capacity(valid.len());
    // The (date, id hash) of each event kept, in order: for the index and the compaction after
    // the commit. `retain` visits the events once each, in order, as `keys` holds them.
    let mut kept = Vec::with_capacity(valid.len());
    let mut keys = keys.into_iter();
    valid.retain(|_| {
        let (date, id) = keys.next().expect("one key per valid event");
        let fresh =
            !index.contains_near(date, id) && !in_loaded.contains_near(date, id) && seen.insert(id);
        outcome.duplicates += !fresh as usize;
        if fresh {
            kept.push((date, id));
        }
        fresh
    });
    outcome.valid = valid.len();
    let counts = json!({
        "bronze_from": done + 1,
        "bronze_to": last,
        "input": outcome.input,
        "valid": outcome.valid,
        "quarantined": outcome.quarantined,
        "duplicates": outcome.duplicates,
    });

    let events: Vec<SilverRow> = valid
        .into_iter()
        .map(|(e, row)| (e, row.source, row.ingest_time))
        .collect();
    let batch = silver_batch(&events)?;
    // The loaded dates' id sets are built while silver's commit is written.
    let building = tokio::task::spawn_blocking(move || loaded.into_sets());
    let written = append(silver, batch, last, counts).await;
    match building.await {
        Ok(sets) => index.hold(sets),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => return Err(Error::Io(std::io::Error::other(e))),
    }
    index.evict(&dates);
    let written = written?;
    lake.keep(Table::Silver, &written);
    outcome.silver_version = written.version().map(|v| v as i64);
    if let Some(v) = outcome.silver_version {
        index.added(v, kept.iter().copied());
    }
    drop(warm_index);
    let written_dates = kept.iter().map(|&(date, _)| date).collect();
    // The append stands whatever happens here: a failed compaction is left to the next run or
    // to maintenance.
    match compact_small_files(written, Table::Silver, "event_date", &written_dates).await {
        Ok((compacted, fewer)) => {
            if fewer > 0 {
                lake.keep(Table::Silver, &compacted);
            }
            outcome.compacted_files = fewer;
        }
        Err(e) => tracing::warn!(error = %e, "silver's small files not compacted"),
    }
    Ok(outcome)
}

/// The bronze commits after `done` one run takes (at most [`MAX_COMMITS_PER_RUN`] commits or
/// about [`MAX_ROWS_PER_RUN`] rows), each with the rows it added, and the last version taken.
async fn added_bronze(
    bronze: &DeltaTable,
    done: i64,
    latest: i64,
) -> Result<(Vec<(i64, Vec<RecordBatch>)>, i64)> {
    let mut commits = Vec::new();
    let mut rows_read = 0;
    let mut last = done;
    for version in done + 1..=latest {
        if commits.len() >= MAX_COMMITS_PER_RUN || rows_read >= MAX_ROWS_PER_RUN {
            break;
        }
        let batches =
            read_added_rows(bronze, version, &["payload", "source", "ingest_time"]).await?;
        rows_read += batches.iter().map(RecordBatch::num_rows).sum::<usize>();
        commits.push((version, batches));
        last = version;
    }
    Ok((commits, last))
}

/// The bronze rows of `commits`, each with the version that added it.
fn bronze_rows(commits: &[(i64, Vec<RecordBatch>)]) -> Result<Vec<Row<'_>>> {
    let mut rows = Vec::new();
    for (version, batches) in commits {
        for batch in batches {
            let payload = typed_column::<BinaryArray>(batch, "payload")?;
            let source = typed_column::<StringArray>(batch, "source")?;
            let ingest = typed_column::<TimestampMicrosecondArray>(batch, "ingest_time")?;
            for i in 0..batch.num_rows() {
                rows.push(Row {
                    bronze_version: *version,
                    raw: payload.value(i),
                    source: source.value(i),
                    ingest_time: DateTime::from_timestamp_micros(ingest.value(i))
                        .unwrap_or_else(Utc::now),
                });
            }
        }
    }
    Ok(rows)
}

/// Appends the `rejected` rows to silver/quarantine with the watermark `last`. It is written
/// before silver: after a crash between the two commits, the next run skips the rejected rows of
/// the bronze versions quarantine already covers. Quarantine only grows by appends, so it is
/// written through an [`Appender`](crate::appender::Appender), as bronze is: from its log's
/// `txn`s and version checksum, without loading its file list.
async fn write_quarantine(
    lake: &Lake,
    mut rejected: Vec<(Rejection, &Row<'_>)>,
    last: i64,
    counts: serde_json::Value,
) -> Result<()> {
    if rejected.is_empty() {
        return Ok(());
    }
    let mut quarantine = lake.appender(Table::Quarantine).await?;
    let quarantine_done = quarantine
        .txn_version(WATERMARK_APP_ID)
        .await?
        .unwrap_or(-1);
    rejected.retain(|(_, row)| row.bronze_version > quarantine_done);
    if !rejected.is_empty() {
        let batch = quarantine_batch(&rejected)?;
        let txns = [(WATERMARK_APP_ID.to_string(), last)];
        quarantine.append(lake, batch, &txns, counts).await?;
    }
    Ok(())
}

/// Validates `rows` on every core (each thread takes one slice, in order).
fn validate_all(rows: &[Row<'_>]) -> Vec<std::result::Result<ValidEvent, Rejection>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads == 1 || rows.len() < 2_000 {
        return rows
            .iter()
            .map(|r| validate(r.raw, r.ingest_time))
            .collect();
    }
    let chunk = rows.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = rows
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|r| validate(r.raw, r.ingest_time))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Appends `batch` to silver/events with the watermark `bronze_version` and the run's `counts`.
async fn append(
    silver: DeltaTable,
    batch: RecordBatch,
    bronze_version: i64,
    counts: serde_json::Value,
) -> Result<DeltaTable> {
    silver
        .write(vec![batch])
        .with_save_mode(SaveMode::Append)
        .with_partition_columns(Table::Silver.partition_columns().iter().copied())
        .with_commit_properties(commit_properties(WATERMARK_APP_ID, bronze_version, counts))
        .await
        .map_err(Error::delta(Table::Silver.path()))
}

/// The event_ids in silver per event_date, as 128-bit hashes (xxh3; a false match among a billion
/// ids has a probability near 1e-20), for the dates recent runs touched. A run loads the dates its
/// events need (their own and the adjacent ones) with one read of those partitions, and catches
/// up with other writers' commits from the log, so its cost follows the dates it touches, not the
/// length of history.
pub(crate) struct DedupIndex {
    /// The silver table's URL and Delta table id.
    table: String,
    /// Silver version the index reflects.
    version: i64,
    dates: HashMap<i32, IdSet>,
}

/// A set of event id hashes. The ids are xxh3 hashes already, so the set hashes them with
/// foldhash's fast fixed hasher rather than SipHash, which took most of a cold index build.
type IdSet = HashSet<u128, foldhash::fast::FixedState>;

/// Past this many silver commits by other writers, the index is rebuilt instead of caught up.
const MAX_CATCH_UP_COMMITS: i64 = 200;
/// Dates the index keeps; past it, the dates furthest from the newest are dropped.
const MAX_INDEXED_DATES: usize = 40;

impl DedupIndex {
    /// `cache` brought up to `silver`'s version: the ids of other writers' commits since, on the
    /// dates it holds; a new index when there is none for this table or too many commits passed.
    async fn caught_up<'a>(
        cache: &'a mut Option<DedupIndex>,
        silver: &DeltaTable,
    ) -> Result<&'a mut DedupIndex> {
        // The table's id as well as its URL: a table deleted and created again is another table.
        let id = silver.snapshot().map(|s| s.metadata().id().to_string());
        let table = format!("{}#{}", silver.table_url(), id.unwrap_or_default());
        let version = silver.version().map_or(-1, |v| v as i64);
        let usable = cache.as_ref().is_some_and(|c| {
            c.table == table && c.version <= version && version - c.version <= MAX_CATCH_UP_COMMITS
        });
        if !usable {
            *cache = Some(DedupIndex {
                table,
                version,
                dates: HashMap::new(),
            });
        }
        let index = cache.as_mut().expect("cache was just filled");
        for v in index.version + 1..=version {
            let (files, dates): (Vec<_>, Vec<i32>) = added_files(silver, v)
                .await?
                .into_iter()
                .filter_map(|f| {
                    let date = partition_date(&f.partition_values, "event_date")?;
                    index.dates.contains_key(&date).then_some((f, date))
                })
                .unzip();
            let read = read_data_files(silver, &files, &["event_id"]).await?;
            for (date, batches) in dates.into_iter().zip(read) {
                let ids = index.dates.entry(date).or_default();
                for b in &batches {
                    ids.extend(id_hashes(b)?);
                }
            }
        }
        index.version = version;
        Ok(index)
    }

    /// The dates of `needed` the index does not hold.
    fn missing(&self, needed: &HashSet<i32>) -> Vec<i32> {
        needed
            .iter()
            .copied()
            .filter(|d| !self.dates.contains_key(d))
            .collect()
    }

    /// Holds the id sets of dates read at the index's version ([`LoadedDates::into_sets`]).
    fn hold(&mut self, sets: Vec<(i32, IdSet)>) {
        self.dates.extend(sets);
    }

    /// Whether `id` is in silver on `date` or an adjacent date.
    fn contains_near(&self, date: i32, id: u128) -> bool {
        (date - 1..=date + 1).any(|d| self.dates.get(&d).is_some_and(|ids| ids.contains(&id)))
    }

    /// Records the ids of commit `version`, written by this process; if another writer
    /// committed in between, the next run catches up from the log instead.
    fn added(&mut self, version: i64, ids: impl Iterator<Item = (i32, u128)>) {
        if version == self.version + 1 {
            for (date, id) in ids {
                if let Some(set) = self.dates.get_mut(&date) {
                    set.insert(id);
                }
            }
            self.version = version;
        }
    }

    /// Drops the dates furthest from the newest, beyond [`MAX_INDEXED_DATES`], except `keep`.
    fn evict(&mut self, keep: &HashSet<i32>) {
        if self.dates.len() <= MAX_INDEXED_DATES {
            return;
        }
        let mut dates: Vec<i32> = self
            .dates
            .keys()
            .copied()
            .filter(|d| !keep.contains(d))
            .collect();
        dates.sort_unstable();
        let excess = self.dates.len() - MAX_INDEXED_DATES;
        for d in dates.into_iter().take(excess) {
            self.dates.remove(&d);
        }
    }
}

fn hash_id(id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(id.as_bytes())
}

/// The hashes of a batch's `event_id`s.
fn id_hashes(batch: &RecordBatch) -> Result<impl Iterator<Item = u128> + '_> {
    Ok(typed_column::<StringArray>(batch, "event_id")?
        .iter()
        .flatten()
        .map(hash_id))
}

/// The event id hashes of silver's events on some dates, read at one silver version, before they
/// become the index's sets: a run checks its own events against them at once, and their sets are
/// built while it writes.
struct LoadedDates {
    hashes: HashMap<i32, Vec<u128>>,
}

impl LoadedDates {
    /// The id hashes of `silver`'s events on `dates` (every one of them, also those without
    /// events), each file's hashed in its own task as it arrives.
    async fn read(silver: &DeltaTable, dates: &[i32]) -> Result<LoadedDates> {
        let mut hashes: HashMap<i32, Vec<u128>> = dates.iter().map(|&d| (d, Vec::new())).collect();
        if dates.is_empty() {
            return Ok(LoadedDates { hashes });
        }
        let files = fold_date_files(
            silver,
            Table::Silver,
            "event_date",
            |d| dates.contains(&d),
            vec!["event_id".to_string()],
            |hashes: &mut Vec<u128>, batch| {
                hashes.extend(id_hashes(&batch)?);
                Ok(())
            },
        )
        .await?;
        for (date, file_hashes) in files {
            if let Some(d) = date {
                hashes.entry(d).or_default().extend(file_hashes);
            }
        }
        Ok(LoadedDates { hashes })
    }

    /// Which of the `candidates` are on which loaded date: one pass over the loaded hashes, with
    /// no set of them built.
    fn found(&self, candidates: &IdSet) -> FoundIds {
        let mut found = FoundIds::default();
        for (&date, hashes) in &self.hashes {
            for id in hashes.iter().filter(|id| candidates.contains(id)) {
                found.0.insert((date, *id));
            }
        }
        found
    }

    /// Each date's set, built at its full size: growing the sets as files arrive rehashed them
    /// over and over.
    fn into_sets(self) -> Vec<(i32, IdSet)> {
        self.hashes
            .into_iter()
            .map(|(date, hashes)| {
                let mut set = IdSet::with_capacity_and_hasher(hashes.len(), Default::default());
                set.extend(hashes);
                (date, set)
            })
            .collect()
    }
}

/// (date, id hash) pairs found by [`LoadedDates::found`].
#[derive(Default)]
struct FoundIds(HashSet<(i32, u128)>);

impl FoundIds {
    /// Whether `id` was found on `date` or an adjacent date.
    fn contains_near(&self, date: i32, id: u128) -> bool {
        (date - 1..=date + 1).any(|d| self.0.contains(&(d, id)))
    }
}

/// A validated event with its source and ingest time: one row of silver/events.
pub type SilverRow<'a> = (ValidEvent, &'a str, DateTime<Utc>);

/// Builds a silver/events batch from validated events with their source and ingest time.
pub fn silver_batch(events: &[SilverRow]) -> Result<RecordBatch> {
    let text = |f: fn(&ValidEvent) -> Option<&str>| -> ArrayRef {
        Arc::new(events.iter().map(|(e, _, _)| f(e)).collect::<StringArray>())
    };
    let time = |f: &dyn Fn(&SilverRow) -> i64| -> ArrayRef {
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

fn quarantine_batch(rows: &[(Rejection, &Row<'_>)]) -> Result<RecordBatch> {
    let mut raw = StringBuilder::new();
    let mut reason = StringBuilder::new();
    let mut detail = StringBuilder::new();
    let mut source = StringBuilder::new();
    let mut ingest = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    for (r, row) in rows {
        let (bytes, src, t) = (row.raw, row.source, row.ingest_time);
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
