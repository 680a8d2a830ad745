//! Arrow batches of the gold tables from their rows.

use super::*;

pub(super) fn metrics_batch(rows: &[MetricsRow]) -> Result<RecordBatch> {
    let int = |f: fn(&MetricsRow) -> i64| {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(f))) as ArrayRef
    };
    let float = |f: fn(&MetricsRow) -> f64| {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(f))) as ArrayRef
    };
    Ok(RecordBatch::try_new(
        Table::DailyMetrics.schema(),
        vec![
            Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.date))),
            int(|r| r.dau),
            int(|r| r.wau),
            int(|r| r.mau),
            int(|r| r.sessions),
            int(|r| r.events),
            int(|r| r.page_views),
            float(|r| r.avg_session_duration_s),
            float(|r| r.bounce_rate),
            float(|r| r.conversion_rate),
            float(|r| r.events_per_session),
        ],
    )?)
}

pub(super) fn sessions_batch(sessions: &[&Session]) -> Result<RecordBatch> {
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
        Arc::new(Int32Array::from_iter_values(
            sessions.iter().map(|x| x.funnel_reached as i32),
        )),
        Arc::new(Date32Array::from_iter_values(
            sessions.iter().map(|x| x.date),
        )),
    ];
    Ok(RecordBatch::try_new(Table::Sessions.schema(), cols)?)
}

/// gold/funnel_daily rows of the given session dates.
pub(super) fn funnel_batch<'a>(
    days: impl Iterator<Item = (&'a i32, &'a SessionDay<'a>)>,
    funnel: &[String],
) -> Result<RecordBatch> {
    let (mut date, mut idx, mut step, mut users, mut from_start, mut from_prev) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let ratio = |a: i64, b: i64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    for (d, day) in days {
        let counts: Vec<i64> = (1..=funnel.len())
            .map(|k| day.funnel.values().filter(|r| **r >= k).count() as i64)
            .collect();
        for (k, name) in funnel.iter().enumerate() {
            date.push(*d);
            idx.push(k as i32 + 1);
            step.push(name.as_str());
            users.push(counts[k]);
            from_start.push(ratio(counts[k], counts[0]));
            from_prev.push(ratio(counts[k], counts[k.saturating_sub(1)]));
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

/// gold/page_daily rows: views and unique users from the event figures, entries and exits from
/// the sessions of each date.
pub(super) fn page_batch(
    views: BTreeMap<(i32, String), PageRow>,
    sessions: &BTreeMap<i32, SessionDay<'_>>,
) -> Result<RecordBatch> {
    let mut rows = views;
    for (d, day) in sessions {
        for (page, n) in &day.entries {
            rows.entry((*d, page.to_string())).or_default().entries += n;
        }
        for (page, n) in &day.exits {
            rows.entry((*d, page.to_string())).or_default().exits += n;
        }
    }
    let int = |f: fn(&PageRow) -> i64| {
        Arc::new(Int64Array::from_iter_values(rows.values().map(f))) as ArrayRef
    };
    Ok(RecordBatch::try_new(
        Table::PageDaily.schema(),
        vec![
            Arc::new(Date32Array::from_iter_values(rows.keys().map(|k| k.0))),
            Arc::new(
                rows.keys()
                    .map(|k| Some(k.1.as_str()))
                    .collect::<StringArray>(),
            ),
            int(|r| r.page_views),
            int(|r| r.unique_users),
            int(|r| r.entries),
            int(|r| r.exits),
        ],
    )?)
}

pub(super) fn daily_users_batch(rows: &BTreeMap<i32, Vec<&str>>) -> Result<RecordBatch> {
    let dates = rows
        .iter()
        .flat_map(|(d, users)| std::iter::repeat_n(*d, users.len()));
    let users = rows.values().flatten().map(|u| Some(*u));
    Ok(RecordBatch::try_new(
        Table::DailyUsers.schema(),
        vec![
            Arc::new(users.collect::<StringArray>()),
            Arc::new(Date32Array::from_iter_values(dates)),
        ],
    )?)
}
