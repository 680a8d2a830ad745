//! Aggregation: sessions and silver events -> the daily metrics, funnel and page figures, and gold
//! computed from scratch.

use super::*;

/// The four gold tables as Arrow batches.
#[derive(Debug, Clone)]
pub struct GoldTables {
    /// gold/sessions.
    pub sessions: RecordBatch,
    /// gold/daily_metrics.
    pub daily_metrics: RecordBatch,
    /// gold/funnel_daily.
    pub funnel_daily: RecordBatch,
    /// gold/page_daily.
    pub page_daily: RecordBatch,
}

/// A user_key as the per-date user sets hold it (xxh3 128-bit: collisions are out of reach).
pub(super) fn user_hash(user_key: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(user_key.as_bytes())
}

/// The distinct persons among silver user_keys (hashes).
pub(super) fn persons_of<'a>(
    people: &People,
    user_keys: impl IntoIterator<Item = &'a u128>,
) -> i64 {
    let persons: HashSet<u128> = user_keys.into_iter().map(|u| people.person(*u)).collect();
    persons.len() as i64
}

/// Event-based figures of one event date: what DAU, events, page views and page_daily need.
#[derive(Debug, Clone, Default)]
pub(super) struct EventDay {
    pub(super) events: i64,
    pub(super) page_views: i64,
    /// Per page_path: page views and the user_keys (not yet persons) who viewed it.
    pub(super) pages: HashMap<String, (i64, HashSet<u128>)>,
}

impl EventDay {
    pub(super) fn add(&mut self, event_type: &str, page_path: Option<&str>, user: u128) {
        self.events += 1;
        if event_type == "page_view" {
            self.page_views += 1;
            if let Some(path) = page_path {
                let page = match self.pages.get_mut(path) {
                    Some(page) => page,
                    None => self.pages.entry(path.to_string()).or_default(),
                };
                page.0 += 1;
                page.1.insert(user);
            }
        }
    }
}

/// Calls `f(date, user, event_type, page_path)` for each silver row (columns
/// [`ACTIVITY_INPUT`]); `dates[i]` is the event date of `batches[i]`, or `None` to read its
/// `event_date` column.
pub(super) fn for_each_activity(
    batches: &[RecordBatch],
    dates: &[Option<i32>],
    mut f: impl FnMut(i32, u128, &str, Option<&str>),
) -> Result<()> {
    for (b, fixed) in batches.iter().zip(dates) {
        let user = typed_column::<StringArray>(b, "user_key")?;
        let ty = typed_column::<StringArray>(b, "event_type")?;
        let path = typed_column::<StringArray>(b, "page_path")?;
        let column = match fixed {
            Some(_) => None,
            None => Some(typed_column::<Date32Array>(b, "event_date")?),
        };
        for i in 0..b.num_rows() {
            let date = fixed.unwrap_or_else(|| column.map_or(0, |c| c.value(i)));
            f(date, user_hash(user.value(i)), ty.value(i), opt(path, i));
        }
    }
    Ok(())
}

/// What a session contributes to its session_date's figures.
#[derive(Debug, Clone, Copy)]
pub(super) struct SessionFacts<'a> {
    pub(super) user_key: &'a str,
    pub(super) date: i32,
    pub(super) duration_us: i64,
    pub(super) events: i64,
    pub(super) is_bounce: bool,
    pub(super) converted: bool,
    pub(super) funnel_reached: usize,
    pub(super) entry_page: Option<&'a str>,
    pub(super) exit_page: Option<&'a str>,
}

impl<'a> From<&'a Session> for SessionFacts<'a> {
    fn from(s: &'a Session) -> Self {
        SessionFacts {
            user_key: &s.user_key,
            date: s.date,
            duration_us: s.end - s.start,
            events: s.events,
            is_bounce: s.is_bounce,
            converted: s.converted,
            funnel_reached: s.funnel_reached,
            entry_page: s.entry_page.as_deref(),
            exit_page: s.exit_page.as_deref(),
        }
    }
}

