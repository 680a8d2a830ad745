//! The four function handlers: decode the trigger, call the stage, report what was done.
//! Lambda binaries and the embedded pipeline call exactly these.

use aws_lambda_events::event::kafka::KafkaEvent;
use aws_lambda_events::event::s3::S3Event;

use crate::bronze::{self, BronzeOptions, BronzeOutcome};
use crate::error::{Result, TriggerError};
use crate::gold::{self, GoldOutcome};
use crate::lake::{Lake, Table};
use crate::silver::{self, SilverOutcome};
use crate::trigger;

/// The bronze-writer's trigger: a Kafka batch or a landed-file notification.
#[derive(Debug, Clone)]
pub enum BronzeTrigger {
    /// A batch from the Kafka event source mapping.
    Kafka(KafkaEvent),
    /// S3 notifications of files landed under `landing/`.
    Landed(S3Event),
}

impl BronzeTrigger {
    /// Tells the two trigger shapes apart (`Records` for S3, `records` for Kafka).
    pub fn from_json(value: serde_json::Value) -> Result<BronzeTrigger> {
        if value.get("Records").is_some() {
            Ok(BronzeTrigger::Landed(serde_json::from_value(value)?))
        } else if value.get("records").is_some() {
            Ok(BronzeTrigger::Kafka(serde_json::from_value(value)?))
        } else {
            Err(TriggerError::Shape {
                expected: "a Kafka event (records) or an S3 event (Records)",
            }
            .into())
        }
    }
}

/// bronze-writer: appends the trigger's records to bronze/events; a landed file past one of
/// the `options`' limits is recorded in bronze/failed_files instead.
pub async fn bronze_writer(
    lake: &Lake,
    trigger: &BronzeTrigger,
    options: &BronzeOptions,
) -> Result<Vec<BronzeOutcome>> {
    bronze_writer_notifying(lake, trigger, options, &|_| {}).await
}

/// [`bronze_writer`], calling `on_commit` with each bronze version as soon as it is committed: a
/// landed file commits a chunk at a time, and the embedded pipeline hands each commit to silver
/// at once, as S3 notifies each commit file.
pub async fn bronze_writer_notifying(
    lake: &Lake,
    trigger: &BronzeTrigger,
    options: &BronzeOptions,
    on_commit: &(dyn Fn(i64) + Send + Sync),
) -> Result<Vec<BronzeOutcome>> {
    match trigger {
        BronzeTrigger::Kafka(event) => {
            let outcome =
                bronze::ingest_kafka(lake, event, options.kafka_generation.as_deref()).await?;
            if let Some(version) = outcome.version {
                on_commit(version);
            }
            Ok(vec![outcome])
        }
        BronzeTrigger::Landed(event) => {
            check_bucket(lake, event)?;
            bronze::ingest_landed(lake, event, &options.landed_limits, on_commit).await
        }
    }
}

/// bronze-writer's init: reads bronze's log (protocol, metadata and `txn`s; see
/// [`crate::appender`]) before the first event, so the first invocation brings it up to date as a
/// warm one does instead of reading it whole.
pub async fn prepare_bronze_writer(lake: &Lake) -> Result<()> {
    lake.appender(Table::Bronze).await.map(drop)
}

/// silver-transformer's init: opens silver/events, and reads the logs of silver/quarantine and
/// bronze (see [`crate::appender`]), as its first invocation would.
pub async fn prepare_silver_transformer(lake: &Lake) -> Result<()> {
    lake.table(Table::Silver).await?;
    lake.appender(Table::Quarantine).await?;
    lake.latest_version(Table::Bronze).await.map(drop)
}

/// gold-transformer's init: opens silver (when it exists: gold may not create it) and the gold
/// tables, as its first invocation would.
pub async fn prepare_gold_transformer(lake: &Lake) -> Result<()> {
    lake.existing_table(Table::Silver).await?;
    let state = gold::WRITTEN
        .into_iter()
        .filter(|t| !Table::GOLD.contains(t));
    for table in Table::GOLD.into_iter().chain(state) {
        lake.table(table).await?;
    }
    Ok(())
}

/// How long one invocation keeps catching up before it returns (the next notification, or the
/// next invocation of the embedded pipeline, carries on); well inside Lambda's 15 minutes.
pub const CATCH_UP_BUDGET: std::time::Duration = std::time::Duration::from_secs(120);

/// silver-transformer: a bronze commit landed; silver catches up every bronze commit it has not
/// processed (the notification only says that there may be some).
pub async fn silver_transformer(lake: &Lake, event: &S3Event) -> Result<Vec<SilverOutcome>> {
    commits_of(lake, event, Table::Bronze)?;
    within_budget(|| silver::catch_up(lake), |o| o.remaining).await
}

