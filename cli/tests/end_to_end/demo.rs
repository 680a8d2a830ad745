//! End to end: `clickstream demo` on a few thousand events, then reconciliation and gold checked
//! against an independent from-scratch computation in DuckDB SQL over silver.

use std::process::Command;

use clickstream::export::{load_duckdb_table, parquet_bytes};
use clickstream::lake::{Lake, Table, conform};

fn demo(lake_dir: &std::path::Path, events: usize) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_clickstream"))
        .args([
            "demo",
            "--json",
            "--days",
            "4",
            "--batch-size",
            "700",
            "--late-rate",
            "0.03",
        ])
        .args([
            "--events",
            &events.to_string(),
            "--lake",
            lake_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Independent SQL over silver: each event under its person (the stitching rule), sessions by the
/// gap rule, then the gold figures.
const FROM_SCRATCH: &str = r#"
CREATE TEMP TABLE links AS
  SELECT anonymous_id, user_id AS linked_user FROM (
    SELECT anonymous_id, user_id,
           row_number() OVER (PARTITION BY anonymous_id ORDER BY event_time DESC, event_id DESC) AS r
    FROM silver WHERE coalesce(anonymous_id, '') <> '' AND coalesce(user_id, '') <> '')
  WHERE r = 1;
CREATE TEMP TABLE people AS
  SELECT silver.* REPLACE (coalesce(nullif(silver.user_id, ''), links.linked_user, silver.user_key) AS user_key)
  FROM silver LEFT JOIN links ON silver.anonymous_id = links.anonymous_id;
CREATE TEMP TABLE ev AS
  SELECT *, epoch_us(event_time) AS us,
         row_number() OVER (PARTITION BY user_key ORDER BY event_time, event_id) AS ord
  FROM people;
CREATE TEMP TABLE marked AS
  SELECT *, CASE WHEN us - lag(us) OVER w > 1800000000 OR lag(us) OVER w IS NULL THEN 1 ELSE 0 END AS brk
  FROM ev WINDOW w AS (PARTITION BY user_key ORDER BY ord);
CREATE TEMP TABLE numbered AS
  SELECT *, sum(brk) OVER (PARTITION BY user_key ORDER BY ord) AS sn FROM marked;
CREATE TEMP TABLE s AS
  SELECT user_key, sn, arg_min(event_date, ord) AS session_date, count(*) AS events,
         count(*) FILTER (WHERE event_type = 'page_view') AS page_views,
         (max(us) - min(us)) / 1e6 AS duration_s,
         bool_or(event_type = 'purchase') AS converted,
         count(*) = 1 AND count(*) FILTER (WHERE event_type = 'page_view') = 1 AS is_bounce
  FROM numbered GROUP BY user_key, sn;
CREATE TEMP TABLE days AS SELECT DISTINCT event_date AS d FROM people;
CREATE TEMP TABLE expected_daily AS
  SELECT days.d AS date,
    (SELECT count(DISTINCT user_key) FROM people WHERE event_date = days.d) AS dau,
    (SELECT count(DISTINCT user_key) FROM people WHERE event_date BETWEEN days.d - 6 AND days.d) AS wau,
    (SELECT count(DISTINCT user_key) FROM people WHERE event_date BETWEEN days.d - 29 AND days.d) AS mau,
    (SELECT count(*) FROM s WHERE session_date = days.d) AS sessions,
    (SELECT count(*) FROM people WHERE event_date = days.d) AS events,
    (SELECT count(*) FROM people WHERE event_date = days.d AND event_type = 'page_view') AS page_views,
    (SELECT coalesce(avg(duration_s), 0) FROM s WHERE session_date = days.d) AS avg_session_duration_s,
    (SELECT coalesce(avg(is_bounce::INT), 0) FROM s WHERE session_date = days.d) AS bounce_rate,
    (SELECT coalesce(avg(converted::INT), 0) FROM s WHERE session_date = days.d) AS conversion_rate
  FROM days;
CREATE TEMP TABLE f1 AS SELECT user_key, sn, min(ord) AS o FROM numbered WHERE event_type = 'view_product' GROUP BY ALL;
CREATE TEMP TABLE f2 AS SELECT n.user_key, n.sn, min(n.ord) AS o FROM numbered n JOIN f1 USING (user_key, sn)
  WHERE n.event_type = 'add_to_cart' AND n.ord > f1.o GROUP BY ALL;
CREATE TEMP TABLE f3 AS SELECT n.user_key, n.sn, min(n.ord) AS o FROM numbered n JOIN f2 USING (user_key, sn)
  WHERE n.event_type = 'begin_checkout' AND n.ord > f2.o GROUP BY ALL;
CREATE TEMP TABLE f4 AS SELECT n.user_key, n.sn, min(n.ord) AS o FROM numbered n JOIN f3 USING (user_key, sn)
  WHERE n.event_type = 'purchase' AND n.ord > f3.o GROUP BY ALL;
CREATE TEMP TABLE expected_funnel AS
  SELECT session_date AS date, step_index, count(DISTINCT user_key) AS users FROM (
    SELECT s.session_date, s.user_key, 1 AS step_index FROM s JOIN f1 USING (user_key, sn)
    UNION ALL SELECT s.session_date, s.user_key, 2 FROM s JOIN f2 USING (user_key, sn)
    UNION ALL SELECT s.session_date, s.user_key, 3 FROM s JOIN f3 USING (user_key, sn)
    UNION ALL SELECT s.session_date, s.user_key, 4 FROM s JOIN f4 USING (user_key, sn))
  GROUP BY ALL;
"#;

fn scalar(db: &duckdb::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_reconciles_and_gold_matches_sql_from_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let summary = demo(&lake_dir, 5_000);
    let t = &summary["totals"];
    assert_eq!(summary["reconciled"], true);
    assert_eq!(t["received"], 5_000);
    let (valid, quarantined, dups) = (
        t["valid"].as_i64().unwrap(),
        t["quarantined"].as_i64().unwrap(),
        t["duplicates"].as_i64().unwrap(),
    );
    assert_eq!(valid + quarantined + dups, 5_000);
    assert!(
        quarantined > 0 && dups > 0,
        "the generator injects both: {t}"
    );

    let lake = Lake::open(lake_dir.to_str().unwrap()).unwrap();
    let db = duckdb::Connection::open_in_memory().unwrap();
    for table in [Table::Silver, Table::Quarantine] {
        let delta = lake.table(table).await.unwrap();
        let batches: Vec<_> = lake
            .read(&delta, &[], None)
            .await
            .unwrap()
            .iter()
            .map(|b| conform(b, &table.schema()).unwrap())
            .collect();
        let file = dir.path().join(format!("{}.parquet", table.name()));
        std::fs::write(&file, parquet_bytes(&table.schema(), &batches).unwrap()).unwrap();
        load_duckdb_table(&db, table.name(), &table.schema(), &file).unwrap();
    }
    assert_eq!(scalar(&db, "SELECT count(*) FROM events"), valid);
    assert_eq!(
        scalar(&db, "SELECT count(DISTINCT event_id) FROM events"),
        valid
    );
    assert_eq!(scalar(&db, "SELECT count(*) FROM quarantine"), quarantined);

    db.execute_batch("ALTER TABLE events RENAME TO silver;")
        .unwrap();
    db.execute_batch(FROM_SCRATCH).unwrap();
    assert!(
        scalar(&db, "SELECT count(*) FROM s WHERE duration_s > 86400") == 0,
        "the SQL has no 24-hour cap, so the data must not need one"
    );
    let export = lake_dir.join("exports/clickstream.duckdb");
    db.execute_batch(&format!(
        "ATTACH '{}' AS gold (READ_ONLY);",
        export.display()
    ))
    .unwrap();

    assert_eq!(
        scalar(&db, "SELECT count(*) FROM gold.sessions"),
        scalar(&db, "SELECT count(*) FROM s")
    );
    let daily_diff = scalar(
        &db,
        "SELECT count(*) FROM (
           (SELECT date, dau, wau, mau, sessions, events, page_views,
                   round(avg_session_duration_s, 6), round(bounce_rate, 9), round(conversion_rate, 9)
              FROM gold.daily_metrics
            EXCEPT SELECT date, dau, wau, mau, sessions, events, page_views,
                   round(avg_session_duration_s, 6), round(bounce_rate, 9), round(conversion_rate, 9)
              FROM expected_daily)
           UNION ALL
           (SELECT date, dau, wau, mau, sessions, events, page_views,
                   round(avg_session_duration_s, 6), round(bounce_rate, 9), round(conversion_rate, 9)
              FROM expected_daily
            EXCEPT SELECT date, dau, wau, mau, sessions, events, page_views,
                   round(avg_session_duration_s, 6), round(bounce_rate, 9), round(conversion_rate, 9)
              FROM gold.daily_metrics))",
    );
    assert_eq!(
        daily_diff, 0,
        "gold.daily_metrics differs from SQL over silver"
    );
    assert!(scalar(&db, "SELECT count(*) FROM gold.daily_metrics") >= 4);
    let funnel_diff = scalar(
        &db,
        "SELECT count(*) FROM (
           (SELECT date, step_index, users FROM gold.funnel_daily WHERE users > 0
            EXCEPT SELECT date, step_index, users FROM expected_funnel)
           UNION ALL
           (SELECT date, step_index, users FROM expected_funnel
            EXCEPT SELECT date, step_index, users FROM gold.funnel_daily))",
    );
    assert_eq!(
        funnel_diff, 0,
        "gold.funnel_daily differs from SQL over silver"
    );
    assert!(
        scalar(
            &db,
            "SELECT count(*) FROM gold.funnel_daily WHERE step_index = 4 AND users > 0"
        ) > 0
    );
    let page_views = scalar(&db, "SELECT sum(page_views) FROM gold.page_daily");
    assert_eq!(
        page_views,
        scalar(
            &db,
            "SELECT count(*) FROM silver WHERE event_type = 'page_view'"
        )
    );

    for table in ["sessions", "daily_metrics", "funnel_daily", "page_daily"] {
        let csv = std::fs::read_to_string(lake_dir.join(format!("exports/{table}.csv"))).unwrap();
        let rows = scalar(&db, &format!("SELECT count(*) FROM gold.{table}"));
        assert_eq!(csv.lines().count() as i64, rows + 1, "{table}.csv rows");
        assert!(lake_dir.join(format!("exports/{table}.parquet")).exists());
    }

    // `status` shows the same counts, read back from the tables; the demo's events end before
    // today, so gold is older than a minute (exit status 2) and younger than 30 days.
    let lake_arg = lake_dir.to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_clickstream"))
        .args(["status", "--json", "--max-lag", "1m", "--lake", lake_arg])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("gold is stale"));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let days = status["health"]["days"].as_array().unwrap();
    let sum = |key: &str| days.iter().map(|d| d[key].as_i64().unwrap()).sum::<i64>();
    assert_eq!(sum("bronze"), 5_000);
    assert_eq!(sum("silver"), valid);
    assert_eq!(sum("duplicates"), dups);
    let quarantined_by_reason: i64 = days
        .iter()
        .flat_map(|d| d["quarantined"].as_object().unwrap().values())
        .map(|n| n.as_i64().unwrap())
        .sum();
    assert_eq!(quarantined_by_reason, quarantined);
    let (ok, text, stderr) = clickstream(&["status", "--max-lag", "30d", "--lake", lake_arg]);
    assert!(ok, "{stderr}");
    assert!(text.contains("newest event in gold"), "{text}");
}

