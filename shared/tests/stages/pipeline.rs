//! Stage behaviour on a real local lake: idempotency, dedup across batches, late events, and
//! gold equal to a from-scratch computation.

use arrow::array::{AsArray, RecordBatch};
use chrono::{Duration, Utc};
use clickstream::bronze::BronzeOptions;
use clickstream::functions::{self, BronzeTrigger, commit_event};
use clickstream::gold::parse_funnel;
use clickstream::lake::{Lake, Table};
use clickstream::silver::SilverOutcome;
use clickstream::trigger::{KafkaMessage, kafka_event};
use clickstream_testkit::differences_from_scratch;
use serde_json::json;

pub fn lake() -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    (dir, lake)
}

/// `hour` o'clock (UTC) `days` days before today.
pub fn days_ago_at(days: i64, hour: u32) -> chrono::DateTime<Utc> {
    (Utc::now().date_naive() - Duration::days(days))
        .and_hms_opt(hour, 0, 0)
        .unwrap()
        .and_utc()
}

pub fn event(id: &str, user: &str, at: chrono::DateTime<Utc>, kind: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event_id": id,
        "event_type": kind,
        "event_time": at.to_rfc3339(),
        "anonymous_id": user,
        "page_url": format!("https://s.example/p/{kind}"),
    }))
    .unwrap()
}

/// `n` events `{prefix}{i}` of four users, a minute apart from `at`.
pub fn events(prefix: &str, n: usize, at: chrono::DateTime<Utc>) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            event(
                &format!("{prefix}{i}"),
                &format!("u{}", i % 4),
                at + Duration::minutes(i as i64),
                if i % 3 == 0 { "page_view" } else { "click" },
            )
        })
        .collect()
}

/// When the broker took the record at `offset` of a test partition: the same for every delivery
/// of it, as Kafka redelivers a record unchanged.
pub fn produced_ms(offset: i64) -> i64 {
    1_780_000_000_000 + offset
}

pub fn batch(partition: i32, first_offset: i64, values: Vec<Vec<u8>>) -> BronzeTrigger {
    let messages: Vec<KafkaMessage> = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| KafkaMessage {
            partition,
            offset: first_offset + i as i64,
            timestamp_ms: produced_ms(first_offset + i as i64),
            key: None,
            value: Some(v),
            ..Default::default()
        })
        .collect();
    BronzeTrigger::Kafka(kafka_event("test:9092", "clickstream-events", &messages))
}

/// Runs bronze -> silver -> gold for one trigger, as S3 notifications would.
pub async fn run(lake: &Lake, trigger: &BronzeTrigger) -> (usize, usize, usize) {
    let (silver, _) = run_stages(lake, trigger).await;
    let (mut valid, mut quarantined, mut dups) = (0, 0, 0);
    for s in silver {
        valid += s.valid;
        quarantined += s.quarantined;
        dups += s.duplicates;
    }
    (valid, quarantined, dups)
}

/// Runs `trigger` through bronze, silver and gold; each silver and gold run's outcome.
async fn run_stages(
    lake: &Lake,
    trigger: &BronzeTrigger,
) -> (Vec<SilverOutcome>, Vec<clickstream::gold::GoldOutcome>) {
    let funnel = parse_funnel(None);
    let (mut silver_runs, mut gold_runs) = (Vec::new(), Vec::new());
    for b in functions::bronze_writer(lake, trigger, &BronzeOptions::default())
        .await
        .unwrap()
    {
        let Some(v) = b.version else { continue };
        for s in functions::silver_transformer(lake, &commit_event(lake, Table::Bronze, v))
            .await
            .unwrap()
        {
            if let Some(sv) = s.silver_version {
                gold_runs.extend(
                    functions::gold_transformer(
                        lake,
                        &commit_event(lake, Table::Silver, sv),
                        &funnel,
                    )
                    .await
                    .unwrap(),
                );
            }
            silver_runs.push(s);
        }
    }
    (silver_runs, gold_runs)
}

