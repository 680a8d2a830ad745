//! Gold: sessions, daily metrics, funnel and page figures, as plain functions over silver rows,
//! and the incremental catch-up that keeps the gold tables equal to a from-scratch computation.
//!
//! A catch-up reads only the silver rows the new commits added, then recomputes what they can
//! change: the sessions of the users they touch (from those users' silver events around the
//! touched dates), the event figures of the touched dates (kept warm per date, loaded from silver
//! on a cold start), and DAU/WAU/MAU from a compact per-date set of distinct users
//! (`gold/daily_users`), never from 30 days of raw events.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use chrono::NaiveDate;
use deltalake::DeltaTable;
use deltalake::datafusion::prelude::{Expr, col, lit};
use deltalake::datafusion::scalar::ScalarValue;
use deltalake::protocol::SaveMode;
use serde::Serialize;
use serde_json::json;

mod batches;
mod metrics;
pub mod retention;
mod sessions;

use batches::*;
use metrics::*;
pub use metrics::{GoldTables, compute_from_scratch};
use sessions::*;
pub use sessions::{Session, sessionize};

use crate::error::{Error, Result};
use crate::lake::{
    Lake, Table, added_since, commit_properties, from_days, has_data_files, partition_date,
    read_dates, retry_lost_races, txn_version, typed_column,
};

/// A gap longer than this (µs) starts a new session.
pub const SESSION_GAP_US: i64 = 30 * 60 * 1_000_000;
/// A session never lasts longer than this (µs).
pub const SESSION_MAX_US: i64 = 24 * 3600 * 1_000_000;
const DAY_US: i64 = 24 * 3600 * 1_000_000;
/// The default funnel steps.
pub const DEFAULT_FUNNEL: [&str; 4] = ["view_product", "add_to_cart", "begin_checkout", "purchase"];

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
    /// Users whose sessions were recomputed.
    pub users: usize,
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
}

/// `txn` app id in gold tables: the highest silver version gold reflects.
const GOLD_APP_ID: &str = "silver";
/// The tables gold writes, each with the `txn` watermark.
pub const WRITTEN: [Table; 5] = [
    Table::DailyUsers,
    Table::Sessions,
    Table::DailyMetrics,
    Table::FunnelDaily,
    Table::PageDaily,
];
/// Event dates whose silver rows and figures a warm process keeps; past it, the oldest go.
const MAX_WARM_DATES: usize = 12;
/// Days of distinct users a warm process keeps beyond the event dates it holds.
const MAX_WARM_USER_DATES: usize = 100;

/// What a warm gold process keeps between runs, valid for one silver table at one version.
pub(crate) struct GoldState {
    /// The silver table's URL and Delta table id.
    table: String,
    /// The silver version the state reflects (gold's watermark after the last run).
    version: i64,
    /// Silver rows and event figures per event date, for dates recent runs touched.
    days: BTreeMap<i32, Day>,
    /// Distinct users per event date (as gold/daily_users holds them).
    users: BTreeMap<i32, HashSet<u128>>,
}

fn date_lit(d: i32) -> Expr {
    lit(ScalarValue::Date32(Some(d)))
}

fn between(column: &str, lo: i32, hi: i32) -> Expr {
    col(column).between(date_lit(lo), date_lit(hi))
}

/// Brings gold up to date with silver: every silver commit above gold's watermark (at most
/// [`MAX_COMMITS_PER_RUN`] commits or about [`MAX_ROWS_PER_RUN`] rows), in one commit per gold
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

/// New silver rows above `done` (see [`added_since`]) with the event date of each batch
/// (partition values are not in the files), and the last version taken.
async fn added_silver_rows(
    silver: &DeltaTable,
    done: i64,
    latest: i64,
) -> Result<(Vec<RecordBatch>, Vec<Option<i32>>, i64)> {
    let (commits, last) = added_since(silver, done, latest, &SESSION_INPUT).await?;
    let mut batches = Vec::new();
    let mut dates = Vec::new();
    for (file, file_batches) in commits.into_iter().flat_map(|c| c.files) {
        let date =
            partition_date(&file.partition_values, "event_date").ok_or_else(|| Error::Column {
                column: "event_date".into(),
                reason: format!(
                    "silver file {} has no event_date partition value",
                    file.path
                ),
            })?;
        for b in file_batches {
            dates.push(Some(date));
            batches.push(b);
        }
    }
    Ok((batches, dates, last))
}

