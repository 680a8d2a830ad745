//! Erasing a person on a real lake: every table and the log left without any of their
//! identifiers (bytes as stored and decoded), gold equal to a from-scratch computation over
//! the events left, another person's events on a shared device kept, the person's redelivered
//! records suppressed and counted, a request that stopped midway finished by running it again,
//! and an erasure while the stages write.

use arrow::array::{Array, AsArray, RecordBatch};
use chrono::{Duration, Utc};
use serde_json::json;

use clickstream::erasure::{self, ForgetOptions, Request, identity_hash};
use clickstream::functions::{self, BronzeTrigger};
use clickstream::gold::parse_funnel;
use clickstream::lake::{Lake, Table};
use clickstream_testkit::leftovers;

use crate::pipeline::{assert_gold_equals_from_scratch, batch, lake, read_all, run};

const PERSON: &str = "erase-me-user";
const PHONE: &str = "erase-me-phone";
const LAPTOP: &str = "erase-me-laptop";
const OTHER: &str = "keep-user";

fn visit(id: &str, anonymous_id: &str, user_id: Option<&str>, minutes: i64) -> Vec<u8> {
    let when = Utc::now() - Duration::hours(3) + Duration::minutes(minutes);
    let mut event = json!({
        "event_id": id, "event_type": "page_view", "event_time": when.to_rfc3339(),
        "anonymous_id": anonymous_id, "page_url": "https://s.example/p",
    });
    if let Some(user_id) = user_id {
        event["user_id"] = json!(user_id);
    }
    serde_json::to_vec(&event).unwrap()
}

/// The person on two devices, the other user on the person's laptop before them (a shared
/// device, which goes to the person: their login there is the latest), a record of the person
/// that is quarantined, and the other user's own device.
fn scenario() -> Vec<Vec<u8>> {
    let mut records = vec![
        visit("e1", PHONE, None, 0),
        visit("e2", PHONE, Some(PERSON), 5),
        visit("e3", LAPTOP, Some(OTHER), 10),
        visit("e4", LAPTOP, None, 20),
        visit("e5", LAPTOP, Some(PERSON), 30),
        visit("e6", "keep-device", None, 40),
        visit("e7", "keep-device", Some(OTHER), 45),
    ];
    let bad = json!({"event_id": "q1", "event_type": "page_view", "event_time": "last tuesday",
                     "user_id": PERSON, "anonymous_id": PHONE});
    records.push(serde_json::to_vec(&bad).unwrap());
    records
}

/// A lake with the scenario and generated traffic of three days.
async fn fed_lake() -> (tempfile::TempDir, Lake) {
    let (dir, lake) = lake();
    run(&lake, &batch(0, 0, scenario())).await;
    let mut cfg = clickstream_generator::GeneratorConfig::new(2_000);
    cfg.days = 3;
    let records: Vec<Vec<u8>> = clickstream_generator::Generator::new(cfg).collect();
    for (i, chunk) in records.chunks(500).enumerate() {
        run(&lake, &batch(1, i as i64 * 1000, chunk.to_vec())).await;
    }
    (dir, lake)
}

fn options(now: bool) -> ForgetOptions {
    ForgetOptions {
        now,
        retention: Duration::hours(168),
        funnel: parse_funnel(None),
    }
}

async fn no_exports(_: &Lake) -> clickstream::Result<()> {
    Ok(())
}

/// (user_id, anonymous_id, user_key) of every silver row naming one of `ids`.
async fn silver_rows_naming(
    lake: &Lake,
    ids: &[&str],
) -> Vec<(Option<String>, Option<String>, String)> {
    let mut rows = Vec::new();
    for b in read_all(lake, Table::Silver).await {
        let text = |c: &str| b.column_by_name(c).unwrap().as_string::<i32>().clone();
        let (user, anonymous, key) = (text("user_id"), text("anonymous_id"), text("user_key"));
        let event = text("event_id");
        for i in 0..b.num_rows() {
            let row = (
                user.is_valid(i).then(|| user.value(i).to_string()),
                anonymous
                    .is_valid(i)
                    .then(|| anonymous.value(i).to_string()),
                key.value(i).to_string(),
            );
            let named = |v: &Option<String>| v.as_deref().is_some_and(|v| ids.contains(&v));
            if named(&row.0)
                || named(&row.1)
                || ids.contains(&row.2.as_str())
                || event.value(i) == "e3"
            {
                rows.push(row);
            }
        }
    }
    rows
}

