//! The local stack for real: `localstack/up` starts tansu (Kafka), SeaweedFS (S3), every function
//! as its own process behind cargo-lambda's Lambda runtime API, and the bridge, on ports this test
//! picks; `localstack/down` stops them. Events go in through Kafka and through an S3 put, the
//! bridge is SIGKILLed mid-stream and restarted, and the lake is checked: nothing lost, nothing
//! duplicated, gold equal to a full recomputation, the DuckDB export readable, and
//! `clickstream serve` on the s3:// lake following gold.
//!
//! Needs the tools `scripts/test` installs and the function binaries next to this test's
//! (`cargo build --workspace --bins`, which scripts/test runs); a plain `cargo test` without them
//! skips this test.

use std::time::Duration;

use clickstream::functions::commit_event;
use clickstream::lake::Table;
use clickstream::telemetry::metric;
use clickstream::trigger::{KafkaMessage, kafka_event};
use object_store::{ObjectStoreExt, PutPayload};

use clickstream_report::dashboard::{load, render_html};

use crate::serve::{Server, gold_version, headline_dau};

use crate::stack::{
    BUCKET, Stack, TOPIC, assert_every_record_once, count, read_lines, read_partition, repo_root,
    wait_for, wait_for_export,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_through_kafka_and_s3_reach_gold_exactly_once() {
    let _turn = crate::machine_wide().await;
    // A caller with real-looking credentials and a secret in its environment: the stack uses its
    // own dummy credentials, and neither reaches anything it writes.
    let callers = [
        ("AWS_ACCESS_KEY_ID", "AKIACALLERSOWNKEY"),
        ("AWS_SECRET_ACCESS_KEY", "callers-own-secret-key"),
        ("AWS_SESSION_TOKEN", "callers-own-session-token"),
        ("CALLERS_OTHER_SECRET", "callers-other-secret"),
    ];
    let Some(stack) = Stack::up_with("the local-stack test", &callers) else {
        return;
    };
    assert_nothing_of_the_caller_written(stack.dir.path(), &callers);
    let lake = stack.lake();
    let brokers = format!("127.0.0.1:{}", stack.kafka_port);
    let work = stack.dir.path();

    // The same records twice: to a file (to know what to expect) and to Kafka.
    let mut all = stack.produce("11", 2500);
    wait_for(
        "the first records in bronze",
        Duration::from_secs(120),
        async || count(&lake, Table::Bronze).await > 0,
    )
    .await;
    // Mid-stream: the bridge dies without committing what it was doing and is started again;
    // more records arrive.
    stack.restart("bridge", true);
    all.extend(stack.produce("12", 1500));

    // A file dropped into landing/ with the S3 API.
    let dropped = work.join("dropped.jsonl");
    stack.clickstream(&[
        "generate",
        "--events",
        "300",
        "--seed",
        "13",
        "--days",
        "2",
        "--output",
        dropped.to_str().unwrap(),
    ]);
    // Dropped as three files under keys with characters S3 allows and object_store's
    // `Path::from` would re-encode, with a decompression bomb landed between them: the bomb is
    // recorded in bronze/failed_files and the files after it still land.
    let lines = read_lines(&dropped);
    all.extend(lines.iter().cloned());
    let store = lake.store().unwrap();
    let put = async |key: &str, bytes: Vec<u8>| {
        let path = object_store::path::Path::parse(key).unwrap();
        store.put(&path, PutPayload::from(bytes)).await.unwrap();
    };
    // 807 bytes (S3 allows 1,024; the S3 store here, like a file system, 255 per segment).
    let segment = |c: &str| c.repeat(200);
    let long_key = format!(
        "landing/{}/{}/{}/{}.jsonl",
        segment("d"),
        segment("e"),
        segment("f"),
        "n".repeat(190)
    );
    let keys = [
        "landing/50% off #1 [x] ~.jsonl",
        "landing/ünïcødé/a+b=c&d 🙂.jsonl",
        long_key.as_str(),
    ];
    for (key, part) in keys
        .iter()
        .zip(lines.chunks(lines.len().div_ceil(keys.len())))
    {
        put(key, part.join(&b'\n')).await;
        if key.contains('%') {
            put("landing/bomb #2.jsonl.gz", crate::stack::gzip_bomb()).await;
        }
    }

    assert_every_record_once(&lake, &all, Duration::from_secs(300)).await;
    wait_for(
        "the bomb in bronze/failed_files",
        Duration::from_secs(60),
        async || count(&lake, Table::FailedFiles).await == 1,
    )
    .await;

    // The silver-transformer's metrics (EMF lines in its log, as `clickstream status --logs`
    // shows them) reconcile over the whole run: every bronze row in, each out, quarantined, a
    // duplicate or suppressed.
    let bronze_rows = count(&lake, Table::Bronze).await as f64;
    let logs = stack.dir.path().join("logs");
    let status = || -> serde_json::Value {
        let out = stack.clickstream_output(&["status", "--json", "--logs", logs.to_str().unwrap()]);
        serde_json::from_str(&out).unwrap()
    };
    let silver_sum = |status: &serde_json::Value, name: &str| {
        status["emitted"]["silver-transformer"][name]["sum"]
            .as_f64()
            .unwrap_or(0.0)
    };
    wait_for(
        "silver's emitted metrics to take in every bronze row",
        Duration::from_secs(60),
        async || silver_sum(&status(), metric::RECORDS_IN) == bronze_rows,
    )
    .await;
    let shown = status();
    let sum = |name: &str| silver_sum(&shown, name);
    assert_eq!(
        sum(metric::RECORDS_IN),
        sum(metric::RECORDS_OUT)
            + sum(metric::QUARANTINED)
            + sum(metric::DUPLICATES)
            + sum(metric::SUPPRESSED),
        "{shown}"
    );
    assert_eq!(
        sum(metric::QUARANTINED),
        sum(metric::QUARANTINED_BY_REASON),
        "{shown}"
    );
    assert!(
        sum(metric::QUARANTINED) > 0.0 && sum(metric::DUPLICATES) > 0.0,
        "{shown}"
    );
    // The store traffic of every function is metered, and gold reports its freshness.
    for f in ["bronze-writer", "silver-transformer", "gold-transformer"] {
        let requests = &shown["emitted"][f][metric::STORE_REQUESTS]["sum"];
        assert!(requests.as_f64().unwrap_or(0.0) > 0.0, "{f}: {shown}");
    }
    assert!(
        shown["emitted"]["gold-transformer"][metric::FRESHNESS]["samples"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{shown}"
    );
    // The tables' side of the same: every bronze row, in silver, quarantined or a duplicate.
    let days = shown["health"]["days"].as_array().unwrap();
    let day_sum = |key: &str| days.iter().map(|d| d[key].as_f64().unwrap()).sum::<f64>();
    assert_eq!(day_sum("bronze"), bronze_rows, "{shown}");

    // The scheduled export: a DuckDB file whose sessions are gold's.
    let store = lake.store().unwrap();
    wait_for_export(&lake, &work.join("export.duckdb"), Duration::from_secs(60)).await;

    // `clickstream serve` on the s3:// lake shows gold's headline and version (a version between
    // those read just before and just after; maintenance may commit meanwhile).
    let lake_uri = format!("s3://{BUCKET}/");
    let gold_version_now = async || {
        let v = clickstream::gold::processed_silver_version(&lake).await;
        v.unwrap().expect("gold has processed silver")
    };
    let before = gold_version_now().await;
    let (server, page) = Server::start(&lake_uri, &stack.env()).await;
    let after = gold_version_now().await;
    let expected = render_html(&load(&lake, Default::default()).await.unwrap());
    assert_eq!(headline_dau(&page), headline_dau(&expected));
    let shown_version = gold_version(&page);
    let shown: i64 = shown_version.parse().unwrap();
    assert!(
        (before..=after).contains(&shown),
        "{shown} not in {before}..={after}"
    );

    // bronze-writer handed an already-processed batch again (as Kafka redelivers): the first
    // records of partition 0, read back from the broker. Nothing changes.
    let first = read_partition(&brokers, TOPIC, 0, 50);
    let bronze_before = count(&lake, Table::Bronze).await;
    let redelivery = serde_json::to_vec(&kafka_event(&brokers, TOPIC, &first)).unwrap();
    let response = stack.invoke("bronze-writer", &redelivery).await.unwrap();
    assert_eq!(response[0]["written"], 0, "{response}");
    assert_eq!(count(&lake, Table::Bronze).await, bronze_before);

    // Two silver invocations for consecutive bronze commits at the same time (the bridge is
    // stopped so that it does not deliver them first): both land, the shared event once.
    stack.kill_bridge();
    let event = |id: &str| {
        serde_json::to_vec(&serde_json::json!({
            "event_id": id, "event_type": "page_view", "anonymous_id": "racer",
            "event_time": (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339(),
            "page_url": "https://shop.example/race",
        }))
        .unwrap()
    };
    let mut versions = Vec::new();
    for (first_offset, ids) in [(0, ["r1", "r2", "r3"]), (3, ["r3", "r4", "r5"])] {
        let messages: Vec<KafkaMessage> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| KafkaMessage {
                offset: first_offset + i as i64,
                value: Some(event(id)),
                ..Default::default()
            })
            .collect();
        let batch = serde_json::to_vec(&kafka_event(&brokers, "race", &messages)).unwrap();
        let response = stack.invoke("bronze-writer", &batch).await.unwrap();
        versions.push(response[0]["version"].as_i64().expect("a bronze commit"));
    }
    let silver_before = count(&lake, Table::Silver).await;
    let notify = |v: i64| serde_json::to_vec(&commit_event(&lake, Table::Bronze, v)).unwrap();
    let (first_commit, second_commit) = (notify(versions[0]), notify(versions[1]));
    let (a, b) = tokio::join!(
        stack.invoke("silver-transformer", &first_commit),
        stack.invoke("silver-transformer", &second_commit)
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(count(&lake, Table::Silver).await, silver_before + 5);

    // Each function process answers its events/ sample (with the bridge still stopped, so that
    // maintenance does not race its deliveries).
    let samples = repo_root().join("events");
    store
        .put(
            &"landing/2026-11-28/web events (1).jsonl".into(),
            PutPayload::from(std::fs::read(samples.join("landed-sample.jsonl")).unwrap()),
        )
        .await
        .unwrap();
    for (function, sample) in [
        ("bronze-writer", "kafka.json"),
        ("bronze-writer", "s3-landing.json"),
        ("silver-transformer", "s3-bronze-commit.json"),
        ("gold-transformer", "s3-silver-commit.json"),
        ("exporter", "schedule-exporter.json"),
        ("maintenance", "schedule-maintenance.json"),
    ] {
        let payload = std::fs::read(samples.join(sample)).unwrap();
        if let Err(e) = stack.invoke(function, &payload).await {
            panic!("{function} failed on events/{sample}: {e}");
        }
    }
    // The schedule samples are exactly what the deployment's schedules send.
    for function in ["exporter", "maintenance"] {
        let sample: serde_json::Value = serde_json::from_slice(
            &std::fs::read(samples.join(format!("schedule-{function}.json"))).unwrap(),
        )
        .unwrap();
        let deployed: serde_json::Value =
            serde_json::from_slice(&stack.scheduled_input(function)).unwrap();
        assert_eq!(
            sample, deployed,
            "events/schedule-{function}.json is not what the deployed schedule sends"
        );
    }
    // localstack/land: a file put in landing/ and bronze-writer invoked with its notification.
    let bronze_before = count(&lake, Table::Bronze).await;
    let sample = samples.join("landed-sample.jsonl");
    let answer = stack.script("land", &[sample.to_str().unwrap(), "by-land.jsonl"], &[]);
    let answer: serde_json::Value = serde_json::from_str(answer.trim()).unwrap();
    assert_eq!(answer[0]["written"], 3, "{answer}");
    assert_eq!(count(&lake, Table::Bronze).await, bronze_before + 3);
    // localstack/cold-start as silver's cold start is measured: new events landed before each
    // invocation (BEFORE_EACH), so that the fresh process and the warm one each have work.
    let silver_before = count(&lake, Table::Silver).await;
    let batch = work.join("cold-start.jsonl");
    let before_each = format!(
        "n=$(date +%s%N); {} generate --events 20 --seed $n --invalid-rate 0 --duplicate-rate 0 \
         --output {} && localstack/land {} cold-$n.jsonl",
        env!("CARGO_BIN_EXE_clickstream"),
        batch.display(),
        batch.display()
    );
    let timings = stack.script(
        "cold-start",
        &["silver-transformer", "s3-bronze-commit.json", "1"],
        &[("BEFORE_EACH", &before_each)],
    );
    let round: Vec<&str> = timings
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert!(
        round.len() == 4
            && round[1..3]
                .iter()
                .all(|t| t.split('/').all(|ms| ms.parse::<u32>().is_ok())),
        "a round: number, first and warm times (caller/handler ms), init: {timings}"
    );
    assert_eq!(count(&lake, Table::Silver).await, silver_before + 40);

    // Gold has moved on (the racing silver commits, the samples): so has the served page.
    server
        .changed_from(&shown_version, Duration::from_secs(10))
        .await;
    drop(server);

    // Eight ingests at once into another lake on the same S3 store (a prefix the bridge does not
    // watch): nothing lost or doubled there either.
    let other_uri = format!("s3://{BUCKET}/concurrent/");
    let other = stack.lake_at(&other_uri);
    crate::concurrent::ingests_at_once(work, &other_uri, &stack.env(), other).await;

    // `down` signals only the processes `up` started: a pid file whose PID now belongs to another
    // process (here one of this test's) leaves that process alone. `--purge` removes everything
    // the stack wrote.
    assert_nothing_of_the_caller_written(stack.dir.path(), &callers);
    let mut impostor = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .unwrap();
    let pids = stack.dir.path().join("pids");
    std::fs::write(pids.join("impostor.pid"), impostor.id().to_string()).unwrap();
    std::fs::write(pids.join("impostor.started"), "1").unwrap();
    stack.script("down", &["--purge"], &[]);
    let still_running = impostor.try_wait().unwrap().is_none();
    impostor.kill().unwrap();
    impostor.wait().unwrap();
    assert!(
        still_running,
        "down signalled a process the stack did not start"
    );
    // What the stack wrote is gone; this test's own files (the generated events, the export it
    // fetched) stay.
    let left: Vec<_> = ["env", "cmd", "pids", "logs", "data", "deploy"]
        .map(|p| stack.dir.path().join(p))
        .into_iter()
        .filter(|p| p.exists())
        .collect();
    assert!(left.is_empty(), "down --purge left {left:?}");
}

/// No file the stack wrote holds a value of `callers` (their environment); the stack's folder is
/// its user's alone (mode 700), and so is every file the scripts write there themselves (umask
/// 077; the tools they run, Terraform and the S3 store, set the modes of their own files, inside
/// that folder).
fn assert_nothing_of_the_caller_written(dir: &std::path::Path, callers: &[(&str, &str)]) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    let scripts_own = ["env", "cmd", "pids", "logs", "deploy/credentials"].map(|p| dir.join(p));
    let mut checked = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if scripts_own.iter().any(|own| path.starts_with(own)) {
            let mode = mode(&path);
            assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", path.display());
        }
        if meta.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if meta.is_file() && meta.len() < 16 << 20 {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            for (name, value) in callers {
                assert!(
                    !text.contains(value),
                    "{} holds the caller's {name}",
                    path.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 10, "only {checked} files checked");
}
