//! Dashboards from gold: a self-contained HTML page (charts as inline SVG, no scripts, no network)
//! and a terminal report. Both read the same [`DashboardData`].

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use arrow::array::{
    Array, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use chrono::{DateTime, NaiveDate, Utc};
use clickstream::Result;
use clickstream::gold::{from_days, to_days};
use clickstream::lake::{Lake, Table, typed_column};
use deltalake::datafusion::prelude::{Expr, col, lit};
use deltalake::datafusion::scalar::ScalarValue;
use futures::StreamExt;
use plotters::prelude::*;
use serde::Serialize;

/// Name of the dashboard file under `exports/`.
pub const DASHBOARD_FILE: &str = "dashboard.html";
/// Rows shown in each top list.
const TOP: usize = 10;

/// One row of gold/daily_metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Day {
    pub date: NaiveDate,
    pub dau: i64,
    pub wau: i64,
    pub mau: i64,
    pub sessions: i64,
    pub events: i64,
    pub page_views: i64,
    pub avg_session_duration_s: f64,
    pub bounce_rate: f64,
    pub conversion_rate: f64,
}

/// A funnel step summed over the date range (user-days).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelStep {
    pub step_index: i32,
    pub step: String,
    pub users: i64,
    pub conversion_from_start: f64,
    pub conversion_from_previous: f64,
}

/// Everything the dashboard and the report show.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DashboardData {
    pub days: Vec<Day>,
    pub funnel: Vec<FunnelStep>,
    /// (bucket label, sessions)
    pub duration_histogram: Vec<(String, i64)>,
    pub events_histogram: Vec<(String, i64)>,
    /// (page_path, page_views) over the range
    pub top_pages: Vec<(String, i64)>,
    pub entry_pages: Vec<(String, i64)>,
    /// (value, sessions)
    pub referrers: Vec<(String, i64)>,
    pub devices: Vec<(String, i64)>,
    pub countries: Vec<(String, i64)>,
    pub latest_event_time: Option<DateTime<Utc>>,
    pub generated_at: DateTime<Utc>,
    pub silver_events: i64,
    pub quarantined: BTreeMap<String, i64>,
    pub duplicates: i64,
    /// Weekly retention cohorts (gold/retention_weekly, all of history), oldest cohort first.
    pub retention: Vec<Cohort>,
}

/// One weekly cohort: users first seen in the week from `week` (a Monday), and how many of them
/// were active in that week and each week after.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cohort {
    pub week: NaiveDate,
    pub users: i64,
    /// Active users in week 0 (the cohort's own), 1, 2, ...
    pub active: Vec<i64>,
}

fn top(counts: HashMap<String, i64>) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(TOP);
    v
}

fn histogram(values: &[f64], edges: &[f64], unit: &str) -> Vec<(String, i64)> {
    let mut counts = vec![0i64; edges.len()];
    for v in values {
        let i = edges.iter().rposition(|e| v >= e).unwrap_or(0);
        counts[i] += 1;
    }
    edges
        .iter()
        .enumerate()
        .map(|(i, lo)| {
            let label = match edges.get(i + 1) {
                Some(hi) => format!("{lo}-{hi}{unit}"),
                None => format!("{lo}{unit}+"),
            };
            (label, counts[i])
        })
        .collect()
}

/// A date range (inclusive); `None` ends are open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateRange {
    pub from: Option<NaiveDate>,
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

async fn read(
    lake: &Lake,
    table: Table,
    columns: &[&str],
    filter: Option<Expr>,
) -> Result<Vec<RecordBatch>> {
    let t = lake.table(table).await?;
    lake.read(&t, columns, filter).await
}

