//! Landed files an attacker or an odd uploader would send: decompression bombs, files past the
//! limits, and keys with every character S3 allows.

use std::io::Write;

use arrow::array::AsArray;
use chrono::{Duration, Utc};
use clickstream::bronze::{BronzeOptions, LandedLimits};
use clickstream::functions::{self, BronzeTrigger};
use clickstream::lake::{Lake, Table};

use crate::pipeline::{count, event, lake, read_all};

/// The notification S3 sends for `key` (relative to the lake root) once it is stored.
fn notification(lake: &Lake, key: &str) -> BronzeTrigger {
    let size = 1;
    BronzeTrigger::Landed(clickstream::trigger::s3_put_event(
        lake.bucket(),
        &lake.object_key(key),
        size,
        "etag",
        Utc::now(),
    ))
}

/// Stores `bytes` at `key` in a directory lake, as an upload to S3 would.
fn store(dir: &std::path::Path, key: &str, bytes: &[u8]) {
    let path = dir.join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A 1 GiB-expanding bomb (gzip members of zeros, 1 MiB each) is refused at the record limit
/// as it streams: recorded once in bronze/failed_files, nothing written, the notification
/// succeeds however often it is redelivered.
#[tokio::test]
async fn a_decompression_bomb_is_recorded_once_and_nothing_is_written() {
    let (dir, lake) = lake();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0; 1 << 20]).unwrap();
    let bomb = gz.finish().unwrap().repeat(1024);
    store(dir.path(), "landing/bomb.jsonl.gz", &bomb);
    let landed = notification(&lake, "landing/bomb.jsonl.gz");
    for _ in 0..2 {
        let outcomes = functions::bronze_writer(&lake, &landed, &BronzeOptions::default())
            .await
            .unwrap();
        let why = outcomes[0].unreadable.as_deref().unwrap_or_default();
        assert!(why.contains("line 1 is over the record limit"), "{why:?}");
    }
    let failed = read_all(&lake, Table::FailedFiles).await;
    assert_eq!(failed.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    let size = failed[0].column_by_name("size_bytes").unwrap();
    let size = size.as_primitive::<arrow::datatypes::Int64Type>().value(0);
    assert_eq!(size, bomb.len() as i64);
    assert_eq!(count(&lake, Table::Bronze).await, 0);
}

/// A file past the decompressed limit is refused before any of its chunks is written, even
/// when the limit lies beyond the first chunk.
#[tokio::test]
async fn a_file_past_a_limit_is_refused_before_any_chunk_is_written() {
    let (dir, lake) = lake();
    let t = Utc::now() - Duration::hours(1);
    let line = String::from_utf8(event("e", "u", t, "click")).unwrap();
    let lines = format!("{line}\n").repeat(clickstream::bronze::CHUNK_RECORDS + 10);
    store(dir.path(), "landing/long.jsonl", lines.as_bytes());
    let options = BronzeOptions {
        landed_limits: LandedLimits {
            max_file_bytes: lines.len() as u64 - 1,
            ..LandedLimits::default()
        },
        ..BronzeOptions::default()
    };
    let landed = notification(&lake, "landing/long.jsonl");
    let outcomes = functions::bronze_writer(&lake, &landed, &options)
        .await
        .unwrap();
    let why = outcomes[0].unreadable.as_deref().unwrap_or_default();
    assert!(why.contains("over the file limit"), "{why:?}");
    assert_eq!(count(&lake, Table::Bronze).await, 0);
    // Under the default limits the same file lands in two chunks, each commit told as it is
    // made (the embedded pipeline hands each to silver).
    let told = std::sync::Mutex::new(Vec::new());
    let on_commit = |version| told.lock().unwrap().push(version);
    let outcomes =
        functions::bronze_writer_notifying(&lake, &landed, &BronzeOptions::default(), &on_commit)
            .await
            .unwrap();
    assert_eq!(
        outcomes.iter().map(|o| o.written).collect::<Vec<_>>(),
        [100_000, 10]
    );
    let committed: Vec<i64> = outcomes.iter().filter_map(|o| o.version).collect();
    assert_eq!(committed.len(), 2);
    assert_eq!(*told.lock().unwrap(), committed);
}

/// Keys with characters object_store's `Path::from` would re-encode are read as S3 names them;
/// a key the store cannot address, or an object gone before it is read, is recorded, not
/// retried forever.
#[tokio::test]
async fn every_key_s3_allows_is_read_or_recorded() {
    let (dir, lake) = lake();
    let t = Utc::now() - Duration::hours(1);
    let keys = [
        "landing/50% off #1 [x].jsonl",
        "landing/a+b ~c=d&e;f,g@h$i!j'k(l).jsonl",
        "landing/ünïcødé/日本語 🙂.jsonl",
        &format!("landing/{}/{}.jsonl", "d".repeat(200), "n".repeat(200)),
    ];
    for (i, key) in keys.iter().enumerate() {
        store(dir.path(), key, &event(&format!("k{i}"), "u", t, "click"));
        let outcomes =
            functions::bronze_writer(&lake, &notification(&lake, key), &BronzeOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(outcomes[0].written, 1, "{key}");
    }
    let bronze = read_all(&lake, Table::Bronze).await;
    let mut file_keys: Vec<String> = bronze
        .iter()
        .flat_map(|b| {
            let keys = b.column_by_name("file_key").unwrap().as_string::<i32>();
            keys.iter()
                .map(|k| k.unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    file_keys.sort();
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(file_keys, expected);

    for (key, why) in [
        ("landing//empty segment.jsonl", "cannot address this key"),
        ("landing/gone.jsonl", "not found"),
    ] {
        for _ in 0..2 {
            let outcomes = functions::bronze_writer(
                &lake,
                &notification(&lake, key),
                &BronzeOptions::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
            let unreadable = outcomes[0].unreadable.as_deref().unwrap_or_default();
            assert!(unreadable.contains(why), "{key}: {unreadable:?}");
        }
    }
    assert_eq!(count(&lake, Table::FailedFiles).await, 2);
}
