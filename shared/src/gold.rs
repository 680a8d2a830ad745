//! Gold: sessions, daily metrics, funnel and page figures, as plain functions over silver rows,
//! and the incremental update that keeps the gold tables equal to a from-scratch computation.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array,
    RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{Date32Type, TimestampMicrosecondType};
use chrono::{DateTime, NaiveDate};
use deltalake::DeltaTable;
use deltalake::datafusion::prelude::{Expr, col, lit};
use deltalake::datafusion::scalar::ScalarValue;
use deltalake::protocol::SaveMode;
use serde::Serialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::lake::{Lake, Table, added_files, commit_properties, txn_version};

/// A gap longer than this (µs) starts a new session.
pub const SESSION_GAP_US: i64 = 30 * 60 * 1_000_000;
/// A session never lasts longer than this (µs).
pub const SESSION_MAX_US: i64 = 24 * 3600 * 1_000_000;
const DAY_US: i64 = 24 * 3600 * 1_000_000;
/// The default funnel steps.
pub const DEFAULT_FUNNEL: [&str; 4] = ["view_product", "add_to_cart", "begin_checkout", "purchase"];
/// `txn` app id in gold tables: the silver version gold is up to date with.
const GOLD_APP_ID: &str = "silver";

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
/// Silver columns the daily activity figures read.
pub const ACTIVITY_INPUT: [&str; 4] = ["event_date", "user_key", "event_type", "page_path"];

/// One silver event, borrowed from Arrow arrays.
#[derive(Debug, Clone, Copy)]
struct Event<'a> {
    event_id: &'a str,
    event_type: &'a str,
    time: i64,
    user_key: &'a str,
    page_url: Option<&'a str>,
    page_path: Option<&'a str>,
    referrer: Option<&'a str>,
    device_type: Option<&'a str>,
    country: Option<&'a str>,
}

/// One computed session (a row of gold/sessions), plus the funnel step it reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub session_id: String,
    pub user_key: String,
    pub start: i64,
    pub end: i64,
    pub events: i64,
    pub page_views: i64,
    pub entry_page: Option<String>,
    pub exit_page: Option<String>,
    pub is_bounce: bool,
    pub converted: bool,
    pub device_type: Option<String>,
    pub country: Option<String>,
    pub referrer_host: Option<String>,
    pub utm_source: Option<String>,
    /// UTC date of `start`, as days since the epoch.
    pub date: i32,
    /// Number of funnel steps reached in order (0..=steps).
    pub funnel_reached: usize,
}

/// A maximal run of one user's events with no gap over 30 minutes (its sessions depend only on it).
#[derive(Debug, Clone, Copy)]
struct Run {
    first: i64,
    last: i64,
    first_date: i32,
    last_session_date: i32,
}

fn day_of(us: i64) -> i32 {
    us.div_euclid(DAY_US) as i32
}

/// Date32 value of a date.
pub fn to_days(d: NaiveDate) -> i32 {
    day_of(
        d.and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc()
            .timestamp_micros(),
    )
}

/// Date of a Date32 value.
pub fn from_days(days: i32) -> NaiveDate {
    DateTime::from_timestamp(days as i64 * 86_400, 0)
        .unwrap_or_default()
        .date_naive()
}

fn opt(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

fn events_of(batches: &[RecordBatch]) -> Vec<Event<'_>> {
    let mut out = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for b in batches {
        let s = |name: &str| b.column_by_name(name).map(|c| c.as_string::<i32>());
        let (
            Some(id),
            Some(ty),
            Some(user),
            Some(url),
            Some(path),
            Some(refr),
            Some(dev),
            Some(ctry),
        ) = (
            s("event_id"),
            s("event_type"),
            s("user_key"),
            s("page_url"),
            s("page_path"),
            s("referrer"),
            s("device_type"),
            s("country"),
        )
        else {
            continue;
        };
        let Some(time) = b
            .column_by_name("event_time")
            .map(|c| c.as_primitive::<TimestampMicrosecondType>())
        else {
            continue;
        };
        for i in 0..b.num_rows() {
            out.push(Event {
                event_id: id.value(i),
                event_type: ty.value(i),
                time: time.value(i),
                user_key: user.value(i),
                page_url: opt(url, i),
                page_path: opt(path, i),
                referrer: opt(refr, i),
                device_type: opt(dev, i),
                country: opt(ctry, i),
            });
        }
    }
    out
}

