//! Silver: validates, types and deduplicates bronze rows into `silver/events`, rejects into
//! `silver/quarantine`.
//!
//! Each invocation catches up every bronze commit not yet processed (bounded, so one invocation
//! stays within Lambda's limits), in one commit per table. The idempotency state is one
//! watermark per table: the `txn` app id [`WATERMARK_APP_ID`] with the highest bronze version
//! processed, written in the same commit as the rows. A notification that arrives late, twice,
//! out of order or for a covered version finds nothing above the watermark and changes nothing;
//! no bronze commit can be stranded, since the next invocation starts where the last one ended.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use arrow::array::{BinaryArray, StringArray, TimestampMicrosecondArray};
use arrow::record_batch::RecordBatch;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveDate, Utc};
use deltalake::DeltaTable;
use serde::Serialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::event::{RejectReason, Rejection, ValidEvent, validate};
use crate::lake::to_days;
use crate::lake::{
    AddedData, Lake, Replaced, Table, added_since, batch_of, commit_properties, retry_lost_races,
    txn_version, typed_column, write_replacing,
};
use crate::maintenance::compact_small_files;
use crate::rows;

mod dedup;
mod suppressed;
use dedup::{DedupIndex, Probe, hash_id, look_up_files, read_ids};
pub use suppressed::{Suppressed, identity_hash, suppressed};

/// `txn` app id in silver/events and silver/quarantine: the highest bronze version processed.
pub const WATERMARK_APP_ID: &str = "bronze";

/// What one silver catch-up did. `input = valid + quarantined + duplicates + suppressed` always
/// holds.
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
    /// Valid rows of a person an erasure request named, dropped (see [`crate::erasure`]).
    pub suppressed: usize,
    /// Quarantined rows per reason code.
    pub quarantined_by_reason: BTreeMap<String, usize>,
    /// Rows appended whose event date is before the newest event date of the run.
    pub late: usize,
    /// Bronze commits still to process after this run.
    pub bronze_behind: i64,
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

/// Most bronze rows one silver run takes. A run holds each record several times over (the
/// payload read, the validated event, the silver batch and its file being written): on a landed
/// file of a million records, taking a second chunk of ~80,000 whenever the first was under this
/// bound put the process's peak at ~560 MiB instead of ~415 (docs/benchmarks.md).
const MAX_ROWS_PER_RUN: usize = 100_000;

/// Processes the bronze commits above silver's watermark (at most [`MAX_COMMITS_PER_RUN`] commits
/// or [`MAX_ROWS_PER_RUN`] rows), writing one commit to each silver table. A commit that
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

impl SilverOutcome {
    /// The counts a commit of this run records in its `commitInfo`, for bronze versions `from`
    /// to `to`: what validation found, and with `deduplicated`, what the dedup found too
    /// (quarantine's commit is written before the dedup ends).
    fn counts(&self, from: i64, to: i64, deduplicated: bool) -> serde_json::Value {
        let mut counts = json!({
            "bronze_from": from,
            "bronze_to": to,
            "input": self.input,
            "quarantined": self.quarantined,
        });
        if deduplicated {
            counts["valid"] = self.valid.into();
            counts["duplicates"] = self.duplicates.into();
            counts["suppressed"] = self.suppressed.into();
            counts["late"] = self.late.into();
        }
        counts
    }
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
    let columns = ["payload", "source", "ingest_time"];
    let (commits, last) = added_since(&bronze, (done, latest), &columns, MAX_ROWS_PER_RUN).await?;
    outcome.bronze_versions = Some((done + 1, last));
    outcome.remaining = last < latest;
    outcome.bronze_behind = latest - last;
    let rows = bronze_rows(&commits)?;
    let (mut valid, rejected) = sort_rows(&rows, &mut outcome);
    // The records of a person an erasure named go nowhere but into the count.
    let erased = suppressed(lake).await?;
    if !erased.is_empty() {
        valid.retain(|(e, _)| !erased.holds(e.user_id.as_deref(), e.anonymous_id.as_deref()));
        outcome.suppressed = outcome.input - outcome.quarantined - valid.len();
    }