/// The sessions of gold/sessions rows, as [`SessionFacts`].
pub(super) fn facts_of<'a>(
    batches: impl IntoIterator<Item = &'a RecordBatch>,
) -> Result<Vec<SessionFacts<'a>>> {
    let mut out = Vec::new();
    for b in batches {
        let user = typed_column::<StringArray>(b, "user_key")?;
        let date = typed_column::<Date32Array>(b, "session_date")?;
        let start = typed_column::<TimestampMicrosecondArray>(b, "session_start")?;
        let end = typed_column::<TimestampMicrosecondArray>(b, "session_end")?;
        let events = typed_column::<Int64Array>(b, "events")?;
        let bounce = typed_column::<BooleanArray>(b, "is_bounce")?;
        let converted = typed_column::<BooleanArray>(b, "converted")?;
        let funnel = typed_column::<Int32Array>(b, "funnel_step")?;
        let entry = typed_column::<StringArray>(b, "entry_page")?;
        let exit = typed_column::<StringArray>(b, "exit_page")?;
        for i in 0..b.num_rows() {
            out.push(SessionFacts {
                user_key: user.value(i),
                date: date.value(i),
                duration_us: end.value(i) - start.value(i),
                events: events.value(i),
                is_bounce: bounce.value(i),
                converted: converted.value(i),
                funnel_reached: funnel.value(i).max(0) as usize,
                entry_page: opt(entry, i),
                exit_page: opt(exit, i),
            });
        }
    }
    Ok(out)
}

/// Session-based figures of one session_date.
#[derive(Default)]
pub(super) struct SessionDay<'a> {
    pub(super) sessions: i64,
    /// Summed in integer microseconds, so the order sessions come in cannot change the result.
    pub(super) duration_us: i64,
    pub(super) bounces: i64,
    pub(super) conversions: i64,
    pub(super) events: i64,
    /// Per user, the most funnel steps one of their sessions reached.
    pub(super) funnel: HashMap<&'a str, usize>,
    pub(super) entries: HashMap<&'a str, i64>,
    pub(super) exits: HashMap<&'a str, i64>,
}

pub(super) fn session_days<'a>(
    sessions: impl IntoIterator<Item = SessionFacts<'a>>,
) -> BTreeMap<i32, SessionDay<'a>> {
    let mut days: BTreeMap<i32, SessionDay<'a>> = BTreeMap::new();
    for s in sessions {
        let d = days.entry(s.date).or_default();
        d.sessions += 1;
        d.duration_us += s.duration_us;
        d.bounces += s.is_bounce as i64;
        d.conversions += s.converted as i64;
        d.events += s.events;
        let best = d.funnel.entry(s.user_key).or_default();
        *best = (*best).max(s.funnel_reached);
        if let Some(p) = s.entry_page {
            *d.entries.entry(p).or_default() += 1;
        }
        if let Some(p) = s.exit_page {
            *d.exits.entry(p).or_default() += 1;
        }
    }
    days
}

/// The daily_metrics row of `date` from its event figures (dau, events, page views) and its
/// sessions; wau and mau are filled in later.
pub(super) fn metrics_row(
    date: i32,
    (dau, events, page_views): (i64, i64, i64),
    s: Option<&SessionDay<'_>>,
) -> DailyMetrics {
    let ratio = |a: f64, b: i64| if b == 0 { 0.0 } else { a / b as f64 };
    let (sessions, duration_us, bounces, conversions, session_events) =
        s.map_or((0, 0, 0, 0, 0), |s| {
            (
                s.sessions,
                s.duration_us,
                s.bounces,
                s.conversions,
                s.events,
            )
        });
    DailyMetrics {
        date: from_days(date),
        dau,
        wau: 0,
        mau: 0,
        sessions,
        events,
        page_views,
        avg_session_duration_s: ratio(duration_us as f64 / 1e6, sessions),
        bounce_rate: ratio(bounces as f64, sessions),
        conversion_rate: ratio(conversions as f64, sessions),
        events_per_session: ratio(session_events as f64, sessions),
    }
}

