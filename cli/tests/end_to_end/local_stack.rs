//! The local stack for real: `localstack/up` starts tansu (Kafka), SeaweedFS (S3), every function
//! as its own process behind cargo-lambda's Lambda runtime API, and the bridge, on ports this test
//! picks; `localstack/down` stops them. Events go in through Kafka and through an S3 put, the
//! bridge is SIGKILLed mid-stream and restarted, and the lake is checked: nothing lost, nothing
//! duplicated, gold equal to a full recomputation, the DuckDB export readable.
//!
//! Needs the tools `scripts/test` installs and the function binaries next to this test's
//! (`cargo test --workspace --all-targets` builds them).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use clickstream::functions::{commit_event, parse_funnel};
use clickstream::gold::differences_from_scratch;
use clickstream::lake::{Lake, Table};
use clickstream::trigger::{KafkaMessage, kafka_event};
use object_store::{ObjectStoreExt, PutPayload};

const BUCKET: &str = "clickstream-lake";
const TOPIC: &str = "clickstream-events";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

fn bin_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_clickstream"))
        .parent()
        .unwrap()
        .to_path_buf();
    for f in [
        "bronze-writer",
        "silver-transformer",
        "gold-transformer",
        "exporter",
    ] {
        assert!(
            dir.join(f).exists(),
            "{f} is not built in {}: run `cargo build --workspace --bins` (scripts/test does)",
            dir.display()
        );
    }
    dir
}

/// A running stack in a temporary directory, stopped when dropped.
struct Stack {
    dir: tempfile::TempDir,
    kafka_port: u16,
    s3_port: u16,
    lambda_port: u16,
    http: reqwest::Client,
}

impl Stack {
    fn up() -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let stack = Stack {
            dir,
            kafka_port: free_port(),
            s3_port: free_port(),
            lambda_port: free_port(),
            http: reqwest::Client::new(),
        };
        let out = Command::new(repo().join("localstack/up"))
            .envs(stack.settings())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "localstack/up failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        stack
    }

    /// What `localstack/up` is given.
    fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("STACK_DIR", self.dir.path().display().to_string()),
            ("BIN_DIR", bin_dir().display().to_string()),
            ("KAFKA_PORT", self.kafka_port.to_string()),
            ("S3_PORT", self.s3_port.to_string()),
            ("LAMBDA_PORT", self.lambda_port.to_string()),
            ("BUCKET", BUCKET.into()),
            ("EXPORT_EVERY", "2".into()),
            ("KAFKA_BATCH_SIZE", "1000".into()),
            ("BRIDGE_POLL_MS", "100".into()),
        ]
    }

    /// The variables `localstack/up` wrote to STACK_DIR/env.
    fn env(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.dir.path().join("env"))
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn lake(&self) -> Lake {
        self.lake_at(&format!("s3://{BUCKET}/"))
    }

    /// A lake at `uri` on this stack's S3 store.
    fn lake_at(&self, uri: &str) -> Lake {
        let options: HashMap<String, String> = self
            .env()
            .into_iter()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        Lake::with_options(uri.parse().unwrap(), options)
    }

    fn clickstream(&self, args: &[&str]) {
        let out = Command::new(env!("CARGO_BIN_EXE_clickstream"))
            .args(args)
            .envs(self.env())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "clickstream {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn bridge_pid_file(&self) -> PathBuf {
        self.dir.path().join("pids/bridge.pid")
    }

    fn kill_bridge(&self) {
        let pid = std::fs::read_to_string(self.bridge_pid_file()).unwrap();
        let status = Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::remove_file(self.bridge_pid_file()).unwrap();
    }

    /// Starts the bridge again the way `localstack/up` does; `localstack/down` stops it.
    fn start_bridge(&self) {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("logs/bridge.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_clickstream"))
            .args(["local", "bridge", "--export-every", "2", "--poll-ms", "100"])
            .arg("--state")
            .arg(self.dir.path().join("data/bridge-state.json"))
            .envs(self.env())
            .env("KAFKA_BATCH_SIZE", "1000")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        std::fs::write(self.bridge_pid_file(), child.id().to_string()).unwrap();
    }

    /// Invokes a function over the Lambda Invoke API; its response, or the error it returned.
    async fn invoke(&self, function: &str, payload: &[u8]) -> Result<serde_json::Value, String> {
        let url = format!(
            "http://127.0.0.1:{}/2015-03-31/functions/{function}/invocations",
            self.lambda_port
        );
        let response = self
            .http
            .post(url)
            .body(payload.to_vec())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let failed = !response.status().is_success()
            || response.headers().contains_key("x-amz-function-error");
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if failed {
            return Err(String::from_utf8_lossy(&body).into_owned());
        }
        Ok(serde_json::from_slice(&body).unwrap_or_default())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("localstack/down"))
            .env("STACK_DIR", self.dir.path())
            .status();
    }
}

async fn rows(lake: &Lake, table: Table) -> Vec<RecordBatch> {
    let t = lake.table(table).await.unwrap();
    lake.read(&t, &[], None).await.unwrap()
}

async fn count(lake: &Lake, table: Table) -> usize {
    rows(lake, table)
        .await
        .iter()
        .map(RecordBatch::num_rows)
        .sum()
}

