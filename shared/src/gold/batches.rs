//! Arrow batches of the gold tables, from their rows ([`crate::rows`]).

use super::*;

pub(super) fn metrics_batch(rows: &[DailyMetrics]) -> Result<RecordBatch> {
    batch_of(&Table::DailyMetrics.schema(), rows)
}

pub(super) fn sessions_batch(sessions: &[&Session]) -> Result<RecordBatch> {
    let rows: Vec<rows::Session> = sessions
        .iter()
        .map(|s| rows::Session {
            session_id: &s.session_id,
            user_key: &s.user_key,
            session_start: s.start,
            session_end: s.end,
            duration_s: (s.end - s.start) as f64 / 1e6,
            events: s.events,
            page_views: s.page_views,
            entry_page: s.entry_page.as_deref(),
            exit_page: s.exit_page.as_deref(),
            is_bounce: s.is_bounce,
            converted: s.converted,
            device_type: s.device_type.as_deref(),
            country: s.country.as_deref(),
            referrer_host: s.referrer_host.as_deref(),
            utm_source: s.utm_source.as_deref(),
            funnel_step: s.funnel_reached as i32,
            session_date: s.date,
        })
        .collect();
    batch_of(&Table::Sessions.schema(), &rows)
}

/// gold/funnel_daily rows of the given session dates.
pub(super) fn funnel_batch<'a>(
    days: impl Iterator<Item = (&'a i32, &'a SessionDay<'a>)>,
    funnel: &[String],
) -> Result<RecordBatch> {
    let ratio = |a: i64, b: i64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let mut rows = Vec::new();
    for (d, day) in days {
        let counts: Vec<i64> = (1..=funnel.len())
            .map(|k| day.funnel.values().filter(|r| **r >= k).count() as i64)
            .collect();
        for (k, name) in funnel.iter().enumerate() {
            rows.push(rows::FunnelDaily {
                date: from_days(*d),
                step_index: k as i32 + 1,
                step: name.clone(),
                users: counts[k],
                conversion_from_start: ratio(counts[k], counts[0]),
                conversion_from_previous: ratio(counts[k], counts[k.saturating_sub(1)]),
            });
        }
    }
    batch_of(&Table::FunnelDaily.schema(), &rows)
}

/// gold/page_daily rows: views and unique users from the event figures, entries and exits from
/// the sessions of each date.
pub(super) fn page_batch(
    views: BTreeMap<(i32, String), PageRow>,
    sessions: &BTreeMap<i32, SessionDay<'_>>,
) -> Result<RecordBatch> {
    let mut figures = views;
    for (d, day) in sessions {
        for (page, n) in &day.entries {
            figures.entry((*d, page.to_string())).or_default().entries += n;
        }
        for (page, n) in &day.exits {
            figures.entry((*d, page.to_string())).or_default().exits += n;
        }
    }
    let rows: Vec<rows::PageDaily> = figures
        .into_iter()
        .map(|((date, page_path), r)| rows::PageDaily {
            date: from_days(date),
            page_path,
            page_views: r.page_views,
            unique_users: r.unique_users,
            entries: r.entries,
            exits: r.exits,
        })
        .collect();
    batch_of(&Table::PageDaily.schema(), &rows)
}

pub(super) fn daily_users_batch(users: &BTreeMap<i32, Vec<&str>>) -> Result<RecordBatch> {
    let rows: Vec<rows::DailyUser> = users
        .iter()
        .flat_map(|(&date, keys)| {
            keys.iter()
                .map(move |&user_key| rows::DailyUser { user_key, date })
        })
        .collect();
    batch_of(&Table::DailyUsers.schema(), &rows)
}
