//! Least privilege, shown by running: the local stack with `LAKE_STORE=aws-api`, where the lake is
//! the bucket Terraform created on the AWS API emulator, the emulator enforces IAM, and each
//! function process holds only the credentials of its own deployed role. Every path runs (Kafka,
//! a landed file, an unreadable landed file, silver, gold, the scheduled export with its dashboard,
//! the scheduled maintenance with VACUUM, an erasure request), so any request outside a role's
//! policy fails the test; and requests a role must not make (a writer writing another stage's
//! prefix, a delete by anyone but maintenance and forget) are refused, so the enforcement itself
//! is shown to be on.

use std::collections::HashSet;
use std::time::Duration;

use clickstream::lake::{Lake, Table};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::stack::{
    BUCKET, Stack, assert_every_record_once, count, read_lines, wait_for, wait_for_export,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_runs_with_only_its_own_role() {
    let _turn = crate::machine_wide().await;
    let Some(stack) = Stack::up_with(
        "the least-privilege test",
        &[("LAKE_STORE", "aws-api"), ("VACUUM_RETENTION_HOURS", "0")],
    ) else {
        return;
    };
    let lake = stack.lake();
    let store = lake.store().unwrap();

    // Refused: enforcement is on, and each role is held to its prefixes and actions.
    let role_store = |function: &str| -> std::sync::Arc<dyn ObjectStore> {
        stack.lake_as(function).store().unwrap()
    };
    let refused = [
        ("bronze-writer", "gold/daily_metrics/intruder.json", false),
        ("silver-transformer", "bronze/events/intruder.json", false),
        ("gold-transformer", "exports/intruder.csv", false),
        ("exporter", "silver/events/intruder.json", false),
        ("exporter", "exports/clickstream.csv", true),
    ];
    for (function, key, delete) in refused {
        let store = role_store(function);
        let outcome = if delete {
            store.delete(&key.into()).await
        } else {
            store
                .put(&key.into(), PutPayload::from_static(b"{}"))
                .await
                .map(|_| ())
        };
        let error = outcome.expect_err(&format!("{function} may not touch {key}"));
        assert!(
            matches!(error, object_store::Error::PermissionDenied { .. })
                || error.to_string().contains("AccessDenied"),
            "{function} on {key}: {error}"
        );
    }

    // Kafka, a landed file and an unreadable landed file.
    let mut all = stack.produce("31", 1200);
    let dropped = stack.dir.path().join("dropped.jsonl");
    stack.clickstream(&[
        "generate",
        "--events",
        "200",
        "--seed",
        "32",
        "--days",
        "2",
        "--output",
        dropped.to_str().unwrap(),
    ]);
    all.extend(read_lines(&dropped));
    for (key, body) in [
        ("landing/dropped.jsonl", std::fs::read(&dropped).unwrap()),
        (
            "landing/not-gzip.jsonl.gz",
            b"plain text, not gzip".to_vec(),
        ),
    ] {
        store
            .put(&key.into(), PutPayload::from(body))
            .await
            .unwrap();
    }
    assert_every_record_once(&lake, &all, Duration::from_secs(420)).await;
    wait_for(
        "the unreadable file in bronze/failed_files",
        Duration::from_secs(60),
        async || count(&lake, Table::FailedFiles).await == 1,
    )
    .await;

    // The scheduled export: the DuckDB file has gold's sessions, and the dashboard is written.
    let duckdb_file = stack.dir.path().join("export.duckdb");
    wait_for_export(&lake, &duckdb_file, Duration::from_secs(120)).await;
    let dashboard = store.get(&"exports/dashboard.html".into()).await.unwrap();
    assert!(
        dashboard
            .bytes()
            .await
            .unwrap()
            .starts_with(b"<!DOCTYPE html>")
    );

    // The scheduled maintenance, before any erasure: bronze compacted, and VACUUM (retention 0 h
    // here) has deleted every file the log removed. Only maintenance deletes yet, so this shows
    // its role may. (The erasure below removes the log files before its checkpoint, the OPTIMIZE
    // commit's among them, so compaction is looked for in the log before it.)
    wait_for_vacuumed(&lake, true).await;

    // An erasure request: the forget function erases a person on two devices, and once the
    // scheduled maintenance has vacuumed (retention 0 h here) no object in the bucket holds any of
    // their ids (Parquet and gzip decoded).
    let ids = crate::erasure::stitched_person(&lake).await;
    let request = clickstream::erasure::Request::new("stack-request", &ids[0]).unwrap();
    request.put(&lake).await.unwrap();
    wait_for(
        "the forget function to complete the request",
        Duration::from_secs(300),
        async || {
            let erasures = clickstream::erasure::erasures(&lake).await.unwrap();
            erasures.iter().any(|e| e.completed_at.is_some())
        },
    )
    .await;
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    wait_for_no_object_holding(&lake, &id_refs).await;

    // After the erasure's rewrite of bronze, and maintenance running alongside it: every file
    // the log removed is deleted again. Files no commit names may stay (an OPTIMIZE that lost to
    // the erasure leaves one): maintenance deletes those after `ORPHAN_MIN_AGE_MINUTES`.
    wait_for_vacuumed(&lake, false).await;

    // Nothing failed for want of a permission.
    let dead_letters = stack.dir.path().join("data/dead-letters.jsonl");
    let dead = std::fs::read_to_string(&dead_letters).unwrap_or_default();
    assert!(dead.is_empty(), "invocations failed for good: {dead}");
    for function in clickstream_testkit::FUNCTIONS {
        let log = std::fs::read_to_string(stack.dir.path().join(format!("logs/{function}.log")));
        let denied: Vec<String> = log
            .unwrap()
            .lines()
            .filter(|l| {
                [
                    "AccessDenied",
                    "Forbidden",
                    "lacked the necessary privileges",
                ]
                .iter()
                .any(|refused| l.contains(refused))
            })
            .map(|l| l.chars().take(400).collect())
            .collect();
        assert!(denied.is_empty(), "{function} was refused: {denied:#?}");
    }
}

/// Waits, on a loaded 2-core machine too, until VACUUM has deleted every data file bronze's log
/// removed and every active file is stored; with `compacted`, also until the log holds an
/// OPTIMIZE. On a timeout, says what is left.
async fn wait_for_vacuumed(lake: &Lake, compacted: bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(480);
    loop {
        let stored = stored_files(lake).await;
        let active = active_files(lake).await;
        let removed = removed_files(lake).await;
        let left: Vec<_> = stored.intersection(&removed).collect();
        let optimized = !compacted || self::compacted(lake).await;
        if optimized && left.is_empty() && active.is_subset(&stored) {
            let orphans = stored.len() - active.len();
            eprintln!(
                "bronze vacuumed; {orphans} files no commit names are younger than the limit"
            );
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for maintenance to {}vacuum bronze: compacted {optimized}, {} \
             stored files, {} active, removed files still stored: {left:?}, active files \
             missing: {:?}",
            if compacted { "compact and " } else { "" },
            stored.len(),
            active.len(),
            active.difference(&stored).collect::<Vec<_>>(),
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits, on a loaded 2-core machine too, until no object of the bucket holds any of `ids`, but
/// files no commit names that are younger than [`ORPHAN_MIN_AGE_MINUTES`]: a writer that lost a
/// commit race to the erasure (an OPTIMIZE, the exporter's overwrite of gold/identities) may have
/// written the person's rows into one, and maintenance deletes those once they are that old (the
/// README's erasure guarantees). On a timeout, says what holds them.
///
/// [`ORPHAN_MIN_AGE_MINUTES`]: clickstream::maintenance::ORPHAN_MIN_AGE_MINUTES
async fn wait_for_no_object_holding(lake: &Lake, ids: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let holding = objects_holding(lake, ids).await;
        let mut unnamed = HashSet::new();
        if !holding.is_empty() {
            for table in Table::ALL {
                let active = active_files_of(lake, table).await;
                let (_, named) = logged_files(lake, table).await;
                let prefix = format!("{}/", table.path());
                unnamed.extend(
                    holding
                        .iter()
                        .map(|l| l.file.to_string_lossy().to_string())
                        .filter(|f| f.starts_with(&prefix) && !f.contains("/_delta_log/"))
                        .filter(|f| !active.contains(f) && !named.contains(f)),
                );
            }
        }
        let young = young_objects(lake, &unnamed).await;
        let left: Vec<_> = holding
            .iter()
            .filter(|l| !young.contains(&l.file.to_string_lossy().to_string()))
            .collect();
        if left.is_empty() {
            if !holding.is_empty() {
                eprintln!("files no commit names still hold the erased person: {young:?}");
            }
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for no object to hold the erased person: {left:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Those of `paths` (under the bucket) stored less than [`ORPHAN_MIN_AGE_MINUTES`] ago.
///
/// [`ORPHAN_MIN_AGE_MINUTES`]: clickstream::maintenance::ORPHAN_MIN_AGE_MINUTES
async fn young_objects(lake: &Lake, paths: &HashSet<String>) -> HashSet<String> {
    let store = lake.store().unwrap();
    let limit = chrono::Duration::minutes(clickstream::maintenance::ORPHAN_MIN_AGE_MINUTES);
    let mut young = HashSet::new();
    for path in paths {
        if let Ok(meta) = store.head(&path.as_str().into()).await
            && chrono::Utc::now() - meta.last_modified < limit
        {
            young.insert(path.clone());
        }
    }
    young
}

/// True when bronze's log holds an OPTIMIZE.
async fn compacted(lake: &Lake) -> bool {
    let table = lake.table(Table::Bronze).await.unwrap();
    let history: Vec<_> = table.history(None).try_collect().await.unwrap();
    history
        .iter()
        .any(|c| c.operation.as_deref() == Some("OPTIMIZE"))
}

/// What the objects of the bucket hold of `ids` (each object's bytes, and decoded).
async fn objects_holding(
    lake: &Lake,
    ids: &[&str],
) -> Vec<clickstream_testkit::leftovers::Leftover> {
    let store = lake.store().unwrap();
    let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
    let mut found = Vec::new();
    for object in listed {
        let Ok(got) = store.get(&object.location).await else {
            continue; // deleted since the listing
        };
        let bytes = got.bytes().await.unwrap();
        let path = std::path::PathBuf::from(object.location.to_string());
        found.extend(clickstream_testkit::leftovers::scan(&path, &bytes, ids).unwrap());
    }
    found
}

/// Bronze's data files in the store (not its log's checkpoints), as paths under the bucket.
async fn stored_files(lake: &Lake) -> HashSet<String> {
    let store = lake.store().unwrap();
    let listed: Vec<_> = store
        .list(Some(&Table::Bronze.path().into()))
        .try_collect()
        .await
        .unwrap();
    listed
        .into_iter()
        .map(|m| m.location.to_string())
        .filter(|p| p.ends_with(".parquet") && !p.contains("/_delta_log/"))
        .collect()
}

/// The data files `table`'s remaining commit files name: those they removed and none added back,
/// and every one they name, as paths under the bucket.
async fn logged_files(lake: &Lake, table: Table) -> (HashSet<String>, HashSet<String>) {
    let store = lake.store().unwrap();
    let log = format!("{}/_delta_log", table.path());
    let listed: Vec<_> = store
        .list(Some(&log.as_str().into()))
        .try_collect()
        .await
        .unwrap();
    let mut commits: Vec<_> = listed
        .into_iter()
        .map(|m| m.location)
        .filter(|p| p.as_ref().ends_with(".json"))
        .collect();
    commits.sort();
    let (mut removed, mut named) = (HashSet::new(), HashSet::new());
    for commit in commits {
        let Ok(got) = store.get(&commit).await else {
            continue; // expired since the listing
        };
        let bytes = got.bytes().await.unwrap();
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let action: serde_json::Value = serde_json::from_slice(line).unwrap();
            for (kind, gone) in [("add", false), ("remove", true)] {
                if let Some(path) = action[kind]["path"].as_str() {
                    let path = object_store::path::Path::from_url_path(path).unwrap();
                    let key = format!("{}/{path}", table.path());
                    named.insert(key.clone());
                    if gone {
                        removed.insert(key);
                    } else {
                        removed.remove(&key);
                    }
                }
            }
        }
    }
    (removed, named)
}

/// The data files bronze's commits removed and none added back, as paths under the bucket.
async fn removed_files(lake: &Lake) -> HashSet<String> {
    logged_files(lake, Table::Bronze).await.0
}

/// Bronze's active files, as paths under the bucket.
async fn active_files(lake: &Lake) -> HashSet<String> {
    active_files_of(lake, Table::Bronze).await
}

/// `table`'s active files, as paths under the bucket (none when it does not exist).
async fn active_files_of(lake: &Lake, table: Table) -> HashSet<String> {
    let Some(table) = lake.existing_table(table).await.unwrap() else {
        return HashSet::new();
    };
    let root = format!("s3://{BUCKET}/");
    table
        .get_file_uris()
        .unwrap()
        .map(|uri| uri.strip_prefix(&root).unwrap_or(&uri).to_string())
        .collect()
}