/// Sets `wau` and `mau` of `rows` (sorted by date) from the distinct users per date, which must
/// hold every date from 29 days before the first row to the last. One pass with a sliding count
/// per person, so a month of dates costs two visits per user-day. `users` holds silver user_keys,
/// counted as the persons `people` says they are.
pub(super) fn fill_active_users(
    rows: &mut [DailyMetrics],
    users: &BTreeMap<i32, HashSet<u128>>,
    people: &People,
) {
    for (window, weekly) in [(7, true), (30, false)] {
        let mut counts: HashMap<u128, u32> = HashMap::default();
        // The days counted: window_lo..=window_hi (none before the first row).
        let (mut window_lo, mut window_hi) = (i32::MIN, i32::MIN);
        let count = |day: &HashSet<u128>, by: i32, counts: &mut HashMap<u128, u32>| {
            for u in day {
                let person = people.person(*u);
                let c = counts.entry(person).or_default();
                *c = (*c as i32 + by) as u32;
                if *c == 0 {
                    counts.remove(&person);
                }
            }
        };
        for row in rows.iter_mut() {
            let day = to_days(row.date);
            let (from, to) = (day - window + 1, day);
            if window_hi == i32::MIN || from > window_hi {
                counts.clear();
                for (_, day) in users.range(from..=to) {
                    count(day, 1, &mut counts);
                }
            } else {
                for (_, day) in users.range(window_hi + 1..=to) {
                    count(day, 1, &mut counts);
                }
                for (_, day) in users.range(window_lo..from) {
                    count(day, -1, &mut counts);
                }
            }
            (window_lo, window_hi) = (from, to);
            let distinct = counts.len() as i64;
            if weekly {
                row.wau = distinct;
            } else {
                row.mau = distinct;
            }
        }
    }
}

/// gold/daily_metrics rows, oldest first.
pub(super) fn metrics_rows(batches: &[RecordBatch]) -> Result<Vec<DailyMetrics>> {
    let mut rows: Vec<DailyMetrics> = rows_of(batches)?;
    rows.sort_by_key(|r| r.date);
    Ok(rows)
}

/// One row of gold/page_daily.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PageRow {
    pub(super) page_views: i64,
    pub(super) unique_users: i64,
    pub(super) entries: i64,
    pub(super) exits: i64,
}

/// Page views and unique users (persons) per (date, page) of the given event dates.
pub(super) fn page_views_of<'a>(
    days: impl Iterator<Item = (i32, &'a EventDay)>,
    people: &People,
) -> BTreeMap<(i32, String), PageRow> {
    let mut rows = BTreeMap::new();
    for (d, day) in days {
        for (path, (views, users)) in &day.pages {
            rows.insert(
                (d, path.clone()),
                PageRow {
                    page_views: *views,
                    unique_users: persons_of(people, users),
                    ..Default::default()
                },
            );
        }
    }
    rows
}

/// Gold computed from scratch over the given silver rows (all columns of silver/events): the
/// definition the incremental catch-up must equal. Each row counts for its person: the
/// stitching rule ([`identities::stitch`]) applied to all of silver, row by row.
pub fn compute_from_scratch(silver: &[RecordBatch], funnel: &[String]) -> Result<GoldTables> {
    let identities = identities::stitch(identities::identity_events(silver)?);
    let silver = &identities::personalize(silver, &identities)?;
    let people = People::default();
    let sessions = sessionize(silver, funnel)?;
    let mut events: BTreeMap<i32, EventDay> = BTreeMap::new();
    let mut users: BTreeMap<i32, HashSet<u128>> = BTreeMap::new();
    for_each_activity(silver, &vec![None; silver.len()], |d, user, ty, path| {
        users.entry(d).or_default().insert(user);
        events.entry(d).or_default().add(ty, path, user);
    })?;
    let by_date = session_days(sessions.iter().map(SessionFacts::from));
    let dates: BTreeSet<i32> = events.keys().chain(by_date.keys()).copied().collect();
    let mut metrics: Vec<DailyMetrics> = dates
        .iter()
        .map(|&d| {
            let figures = events.get(&d).map_or((0, 0, 0), |e| {
                (
                    users.get(&d).map_or(0, |u| u.len() as i64),
                    e.events,
                    e.page_views,
                )
            });
            metrics_row(d, figures, by_date.get(&d))
        })
        .collect();
    fill_active_users(&mut metrics, &users, &people);
    let all: Vec<&Session> = sessions.iter().collect();
    Ok(GoldTables {
        sessions: sessions_batch(&all)?,
        daily_metrics: metrics_batch(&metrics)?,
        funnel_daily: funnel_batch(by_date.iter(), funnel)?,
        page_daily: page_batch(
            page_views_of(events.iter().map(|(d, e)| (*d, e)), &people),
            &by_date,
        )?,
    })
}