/// Two silver processes at once (separate lake handles, so separate warm state) catching up to
/// bronze version `latest` of the lake in `dir`: every outcome of both.
pub async fn two_silver_processes_at_once(
    dir: &std::path::Path,
    latest: i64,
) -> Vec<SilverOutcome> {
    let writers = (0..2).map(|_| {
        let lake = Lake::open(dir.to_str().unwrap()).unwrap();
        tokio::spawn(async move {
            functions::silver_transformer(&lake, &commit_event(&lake, Table::Bronze, latest)).await
        })
    });
    let mut outcomes = Vec::new();
    for w in futures::future::join_all(writers).await {
        outcomes.extend(
            w.unwrap()
                .expect("both writers succeed (one may find nothing to do)"),
        );
    }
    outcomes
}

pub async fn read_all(lake: &Lake, table: Table) -> Vec<RecordBatch> {
    let t = lake.table(table).await.unwrap();
    lake.read(&t, &[], None).await.unwrap()
}

/// silver/events' event_ids, each once (a repeat fails the test), sorted.
pub async fn silver_ids(lake: &Lake) -> Vec<String> {
    let mut ids = Vec::new();
    for b in read_all(lake, Table::Silver).await {
        let column = b.column_by_name("event_id").unwrap().as_string::<i32>();
        ids.extend(column.iter().map(|id| id.unwrap().to_string()));
    }
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "an event_id is in silver twice");
    ids
}

/// Every silver/events data file in the snapshot carries bloom filters of event_id (one per row
/// group), and each id in silver is in one of them: what a fresh process's dedup probes.
pub async fn assert_silver_files_carry_id_filters(lake: &Lake) {
    use clickstream::lake::{FiltersOrRows, filters_or_fold};
    let silver = lake.table(Table::Silver).await.unwrap();
    let files: Vec<_> = silver
        .snapshot()
        .unwrap()
        .log_data()
        .iter()
        .map(|f| {
            (
                f.path().into_owned(),
                f.size() as u64,
                f.path().into_owned(),
            )
        })
        .collect();
    assert!(!files.is_empty(), "silver has data files");
    let never = |_: &String, _| false;
    let found = filters_or_fold(&silver, files, "event_id", never, |_: &mut (), _| Ok(()))
        .await
        .unwrap();
    let mut filters = Vec::new();
    for (path, found) in found {
        match found {
            FiltersOrRows::Filters { filters: f, rows } => {
                assert!(rows > 0, "{path} has rows");
                filters.extend(f);
            }
            FiltersOrRows::Rows(()) => panic!("{path} has no bloom filter of event_id"),
        }
    }
    for id in silver_ids(lake).await {
        assert!(
            filters.iter().any(|f| f.check(id.as_str())),
            "no file's filter holds {id}"
        );
    }
}

/// The path of `table`'s newest commit file in the lake at `dir`.
pub fn newest_commit(dir: &std::path::Path, table: Table) -> std::path::PathBuf {
    std::fs::read_dir(dir.join(table.path()).join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .max()
        .unwrap()
}

/// Removes the newest commit of `table` in the lake at `dir`, as if its writer died before the
/// commit: the files it wrote stay on disk, referenced by nothing. Asserts that the commit holds
/// `marker` and that no checkpoint was written at its version. Returns that version.
pub fn lose_newest_commit(dir: &std::path::Path, table: Table, marker: &str) -> i64 {
    let log = dir.join(table.path()).join("_delta_log");
    let newest = newest_commit(dir, table);
    assert!(std::fs::read_to_string(&newest).unwrap().contains(marker));
    let version: i64 = newest
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        !log.join(format!("{version:020}.checkpoint.parquet"))
            .exists(),
        "a commit with a checkpoint is not removed"
    );
    std::fs::remove_file(&newest).unwrap();
    let _ = std::fs::remove_file(log.join(format!("{version:020}.crc")));
    version
}

