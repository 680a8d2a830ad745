//! Silver's compaction in passing: once a date holds [`COMPACT_AT_SMALL_FILES`] small files,
//! silver merges them after its commit, keeping every row, its dedup and gold exact, also with
//! two writers at once and in a fresh process.

use chrono::{DateTime, Duration, Utc};
use clickstream::bronze::BronzeOptions;
use clickstream::functions::{self, commit_event};
use clickstream::lake::{Lake, Table, partition_date};
use clickstream::maintenance::COMPACT_AT_SMALL_FILES;

use crate::pipeline::{
    assert_gold_equals_from_scratch, assert_silver_files_carry_id_filters, batch, events, lake,
    lose_newest_commit, parquet_files_in, run, silver_ids, two_silver_processes_at_once,
};

/// Noon yesterday: every event of these tests falls on that one date.
fn yesterday_noon() -> DateTime<Utc> {
    (Utc::now() - Duration::days(1))
        .date_naive()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
}

/// silver/events' data files (their count) on the date of `at`.
async fn silver_files_on(lake: &Lake, at: DateTime<Utc>) -> usize {
    let date = arrow::datatypes::Date32Type::from_naive_date(at.date_naive());
    let silver = lake.table(Table::Silver).await.unwrap();
    silver
        .snapshot()
        .unwrap()
        .log_data()
        .iter()
        .filter(|f| partition_date(&f.partition_values_map(), "event_date") == Some(date))
        .count()
}