    // Dedup against the silver events of the same and adjacent dates, and within the run. The
    // files of those dates the index lacks (for a fresh process, all of them) are looked up while
    // quarantine's commit is written: neither needs the other. Quarantine's commit is still
    // written before silver's (see `write_quarantine`).
    let mut warm_index = lake.stage_state::<Option<DedupIndex>>().lock_owned().await;
    // Each valid event's date, id and id hash, computed once.
    let probes: Vec<Probe> = valid
        .iter()
        .map(|(e, _)| Probe {
            date: to_days(e.event_date()),
            id: &e.event_id,
            hash: hash_id(&e.event_id),
        })
        .collect();
    let dates: HashSet<i32> = probes
        .iter()
        .flat_map(|p| [p.date - 1, p.date, p.date + 1])
        .collect();
    let index = DedupIndex::of(&mut warm_index, &silver);
    let unread = index.sync(&silver, &dates)?;
    let quarantine_counts = outcome.counts(done + 1, last, false);
    let (looked_up, ()) = tokio::try_join!(
        look_up_files(&silver, unread, &probes),
        write_quarantine(lake, rejected, last, quarantine_counts)
    )?;
    index.hold(looked_up);
    // The files whose filters may hold one of the run's ids are read: the index then holds
    // every id it could match.
    let to_read = index.to_read(&probes);
    index.hold(read_ids(&silver, to_read).await?);
    let (fresh, kept) = fresh_events(index, &probes);
    drop(probes);
    // `retain` visits the events once each, in order, as `fresh` holds them.
    let mut fresh = fresh.into_iter();
    valid.retain(|_| {
        let is_fresh = fresh.next().expect("one probe per valid event");
        outcome.duplicates += !is_fresh as usize;
        is_fresh
    });
    outcome.valid = valid.len();
    outcome.late = late_events(valid.iter().map(|(e, _)| e.event_date()));
    let counts = outcome.counts(done + 1, last, true);

    let events: Vec<SilverEvent> = valid
        .into_iter()
        .map(|(event, row)| SilverEvent {
            event,
            source: row.source,
            ingest_time: row.ingest_time,
        })
        .collect();
    let batch = silver_batch(&events)?;
    let read_version = silver.version().map_or(-1, |v| v as i64);
    // An erasure that began since the suppressed ids were read may have erased silver already:
    // rows of its person must not come back after it. The run lost a race and reads again.
    if suppressed(lake).await?.version() != erased.version() {
        index.evict(&dates);
        return Err(Error::MovedWhileRead {
            table: Table::Erasures.path().into(),
        });
    }
    let written = append(silver, batch, last, counts).await;
    index.evict(&dates);
    let written = written?;
    lake.keep(Table::Silver, &written);
    outcome.silver_version = written.version().map(|v| v as i64);
    index.written(read_version, &written, &kept)?;
    drop(warm_index);
    let written_dates = kept.iter().map(|&(date, _)| date).collect();
    outcome.compacted_files = compact_after(lake, written, &written_dates).await;
    Ok(outcome)
}

/// Validated bronze rows: the valid events and the rejections, each with its row.
type SortedRows<'r> = (
    Vec<(ValidEvent<'r>, &'r Row<'r>)>,
    Vec<(Rejection, &'r Row<'r>)>,
);

