//! The pipeline's health as the tables themselves show it: how fresh gold is, how far each stage
//! is behind the one before, and per day the records each stage took, quarantined (with the
//! reasons) and dropped as duplicates. Read from the lake alone (rows, file statistics and
//! silver's `commitInfo` counts), so it works on a directory lake as on S3; `clickstream status`
//! and the dashboard's pipeline panel show it, and maintenance emits the freshness as a metric.

use std::collections::BTreeMap;

use arrow::array::{StringArray, TimestampMicrosecondArray};
use chrono::{DateTime, NaiveDate, Utc};
use deltalake::DeltaTable;
use futures::StreamExt;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::lake::{Lake, Table, typed_column};

/// How fresh gold is, and how far each stage is behind the one it reads.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Freshness {
    /// The newest event_time gold holds (the newest `session_end` of gold/sessions).
    pub newest_event_time: Option<DateTime<Utc>>,
    /// Seconds from it to the time of the reading.
    pub seconds: Option<f64>,
    /// Bronze commits silver has not processed yet.
    pub silver_behind: i64,
    /// Silver commits gold has not processed yet.
    pub gold_behind: i64,
}

/// One day (UTC, by ingest time) of the pipeline's counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Day {
    /// The day.
    pub date: NaiveDate,
    /// Records bronze took in.
    pub bronze: u64,
    /// Records silver holds.
    pub silver: u64,
    /// Records silver quarantined, per reason.
    pub quarantined: BTreeMap<String, u64>,
    /// Records silver dropped as duplicates (by the day of silver's commit).
    pub duplicates: u64,
    /// Records silver dropped as an erased person's (by the day of silver's commit).
    pub suppressed: u64,
    /// Records whose event date was before their batch's newest (by the day of silver's commit).
    pub late: u64,
}

impl Day {
    /// Records quarantined, all reasons.
    pub fn quarantined_total(&self) -> u64 {
        self.quarantined.values().sum()
    }

    /// Quarantined records per bronze record, in percent (none on a day without bronze records).
    pub fn quarantine_rate_percent(&self) -> Option<f64> {
        (self.bronze > 0).then(|| self.quarantined_total() as f64 * 100.0 / self.bronze as f64)
    }
}

/// The pipeline's health at one moment.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Health {
    /// When it was read.
    pub at: DateTime<Utc>,
    /// Gold's freshness and the stages' lag.
    pub freshness: Freshness,
    /// The last days with records, oldest first.
    pub days: Vec<Day>,
}

impl Health {
    /// Whether gold is staler than `max_lag` (or holds no event at all).
    pub fn is_stale(&self, max_lag: std::time::Duration) -> bool {
        self.freshness
            .seconds
            .is_none_or(|s| s > max_lag.as_secs_f64())
    }
}

/// Reads the lake's health as of `now`, with the counts of the last `days` days.
pub async fn read(lake: &Lake, now: DateTime<Utc>, days: u32) -> Result<Health> {
    let since = now.date_naive() - chrono::Duration::days(i64::from(days.max(1)) - 1);
    let (freshness, bronze, silver, quarantine, commits) = tokio::try_join!(
        freshness(lake, now),
        rows_per_day(lake, Table::Bronze, since),
        rows_per_day(lake, Table::Silver, since),
        quarantined_per_day(lake, since),
        silver_commit_counts(lake, since),
    )?;
    let mut by_day: BTreeMap<NaiveDate, Day> = BTreeMap::new();
    fn day(days: &mut BTreeMap<NaiveDate, Day>, date: NaiveDate) -> &mut Day {
        days.entry(date).or_insert_with(|| Day {
            date,
            ..Day::default()
        })
    }
    for (date, n) in bronze {
        day(&mut by_day, date).bronze = n;
    }
    for (date, n) in silver {
        day(&mut by_day, date).silver = n;
    }
    for ((date, reason), n) in quarantine {
        *day(&mut by_day, date)
            .quarantined
            .entry(reason)
            .or_default() += n;
    }
    for (date, counts) in commits {
        let d = day(&mut by_day, date);
        d.duplicates += counts.duplicates;
        d.suppressed += counts.suppressed;
        d.late += counts.late;
    }
    Ok(Health {
        at: now,
        freshness,
        days: by_day.into_values().collect(),
    })
}

/// Gold's freshness as of `now`, and how far silver and gold are behind.
pub async fn freshness(lake: &Lake, now: DateTime<Utc>) -> Result<Freshness> {
    let newest_event_time = newest_gold_event_time(lake).await?;
    let version = async |t: Table| -> Result<i64> {
        Ok(lake
            .existing_table(t)
            .await?
            .and_then(|t| t.version())
            .map_or(-1, |v| v as i64))
    };
    let (bronze, silver) = tokio::try_join!(version(Table::Bronze), version(Table::Silver))?;
    let silver_done = if silver < 0 {
        -1
    } else {
        crate::silver::watermark(lake).await?
    };
    let gold_done = crate::gold::processed_silver_version(lake)
        .await?
        .unwrap_or(-1);
    Ok(Freshness {
        newest_event_time,
        seconds: newest_event_time
            .map(|t| crate::telemetry::freshness_seconds(t.timestamp_micros(), now)),
        silver_behind: (bronze - silver_done).max(0),
        gold_behind: (silver - gold_done).max(0),
    })
}