fn session_id(user_key: &str, start: i64) -> String {
    let mut bytes = Vec::with_capacity(user_key.len() + 9);
    bytes.extend_from_slice(user_key.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&start.to_le_bytes());
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
}

fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok()?.host_str().map(str::to_string)
}

fn utm_source_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    parsed
        .query_pairs()
        .find(|(k, _)| k == "utm_source")
        .map(|(_, v)| v.into_owned())
}

fn build_session(user_key: &str, events: &[Event<'_>], funnel: &[String]) -> Session {
    let first = events[0];
    let last = events[events.len() - 1];
    let page_views: Vec<&Event<'_>> = events
        .iter()
        .filter(|e| e.event_type == "page_view")
        .collect();
    let mut reached = 0;
    for e in events {
        if reached < funnel.len() && e.event_type == funnel[reached] {
            reached += 1;
        }
    }
    Session {
        session_id: session_id(user_key, first.time),
        user_key: user_key.to_string(),
        start: first.time,
        end: last.time,
        events: events.len() as i64,
        page_views: page_views.len() as i64,
        entry_page: page_views
            .first()
            .and_then(|e| e.page_path)
            .map(str::to_string),
        exit_page: page_views
            .last()
            .and_then(|e| e.page_path)
            .map(str::to_string),
        is_bounce: events.len() == 1 && page_views.len() == 1,
        converted: events.iter().any(|e| e.event_type == "purchase"),
        device_type: events
            .iter()
            .find_map(|e| e.device_type)
            .map(str::to_string),
        country: events.iter().find_map(|e| e.country).map(str::to_string),
        referrer_host: events.iter().find_map(|e| e.referrer).and_then(host_of),
        utm_source: events
            .iter()
            .find_map(|e| e.page_url)
            .and_then(utm_source_of),
        date: day_of(first.time),
        funnel_reached: reached,
    }
}

/// Splits silver events into sessions: per user_key ordered by (event_time, event_id), a new session
/// starts after a gap of more than 30 minutes or when the session would exceed 24 hours.
pub fn sessionize(silver: &[RecordBatch], funnel: &[String]) -> Vec<Session> {
    sessionize_runs(&mut events_of(silver), funnel).0
}

fn sessionize_runs(events: &mut [Event<'_>], funnel: &[String]) -> (Vec<Session>, Vec<Run>) {
    events.sort_unstable_by(|a, b| {
        (a.user_key, a.time, a.event_id).cmp(&(b.user_key, b.time, b.event_id))
    });
    let mut sessions = Vec::new();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let user = events[i].user_key;
        let mut j = i;
        while j < events.len() && events[j].user_key == user {
            j += 1;
        }
        let user_events = &events[i..j];
        let mut start = 0;
        let mut run_start = 0;
        for k in 1..=user_events.len() {
            let end_of_user = k == user_events.len();
            let gap =
                !end_of_user && user_events[k].time - user_events[k - 1].time > SESSION_GAP_US;
            let too_long =
                !end_of_user && user_events[k].time - user_events[start].time > SESSION_MAX_US;
            if end_of_user || gap || too_long {
                sessions.push(build_session(user, &user_events[start..k], funnel));
                start = k;
            }
            if end_of_user || gap {
                runs.push(Run {
                    first: user_events[run_start].time,
                    last: user_events[k - 1].time,
                    first_date: day_of(user_events[run_start].time),
                    last_session_date: sessions.last().map_or(0, |s| s.date),
                });
                run_start = k;
            }
        }
        i = j;
    }
    (sessions, runs)
}

/// The four gold tables as Arrow batches.
#[derive(Debug, Clone)]
pub struct GoldTables {
    pub sessions: RecordBatch,
    pub daily_metrics: RecordBatch,
    pub funnel_daily: RecordBatch,
    pub page_daily: RecordBatch,
}

/// Session aggregates of one session_date.
#[derive(Default)]
struct SessionDay {
    sessions: i64,
    duration_s: f64,
    bounces: i64,
    conversions: i64,
    events: i64,
}

/// Event-based figures of one event date.
#[derive(Default)]
struct ActivityDay<'a> {
    users: HashSet<&'a str>,
    events: i64,
    page_views: i64,
    pages: HashMap<&'a str, (i64, HashSet<&'a str>)>,
}