/// How many Parquet data files lie in `folder` (on disk, whether the log references them or not).
pub fn parquet_files_in(folder: &std::path::Path) -> usize {
    std::fs::read_dir(folder)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "parquet")
        })
        .count()
}

pub async fn count(lake: &Lake, table: Table) -> usize {
    read_all(lake, table)
        .await
        .iter()
        .map(RecordBatch::num_rows)
        .sum()
}

/// A batch in the table's column order, sorted by every column: comparable across computations.
pub async fn assert_gold_equals_from_scratch(lake: &Lake) {
    let differences = differences_from_scratch(lake, &parse_funnel(None))
        .await
        .unwrap();
    assert!(differences.is_empty(), "gold is wrong: {differences:?}");
}

#[tokio::test]
async fn same_kafka_event_twice_adds_nothing() {
    let (_dir, lake) = lake();
    let t = Utc::now() - Duration::hours(2);
    let trigger = batch(
        0,
        0,
        (0..5)
            .map(|i| event(&format!("k{i}"), "u", t, "page_view"))
            .collect(),
    );
    assert_eq!(run(&lake, &trigger).await, (5, 0, 0));
    assert_eq!(run(&lake, &trigger).await, (0, 0, 0));
    assert_eq!(count(&lake, Table::Bronze).await, 5);
    assert_eq!(count(&lake, Table::Silver).await, 5);
    // A batch overlapping the last one only adds the new offsets.
    let overlap = batch(
        0,
        3,
        (3..8)
            .map(|i| event(&format!("k{i}"), "u", t, "page_view"))
            .collect(),
    );
    assert_eq!(run(&lake, &overlap).await, (3, 0, 0));
    assert_eq!(count(&lake, Table::Bronze).await, 8);
}

#[tokio::test]
async fn same_landed_file_twice_adds_nothing() {
    let (dir, lake) = lake();
    let t = Utc::now() - Duration::hours(2);
    let file = dir.path().join("upload.jsonl");
    let lines: Vec<String> = (0..4)
        .map(|i| String::from_utf8(event(&format!("f{i}"), "u", t, "click")).unwrap())
        .collect();
    std::fs::write(&file, lines.join("\n") + "\nnot json\n").unwrap();
    let landed = BronzeTrigger::Landed(clickstream::bronze::land_file(&lake, &file).await.unwrap());
    assert_eq!(run(&lake, &landed).await, (4, 1, 0));
    assert_eq!(run(&lake, &landed).await, (0, 0, 0));
    assert_eq!(count(&lake, Table::Bronze).await, 5);
    assert_eq!(count(&lake, Table::Quarantine).await, 1);
}

