//! What the dashboard and the report show, read from gold: [`load`] fills a [`DashboardData`],
//! one reader per gold table.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{RecordBatch, StringArray};
use chrono::{DateTime, NaiveDate, Utc};
use clickstream::Result;
use clickstream::lake::{Lake, Table, rows_of, to_days, typed_column};
use clickstream::rows::{DailyMetrics, FunnelDaily, PageDaily, RetentionWeekly};
use deltalake::datafusion::prelude::{Expr, col, lit};
use deltalake::datafusion::scalar::ScalarValue;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

/// Rows shown in each top list.
const TOP: usize = 10;
/// Values of a breakdown (device, country, source) shown by name; the rest count as "other".
const BREAKDOWN_VALUES: usize = 6;
/// Pages whose daily figures the page keeps (the most viewed in the range).
const PAGES_KEPT: usize = 30;

/// Session duration bins: lower edge in seconds, label.
pub const DURATION_BINS: [(f64, &str); 8] = [
    (0.0, "under 10 s"),
    (10.0, "10-30 s"),
    (30.0, "30 s-1 min"),
    (60.0, "1-3 min"),
    (180.0, "3-10 min"),
    (600.0, "10-30 min"),
    (1800.0, "30-60 min"),
    (3600.0, "1 h or more"),
];
/// Events-per-session bins: lower edge, label.
pub const EVENTS_BINS: [(f64, &str); 7] = [
    (1.0, "1"),
    (2.0, "2"),
    (3.0, "3-4"),
    (5.0, "5-7"),
    (8.0, "8-12"),
    (13.0, "13-20"),
    (21.0, "21 or more"),
];

/// A funnel step summed over the date range (user-days).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelStep {
    /// Position of the step in the funnel, from 1.
    pub step_index: i32,
    /// The step (an event type).
    pub step: String,
    /// User-days reaching the step in order.
    pub users: i64,
    /// `users` over the first step's users.
    pub conversion_from_start: f64,
    /// `users` over the step before's users.
    pub conversion_from_previous: f64,
}

/// Sessions of one day that share a value of a breakdown, and how many of them converted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SessionsBy {
    /// The session date.
    pub date: NaiveDate,
    /// `device`, `country` or `source` (utm_source, else the referrer's host).
    pub dimension: &'static str,
    /// The value ("other" for the values outside the top few).
    pub value: String,
    /// Sessions with the value that day.
    pub sessions: i64,
    /// Of those, sessions that converted.
    pub conversions: i64,
}

/// Sessions of one day per bin ([`DURATION_BINS`] or [`EVENTS_BINS`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BinnedDay {
    /// The session date.
    pub date: NaiveDate,
    /// Sessions per bin, in the bins' order.
    pub counts: Vec<i64>,
}

/// One weekly cohort: users first seen in the week from `week` (a Monday), and how many of them
/// were active in that week and each week after.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cohort {
    /// The Monday of the week the cohort's users were first seen.
    pub week: NaiveDate,
    /// Users in the cohort.
    pub users: i64,
    /// Active users in week 0 (the cohort's own), 1, 2, ...
    pub active: Vec<i64>,
}

