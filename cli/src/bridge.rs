//! `clickstream local bridge`: the part of AWS the local stack stands in for. It turns Kafka
//! records, new objects under `landing/` and new Delta commit files into the events AWS would
//! deliver, and hands them to the functions through the Lambda Invoke HTTP API, so it drives
//! functions under cargo-lambda, LocalStack or AWS alike:
//!
//! - Kafka event source mapping: a consumer group batches records (batch size, batching window)
//!   into a `KafkaEvent` for bronze-writer and commits offsets only after a successful invoke;
//! - S3 notifications: `landing/` objects -> bronze-writer, bronze commits -> silver-transformer,
//!   silver commits -> gold-transformer, each object at least once, commits in order per table;
//! - schedules: the exporter every N seconds.
//!
//! A failed invoke is retried with backoff and never skipped. What has been delivered is kept in a
//! state file, so a restarted bridge carries on where it stopped (at least once, like AWS).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use aws_lambda_events::event::s3::S3Event;
use clickstream::functions::scheduled_event;
use clickstream::lake::{Lake, Table};
use clickstream::trigger::{KafkaMessage, kafka_event, s3_put_event};
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as StorePath;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message, Timestamp};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::{info, warn};

/// Function names, as deployed by Terraform and served by the local stack.
pub const BRONZE_WRITER: &str = "bronze-writer";
pub const SILVER_TRANSFORMER: &str = "silver-transformer";
pub const GOLD_TRANSFORMER: &str = "gold-transformer";
pub const EXPORTER: &str = "exporter";

/// Settings of a bridge run.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    pub brokers: String,
    pub topic: String,
    pub group: String,
    pub lambda_endpoint: String,
    pub batch_size: usize,
    pub batch_window: Duration,
    pub poll_interval: Duration,
    /// Zero disables the exporter schedule.
    pub export_every: Duration,
    /// How long an invocation may take before it is abandoned and retried.
    pub invoke_timeout: Duration,
    pub state: PathBuf,
}

/// Calls functions through the Lambda Invoke API (`POST /2015-03-31/functions/NAME/invocations`).
#[derive(Clone)]
pub struct Invoker {
    client: reqwest::Client,
    endpoint: String,
    timeout: Duration,
}

impl Invoker {
    /// An invoker whose invocations fail after `timeout` without an answer.
    pub fn new(endpoint: &str, timeout: Duration) -> Invoker {
        Invoker {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("an HTTP client with a timeout"),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            timeout,
        }
    }

