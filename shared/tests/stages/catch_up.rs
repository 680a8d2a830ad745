//! Catch-up and watermarks: silver and gold process every upstream commit not yet processed,
//! whatever notifications arrive, and two writers at once neither lose nor double anything.

use chrono::{Duration, Utc};
use clickstream::bronze::BronzeOptions;
use clickstream::functions::{self, commit_event};
use clickstream::gold::parse_funnel;
use clickstream::lake::{Lake, Table};

use crate::pipeline::{
    assert_gold_equals_from_scratch, batch, count, events, lake, lose_newest_commit, silver_ids,
};

/// Writes `n` bronze commits of 5 events each (one invalid), without running silver.
async fn bronze_commits(lake: &Lake, n: usize) -> Vec<i64> {
    let at = Utc::now() - Duration::hours(5);
    let mut versions = Vec::new();
    for c in 0..n {
        let mut values = events(&format!("c{c}-"), 4, at + Duration::minutes(10 * c as i64));
        values.push(b"{broken".to_vec());
        let trigger = batch(0, c as i64 * 10, values);
        let out = functions::bronze_writer(lake, &trigger, &BronzeOptions::default())
            .await
            .unwrap();
        versions.push(out[0].version.unwrap());
    }
    versions
}

#[tokio::test]
async fn one_invocation_catches_up_several_commits() {
    let (_dir, lake) = lake();
    let versions = bronze_commits(&lake, 4).await;
    // Only the last commit is notified: silver takes all four in one commit per table.
    let out =
        functions::silver_transformer(&lake, &commit_event(&lake, Table::Bronze, versions[3]))
            .await
            .unwrap();
    assert_eq!(out.len(), 1);
    // From version 0, the commit that created bronze.
    assert_eq!(out[0].bronze_versions, Some((0, versions[3])));
    assert_eq!(
        (out[0].input, out[0].valid, out[0].quarantined),
        (20, 16, 4)
    );
    assert_eq!(count(&lake, Table::Silver).await, 16);
    assert_eq!(count(&lake, Table::Quarantine).await, 4);
    let silver = lake.table(Table::Silver).await.unwrap();
    assert_eq!(silver.version(), Some(1), "table creation plus one commit");

    // Gold, told of the silver commit, catches up too.
    let funnel = parse_funnel(None);
    let sv = out[0].silver_version.unwrap();
    let gold = functions::gold_transformer(&lake, &commit_event(&lake, Table::Silver, sv), &funnel)
        .await
        .unwrap();
    assert_eq!(gold[0].new_events, 16);
    assert_gold_equals_from_scratch(&lake).await;
}

#[tokio::test]
async fn duplicated_reordered_and_covered_notifications_change_nothing() {
    let (_dir, lake) = lake();
    let versions = bronze_commits(&lake, 3).await;
    let notify = async |v: i64| {
        functions::silver_transformer(&lake, &commit_event(&lake, Table::Bronze, v))
            .await
            .unwrap()
    };
    // Newest first: it covers the older ones.
    let first = notify(versions[2]).await;
    assert_eq!(first[0].valid, 12);
    for v in [versions[0], versions[1], versions[2], versions[2]] {
        let again = notify(v).await;
        assert!(
            again[0].already_processed,
            "notification for {v} after catch-up"
        );
        assert_eq!(again[0].valid + again[0].quarantined, 0);
    }
    assert_eq!(count(&lake, Table::Silver).await, 12);
    assert_eq!(count(&lake, Table::Quarantine).await, 3);

    // Gold: the same for silver commit notifications.
    let funnel = parse_funnel(None);
    let sv = first[0].silver_version.unwrap();
    let event = commit_event(&lake, Table::Silver, sv);
    let g1 = functions::gold_transformer(&lake, &event, &funnel)
        .await
        .unwrap();
    let g2 = functions::gold_transformer(&lake, &event, &funnel)
        .await
        .unwrap();
    let older = functions::gold_transformer(&lake, &commit_event(&lake, Table::Silver, 0), &funnel)
        .await
        .unwrap();
    assert!(!g1[0].already_processed);
    assert!(g2[0].already_processed && older[0].already_processed);
    assert_gold_equals_from_scratch(&lake).await;
}