/// Reads gold within `range` (and the silver/quarantine counts) into [`DashboardData`].
pub async fn load(lake: &Lake, range: DateRange) -> Result<DashboardData> {
    let mut data = DashboardData {
        generated_at: Utc::now(),
        ..Default::default()
    };
    for b in read(lake, Table::DailyMetrics, &[], range.filter("date")).await? {
        let date = typed_column::<Date32Array>(&b, "date")?;
        let [dau, wau, mau, sessions, events, pv] =
            ["dau", "wau", "mau", "sessions", "events", "page_views"]
                .map(|n| typed_column::<Int64Array>(&b, n));
        let (dau, wau, mau, sessions, events, pv) = (dau?, wau?, mau?, sessions?, events?, pv?);
        let [dur, bounce, conv] = ["avg_session_duration_s", "bounce_rate", "conversion_rate"]
            .map(|n| typed_column::<Float64Array>(&b, n));
        let (dur, bounce, conv) = (dur?, bounce?, conv?);
        for i in 0..b.num_rows() {
            data.days.push(Day {
                date: from_days(date.value(i)),
                dau: dau.value(i),
                wau: wau.value(i),
                mau: mau.value(i),
                sessions: sessions.value(i),
                events: events.value(i),
                page_views: pv.value(i),
                avg_session_duration_s: dur.value(i),
                bounce_rate: bounce.value(i),
                conversion_rate: conv.value(i),
            });
        }
    }
    data.days.sort_by_key(|d| d.date);

    let mut steps: BTreeMap<i32, (String, i64)> = BTreeMap::new();
    for b in read(
        lake,
        Table::FunnelDaily,
        &["step_index", "step", "users"],
        range.filter("date"),
    )
    .await?
    {
        let idx = typed_column::<Int32Array>(&b, "step_index")?;
        let step = typed_column::<StringArray>(&b, "step")?;
        let users = typed_column::<Int64Array>(&b, "users")?;
        for i in 0..b.num_rows() {
            let e = steps
                .entry(idx.value(i))
                .or_insert_with(|| (step.value(i).to_string(), 0));
            e.1 += users.value(i);
        }
    }
    let first = steps.values().next().map_or(0, |s| s.1);
    let mut previous = first;
    let ratio = |a: i64, b: i64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    for (idx, (step, users)) in steps {
        data.funnel.push(FunnelStep {
            step_index: idx,
            step,
            users,
            conversion_from_start: ratio(users, first),
            conversion_from_previous: ratio(users, previous),
        });
        previous = users;
    }

    let (mut pages, mut entries) = (HashMap::new(), HashMap::new());
    for b in read(
        lake,
        Table::PageDaily,
        &["page_path", "page_views", "entries"],
        range.filter("date"),
    )
    .await?
    {
        let path = typed_column::<StringArray>(&b, "page_path")?;
        let views = typed_column::<Int64Array>(&b, "page_views")?;
        let entry = typed_column::<Int64Array>(&b, "entries")?;
        for i in 0..b.num_rows() {
            *pages.entry(path.value(i).to_string()).or_default() += views.value(i);
            *entries.entry(path.value(i).to_string()).or_default() += entry.value(i);
        }
    }
    entries.retain(|_, n| *n > 0);
    data.top_pages = top(pages);
    data.entry_pages = top(entries);

    let (mut durations, mut events) = (Vec::new(), Vec::new());
    let (mut referrers, mut devices, mut countries) =
        (HashMap::new(), HashMap::new(), HashMap::new());
    let columns = [
        "duration_s",
        "events",
        "referrer_host",
        "device_type",
        "country",
        "session_end",
    ];
    for b in read(
        lake,
        Table::Sessions,
        &columns,
        range.filter("session_date"),
    )
    .await?
    {
        let dur = typed_column::<Float64Array>(&b, "duration_s")?;
        let ev = typed_column::<Int64Array>(&b, "events")?;
        let end = typed_column::<TimestampMicrosecondArray>(&b, "session_end")?;
        let referrer = typed_column::<StringArray>(&b, "referrer_host")?;
        let device = typed_column::<StringArray>(&b, "device_type")?;
        let country = typed_column::<StringArray>(&b, "country")?;
        let label = |a: &StringArray, i: usize, none: &str| {
            if a.is_valid(i) {
                a.value(i).to_string()
            } else {
                none.to_string()
            }
        };
        for i in 0..b.num_rows() {
            durations.push(dur.value(i));
            events.push(ev.value(i) as f64);
            *referrers.entry(label(referrer, i, "(direct)")).or_default() += 1;
            *devices.entry(label(device, i, "(unknown)")).or_default() += 1;
            *countries.entry(label(country, i, "(unknown)")).or_default() += 1;
            let t = DateTime::from_timestamp_micros(end.value(i));
            data.latest_event_time = data.latest_event_time.max(t);
        }
    }
    data.duration_histogram = histogram(
        &durations,
        &[0.0, 10.0, 30.0, 60.0, 180.0, 600.0, 1800.0, 3600.0],
        "s",
    );
    data.events_histogram = histogram(&events, &[1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0], "");
    data.referrers = top(referrers);
    data.devices = top(devices);
    data.countries = top(countries);

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
    let mut cohorts: BTreeMap<i32, Cohort> = BTreeMap::new();
    for b in read(lake, Table::RetentionWeekly, &[], None).await? {
        let week = typed_column::<Date32Array>(&b, "cohort_week")?;
        let index = typed_column::<Int32Array>(&b, "week_index")?;
        let users = typed_column::<Int64Array>(&b, "cohort_users")?;
        let active = typed_column::<Int64Array>(&b, "active_users")?;
        for i in 0..b.num_rows() {
            let cohort = cohorts.entry(week.value(i)).or_insert_with(|| Cohort {
                week: from_days(week.value(i)),
                users: users.value(i),
                active: Vec::new(),
            });
            let at = index.value(i).max(0) as usize;
            if cohort.active.len() <= at {
                cohort.active.resize(at + 1, 0);
            }
            cohort.active[at] = active.value(i);
        }
    }
    data.retention = cohorts.into_values().collect();
    let silver = lake.table(Table::Silver).await?;
    let mut history = silver.history(None);
    while let Some(commit) = history.next().await {
        if let Some(n) = commit
            .ok()
            .and_then(|c| c.info.get("duplicates").and_then(|v| v.as_i64()))
        {
            data.duplicates += n;
        }
    }
    Ok(data)
}