/// The newest event time gold holds: the largest `session_end` in gold/sessions' file
/// statistics (the log alone, no data file read).
pub async fn newest_gold_event_time(lake: &Lake) -> Result<Option<DateTime<Utc>>> {
    let Some(sessions) = lake.existing_table(Table::Sessions).await? else {
        return Ok(None);
    };
    let stats = sessions
        .snapshot()
        .and_then(|s| s.add_actions_table(true))
        .map_err(Error::delta(Table::Sessions.path()))?;
    let Some(column) = stats.column_by_name("max.session_end") else {
        return Ok(None);
    };
    let newest = match column.data_type() {
        arrow::datatypes::DataType::Timestamp(_, _) => {
            let micros = arrow::compute::cast(
                column,
                &arrow::datatypes::DataType::Timestamp(
                    arrow::datatypes::TimeUnit::Microsecond,
                    None,
                ),
            )?;
            let micros = micros
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .expect("cast to microseconds");
            arrow::compute::max(micros)
        }
        _ => None,
    };
    Ok(newest.and_then(DateTime::from_timestamp_micros))
}

/// Rows of `table` per day of their `ingest_time`, from `since` on.
async fn rows_per_day(
    lake: &Lake,
    table: Table,
    since: NaiveDate,
) -> Result<BTreeMap<NaiveDate, u64>> {
    let mut days = BTreeMap::new();
    for b in read_since(lake, table, &["ingest_time"], since).await? {
        let at = typed_column::<TimestampMicrosecondArray>(&b, "ingest_time")?;
        for t in at.iter().flatten() {
            if let Some(date) = date_of(t) {
                *days.entry(date).or_default() += 1;
            }
        }
    }
    Ok(days)
}

/// silver/quarantine's rows per day of their `ingest_time` and reason, from `since` on.
async fn quarantined_per_day(
    lake: &Lake,
    since: NaiveDate,
) -> Result<BTreeMap<(NaiveDate, String), u64>> {
    let mut days = BTreeMap::new();
    for b in read_since(lake, Table::Quarantine, &["ingest_time", "reason"], since).await? {
        let at = typed_column::<TimestampMicrosecondArray>(&b, "ingest_time")?;
        let reasons = typed_column::<StringArray>(&b, "reason")?;
        for (t, reason) in at.iter().zip(reasons.iter()) {
            if let (Some(date), Some(reason)) = (t.and_then(date_of), reason) {
                *days.entry((date, reason.to_string())).or_default() += 1;
            }
        }
    }
    Ok(days)
}

/// The rows of `table` ingested from `since` on, `columns` only.
async fn read_since(
    lake: &Lake,
    table: Table,
    columns: &[&str],
    since: NaiveDate,
) -> Result<Vec<arrow::record_batch::RecordBatch>> {
    use deltalake::datafusion::prelude::{col, lit};
    use deltalake::datafusion::scalar::ScalarValue;
    let start = since.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let start =
        ScalarValue::TimestampMicrosecond(Some(start.timestamp_micros()), Some("UTC".into()));
    let filter = col("ingest_time").gt_eq(lit(start));
    lake.read_table(table, columns, Some(filter)).await
}

/// What silver's commits say they dropped, per day of the commit.
#[derive(Debug, Default)]
struct Dropped {
    duplicates: u64,
    suppressed: u64,
    late: u64,
}

/// The counts silver's catch-up commits from `since` on carry in their `commitInfo`, by day.
async fn silver_commit_counts(
    lake: &Lake,
    since: NaiveDate,
) -> Result<BTreeMap<NaiveDate, Dropped>> {
    let mut days: BTreeMap<NaiveDate, Dropped> = BTreeMap::new();
    let Some(silver) = lake.existing_table(Table::Silver).await? else {
        return Ok(days);
    };
    let start = since
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp_millis();
    for commit in newest_commits(&silver).await {
        let Some(at) = commit.timestamp else { continue };
        if at < start {
            continue;
        }
        let Some(date) = DateTime::from_timestamp_millis(at).map(|t| t.date_naive()) else {
            continue;
        };
        let count = |key: &str| commit.info.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
        let d = days.entry(date).or_default();
        d.duplicates += count("duplicates");
        d.suppressed += count("suppressed");
        d.late += count("late");
    }
    Ok(days)
}

/// `table`'s commits (those the log still holds).
async fn newest_commits(table: &DeltaTable) -> Vec<deltalake::kernel::CommitInfo> {
    let mut commits = Vec::new();
    let mut history = table.history(None);
    while let Some(commit) = history.next().await {
        if let Ok(commit) = commit {
            commits.push(commit);
        }
    }
    commits
}

/// The UTC day of `micros` since the epoch.
fn date_of(micros: i64) -> Option<NaiveDate> {
    DateTime::from_timestamp_micros(micros).map(|t| t.date_naive())
}