#[tokio::test]
async fn forgetting_a_user_leaves_nothing_of_them_and_gold_exact() {
    let (dir, lake) = fed_lake().await;
    let ids = [PERSON, PHONE, LAPTOP];
    let (before, files) = leftovers::find(dir.path(), &ids).unwrap();
    assert!(
        !before.is_empty() && files > 20,
        "the scan finds the person before"
    );
    let request = Request::new("r-1", PERSON).unwrap();
    request.put(&lake).await.unwrap();

    let report = erasure::forget(&lake, &request, &options(true), no_exports)
        .await
        .unwrap();

    assert_eq!(
        report.identifiers, 3,
        "the user and both devices: {report:?}"
    );
    assert_eq!(report.rows_removed["silver/events"], 4);
    assert_eq!(
        report.rows_removed["bronze/events"], 6,
        "e3 names the laptop too"
    );
    assert_eq!(report.rows_removed["silver/quarantine"], 1);
    assert_eq!(report.rows_redacted, 1);
    assert!(report.completed_at.is_some());
    assert_eq!(report.files_removed_by, report.completed_at);
    // The other user's event on the shared laptop stays, without the laptop's id.
    assert_eq!(
        silver_rows_naming(&lake, &ids).await,
        [(Some(OTHER.into()), None, OTHER.into())]
    );
    assert_gold_equals_from_scratch(&lake).await;
    let (left, _) = leftovers::find(dir.path(), &ids).unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");

    // The audit row keeps hashes only; the request is not run twice.
    let audit = erasure::erasures(&lake).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].identifier_hash, identity_hash(PERSON));
    let again = erasure::forget(&lake, &request, &options(true), no_exports)
        .await
        .unwrap();
    assert!(again.already_complete);
    assert_eq!(again.rows_removed, report.rows_removed);
}

/// Bronze -> silver -> gold for `trigger`; (input, valid, quarantined, duplicates, suppressed).
async fn run_counting(lake: &Lake, trigger: &BronzeTrigger) -> [usize; 5] {
    let mut counts = [0; 5];
    let funnel = parse_funnel(None);
    let bronze = functions::bronze_writer(lake, trigger, &Default::default())
        .await
        .unwrap();
    for b in bronze {
        let Some(v) = b.version else { continue };
        let event = functions::commit_event(lake, Table::Bronze, v);
        for s in functions::silver_transformer(lake, &event).await.unwrap() {
            let n = [s.input, s.valid, s.quarantined, s.duplicates, s.suppressed];
            counts.iter_mut().zip(n).for_each(|(c, n)| *c += n);
            if let Some(sv) = s.silver_version {
                let event = functions::commit_event(lake, Table::Silver, sv);
                functions::gold_transformer(lake, &event, &funnel)
                    .await
                    .unwrap();
            }
        }
    }
    counts
}

#[tokio::test]
async fn a_forgotten_persons_redelivered_records_are_suppressed_and_counted() {
    let (dir, lake) = fed_lake().await;
    let request = Request::new("r-2", PHONE).unwrap();
    let report = erasure::forget(&lake, &request, &options(false), no_exports)
        .await
        .unwrap();
    assert_eq!(report.identifiers, 3, "an anonymous id expands to its user");
    assert!(report.files_removed_by.unwrap() > report.completed_at.unwrap());
    // The replaced files wait for VACUUM, but no table's log ever held the ids: no commit keeps
    // statistics of a text column (the scenario's first file has them as its min and max).
    for table in Table::ALL {
        let log = dir.path().join(table.path()).join("_delta_log");
        let (left, _) = leftovers::find(&log, &[PERSON, PHONE, LAPTOP]).unwrap();
        assert!(left.is_empty(), "{} holds: {left:?}", table.path());
    }

    // The person again on both devices (a redelivery, and new events), beside someone else.
    let again = vec![
        visit("e2", PHONE, Some(PERSON), 5),
        visit("n1", LAPTOP, None, 50),
        visit("n2", "new-device", Some(PERSON), 55),
        visit("n3", "new-device", Some("new-user"), 56),
    ];
    let [input, valid, quarantined, duplicates, suppressed] =
        run_counting(&lake, &batch(2, 0, again)).await;
    assert_eq!((input, valid, suppressed), (4, 1, 3));
    assert_eq!(input, valid + quarantined + duplicates + suppressed);
    assert!(
        silver_rows_naming(&lake, &[PERSON, PHONE, LAPTOP])
            .await
            .len()
            == 1
    );
    assert_gold_equals_from_scratch(&lake).await;
}