/// A landed file that cannot be read (named .gz, not gzip) does not fail the notification, which
/// a retry could not fix: it is recorded once in bronze/failed_files, and the stage moves on.
#[tokio::test]
async fn an_unreadable_landed_file_is_recorded_once_and_skipped() {
    let (dir, lake) = lake();
    let file = dir.path().join("upload.jsonl.gz");
    std::fs::write(&file, b"not gzip at all").unwrap();
    let landed = BronzeTrigger::Landed(clickstream::bronze::land_file(&lake, &file).await.unwrap());
    for _ in 0..2 {
        let outcomes = functions::bronze_writer(&lake, &landed, &BronzeOptions::default())
            .await
            .unwrap();
        assert_eq!(outcomes.len(), 1);
        let why = outcomes[0].unreadable.as_deref().unwrap_or_default();
        assert!(
            why.contains("upload.jsonl.gz") && why.contains("gzip"),
            "{why:?}"
        );
        assert_eq!(outcomes[0].written, 0);
    }
    let failed = read_all(&lake, Table::FailedFiles).await;
    assert_eq!(failed.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    let reason = failed[0]
        .column_by_name("reason")
        .unwrap()
        .as_string::<i32>();
    assert!(reason.value(0).starts_with("gzip:"), "{}", reason.value(0));
    assert_eq!(count(&lake, Table::Bronze).await, 0);
}

#[tokio::test]
async fn same_commit_event_twice_adds_nothing() {
    let (_dir, lake) = lake();
    let t = Utc::now() - Duration::hours(2);
    let trigger = batch(
        1,
        0,
        vec![event("c1", "u", t, "page_view"), b"{bad".to_vec()],
    );
    let bronze = functions::bronze_writer(&lake, &trigger, &BronzeOptions::default())
        .await
        .unwrap();
    let commit = commit_event(&lake, Table::Bronze, bronze[0].version.unwrap());
    let first = functions::silver_transformer(&lake, &commit).await.unwrap();
    let second = functions::silver_transformer(&lake, &commit).await.unwrap();
    assert_eq!((first[0].valid, first[0].quarantined), (1, 1));
    assert!(second[0].already_processed);
    assert_eq!(count(&lake, Table::Silver).await, 1);
    assert_eq!(count(&lake, Table::Quarantine).await, 1);

    let silver_commit = commit_event(&lake, Table::Silver, first[0].silver_version.unwrap());
    let funnel = parse_funnel(None);
    let g1 = functions::gold_transformer(&lake, &silver_commit, &funnel)
        .await
        .unwrap();
    let g2 = functions::gold_transformer(&lake, &silver_commit, &funnel)
        .await
        .unwrap();
    assert!(!g1[0].already_processed && g2[0].already_processed);
    assert_eq!(count(&lake, Table::Sessions).await, 1);
}

#[tokio::test]
async fn duplicates_across_batches_are_counted_not_written() {
    let (_dir, lake) = lake();
    let t = Utc::now() - Duration::hours(3);
    let first = batch(
        0,
        0,
        vec![
            event("d1", "u", t, "page_view"),
            event("d2", "u", t, "click"),
        ],
    );
    let second = batch(
        1,
        0,
        vec![
            event("d2", "u", t, "click"),
            event("d3", "u", t, "click"),
            event("d3", "u", t, "click"),
        ],
    );
    assert_eq!(run(&lake, &first).await, (2, 0, 0));
    assert_eq!(run(&lake, &second).await, (1, 0, 2));
    assert_eq!(count(&lake, Table::Silver).await, 3);
    assert_gold_equals_from_scratch(&lake).await;
}

#[tokio::test]
async fn a_fresh_process_finds_duplicates_on_the_same_and_adjacent_dates() {
    let (dir, lake) = lake();
    let noon = (Utc::now() - Duration::days(10))
        .date_naive()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    let day = Duration::days(1);
    // Other events beside them, so that a run of a few events probes the files' bloom filters
    // rather than reading every id.
    let mut first = events("other-", 100, noon - Duration::hours(2));
    first.extend([
        event("same", "u", noon, "page_view"),
        event("next", "u", noon, "click"),
        event("far", "u", noon, "click"),
    ]);
    assert_eq!(run(&lake, &batch(0, 0, first)).await, (103, 0, 0));
    assert_silver_files_carry_id_filters(&lake).await;

    // A fresh process has no index: it looks up the files of the dates its batch touches and
    // their neighbours. The same ids on the same date and on the next count as duplicates; two
    // dates away, the dedup window's end, not.
    let fresh = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let resent = vec![
        event("same", "u", noon, "page_view"),
        event("next", "u", noon + day, "click"),
        event("far", "u", noon + day * 2, "click"),
        event("new", "u", noon + day, "click"),
    ];
    assert_eq!(run(&fresh, &batch(0, 103, resent)).await, (2, 0, 2));
    // The dates it looked up are now held: the same batch again in that process is all
    // duplicates.
    let again = vec![
        event("new", "u", noon + day, "click"),
        event("far", "u", noon + day * 2, "click"),
    ];
    assert_eq!(run(&fresh, &batch(0, 107, again)).await, (0, 0, 2));
    assert_eq!(count(&fresh, Table::Silver).await, 105);
}

/// Appends the events `raws` to silver/events with a plain delta-rs write, as `source`: another
/// writer's commit, its files without silver's bloom filters (as silver wrote them before).
async fn append_to_silver_elsewhere(lake: &Lake, raws: &[Vec<u8>], source: &str) {
    use deltalake::protocol::SaveMode;
    let rows: Vec<_> = raws
        .iter()
        .map(|raw| {
            let event = clickstream::event::validate(raw, Utc::now()).unwrap();
            clickstream::silver::SilverEvent {
                event,
                source,
                ingest_time: Utc::now(),
            }
        })
        .collect();
    lake.table(Table::Silver)
        .await
        .unwrap()
        .write(vec![clickstream::silver::silver_batch(&rows).unwrap()])
        .with_save_mode(SaveMode::Append)
        .with_partition_columns(Table::Silver.partition_columns().iter().copied())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_fresh_process_finds_duplicates_in_files_without_bloom_filters() {
    let (dir, lake) = lake();
    let t = Utc::now() - Duration::hours(3);
    // Silver rows written as silver wrote them before its files carried bloom filters.
    append_to_silver_elsewhere(&lake, &events("old-", 50, t), "old-writer").await;

    let fresh = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let mut resent = events("old-", 2, t);
    resent.push(event("new", "u", t, "click"));
    assert_eq!(run(&fresh, &batch(0, 0, resent)).await, (1, 0, 2));
    assert_eq!(count(&fresh, Table::Silver).await, 51);
}

#[tokio::test]
async fn a_large_run_writes_bounded_row_groups_each_with_its_bloom_filter() {
    use clickstream::lake::ROW_GROUP_ROWS;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let (dir, lake) = lake();
    // One date, so that the run is one file of more rows than a row group holds.
    let t = days_ago_at(1, 12);
    let n = ROW_GROUP_ROWS + ROW_GROUP_ROWS / 2;
    let raws: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let at = t + Duration::milliseconds(i as i64);
            event(&format!("big-{i}"), &format!("u{}", i % 97), at, "click")
        })
        .collect();
    assert_eq!(run(&lake, &batch(0, 0, raws.clone())).await, (n, 0, 0));

    let silver = lake.table(Table::Silver).await.unwrap();
    let files: Vec<String> = silver
        .snapshot()
        .unwrap()
        .log_data()
        .iter()
        .map(|f| f.path().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "one run of one date is one file: {files:?}");
    let file = dir.path().join(Table::Silver.path()).join(&files[0]);
    let reader = SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
    let groups: Vec<i64> = reader
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect();
    assert!(groups.len() >= 2, "row groups of {n} rows: {groups:?}");
    assert!(
        groups.iter().all(|&rows| rows as usize <= ROW_GROUP_ROWS),
        "{groups:?}"
    );
    assert_eq!(groups.iter().sum::<i64>() as usize, n);

    // Every group's filter holds its ids: a fresh process finds a resent event of the last group.
    let fresh = Lake::open(dir.path().to_str().unwrap()).unwrap();
    assert_silver_files_carry_id_filters(&fresh).await;
    let resent = vec![raws[n - 1].clone(), event("after-big", "u", t, "click")];
    assert_eq!(run(&fresh, &batch(0, n as i64, resent)).await, (1, 0, 1));
}