/// Everything the dashboard and the report show: daily figures (which the page sums over the
/// range a reader picks) and their sums over the loaded range (which the report prints).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DashboardData {
    /// gold/daily_metrics rows, oldest first.
    pub days: Vec<DailyMetrics>,
    /// The funnel summed over the range.
    pub funnel: Vec<FunnelStep>,
    /// gold/funnel_daily rows.
    pub funnel_daily: Vec<FunnelDaily>,
    /// gold/page_daily rows of the [`PAGES_KEPT`] most viewed pages of the range.
    pub pages_daily: Vec<PageDaily>,
    /// (page_path, page_views) over the range
    pub top_pages: Vec<(String, i64)>,
    /// (page_path, sessions started there) over the range.
    pub entry_pages: Vec<(String, i64)>,
    /// (value, sessions) over the range
    pub sources: Vec<(String, i64)>,
    /// (device, sessions) over the range.
    pub devices: Vec<(String, i64)>,
    /// (country, sessions) over the range.
    pub countries: Vec<(String, i64)>,
    /// Sessions and conversions per day by device, country and source.
    pub sessions_by: Vec<SessionsBy>,
    /// Labels of the session-duration bins ([`DURATION_BINS`]).
    pub duration_bins: Vec<&'static str>,
    /// Sessions per duration bin, per day.
    pub duration_daily: Vec<BinnedDay>,
    /// Labels of the events-per-session bins ([`EVENTS_BINS`]).
    pub events_bins: Vec<&'static str>,
    /// Sessions per events bin, per day.
    pub events_daily: Vec<BinnedDay>,
    /// End of the latest session gold holds.
    pub latest_event_time: Option<DateTime<Utc>>,
    /// When the figures were read.
    pub generated_at: DateTime<Utc>,
    /// Rows in silver/events.
    pub silver_events: i64,
    /// Quarantined records by reason.
    pub quarantined: BTreeMap<String, i64>,
    /// Duplicates silver dropped (from its commits' metadata).
    pub duplicates: i64,
    /// Anonymous ids stitched to a signed-in user (gold/identities).
    pub stitched_anonymous_ids: i64,
    /// The signed-in users those anonymous ids are stitched to.
    pub stitched_users: i64,
    /// The pipeline's health: gold's freshness and the last [`HEALTH_DAYS`] days per stage.
    pub health: clickstream::health::Health,
    /// Weekly retention cohorts (gold/retention_weekly, all of history), oldest cohort first.
    pub retention: Vec<Cohort>,
}

/// A date range (inclusive); `None` ends are open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateRange {
    /// First day, or open.
    pub from: Option<NaiveDate>,
    /// Last day, or open.
    pub to: Option<NaiveDate>,
}

impl DateRange {
    /// The filter on `column` (a date column), if the range is bounded.
    fn filter(&self, column: &str) -> Option<Expr> {
        let day = |d: NaiveDate| lit(ScalarValue::Date32(Some(to_days(d))));
        let lower = self.from.map(|d| col(column).gt_eq(day(d)));
        let upper = self.to.map(|d| col(column).lt_eq(day(d)));
        match (lower, upper) {
            (Some(l), Some(u)) => Some(l.and(u)),
            (l, u) => l.or(u),
        }
    }
}

/// Reads gold within `range` (and the silver, quarantine and retention figures, which span all
/// of history) into [`DashboardData`].
pub async fn load(lake: &Lake, range: DateRange) -> Result<DashboardData> {
    let mut data = DashboardData {
        generated_at: Utc::now(),
        duration_bins: DURATION_BINS.iter().map(|b| b.1).collect(),
        events_bins: EVENTS_BINS.iter().map(|b| b.1).collect(),
        ..Default::default()
    };
    load_days(lake, range, &mut data).await?;
    load_funnel(lake, range, &mut data).await?;
    load_pages(lake, range, &mut data).await?;
    load_sessions(lake, range, &mut data).await?;
    load_reconciliation(lake, &mut data).await?;
    load_identities(lake, &mut data).await?;
    data.retention = load_retention(lake).await?;
    data.health = clickstream::health::read(lake, data.generated_at, HEALTH_DAYS).await?;
    Ok(data)
}

/// Days the pipeline panel shows.
pub const HEALTH_DAYS: u32 = 14;

async fn read(
    lake: &Lake,
    table: Table,
    columns: &[&str],
    filter: Option<Expr>,
) -> Result<Vec<RecordBatch>> {
    lake.read_table(table, columns, filter).await
}

/// gold/daily_metrics, oldest day first.
async fn load_days(lake: &Lake, range: DateRange, data: &mut DashboardData) -> Result<()> {
    data.days = rows_of(&read(lake, Table::DailyMetrics, &[], range.filter("date")).await?)?;
    data.days.sort_by_key(|d| d.date);
    Ok(())
}