/// The gold tables as a run found them.
struct OpenGold(Vec<OpenGoldTable>);

/// One gold table as a run found it.
struct OpenGoldTable {
    kind: Table,
    table: DeltaTable,
    /// The silver version the table reflects (its `txn` watermark; -1 before gold's first run).
    silver_version: i64,
}

impl OpenGold {
    async fn open(lake: &Lake) -> Result<OpenGold> {
        let mut tables = Vec::with_capacity(WRITTEN.len());
        for kind in WRITTEN {
            let table = lake.table(kind).await?;
            let silver_version = txn_version(&table, GOLD_APP_ID).await?.unwrap_or(-1);
            tables.push(OpenGoldTable {
                kind,
                table,
                silver_version,
            });
        }
        Ok(OpenGold(tables))
    }

    /// The silver version every gold table reflects.
    fn watermark(&self) -> i64 {
        self.0.iter().map(|t| t.silver_version).min().unwrap_or(-1)
    }

    /// The table `kind`, as the run found it.
    fn table(&self, kind: Table) -> &DeltaTable {
        let found = self.0.iter().find(|t| t.kind == kind);
        &found.expect("gold opens every table it writes").table
    }

    /// Commits to each table still below `silver_version` what `contents` gives for it (rows,
    /// and the rows they replace; none to append), with the watermark and `meta`.
    async fn commit(
        self,
        lake: &Lake,
        silver_version: i64,
        meta: serde_json::Value,
        contents: impl Fn(Table) -> (RecordBatch, Option<Expr>),
    ) -> Result<()> {
        for open in self.0 {
            if open.silver_version >= silver_version {
                continue;
            }
            let (batch, predicate) = contents(open.kind);
            let (t, meta) = (open.kind, meta.clone());
            let written = replace(open.table, t, batch, predicate, silver_version, meta).await?;
            lake.keep(t, &written);
        }
        Ok(())
    }
}

/// The silver rows a run adds, each batch with its event date.
struct NewRows {
    batches: Vec<RecordBatch>,
    dates: Vec<Option<i32>>,
}

impl NewRows {
    /// Each batch with its date.
    fn dated(&self) -> impl Iterator<Item = (&RecordBatch, i32)> {
        self.batches
            .iter()
            .zip(&self.dates)
            .map(|(b, d)| (b, d.unwrap_or_default()))
    }

    /// The event times of each user the rows touch, sorted.
    fn times_by_user(&self) -> Result<HashMap<u128, Vec<i64>>> {
        let mut times: HashMap<u128, Vec<i64>> = HashMap::new();
        for b in &self.batches {
            let users = typed_column::<StringArray>(b, "user_key")?;
            let at = typed_column::<TimestampMicrosecondArray>(b, "event_time")?;
            for (user, time) in users.iter().zip(at.iter()) {
                if let (Some(user), Some(time)) = (user, time) {
                    times.entry(user_hash(user)).or_default().push(time);
                }
            }
        }
        for t in times.values_mut() {
            t.sort_unstable();
        }
        Ok(times)
    }
}

/// The sessions recomputed by a run: those of the changed runs of events, and the session
/// dates `lo..=hi` they span.
struct Resessionized {
    sessions: Vec<Session>,
    changed_runs: Vec<Run>,
    lo: i32,
    hi: i32,
}