#[tokio::test]
async fn dedup_sees_rows_another_writer_committed() {
    let (_dir, lake) = lake();
    let t = Utc::now() - Duration::hours(3);
    assert_eq!(
        run(&lake, &batch(0, 0, vec![event("w1", "u", t, "page_view")])).await,
        (1, 0, 0)
    );
    // Another writer appends event w2 to silver after this process last saw the table.
    let raw = event("w2", "u", t, "click");
    append_to_silver_elsewhere(&lake, std::slice::from_ref(&raw), "other-writer").await;
    assert_eq!(
        run(&lake, &batch(0, 1, vec![raw, event("w3", "u", t, "click")])).await,
        (1, 0, 1)
    );
    assert_eq!(count(&lake, Table::Silver).await, 3);
}

#[tokio::test]
async fn late_event_for_an_old_date_updates_that_date() {
    let (_dir, lake) = lake();
    let today = Utc::now() - Duration::minutes(30);
    // Mid-morning five days ago, so that the late events below stay on the same date whatever
    // the time of day the test runs.
    let old = (today.date_naive() - Duration::days(5))
        .and_hms_opt(10, 0, 0)
        .unwrap()
        .and_utc();
    let current: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            event(
                &format!("n{i}"),
                &format!("u{}", i % 3),
                old + Duration::days(i % 3) + Duration::minutes(i),
                "page_view",
            )
        })
        .chain((0..4).map(|i| {
            event(
                &format!("t{i}"),
                "u9",
                today - Duration::minutes(i),
                "click",
            )
        }))
        .collect();
    run(&lake, &batch(0, 0, current)).await;
    assert_gold_equals_from_scratch(&lake).await;
    let dau_before = dau_on(&lake, old.date_naive()).await;

    // A late event from a new user, and one that bridges an existing session, for the old date.
    let late = vec![
        event("late-1", "u-late", old + Duration::hours(1), "page_view"),
        event("late-2", "u0", old + Duration::minutes(20), "purchase"),
    ];
    assert_eq!(run(&lake, &batch(1, 0, late)).await, (2, 0, 0));
    assert_eq!(dau_on(&lake, old.date_naive()).await, dau_before + 1);
    assert_gold_equals_from_scratch(&lake).await;
}

