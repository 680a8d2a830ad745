//! The dashboard page: one self-contained HTML file. The headline and the reconciliation are
//! written here; the charts, tiles and tables are drawn in the browser by `assets/dashboard.js`
//! from the gold figures embedded as JSON, with Chart.js (vendored under `vendor/chart.js`)
//! inlined, so the page makes no network request and can re-sum any date range a reader picks.

use std::fmt::Write as _;

use super::data::DashboardData;
use super::text::{change, headline_title, partial_line, show, tiles};

const TEMPLATE: &str = include_str!("../../assets/dashboard.html");
const STYLE: &str = include_str!("../../assets/dashboard.css");
const SCRIPT: &str = include_str!("../../assets/dashboard.js");
const CHART_JS: &str = include_str!("../../vendor/chart.js/chart.umd.min.js");
const CHART_JS_VERSION: &str = include_str!("../../vendor/chart.js/VERSION");

use crate::escape;

/// The headline of the latest complete day, compared with the day before, and the day in
/// progress apart.
fn headline(data: &DashboardData) -> String {
    let Some(h) = data.headline(None) else {
        return "<p class=\"empty\">Gold is empty: run the pipeline first.</p>".into();
    };
    let mut html = format!(
        "<h2 data-headline-date=\"{}\" data-partial=\"{}\">{}</h2><ul class=\"headline-figures\">",
        h.day.date,
        h.day_is_partial,
        headline_title(&h)
    );
    for t in tiles(h.day, h.previous) {
        let _ = write!(
            html,
            "<li data-headline=\"{}\" data-value=\"{}\"><span class=\"label\">{}</span> <b>{}</b> <span class=\"change\">{}</span></li>",
            t.key,
            t.value,
            t.label,
            show(t.value, t.format),
            change(&t, &h)
        );
    }
    html.push_str("</ul>");
    if let Some(today) = h.partial {
        let _ = write!(
            html,
            "<p class=\"partial\" data-partial-date=\"{}\" data-dau=\"{}\" data-sessions=\"{}\" data-page-views=\"{}\">{}</p>",
            today.date,
            today.dau,
            today.sessions,
            today.page_views,
            partial_line(today)
        );
    }
    html
}

/// Where the figures come from and how the records reconcile.
fn footer(data: &DashboardData) -> String {
    let latest = data
        .latest_event_time
        .map_or("none".to_string(), |t| t.to_rfc3339());
    let mut html = format!(
        "<p>Latest event: <span data-freshness=\"latest_event\">{latest}</span>. Exported: <span data-freshness=\"exported\">{}</span>.</p><p>Reconciliation: silver <span data-count=\"silver\">{}</span>, duplicates <span data-count=\"duplicates\">{}</span>, quarantined",
        data.generated_at.to_rfc3339(),
        data.silver_events,
        data.duplicates
    );
    if data.quarantined.is_empty() {
        html.push_str(" none");
    }
    for (reason, n) in &data.quarantined {
        let reason = escape(reason);
        let _ = write!(
            html,
            " <span data-quarantined=\"{reason}\">{reason} {n}</span>"
        );
    }
    let _ = write!(
        html,
        ".</p><p>Identities: <span data-count=\"stitched\">{}</span> anonymous ids stitched to \
         <span data-count=\"stitched_users\">{}</span> signed-in users (gold/identities).",
        data.stitched_anonymous_ids, data.stitched_users
    );
    let _ = write!(
        html,
        "</p><p>Charts by Chart.js {} (MIT license), inlined.</p>",
        CHART_JS_VERSION.trim()
    );
    html
}

/// The figures as JSON that can sit inside a `<script>` element.
fn embedded(data: &DashboardData) -> String {
    serde_json::to_string(data)
        .expect("dashboard data is plain values")
        .replace("</", "<\\/")
}

/// The self-contained dashboard page.
pub fn render_html(data: &DashboardData) -> String {
    fill(
        TEMPLATE,
        &[
            ("style", STYLE),
            ("headline", &headline(data)),
            ("health", &crate::health::render_panel(&data.health)),
            ("footer", &footer(data)),
            ("chart_js", CHART_JS),
            ("script", SCRIPT),
            ("data", &embedded(data)),
        ],
    )
}

/// `template` with each `{{name}}` replaced by its value, in one pass (a value is never
/// searched for placeholders).
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|v| v.1.len()).sum::<usize>());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .expect("the template closes each placeholder");
        let name = &after[..end];
        let value = values.iter().find(|v| v.0 == name);
        out.push_str(
            value
                .unwrap_or_else(|| panic!("no value for {{{{{name}}}}}"))
                .1,
        );
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_once_and_values_are_left_alone() {
        let page = fill("<a>{{x}}</a>{{y}}", &[("x", "{{y}}"), ("y", "2")]);
        assert_eq!(page, "<a>{{y}}</a>2");
    }

    #[test]
    fn embedded_figures_cannot_close_the_script_element() {
        let mut data = DashboardData::default();
        data.top_pages
            .push(("/</script><script>alert(1)".into(), 1));
        assert!(!embedded(&data).contains("</script"));
    }
}