async fn try_catch_up(
    lake: &Lake,
    warm: &mut Option<GoldState>,
    funnel: &[String],
) -> Result<GoldOutcome> {
    let mut outcome = GoldOutcome::default();
    let gold = OpenGold::open(lake).await?;
    let done = gold.watermark();
    let Some(mut silver) = lake.existing_table(Table::Silver).await? else {
        outcome.already_processed = true;
        return Ok(outcome);
    };
    let latest = silver.version().map_or(-1, |v| v as i64);
    if latest <= done {
        outcome.already_processed = true;
        outcome.up_to_version = Some(done);
        return Ok(outcome);
    }
    let (batches, dates, last) = added_silver_rows(&silver, done, latest).await?;
    let new = NewRows { batches, dates };
    outcome.silver_versions = Some((done + 1, last));
    outcome.up_to_version = Some(last);
    outcome.remaining = last < latest;
    outcome.new_events = new.batches.iter().map(RecordBatch::num_rows).sum();
    if last < latest {
        // Everything below reads silver as of `last`, the version the watermark will say.
        silver
            .load_version(last as _)
            .await
            .map_err(Error::delta(Table::Silver.path()))?;
    }
    let state = warm_state(warm, &silver, done);

    let touched: BTreeSet<i32> = new.dates.iter().flatten().copied().collect();
    let (Some(&first), Some(&last_date)) = (touched.first(), touched.last()) else {
        // Commits without rows (all duplicates or invalid): only the watermark moves.
        let meta = json!({ "silver_version": last });
        gold.commit(lake, last, meta, |t| {
            (RecordBatch::new_empty(t.schema()), None)
        })
        .await?;
        state.version = last;
        return Ok(outcome);
    };

    // 1. Sessions of the users the new rows touch, over every run of events they belong to.
    let mut touched_users: HashSet<&str> = HashSet::new();
    for b in &new.batches {
        touched_users.extend(typed_column::<StringArray>(b, "user_key")?.iter().flatten());
    }
    outcome.users = touched_users.len();
    let touched_hashes: HashSet<u128> = touched_users.iter().map(|u| user_hash(u)).collect();
    // The new rows join the dates the state holds; dates it lacks are read whole from silver
    // (as of `last`, so they hold the new rows already).
    let warm_dates: HashSet<i32> = state.days.keys().copied().collect();
    for (b, d) in new.dated() {
        if let Some(day) = state.days.get_mut(&d) {
            day.add(b.clone())?;
        }
    }
    let recomputed = resessionize(
        &silver,
        state,
        &new,
        &touched_hashes,
        (first, last_date),
        funnel,
    )
    .await?;
    let (lo, hi) = (recomputed.lo, recomputed.hi);

    // 2. The other sessions of those dates stay as gold has them.
    let kept = kept_sessions(gold.table(Table::Sessions), &recomputed).await?;
    let new_sessions: Vec<&Session> = recomputed.sessions.iter().collect();
    let new_batch = sessions_batch(&new_sessions)?;
    let mut facts = facts_of(&kept)?;
    facts.extend(new_sessions.iter().map(|s| SessionFacts::from(*s)));
    let by_date = session_days(facts);

    // 3. Distinct users of the dates WAU/MAU need; users new to a date go to gold/daily_users.
    let users_needed = (lo - 29..=last_date.max(hi) + 29)
        .filter(|d| !state.users.contains_key(d))
        .collect::<Vec<_>>();
    load_daily_users(gold.table(Table::DailyUsers), state, &users_needed).await?;
    let new_user_rows = new_users(state, &new)?;
    for (b, d) in new.dated() {
        if let Some(day) = state.days.get_mut(&d).filter(|_| warm_dates.contains(&d)) {
            for_each_activity(std::slice::from_ref(b), &[Some(d)], |_, user, ty, path| {
                day.figures.add(ty, path, user);
            })?;
        }
    }

    // 4. daily_metrics from `lo` to where a 30-day window still reaches a recomputed date.
    let (metrics, metrics_hi) = metrics_rows_from(&gold, state, &touched, &by_date, lo, hi).await?;

    // 5. page_daily of lo..=hi: touched dates from the event figures, the others as gold has them.
    let pages = page_rows_from(gold.table(Table::PageDaily), state, &touched, lo, hi).await?;

    // 6. One commit per table, each carrying the watermark.
    let sessions_out = arrow::compute::concat_batches(
        &Table::Sessions.schema(),
        kept.iter().chain(std::iter::once(&new_batch)),
    )?;
    let daily_users = daily_users_batch(&new_user_rows)?;
    let funnel_out = funnel_batch(by_date.iter(), funnel)?;
    let pages_out = page_batch(pages, &by_date)?;
    let metrics_out = metrics_batch(&metrics)?;
    outcome.dates = Some((from_days(lo), from_days(hi)));
    outcome.sessions = sessions_out.num_rows();
    outcome.daily_metrics = metrics_out.num_rows();
    outcome.funnel_daily = funnel_out.num_rows();
    outcome.page_daily = pages_out.num_rows();
    let meta = json!({ "silver_version": last, "from": from_days(lo), "to": from_days(hi) });
    gold.commit(lake, last, meta, |t| match t {
        Table::DailyUsers => (daily_users.clone(), None),
        Table::Sessions => (sessions_out.clone(), Some(between("session_date", lo, hi))),
        Table::DailyMetrics => (metrics_out.clone(), Some(between("date", lo, metrics_hi))),
        Table::FunnelDaily => (funnel_out.clone(), Some(between("date", lo, hi))),
        _ => (pages_out.clone(), Some(between("date", lo, hi))),
    })
    .await?;
    state.version = last;
    state.evict(&touched);
    Ok(outcome)
}