    /// One synchronous invocation: the function's response, or its error (a non-200 answer or
    /// one flagged with `X-Amz-Function-Error`, as AWS flags function errors).
    pub async fn invoke(
        &self,
        function: &str,
        payload: &impl Serialize,
    ) -> Result<serde_json::Value> {
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.endpoint
        );
        let response = self
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(payload)?)
            .send()
            .await
            .map_err(|e| self.failed_call(function, &url, e))?;
        let status = response.status();
        let function_error = response.headers().contains_key("x-amz-function-error");
        let body = response
            .bytes()
            .await
            .map_err(|e| self.failed_call(function, &url, e))?;
        if !status.is_success() || function_error {
            return Err(anyhow!(
                "{function} failed ({status}): {}",
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
    }

    fn failed_call(&self, function: &str, url: &str, e: reqwest::Error) -> anyhow::Error {
        if e.is_timeout() {
            anyhow!(
                "{function} did not answer within {:?} (INVOKE_TIMEOUT_SECONDS): it may have died \
                 mid-invocation",
                self.timeout
            )
        } else {
            anyhow!(e).context(format!("invoking {function} at {url}"))
        }
    }

    /// Invokes until the function succeeds, backing off from 200 ms to 10 s between attempts.
    pub async fn invoke_until_ok(
        &self,
        function: &str,
        payload: &impl Serialize,
    ) -> serde_json::Value {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.invoke(function, payload).await {
                Ok(v) => return v,
                Err(e) => {
                    warn!("{e:#}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

/// What the bridge has delivered: landed objects, and the last commit version per table.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Delivered {
    landing: BTreeSet<String>,
    commits: BTreeMap<String, i64>,
}

/// [`Delivered`], saved to its file after every delivery.
struct State {
    path: PathBuf,
    delivered: Mutex<Delivered>,
}

impl State {
    fn load(path: &Path) -> Result<State> {
        let delivered = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading bridge state {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Delivered::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(State {
            path: path.to_path_buf(),
            delivered: Mutex::new(delivered),
        })
    }

    async fn update(&self, change: impl FnOnce(&mut Delivered)) -> Result<()> {
        let mut delivered = self.delivered.lock().await;
        change(&mut delivered);
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&*delivered)?)?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(())
    }
}

/// Runs every source until one fails or the process is stopped.
pub async fn run(lake: Lake, config: BridgeConfig) -> Result<()> {
    let invoker = Invoker::new(&config.lambda_endpoint, config.invoke_timeout);
    let state = Arc::new(State::load(&config.state)?);
    let store: Arc<dyn ObjectStore> = lake.store()?;
    info!(
        "bridge: kafka {} topic {} -> {BRONZE_WRITER}; lake {} -> functions at {}",
        config.brokers,
        config.topic,
        lake.root(),
        config.lambda_endpoint
    );
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(kafka_source(config.clone(), invoker.clone()));
    tasks.spawn(landing_source(
        lake.clone(),
        store.clone(),
        state.clone(),
        invoker.clone(),
        config.poll_interval,
    ));
    for (table, function) in [
        (Table::Bronze, SILVER_TRANSFORMER),
        (Table::Silver, GOLD_TRANSFORMER),
    ] {
        tasks.spawn(commit_source(
            lake.clone(),
            store.clone(),
            state.clone(),
            invoker.clone(),
            (table, function),
            config.poll_interval,
        ));
    }
    if !config.export_every.is_zero() {
        tasks.spawn(export_schedule(invoker.clone(), config.export_every));
    }
    let stopped = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        anyhow::Ok(())
    };
    tokio::select! {
        r = stopped => { r?; info!("bridge stopped"); Ok(()) }
        Some(r) = tasks.join_next() => r?,
    }
}

/// The Kafka event source mapping.
async fn kafka_source(config: BridgeConfig, invoker: Invoker) -> Result<()> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .context("creating the Kafka consumer")?;
    consumer
        .subscribe(&[&config.topic])
        .context("subscribing to the topic")?;
    loop {
        let first = match consumer.recv().await {
            Ok(m) => to_message(&m),
            Err(e) => {
                warn!("Kafka: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut messages = vec![first];
        let window_ends = tokio::time::Instant::now() + config.batch_window;
        while messages.len() < config.batch_size {
            match tokio::time::timeout_at(window_ends, consumer.recv()).await {
                Ok(Ok(m)) => messages.push(to_message(&m)),
                Ok(Err(e)) => warn!("Kafka: {e}"),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let event = kafka_event(&config.brokers, &config.topic, &messages);
        let response = invoker.invoke_until_ok(BRONZE_WRITER, &event).await;
        let mut next = BTreeMap::new();
        for m in &messages {
            let o = next.entry(m.partition).or_insert(m.offset + 1);
            *o = (*o).max(m.offset + 1);
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in &next {
            offsets.add_partition_offset(&config.topic, *partition, Offset::Offset(*offset))?;
        }
        // A failed commit only means these records may be delivered again, which bronze-writer
        // recognises; the next commit covers them.
        if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
            warn!("committing Kafka offsets failed: {e}");
        }
        info!(
            "{BRONZE_WRITER} <- {} Kafka records in {:?}: {response}",
            messages.len(),
            started.elapsed()
        );
    }
}

fn to_message(m: &rdkafka::message::BorrowedMessage<'_>) -> KafkaMessage {
    let (timestamp_ms, log_append_time) = match m.timestamp() {
        Timestamp::CreateTime(t) => (t, false),
        Timestamp::LogAppendTime(t) => (t, true),
        Timestamp::NotAvailable => (chrono::Utc::now().timestamp_millis(), true),
    };
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default();
    KafkaMessage {
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms,
        log_append_time,
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers,
    }
}

/// The `ObjectCreated:Put` notification S3 sends for `object` (listed relative to the lake root).
fn notification(lake: &Lake, object: &object_store::ObjectMeta) -> S3Event {
    s3_put_event(
        lake.bucket(),
        &lake.object_key(object.location.as_ref()),
        object.size,
        object.e_tag.as_deref().unwrap_or_default(),
        chrono::Utc::now(),
    )
}

/// S3 notifications for files landed under `landing/`.
async fn landing_source(
    lake: Lake,
    store: Arc<dyn ObjectStore>,
    state: Arc<State>,
    invoker: Invoker,
    poll: Duration,
) -> Result<()> {
    loop {
        if let Err(e) = deliver_landed(&lake, store.as_ref(), &state, &invoker).await {
            warn!("landing/: {e:#}; trying again");
        }
        tokio::time::sleep(poll).await;
    }
}

async fn deliver_landed(
    lake: &Lake,
    store: &dyn ObjectStore,
    state: &State,
    invoker: &Invoker,
) -> Result<()> {
    let mut objects: Vec<_> = store
        .list(Some(&StorePath::from("landing")))
        .try_collect()
        .await?;
    objects.sort_by_key(|o| o.last_modified);
    for o in objects {
        let key = o.location.to_string();
        if state.delivered.lock().await.landing.contains(&key) {
            continue;
        }
        let response = invoker
            .invoke_until_ok(BRONZE_WRITER, &notification(lake, &o))
            .await;
        info!(
            "{BRONZE_WRITER} <- s3://{}/{}: {response}",
            lake.bucket(),
            lake.object_key(&key)
        );
        state.update(|d| _ = d.landing.insert(key)).await?;
    }
    Ok(())
}

/// S3 notifications for new commit files of `table`, in commit order, to `function`.
async fn commit_source(
    lake: Lake,
    store: Arc<dyn ObjectStore>,
    state: Arc<State>,
    invoker: Invoker,
    (table, function): (Table, &'static str),
    poll: Duration,
) -> Result<()> {
    loop {
        if let Err(e) =
            deliver_commits(&lake, store.as_ref(), &state, &invoker, table, function).await
        {
            warn!("{}/_delta_log: {e:#}; trying again", table.path());
        }
        tokio::time::sleep(poll).await;
    }
}

async fn deliver_commits(
    lake: &Lake,
    store: &dyn ObjectStore,
    state: &State,
    invoker: &Invoker,
    table: Table,
    function: &str,
) -> Result<()> {
    let log = StorePath::from(format!("{}/_delta_log", table.path()));
    let delivered = state
        .delivered
        .lock()
        .await
        .commits
        .get(table.path())
        .copied()
        .unwrap_or(-1);
    let mut commits: Vec<_> = store
        .list(Some(&log))
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .filter_map(|o| {
            let (t, v) = Table::commit_at(o.location.as_ref())?;
            (t == table && v > delivered).then_some((v, o))
        })
        .collect();
    commits.sort_by_key(|(v, _)| *v);
    // The pending commits go in one event (as S3 notifications batched through SQS would): the
    // function catches up everything above its watermark anyway, so one invocation serves them.
    let Some(&(last, _)) = commits.last() else {
        return Ok(());
    };
    let first = commits[0].0;
    let mut event = notification(lake, &commits[0].1);
    for (_, o) in &commits[1..] {
        event.records.extend(notification(lake, o).records);
    }
    let started = Instant::now();
    let response = invoker.invoke_until_ok(function, &event).await;
    info!(
        "{function} <- {} commits {first}..={last} in {:?}: {response}",
        table.path(),
        started.elapsed()
    );
    state
        .update(|d| _ = d.commits.insert(table.path().to_string(), last))
        .await?;
    Ok(())
}

/// The EventBridge schedule for the exporter.
async fn export_schedule(invoker: Invoker, every: Duration) -> Result<()> {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match invoker
            .invoke(EXPORTER, &scheduled_event(chrono::Utc::now()))
            .await
        {
            Ok(r) => info!("{EXPORTER} <- schedule: {r}"),
            Err(e) => warn!("scheduled export failed (next one in {every:?}): {e:#}"),
        }
    }
}