/// Gold keeps the session rows of the dates it rewrites warm between runs. When another writer
/// changes gold/sessions in between (here one user's sessions go, as an erasure stopped before
/// its last commit leaves them), the next run reads them again instead of writing its copy back.
#[tokio::test]
async fn gold_reads_sessions_again_after_another_writer_changed_them() {
    let (_dir, lake) = lake();
    let day = days_ago_at(3, 10);
    run(&lake, &batch(0, 0, events("a", 8, day))).await;
    let session_users = |batches: Vec<RecordBatch>| -> Vec<String> {
        let mut users: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                let keys = b.column_by_name("user_key").unwrap().as_string::<i32>();
                keys.iter()
                    .flatten()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        users.sort();
        users.dedup();
        users
    };
    assert_eq!(
        session_users(read_all(&lake, Table::Sessions).await),
        ["u0", "u1", "u2", "u3"]
    );
    lake.table(Table::Sessions)
        .await
        .unwrap()
        .delete()
        .with_predicate("user_key = 'u0'")
        .await
        .unwrap();

    let next = event("b0", "u1", day + Duration::minutes(30), "click");
    run(&lake, &batch(1, 0, vec![next])).await;
    assert_eq!(
        session_users(read_all(&lake, Table::Sessions).await),
        ["u1", "u2", "u3"],
        "the run wrote back sessions another writer had removed"
    );
}

/// A gold process starts each run from what it kept of its last one, also after a run that only
/// moved the watermark (all its rows duplicates), and reads the tables afresh once another
/// writer committed to any gold table in between.
#[tokio::test]
async fn gold_stays_warm_between_its_own_runs_and_reads_afresh_after_another_writer() {
    let (_dir, lake) = lake();
    let day = days_ago_at(3, 10);
    let warm = |(_, gold): (_, Vec<clickstream::gold::GoldOutcome>)| -> Vec<bool> {
        gold.iter().map(|o| o.warm).collect()
    };
    assert_eq!(
        warm(run_stages(&lake, &batch(0, 0, events("a", 8, day))).await),
        [false]
    );
    let later = day + Duration::minutes(10);
    assert_eq!(
        warm(run_stages(&lake, &batch(0, 8, events("b", 8, later))).await),
        [true]
    );
    let again = run_stages(&lake, &batch(1, 0, events("a", 8, day))).await;
    assert_eq!(again.1.iter().map(|o| o.new_events).sum::<usize>(), 0);
    assert_eq!(warm(again), [true]);
    let later = day + Duration::minutes(20);
    assert_eq!(
        warm(run_stages(&lake, &batch(0, 16, events("c", 8, later))).await),
        [true]
    );

    lake.table(Table::FunnelDaily)
        .await
        .unwrap()
        .write(vec![RecordBatch::new_empty(Table::FunnelDaily.schema())])
        .await
        .unwrap();
    let later = day + Duration::minutes(30);
    assert_eq!(
        warm(run_stages(&lake, &batch(0, 24, events("d", 8, later))).await),
        [false]
    );
    assert_gold_equals_from_scratch(&lake).await;
}