/// The warm state at silver version `done`, or a fresh one (loaded from the tables as needed).
fn warm_state<'a>(
    warm: &'a mut Option<GoldState>,
    silver: &DeltaTable,
    done: i64,
) -> &'a mut GoldState {
    let id = silver.snapshot().map(|s| s.metadata().id().to_string());
    let table_id = format!("{}#{}", silver.table_url(), id.unwrap_or_default());
    if !warm
        .as_ref()
        .is_some_and(|w| w.table == table_id && w.version == done)
    {
        *warm = Some(GoldState {
            table: table_id,
            version: done,
            days: BTreeMap::new(),
            users: BTreeMap::new(),
        });
    }
    warm.as_mut().expect("state was just set")
}

/// Step 1: a run of a user's events changes only when it holds a new event; only the sessions of
/// changed runs are recomputed, and the dates rewritten are the touched dates `touched` widened
/// to every date those sessions start on.
async fn resessionize(
    silver: &DeltaTable,
    state: &mut GoldState,
    new: &NewRows,
    users: &HashSet<u128>,
    touched: (i32, i32),
    funnel: &[String],
) -> Result<Resessionized> {
    let new_times = new.times_by_user()?;
    let changed = |run: &Run| {
        new_times.get(&run.user).is_some_and(|times| {
            let i = times.partition_point(|t| *t < run.first);
            times.get(i).is_some_and(|t| *t <= run.last)
        })
    };
    let (mut lo, mut hi) = touched;
    loop {
        let missing: Vec<i32> = (lo - 1..=hi + 1)
            .filter(|d| !state.days.contains_key(d))
            .collect();
        load_days(silver, state, &missing).await?;
        let window = (lo - 1..=hi + 1)
            .filter_map(|d| state.days.get(&d))
            .map(|day| day.rows_of(users))
            .collect::<Result<Vec<_>>>()?
            .concat();
        let (sessions, changed_runs) = sessionize_runs(&mut events_of(&window)?, funnel, changed);
        let (new_lo, new_hi) = widened(&changed_runs, lo, hi);
        if (new_lo, new_hi) == (lo, hi) {
            return Ok(Resessionized {
                sessions,
                changed_runs,
                lo,
                hi,
            });
        }
        (lo, hi) = (new_lo, new_hi);
    }
}

/// Step 2: gold's sessions of the recomputed dates but those inside a changed run (which that
/// run's new sessions replace).
async fn kept_sessions(
    sessions: &DeltaTable,
    recomputed: &Resessionized,
) -> Result<Vec<RecordBatch>> {
    let mut changed_spans: HashMap<u128, Vec<(i64, i64)>> = HashMap::new();
    for r in &recomputed.changed_runs {
        changed_spans
            .entry(r.user)
            .or_default()
            .push((r.first, r.last));
    }
    let (lo, hi) = (recomputed.lo, recomputed.hi);
    let old_sessions = read_dates(
        sessions,
        Table::Sessions,
        "session_date",
        |d| (lo..=hi).contains(&d),
        &[],
    )
    .await?;
    let mut kept = Vec::with_capacity(old_sessions.len());
    for b in &old_sessions {
        let users = typed_column::<StringArray>(b, "user_key")?;
        let starts = typed_column::<TimestampMicrosecondArray>(b, "session_start")?;
        let ends = typed_column::<TimestampMicrosecondArray>(b, "session_end")?;
        let keep: BooleanArray = (0..b.num_rows())
            .map(|i| {
                let spans = users
                    .is_valid(i)
                    .then(|| changed_spans.get(&user_hash(users.value(i))))
                    .flatten();
                let replaced = spans.is_some_and(|spans| {
                    spans
                        .iter()
                        .any(|(first, last)| starts.value(i) <= *last && ends.value(i) >= *first)
                });
                Some(!replaced)
            })
            .collect();
        kept.push(crate::lake::conform(
            &arrow::compute::filter_record_batch(b, &keep)?,
            &Table::Sessions.schema(),
        )?);
    }
    Ok(kept)
}