#[tokio::test]
async fn rows_of_a_failed_run_are_processed_by_the_next() {
    let (_dir, lake) = lake();
    // An ingest wrote its bronze commit and then failed before silver ran.
    let stranded = bronze_commits(&lake, 1).await;
    assert_eq!(count(&lake, Table::Silver).await, 0);
    // A later, unrelated batch: its silver run also picks up the stranded commit.
    let at = Utc::now() - Duration::hours(1);
    let later = batch(1, 0, events("later-", 3, at));
    let bronze = functions::bronze_writer(&lake, &later, &BronzeOptions::default())
        .await
        .unwrap();
    let v = bronze[0].version.unwrap();
    assert!(v > stranded[0]);
    let out = functions::silver_transformer(&lake, &commit_event(&lake, Table::Bronze, v))
        .await
        .unwrap();
    assert_eq!(out[0].bronze_versions, Some((0, v)));
    assert_eq!(out[0].valid, 4 + 3);
    assert_eq!(count(&lake, Table::Silver).await, 7);
}

#[tokio::test]
async fn a_crash_between_the_quarantine_and_silver_commits_quarantines_nothing_twice() {
    let (dir, lake) = lake();
    let bronze_version = bronze_commits(&lake, 1).await[0];
    let notify = |lake: Lake| async move {
        functions::silver_transformer(&lake, &commit_event(&lake, Table::Bronze, bronze_version))
            .await
            .unwrap()
    };
    notify(lake).await;
    // The silver/events commit is lost, as if the process died after quarantine's commit: its
    // data file stays, unreferenced.
    lose_newest_commit(dir.path(), Table::Silver, "\"appId\":\"bronze\"");

    // A fresh process (no warm state) finds quarantine ahead of silver.
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    assert_eq!(count(&lake, Table::Silver).await, 0);
    let again = notify(lake.clone()).await;
    assert_eq!(again[0].valid, 4);
    assert_eq!(count(&lake, Table::Silver).await, 4);
    assert_eq!(
        count(&lake, Table::Quarantine).await,
        1,
        "the invalid record is quarantined once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_silver_writers_at_once_write_each_event_once() {
    let (dir, lake) = lake();
    let at = Utc::now() - Duration::hours(3);
    // Overlapping event_ids across the bronze commits: c0..c39 twice, in different commits; and
    // two invalid records in each, which both writers try to quarantine.
    for (partition, offset) in [(0, 0), (1, 0), (0, 100), (1, 100)] {
        let mut values = events("ov-", 40, at);
        values.extend([b"not json".to_vec(), b"{\"event_id\": 1}".to_vec()]);
        functions::bronze_writer(
            &lake,
            &batch(partition, offset, values),
            &BronzeOptions::default(),
        )
        .await
        .unwrap();
    }
    let latest = lake.table(Table::Bronze).await.unwrap().version().unwrap() as i64;
    let outcomes = crate::pipeline::two_silver_processes_at_once(dir.path(), latest).await;
    let written: usize = outcomes.iter().map(|o| o.valid).sum();
    assert_eq!(written, 40, "each event_id written by exactly one writer");
    assert_eq!(count(&lake, Table::Silver).await, 40);
    assert_eq!(silver_ids(&lake).await.len(), 40);
    assert_eq!(
        count(&lake, Table::Quarantine).await,
        8,
        "each invalid record quarantined once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gold_writers_at_once_leave_gold_exact() {
    let (dir, lake) = lake();
    let at = Utc::now() - Duration::hours(30);
    for c in 0..3 {
        let values = events(&format!("g{c}-"), 30, at + Duration::hours(c * 7));
        functions::bronze_writer(&lake, &batch(0, c * 100, values), &BronzeOptions::default())
            .await
            .unwrap();
    }
    let latest = lake.table(Table::Bronze).await.unwrap().version().unwrap() as i64;
    let out = functions::silver_transformer(&lake, &commit_event(&lake, Table::Bronze, latest))
        .await
        .unwrap();
    let sv = out[0].silver_version.unwrap();
    let writers = (0..2).map(|_| {
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        tokio::spawn(async move {
            functions::gold_transformer(
                &lake,
                &commit_event(&lake, Table::Silver, sv),
                &parse_funnel(None),
            )
            .await
        })
    });
    for w in futures::future::join_all(writers).await {
        w.unwrap()
            .expect("both gold writers succeed (one may find nothing to do)");
    }
    assert_gold_equals_from_scratch(&lake).await;
}