/// Polls `done` until it holds or `limit` passes.
async fn wait_for<F: AsyncFnMut() -> bool>(what: &str, limit: Duration, mut done: F) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Expected (silver, quarantined, duplicates) for these records, by the same validation rules.
fn expected_counts(lines: &[Vec<u8>]) -> (usize, usize, usize) {
    let now = chrono::Utc::now();
    let mut ids = HashSet::new();
    let (mut quarantined, mut duplicates) = (0, 0);
    for line in lines {
        match clickstream::event::validate(line, now) {
            Ok(e) => {
                if !ids.insert(e.event_id) {
                    duplicates += 1;
                }
            }
            Err(_) => quarantined += 1,
        }
    }
    (ids.len(), quarantined, duplicates)
}

/// The first `n` records of partition 0 of the topic, as the bridge delivered them.
fn read_partition_start(brokers: &str, n: usize) -> Vec<KafkaMessage> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut messages = Vec::new();
    let started = Instant::now();
    while messages.len() < n && started.elapsed() < Duration::from_secs(30) {
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            let m = m.unwrap();
            messages.push(KafkaMessage {
                partition: m.partition(),
                offset: m.offset(),
                timestamp_ms: m.timestamp().to_millis().unwrap_or_default(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                ..Default::default()
            });
        }
    }
    assert_eq!(messages.len(), n, "could not read back partition 0");
    messages
}

fn read_lines(path: &Path) -> Vec<Vec<u8>> {
    std::fs::read(path)
        .unwrap()
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_through_kafka_and_s3_reach_gold_exactly_once() {
    let _turn = crate::machine_wide();
    let stack = Stack::up();
    let lake = stack.lake();
    let brokers = format!("127.0.0.1:{}", stack.kafka_port);
    let work = stack.dir.path();

    // The same records twice: to a file (to know what to expect) and to Kafka.
    let mut all = Vec::new();
    let mut produce = |seed: &str, events: &str| {
        let file = work.join(format!("seed-{seed}.jsonl"));
        let common = ["--events", events, "--seed", seed, "--days", "2"];
        let to_file = ["generate", "--output", file.to_str().unwrap()];
        let to_kafka = ["generate", "--brokers", &brokers, "--topic", TOPIC];
        stack.clickstream(&[&to_file[..], &common].concat());
        stack.clickstream(&[&to_kafka[..], &common].concat());
        all.extend(read_lines(&file));
    };
    produce("11", "2500");
    wait_for(
        "the first records in bronze",
        Duration::from_secs(120),
        async || count(&lake, Table::Bronze).await > 0,
    )
    .await;
    // Mid-stream: the bridge dies without committing what it was doing, more records arrive.
    stack.kill_bridge();
    produce("12", "1500");
    stack.start_bridge();

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
    all.extend(read_lines(&dropped));
    lake.store()
        .unwrap()
        .put(
            &"landing/dropped.jsonl".into(),
            PutPayload::from(std::fs::read(&dropped).unwrap()),
        )
        .await
        .unwrap();

    let (valid, quarantined, duplicates) = expected_counts(&all);
    assert_eq!(valid + quarantined + duplicates, all.len());
    wait_for(
        "silver and quarantine to take every record",
        Duration::from_secs(300),
        async || {
            count(&lake, Table::Silver).await + count(&lake, Table::Quarantine).await
                >= valid + quarantined
        },
    )
    .await;
    assert_eq!(
        count(&lake, Table::Bronze).await,
        all.len(),
        "bronze lost or repeated records"
    );
    assert_eq!(count(&lake, Table::Silver).await, valid);
    assert_eq!(count(&lake, Table::Quarantine).await, quarantined);
    let mut ids = HashSet::new();
    for b in rows(&lake, Table::Silver).await {
        let col = b.column_by_name("event_id").unwrap().as_string::<i32>();
        for id in col.iter().flatten() {
            assert!(ids.insert(id.to_string()), "event {id} is twice in silver");
        }
    }
    let funnel = parse_funnel(None);
    wait_for(
        "gold to equal a full recomputation",
        Duration::from_secs(120),
        async || {
            differences_from_scratch(&lake, &funnel)
                .await
                .unwrap()
                .is_empty()
        },
    )
    .await;

    // The scheduled export: a DuckDB file whose sessions are gold's.
    let sessions = count(&lake, Table::Sessions).await;
    let store = lake.store().unwrap();
    let duckdb_file = work.join("export.duckdb");
    wait_for(
        "the export to catch up with gold",
        Duration::from_secs(60),
        async || {
            let Ok(got) = store.get(&"exports/clickstream.duckdb".into()).await else {
                return false;
            };
            std::fs::write(&duckdb_file, got.bytes().await.unwrap()).unwrap();
            let db = duckdb::Connection::open(&duckdb_file).unwrap();
            let exported: Result<i64, _> =
                db.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0));
            exported.is_ok_and(|n| n as usize == sessions)
        },
    )
    .await;

    // bronze-writer handed an already-processed batch again (as Kafka redelivers): the first
    // records of partition 0, read back from the broker. Nothing changes.
    let first = read_partition_start(&brokers, 50);
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
    let samples = repo().join("events");
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
        ("exporter", "eventbridge-schedule.json"),
        ("maintenance", "eventbridge-schedule.json"),
    ] {
        let payload = std::fs::read(samples.join(sample)).unwrap();
        if let Err(e) = stack.invoke(function, &payload).await {
            panic!("{function} failed on events/{sample}: {e}");
        }
    }

    // Eight ingests at once into another lake on the same S3 store (a prefix the bridge does not
    // watch): nothing lost or doubled there either.
    let other_uri = format!("s3://{BUCKET}/concurrent/");
    let other = stack.lake_at(&other_uri);
    crate::concurrent::ingests_at_once(work, &other_uri, &stack.env(), other).await;
}