/// A lake with two gold runs of eight users' events, two days ago, 20 minutes apart; that day.
async fn lake_with_two_gold_runs() -> (tempfile::TempDir, Lake, chrono::DateTime<Utc>) {
    let (dir, lake) = lake();
    let day = days_ago_at(2, 10);
    run(&lake, &batch(0, 0, events("a", 8, day))).await;
    run(
        &lake,
        &batch(0, 8, events("b", 8, day + Duration::minutes(20))),
    )
    .await;
    (dir, lake, day)
}

/// Gold commits its tables but gold/anonymous_ids at once, so a writer that dies among those
/// commits can leave any of them in and the others not: here gold/sessions and gold/page_daily
/// are in, gold/daily_users, gold/daily_metrics, gold/funnel_daily and gold/anonymous_ids are
/// not. A fresh process's next run finishes them, and gold equals a from-scratch computation.
#[tokio::test]
async fn a_gold_run_stopped_among_its_commits_is_finished_by_the_next() {
    let (dir, _, day) = lake_with_two_gold_runs().await;
    for table in [
        Table::AnonymousIds,
        Table::DailyUsers,
        Table::DailyMetrics,
        Table::FunnelDaily,
    ] {
        lose_newest_commit(dir.path(), table, "\"appId\":\"silver\"");
    }

    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    run(
        &lake,
        &batch(0, 16, events("c", 8, day + Duration::minutes(40))),
    )
    .await;
    assert_gold_equals_from_scratch(&lake).await;
}

/// A run that committed some gold tables and lost the race for the others may have read the
/// tables while an erasure was between its commits: a table it wrote then holds what the
/// erasure removed, at the new watermark. The next run, even with no new silver rows, writes
/// every table again from its own reads, so gold equals a from-scratch computation again.
#[tokio::test]
async fn a_run_finishing_a_beaten_one_writes_every_gold_table_again() {
    let (dir, lake, _) = lake_with_two_gold_runs().await;
    lose_newest_commit(dir.path(), Table::AnonymousIds, "\"appId\":\"silver\"");
    // gold/page_daily as the beaten run wrote it from stale reads: here, nothing.
    let pages = lake.table(Table::PageDaily).await.unwrap();
    let watermark = clickstream::lake::txn_version(&pages, "silver")
        .await
        .unwrap()
        .unwrap();
    pages
        .write(vec![RecordBatch::new_empty(Table::PageDaily.schema())])
        .with_save_mode(deltalake::protocol::SaveMode::Overwrite)
        .with_commit_properties(clickstream::lake::commit_properties(
            "silver",
            watermark,
            json!({}),
        ))
        .await
        .unwrap();

    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    functions::gold_transformer(
        &lake,
        &commit_event(&lake, Table::Silver, 0),
        &parse_funnel(None),
    )
    .await
    .unwrap();
    assert_gold_equals_from_scratch(&lake).await;
}