/// Step 3: the users of the new rows that are new to their date (now also in the state), which
/// go to gold/daily_users.
fn new_users<'a>(state: &mut GoldState, new: &'a NewRows) -> Result<BTreeMap<i32, Vec<&'a str>>> {
    let mut rows: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
    for (b, d) in new.dated() {
        let set = state.users.entry(d).or_default();
        for u in typed_column::<StringArray>(b, "user_key")?.iter().flatten() {
            if set.insert(user_hash(u)) {
                rows.entry(d).or_default().push(u);
            }
        }
    }
    Ok(rows)
}

/// Step 4: daily_metrics rows from `lo` to where a 30-day window still reaches a recomputed date
/// (returned with the rows): touched dates from the event figures, the dates up to `hi` with
/// their sessions recomputed, later ones as gold has them but with WAU/MAU again.
async fn metrics_rows_from(
    gold: &OpenGold,
    state: &mut GoldState,
    touched: &BTreeSet<i32>,
    by_date: &BTreeMap<i32, SessionDay<'_>>,
    lo: i32,
    hi: i32,
) -> Result<(Vec<MetricsRow>, i32)> {
    let old_metrics = metrics_rows(
        &read_dates(
            gold.table(Table::DailyMetrics),
            Table::DailyMetrics,
            "date",
            |d| (lo..=hi + 29).contains(&d),
            &[],
        )
        .await?,
    )?;
    let old_by_date: BTreeMap<i32, MetricsRow> = old_metrics.iter().map(|r| (r.date, *r)).collect();
    let metrics_hi = old_by_date
        .keys()
        .next_back()
        .copied()
        .unwrap_or(hi)
        .max(hi);
    let dates: BTreeSet<i32> = old_by_date
        .keys()
        .copied()
        .chain(by_date.keys().copied())
        .chain(touched.iter().copied())
        .filter(|d| (lo..=metrics_hi).contains(d))
        .collect();
    let mut metrics: Vec<MetricsRow> = Vec::with_capacity(dates.len());
    for d in dates {
        let old = old_by_date.get(&d);
        let row = if let Some(e) = state.days.get(&d).filter(|_| touched.contains(&d)) {
            let e = &e.figures;
            let dau = state.users.get(&d).map_or(0, |u| u.len() as i64);
            MetricsRow::new(d, (dau, e.events, e.page_views), by_date.get(&d))
        } else if d <= hi {
            let figures = old.map_or((0, 0, 0), |o| (o.dau, o.events, o.page_views));
            MetricsRow::new(d, figures, by_date.get(&d))
        } else if let Some(o) = old {
            *o
        } else {
            continue;
        };
        if row.events == 0 && row.sessions == 0 {
            continue;
        }
        metrics.push(row);
    }
    let missing_users: Vec<i32> = (lo - 29..=metrics_hi)
        .filter(|d| !state.users.contains_key(d))
        .collect();
    load_daily_users(gold.table(Table::DailyUsers), state, &missing_users).await?;
    fill_active_users(&mut metrics, &state.users);
    Ok((metrics, metrics_hi))
}