#[test]
fn ingest_lands_files_and_reaches_gold() {
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let file = dir.path().join("batch one.jsonl.gz");
    let generated = Command::new(env!("CARGO_BIN_EXE_clickstream"))
        .args([
            "generate",
            "--events",
            "800",
            "--days",
            "2",
            "--output",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_clickstream"))
        .args([
            "ingest",
            "--lake",
            lake_dir.to_str().unwrap(),
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("-> OK"), "{stdout}");
    assert!(lake_dir.join("landing/batch one.jsonl.gz").exists());
    assert!(stdout.contains("input 800 ="), "{stdout}");

    let bad = dir.path().join("notes.txt");
    std::fs::write(&bad, "x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_clickstream"))
        .args([
            "ingest",
            "--lake",
            lake_dir.to_str().unwrap(),
            bad.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported file type"));
}

/// Runs `clickstream` with `args`: whether it succeeded, its stdout and its stderr.
pub fn clickstream(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clickstream"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A broken file among others fails the command but not the others' records, a file landed again
/// (a fresh copy) adds nothing, and a lake path that is a file gets a clear error.
#[test]
fn ingest_survives_a_broken_file_and_relanding() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake = lake.to_str().unwrap();
    let good = dir.path().join("good.jsonl");
    let good = good.to_str().unwrap();
    let broken = dir.path().join("broken.jsonl.gz");
    std::fs::write(&broken, b"not gzip at all").unwrap();
    let (ok, _, stderr) = clickstream(&["generate", "--events", "500", "--output", good]);
    assert!(ok, "{stderr}");

    let (ok, stdout, stderr) =
        clickstream(&["ingest", "--lake", lake, good, broken.to_str().unwrap()]);
    assert!(!ok, "a broken file must fail the command");
    assert!(
        stderr.contains("1 of 2 files were not ingested"),
        "{stderr}"
    );
    assert!(
        stderr.contains("broken.jsonl.gz: gzip") && stderr.contains("bronze/failed_files"),
        "{stderr}"
    );
    assert!(
        stdout.contains("input 500 =") && stdout.contains("-> OK"),
        "{stdout}"
    );

    let (ok, stdout, stderr) = clickstream(&["ingest", "--lake", lake, good]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("(500 already written)"), "{stdout}");

    let (ok, _, stderr) = clickstream(&["ingest", "--lake", good, good]);
    assert!(!ok);
    assert!(stderr.contains("is a file"), "{stderr}");
}

/// An S3 endpoint that accepts connections but never answers: the command fails within the
/// configured timeout (`LAKE_TIMEOUT_SECONDS`), saying what it waited for.
#[test]
fn a_store_that_never_answers_fails_within_the_timeout() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((socket, _)) => held.push(socket),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, b"{}\n").unwrap();
    let envs: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("LAKE_TIMEOUT_SECONDS", "2".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let args = vec![
        "ingest".to_string(),
        "--lake".to_string(),
        "s3://never-answers/lake".to_string(),
        file.to_str().unwrap().to_string(),
    ];
    let started = Instant::now();
    let output = crate::concurrent::run_at_once(&[args], &envs, Duration::from_secs(60))
        .pop()
        .unwrap();
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        elapsed < Duration::from_secs(30),
        "took {elapsed:?}: {stderr}"
    );
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(stderr.contains("did not answer within 2 s"), "{stderr}");
}

/// An ingest SIGKILLed once the first chunk of a large file is committed, before the second: ingesting the file again writes only the chunks not yet written, and the lake ends as
/// after one whole ingest (bronze holds each line once, gold equals a from-scratch computation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_killed_between_chunks_of_a_file_resumes_with_the_rest() {
    use std::time::{Duration, Instant};
    let _turn = crate::machine_wide().await;
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let lake_uri = lake_dir.to_str().unwrap();
    let file = dir.path().join("big.jsonl");
    let file = file.to_str().unwrap();
    let lines = 210_000;
    let (ok, _, stderr) = clickstream(&["generate", "--events", "210000", "--output", file]);
    assert!(ok, "{stderr}");

    let mut ingest = Command::new(env!("CARGO_BIN_EXE_clickstream"))
        .args(["ingest", "--lake", lake_uri, file])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Version 0 creates bronze; version 1 is the first chunk.
    let log = lake_dir.join("bronze/events/_delta_log");
    let started = Instant::now();
    while !log.join("00000000000000000001.json").exists() {
        assert!(
            ingest.try_wait().unwrap().is_none(),
            "ingest ended before its first chunk"
        );
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no first chunk"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    ingest.kill().unwrap();
    ingest.wait().unwrap();
    assert!(
        !log.join("00000000000000000002.json").exists(),
        "the kill came after the second chunk"
    );
    // A chunk is at most 100,000 records or 32 MiB.
    let first_chunk = crate::stack::count(&Lake::open(lake_uri).unwrap(), Table::Bronze).await;
    assert!(first_chunk > 0 && first_chunk <= 100_000, "{first_chunk}");

    let (ok, stdout, stderr) = clickstream(&["ingest", "--lake", lake_uri, file]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("({first_chunk} already written)")) && stdout.contains("-> OK"),
        "{stdout}"
    );
    let lake = Lake::open(lake_uri).unwrap();
    let bronze = lake.table(Table::Bronze).await.unwrap();
    let rows: usize = lake
        .read(&bronze, &[], None)
        .await
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, lines, "bronze lost or repeated lines");
    let funnel = clickstream::gold::parse_funnel(None);
    let differences = clickstream_testkit::differences_from_scratch(&lake, &funnel)
        .await
        .unwrap();
    assert!(differences.is_empty(), "{differences:?}");
}