/// Late events that join two runs across midnight, or lengthen a run of over 24 hours at both
/// ends, beside a user whose sessions do not change: gold recomputes the changed runs exactly.
#[tokio::test]
async fn late_events_joining_runs_across_midnight_keep_gold_exact() {
    let (_dir, lake) = lake();
    let midnight = days_ago_at(4, 0);
    let mut first = vec![
        // u1: two runs 40 minutes apart across midnight, and a morning run.
        event("a1", "u1", midnight - Duration::minutes(20), "page_view"),
        event("a2", "u1", midnight + Duration::minutes(20), "page_view"),
        event("a3", "u1", midnight + Duration::hours(9), "page_view"),
        // u3: a session across the same midnight that no late event touches.
        event("c1", "u3", midnight - Duration::minutes(10), "page_view"),
        event("c2", "u3", midnight + Duration::minutes(5), "click"),
    ];
    // u2: an event every 20 minutes for 26 hours from noon the day before (two sessions).
    first.extend((0..=78).map(|i| {
        event(
            &format!("b{i}"),
            "u2",
            midnight - Duration::hours(12) + Duration::minutes(20 * i),
            "click",
        )
    }));
    run(&lake, &batch(0, 0, first)).await;
    assert_gold_equals_from_scratch(&lake).await;
    let sessions_before = count(&lake, Table::Sessions).await;

    let late = vec![
        event("late-a", "u1", midnight, "purchase"),
        event(
            "late-b1",
            "u2",
            midnight + Duration::hours(14) + Duration::minutes(15),
            "page_view",
        ),
        event(
            "late-b2",
            "u2",
            midnight - Duration::hours(12) - Duration::minutes(25),
            "page_view",
        ),
    ];
    assert_eq!(run(&lake, &batch(1, 0, late)).await, (3, 0, 0));
    assert_gold_equals_from_scratch(&lake).await;
    // u1's two runs became one session; u2 still has two, u3 one.
    assert_eq!(count(&lake, Table::Sessions).await, sessions_before - 1);
}

async fn dau_on(lake: &Lake, date: chrono::NaiveDate) -> i64 {
    use arrow::array::AsArray;
    use arrow::datatypes::{Date32Type, Int64Type};
    let day = clickstream::lake::to_days(date);
    for b in read_all(lake, Table::DailyMetrics).await {
        let d = b
            .column_by_name("date")
            .unwrap()
            .as_primitive::<Date32Type>();
        let dau = b.column_by_name("dau").unwrap().as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            if d.value(i) == day {
                return dau.value(i);
            }
        }
    }
    0
}

#[tokio::test]
async fn generated_stream_reconciles_and_gold_equals_from_scratch() {
    let (_dir, lake) = lake();
    let mut cfg = clickstream_generator::GeneratorConfig::new(4_000);
    cfg.days = 3;
    cfg.late_rate = 0.05;
    cfg.duplicate_rate = 0.03;
    cfg.invalid_rate = 0.02;
    let records: Vec<Vec<u8>> = clickstream_generator::Generator::new(cfg).collect();
    let (mut valid, mut quarantined, mut dups) = (0, 0, 0);
    for (i, chunk) in records.chunks(700).enumerate() {
        let (v, q, d) = run(
            &lake,
            &batch((i % 3) as i32, i as i64 * 1000, chunk.to_vec()),
        )
        .await;
        valid += v;
        quarantined += q;
        dups += d;
    }
    assert_eq!(valid + quarantined + dups, 4_000);
    assert!(dups > 0 && quarantined > 0);
    assert_eq!(count(&lake, Table::Silver).await, valid);
    assert_eq!(count(&lake, Table::Quarantine).await, quarantined);
    assert_gold_equals_from_scratch(&lake).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_opening_a_new_table_at_once_all_get_it() {
    let (_dir, lake) = lake();
    let opens = (0..8).map(|_| {
        let lake = lake.clone();
        tokio::spawn(async move { lake.table(Table::Bronze).await })
    });
    for open in futures::future::join_all(opens).await {
        let table = open.unwrap().unwrap();
        assert_eq!(table.version(), Some(0), "one create, seen by every writer");
    }
}
