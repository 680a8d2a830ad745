//! End to end: `clickstream forget --now` on a demo lake (with a landed file of the person), then
//! VACUUM (`clickstream maintain --retention-hours 0`), then every byte of every object under
//! the lake without any of the person's ids (Parquet values and gzip decoded, and every row of
//! the DuckDB file read back), and gold equal to a from-scratch computation over the events left.

use std::collections::BTreeSet;

use arrow::array::AsArray;
use clickstream::lake::{Lake, Table};
use clickstream_testkit::leftovers;

use crate::demo::clickstream;
use crate::stack::read_latest;

/// A user of the lake with at least two stitched anonymous ids, none of whose ids is part of
/// another person's id in silver (the scan looks for the ids as bytes): the user and those ids.
pub async fn stitched_person(lake: &Lake) -> Vec<String> {
    let mut by_user: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for b in read_latest(lake, Table::Identities, &["anonymous_id", "user_id"]).await {
        let anonymous = b
            .column_by_name("anonymous_id")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let user = b
            .column_by_name("user_id")
            .unwrap()
            .as_string::<i32>()
            .clone();
        for i in 0..b.num_rows() {
            let ids = by_user.entry(user.value(i).to_string()).or_default();
            ids.push(anonymous.value(i).to_string());
        }
    }
    let mut all: BTreeSet<String> = BTreeSet::new();
    for b in read_latest(lake, Table::Silver, &["user_id", "anonymous_id"]).await {
        for column in ["user_id", "anonymous_id"] {
            let ids = b.column_by_name(column).unwrap().as_string::<i32>().clone();
            all.extend(ids.iter().flatten().map(str::to_string));
        }
    }
    by_user
        .into_iter()
        .filter(|(_, devices)| devices.len() >= 2)
        .map(|(user, devices)| std::iter::once(user).chain(devices).collect::<Vec<_>>())
        .find(|ids| {
            let others = all.iter().filter(|other| !ids.contains(other));
            others
                .into_iter()
                .all(|other| ids.iter().all(|id| !other.contains(id.as_str())))
        })
        .expect("the demo has a user on two devices")
}

/// Every row of every table of the DuckDB file, as text.
fn duckdb_rows(path: &std::path::Path) -> String {
    let db = duckdb::Connection::open(path).unwrap();
    let mut tables = db
        .prepare("SELECT table_name FROM information_schema.tables")
        .unwrap();
    let names: Vec<String> = tables
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut text = String::new();
    for name in names {
        let mut rows = db
            .prepare(&format!("SELECT CAST(t AS VARCHAR) FROM \"{name}\" AS t"))
            .unwrap();
        for row in rows.query_map([], |r| r.get::<_, String>(0)).unwrap() {
            text.push_str(&row.unwrap());
            text.push('\n');
        }
    }
    assert!(text.len() > 1_000, "the DuckDB file holds the gold tables");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting_a_person_leaves_no_byte_of_them_in_the_lake() {
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let lake_path = lake_dir.to_str().unwrap();
    let (ok, _, err) = clickstream(&[
        "demo", "--events", "6000", "--days", "4", "--lake", lake_path,
    ]);
    assert!(ok, "demo failed: {err}");
    let lake = Lake::open(lake_path).unwrap();
    let ids = stitched_person(&lake).await;
    let (user, devices) = (&ids[0], &ids[1..]);

    // A landed file with two more of the person's events (and someone else's).
    let landed = dir.path().join("late.jsonl");
    let now = chrono::Utc::now().to_rfc3339();
    let lines = [
        serde_json::json!({"event_id": "late-1", "event_type": "page_view", "event_time": now,
                           "user_id": user, "anonymous_id": devices[0],
                           "page_url": "https://shop.example.com/"}),
        serde_json::json!({"event_id": "late-2", "event_type": "page_view", "event_time": now,
                           "anonymous_id": "someone-else", "page_url": "https://shop.example.com/"}),
    ];
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(&landed, text.join("\n")).unwrap();
    let (ok, _, err) = clickstream(&["ingest", landed.to_str().unwrap(), "--lake", lake_path]);
    assert!(ok, "ingest failed: {err}");
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (before, _) = leftovers::find(&lake_dir, &id_refs).unwrap();
    assert!(
        before
            .iter()
            .any(|l| l.file.ends_with("clickstream.duckdb"))
    );
    assert!(
        before
            .iter()
            .any(|l| l.file.starts_with(lake_dir.join("landing")))
    );

    let (ok, out, err) = clickstream(&["forget", user, "--now", "--json", "--lake", lake_path]);
    assert!(ok, "forget failed: {err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["identifiers"], ids.len(), "{report}");
    assert_eq!(
        report["landed_files_removed"],
        serde_json::json!(["landing/late.jsonl"])
    );
    assert!(report["completed_at"].is_string(), "{report}");
    assert!(report["rows_removed"]["silver/events"].as_u64().unwrap() > 0);
    let (ok, _, err) = clickstream(&["maintain", "--retention-hours", "0", "--lake", lake_path]);
    assert!(ok, "maintain failed: {err}");

    let (left, files) = leftovers::find(&lake_dir, &id_refs).unwrap();
    assert!(left.is_empty(), "left behind: {left:#?}");
    assert!(files > 100, "the scan read the whole lake ({files} files)");
    let rows = duckdb_rows(&lake_dir.join("exports/clickstream.duckdb"));
    for id in &ids {
        assert!(!rows.contains(id.as_str()), "the DuckDB file holds {id}");
    }
    assert!(
        rows.contains("someone-else"),
        "the others' events are still there"
    );
    let lake = Lake::open(lake_path).unwrap();
    let differences = clickstream_testkit::differences_from_scratch(
        &lake,
        &clickstream::gold::parse_funnel(None),
    )
    .await
    .unwrap();
    assert!(differences.is_empty(), "gold is wrong: {differences:?}");

    // The audit trail holds the request, with hashes only.
    let (ok, out, _) = clickstream(&["forget", "--list", "--json", "--lake", lake_path]);
    assert!(ok);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        list[0]["identifier_hash"],
        clickstream::erasure::identity_hash(user)
    );
}