/// Validates `rows`: the valid events and the rejected rows, each with its bronze row; counts
/// them (and the rejects by reason) in `outcome`.
fn sort_rows<'r>(rows: &'r [Row<'r>], outcome: &mut SilverOutcome) -> SortedRows<'r> {
    let (mut valid, mut rejected) = (Vec::with_capacity(rows.len()), Vec::new());
    for (row, checked) in rows.iter().zip(validate_all(rows)) {
        match checked {
            Ok(event) => valid.push((event, row)),
            Err(rejection) => rejected.push((rejection, row)),
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
    (valid, rejected)
}

/// Which of the run's events are new (in silver on neither their date nor an adjacent one, and
/// not earlier in the run), one flag per probe in order; and the (date, id hash) of each event
/// kept, in order, for the index and the compaction after the commit.
fn fresh_events(index: &DedupIndex, probes: &[Probe<'_>]) -> (Vec<bool>, Vec<(i32, u128)>) {
    let mut seen = HashSet::with_capacity(probes.len());
    let fresh: Vec<bool> = probes
        .iter()
        .map(|p| !index.holds_near(p.date, p.hash) && seen.insert(p.hash))
        .collect();
    let kept = probes
        .iter()
        .zip(&fresh)
        .filter(|&(_, &is_fresh)| is_fresh)
        .map(|(p, _)| (p.date, p.hash))
        .collect();
    (fresh, kept)
}

/// Compacts the small files of the dates silver just wrote, when due; how many files fewer. The
/// append stands whatever happens here: a failed compaction is left to the next run or to
/// maintenance.
async fn compact_after(lake: &Lake, written: DeltaTable, dates: &BTreeSet<i32>) -> usize {
    match compact_small_files(written, Table::Silver, "event_date", dates).await {
        Ok((compacted, fewer)) => {
            if fewer > 0 {
                lake.keep(Table::Silver, &compacted);
            }
            fewer
        }
        Err(e) => {
            tracing::warn!(error = %e, "silver's small files not compacted");
            0
        }
    }
}

/// The bronze rows of `commits`, each with the version that added it.
fn bronze_rows(commits: &[AddedData]) -> Result<Vec<Row<'_>>> {
    let held = commits
        .iter()
        .flat_map(|c| c.batches())
        .map(|b| b.num_rows());
    let mut rows = Vec::with_capacity(held.sum());
    for commit in commits {
        for batch in commit.batches() {
            let payload = typed_column::<BinaryArray>(batch, "payload")?;
            let source = typed_column::<StringArray>(batch, "source")?;
            let ingest = typed_column::<TimestampMicrosecondArray>(batch, "ingest_time")?;
            for i in 0..batch.num_rows() {
                rows.push(Row {
                    bronze_version: commit.version,
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
fn validate_all<'r>(rows: &'r [Row<'r>]) -> Vec<std::result::Result<ValidEvent<'r>, Rejection>> {
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
        let mut all = Vec::with_capacity(rows.len());
        for worker in workers {
            all.extend(
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        all
    })
}

/// Appends `batch` to silver/events with the watermark `bronze_version` and the run's `counts`.
async fn append(
    silver: DeltaTable,
    batch: RecordBatch,
    bronze_version: i64,
    counts: serde_json::Value,
) -> Result<DeltaTable> {
    let rows = Some(batch.num_rows() as u64);
    write_replacing(
        &silver,
        Table::Silver,
        vec![batch],
        Replaced::Nothing,
        Table::Silver.stage_writer_properties(rows)?,
        commit_properties(WATERMARK_APP_ID, bronze_version, counts),
    )
    .await
}

/// A validated event with its source and ingest time: what silver/events holds of a record.
#[derive(Debug, Clone)]
pub struct SilverEvent<'a> {
    /// The event as validated.
    pub event: ValidEvent<'a>,
    /// `kafka` or `file`.
    pub source: &'a str,
    /// When bronze received the record.
    pub ingest_time: DateTime<Utc>,
}

impl SilverEvent<'_> {
    /// The event's row of silver/events.
    fn row(&self) -> rows::Silver<'_> {
        let e = &self.event;
        rows::Silver {
            event_id: &e.event_id,
            event_type: &e.event_type,
            event_time: e.event_time.timestamp_micros(),
            user_key: e.user_key(),
            user_id: e.user_id.as_deref(),
            anonymous_id: e.anonymous_id.as_deref(),
            client_session_id: e.client_session_id.as_deref(),
            page_url: e.page_url.as_deref(),
            page_path: e.page_path.as_deref(),
            referrer: e.referrer.as_deref(),
            user_agent: e.user_agent.as_deref(),
            device_type: e.device_type.as_deref(),
            country: e.country.as_deref(),
            properties: e.properties.as_deref(),
            extra: e.extra.as_deref(),
            ingest_time: self.ingest_time.timestamp_micros(),
            source: self.source,
            event_date: to_days(e.event_date()),
        }
    }
}

/// A silver/events batch of the events.
pub fn silver_batch(events: &[SilverEvent]) -> Result<RecordBatch> {
    let rows: Vec<rows::Silver> = events.iter().map(SilverEvent::row).collect();
    batch_of(&Table::Silver.schema(), &rows)
}

/// The quarantine rows of the rejected records: the record as text (base64 when it is not
/// UTF-8), the reason and its detail.
fn quarantine_batch(rejected: &[(Rejection, &Row<'_>)]) -> Result<RecordBatch> {
    let raw: Vec<std::borrow::Cow<str>> = rejected
        .iter()
        .map(|(r, row)| match std::str::from_utf8(row.raw) {
            Ok(text) if r.reason != RejectReason::NotUtf8 => text.into(),
            _ => BASE64.encode(row.raw).into(),
        })
        .collect();
    let rows: Vec<rows::Quarantine> = rejected
        .iter()
        .zip(&raw)
        .map(|((r, row), raw)| rows::Quarantine {
            raw,
            reason: r.reason.code(),
            detail: &r.detail,
            source: row.source,
            ingest_time: row.ingest_time.timestamp_micros(),
        })
        .collect();
    batch_of(&Table::Quarantine.schema(), &rows)
}

/// How many of `dates` are before the newest of them.
fn late_events(dates: impl Iterator<Item = NaiveDate> + Clone) -> usize {
    let Some(newest) = dates.clone().max() else {
        return 0;
    };
    dates.filter(|d| *d < newest).count()
}

impl crate::telemetry::Measured for SilverOutcome {
    fn record(&self) {
        use crate::telemetry::{REASON, count, count_commits, metric, sample};
        count(metric::RECORDS_IN, self.input);
        count(metric::RECORDS_OUT, self.valid);
        count(metric::QUARANTINED, self.quarantined);
        count(metric::DUPLICATES, self.duplicates);
        count(metric::SUPPRESSED, self.suppressed);
        count(metric::LATE_EVENTS, self.late);
        let commits = self.silver_version.is_some() as usize + (self.quarantined > 0) as usize;
        count_commits(commits, self.retries);
        sample(metric::COMMITS_BEHIND, self.bronze_behind as f64);
        for (reason, n) in &self.quarantined_by_reason {
            metrics::counter!(metric::QUARANTINED_BY_REASON, REASON => reason.clone())
                .increment(*n as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_events_are_those_before_the_newest_date() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        let dates = [day(5), day(3), day(5), day(4), day(5)];
        assert_eq!(late_events(dates.iter().copied()), 2);
        assert_eq!(late_events(std::iter::empty()), 0);
    }
}
