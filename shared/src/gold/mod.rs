//! Gold: sessions, daily metrics, funnel and page figures, as plain functions over silver rows,
//! and the incremental catch-up that keeps the gold tables equal to a from-scratch computation.
//!
//! A catch-up reads only the silver rows the new commits added, then recomputes what they can
//! change: the sessions of the users they touch (from those users' silver events around the
//! touched dates), the event figures of the touched dates (kept warm per date, loaded from silver
//! on a cold start), and DAU/WAU/MAU from a compact per-date set of distinct users
//! (`gold/daily_users`), never from 30 days of raw events.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{
    Array, BooleanArray, Date32Array, Int32Array, Int64Array, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray,
};
use chrono::{DateTime, NaiveDate, Utc};
use deltalake::DeltaTable;
use deltalake::datafusion::prelude::{Expr, col, lit};
use deltalake::datafusion::scalar::ScalarValue;
use deltalake::protocol::SaveMode;
use serde::Serialize;
use serde_json::json;

mod batches;
mod catch_up;
mod erase;
pub mod identities;
mod metrics;
pub mod retention;
mod sessions;
mod tables;
mod warm;

use batches::*;
use catch_up::*;
pub use erase::{GoldErasure, erase};
use identities::{PEOPLE_INPUT, People};
use metrics::*;
pub use metrics::{GoldTables, compute_from_scratch};
use sessions::*;
pub use sessions::{Session, sessionize};
use tables::*;
use warm::*;

use crate::error::{Error, Result};

/// Gold's hash maps and sets hash with foldhash (seeded per map) instead of SipHash: their keys
/// are user hashes and short strings looked up once or more per event, and SipHash was about 6%
/// of a gold run's samples on a large date (the person of each event).
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// See [`HashMap`].
pub(crate) type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
use crate::lake::{
    Lake, Replaced, Table, added_since, batch_of, commit_properties, from_days, has_data_files,
    partition_date, read_dates, read_whole, retry_lost_races, rows_of, to_days, txn_version,
    typed_column, write_replacing,
};
use crate::rows::{self, DailyMetrics};

/// A gap longer than this (µs) starts a new session.
pub const SESSION_GAP_US: i64 = 30 * 60 * 1_000_000;
/// A session never lasts longer than this (µs).
pub const SESSION_MAX_US: i64 = 24 * 3600 * 1_000_000;
const DAY_US: i64 = 24 * 3600 * 1_000_000;
/// The default funnel steps.
pub const DEFAULT_FUNNEL: [&str; 4] = ["view_product", "add_to_cart", "begin_checkout", "purchase"];

/// Replaces every row of `table` with `rows` (the tables the exporter recomputes whole, so that
/// running it again gives the same table).
async fn overwrite_whole<T: Serialize>(lake: &Lake, table: Table, rows: &[T]) -> Result<()> {
    let written = lake
        .table(table)
        .await?
        .write(vec![batch_of(&table.schema(), rows)?])
        .with_save_mode(SaveMode::Overwrite)
        .with_commit_properties(crate::lake::writer_commit())
        .await
        .map_err(Error::delta(table.path()))?;
    lake.keep(table, &written);
    Ok(())
}

/// Parses a comma-separated list of funnel steps; the default funnel when empty.
pub fn parse_funnel(steps: Option<&str>) -> Vec<String> {
    let steps: Vec<String> = steps
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if steps.is_empty() {
        DEFAULT_FUNNEL.iter().map(|s| s.to_string()).collect()
    } else {
        steps
    }
}

/// Silver columns the sessionization reads.
pub const SESSION_INPUT: [&str; 9] = [
    "event_id",
    "event_type",
    "event_time",
    "user_key",
    "page_url",
    "page_path",
    "referrer",
    "device_type",
    "country",
];
/// Silver columns the daily activity figures read (with `event_date`).
pub const ACTIVITY_INPUT: [&str; 3] = ["user_key", "event_type", "page_path"];

fn day_of(us: i64) -> i32 {
    us.div_euclid(DAY_US) as i32
}

fn opt(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

/// What one gold catch-up did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct GoldOutcome {
    /// First and last silver commit processed; none when gold was already up to date.
    pub silver_versions: Option<(i64, i64)>,
    /// True when gold was already up to date with silver (nothing was written).
    pub already_processed: bool,
    /// Silver version gold is now up to date with.
    pub up_to_version: Option<i64>,
    /// Silver rows the processed commits added.
    pub new_events: usize,
    /// Persons whose sessions were recomputed.
    pub users: usize,
    /// Anonymous ids seen before whose person changed (their earlier events were re-keyed).
    pub rekeyed: usize,
    /// First and last session_date recomputed.
    pub dates: Option<(NaiveDate, NaiveDate)>,
    /// Rows written per gold table.
    pub sessions: usize,
    /// Rows written to gold/daily_metrics.
    pub daily_metrics: usize,
    /// Rows written to gold/funnel_daily.
    pub funnel_daily: usize,
    /// Rows written to gold/page_daily.
    pub page_daily: usize,
    /// More silver commits wait than one run takes: call again.
    pub remaining: bool,
    /// Commit races lost (and retried) on the way.
    pub retries: u32,
    /// The newest event_time among the rows this run committed.
    pub newest_event_time: Option<DateTime<Utc>>,
    /// Silver commits still to process after this run.
    pub silver_behind: i64,
    /// True when the run started from what this process kept of its last run; false when it
    /// read the tables afresh (a new process, or gold changed by another writer since) or had
    /// nothing to do.
    pub warm: bool,
}