fn activity_by_date(activity: &[RecordBatch]) -> BTreeMap<i32, ActivityDay<'_>> {
    let mut days: BTreeMap<i32, ActivityDay<'_>> = BTreeMap::new();
    for b in activity {
        let (Some(date), Some(user), Some(ty), Some(path)) = (
            b.column_by_name("event_date")
                .map(|c| c.as_primitive::<Date32Type>()),
            b.column_by_name("user_key").map(|c| c.as_string::<i32>()),
            b.column_by_name("event_type").map(|c| c.as_string::<i32>()),
            b.column_by_name("page_path").map(|c| c.as_string::<i32>()),
        ) else {
            continue;
        };
        for i in 0..b.num_rows() {
            let day = days.entry(date.value(i)).or_default();
            let u = user.value(i);
            day.users.insert(u);
            day.events += 1;
            if ty.value(i) == "page_view" {
                day.page_views += 1;
                if path.is_valid(i) {
                    let page = day.pages.entry(path.value(i)).or_default();
                    page.0 += 1;
                    page.1.insert(u);
                }
            }
        }
    }
    days
}

/// Computes gold figures.
///
/// - `sessions`: the sessions with session_date in `lo..=hi` (complete: every run they belong to).
/// - `activity`: silver rows (columns [`ACTIVITY_INPUT`]) for event dates `lo - 29 ..= metrics_hi`.
/// - `other_sessions`: gold/sessions rows for session dates `hi + 1 ..= metrics_hi`.
///
/// Returns sessions, funnel and pages for `lo..=hi` and daily metrics for `lo..=metrics_hi`.
pub fn compute(
    sessions: &[Session],
    activity: &[RecordBatch],
    other_sessions: &[RecordBatch],
    (lo, hi, metrics_hi): (i32, i32, i32),
    funnel: &[String],
) -> Result<GoldTables> {
    let activity = activity_by_date(activity);
    let mut session_days: BTreeMap<i32, SessionDay> = BTreeMap::new();
    let mut add_session =
        |date: i32, duration_s: f64, bounce: bool, converted: bool, events: i64| {
            let d = session_days.entry(date).or_default();
            d.sessions += 1;
            d.duration_s += duration_s;
            d.bounces += bounce as i64;
            d.conversions += converted as i64;
            d.events += events;
        };
    for s in sessions.iter().filter(|s| (lo..=hi).contains(&s.date)) {
        add_session(
            s.date,
            (s.end - s.start) as f64 / 1e6,
            s.is_bounce,
            s.converted,
            s.events,
        );
    }
    for b in other_sessions {
        let date = b
            .column_by_name("session_date")
            .map(|c| c.as_primitive::<Date32Type>());
        let dur = b
            .column_by_name("duration_s")
            .map(|c| c.as_primitive::<arrow::datatypes::Float64Type>());
        let bounce = b.column_by_name("is_bounce").map(|c| c.as_boolean());
        let conv = b.column_by_name("converted").map(|c| c.as_boolean());
        let ev = b
            .column_by_name("events")
            .map(|c| c.as_primitive::<arrow::datatypes::Int64Type>());
        let (Some(date), Some(dur), Some(bounce), Some(conv), Some(ev)) =
            (date, dur, bounce, conv, ev)
        else {
            continue;
        };
        for i in 0..b.num_rows() {
            if date.value(i) > hi && date.value(i) <= metrics_hi {
                add_session(
                    date.value(i),
                    dur.value(i),
                    bounce.value(i),
                    conv.value(i),
                    ev.value(i),
                );
            }
        }
    }

    // daily_metrics
    let dates: BTreeSet<i32> = activity
        .keys()
        .chain(session_days.keys())
        .copied()
        .filter(|d| (lo..=metrics_hi).contains(d))
        .collect();
    let distinct_over = |d: i32, days: i32| {
        let mut users: HashSet<&str> = HashSet::new();
        for (_, a) in activity.range(d - days + 1..=d) {
            users.extend(a.users.iter().copied());
        }
        users.len() as i64
    };
    let ratio = |a: f64, b: i64| if b == 0 { 0.0 } else { a / b as f64 };
    let mut m: (Vec<i32>, Vec<[i64; 6]>, Vec<[f64; 4]>) = Default::default();
    for &d in &dates {
        let a = activity.get(&d);
        let s = session_days.get(&d);
        let (sessions, dur, bounces, conv, ev) = s.map_or((0, 0.0, 0, 0, 0), |s| {
            (s.sessions, s.duration_s, s.bounces, s.conversions, s.events)
        });
        m.0.push(d);
        m.1.push([
            a.map_or(0, |a| a.users.len() as i64),
            distinct_over(d, 7),
            distinct_over(d, 30),
            sessions,
            a.map_or(0, |a| a.events),
            a.map_or(0, |a| a.page_views),
        ]);
        m.2.push([
            ratio(dur, sessions),
            ratio(bounces as f64, sessions),
            ratio(conv as f64, sessions),
            ratio(ev as f64, sessions),
        ]);
    }
    let int_col =
        |k: usize| Arc::new(Int64Array::from_iter_values(m.1.iter().map(|r| r[k]))) as ArrayRef;
    let f_col =
        |k: usize| Arc::new(Float64Array::from_iter_values(m.2.iter().map(|r| r[k]))) as ArrayRef;
    let daily_metrics = RecordBatch::try_new(
        Table::DailyMetrics.schema(),
        vec![
            Arc::new(Date32Array::from(m.0.clone())),
            int_col(0),
            int_col(1),
            int_col(2),
            int_col(3),
            int_col(4),
            int_col(5),
            f_col(0),
            f_col(1),
            f_col(2),
            f_col(3),
        ],
    )?;

    let in_range: Vec<&Session> = sessions
        .iter()
        .filter(|s| (lo..=hi).contains(&s.date))
        .collect();
    Ok(GoldTables {
        sessions: sessions_batch(&in_range)?,
        daily_metrics,
        funnel_daily: funnel_batch(&in_range, funnel)?,
        page_daily: page_batch(&in_range, &activity, lo, hi)?,
    })
}

