//! Maintenance on a real table with many small commits.

use arrow::array::{AsArray, RecordBatch};
use chrono::Utc;
use clickstream::bronze::ingest_kafka;
use clickstream::lake::{Lake, Table};
use clickstream::maintenance::maintain;
use clickstream::trigger::{KafkaMessage, kafka_event};

use crate::pipeline::parquet_files_in;

async fn sorted_sources(lake: &Lake) -> Vec<String> {
    let table = lake.table(Table::Bronze).await.unwrap();
    let batches: Vec<RecordBatch> = lake.read(&table, &["source"], None).await.unwrap();
    let mut all: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    all.sort();
    all
}

#[tokio::test]
async fn compacts_checkpoints_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    for i in 0..40 {
        let msg = KafkaMessage {
            partition: 0,
            offset: i,
            timestamp_ms: Utc::now().timestamp_millis(),
            key: None,
            value: Some(format!("{{\"n\":{i}}}").into_bytes()),
            ..Default::default()
        };
        ingest_kafka(&lake, &kafka_event("t:9092", "topic", &[msg]), None)
            .await
            .unwrap();
    }
    let before = sorted_sources(&lake).await;
    assert_eq!(before.len(), 40);
    let bronze = lake.table(Table::Bronze).await.unwrap();
    assert_eq!(bronze.snapshot().unwrap().log_data().num_files(), 40);

    let report = maintain(&lake, chrono::Duration::zero()).await.unwrap();
    let b = report.iter().find(|r| r.table == "bronze/events").unwrap();
    assert_eq!((b.files_before, b.files_after), (40, 1));
    assert_eq!(b.vacuumed, 40, "the 40 small files are gone from storage");

    let log = dir.path().join("bronze/events/_delta_log");
    assert!(log.join("_last_checkpoint").exists());
    let checkpoints = std::fs::read_dir(&log)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".checkpoint.")
        })
        .count();
    assert!(checkpoints >= 1);
    assert_eq!(parquet_files_in(&dir.path().join("bronze/events")), 1);
    assert_eq!(sorted_sources(&lake).await, before);
}

/// A file no commit names: an old one is what a lost race or a crash left and is deleted; a young
/// one may be a running writer's next commit and is kept, whatever the retention.
#[tokio::test]
async fn deletes_old_orphans_and_keeps_young_ones() {
    use clickstream::maintenance::ORPHAN_MIN_AGE_MINUTES;

    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let msg = KafkaMessage {
        partition: 0,
        offset: 0,
        timestamp_ms: Utc::now().timestamp_millis(),
        value: Some(b"{\"n\":0}".to_vec()),
        ..Default::default()
    };
    ingest_kafka(&lake, &kafka_event("t:9092", "topic", &[msg]), None)
        .await
        .unwrap();
    let folder = dir.path().join("bronze/events");
    let committed = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .unwrap();
    let old = folder.join("part-00000-lost-race-c000.snappy.parquet");
    let young = folder.join("part-00000-in-flight-c000.snappy.parquet");
    for orphan in [&old, &young] {
        std::fs::copy(&committed, orphan).unwrap();
    }
    let before_the_limit = std::time::SystemTime::now()
        - std::time::Duration::from_secs(60 * (ORPHAN_MIN_AGE_MINUTES as u64 + 5));
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(before_the_limit)
        .unwrap();

    let report = maintain(&lake, chrono::Duration::zero()).await.unwrap();
    let b = report.iter().find(|r| r.table == "bronze/events").unwrap();
    assert_eq!(b.vacuumed, 1, "{b:?}");
    assert!(!old.exists(), "the old orphan is deleted");
    assert!(young.exists(), "the young orphan is kept");
    assert!(committed.exists(), "the committed file is kept");
    assert_eq!(sorted_sources(&lake).await.len(), 1);
}
