//! The dashboard and the report show what gold holds: the loaded figures, the page's headline
//! (written in the HTML) and the report's text are compared with the gold tables. Empty, one-day
//! and gappy lakes all render. The figures the page's script draws are checked in a browser
//! (the CLI's end-to-end `browser` test).

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Int64Type};
use chrono::{Duration, Utc};
use clickstream::bronze::BronzeOptions;
use clickstream::functions::{self, BronzeTrigger, commit_event};
use clickstream::gold::parse_funnel;
use clickstream::lake::{Lake, Table};
use clickstream::trigger::{KafkaMessage, kafka_event};
use clickstream_report::dashboard::{load, render_html, render_report};
use serde_json::json;

fn event(id: &str, user: &str, at: chrono::DateTime<Utc>, kind: &str, path: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event_id": id, "event_type": kind, "event_time": at.to_rfc3339(), "anonymous_id": user,
        "page_url": format!("https://s.example{path}"), "device_type": "mobile", "country": "DE",
        "referrer": "https://www.google.com/",
    }))
    .unwrap()
}

async fn lake_with(events: Vec<Vec<u8>>) -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    if events.is_empty() {
        return (dir, lake);
    }
    let messages: Vec<KafkaMessage> = events
        .into_iter()
        .enumerate()
        .map(|(i, v)| KafkaMessage {
            partition: 0,
            offset: i as i64,
            timestamp_ms: 0,
            key: None,
            value: Some(v),
            ..Default::default()
        })
        .collect();
    let trigger = BronzeTrigger::Kafka(kafka_event("t:9092", "t", &messages));
    let bronze = functions::bronze_writer(&lake, &trigger, &BronzeOptions::default())
        .await
        .unwrap();
    let silver = functions::silver_transformer(
        &lake,
        &commit_event(&lake, Table::Bronze, bronze[0].version.unwrap()),
    )
    .await
    .unwrap();
    functions::gold_transformer(
        &lake,
        &commit_event(&lake, Table::Silver, silver[0].silver_version.unwrap()),
        &parse_funnel(None),
    )
    .await
    .unwrap();
    (dir, lake)
}

/// `data-NAME="VALUE"` attributes of the elements that carry `marker`.
fn attrs(html: &str, marker: &str, name: &str) -> Vec<String> {
    html.split(marker)
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>').unwrap_or(rest.len())];
            let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
            Some(tag[start..start + tag[start..].find('"')?].to_string())
        })
        .collect()
}

fn tile(html: &str, metric: &str) -> f64 {
    let marker = format!("data-headline=\"{metric}\"");
    attrs(html, &marker, "data-value")[0].parse().unwrap()
}

async fn gold_rows(lake: &Lake, table: Table) -> Vec<RecordBatch> {
    let t = lake.table(table).await.unwrap();
    lake.read(&t, &[], None).await.unwrap()
}

#[tokio::test]
async fn empty_lake_renders() {
    let (_dir, lake) = lake_with(vec![]).await;
    let data = load(&lake, Default::default()).await.unwrap();
    let html = render_html(&data);
    assert!(html.contains("Gold is empty"));
    assert_eq!(attrs(&html, "<figure class=\"chart", "data-chart").len(), 7);
    assert!(
        html.contains("\"days\":[]"),
        "the page's figures are embedded"
    );
    assert!(render_report(&data, None).contains("No gold data"));
}