fn sessions_batch(sessions: &[&Session]) -> Result<RecordBatch> {
    let s = |f: fn(&Session) -> Option<&str>| {
        Arc::new(sessions.iter().map(|x| f(x)).collect::<StringArray>()) as ArrayRef
    };
    let ts = |f: fn(&Session) -> i64| {
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(sessions.iter().map(|x| f(x)))
                .with_timezone("UTC"),
        ) as ArrayRef
    };
    let cols: Vec<ArrayRef> = vec![
        s(|x| Some(&x.session_id)),
        s(|x| Some(&x.user_key)),
        ts(|x| x.start),
        ts(|x| x.end),
        Arc::new(Float64Array::from_iter_values(
            sessions.iter().map(|x| (x.end - x.start) as f64 / 1e6),
        )),
        Arc::new(Int64Array::from_iter_values(
            sessions.iter().map(|x| x.events),
        )),
        Arc::new(Int64Array::from_iter_values(
            sessions.iter().map(|x| x.page_views),
        )),
        s(|x| x.entry_page.as_deref()),
        s(|x| x.exit_page.as_deref()),
        Arc::new(
            sessions
                .iter()
                .map(|x| Some(x.is_bounce))
                .collect::<BooleanArray>(),
        ),
        Arc::new(
            sessions
                .iter()
                .map(|x| Some(x.converted))
                .collect::<BooleanArray>(),
        ),
        s(|x| x.device_type.as_deref()),
        s(|x| x.country.as_deref()),
        s(|x| x.referrer_host.as_deref()),
        s(|x| x.utm_source.as_deref()),
        Arc::new(Date32Array::from_iter_values(
            sessions.iter().map(|x| x.date),
        )),
    ];
    Ok(RecordBatch::try_new(Table::Sessions.schema(), cols)?)
}

