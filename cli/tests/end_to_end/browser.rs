//! The dashboard as a reader sees it: headless Chromium, driven by puppeteer
//! (`cli/tests/browser/dashboard.mjs`), renders the exported page, hovers a chart, picks another
//! date range and narrows to a phone's width; the figures read back from the rendered page (tiles,
//! chart data, tables, retention cells, the tooltip) must equal the gold tables, with no console
//! error, no request leaving the page and no sideways scrolling on a phone. Screenshots at both
//! widths go to docs/ with CLICKSTREAM_UPDATE_SCREENSHOT=1.
//! Needs Chromium, Node.js and the driver: `scripts/test` installs them (or set CHROMIUM); a plain
//! `cargo test` without them skips this test.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::array::AsArray;
use arrow::datatypes::{Date32Type, Float64Type, Int32Type, Int64Type};
use chrono::NaiveDate;
use clickstream::lake::from_days;
use clickstream::lake::{Lake, Table};
use serde_json::Value;

use crate::stack::{repo_root, rows};

/// Chromium (`CHROMIUM`, or /usr/bin/chromium), or `None` (the test is skipped) when it is not
/// installed; see [`crate::available`].
pub fn chromium() -> Option<PathBuf> {
    let path =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    let missing: Vec<String> = (!path.exists())
        .then(|| format!("Chromium at {} (or set CHROMIUM)", path.display()))
        .into_iter()
        .collect();
    crate::available("the browser test", &missing).then_some(path)
}

/// The folder of the puppeteer scripts (cli/tests/browser) and Chromium, or `None` (skipped) when
/// Node.js, the driver (`npm ci` there, done by scripts/tools.sh) or Chromium is missing.
pub fn driver() -> Option<(PathBuf, PathBuf)> {
    let dir = repo_root().join("cli/tests/browser");
    let mut missing = Vec::new();
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("Node.js (node)".to_string());
    }
    if !dir.join("node_modules/puppeteer-core").exists() {
        missing.push(format!("puppeteer-core in {}/node_modules", dir.display()));
    }
    if !crate::available("the browser test", &missing) {
        return None;
    }
    Some((dir, chromium()?))
}

/// One row of gold/daily_metrics, by column name.
type Day = HashMap<&'static str, f64>;

async fn gold_days(lake: &Lake) -> BTreeMap<NaiveDate, Day> {
    let mut days = BTreeMap::new();
    for b in rows(lake, Table::DailyMetrics).await {
        let date = b["date"].as_primitive::<Date32Type>();
        for i in 0..b.num_rows() {
            let mut day = Day::new();
            for name in ["dau", "wau", "mau", "sessions", "page_views"] {
                day.insert(name, b[name].as_primitive::<Int64Type>().value(i) as f64);
            }
            for name in ["conversion_rate", "bounce_rate", "avg_session_duration_s"] {
                day.insert(name, b[name].as_primitive::<Float64Type>().value(i));
            }
            days.insert(from_days(date.value(i)), day);
        }
    }
    days
}

/// The tiles of a range as the dashboard defines them: the average DAU, sessions and page views
/// summed, the rates weighted by sessions.
fn expected_tiles(days: &BTreeMap<NaiveDate, Day>, from: NaiveDate, to: NaiveDate) -> Day {
    let picked: Vec<&Day> = days.range(from..=to).map(|(_, d)| d).collect();
    let total = |name: &str| picked.iter().map(|d| d[name]).sum::<f64>();
    let sessions = total("sessions");
    let weighted =
        |name: &str| picked.iter().map(|d| d[name] * d["sessions"]).sum::<f64>() / sessions;
    Day::from([
        ("dau", total("dau") / picked.len() as f64),
        ("sessions", sessions),
        ("page_views", total("page_views")),
        ("conversion_rate", weighted("conversion_rate")),
        ("bounce_rate", weighted("bounce_rate")),
        ("avg_session_duration_s", weighted("avg_session_duration_s")),
    ])
}

fn date(v: &Value) -> NaiveDate {
    v.as_str().unwrap().parse().unwrap()
}

