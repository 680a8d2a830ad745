//! Sessionization: silver events -> sessions (30-minute gap, 24-hour cap), per user run.

use super::*;

/// One silver event, borrowed from Arrow arrays.
#[derive(Debug, Clone, Copy)]
pub(super) struct Event<'a> {
    pub(super) event_id: &'a str,
    pub(super) event_type: &'a str,
    pub(super) time: i64,
    /// The person key (see [`People`]).
    pub(super) user_key: &'a str,
    /// [`user_hash`] of `user_key`: grouping by it is cheaper than comparing strings.
    pub(super) user: u128,
    pub(super) page_url: Option<&'a str>,
    pub(super) page_path: Option<&'a str>,
    pub(super) referrer: Option<&'a str>,
    pub(super) device_type: Option<&'a str>,
    pub(super) country: Option<&'a str>,
}

/// One computed session (a row of gold/sessions), plus the funnel step it reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The session's id (the user's key and its start).
    pub session_id: String,
    /// The person key: the user_id, else the user its anonymous_id is stitched to, else the
    /// anonymous_id.
    pub user_key: String,
    /// First event time, µs since the epoch.
    pub start: i64,
    /// Last event time, µs since the epoch.
    pub end: i64,
    /// Events in the session.
    pub events: i64,
    /// Page views in the session.
    pub page_views: i64,
    /// Path of the first page viewed.
    pub entry_page: Option<String>,
    /// Path of the last page viewed.
    pub exit_page: Option<String>,
    /// One page view or fewer.
    pub is_bounce: bool,
    /// Holds a purchase.
    pub converted: bool,
    /// Device of the first event.
    pub device_type: Option<String>,
    /// Country of the first event.
    pub country: Option<String>,
    /// Host of the first event's referrer.
    pub referrer_host: Option<String>,
    /// utm_source of the first page's URL.
    pub utm_source: Option<String>,
    /// UTC date of `start`, as days since the epoch.
    pub date: i32,
    /// Number of funnel steps reached in order (0..=steps).
    pub funnel_reached: usize,
}

/// A maximal run of one user's events with no gap over 30 minutes (its sessions depend only on it).
#[derive(Debug, Clone, Copy)]
pub(super) struct Run {
    pub(super) user: u128,
    pub(super) first: i64,
    pub(super) last: i64,
    pub(super) first_date: i32,
    pub(super) last_session_date: i32,
}

/// The columns of a silver batch an [`Event`] borrows.
pub(super) struct EventColumns<'a> {
    event_id: &'a StringArray,
    event_type: &'a StringArray,
    time: &'a TimestampMicrosecondArray,
    user_key: &'a StringArray,
    page_url: &'a StringArray,
    page_path: &'a StringArray,
    referrer: &'a StringArray,
    device_type: &'a StringArray,
    country: &'a StringArray,
}

impl<'a> EventColumns<'a> {
    /// The columns of `batch` (silver rows with [`SESSION_INPUT`]).
    pub(super) fn of(batch: &'a RecordBatch) -> Result<EventColumns<'a>> {
        let s = |name: &str| typed_column::<StringArray>(batch, name);
        Ok(EventColumns {
            event_id: s("event_id")?,
            event_type: s("event_type")?,
            time: typed_column::<TimestampMicrosecondArray>(batch, "event_time")?,
            user_key: s("user_key")?,
            page_url: s("page_url")?,
            page_path: s("page_path")?,
            referrer: s("referrer")?,
            device_type: s("device_type")?,
            country: s("country")?,
        })
    }

    /// Row `i` as an event under the person its user_key is.
    pub(super) fn event(&self, i: usize, people: &'a People) -> Event<'a> {
        let row = self.row(i);
        Event {
            user_key: people.person_key(row.user_key, row.user),
            user: people.person(row.user),
            ..row
        }
    }

    /// Row `i` as an event under its own user_key.
    pub(super) fn row(&self, i: usize) -> Event<'a> {
        let user_key = self.user_key.value(i);
        Event {
            event_id: self.event_id.value(i),
            event_type: self.event_type.value(i),
            time: self.time.value(i),
            user_key,
            user: user_hash(user_key),
            page_url: opt(self.page_url, i),
            page_path: opt(self.page_path, i),
            referrer: opt(self.referrer, i),
            device_type: opt(self.device_type, i),
            country: opt(self.country, i),
        }
    }

    /// The bytes of the rows' event ids together.
    pub(super) fn event_id_bytes(&self) -> usize {
        let offsets = self.event_id.value_offsets();
        (offsets[offsets.len() - 1] - offsets[0]) as usize
    }
}

/// The events of silver `batches`, each under the person its user_key is.
pub(super) fn events_of<'a>(
    batches: &'a [RecordBatch],
    people: &'a People,
) -> Result<Vec<Event<'a>>> {
    let mut out = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for b in batches {
        let columns = EventColumns::of(b)?;
        out.extend((0..b.num_rows()).map(|i| columns.event(i, people)));
    }
    Ok(out)
}

pub(super) fn session_id(user_key: &str, start: i64) -> String {
    let mut bytes = Vec::with_capacity(user_key.len() + 9);
    bytes.extend_from_slice(user_key.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&start.to_le_bytes());
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
}

pub(super) fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok()?.host_str().map(str::to_string)
}

pub(super) fn utm_source_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    parsed
        .query_pairs()
        .find(|(k, _)| k == "utm_source")
        .map(|(_, v)| v.into_owned())
}

pub(super) fn build_session(user_key: &str, events: &[Event<'_>], funnel: &[String]) -> Session {
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
pub fn sessionize(silver: &[RecordBatch], funnel: &[String]) -> Result<Vec<Session>> {
    let people = People::default();
    Ok(sessionize_runs(&mut events_of(silver, &people)?, funnel, |_| true).0)
}

/// Sessions of the runs `wanted` picks, with those runs (the others cost only their sort).
pub(super) fn sessionize_runs(
    events: &mut [Event<'_>],
    funnel: &[String],
    wanted: impl Fn(&Run) -> bool,
) -> (Vec<Session>, Vec<Run>) {
    // Grouped by user (in hash order: the order of users does not matter), then by
    // (event_time, event_id) as the session rule says.
    events.sort_unstable_by(|a, b| {
        (a.user, a.time)
            .cmp(&(b.user, b.time))
            .then_with(|| a.event_id.cmp(b.event_id))
    });
    let mut sessions = Vec::new();
    let mut runs = Vec::new();
    for user_events in events.chunk_by(|a, b| a.user == b.user) {
        for run_events in user_events.chunk_by(|a, b| b.time - a.time <= SESSION_GAP_US) {
            // Sessions of the run: a new one when the current one would exceed 24 hours.
            let mut starts = vec![0];
            for k in 1..run_events.len() {
                if run_events[k].time - run_events[starts[starts.len() - 1]].time > SESSION_MAX_US {
                    starts.push(k);
                }
            }
            let run = Run {
                user: run_events[0].user,
                first: run_events[0].time,
                last: run_events[run_events.len() - 1].time,
                first_date: day_of(run_events[0].time),
                last_session_date: day_of(run_events[starts[starts.len() - 1]].time),
            };
            if !wanted(&run) {
                continue;
            }
            let ends = starts.iter().skip(1).copied().chain([run_events.len()]);
            for (start, end) in starts.iter().zip(ends) {
                sessions.push(build_session(
                    run_events[0].user_key,
                    &run_events[*start..end],
                    funnel,
                ));
            }
            runs.push(run);
        }
    }
    (sessions, runs)
}