fn funnel_batch(sessions: &[&Session], funnel: &[String]) -> Result<RecordBatch> {
    let mut best: BTreeMap<i32, HashMap<&str, usize>> = BTreeMap::new();
    for s in sessions {
        let reached = best
            .entry(s.date)
            .or_default()
            .entry(&s.user_key)
            .or_default();
        *reached = (*reached).max(s.funnel_reached);
    }
    let (mut date, mut idx, mut step, mut users, mut from_start, mut from_prev) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (d, by_user) in &best {
        let counts: Vec<i64> = (1..=funnel.len())
            .map(|k| by_user.values().filter(|r| **r >= k).count() as i64)
            .collect();
        for (k, name) in funnel.iter().enumerate() {
            let ratio = |a: i64, b: i64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
            date.push(*d);
            idx.push(k as i32 + 1);
            step.push(name.as_str());
            users.push(counts[k]);
            from_start.push(ratio(counts[k], counts[0]));
            from_prev.push(if k == 0 {
                ratio(counts[0], counts[0])
            } else {
                ratio(counts[k], counts[k - 1])
            });
        }
    }
    Ok(RecordBatch::try_new(
        Table::FunnelDaily.schema(),
        vec![
            Arc::new(Date32Array::from(date)),
            Arc::new(Int32Array::from(idx)),
            Arc::new(StringArray::from(step)),
            Arc::new(Int64Array::from(users)),
            Arc::new(Float64Array::from(from_start)),
            Arc::new(Float64Array::from(from_prev)),
        ],
    )?)
}

fn page_batch(
    sessions: &[&Session],
    activity: &BTreeMap<i32, ActivityDay<'_>>,
    lo: i32,
    hi: i32,
) -> Result<RecordBatch> {
    // (page_views, unique_users, entries, exits) per (date, page_path)
    let mut rows: BTreeMap<(i32, &str), [i64; 4]> = BTreeMap::new();
    for (d, a) in activity.range(lo..=hi) {
        for (path, (views, users)) in &a.pages {
            let r = rows.entry((*d, path)).or_default();
            r[0] = *views;
            r[1] = users.len() as i64;
        }
    }
    for s in sessions {
        if let Some(p) = s.entry_page.as_deref() {
            rows.entry((s.date, p)).or_default()[2] += 1;
        }
        if let Some(p) = s.exit_page.as_deref() {
            rows.entry((s.date, p)).or_default()[3] += 1;
        }
    }
    let col =
        |k: usize| Arc::new(Int64Array::from_iter_values(rows.values().map(|r| r[k]))) as ArrayRef;
    Ok(RecordBatch::try_new(
        Table::PageDaily.schema(),
        vec![
            Arc::new(Date32Array::from_iter_values(rows.keys().map(|k| k.0))),
            Arc::new(rows.keys().map(|k| Some(k.1)).collect::<StringArray>()),
            col(0),
            col(1),
            col(2),
            col(3),
        ],
    )?)
}

/// Gold computed from scratch over the given silver rows (all columns of silver/events).
pub fn compute_from_scratch(silver: &[RecordBatch], funnel: &[String]) -> Result<GoldTables> {
    let sessions = sessionize(silver, funnel);
    let dates = silver.iter().flat_map(|b| {
        b.column_by_name("event_date")
            .map(|c| c.as_primitive::<Date32Type>().values().to_vec())
            .unwrap_or_default()
    });
    let (lo, hi) = dates.fold((i32::MAX, i32::MIN), |(lo, hi), d| (lo.min(d), hi.max(d)));
    compute(&sessions, silver, &[], (lo, hi, hi), funnel)
}

/// What one gold invocation did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct GoldOutcome {
    /// The silver commit that triggered the invocation.
    pub silver_version: i64,
    /// True when gold was already up to date with that commit.
    pub already_processed: bool,
    /// Silver version gold is now up to date with.
    pub up_to_version: Option<i64>,
    /// First and last session_date recomputed.
    pub dates: Option<(NaiveDate, NaiveDate)>,
    /// Rows written per gold table.
    pub sessions: usize,
    pub daily_metrics: usize,
    pub funnel_daily: usize,
    pub page_daily: usize,
}