#[tokio::test]
async fn an_erasure_that_stopped_midway_finishes_when_run_again() {
    let (dir, lake) = fed_lake().await;
    let request = Request::new("r-3", PERSON).unwrap();
    request.put(&lake).await.unwrap();
    // It stops after the tables, at the exports.
    let stopped = erasure::forget(&lake, &request, &options(true), async |_: &Lake| {
        Err(clickstream::Error::Erasure {
            reason: "stopped".into(),
        })
    })
    .await;
    assert!(stopped.is_err());
    let requests = dir.path().join("requests");
    assert!(
        requests.join("forget/r-3.json").exists(),
        "the request stays to be run again"
    );
    assert!(
        requests.join("forgetting/r-3.json").exists(),
        "with the person it expanded to"
    );
    let audit = erasure::erasures(&lake).await.unwrap();
    assert!(audit[0].completed_at.is_none(), "started, not complete");

    // Run again by another process: the person's devices are known although silver lost them.
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let report = erasure::forget(&lake, &request, &options(true), no_exports)
        .await
        .unwrap();
    assert_eq!(report.identifiers, 3);
    assert!(report.completed_at.is_some());
    assert!(!requests.join("forget/r-3.json").exists());
    assert!(!requests.join("forgetting/r-3.json").exists());
    let (left, _) = leftovers::find(dir.path(), &[PERSON, PHONE, LAPTOP]).unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_gold_equals_from_scratch(&lake).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_erasure_while_the_stages_write_leaves_nothing_and_loses_nothing() {
    let (dir, lake) = fed_lake().await;
    let root = dir.path().to_str().unwrap().to_string();
    // Another process writes new traffic, with the person's records among it, meanwhile.
    let writer = tokio::spawn(async move {
        let lake = Lake::open(&root).unwrap();
        let mut cfg = clickstream_generator::GeneratorConfig::new(1_500);
        cfg.seed = 7;
        cfg.days = 1;
        let records: Vec<Vec<u8>> = clickstream_generator::Generator::new(cfg).collect();
        let mut totals = [0; 5];
        for (i, chunk) in records.chunks(250).enumerate() {
            let mut values = chunk.to_vec();
            values.push(visit(&format!("p{i}"), PHONE, Some(PERSON), 60 + i as i64));
            let counts = run_counting(&lake, &batch(3, i as i64 * 1000, values)).await;
            totals.iter_mut().zip(counts).for_each(|(t, n)| *t += n);
        }
        totals
    });
    let request = Request::new("r-4", PERSON).unwrap();
    // A request whose passes keep finding rows a writer adds back fails as contended, which a
    // retry (Lambda's, or the operator's) finishes: run it again until it completes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let report = loop {
        match erasure::forget(&lake, &request, &options(false), no_exports).await {
            Ok(report) => break report,
            Err(e @ clickstream::Error::Contended { .. }) => {
                assert!(std::time::Instant::now() < deadline, "{e}");
            }
            Err(e) => panic!("{e}"),
        }
    };
    let [input, valid, quarantined, duplicates, suppressed] = writer.await.unwrap();
    assert_eq!(
        input,
        1_500 + 6,
        "every record the writer sent reached silver"
    );
    assert_eq!(input, valid + quarantined + duplicates + suppressed);
    assert!(report.completed_at.is_some());

    // Whatever the writer's runs raced past the suppression, running the request's passes once
    // more finds nothing: the person is not in silver or gold.
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    functions::gold_transformer(
        &lake,
        &functions::commit_event(&lake, Table::Silver, 0),
        &parse_funnel(None),
    )
    .await
    .unwrap();
    let named = silver_rows_naming(&lake, &[PERSON, PHONE, LAPTOP]).await;
    assert_eq!(named, [(Some(OTHER.into()), None, OTHER.into())]);
    for table in [Table::Sessions, Table::DailyUsers] {
        let keys: Vec<RecordBatch> = read_all(&lake, table).await;
        for b in keys {
            let users = b
                .column_by_name("user_key")
                .unwrap()
                .as_string::<i32>()
                .clone();
            assert!(
                users
                    .iter()
                    .flatten()
                    .all(|u| u != PERSON && u != PHONE && u != LAPTOP)
            );
        }
    }
    assert_gold_equals_from_scratch(&lake).await;
}

