//! The pipeline's health ([`clickstream::health`]) as people see it: `clickstream status` in the
//! terminal, and the dashboard's pipeline panel. Both show gold's freshness and each stage's lag,
//! then per day the records each stage took, the quarantine rate with its reasons, the duplicates
//! and the late events; the terminal adds what the functions emitted as metrics, when their logs
//! are at hand (the local stack's).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use clickstream::health::{Day, Health};
use clickstream::telemetry::emf::Sums;
use clickstream::telemetry::metric;

use crate::escape;

/// A duration in seconds, as people say it: `42 s`, `7 min`, `3.5 h`, `2.0 days`.
pub fn age(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} days", s / 86_400.0)
    }
}

/// One line on gold's freshness and the stages' lag.
pub fn freshness_line(health: &Health) -> String {
    let f = &health.freshness;
    let newest = match (f.newest_event_time, f.seconds) {
        (Some(t), Some(s)) => format!(
            "newest event in gold {} ({} ago)",
            t.format("%Y-%m-%d %H:%M:%S UTC"),
            age(s)
        ),
        _ => "gold holds no event yet".to_string(),
    };
    format!(
        "{newest}; silver is {} bronze commit(s) behind, gold {} silver commit(s) behind",
        f.silver_behind, f.gold_behind
    )
}