fn date_lit(d: i32) -> Expr {
    lit(ScalarValue::Date32(Some(d)))
}

fn between(column: &str, lo: i32, hi: i32) -> Expr {
    col(column).between(date_lit(lo), date_lit(hi))
}

/// Brings gold up to date with silver, triggered by silver commit `silver_version`. Every silver
/// commit gold has not yet seen (it may catch up several at once) contributes its event dates;
/// gold is recomputed for those dates, their neighbours, and whatever sessions or 7/30-day
/// windows reach. Idempotent: the silver version is recorded as a `txn` in each gold table.
pub async fn update(lake: &Lake, silver_version: i64, funnel: &[String]) -> Result<GoldOutcome> {
    let mut outcome = GoldOutcome {
        silver_version,
        ..Default::default()
    };
    let mut gold = Vec::new();
    let mut done = i64::MAX;
    for t in Table::GOLD {
        let table = lake.table(t).await?;
        done = done.min(txn_version(&table, GOLD_APP_ID).await?.unwrap_or(-1));
        gold.push((t, table));
    }
    if done >= silver_version {
        outcome.already_processed = true;
        return Ok(outcome);
    }
    let silver = lake.table(Table::Silver).await?;
    let latest = silver
        .version()
        .map_or(-1, |v| v as i64)
        .max(silver_version);
    let mut touched = BTreeSet::new();
    for v in done + 1..=latest {
        for (_, parts) in added_files(&silver, v).await? {
            if let Some(Some(d)) = parts.get("event_date") {
                if let Ok(d) = d.parse::<NaiveDate>() {
                    touched.insert(to_days(d));
                }
            }
        }
    }
    outcome.up_to_version = Some(latest);
    let (Some(&first), Some(&last)) = (touched.first(), touched.last()) else {
        return Ok(outcome);
    };

    // Widen the range until no run of events crosses its edges.
    let (mut lo, mut hi) = (first - 1, last + 1);
    let (window, sessions) = loop {
        let window = lake
            .read(
                &silver,
                &SESSION_INPUT,
                Some(between("event_date", lo - 1, hi + 1)),
            )
            .await?;
        let (sessions, runs) = sessionize_runs(&mut events_of(&window), funnel);
        let (mut new_lo, mut new_hi) = (lo, hi);
        let window_start = (lo - 1) as i64 * DAY_US;
        let window_end = (hi + 2) as i64 * DAY_US;
        for r in &runs {
            let reaches_range = r.last_session_date >= lo && r.first_date <= hi;
            if reaches_range && r.first - window_start < SESSION_GAP_US {
                new_lo = new_lo.min(lo - 1);
            }
            if reaches_range && window_end - r.last <= SESSION_GAP_US {
                new_hi = new_hi.max(hi + 1);
            }
            if reaches_range {
                new_lo = new_lo.min(r.first_date);
                new_hi = new_hi.max(r.last_session_date);
            }
        }
        if (new_lo, new_hi) == (lo, hi) {
            break (window, sessions);
        }
        (lo, hi) = (new_lo, new_hi);
    };
    drop(window);

    let activity = lake
        .read(
            &silver,
            &ACTIVITY_INPUT,
            Some(col("event_date").gt_eq(date_lit(lo - 29))),
        )
        .await?;
    let max_date = activity
        .iter()
        .filter_map(|b| b.column_by_name("event_date"))
        .flat_map(|c| {
            c.as_primitive::<Date32Type>()
                .values()
                .iter()
                .copied()
                .max()
        })
        .max()
        .unwrap_or(hi);
    let metrics_hi = max_date.min(hi + 29).max(hi);
    let other_sessions = if metrics_hi > hi {
        let sessions_table = &gold[0].1;
        lake.read(
            sessions_table,
            &[],
            Some(between("session_date", hi + 1, metrics_hi)),
        )
        .await?
    } else {
        Vec::new()
    };
    let tables = compute(
        &sessions,
        &activity,
        &other_sessions,
        (lo, hi, metrics_hi),
        funnel,
    )?;
    outcome.dates = Some((from_days(lo), from_days(hi)));
    outcome.sessions = tables.sessions.num_rows();
    outcome.daily_metrics = tables.daily_metrics.num_rows();
    outcome.funnel_daily = tables.funnel_daily.num_rows();
    outcome.page_daily = tables.page_daily.num_rows();

    let meta = json!({ "silver_version": latest, "from": from_days(lo), "to": from_days(hi) });
    for (t, table) in gold {
        let (batch, predicate) = match t {
            Table::Sessions => (tables.sessions.clone(), between("session_date", lo, hi)),
            Table::DailyMetrics => (
                tables.daily_metrics.clone(),
                between("date", lo, metrics_hi),
            ),
            Table::FunnelDaily => (tables.funnel_daily.clone(), between("date", lo, hi)),
            _ => (tables.page_daily.clone(), between("date", lo, hi)),
        };
        replace(table, t, batch, predicate, latest, meta.clone()).await?;
    }
    Ok(outcome)
}

