//! The terminal report, and the headline's wording, which the page shares.

use std::fmt::Write as _;

use chrono::NaiveDate;

use super::data::{DashboardData, Headline};
use clickstream::rows::DailyMetrics;

/// How a figure is written.
#[derive(Clone, Copy)]
pub(super) enum Format {
    Count,
    Percent,
    Seconds,
}

/// A headline figure of one day, and the same figure on the day it is compared with.
pub(super) struct Tile {
    pub key: &'static str,
    pub label: &'static str,
    pub value: f64,
    pub previous: Option<f64>,
    pub format: Format,
}

/// The headline figures of `day`, each with its value on `previous`.
pub(super) fn tiles(day: &DailyMetrics, previous: Option<&DailyMetrics>) -> Vec<Tile> {
    let tile = |key, label, of: fn(&DailyMetrics) -> f64, format| Tile {
        key,
        label,
        value: of(day),
        previous: previous.map(of),
        format,
    };
    vec![
        tile("dau", "Daily active users", |d| d.dau as f64, Format::Count),
        tile("sessions", "Sessions", |d| d.sessions as f64, Format::Count),
        tile(
            "page_views",
            "Page views",
            |d| d.page_views as f64,
            Format::Count,
        ),
        tile(
            "conversion_rate",
            "Conversion rate",
            |d| d.conversion_rate,
            Format::Percent,
        ),
        tile(
            "bounce_rate",
            "Bounce rate",
            |d| d.bounce_rate,
            Format::Percent,
        ),
        tile(
            "avg_session_duration_s",
            "Avg session",
            |d| d.avg_session_duration_s,
            Format::Seconds,
        ),
    ]
}

/// `value` as a tile writes it.
pub(super) fn show(value: f64, format: Format) -> String {
    match format {
        Format::Count => format!("{value:.0}"),
        Format::Percent => format!("{:.1}%", value * 100.0),
        Format::Seconds => format!("{value:.0}s"),
    }
}

/// The change from the day before, as a tile says it.
pub(super) fn change(tile: &Tile, h: &Headline) -> String {
    match tile.previous {
        Some(p) if p != 0.0 => format!("{:+.1}% vs the day before", (tile.value - p) / p * 100.0),
        Some(_) => "n/a vs the day before".into(),
        None if h.day_is_partial => "so far today".into(),
        None => "no figures for the day before".into(),
    }
}

/// The headline's title: which day, and whether it is complete.
pub(super) fn headline_title(h: &Headline) -> String {
    if h.day_is_partial {
        format!("{} (in progress, no complete day yet)", h.day.date)
    } else {
        format!("{} (latest complete day)", h.day.date)
    }
}

/// The day in progress, as the headline mentions it apart.
pub(super) fn partial_line(today: &DailyMetrics) -> String {
    format!(
        "{} so far (in progress): {} active users, {} sessions, {} page views",
        today.date, today.dau, today.sessions, today.page_views
    )
}

/// The same figures as aligned text for a terminal: the headline of `date` (or of the latest
/// complete day), then the top lists, retention and funnel of the loaded range.
pub fn render_report(data: &DashboardData, date: Option<NaiveDate>) -> String {
    let mut out = String::new();
    match data.headline(date) {
        Some(h) => {
            let _ = writeln!(out, "Clickstream report for {}", headline_title(&h));
            let _ = writeln!(out, "{:<22} {:>12}  change", "metric", "value");
            for t in tiles(h.day, h.previous) {
                let value = show(t.value, t.format);
                let _ = writeln!(out, "{:<22} {:>12}  {}", t.key, value, change(&t, &h));
            }
            let _ = writeln!(out, "{:<22} {:>12}", "wau", h.day.wau);
            let _ = writeln!(out, "{:<22} {:>12}", "mau", h.day.mau);
            if let Some(today) = h.partial {
                let _ = writeln!(out, "\n{}", partial_line(today));
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
    list(
        "Sources: utm_source, else referrer (sessions)",
        &data.sources,
    );
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