/// What a headline shows: a day's figures, the day they are compared with, and the day still in
/// progress, apart.
#[derive(Debug, Clone, Copy)]
pub struct Headline<'a> {
    /// The latest complete day (or the day asked for; or, in a lake with no complete day yet,
    /// the partial one).
    pub day: &'a Day,
    /// `day` is still in progress: its figures are not compared with anything.
    pub day_is_partial: bool,
    /// The calendar day before `day`, when gold has it and `day` is complete: like with like.
    pub previous: Option<&'a Day>,
    /// The day in progress, shown apart, when it is not `day`.
    pub partial: Option<&'a Day>,
}

impl DashboardData {
    /// A day is complete once the UTC date the figures were read on has moved past it; later
    /// days are still receiving events (a few events past midnight make a day, not a complete
    /// one).
    pub fn is_complete(&self, day: &Day) -> bool {
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

/// A headline figure: key, label, value on the day, value on the day before.
fn tiles(
    day: &Day,
    prev: Option<&Day>,
) -> Vec<(&'static str, &'static str, f64, Option<f64>, Format)> {
    let p = |f: fn(&Day) -> f64| prev.map(f);
    vec![
        (
            "dau",
            "Daily active users",
            day.dau as f64,
            p(|d| d.dau as f64),
            Format::Count,
        ),
        (
            "sessions",
            "Sessions",
            day.sessions as f64,
            p(|d| d.sessions as f64),
            Format::Count,
        ),
        (
            "page_views",
            "Page views",
            day.page_views as f64,
            p(|d| d.page_views as f64),
            Format::Count,
        ),
        (
            "conversion_rate",
            "Conversion rate",
            day.conversion_rate,
            p(|d| d.conversion_rate),
            Format::Percent,
        ),
        (
            "bounce_rate",
            "Bounce rate",
            day.bounce_rate,
            p(|d| d.bounce_rate),
            Format::Percent,
        ),
        (
            "avg_session_duration_s",
            "Avg session",
            day.avg_session_duration_s,
            p(|d| d.avg_session_duration_s),
            Format::Seconds,
        ),
    ]
}

#[derive(Clone, Copy)]
enum Format {
    Count,
    Percent,
    Seconds,
}

fn show(v: f64, f: Format) -> String {
    match f {
        Format::Count => format!("{v:.0}"),
        Format::Percent => format!("{:.1}%", v * 100.0),
        Format::Seconds => format!("{v:.0}s"),
    }
}

/// The change from the day before, as a tile says it.
fn change(v: f64, prev: Option<f64>, h: &Headline) -> String {
    match prev {
        Some(p) if p != 0.0 => format!("{:+.1}% vs the day before", (v - p) / p * 100.0),
        Some(_) => "n/a vs the day before".into(),
        None if h.day_is_partial => "so far today".into(),
        None => "no figures for the day before".into(),
    }
}

/// The headline's title: which day, and whether it is complete.
fn headline_title(h: &Headline) -> String {
    if h.day_is_partial {
        format!("{} (in progress, no complete day yet)", h.day.date)
    } else {
        format!("{} (latest complete day)", h.day.date)
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const WIDTH: u32 = 720;
const HEIGHT: u32 = 300;

/// An SVG line chart of several series over the days, scaled to its container.
fn line_chart(title: &str, days: &[Day], series: &[(&str, fn(&Day) -> i64, RGBColor)]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let n = days.len().max(1) as i32;
        let max = days
            .iter()
            .flat_map(|d| series.iter().map(move |s| (s.1)(d)))
            .max()
            .unwrap_or(0)
            .max(1);
        let chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0..n.max(2) - 1, 0..max + max / 10 + 1);
        if let Ok(mut chart) = chart {
            let labels: Vec<String> = days
                .iter()
                .map(|d| d.date.format("%m-%d").to_string())
                .collect();
            let _ = chart
                .configure_mesh()
                .x_labels(8)
                .x_label_formatter(&|x| labels.get(*x as usize).cloned().unwrap_or_default())
                .draw();
            for (name, f, color) in series {
                let points: Vec<(i32, i64)> = days
                    .iter()
                    .enumerate()
                    .map(|(i, d)| (i as i32, f(d)))
                    .collect();
                if let Ok(s) = chart.draw_series(LineSeries::new(points, color.stroke_width(2))) {
                    s.label(*name).legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                }
            }
            let _ = chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw();
        }
        let _ = root.present();
    }
    responsive(svg)
}

/// An SVG bar chart of labelled counts.
fn bar_chart(title: &str, bars: &[(String, i64)], color: RGBColor) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
        let n = bars.len().max(1) as i32;
        let chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d((0..n).into_segmented(), 0..max + max / 10 + 1);
        if let Ok(mut chart) = chart {
            let _ = chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(bars.len().max(1))
                .x_label_formatter(&|x| match x {
                    SegmentValue::CenterOf(i) => bars
                        .get(*i as usize)
                        .map(|b| b.0.clone())
                        .unwrap_or_default(),
                    _ => String::new(),
                })
                .draw();
            let _ = chart.draw_series(
                Histogram::vertical(&chart)
                    .style(color.filled())
                    .margin(4)
                    .data(bars.iter().enumerate().map(|(i, b)| (i as i32, b.1))),
            );
        }
        let _ = root.present();
    }
    responsive(svg)
}