/// Step 5: page_daily rows of `lo..=hi`: touched dates from the event figures, the others as
/// gold has them.
async fn page_rows_from(
    page_daily: &DeltaTable,
    state: &GoldState,
    touched: &BTreeSet<i32>,
    lo: i32,
    hi: i32,
) -> Result<BTreeMap<(i32, String), PageRow>> {
    let mut pages: BTreeMap<(i32, String), PageRow> = BTreeMap::new();
    let rows = read_dates(
        page_daily,
        Table::PageDaily,
        "date",
        |d| (lo..=hi).contains(&d),
        &[],
    )
    .await?;
    for b in rows {
        let date = typed_column::<Date32Array>(&b, "date")?;
        let path = typed_column::<StringArray>(&b, "page_path")?;
        let views = typed_column::<Int64Array>(&b, "page_views")?;
        let unique = typed_column::<Int64Array>(&b, "unique_users")?;
        for i in 0..b.num_rows() {
            if !touched.contains(&date.value(i)) && views.value(i) > 0 {
                pages.insert(
                    (date.value(i), path.value(i).to_string()),
                    PageRow {
                        page_views: views.value(i),
                        unique_users: unique.value(i),
                        ..Default::default()
                    },
                );
            }
        }
    }
    pages.extend(page_views_of(
        touched
            .iter()
            .filter_map(|d| Some((*d, &state.days.get(d)?.figures))),
    ));
    Ok(pages)
}

/// The range `lo..=hi` of session dates widened to hold every session of the changed `runs`
/// (found in the window of dates `lo - 1 ..= hi + 1`); a run that may go on past the window's
/// edge widens it too.
fn widened(changed_runs: &[Run], lo: i32, hi: i32) -> (i32, i32) {
    let (mut new_lo, mut new_hi) = (lo, hi);
    let window_start = (lo - 1) as i64 * DAY_US;
    let window_end = (hi + 2) as i64 * DAY_US;
    for r in changed_runs {
        if r.first - window_start < SESSION_GAP_US {
            new_lo = new_lo.min(lo - 1);
        }
        if window_end - r.last <= SESSION_GAP_US {
            new_hi = new_hi.max(hi + 1);
        }
        new_lo = new_lo.min(r.first_date);
        new_hi = new_hi.max(r.last_session_date);
    }
    (new_lo, new_hi)
}

/// One event date's silver rows (columns [`SESSION_INPUT`]) with the rows of each user, and its
/// event figures.
#[derive(Default)]
struct Day {
    batches: Vec<RecordBatch>,
    /// Per user: (batch, row) of each of their events.
    by_user: HashMap<u128, Vec<(u32, u32)>>,
    figures: EventDay,
}

impl Day {
    /// Adds silver rows of this date (without touching the figures).
    fn add(&mut self, batch: RecordBatch) -> Result<()> {
        let index = self.batches.len() as u32;
        let users = typed_column::<StringArray>(&batch, "user_key")?;
        for (row, user) in users.iter().enumerate() {
            if let Some(user) = user {
                self.by_user
                    .entry(user_hash(user))
                    .or_default()
                    .push((index, row as u32));
            }
        }
        self.batches.push(batch);
        Ok(())
    }

    /// The rows of `users` on this date.
    fn rows_of(&self, users: &HashSet<u128>) -> Result<Vec<RecordBatch>> {
        let mut per_batch: Vec<Vec<u32>> = vec![Vec::new(); self.batches.len()];
        for user in users {
            for (batch, row) in self.by_user.get(user).into_iter().flatten() {
                per_batch[*batch as usize].push(*row);
            }
        }
        let mut out = Vec::new();
        for (batch, rows) in self.batches.iter().zip(per_batch) {
            if !rows.is_empty() {
                let indices = arrow::array::UInt32Array::from(rows);
                out.push(arrow::compute::take_record_batch(batch, &indices)?);
            }
        }
        Ok(out)
    }
}

/// Enters `dates` into `loaded` (empty until read); true when `table` has files to read them from.
fn start_loading<V: Default>(
    loaded: &mut BTreeMap<i32, V>,
    dates: &[i32],
    table: &DeltaTable,
) -> bool {
    for d in dates {
        loaded.entry(*d).or_default();
    }
    !dates.is_empty() && has_data_files(table)
}