#[tokio::test]
async fn figures_equal_gold_with_a_gap_of_missing_days() {
    let today = Utc::now() - Duration::hours(2);
    let early = today - Duration::days(4);
    let mut events = Vec::new();
    for (i, (user, kind, path)) in [
        ("a", "page_view", "/"),
        ("a", "view_product", "/p/1"),
        ("b", "page_view", "/p/1"),
        ("c", "page_view", "/"),
    ]
    .iter()
    .enumerate()
    {
        events.push(event(
            &format!("e{i}"),
            user,
            early + Duration::minutes(i as i64),
            kind,
            path,
        ));
    }
    for (i, (user, kind, path)) in [
        ("a", "page_view", "/p/2"),
        ("d", "page_view", "/p/2"),
        ("d", "purchase", "/done"),
        ("d", "page_view", "/"),
    ]
    .iter()
    .enumerate()
    {
        events.push(event(
            &format!("t{i}"),
            user,
            today + Duration::minutes(i as i64),
            kind,
            path,
        ));
    }
    events.push(b"not json".to_vec());
    events.push(event("t0", "a", today, "page_view", "/p/2"));
    let (_dir, lake) = lake_with(events).await;
    let data = load(&lake, Default::default()).await.unwrap();
    let html = render_html(&data);

    // Headline tiles = the latest gold/daily_metrics row.
    let daily = gold_rows(&lake, Table::DailyMetrics).await;
    let mut rows: Vec<(i32, i64, i64, i64)> = Vec::new();
    for b in &daily {
        let d = b
            .column_by_name("date")
            .unwrap()
            .as_primitive::<Date32Type>();
        let col = |n: &str| {
            b.column_by_name(n)
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone()
        };
        let (dau, sessions, pv) = (col("dau"), col("sessions"), col("page_views"));
        for i in 0..b.num_rows() {
            rows.push((d.value(i), dau.value(i), sessions.value(i), pv.value(i)));
        }
    }
    rows.sort();
    assert_eq!(rows.len(), 2, "two days with a gap between them");
    // The headline is the latest complete day (before the UTC date the page was made on); the
    // day in progress is shown apart, and a day after a gap is compared with nothing.
    let today_date = clickstream::lake::to_days(data.generated_at.date_naive());
    let (complete, in_progress): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.0 < today_date);
    let latest = complete.last().copied().unwrap_or(&rows[1]);
    assert_eq!(tile(&html, "dau"), latest.1 as f64);
    assert_eq!(tile(&html, "sessions"), latest.2 as f64);
    assert_eq!(tile(&html, "page_views"), latest.3 as f64);
    let headline_date = clickstream::lake::from_days(latest.0).to_string();
    assert_eq!(
        attrs(&html, "<h2", "data-headline-date"),
        std::slice::from_ref(&headline_date)
    );
    if let Some(today) = in_progress.last().filter(|t| t.0 != latest.0) {
        assert_eq!(
            attrs(&html, "<p class=\"partial\"", "data-dau"),
            [today.1.to_string()]
        );
        assert!(
            html.contains("no figures for the day before"),
            "a gap before it"
        );
    }

    // Top pages = page views summed over gold/page_daily; the page's daily figures sum to it.
    let mut pages = std::collections::BTreeMap::new();
    for b in gold_rows(&lake, Table::PageDaily).await {
        let p = b.column_by_name("page_path").unwrap().as_string::<i32>();
        let v = b
            .column_by_name("page_views")
            .unwrap()
            .as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            *pages.entry(p.value(i).to_string()).or_insert(0i64) += v.value(i);
        }
    }
    assert_eq!(data.top_pages.len(), pages.len());
    for (k, v) in &data.top_pages {
        assert_eq!(pages[k], *v, "page {k}");
        let daily: i64 = data
            .pages_daily
            .iter()
            .filter(|p| &p.page_path == k)
            .map(|p| p.page_views)
            .sum();
        assert_eq!(daily, *v, "page {k} per day");
    }
    // Sessions by device, country and source per day add up to each day's sessions.
    for day in &data.days {
        for dimension in ["device", "country", "source"] {
            let n: i64 = data
                .sessions_by
                .iter()
                .filter(|s| s.date == day.date && s.dimension == dimension)
                .map(|s| s.sessions)
                .sum();
            assert_eq!(n, day.sessions, "{dimension} on {}", day.date);
        }
        let binned: i64 = data
            .duration_daily
            .iter()
            .filter(|b| b.date == day.date)
            .flat_map(|b| b.counts.iter())
            .sum();
        assert_eq!(binned, day.sessions, "duration bins on {}", day.date);
    }
    let sessions: i64 = data.days.iter().map(|d| d.sessions).sum();
    assert_eq!(data.sources, [("www.google.com".to_string(), sessions)]);
    // Reconciliation counts.
    assert!(
        html.contains("<span data-count=\"silver\">8</span>"),
        "8 valid events"
    );
    assert!(html.contains("<span data-count=\"duplicates\">1</span>"));
    assert!(html.contains("data-quarantined=\"not_json\""));
    // The pipeline panel: one ingest day (today), its counts from the tables.
    let health: Vec<&clickstream::health::Day> = data.health.days.iter().collect();
    assert_eq!(health.len(), 1, "{health:?}");
    let today = health[0];
    assert_eq!(today.date, data.generated_at.date_naive());
    assert_eq!(
        (today.silver, today.duplicates, today.quarantined_total()),
        (8, 1, data.quarantined.values().sum::<i64>() as u64)
    );
    assert_eq!(
        today.bronze,
        today.silver + today.duplicates + today.quarantined_total()
    );
    assert!(html.contains(&format!(
        "<tr data-health-day=\"{}\"><td>{}</td><td data-count=\"bronze\">{}</td>",
        today.date, today.date, today.bronze
    )));
    let newest = data.health.freshness.newest_event_time.unwrap();
    assert_eq!(
        Some(newest.timestamp_millis()),
        data.latest_event_time.map(|t| t.timestamp_millis())
    );
    // The report shows the same headline.
    let report = render_report(&data, None);
    assert!(report.contains(&format!("Clickstream report for {headline_date}")));
    let dau_line = report.lines().find(|l| l.starts_with("dau ")).unwrap();
    assert_eq!(
        dau_line.split_whitespace().nth(1).unwrap(),
        latest.1.to_string()
    );
    // A chosen range shows only its days.
    let first_day = clickstream::lake::from_days(rows[0].0);
    let range = clickstream_report::dashboard::DateRange {
        from: None,
        to: Some(first_day),
    };
    let early = load(&lake, range).await.unwrap();
    assert_eq!(early.days.len(), 1);
    assert_eq!(early.days[0].dau, rows[0].1);
    assert!(early.sessions_by.iter().all(|s| s.date == first_day));
    let earlier = chrono::NaiveDate::from_num_days_from_ce_opt(0).unwrap();
    assert!(render_report(&data, Some(earlier)).contains("No gold data"));
}