/// Lets an SVG of fixed size scale with its container (phones included).
fn responsive(svg: String) -> String {
    svg.replacen(
        &format!("width=\"{WIDTH}\" height=\"{HEIGHT}\""),
        "width=\"100%\" preserveAspectRatio=\"xMidYMid meet\"",
        1,
    )
}

fn figure(key: &str, svg: &str) -> String {
    format!("<figure class=\"chart\" data-chart=\"{key}\">{svg}</figure>\n")
}

/// The retention cohorts as a heatmap: a row per cohort, a cell per week after it, shaded by the
/// share still active.
fn retention_heatmap(cohorts: &[Cohort]) -> String {
    let weeks = cohorts.iter().map(|c| c.active.len()).max().unwrap_or(0);
    let mut html = String::from(
        "<section class=\"retention\"><h3>Weekly retention: users by first week, share active in each week after</h3>",
    );
    if cohorts.is_empty() {
        html.push_str(
            "<p class=\"empty\">No cohorts yet (the exporter computes them).</p></section>\n",
        );
        return html;
    }
    html.push_str("<table data-retention><tr><th>first seen (week of)</th><th>users</th>");
    for w in 0..weeks {
        let _ = write!(html, "<th>week {w}</th>");
    }
    html.push_str("</tr>");
    for c in cohorts {
        let _ = write!(html, "<tr><td>{}</td><td>{}</td>", c.week, c.users);
        for (w, active) in c.active.iter().enumerate() {
            let share = *active as f64 / c.users.max(1) as f64;
            let _ = write!(
                html,
                "<td data-cohort=\"{}\" data-week=\"{w}\" data-active=\"{active}\" style=\"background:rgba(0,114,178,{:.2})\" title=\"{active} of {} users\">{:.0}%</td>",
                c.week,
                share,
                c.users,
                share * 100.0
            );
        }
        html.push_str("</tr>");
    }
    html.push_str("</table></section>\n");
    html
}

