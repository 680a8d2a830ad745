//! Bronze's appends through the kernel (clickstream::appender): what they leave in the log for the
//! next process, and what a writer that lost a race sees.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{Duration, Utc};
use clickstream::Error;
use clickstream::bronze::{MAX_REDELIVERY_REWIND, ingest_kafka};
use clickstream::lake::{Lake, Table};
use clickstream::trigger::{KafkaMessage, kafka_event};
use serde_json::Value;

use crate::pipeline::{count, event, lake, produced_ms};

fn one_record(partition: i32, offset: i64) -> aws_lambda_events::event::kafka::KafkaEvent {
    let t = Utc::now() - Duration::hours(1);
    let message = KafkaMessage {
        partition,
        offset,
        timestamp_ms: produced_ms(offset),
        value: Some(event(
            &format!("e{partition}-{offset}"),
            "u",
            t,
            "page_view",
        )),
        ..Default::default()
    };
    kafka_event("test:9092", "clickstream-events", &[message])
}

fn log_file(lake: &Lake, name: &str) -> std::path::PathBuf {
    lake.root()
        .to_file_path()
        .unwrap()
        .join(Table::Bronze.path())
        .join("_delta_log")
        .join(name)
}

#[tokio::test]
async fn appends_leave_checksums_and_checkpoints_that_a_new_process_starts_from() {
    let (dir, lake) = lake();
    let mut last = 0;
    for offset in 0..12 {
        let outcome = ingest_kafka(&lake, &one_record(offset as i32 % 3, offset), None)
            .await
            .unwrap();
        assert_eq!(outcome.written, 1);
        last = outcome.version.unwrap();
    }
    // The version checksum of the last commit holds every partition's `txn`.
    let crc: Value = serde_json::from_slice(
        &std::fs::read(log_file(&lake, &format!("{last:020}.crc"))).unwrap(),
    )
    .unwrap();
    let txns = crc["setTransactions"].as_array().expect("setTransactions");
    for partition in 0..3 {
        let app_id = format!("kafka:test:9092:clickstream-events:{partition}");
        let txn = txns.iter().find(|t| t["appId"] == app_id.as_str());
        assert_eq!(txn.expect(&app_id)["version"], 9 + partition);
    }
    // Every delta.checkpointInterval (10) versions, a checkpoint.
    let hint: Value =
        serde_json::from_slice(&std::fs::read(log_file(&lake, "_last_checkpoint")).unwrap())
            .unwrap();
    assert_eq!(hint["version"], 10);

    // A crash between the last commit and its checksum leaves the one before as the newest.
    std::fs::remove_file(log_file(&lake, &format!("{last:020}.crc"))).unwrap();
    // A new process (no warm state) skips what is written and adds what is not.
    let fresh = Lake::open(dir.path().to_str().unwrap()).unwrap();
    for offset in 0..12 {
        let outcome = ingest_kafka(&fresh, &one_record(offset as i32 % 3, offset), None)
            .await
            .unwrap();
        assert_eq!((outcome.written, outcome.already_written), (0, 1));
    }
    let outcome = ingest_kafka(&fresh, &one_record(0, 12), None)
        .await
        .unwrap();
    assert_eq!(outcome.written, 1);
    // delta-rs reads what the kernel wrote.
    assert_eq!(count(&fresh, Table::Bronze).await, 13);

    // The data files are Snappy-compressed, as delta-rs writes them (the kernel's own writer
    // does not compress).
    let table_dir = lake
        .root()
        .to_file_path()
        .unwrap()
        .join(Table::Bronze.path());
    let data_files: Vec<_> = std::fs::read_dir(table_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert_eq!(data_files.len(), 13);
    for file in data_files {
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(
            std::fs::File::open(&file).unwrap(),
        )
        .unwrap();
        let metadata = parquet::file::reader::FileReader::metadata(&reader);
        for column in metadata.row_group(0).columns() {
            assert_eq!(
                column.compression(),
                parquet::basic::Compression::SNAPPY,
                "{file:?}"
            );
        }
    }
}

#[tokio::test]
async fn an_append_behind_another_writer_loses_the_race_and_the_retry_skips_its_rows() {
    let (dir, lake) = lake();
    ingest_kafka(&lake, &one_record(0, 0), None).await.unwrap();
    let other = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let mut behind = other.appender(Table::Bronze).await.unwrap();
    ingest_kafka(&lake, &one_record(0, 1), None).await.unwrap();

    // An appender still at the version before that commit cannot commit over it.
    let batch = clickstream::bronze::raw_batch(
        &[KafkaMessage {
            partition: 0,
            offset: 1,
            value: Some(b"{}".to_vec()),
            ..Default::default()
        }],
        "clickstream-events",
    )
    .unwrap();
    let txns = [("kafka:clickstream-events:0".to_string(), 1)];
    let lost = behind
        .append(&other, batch, &txns, serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(lost.is_lost_race(), "{lost}");

    // Through the stage, the same record is found written.
    let outcome = ingest_kafka(&other, &one_record(0, 1), None).await.unwrap();
    assert_eq!((outcome.written, outcome.already_written), (0, 1));
    assert_eq!(count(&other, Table::Bronze).await, 2);
}

#[tokio::test]
async fn after_maintenance_the_next_append_writes_a_checksum_again() {
    let (dir, lake) = lake();
    for offset in 0..3 {
        ingest_kafka(&lake, &one_record(0, offset), None)
            .await
            .unwrap();
    }
    // With VACUUM deleting what OPTIMIZE replaced (its two commits), and without (none).
    for retention in [Duration::zero(), Duration::days(7)] {
        clickstream::maintenance::maintain(&lake, retention)
            .await
            .unwrap();
        // The process that appends next is warm, or new (as a function's init prepares it).
        for appender in [
            lake.clone(),
            Lake::open(dir.path().to_str().unwrap()).unwrap(),
        ] {
            appender.appender(Table::Bronze).await.unwrap();
            let offset = count(&lake, Table::Bronze).await as i64;
            let outcome = ingest_kafka(&appender, &one_record(0, offset), None)
                .await
                .unwrap();
            let version = outcome.version.unwrap();
            let crc = log_file(&lake, &format!("{version:020}.crc"));
            assert!(crc.exists(), "no checksum at {version}");
        }
    }
}

#[tokio::test]
async fn maintenance_removes_log_files_past_their_retention() {
    let (_dir, lake) = lake();
    for offset in 0..12 {
        ingest_kafka(&lake, &one_record(0, offset), None)
            .await
            .unwrap();
    }
    // A first run compacts, so the next has nothing to compact or vacuum and commits nothing
    // (delta-rs's writers remove expired log files after each of their commits).
    clickstream::maintenance::maintain(&lake, Duration::days(7))
        .await
        .unwrap();
    // Commits 0 to 10 (and their checksums) as if written 40 days ago.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 24 * 3600);
    for version in 0..=10 {
        for name in [format!("{version:020}.json"), format!("{version:020}.crc")] {
            if let Ok(file) = std::fs::File::options()
                .write(true)
                .open(log_file(&lake, &name))
            {
                file.set_modified(old).unwrap();
            }
        }
    }
    let before = std::fs::read_dir(log_file(&lake, "")).unwrap().count();
    clickstream::maintenance::maintain(&lake, Duration::days(7))
        .await
        .unwrap();
    assert!(!log_file(&lake, &format!("{:020}.json", 0)).exists());
    assert!(!log_file(&lake, &format!("{:020}.json", 9)).exists());
    assert!(log_file(&lake, &format!("{:020}.json", 11)).exists());
    assert!(std::fs::read_dir(log_file(&lake, "")).unwrap().count() < before);
    // The table still opens, and a new process still finds what is written.
    assert_eq!(count(&lake, Table::Bronze).await, 12);
    let fresh = Lake::open(lake.root().to_file_path().unwrap().to_str().unwrap()).unwrap();
    let again = ingest_kafka(&fresh, &one_record(0, 11), None)
        .await
        .unwrap();
    assert_eq!((again.written, again.already_written), (0, 1));
}

/// Silver's writer checkpoints every 10 commits; with log files past their retention before that
/// checkpoint, delta-rs's post-commit hook would delete them, which only maintenance's role may
/// do (infra/main.tf). The writer leaves them; maintenance removes them.
#[tokio::test]
async fn writers_leave_expired_log_files_to_maintenance() {
    let (_dir, lake) = lake();
    let silver_log = |version: i64| {
        lake.root()
            .to_file_path()
            .unwrap()
            .join(Table::Silver.path())
            .join("_delta_log")
            .join(format!("{version:020}.json"))
    };
    let mut offset = 0;
    let mut silver_commit = || {
        offset += 1;
        let lake = &lake;
        async move {
            ingest_kafka(lake, &one_record(0, offset), None)
                .await
                .unwrap();
            clickstream::silver::catch_up(lake).await.unwrap();
        }
    };
    while !silver_log(11).exists() {
        silver_commit().await;
    }
    // Everything so far, the checkpoint at 10 included, as if written 40 days ago.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 24 * 3600);
    let log = silver_log(0).parent().unwrap().to_path_buf();
    for entry in std::fs::read_dir(&log).unwrap() {
        let file = std::fs::File::options()
            .write(true)
            .open(entry.unwrap().path())
            .unwrap();
        file.set_modified(old).unwrap();
    }
    // Past the next checkpoint (20), where the post-commit hook would clean up.
    while !silver_log(21).exists() {
        silver_commit().await;
    }
    assert!(
        silver_log(0).exists(),
        "a writer removed an expired log file"
    );
    clickstream::maintenance::maintain(&lake, Duration::days(7))
        .await
        .unwrap();
    assert!(
        !silver_log(0).exists(),
        "maintenance left an expired log file"
    );
    assert!(silver_log(21).exists());
}

/// A recreated topic restarts its offsets at 0: its records are refused loudly, not skipped as
/// written, and nothing of the batch lands; with a new generation named they land. A mapping
/// pointed at another cluster starts watermarks of its own.
#[tokio::test]
async fn a_recreated_topic_is_refused_until_a_new_generation_is_named() {
    let (_dir, lake) = lake();
    for offset in 0..5 {
        ingest_kafka(&lake, &one_record(0, offset), None)
            .await
            .unwrap();
    }
    // The topic again from offset 0: produced after everything bronze wrote.
    let recreated = |offset: i64| {
        let mut event = one_record(0, offset);
        for record in event.records.values_mut().flatten() {
            record.timestamp.0 += chrono::Duration::days(1);
            record.value = Some(BASE64.encode(event_json(&format!("new-{offset}"))));
        }
        event
    };
    let err = ingest_kafka(&lake, &recreated(0), None).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::KafkaSourceReset {
                offset: 0,
                watermark: 4,
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("BRONZE_KAFKA_GENERATION"), "{err}");
    assert_eq!(count(&lake, Table::Bronze).await, 5);

    let outcome = ingest_kafka(&lake, &recreated(0), Some("2")).await.unwrap();
    assert_eq!(outcome.written, 1);
    // The same record redelivered in the new generation is skipped, as before.
    let again = ingest_kafka(&lake, &recreated(0), Some("2")).await.unwrap();
    assert_eq!((again.written, again.already_written), (0, 1));

    // Another cluster with the same topic: its own watermarks.
    let mut elsewhere = one_record(0, 3);
    elsewhere.bootstrap_servers = Some("other:9092".into());
    assert_eq!(
        ingest_kafka(&lake, &elsewhere, None).await.unwrap().written,
        1
    );

    // Offsets far below the watermark, even with old timestamps, are no redelivery.
    ingest_kafka(&lake, &one_record(1, MAX_REDELIVERY_REWIND + 10), None)
        .await
        .unwrap();
    let err = ingest_kafka(&lake, &one_record(1, 5), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("further than a redelivery goes"),
        "{err}"
    );
    assert_eq!(count(&lake, Table::Bronze).await, 8);
}

fn event_json(id: &str) -> Vec<u8> {
    event(id, "u", Utc::now() - Duration::hours(1), "page_view")
}
