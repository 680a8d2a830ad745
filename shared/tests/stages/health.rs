//! The health the tables show: gold's freshness, each stage's lag, and per day the records taken
//! in, quarantined (by reason), dropped as duplicates and late.

use chrono::{Duration, Utc};
use clickstream::functions::{self, BronzeTrigger};
use clickstream::health;
use clickstream::lake::Table;

use crate::pipeline::{batch, event, lake, run};

#[tokio::test]
async fn health_counts_each_stage_per_day_and_gold_freshness() {
    let (_dir, lake) = lake();
    let now = Utc::now();
    let empty = health::read(&lake, now, 7).await.unwrap();
    assert_eq!(empty.freshness.newest_event_time, None);
    assert!(empty.days.is_empty());
    assert!(empty.is_stale(std::time::Duration::from_secs(3600)));

    let newest = now - Duration::minutes(20);
    let first = batch(
        0,
        0,
        vec![
            event("h1", "u", newest - Duration::days(1), "page_view"),
            event("h2", "u", newest, "click"),
            event("h2", "u", newest, "click"),
            b"not json".to_vec(),
        ],
    );
    assert_eq!(run(&lake, &first).await, (2, 1, 1));

    let health = health::read(&lake, Utc::now(), 7).await.unwrap();
    let seen = health
        .freshness
        .newest_event_time
        .expect("gold holds events");
    // Delta's statistics keep milliseconds.
    assert_eq!(seen.timestamp_millis(), newest.timestamp_millis());
    let seconds = health.freshness.seconds.unwrap();
    assert!((1200.0..1300.0).contains(&seconds), "{seconds}");
    assert!(health.is_stale(std::time::Duration::from_secs(600)));
    assert!(!health.is_stale(std::time::Duration::from_secs(3600)));
    assert_eq!(
        (health.freshness.silver_behind, health.freshness.gold_behind),
        (0, 0)
    );

    assert_eq!(health.days.len(), 1, "{:?}", health.days);
    let today = &health.days[0];
    assert_eq!(today.date, Utc::now().date_naive());
    assert_eq!(today.bronze, 4);
    assert_eq!(today.silver, 2);
    assert_eq!(today.quarantined.len(), 1, "{:?}", today.quarantined);
    assert_eq!(today.quarantined_total(), 1);
    assert_eq!(today.duplicates, 1);
    assert_eq!(today.late, 1, "h1 is a day before h2 in the same batch");
    assert_eq!(today.quarantine_rate_percent(), Some(25.0));
}

#[tokio::test]
async fn freshness_shows_the_stages_that_are_behind() {
    let (_dir, lake) = lake();
    let at = Utc::now() - Duration::hours(1);
    let trigger: BronzeTrigger = batch(0, 0, vec![event("b1", "u", at, "click")]);
    functions::bronze_writer(&lake, &trigger, &Default::default())
        .await
        .unwrap();
    let behind = health::freshness(&lake, Utc::now()).await.unwrap();
    // Bronze's creation and its append.
    assert_eq!(behind.silver_behind, 2, "{behind:?}");
    assert_eq!(behind.newest_event_time, None);
    assert!(
        lake.existing_table(Table::Sessions)
            .await
            .unwrap()
            .is_none()
    );
}