/// The reasons of a day's quarantined records, most first: `not_json 3, missing_field 1`.
fn reasons(day: &Day) -> String {
    let mut by_count: Vec<(&String, &u64)> = day.quarantined.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    by_count
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn rate(day: &Day) -> String {
    day.quarantine_rate_percent()
        .map_or("-".to_string(), |r| format!("{r:.2}%"))
}

/// `clickstream status`: freshness, the per-day table, and the emitted metrics by stage when
/// `emitted` holds any.
pub fn render_status(health: &Health, emitted: Option<&BTreeMap<String, Sums>>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Pipeline health at {}",
        health.at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let _ = writeln!(out, "  {}", freshness_line(health));
    let _ = writeln!(out);
    if health.days.is_empty() {
        let _ = writeln!(out, "No records in the days shown.");
    } else {
        let _ = writeln!(
            out,
            "{:<10} {:>10} {:>10} {:>11} {:>8} {:>10} {:>8} {:>10}  reasons",
            "day", "bronze", "silver", "quarantined", "rate", "duplicates", "late", "suppressed"
        );
        for d in &health.days {
            let _ = writeln!(
                out,
                "{:<10} {:>10} {:>10} {:>11} {:>8} {:>10} {:>8} {:>10}  {}",
                d.date,
                d.bronze,
                d.silver,
                d.quarantined_total(),
                rate(d),
                d.duplicates,
                d.late,
                d.suppressed,
                reasons(d)
            );
        }
    }
    if let Some(stages) = emitted.filter(|s| !s.is_empty()) {
        let _ = writeln!(out);
        let _ = writeln!(out, "Metrics the functions emitted (their logs):");
        let shown = [
            metric::RECORDS_IN,
            metric::RECORDS_OUT,
            metric::QUARANTINED,
            metric::DUPLICATES,
            metric::LATE_EVENTS,
            metric::LOST_RACES,
            metric::FAILURES,
        ];
        let _ = write!(out, "{:<20} {:>11}", "stage", "invocations");
        for m in shown {
            let _ = write!(out, " {m:>12}");
        }
        let _ = writeln!(out, " {:>14}", "freshness now");
        for (stage, sums) in stages {
            let invocations = sums.get(metric::HANDLER_DURATION).map_or(0, |s| s.samples);
            let _ = write!(out, "{stage:<20} {invocations:>11}");
            for m in shown {
                let sum = sums.get(m).map_or(0.0, |s| s.sum);
                let _ = write!(out, " {sum:>12}");
            }
            let freshness = sums
                .get(metric::FRESHNESS)
                .map_or("-".to_string(), |s| age(s.last));
            let _ = writeln!(out, " {freshness:>14}");
        }
    }
    out
}

/// The dashboard's pipeline panel: freshness, then the per-day table, newest day first.
pub fn render_panel(health: &Health) -> String {
    let f = &health.freshness;
    let mut html = format!(
        "<h3>Pipeline health</h3><p data-health=\"freshness\" data-seconds=\"{}\" data-silver-behind=\"{}\" data-gold-behind=\"{}\">{}.</p>",
        f.seconds.map_or(String::new(), |s| format!("{s:.0}")),
        f.silver_behind,
        f.gold_behind,
        escape(&freshness_line(health))
    );
    if health.days.is_empty() {
        html.push_str("<p class=\"empty\">No records in the last days.</p>");
        return html;
    }
    html.push_str(
        "<div class=\"scroll\"><table data-list=\"health\"><thead><tr><th>Day</th><th>Bronze</th><th>Silver</th><th>Quarantined</th><th>Rate</th><th>Reasons</th><th>Duplicates</th><th>Late</th></tr></thead><tbody>",
    );
    for d in health.days.iter().rev() {
        let _ = write!(
            html,
            "<tr data-health-day=\"{}\"><td>{}</td><td data-count=\"bronze\">{}</td><td data-count=\"silver\">{}</td><td data-count=\"quarantined\">{}</td><td>{}</td><td>{}</td><td data-count=\"duplicates\">{}</td><td data-count=\"late\">{}</td></tr>",
            d.date,
            d.date,
            d.bronze,
            d.silver,
            d.quarantined_total(),
            rate(d),
            escape(&reasons(d)),
            d.duplicates,
            d.late
        );
    }
    html.push_str("</tbody></table></div>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone, Utc};
    use clickstream::health::Freshness;

    fn health() -> Health {
        let at = Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap();
        Health {
            at,
            freshness: Freshness {
                newest_event_time: Some(at - chrono::Duration::minutes(20)),
                seconds: Some(1200.0),
                silver_behind: 1,
                gold_behind: 0,
            },
            days: vec![Day {
                date: NaiveDate::from_ymd_opt(2026, 12, 6).unwrap(),
                bronze: 200,
                silver: 190,
                quarantined: BTreeMap::from([("<bad>".into(), 1), ("not_json".into(), 3)]),
                duplicates: 6,
                suppressed: 0,
                late: 2,
            }],
        }
    }

    #[test]
    fn status_shows_freshness_the_days_and_the_emitted_metrics() {
        let mut silver = Sums::new();
        silver.insert(
            metric::HANDLER_DURATION.into(),
            clickstream::telemetry::emf::Summary {
                samples: 3,
                sum: 30.0,
                max: 12.0,
                last: 9.0,
            },
        );
        let emitted = BTreeMap::from([("silver-transformer".to_string(), silver)]);
        let text = render_status(&health(), Some(&emitted));
        assert!(text.contains("(20 min ago)"), "{text}");
        assert!(
            text.contains("silver is 1 bronze commit(s) behind"),
            "{text}"
        );
        assert!(
            text.contains("2026-12-06        200        190           4    2.00%"),
            "{text}"
        );
        assert!(text.contains("not_json 3, <bad> 1"), "{text}");
        assert!(text.contains("silver-transformer             3"), "{text}");
    }

    #[test]
    fn the_panel_escapes_reasons() {
        let html = render_panel(&health());
        assert!(html.contains("&lt;bad&gt; 1"), "{html}");
        assert!(html.contains("data-seconds=\"1200\""), "{html}");
        assert!(!html.contains("<bad>"));
    }

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(age(42.0), "42 s");
        assert_eq!(age(1200.0), "20 min");
        assert_eq!(age(5.0 * 3600.0), "5.0 h");
        assert_eq!(age(3.0 * 86_400.0), "3.0 days");
    }
}