/// gold/funnel_daily: each day's steps, and the steps summed over the range.
async fn load_funnel(lake: &Lake, range: DateRange, data: &mut DashboardData) -> Result<()> {
    let rows = read(lake, Table::FunnelDaily, &[], range.filter("date")).await?;
    data.funnel_daily = rows_of(&rows)?;
    data.funnel_daily.sort_by_key(|a| (a.date, a.step_index));
    let mut steps: BTreeMap<i32, (String, i64)> = BTreeMap::new();
    for d in &data.funnel_daily {
        let step = steps
            .entry(d.step_index)
            .or_insert_with(|| (d.step.clone(), 0));
        step.1 += d.users;
    }
    let first = steps.values().next().map_or(0, |s| s.1);
    let mut previous = first;
    for (step_index, (step, users)) in steps {
        data.funnel.push(FunnelStep {
            step_index,
            step,
            users,
            conversion_from_start: ratio(users, first),
            conversion_from_previous: ratio(users, previous),
        });
        previous = users;
    }
    Ok(())
}

fn ratio(a: i64, b: i64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// gold/page_daily: the top pages and entry pages of the range, and the most viewed pages' days.
async fn load_pages(lake: &Lake, range: DateRange, data: &mut DashboardData) -> Result<()> {
    let pages = read(lake, Table::PageDaily, &[], range.filter("date")).await?;
    let mut rows: Vec<PageDaily> = rows_of(&pages)?;
    let (mut views, mut entries) = (HashMap::new(), HashMap::new());
    for r in &rows {
        *views.entry(r.page_path.clone()).or_default() += r.page_views;
        *entries.entry(r.page_path.clone()).or_default() += r.entries;
    }
    entries.retain(|_, n: &mut i64| *n > 0);
    let kept: HashMap<String, i64> = ranked(views.clone(), PAGES_KEPT).into_iter().collect();
    rows.retain(|r| kept.contains_key(&r.page_path));
    rows.sort_by(|a, b| (a.date, &a.page_path).cmp(&(b.date, &b.page_path)));
    data.pages_daily = rows;
    data.top_pages = ranked(views, TOP);
    data.entry_pages = ranked(entries, TOP);
    Ok(())
}

/// The `n` largest counts, largest first (ties by name).
fn ranked(counts: HashMap<String, i64>, n: usize) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// The bin of `value`: the last bin whose lower edge it reaches (the first bin below all).
fn bin(value: f64, bins: &[(f64, &str)]) -> usize {
    bins.iter().rposition(|b| value >= b.0).unwrap_or(0)
}

/// What the dashboard reads of a gold/sessions row.
#[derive(Debug, Deserialize)]
struct SessionFigures {
    session_date: NaiveDate,
    duration_s: f64,
    events: i64,
    converted: bool,
    referrer_host: Option<String>,
    utm_source: Option<String>,
    device_type: Option<String>,
    country: Option<String>,
    session_end: i64,
}

impl SessionFigures {
    /// The columns read: the fields' names.
    const COLUMNS: &[&str] = &[
        "session_date",
        "duration_s",
        "events",
        "converted",
        "referrer_host",
        "utm_source",
        "device_type",
        "country",
        "session_end",
    ];
}

/// gold/sessions: the breakdowns by device, country and source per day, the histograms per day,
/// and the latest session end.
async fn load_sessions(lake: &Lake, range: DateRange, data: &mut DashboardData) -> Result<()> {
    let mut by = Breakdown::new();
    let mut durations: BTreeMap<NaiveDate, Vec<i64>> = BTreeMap::new();
    let mut events: BTreeMap<NaiveDate, Vec<i64>> = BTreeMap::new();
    let filter = range.filter("session_date");
    let batches = read(lake, Table::Sessions, SessionFigures::COLUMNS, filter).await?;
    for s in rows_of::<SessionFigures>(&batches)? {
        let day = s.session_date;
        let source = s.utm_source.or(s.referrer_host);
        for (dimension, value, unknown) in [
            ("device", s.device_type, "(unknown)"),
            ("country", s.country, "(unknown)"),
            ("source", source, "(direct)"),
        ] {
            let value = value.unwrap_or_else(|| unknown.to_string());
            let cell = by.entry((day, dimension, value)).or_default();
            cell.0 += 1;
            cell.1 += i64::from(s.converted);
        }
        let d = durations
            .entry(day)
            .or_insert_with(|| vec![0; DURATION_BINS.len()]);
        d[bin(s.duration_s, &DURATION_BINS)] += 1;
        let e = events
            .entry(day)
            .or_insert_with(|| vec![0; EVENTS_BINS.len()]);
        e[bin(s.events as f64, &EVENTS_BINS)] += 1;
        let end = DateTime::from_timestamp_micros(s.session_end);
        data.latest_event_time = data.latest_event_time.max(end);
    }
    let binned = |m: BTreeMap<NaiveDate, Vec<i64>>| {
        m.into_iter()
            .map(|(date, counts)| BinnedDay { date, counts })
            .collect()
    };
    data.duration_daily = binned(durations);
    data.events_daily = binned(events);

    let totals: HashMap<&str, HashMap<String, i64>> = ["device", "country", "source"]
        .into_iter()
        .map(|d| (d, sessions_per_value(&by, d)))
        .collect();
    data.sources = ranked(totals["source"].clone(), TOP);
    data.devices = ranked(totals["device"].clone(), TOP);
    data.countries = ranked(totals["country"].clone(), TOP);
    data.sessions_by = top_values_per_day(by, &totals);
    Ok(())
}

/// (date, dimension, value) -> (sessions, conversions).
type Breakdown = HashMap<(NaiveDate, &'static str, String), (i64, i64)>;

/// The sessions of each value of `dimension`, over all days.
fn sessions_per_value(by: &Breakdown, dimension: &str) -> HashMap<String, i64> {
    let mut sums: HashMap<String, i64> = HashMap::new();
    for ((_, d, v), (n, _)) in by {
        if *d == dimension {
            *sums.entry(v.clone()).or_default() += n;
        }
    }
    sums
}

/// The breakdown per day, with the values past each dimension's [`BREAKDOWN_VALUES`] most
/// frequent (by `totals`, the sessions of each value over all days) summed as "other".
fn top_values_per_day(
    by: Breakdown,
    totals: &HashMap<&str, HashMap<String, i64>>,
) -> Vec<SessionsBy> {
    let named: HashMap<&str, Vec<String>> = totals
        .iter()
        .map(|(d, values)| {
            let top = ranked(values.clone(), BREAKDOWN_VALUES);
            (*d, top.into_iter().map(|(v, _)| v).collect())
        })
        .collect();
    let mut grouped: BTreeMap<(NaiveDate, &'static str, String), (i64, i64)> = BTreeMap::new();
    for ((date, dimension, value), (sessions, conversions)) in by {
        let value = if named[dimension].contains(&value) {
            value
        } else {
            "other".to_string()
        };
        let cell = grouped.entry((date, dimension, value)).or_default();
        cell.0 += sessions;
        cell.1 += conversions;
    }
    grouped
        .into_iter()
        .map(
            |((date, dimension, value), (sessions, conversions))| SessionsBy {
                date,
                dimension,
                value,
                sessions,
                conversions,
            },
        )
        .collect()
}

/// The silver, quarantine and duplicate counts the footer reconciles.
async fn load_reconciliation(lake: &Lake, data: &mut DashboardData) -> Result<()> {
    data.silver_events = read(lake, Table::Silver, &["event_id"], None)
        .await?
        .iter()
        .map(|b| b.num_rows() as i64)
        .sum();
    for b in read(lake, Table::Quarantine, &["reason"], None).await? {
        for r in typed_column::<StringArray>(&b, "reason")?.iter().flatten() {
            *data.quarantined.entry(r.to_string()).or_default() += 1;
        }
    }
    let Some(silver) = lake.existing_table(Table::Silver).await? else {
        return Ok(());
    };
    let mut history = silver.history(None);
    while let Some(commit) = history.next().await {
        if let Some(n) = commit
            .ok()
            .and_then(|c| c.info.get("duplicates").and_then(|v| v.as_i64()))
        {
            data.duplicates += n;
        }
    }
    Ok(())
}

/// How many anonymous ids gold/identities stitches, and to how many users.
async fn load_identities(lake: &Lake, data: &mut DashboardData) -> Result<()> {
    let mut users = std::collections::HashSet::new();
    for b in read(lake, Table::Identities, &["user_id"], None).await? {
        data.stitched_anonymous_ids += b.num_rows() as i64;
        let ids = typed_column::<StringArray>(&b, "user_id")?;
        users.extend(ids.iter().flatten().map(str::to_string));
    }
    data.stitched_users = users.len() as i64;
    Ok(())
}

/// gold/retention_weekly as cohorts, oldest first.
async fn load_retention(lake: &Lake) -> Result<Vec<Cohort>> {
    let mut cohorts: BTreeMap<NaiveDate, Cohort> = BTreeMap::new();
    let rows = read(lake, Table::RetentionWeekly, &[], None).await?;
    for cell in rows_of::<RetentionWeekly>(&rows)? {
        let cohort = cohorts.entry(cell.cohort_week).or_insert_with(|| Cohort {
            week: cell.cohort_week,
            users: cell.cohort_users,
            active: Vec::new(),
        });
        let at = cell.week_index.max(0) as usize;
        if cohort.active.len() <= at {
            cohort.active.resize(at + 1, 0);
        }
        cohort.active[at] = cell.active_users;
    }
    Ok(cohorts.into_values().collect())
}

/// What a headline shows: a day's figures, the day they are compared with, and the day still in
/// progress, apart.
#[derive(Debug, Clone, Copy)]
pub struct Headline<'a> {
    /// The latest complete day (or the day asked for; or, in a lake with no complete day yet,
    /// the partial one).
    pub day: &'a DailyMetrics,
    /// `day` is still in progress: its figures are not compared with anything.
    pub day_is_partial: bool,
    /// The calendar day before `day`, when gold has it and `day` is complete: like with like.
    pub previous: Option<&'a DailyMetrics>,
    /// The day in progress, shown apart, when it is not `day`.
    pub partial: Option<&'a DailyMetrics>,
}

impl DashboardData {
    /// A day is complete once the UTC date the figures were read on has moved past it; later
    /// days are still receiving events (a few events past midnight make a day, not a complete
    /// one).
    pub fn is_complete(&self, day: &DailyMetrics) -> bool {
        day.date < self.generated_at.date_naive()
    }

    /// The headline for `date`, or for the latest complete day; `None` when gold has no such day.
    pub fn headline(&self, date: Option<NaiveDate>) -> Option<Headline<'_>> {
        let partial = self.days.iter().rev().find(|d| !self.is_complete(d));
        let day = match date {
            Some(wanted) => self.days.iter().find(|d| d.date == wanted)?,
            None => self
                .days
                .iter()
                .rev()
                .find(|d| self.is_complete(d))
                .or(partial)?,
        };
        let day_is_partial = !self.is_complete(day);
        let before = day.date.pred_opt();
        let previous = self
            .days
            .iter()
            .find(|d| !day_is_partial && Some(d.date) == before);
        Some(Headline {
            day,
            day_is_partial,
            previous,
            partial: partial.filter(|p| p.date != day.date),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_in_the_bin_whose_range_holds_them() {
        let events: Vec<&str> = [1.0, 2.0, 3.0, 4.0, 5.0, 12.0, 13.0, 20.0, 21.0, 500.0]
            .map(|v| EVENTS_BINS[bin(v, &EVENTS_BINS)].1)
            .to_vec();
        assert_eq!(
            events,
            [
                "1",
                "2",
                "3-4",
                "3-4",
                "5-7",
                "8-12",
                "13-20",
                "13-20",
                "21 or more",
                "21 or more"
            ]
        );
        let durations: Vec<&str> = [0.0, 9.9, 10.0, 59.0, 60.0, 3599.0, 86_400.0]
            .map(|v| DURATION_BINS[bin(v, &DURATION_BINS)].1)
            .to_vec();
        assert_eq!(
            durations,
            [
                "under 10 s",
                "under 10 s",
                "10-30 s",
                "30 s-1 min",
                "1-3 min",
                "30-60 min",
                "1 h or more"
            ]
        );
    }
}