/// `txn` app id in gold tables: the highest silver version gold reflects.
const GOLD_APP_ID: &str = "silver";
/// The tables gold writes, each with the `txn` watermark.
/// The stitching state (anonymous_ids) comes last: a run that stopped before it sees the same
/// changes of person again.
pub const WRITTEN: [Table; 6] = [
    Table::DailyUsers,
    Table::Sessions,
    Table::DailyMetrics,
    Table::FunnelDaily,
    Table::PageDaily,
    Table::AnonymousIds,
];
fn date_lit(d: i32) -> Expr {
    lit(ScalarValue::Date32(Some(d)))
}

/// Most silver rows one gold run takes. A gold run's cost follows the dates it touches more than
/// its rows (it rewrites their sessions whole), and it holds its rows compactly, so it takes twice
/// silver's runs: on a landed file of a million records, runs of one silver commit each made gold
/// 1.5x slower.
const MAX_ROWS_PER_RUN: usize = 200_000;

/// Brings gold up to date with silver: every silver commit above gold's watermark (at most
/// [`MAX_COMMITS_PER_RUN`] commits or [`MAX_ROWS_PER_RUN`] rows), in one commit per gold
/// table. Idempotent, and a commit that loses a race with another writer is retried from a fresh
/// read of the tables.
pub async fn catch_up(lake: &Lake, funnel: &[String]) -> Result<GoldOutcome> {
    let (outcome, retries) = retry_lost_races("gold", || async {
        let mut state = lake.stage_state::<Option<GoldState>>().lock_owned().await;
        let result = try_catch_up(lake, &mut state, funnel).await;
        if result.is_err() {
            // Whatever the failure left half-done, the next run starts from the tables.
            *state = None;
        }
        result
    })
    .await?;
    Ok(GoldOutcome { retries, ..outcome })
}

/// The silver version every gold table reflects (gold is computed over silver up to it), or
/// `None` before gold's first update.
pub async fn processed_silver_version(lake: &Lake) -> Result<Option<i64>> {
    let mut done = None;
    for t in WRITTEN {
        let Some(table) = lake.existing_table(t).await? else {
            return Ok(None);
        };
        let v = txn_version(&table, GOLD_APP_ID).await?;
        done = match (done, v) {
            (_, None) => return Ok(None),
            (None, v) => v,
            (Some(d), Some(v)) => Some(d.min(v)),
        };
    }
    Ok(done)
}

impl crate::telemetry::Measured for GoldOutcome {
    fn record(&self) {
        use crate::telemetry::{TABLE, count, count_commits, metric, record_freshness, sample};
        count(metric::RECORDS_IN, self.new_events);
        count(metric::RECORDS_OUT, self.sessions);
        let rows = [
            (Table::Sessions, self.sessions),
            (Table::DailyMetrics, self.daily_metrics),
            (Table::FunnelDaily, self.funnel_daily),
            (Table::PageDaily, self.page_daily),
        ];
        for (table, n) in rows.into_iter().filter(|(_, n)| *n > 0) {
            ::metrics::counter!(metric::ROWS_WRITTEN, TABLE => table.path()).increment(n as u64);
        }
        let commits = if self.already_processed {
            0
        } else {
            WRITTEN.len()
        };
        count_commits(commits, self.retries);
        sample(metric::COMMITS_BEHIND, self.silver_behind as f64);
        if let Some(newest) = self.newest_event_time {
            record_freshness(newest.timestamp_micros(), Utc::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(date: i32) -> DailyMetrics {
        metrics_row(date, (0, 1, 0), None)
    }

    /// Distinct users over the `window` days ending `date`, counted directly.
    fn direct(users: &BTreeMap<i32, HashSet<u128>>, date: i32, window: i32) -> i64 {
        let mut all = HashSet::default();
        for (_, day) in users.range(date - window + 1..=date) {
            all.extend(day.iter().copied());
        }
        all.len() as i64
    }

    #[test]
    fn active_users_count_days_before_the_first_row_and_across_gaps() {
        // Users on every day from 0 to 60 (user d % 9 and d % 4 + 100), rows for some dates only:
        // the first row's window reaches days without a row, and there are gaps.
        let mut users: BTreeMap<i32, HashSet<u128>> = BTreeMap::new();
        for d in 0..=60 {
            users.insert(
                d,
                HashSet::from_iter([(d % 9) as u128, (d % 4 + 100) as u128]),
            );
        }
        let dates = [31, 32, 33, 40, 41, 58, 60];
        let mut rows: Vec<DailyMetrics> = dates.iter().map(|d| row(*d)).collect();
        fill_active_users(&mut rows, &users, &People::default());
        for r in &rows {
            assert_eq!(
                r.wau,
                direct(&users, to_days(r.date), 7),
                "wau on {}",
                r.date
            );
            assert_eq!(
                r.mau,
                direct(&users, to_days(r.date), 30),
                "mau on {}",
                r.date
            );
        }
    }
}