#[tokio::test]
async fn a_dates_small_files_are_compacted_and_keep_rows_dedup_and_gold() {
    let (dir, lake) = lake();
    let at = yesterday_noon();
    let commits = COMPACT_AT_SMALL_FILES + 4;
    for c in 0..commits {
        let values = events(&format!("s{c}-"), 5, at + Duration::minutes(10 * c as i64));
        assert_eq!(
            run(&lake, &batch(0, 10 * c as i64, values)).await,
            (5, 0, 0)
        );
    }
    let files = silver_files_on(&lake, at).await;
    assert!(
        files < COMPACT_AT_SMALL_FILES,
        "{commits} commits on one date leave {files} files: compacted on the way"
    );
    assert_eq!(silver_ids(&lake).await.len(), 5 * commits);
    assert_silver_files_carry_id_filters(&lake).await;
    assert_gold_equals_from_scratch(&lake).await;

    // A fresh process (no warm dedup index) still finds the first commits' events, now in the
    // compacted file, and counts them as duplicates.
    let fresh = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let resent = events("s0-", 5, at);
    assert_eq!(run(&fresh, &batch(1, 0, resent)).await, (0, 0, 5));
    assert_eq!(silver_ids(&fresh).await.len(), 5 * commits);
    assert_gold_equals_from_scratch(&fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_writers_at_once_when_a_compaction_is_due_write_each_event_once() {
    let (dir, lake) = lake();
    let at = yesterday_noon();
    // One small file short of a compaction.
    for c in 0..COMPACT_AT_SMALL_FILES - 1 {
        let values = events(&format!("w{c}-"), 3, at + Duration::minutes(10 * c as i64));
        run(&lake, &batch(0, 10 * c as i64, values)).await;
    }
    // Two more bronze commits, the second repeating the first's events, then two silver
    // processes at once.
    let late = at + Duration::hours(5);
    for partition in [1, 2] {
        functions::bronze_writer(
            &lake,
            &batch(partition, 0, events("x-", 6, late)),
            &BronzeOptions::default(),
        )
        .await
        .unwrap();
    }
    let latest = lake.table(Table::Bronze).await.unwrap().version().unwrap() as i64;
    let (mut written, mut duplicates, mut compacted) = (0, 0, 0);
    for o in two_silver_processes_at_once(dir.path(), latest).await {
        written += o.valid;
        duplicates += o.duplicates;
        compacted += o.compacted_files;
    }
    assert_eq!(
        written, 6,
        "each new event_id written by exactly one writer"
    );
    assert!(
        duplicates >= 6,
        "the repeated events are counted, not written"
    );
    assert!(compacted > 0, "a writer compacted the date's small files");
    let ids = silver_ids(&lake).await;
    assert_eq!(ids.len(), 3 * (COMPACT_AT_SMALL_FILES - 1) + 6);
    assert!(silver_files_on(&lake, at).await < COMPACT_AT_SMALL_FILES);

    // Gold catches up every silver commit, the compaction's too, and stays exact.
    let silver = lake.table(Table::Silver).await.unwrap().version().unwrap() as i64;
    let funnel = clickstream::gold::parse_funnel(None);
    functions::gold_transformer(&lake, &commit_event(&lake, Table::Silver, silver), &funnel)
        .await
        .unwrap();
    assert_gold_equals_from_scratch(&lake).await;
}

#[tokio::test]
async fn a_crash_during_a_compaction_loses_and_doubles_nothing() {
    let (dir, lake) = lake();
    let at = yesterday_noon();
    let commits = COMPACT_AT_SMALL_FILES;
    for c in 0..commits - 1 {
        let values = events(&format!("k{c}-"), 5, at + Duration::minutes(10 * c as i64));
        run(&lake, &batch(0, 10 * c as i64, values)).await;
    }
    // The commit that makes the date due, through bronze and silver only (gold has not seen
    // what follows, as it could not have if the process had died).
    let last = events("k-last-", 5, at + Duration::hours(4));
    let bronze = functions::bronze_writer(&lake, &batch(0, 1_000, last), &BronzeOptions::default())
        .await
        .unwrap();
    let bronze_version = bronze[0].version.unwrap();
    let silver =
        functions::silver_transformer(&lake, &commit_event(&lake, Table::Bronze, bronze_version))
            .await
            .unwrap();
    assert!(
        silver[0].compacted_files > 0,
        "the date was due for a compaction"
    );

    // The compaction's commit is lost, as if the process died after writing the merged files:
    // they stay in the table's folder, referenced by nothing.
    let compaction = lose_newest_commit(dir.path(), Table::Silver, "\"operation\":\"OPTIMIZE\"");
    assert_eq!(
        compaction,
        silver[0].silver_version.unwrap() + 1,
        "the compaction commits right after the append"
    );

    let folder = dir
        .path()
        .join(format!("silver/events/event_date={}", at.date_naive()));
    let on_disk = parquet_files_in(&folder);
    let fresh = Lake::open(dir.path().to_str().unwrap()).unwrap();
    assert!(
        on_disk > silver_files_on(&fresh, at).await,
        "the merged files are left on disk, outside the log"
    );

    // A fresh process reads each event once, counts a resent one as a duplicate, and compacts
    // again when it next writes to the date; gold stays exact.
    assert_eq!(silver_ids(&fresh).await.len(), 5 * commits);
    assert_eq!(
        run(&fresh, &batch(1, 0, events("k0-", 5, at))).await,
        (0, 0, 5)
    );
    let more = events("k-more-", 5, at + Duration::hours(5));
    assert_eq!(run(&fresh, &batch(1, 100, more)).await, (5, 0, 0));
    assert!(silver_files_on(&fresh, at).await < COMPACT_AT_SMALL_FILES);
    assert_eq!(silver_ids(&fresh).await.len(), 5 * (commits + 1));
    assert_gold_equals_from_scratch(&fresh).await;
}

#[tokio::test]
async fn maintenance_keeps_silvers_bloom_filters_and_a_fresh_process_its_dedup() {
    let (dir, lake) = lake();
    let at = yesterday_noon();
    for c in 0..3 {
        let values = events(&format!("m{c}-"), 40, at + Duration::minutes(100 * c));
        assert_eq!(run(&lake, &batch(0, 40 * c, values)).await, (40, 0, 0));
    }
    assert_eq!(silver_files_on(&lake, at).await, 3);
    clickstream::maintenance::maintain(&lake, Duration::zero())
        .await
        .unwrap();
    let fresh = Lake::open(dir.path().to_str().unwrap()).unwrap();
    assert_eq!(silver_files_on(&fresh, at).await, 1);
    assert_silver_files_carry_id_filters(&fresh).await;

    let mut resent = events("m1-", 3, at + Duration::minutes(100));
    resent.push(crate::pipeline::event("m-new", "u", at, "click"));
    assert_eq!(run(&fresh, &batch(1, 0, resent)).await, (1, 0, 3));
    assert_eq!(silver_ids(&fresh).await.len(), 121);
}