/// An erasure commits gold/anonymous_ids last, so one that stopped before it leaves that table
/// as a warm gold process last wrote it, while the tables before it changed. The warm process
/// must not take its state of the person's dates for the tables': its next run, on the person's
/// date, would write their sessions back and count them again. Another writer's commits mean
/// the tables are read again.
#[tokio::test]
async fn a_warm_gold_process_reads_again_after_an_erasure_stopped_before_its_last_commit() {
    let (dir, warm) = fed_lake().await;
    let request = Request::new("r-5", PERSON).unwrap();
    let newest = || crate::pipeline::newest_commit(dir.path(), Table::AnonymousIds);
    let before = newest();
    let other_process = Lake::open(dir.path().to_str().unwrap()).unwrap();
    erasure::forget(&other_process, &request, &options(false), no_exports)
        .await
        .unwrap();
    let mut lost = 0;
    while newest() > before {
        crate::pipeline::lose_newest_commit(dir.path(), Table::AnonymousIds, "commitInfo");
        lost += 1;
    }
    assert!(lost > 0, "the erasure committed gold/anonymous_ids");

    // The warm process takes new traffic of someone else on the person's date.
    let others = vec![
        visit("w1", "late-device", Some("late-user"), 2),
        visit("w2", "late-device", Some("late-user"), 12),
    ];
    run(&warm, &batch(4, 0, others)).await;
    assert_gold_equals_from_scratch(&warm).await;
}

/// An erasure's gold commits carry gold's watermark, unchanged, like a catch-up's: a catch-up
/// that read a table before the erasure's commit to it loses its own commit there, even one
/// replacing dates the erasure did not touch (it may have counted the person elsewhere).
#[tokio::test]
async fn a_gold_commit_from_reads_before_an_erasure_loses_the_race() {
    let (dir, lake) = fed_lake().await;
    let before = lake.table(Table::DailyMetrics).await.unwrap();
    let watermark = clickstream::lake::txn_version(&before, "silver")
        .await
        .unwrap()
        .unwrap();
    // Gold's part of an erasure (silver's is not needed for this).
    let other_process = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let person = [PERSON, PHONE, LAPTOP].map(String::from).into();
    let erased = clickstream::gold::erase(&other_process, &person, &parse_funnel(None))
        .await
        .unwrap();
    assert!(!erased.is_empty());

    let far = (Utc::now() - Duration::days(200)).date_naive();
    let replacing = deltalake::datafusion::prelude::col("date").eq(
        deltalake::datafusion::prelude::lit(deltalake::datafusion::scalar::ScalarValue::Date32(
            Some(clickstream::lake::to_days(far)),
        )),
    );
    let stale = before
        .write(vec![RecordBatch::new_empty(Table::DailyMetrics.schema())])
        .with_save_mode(deltalake::protocol::SaveMode::Overwrite)
        .with_replace_where(replacing)
        .with_commit_properties(clickstream::lake::commit_properties(
            "silver",
            watermark + 1,
            json!({}),
        ))
        .await;
    let error = stale.expect_err("the stale commit loses").to_string();
    assert!(error.contains("transaction"), "{error}");
}