/// gold-transformer: a silver commit landed; gold catches up every silver commit it has not
/// processed.
pub async fn gold_transformer(
    lake: &Lake,
    event: &S3Event,
    funnel: &[String],
) -> Result<Vec<GoldOutcome>> {
    commits_of(lake, event, Table::Silver)?;
    within_budget(|| gold::catch_up(lake, funnel), |o| o.remaining).await
}

/// Runs `run` again while its outcome says work `remains` and [`CATCH_UP_BUDGET`] is not spent;
/// every run's outcome, in order.
async fn within_budget<T, Fut>(
    mut run: impl FnMut() -> Fut,
    remains: impl Fn(&T) -> bool,
) -> Result<Vec<T>>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    loop {
        let outcome = run().await?;
        let again = remains(&outcome) && started.elapsed() < CATCH_UP_BUDGET;
        out.push(outcome);
        if !again {
            return Ok(out);
        }
    }
}

/// exporter: recomputes the weekly retention cohorts and the identities, then writes the exports.
#[cfg(feature = "duckdb")]
pub async fn exporter(lake: &Lake) -> Result<crate::export::ExportOutcome> {
    crate::gold::retention::refresh(lake).await?;
    crate::gold::identities::refresh(lake).await?;
    crate::export::export(lake).await
}

/// A scheduled maintenance run: what it did to each table, and how fresh it found gold (the
/// freshness metric keeps coming on schedule when gold-transformer stops running).
#[derive(Debug, Clone, serde::Serialize)]
pub struct MaintenanceRun {
    /// Per table.
    pub tables: Vec<crate::maintenance::TableMaintenance>,
    /// Gold's freshness after the run.
    pub freshness: crate::health::Freshness,
}

/// maintenance: [`crate::maintenance::maintain`], then [`crate::health::freshness`] as of `now`.
pub async fn maintenance(
    lake: &Lake,
    retention: chrono::Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<MaintenanceRun> {
    let tables = crate::maintenance::maintain(lake, retention).await?;
    let freshness = crate::health::freshness(lake, now).await?;
    Ok(MaintenanceRun { tables, freshness })
}

impl crate::telemetry::Measured for MaintenanceRun {
    fn record(&self) {
        use crate::telemetry::{metric, sample};
        self.tables.record();
        if let Some(seconds) = self.freshness.seconds {
            sample(metric::FRESHNESS, seconds);
        }
    }
}

/// forget's trigger: the erasure request objects an S3 notification names (keys relative to the
/// lake root, under [`crate::erasure::REQUESTS_PREFIX`]).
pub fn erasure_requests(lake: &Lake, event: &S3Event) -> Result<Vec<String>> {
    check_bucket(lake, event)?;
    let prefix = crate::erasure::REQUESTS_PREFIX;
    trigger::objects(event)?
        .into_iter()
        .map(|o| match lake.relative_key(&o.key) {
            Some(key) if key.starts_with(prefix) && key.ends_with(".json") => Ok(key.to_string()),
            _ => Err(TriggerError::ForeignObject {
                key: o.key,
                expected: format!("an erasure request {}{prefix}<id>.json", lake.key_prefix()),
            }
            .into()),
        })
        .collect()
}

/// The notification for a new commit of `table`, as S3 would send it for this lake.
pub fn commit_event(lake: &Lake, table: Table, version: i64) -> S3Event {
    let key = lake.object_key(&table.commit_key(version));
    trigger::s3_put_event(
        lake.bucket(),
        &key,
        0,
        &format!("\"v{version}\""),
        chrono::Utc::now(),
    )
}

fn check_bucket(lake: &Lake, event: &S3Event) -> Result<()> {
    if lake.root().scheme() == "file" {
        return Ok(());
    }
    for o in trigger::objects(event)? {
        if o.bucket != lake.bucket() {
            return Err(TriggerError::ForeignObject {
                key: format!("s3://{}/{}", o.bucket, o.key),
                expected: format!("in the lake bucket {}", lake.bucket()),
            }
            .into());
        }
    }
    Ok(())
}

fn commits_of(lake: &Lake, event: &S3Event, expected: Table) -> Result<Vec<i64>> {
    check_bucket(lake, event)?;
    let mut versions = Vec::new();
    for o in trigger::objects(event)? {
        let relative = lake.relative_key(&o.key).unwrap_or(&o.key);
        match Table::commit_at(relative) {
            Some((t, v)) if t == expected => versions.push(v),
            _ => {
                return Err(TriggerError::ForeignObject {
                    key: o.key,
                    expected: format!("a commit file of {}", expected.path()),
                }
                .into());
            }
        }
    }
    versions.sort_unstable();
    Ok(versions)
}
