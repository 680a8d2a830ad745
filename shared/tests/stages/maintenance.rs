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