#[tokio::test]
async fn one_day_lake_renders() {
    let t = Utc::now() - Duration::hours(3);
    let (_dir, lake) = lake_with(vec![event("x", "u", t, "page_view", "/")]).await;
    let data = load(&lake, Default::default()).await.unwrap();
    let html = render_html(&data);
    assert_eq!(tile(&html, "dau"), 1.0);
    // Three hours ago is today (a day in progress) unless the test runs before 03:00 UTC.
    if data.is_complete(&data.days[0]) {
        assert!(
            html.contains("latest complete day") && html.contains("no figures for the day before")
        );
    } else {
        assert!(html.contains("no complete day yet") && html.contains("so far today"));
        assert!(
            !html.contains("class=\"partial\""),
            "the partial day is the headline"
        );
    }
}

/// A lake whose latest day holds a few events past midnight (as the demo's does) headlines the
/// day before, complete, compared with the day before it; the few events are shown apart.
#[tokio::test]
async fn a_few_events_past_midnight_do_not_make_the_headline() {
    let midnight = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let mut events = Vec::new();
    for (day, users) in [(2, 4), (1, 3)] {
        for u in 0..users {
            let at = midnight - Duration::days(day) + Duration::hours(12);
            events.push(event(
                &format!("d{day}u{u}"),
                &format!("u{u}"),
                at,
                "page_view",
                "/",
            ));
        }
    }
    let just_now = (midnight + Duration::minutes(1)).min(Utc::now());
    events.push(event("late", "u0", just_now, "page_view", "/"));
    let (_dir, lake) = lake_with(events).await;
    let data = load(&lake, Default::default()).await.unwrap();
    let html = render_html(&data);
    let yesterday = (midnight - Duration::days(1)).date_naive().to_string();
    assert_eq!(attrs(&html, "<h2", "data-headline-date"), [yesterday]);
    assert_eq!(tile(&html, "dau"), 3.0);
    assert!(
        html.contains("-25.0% vs the day before"),
        "3 users against 4"
    );
    assert_eq!(attrs(&html, "<p class=\"partial\"", "data-dau"), ["1"]);
    let report = render_report(&data, None);
    assert!(report.contains("(latest complete day)") && report.contains("so far (in progress)"));
}

/// The retention cohorts the heatmap draws are gold/retention_weekly as the exporter computes it:
/// a row per first-seen week, a cell per week after it with the cohort's active users.
#[tokio::test]
async fn retention_cohorts_equal_the_retention_table() {
    let now = Utc::now() - Duration::hours(1);
    let mut events = Vec::new();
    for (user, days_ago) in [
        ("a", 20),
        ("a", 13),
        ("a", 1),
        ("b", 20),
        ("c", 13),
        ("c", 6),
        ("d", 6),
    ] {
        let id = format!("{user}{days_ago}");
        events.push(event(
            &id,
            user,
            now - Duration::days(days_ago),
            "page_view",
            "/",
        ));
    }
    let (_dir, lake) = lake_with(events).await;
    let cells = clickstream::gold::retention::refresh(&lake).await.unwrap();
    assert!(cells > 0);
    let data = load(&lake, Default::default()).await.unwrap();
    let mut expected = Vec::new();
    for b in gold_rows(&lake, Table::RetentionWeekly).await {
        let week = b
            .column_by_name("cohort_week")
            .unwrap()
            .as_primitive::<Date32Type>();
        let index = b
            .column_by_name("week_index")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int32Type>();
        let active = b
            .column_by_name("active_users")
            .unwrap()
            .as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            let week = clickstream::lake::from_days(week.value(i)).to_string();
            expected.push((
                week,
                index.value(i).to_string(),
                active.value(i).to_string(),
            ));
        }
    }
    expected.sort();
    let mut shown: Vec<_> = data
        .retention
        .iter()
        .flat_map(|c| {
            c.active
                .iter()
                .enumerate()
                .map(|(w, a)| (c.week.to_string(), w.to_string(), a.to_string()))
        })
        .collect();
    shown.sort();
    assert_eq!(shown, expected);
    assert_eq!(expected.len(), cells);
    assert!(
        render_report(&load(&lake, Default::default()).await.unwrap(), None)
            .contains("Weekly retention")
    );
}