/// The tiles a read of the page shows equal `expected`.
fn assert_tiles(read: &Value, expected: &Day, when: &str) {
    let tiles = read["tiles"].as_array().unwrap();
    assert_eq!(tiles.len(), expected.len(), "{when}: tiles {tiles:?}");
    for tile in tiles {
        let metric = tile["metric"].as_str().unwrap();
        let (shown, wanted) = (tile["value"].as_f64().unwrap(), expected[metric]);
        assert!(
            (shown - wanted).abs() <= 1e-9 * wanted.abs().max(1.0),
            "{when}: tile {metric} shows {shown}, gold gives {wanted}"
        );
    }
}

/// `n` as the page writes counts (en-US grouping).
fn grouped(n: i64) -> String {
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_browser_shows_gold() {
    let Some((scripts, chromium)) = driver() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let (ok, _, stderr) = crate::demo::clickstream(&[
        "demo",
        "--events",
        "8000",
        "--days",
        "16",
        "--lake",
        lake_dir.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let lake = Lake::open(lake_dir.to_str().unwrap()).unwrap();
    let days = gold_days(&lake).await;
    let dates: Vec<NaiveDate> = days.keys().copied().collect();
    let picked = (dates[1], dates[3]);

    let page = lake_dir.join("exports/dashboard.html");
    let shots = dir.path().join("shots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(scripts.join("dashboard.mjs"))
        .env("CHROMIUM", &chromium)
        .env("PAGE_URL", format!("file://{}", page.display()))
        .env("RANGE_FROM", picked.0.to_string())
        .env("RANGE_TO", picked.1.to_string())
        .env("SHOT_DIR", &shots)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        seen["console_errors"],
        Value::Array(vec![]),
        "console errors"
    );
    assert_eq!(
        seen["foreign_requests"],
        Value::Array(vec![]),
        "the page loads nothing"
    );

    // The default range: the 7 days to the latest complete day; its tiles are gold's.
    let initial = &seen["initial"];
    let (from, to) = (
        date(&initial["range"]["from"]),
        date(&initial["range"]["to"]),
    );
    assert_eq!((to - from).num_days(), 6, "seven days by default");
    assert!(
        to < chrono::Utc::now().date_naive(),
        "ending on a complete day"
    );
    assert_tiles(initial, &expected_tiles(&days, from, to), "default range");

    // The active-users chart draws gold's DAU, WAU and MAU of each day.
    let chart = &initial["charts"]["active_users"];
    for (i, label) in chart["labels"].as_array().unwrap().iter().enumerate() {
        let day = &days[&date(label)];
        for (series, name) in [(0, "dau"), (1, "wau"), (2, "mau")] {
            assert_eq!(
                chart["datasets"][series]["data"][i].as_f64(),
                Some(day[name]),
                "{name} on {label}"
            );
        }
    }
    // Hovering the last point shows its values.
    let hover = &seen["hover"];
    let hovered = &days[&date(&hover["date"])];
    assert_eq!(hover["title"][0], hover["date"]);
    let dau_line = format!("DAU: {}", grouped(hovered["dau"] as i64));
    assert!(
        hover["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == &dau_line),
        "tooltip {} lacks {dau_line}",
        hover["lines"]
    );

    // A range picked in the inputs: the tiles change to that range's figures.
    let after = &seen["picked"];
    assert_eq!(
        (date(&after["range"]["from"]), date(&after["range"]["to"])),
        picked
    );
    assert_tiles(
        after,
        &expected_tiles(&days, picked.0, picked.1),
        "picked range",
    );
    assert_ne!(initial["tiles"], after["tiles"]);
    // ... and every chart over time shows the picked days.
    let picked_days: Vec<Value> = (0..=(picked.1 - picked.0).num_days())
        .map(|i| Value::from((picked.0 + chrono::Duration::days(i)).to_string()))
        .collect();
    for chart in ["active_users", "traffic", "sessions_by", "conversion_by"] {
        assert_eq!(
            after["charts"][chart]["labels"],
            Value::Array(picked_days.clone()),
            "{chart}"
        );
    }

    // All of history: the funnel, the top pages and every retention cell are gold's.
    let all = &seen["all"];
    assert_eq!(all["range"]["from"], Value::from(dates[0].to_string()));
    let mut funnel: BTreeMap<i32, i64> = BTreeMap::new();
    for b in rows(&lake, Table::FunnelDaily).await {
        let (index, users) = (
            b["step_index"].as_primitive::<Int32Type>(),
            b["users"].as_primitive::<Int64Type>(),
        );
        for i in 0..b.num_rows() {
            *funnel.entry(index.value(i)).or_default() += users.value(i);
        }
    }
    let shown: Vec<i64> = all["charts"]["funnel"]["datasets"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(shown, funnel.into_values().collect::<Vec<_>>());
    let mut pages: HashMap<String, i64> = HashMap::new();
    for b in rows(&lake, Table::PageDaily).await {
        let (path, views) = (
            b["page_path"].as_string::<i32>(),
            b["page_views"].as_primitive::<Int64Type>(),
        );
        for i in 0..b.num_rows() {
            *pages.entry(path.value(i).to_string()).or_default() += views.value(i);
        }
    }
    let top = all["lists"]["top_pages"].as_array().unwrap();
    assert_eq!(top.len(), 10);
    for row in top {
        let page = row[0].as_str().unwrap();
        assert_eq!(row[1].as_i64(), Some(pages[page]), "page views of {page}");
        assert!(
            pages.values().filter(|v| **v > pages[page]).count() < 10,
            "{page} is in the top 10"
        );
    }
    let mut retention = Vec::new();
    for b in rows(&lake, Table::RetentionWeekly).await {
        let week = b["cohort_week"].as_primitive::<Date32Type>();
        let (index, active) = (
            b["week_index"].as_primitive::<Int32Type>(),
            b["active_users"].as_primitive::<Int64Type>(),
        );
        for i in 0..b.num_rows() {
            retention.push((
                from_days(week.value(i)).to_string(),
                index.value(i) as i64,
                active.value(i),
            ));
        }
    }
    retention.sort();
    let mut cells: Vec<(String, i64, i64)> = all["retention"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["cohort"].as_str().unwrap().to_string(),
                c["week"].as_i64().unwrap(),
                c["active"].as_i64().unwrap(),
            )
        })
        .collect();
    cells.sort();
    assert!(retention.len() > 3, "{} retention cells", retention.len());
    assert_eq!(cells, retention);
    // The breakdown by traffic source has as many sessions per day as gold.
    let by_source = &all["charts"]["sessions_by"];
    for (i, label) in by_source["labels"].as_array().unwrap().iter().enumerate() {
        let sessions: f64 = by_source["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["data"][i].as_f64().unwrap())
            .sum();
        assert_eq!(
            sessions,
            days[&date(label)]["sessions"],
            "sessions on {label}"
        );
    }
    assert!(
        seen["location_hash"]
            .as_str()
            .unwrap()
            .ends_with("by=source")
    );

    // Readable: no text under 12 px, on a phone no sideways scrolling.
    let smallest = initial["text_sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .fold(f64::MAX, f64::min);
    assert!(smallest >= 12.0, "text of {smallest} px");
    assert!(initial["chart_font_size"].as_f64().unwrap() >= 12.0);
    let phone = &seen["phone"];
    assert!(
        phone["scroll_width"].as_f64() <= phone["viewport_width"].as_f64(),
        "a phone scrolls sideways: {phone}"
    );

    // The README's screenshots: refreshed with CLICKSTREAM_UPDATE_SCREENSHOT=1.
    let out_dir = match std::env::var_os("CLICKSTREAM_UPDATE_SCREENSHOT") {
        Some(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs"),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
    };
    std::fs::create_dir_all(&out_dir).unwrap();
    for name in ["dashboard-desktop.png", "dashboard-phone.png"] {
        let png = std::fs::read(shots.join(name)).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 20_000,
            "{name} is {} bytes",
            png.len()
        );
        std::fs::write(out_dir.join(name), png).unwrap();
    }
}