/// Reads the silver rows of `dates` (as of the `silver` handle's version) into the state, with
/// their event figures.
async fn load_days(silver: &DeltaTable, state: &mut GoldState, dates: &[i32]) -> Result<()> {
    if !start_loading(&mut state.days, dates, silver) {
        return Ok(());
    }
    let mut columns = SESSION_INPUT.to_vec();
    columns.push("event_date");
    let wanted: HashSet<i32> = dates.iter().copied().collect();
    let rows = read_dates(
        silver,
        Table::Silver,
        "event_date",
        |d| wanted.contains(&d),
        &columns,
    )
    .await?;
    for batch in rows {
        let event_dates = typed_column::<Date32Array>(&batch, "event_date")?;
        let mut present: Vec<i32> = event_dates.values().to_vec();
        present.sort_unstable();
        present.dedup();
        for d in present {
            let Some(day) = state.days.get_mut(&d) else {
                continue;
            };
            let rows = if event_dates.values().iter().all(|x| *x == d) {
                batch.clone()
            } else {
                let mask: BooleanArray =
                    event_dates.values().iter().map(|x| Some(*x == d)).collect();
                arrow::compute::filter_record_batch(&batch, &mask)?
            };
            for_each_activity(
                std::slice::from_ref(&rows),
                &[Some(d)],
                |_, user, ty, path| {
                    day.figures.add(ty, path, user);
                },
            )?;
            day.add(rows)?;
        }
    }
    Ok(())
}

/// Loads the distinct users of `dates` from gold/daily_users into the state (empty for dates
/// without users).
async fn load_daily_users(
    daily_users: &DeltaTable,
    state: &mut GoldState,
    dates: &[i32],
) -> Result<()> {
    if !start_loading(&mut state.users, dates, daily_users) {
        return Ok(());
    }
    let wanted: HashSet<i32> = dates.iter().copied().collect();
    let rows = read_dates(
        daily_users,
        Table::DailyUsers,
        "date",
        |d| wanted.contains(&d),
        &["date", "user_key"],
    )
    .await?;
    for b in rows {
        let date = typed_column::<Date32Array>(&b, "date")?;
        let user = typed_column::<StringArray>(&b, "user_key")?;
        for i in 0..b.num_rows() {
            if let Some(set) = state.users.get_mut(&date.value(i)) {
                set.insert(user_hash(user.value(i)));
            }
        }
    }
    Ok(())
}

impl GoldState {
    /// Keeps at most [`MAX_WARM_DATES`] dates of event figures and [`MAX_WARM_USER_DATES`] of
    /// users, dropping the oldest (except `keep`).
    fn evict(&mut self, keep: &BTreeSet<i32>) {
        while self.days.len() > MAX_WARM_DATES {
            let Some(oldest) = self.days.keys().copied().find(|d| !keep.contains(d)) else {
                break;
            };
            self.days.remove(&oldest);
        }
        while self.users.len() > MAX_WARM_USER_DATES {
            let Some(oldest) = self.users.keys().copied().find(|d| !keep.contains(d)) else {
                break;
            };
            self.users.remove(&oldest);
        }
    }
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

/// Writes `batch` to `table`, replacing the rows matching `predicate` (appending when none), with
/// the gold watermark.
async fn replace(
    table: DeltaTable,
    kind: Table,
    batch: RecordBatch,
    predicate: Option<Expr>,
    silver_version: i64,
    meta: serde_json::Value,
) -> Result<DeltaTable> {
    let mut write = table
        .write(vec![batch])
        .with_partition_columns(kind.partition_columns().iter().copied())
        .with_commit_properties(commit_properties(GOLD_APP_ID, silver_version, meta));
    write = match predicate {
        Some(p) => write
            .with_save_mode(SaveMode::Overwrite)
            .with_replace_where(p),
        None => write.with_save_mode(SaveMode::Append),
    };
    write.await.map_err(Error::delta(kind.path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(date: i32) -> MetricsRow {
        MetricsRow::new(date, (0, 1, 0), None)
    }

    /// Distinct users over the `window` days ending `date`, counted directly.
    fn direct(users: &BTreeMap<i32, HashSet<u128>>, date: i32, window: i32) -> i64 {
        let mut all = HashSet::new();
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
            users.insert(d, HashSet::from([(d % 9) as u128, (d % 4 + 100) as u128]));
        }
        let dates = [31, 32, 33, 40, 41, 58, 60];
        let mut rows: Vec<MetricsRow> = dates.iter().map(|d| row(*d)).collect();
        fill_active_users(&mut rows, &users);
        for r in &rows {
            assert_eq!(r.wau, direct(&users, r.date, 7), "wau on {}", r.date);
            assert_eq!(r.mau, direct(&users, r.date, 30), "mau on {}", r.date);
        }
    }
}