/// The silver version every gold table reflects (gold is computed over silver up to it), or
/// `None` before gold's first update.
pub async fn processed_silver_version(lake: &Lake) -> Result<Option<i64>> {
    let mut done = None;
    for t in Table::GOLD {
        let v = txn_version(&lake.table(t).await?, GOLD_APP_ID).await?;
        done = match (done, v) {
            (_, None) => return Ok(None),
            (None, v) => v,
            (Some(d), Some(v)) => Some(d.min(v)),
        };
    }
    Ok(done)
}

async fn replace(
    table: DeltaTable,
    kind: Table,
    batch: RecordBatch,
    predicate: Expr,
    silver_version: i64,
    meta: serde_json::Value,
) -> Result<DeltaTable> {
    table
        .write(vec![batch])
        .with_save_mode(SaveMode::Overwrite)
        .with_replace_where(predicate)
        .with_partition_columns(kind.partition_columns().iter().copied())
        .with_commit_properties(commit_properties(GOLD_APP_ID, silver_version, meta))
        .await
        .map_err(Error::delta(kind.path()))
}

/// The gold tables that differ from [`compute_from_scratch`] over all of silver, each with how;
/// empty when gold is exactly what a full recomputation gives. Rows are compared in a canonical
/// order, so the order files were written in does not matter.
pub async fn differences_from_scratch(lake: &Lake, funnel: &[String]) -> Result<Vec<String>> {
    let read = async |t: Table| -> Result<Vec<RecordBatch>> {
        let table = lake.table(t).await?;
        lake.read(&table, &[], None).await
    };
    let expected = compute_from_scratch(&read(Table::Silver).await?, funnel)?;
    let mut differences = Vec::new();
    for (table, want) in [
        (Table::Sessions, expected.sessions),
        (Table::DailyMetrics, expected.daily_metrics),
        (Table::FunnelDaily, expected.funnel_daily),
        (Table::PageDaily, expected.page_daily),
    ] {
        let got = canonical(table, &read(table).await?)?;
        let want = canonical(table, &[want])?;
        if got.num_rows() != want.num_rows() {
            differences.push(format!(
                "{}: {} rows, a full recomputation gives {}",
                table.path(),
                got.num_rows(),
                want.num_rows()
            ));
        } else if got != want {
            differences.push(format!(
                "{}: values differ from a full recomputation",
                table.path()
            ));
        }
    }
    Ok(differences)
}

/// All rows of `batches` in `table`'s schema, sorted by every column.
fn canonical(table: Table, batches: &[RecordBatch]) -> Result<RecordBatch> {
    use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
    let schema = table.schema();
    let conformed = batches
        .iter()
        .map(|b| crate::lake::conform(b, &schema))
        .collect::<Result<Vec<_>>>()?;
    let all = concat_batches(&schema, &conformed)?;
    let sort: Vec<SortColumn> = all
        .columns()
        .iter()
        .map(|c| SortColumn {
            values: c.clone(),
            options: None,
        })
        .collect();
    let order = lexsort_to_indices(&sort, None)?;
    Ok(take_record_batch(&all, &order)?)
}
