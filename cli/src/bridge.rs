//! `clickstream local bridge`: the part of AWS the local stack stands in for, wired as Terraform
//! deployed it ([`Wiring`], read from the state of the local stack's apply of `infra/`). It turns
//! Kafka records, new objects and new Delta commit files into the events AWS would deliver, and
//! hands them to the functions through the Lambda Invoke HTTP API, so it drives functions under
//! cargo-lambda, LocalStack or AWS alike:
//!
//! - the Kafka event source mapping (its topics, consumer group, batch size and window): a consumer
//!   group batches records into a `KafkaEvent` for its function and commits offsets only after a
//!   successful invoke; a failed batch is retried, in order, until it succeeds;
//! - the bucket's notifications (their prefix and suffix filters): each new object under a prefix
//!   to its function, commit files of a Delta log in order, the pending ones in one event;
//! - the schedules (their rate and their exact input payload).
//!
//! Notifications and schedules are asynchronous invocations: a failed one is retried as the
//! deployed invoke configuration or retry policy says (two retries), then written to the dead-letter
//! file, which stands for the deployed dead-letter queue, and the bridge moves on. What has been
//! delivered is kept in a state file, so a restarted bridge carries on where it stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use aws_lambda_events::event::s3::S3Event;
use clickstream::lake::Lake;
use clickstream::trigger::{KafkaMessage, kafka_event, s3_put_event};
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as StorePath;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message, Timestamp};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::{error, info, warn};

use crate::wiring::{AsyncRetries, KafkaMapping, Notification, Schedule, Wiring};

/// Settings of a bridge run.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// The triggers to stand in for.
    pub wiring: Wiring,
    /// Kafka bootstrap servers the mapping reads from.
    pub brokers: String,
    pub lambda_endpoint: String,
    pub poll_interval: Duration,
    /// How long an invocation may take before it is abandoned and retried.
    pub invoke_timeout: Duration,
    /// Wait before the first retry of a failed asynchronous invocation, doubled for the next (AWS
    /// waits about a minute, then two).
    pub retry_delay: Duration,
    /// Schedules run this many times faster than their rate (1: as deployed).
    pub schedule_speedup: u32,
    pub state: PathBuf,
    /// Where failed asynchronous invocations go after their retries (one JSON object a line).
    pub dead_letters: PathBuf,
}

/// The Stage of the metrics the bridge emits (its own store traffic, which AWS would not bill:
/// `bench cost` takes it out of the store's counts).
pub const BRIDGE_STAGE: &str = "bridge";

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

/// Asynchronous invocations (S3 notifications, schedules) as Lambda runs them: the first attempt,
/// then `retries` more after `delay`, `2 * delay`, ...; a payload that still fails is written to
/// the dead-letter file with its error, and the caller moves on.
#[derive(Clone)]
struct AsyncInvoker {
    invoker: Invoker,
    delay: Duration,
    dead_letters: Arc<DeadLetterFile>,
}

/// The local stand-in for a dead-letter queue: one JSON line per event that failed for good,
/// appended by one writer at a time.
struct DeadLetterFile {
    path: PathBuf,
    one_writer: Mutex<()>,
}

impl DeadLetterFile {
    fn new(path: PathBuf) -> DeadLetterFile {
        DeadLetterFile {
            path,
            one_writer: Mutex::new(()),
        }
    }

    async fn append(&self, letter: &serde_json::Value) -> Result<()> {
        use std::io::Write as _;
        let _turn = self.one_writer.lock().await;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        writeln!(file, "{letter}")?;
        Ok(())
    }
}