fn list_table(key: &str, title: &str, head: &str, rows: &[(String, i64)]) -> String {
    let mut html = format!(
        "<section class=\"list\"><h3>{title}</h3><table data-list=\"{key}\"><tr><th>{head}</th><th>count</th></tr>"
    );
    for (k, v) in rows {
        let _ = write!(
            html,
            "<tr data-key=\"{}\" data-value=\"{v}\"><td>{}</td><td>{v}</td></tr>",
            escape(k),
            escape(k)
        );
    }
    html.push_str("</table></section>\n");
    html
}

/// The self-contained dashboard page.
pub fn render_html(data: &DashboardData) -> String {
    let mut body = String::new();
    let range = match (data.days.first(), data.days.last()) {
        (Some(a), Some(b)) => format!("{} to {}", a.date, b.date),
        _ => "no data yet".to_string(),
    };
    let _ = write!(
        body,
        "<header><h1>Clickstream</h1><p class=\"range\" data-range=\"{range}\">{range}</p></header>\n"
    );
    match data.headline(None) {
        Some(h) => {
            let _ = write!(
                body,
                "<h2 data-headline-date=\"{}\" data-partial=\"{}\">{}</h2><div class=\"tiles\">",
                h.day.date,
                h.day_is_partial,
                headline_title(&h)
            );
            for (key, label, v, p, f) in tiles(h.day, h.previous) {
                let _ = write!(
                    body,
                    "<div class=\"tile\" data-metric=\"{key}\" data-value=\"{v}\"><div class=\"label\">{label}</div><div class=\"value\">{}</div><div class=\"change\">{}</div></div>",
                    show(v, f),
                    change(v, p, &h)
                );
            }
            body.push_str("</div>\n");
            if let Some(today) = h.partial {
                let _ = write!(
                    body,
                    "<p class=\"partial\" data-partial-date=\"{}\" data-dau=\"{}\" data-sessions=\"{}\" data-page-views=\"{}\">{} so far (in progress): {} active users, {} sessions, {} page views</p>\n",
                    today.date,
                    today.dau,
                    today.sessions,
                    today.page_views,
                    today.date,
                    today.dau,
                    today.sessions,
                    today.page_views
                );
            }
        }
        None => body.push_str("<p class=\"empty\">Gold is empty: run the pipeline first.</p>\n"),
    }
    body.push_str("<div class=\"grid\">\n");
    body += &figure(
        "active_users",
        &line_chart(
            "Active users",
            &data.days,
            &[
                ("DAU", |d| d.dau, BLUE),
                ("WAU", |d| d.wau, GREEN),
                ("MAU", |d| d.mau, RED),
            ],
        ),
    );
    body += &figure(
        "traffic",
        &line_chart(
            "Sessions and page views",
            &data.days,
            &[
                ("sessions", |d| d.sessions, BLUE),
                ("page views", |d| d.page_views, MAGENTA),
            ],
        ),
    );
    body += &figure(
        "session_duration",
        &bar_chart("Session duration", &data.duration_histogram, BLUE),
    );
    body += &figure(
        "events_per_session",
        &bar_chart("Events per session", &data.events_histogram, GREEN),
    );
    let funnel_bars: Vec<(String, i64)> = data
        .funnel
        .iter()
        .map(|s| (s.step.clone(), s.users))
        .collect();
    body += &figure(
        "funnel",
        &bar_chart("Funnel (user-days per step)", &funnel_bars, RED),
    );
    body.push_str("</div>\n<section class=\"list\"><h3>Funnel</h3><table data-list=\"funnel\"><tr><th>step</th><th>users</th><th>from start</th><th>from previous</th></tr>");
    for s in &data.funnel {
        let _ = write!(
            body,
            "<tr data-key=\"{}\" data-value=\"{}\"><td>{}. {}</td><td>{}</td><td>{:.1}%</td><td>{:.1}%</td></tr>",
            escape(&s.step),
            s.users,
            s.step_index,
            escape(&s.step),
            s.users,
            s.conversion_from_start * 100.0,
            s.conversion_from_previous * 100.0
        );
    }
    body.push_str("</table></section>\n<div class=\"lists\">\n");
    body += &list_table("top_pages", "Top pages", "page", &data.top_pages);
    body += &list_table("entry_pages", "Entry pages", "page", &data.entry_pages);
    body += &list_table("referrers", "Referrers", "host", &data.referrers);
    body += &list_table("devices", "Devices", "device", &data.devices);
    body += &list_table("countries", "Countries", "country", &data.countries);
    body.push_str("</div>\n");
    body += &retention_heatmap(&data.retention);
    let latest = data
        .latest_event_time
        .map_or("none".to_string(), |t| t.to_rfc3339());
    let _ = write!(
        body,
        "<footer><p>Latest event: <span data-freshness=\"latest_event\">{latest}</span>. Exported: <span data-freshness=\"exported\">{}</span>.</p><p>Reconciliation: silver <span data-count=\"silver\">{}</span>, duplicates <span data-count=\"duplicates\">{}</span>, quarantined",
        data.generated_at.to_rfc3339(),
        data.silver_events,
        data.duplicates
    );
    for (reason, n) in &data.quarantined {
        let _ = write!(
            body,
            " <span data-quarantined=\"{reason}\">{reason} {n}</span>"
        );
    }
    body.push_str("</p></footer>\n");
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Clickstream dashboard</title><style>{CSS}</style></head><body>\n{body}</body></html>\n"
    )
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:12px;color:#222;background:#f6f7f9}\
h1{margin:0}header{display:flex;justify-content:space-between;align-items:baseline;flex-wrap:wrap}\
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:10px}\
.tile{background:#fff;border-radius:8px;padding:10px;box-shadow:0 1px 2px #0002}.tile .value{font-size:1.6em;font-weight:600}\
.tile .label,.tile .change{color:#666;font-size:.85em}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:10px;margin-top:12px}\
figure.chart{margin:0;background:#fff;border-radius:8px;padding:6px;box-shadow:0 1px 2px #0002}\
.lists{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:10px}\
table{border-collapse:collapse;width:100%;background:#fff}td,th{text-align:left;padding:3px 6px;border-bottom:1px solid #eee;font-size:.9em}\
footer{color:#555;font-size:.85em;margin-top:16px}";

/// The same figures as aligned text for a terminal.
pub fn render_report(data: &DashboardData, date: Option<NaiveDate>) -> String {
    let mut out = String::new();
    match data.headline(date) {
        Some(h) => {
            let _ = writeln!(out, "Clickstream report for {}", headline_title(&h));
            let _ = writeln!(out, "{:<22} {:>12}  change", "metric", "value");
            for (key, _, v, p, f) in tiles(h.day, h.previous) {
                let _ = writeln!(out, "{:<22} {:>12}  {}", key, show(v, f), change(v, p, &h));
            }
            let _ = writeln!(out, "{:<22} {:>12}", "wau", h.day.wau);
            let _ = writeln!(out, "{:<22} {:>12}", "mau", h.day.mau);
            if let Some(today) = h.partial {
                let _ = writeln!(
                    out,
                    "\n{} so far (in progress): {} active users, {} sessions, {} page views",
                    today.date, today.dau, today.sessions, today.page_views
                );
            }
        }
        None => {
            let _ = writeln!(
                out,
                "No gold data{}.",
                date.map(|d| format!(" for {d}")).unwrap_or_default()
            );
        }
    }
    let mut list = |title: &str, rows: &[(String, i64)]| {
        let _ = writeln!(out, "\n{title}");
        for (k, v) in rows {
            let _ = writeln!(out, "  {k:<40} {v:>10}");
        }
    };
    list("Top pages (page views)", &data.top_pages);
    list("Entry pages (sessions)", &data.entry_pages);
    list("Referrers (sessions)", &data.referrers);
    list("Devices (sessions)", &data.devices);
    list("Countries (sessions)", &data.countries);
    if !data.retention.is_empty() {
        let _ = writeln!(
            out,
            "\nWeekly retention (users by first week; share active in week 0, 1, ...)"
        );
        for c in &data.retention {
            let shares: Vec<String> = c
                .active
                .iter()
                .map(|a| format!("{:>4.0}%", *a as f64 / c.users.max(1) as f64 * 100.0))
                .collect();
            let _ = writeln!(
                out,
                "  {} {:>8} users {}",
                c.week,
                c.users,
                shares.join(" ")
            );
        }
    }
    let _ = writeln!(out, "\nFunnel (user-days)");
    for s in &data.funnel {
        let _ = writeln!(
            out,
            "  {:<40} {:>10} {:>7.1}% {:>7.1}%",
            format!("{}. {}", s.step_index, s.step),
            s.users,
            s.conversion_from_start * 100.0,
            s.conversion_from_previous * 100.0
        );
    }
    out
}