impl AsyncInvoker {
    /// The function's answer, or None when every attempt failed and the payload went to the
    /// dead-letter file.
    async fn invoke(
        &self,
        function: &str,
        payload: &impl Serialize,
        retries: &AsyncRetries,
    ) -> Result<Option<serde_json::Value>> {
        let mut delay = self.delay;
        let mut attempt = 0;
        loop {
            match self.invoker.invoke(function, payload).await {
                Ok(v) => return Ok(Some(v)),
                Err(e) if attempt < retries.retries => {
                    attempt += 1;
                    warn!("{e:#}; retry {attempt} of {} in {delay:?}", retries.retries);
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    error!(
                        "{e:#}; after {} retries the event goes to the dead-letter queue {}",
                        retries.retries,
                        retries.dead_letter.as_deref().unwrap_or("(none deployed)")
                    );
                    let letter = serde_json::json!({
                        "time": chrono::Utc::now().to_rfc3339(),
                        "function": function,
                        "queue": retries.dead_letter,
                        "error": format!("{e:#}"),
                        "attempts": attempt + 1,
                        "payload": payload,
                    });
                    self.dead_letters.append(&letter).await?;
                    return Ok(None);
                }
            }
        }
    }
}

/// What the bridge has delivered, per notification (`FUNCTION:PREFIX`): the objects, or for a
/// Delta log the last commit file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Delivered {
    objects: BTreeMap<String, BTreeSet<String>>,
    last_commit: BTreeMap<String, String>,
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
    let wiring = &config.wiring;
    let deployed = wiring.lake_uri.trim_end_matches('/');
    if lake.root().as_str().trim_end_matches('/') != deployed {
        return Err(anyhow!(
            "the bridge's lake {} is not the deployed one ({deployed}): the functions would \
             refuse its notifications",
            lake.root()
        ));
    }
    let invoker = Invoker::new(&config.lambda_endpoint, config.invoke_timeout);
    let async_invoker = AsyncInvoker {
        invoker: invoker.clone(),
        delay: config.retry_delay,
        dead_letters: Arc::new(DeadLetterFile::new(config.dead_letters.clone())),
    };
    let state = Arc::new(State::load(&config.state)?);
    let store: Arc<dyn ObjectStore> = lake.store()?;
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(mapping) = &wiring.kafka {
        info!(
            "bridge: Kafka {} topic {} -> {} ({} records / {:?})",
            config.brokers,
            mapping.topic,
            mapping.function,
            mapping.batch_size,
            mapping.batching_window
        );
        tasks.spawn(kafka_source(
            config.brokers.clone(),
            mapping.clone(),
            invoker.clone(),
        ));
    }
    for notification in &wiring.notifications {
        let prefix = relative_prefix(&lake, &notification.prefix)?;
        info!(
            "bridge: s3://{}/{}*{} -> {}",
            lake.bucket(),
            notification.prefix,
            notification.suffix,
            notification.function
        );
        tasks.spawn(notification_source(NotificationSource {
            lake: lake.clone(),
            store: store.clone(),
            state: state.clone(),
            invoker: async_invoker.clone(),
            retries: wiring.retries_of(&notification.function),
            notification: notification.clone(),
            prefix,
            poll: config.poll_interval,
        }));
    }
    for schedule in &wiring.schedules {
        let every = schedule.every / config.schedule_speedup.max(1);
        info!(
            "bridge: {} every {every:?} ({}) <- {}",
            schedule.function, schedule.expression, schedule.input
        );
        tasks.spawn(scheduled_runs(
            async_invoker.clone(),
            schedule.clone(),
            every,
        ));
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

/// A notification's key prefix relative to the lake root (notification filters are bucket keys).
fn relative_prefix(lake: &Lake, prefix: &str) -> Result<String> {
    lake.relative_key(prefix)
        .map(str::to_string)
        .ok_or_else(|| {
            anyhow!(
                "the notification prefix {prefix} is outside the lake {}",
                lake.root()
            )
        })
}

/// The Kafka event source mapping.
async fn kafka_source(brokers: String, mapping: KafkaMapping, invoker: Invoker) -> Result<()> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", &mapping.consumer_group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .context("creating the Kafka consumer")?;
    consumer
        .subscribe(&[&mapping.topic])
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
        let window_ends = tokio::time::Instant::now() + mapping.batching_window;
        while messages.len() < mapping.batch_size {
            match tokio::time::timeout_at(window_ends, consumer.recv()).await {
                Ok(Ok(m)) => messages.push(to_message(&m)),
                Ok(Err(e)) => warn!("Kafka: {e}"),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let event = kafka_event(&brokers, &mapping.topic, &messages);
        let response = invoker.invoke_until_ok(&mapping.function, &event).await;
        let mut next = BTreeMap::new();
        for m in &messages {
            let o = next.entry(m.partition).or_insert(m.offset + 1);
            *o = (*o).max(m.offset + 1);
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in &next {
            offsets.add_partition_offset(&mapping.topic, *partition, Offset::Offset(*offset))?;
        }
        // A failed commit only means these records may be delivered again, which bronze-writer
        // recognises; the next commit covers them.
        if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
            warn!("committing Kafka offsets failed: {e}");
        }
        info!(
            "{} <- {} Kafka records in {:?}: {response}",
            mapping.function,
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

/// One notification's delivery loop and what it needs.
struct NotificationSource {
    lake: Lake,
    store: Arc<dyn ObjectStore>,
    state: Arc<State>,
    invoker: AsyncInvoker,
    retries: AsyncRetries,
    notification: Notification,
    /// The notification's prefix relative to the lake root.
    prefix: String,
    poll: Duration,
}

impl NotificationSource {
    /// The key the state records this notification's deliveries under.
    fn id(&self) -> String {
        format!(
            "{}:{}",
            self.notification.function, self.notification.prefix
        )
    }

    /// A Delta log's commit files go in order, the pending ones in one event (as S3 notifications
    /// batched through SQS would arrive): the function catches up everything above its watermark
    /// anyway, so one invocation serves them.
    fn is_delta_log(&self) -> bool {
        self.prefix.ends_with("_delta_log/")
    }

    /// The new objects under the prefix that pass the suffix filter, in key order.
    async fn new_objects(&self) -> Result<Vec<object_store::ObjectMeta>> {
        let id = self.id();
        let listed: Vec<_> = self
            .store
            .list(Some(&StorePath::from(self.prefix.trim_end_matches('/'))))
            .try_collect()
            .await?;
        let delivered = self.state.delivered.lock().await;
        let mut objects: Vec<_> = listed
            .into_iter()
            .filter(|o| {
                let key = o.location.as_ref();
                key.starts_with(&self.prefix) && key.ends_with(&self.notification.suffix)
            })
            .filter(|o| {
                let key = o.location.as_ref();
                if self.is_delta_log() {
                    delivered
                        .last_commit
                        .get(&id)
                        .is_none_or(|last| key > last.as_str())
                } else {
                    !delivered
                        .objects
                        .get(&id)
                        .is_some_and(|seen| seen.contains(key))
                }
            })
            .collect();
        if self.is_delta_log() {
            objects.sort_by(|a, b| a.location.cmp(&b.location));
        } else {
            objects.sort_by_key(|o| o.last_modified);
        }
        Ok(objects)
    }

    /// Delivers what is new; an event whose invocations all fail goes to the dead-letter file and
    /// counts as delivered, as on AWS.
    async fn deliver(&self) -> Result<()> {
        let objects = self.new_objects().await?;
        let function = &self.notification.function;
        let id = self.id();
        if self.is_delta_log() {
            let Some(last) = objects.last() else {
                return Ok(());
            };
            let mut event = notification(&self.lake, &objects[0]);
            for o in &objects[1..] {
                event.records.extend(notification(&self.lake, o).records);
            }
            let started = Instant::now();
            let response = self.invoker.invoke(function, &event, &self.retries).await?;
            info!(
                "{function} <- {} commits {}..={} in {:?}: {}",
                objects.len(),
                objects[0].location,
                last.location,
                started.elapsed(),
                response.unwrap_or_default()
            );
            let last = last.location.to_string();
            self.state
                .update(|d| _ = d.last_commit.insert(id, last))
                .await?;
        } else {
            for o in objects {
                let event = notification(&self.lake, &o);
                let response = self.invoker.invoke(function, &event, &self.retries).await?;
                info!(
                    "{function} <- s3://{}/{}: {}",
                    self.lake.bucket(),
                    self.lake.object_key(o.location.as_ref()),
                    response.unwrap_or_default()
                );
                let key = o.location.to_string();
                self.state
                    .update(|d| _ = d.objects.entry(id.clone()).or_default().insert(key))
                    .await?;
            }
        }
        Ok(())
    }
}

/// S3 notifications of one notification configuration, polled from the lake's listing.
async fn notification_source(source: NotificationSource) -> Result<()> {
    loop {
        if let Err(e) = source.deliver().await {
            warn!("{}: {e:#}; trying again", source.id());
        }
        tokio::time::sleep(source.poll).await;
    }
}

/// A schedule: its input, exactly as deployed, every `every`.
async fn scheduled_runs(invoker: AsyncInvoker, schedule: Schedule, every: Duration) -> Result<()> {
    let retries = AsyncRetries {
        retries: schedule.retries,
        dead_letter: schedule.dead_letter.clone(),
    };
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let started = Instant::now();
        if let Some(r) = invoker
            .invoke(&schedule.function, &schedule.input, &retries)
            .await?
        {
            info!(
                "{} <- schedule {} in {:?}: {r}",
                schedule.function,
                schedule.expression,
                started.elapsed()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;

    use super::*;

    /// A Lambda Invoke API on loopback whose function fails (`X-Amz-Function-Error`, as Lambda
    /// flags a function error) its first `failures` invocations and then answers `{"ok":true}`;
    /// its endpoint and the count of invocations it took.
    async fn function_failing_first(failures: usize) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let calls = counted.clone();
                let service = hyper::service::service_fn(move |_request| {
                    let call = calls.fetch_add(1, Ordering::SeqCst);
                    let mut response = hyper::Response::builder();
                    let body = if call < failures {
                        response = response.header("X-Amz-Function-Error", "Unhandled");
                        r#"{"errorType":"Transient","errorMessage":"try again"}"#
                    } else {
                        r#"{"ok":true}"#
                    };
                    async move { response.body(Full::new(Bytes::from_static(body.as_bytes()))) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (endpoint, calls)
    }

    fn async_invoker(endpoint: &str, dead_letters: &std::path::Path) -> AsyncInvoker {
        AsyncInvoker {
            invoker: Invoker::new(endpoint, Duration::from_secs(30)),
            delay: Duration::from_millis(10),
            dead_letters: Arc::new(DeadLetterFile::new(dead_letters.to_path_buf())),
        }
    }

    fn two_retries() -> AsyncRetries {
        AsyncRetries {
            retries: 2,
            dead_letter: Some("arn:aws:sqs:us-east-1:123456789012:clickstream-dlq".into()),
        }
    }

    #[tokio::test]
    async fn a_failed_invocation_is_retried_as_deployed_and_then_answers() {
        let dir = tempfile::tempdir().unwrap();
        let letters = dir.path().join("dead-letters.jsonl");
        let (endpoint, calls) = function_failing_first(2).await;
        let answer = async_invoker(&endpoint, &letters)
            .invoke("exporter", &serde_json::json!({"n": 1}), &two_retries())
            .await
            .unwrap();
        assert_eq!(answer, Some(serde_json::json!({"ok": true})));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(!letters.exists(), "nothing failed for good");
    }

    #[tokio::test]
    async fn an_invocation_failing_every_retry_goes_to_the_dead_letters_and_the_bridge_moves_on() {
        let dir = tempfile::tempdir().unwrap();
        let letters = dir.path().join("letters/dead-letters.jsonl");
        let (endpoint, calls) = function_failing_first(usize::MAX).await;
        let invoker = async_invoker(&endpoint, &letters);
        for n in [1, 2] {
            let payload = serde_json::json!({"n": n});
            let answer = invoker.invoke("exporter", &payload, &two_retries()).await;
            assert_eq!(answer.unwrap(), None);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 6, "three attempts each");
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&letters)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        for (n, letter) in (1..).zip(&lines) {
            assert_eq!(letter["function"], "exporter");
            assert_eq!(letter["attempts"], 3);
            assert_eq!(letter["payload"], serde_json::json!({"n": n}));
            assert_eq!(letter["queue"], two_retries().dead_letter.unwrap());
            assert!(
                letter["error"].as_str().unwrap().contains("try again"),
                "{letter}"
            );
        }
    }
}
