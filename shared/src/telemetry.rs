//! Logging: JSON lines in Lambda (CloudWatch), human-readable on a terminal. Metrics: what each
//! stage counted, recorded through the `metrics` facade under the names here (a function emits
//! them in CloudWatch's Embedded Metric Format; elsewhere no recorder is installed and recording
//! costs nothing).

use tracing_subscriber::EnvFilter;

/// Default filter: the delta kernel logs a failed snapshot load (a table not created yet) as an
/// error, which the library handles, and delta-rs warns on every write that it keeps no
/// statistics for binary columns; keep both out of the logs.
const QUIET_DEPENDENCIES: &str = "buoyant_kernel=off,deltalake_core=error,datafusion=warn";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON lines without a timestamp (CloudWatch adds one): a function's.
    Json,
    /// Compact human-readable lines, coloured on a terminal: the CLI's.
    Text,
}

/// Installs the global subscriber at `level` (`RUST_LOG` overrides it), writing to stderr in
/// `format`.
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},{QUIET_DEPENDENCIES}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().without_time().try_init(),
        LogFormat::Text => {
            use std::io::IsTerminal;
            builder
                .compact()
                .with_ansi(std::io::stderr().is_terminal())
                .try_init()
        }
    };
}

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "Clickstream";
/// The dimension every metric carries: the function that emitted it.
pub const STAGE: &str = "Stage";
/// The dimension of [`metric::QUARANTINED_BY_REASON`]: the reject reason code.
pub const REASON: &str = "Reason";
/// The dimension of [`metric::ROWS_WRITTEN`]: the table written (its path, `gold/sessions`).
pub const TABLE: &str = "Table";
/// The dimension of [`metric::STORE_REQUESTS`]: the request's kind (`GET`, `PUT`, `LIST`, ...).
pub const REQUEST: &str = "Request";

/// Metric names, chosen once (Terraform's alarms and `clickstream status` read the same;
/// infra/tests/terraform.rs checks every alarm reads one of [`metric::ALL`]).
pub mod metric {
    /// Records a stage took in (bronze: received; silver: bronze rows read; gold: new silver
    /// rows; forget: rows removed).
    pub const RECORDS_IN: &str = "RecordsIn";
    /// Records a stage wrote (bronze: rows appended; silver: valid rows appended).
    pub const RECORDS_OUT: &str = "RecordsOut";
    /// Records silver quarantined, all reasons.
    pub const QUARANTINED: &str = "Quarantined";
    /// Records silver quarantined, per [`super::REASON`].
    pub const QUARANTINED_BY_REASON: &str = "QuarantinedByReason";
    /// Records silver dropped as duplicates, or bronze as already written.
    pub const DUPLICATES: &str = "Duplicates";
    /// Records silver dropped as an erased person's.
    pub const SUPPRESSED: &str = "Suppressed";
    /// Valid records whose event date is before the newest event date of their batch.
    pub const LATE_EVENTS: &str = "LateEvents";
    /// Commits tried: the commits a run made, and the races it lost on the way.
    pub const COMMIT_ATTEMPTS: &str = "CommitAttempts";
    /// Commit races lost and retried.
    pub const LOST_RACES: &str = "LostRaces";
    /// Rows written per [`super::TABLE`].
    pub const ROWS_WRITTEN: &str = "RowsWritten";
    /// Bytes the lake's store returned (S3 lakes).
    pub const BYTES_READ: &str = "BytesRead";
    /// Bytes sent to the lake's store (S3 lakes).
    pub const BYTES_WRITTEN: &str = "BytesWritten";
    /// Requests to the lake's store, per [`super::REQUEST`] (S3 lakes).
    pub const STORE_REQUESTS: &str = "StoreRequests";
    /// Seconds from the newest event_time gold holds to now (gold-transformer after a commit,
    /// maintenance on its schedule).
    pub const FRESHNESS: &str = "FreshnessSeconds";
    /// Upstream commits still to process after the run: bronze's for silver, silver's for gold.
    pub const COMMITS_BEHIND: &str = "CommitsBehind";
    /// Milliseconds the handler took.
    pub const HANDLER_DURATION: &str = "HandlerDuration";
    /// Invocations that failed.
    pub const FAILURES: &str = "Failures";

    /// Every metric a function emits.
    pub const ALL: &[&str] = &[
        RECORDS_IN,
        RECORDS_OUT,
        QUARANTINED,
        QUARANTINED_BY_REASON,
        DUPLICATES,
        SUPPRESSED,
        LATE_EVENTS,
        COMMIT_ATTEMPTS,
        LOST_RACES,
        ROWS_WRITTEN,
        BYTES_READ,
        BYTES_WRITTEN,
        STORE_REQUESTS,
        FRESHNESS,
        COMMITS_BEHIND,
        HANDLER_DURATION,
        FAILURES,
    ];
}

/// An outcome that records what it counted as metrics (see [`metric`]).
pub trait Measured {
    /// Records the outcome's counts.
    fn record(&self);
}

impl<T: Measured> Measured for Vec<T> {
    fn record(&self) {
        self.iter().for_each(Measured::record);
    }
}

/// Adds `n` to the counter `name`.
pub fn count(name: &'static str, n: usize) {
    metrics::counter!(name).increment(n as u64);
}

/// Records the commit attempts of a run that made `commits` commits and lost `races` races.
pub fn count_commits(commits: usize, races: u32) {
    count(metric::COMMIT_ATTEMPTS, commits + races as usize);
    count(metric::LOST_RACES, races as usize);
}

/// Records one reading `value` of `name` (a level, such as freshness). Kept as a histogram, not
/// a gauge: a gauge would be written again with its last value by every later invocation that
/// did not read it, where a histogram's values are written once.
pub fn sample(name: &'static str, value: f64) {
    metrics::histogram!(name).record(value);
}

/// Sets [`metric::FRESHNESS`] from the newest event time gold holds (microseconds since the
/// epoch), as of `now`.
pub fn record_freshness(newest_event_us: i64, now: chrono::DateTime<chrono::Utc>) {
    sample(metric::FRESHNESS, freshness_seconds(newest_event_us, now));
}

/// Seconds from `newest_event_us` (microseconds since the epoch) to `now`.
pub fn freshness_seconds(newest_event_us: i64, now: chrono::DateTime<chrono::Utc>) -> f64 {
    (now.timestamp_micros() - newest_event_us) as f64 / 1e6
}

/// CloudWatch's Embedded Metric Format: the process's recorder, which writes the metrics recorded
/// since the last flush as JSON lines (CloudWatch Logs turns them into metrics), and the reading
/// back of those lines: what `clickstream status` and `bench cost` show of a local stack, and
/// what its tests reconcile.
pub mod emf {
    use std::collections::BTreeMap;

    /// The process's metrics collector (see [`install`]).
    static COLLECTOR: std::sync::OnceLock<&'static metrics_cloudwatch_embedded::Collector> =
        std::sync::OnceLock::new();

    /// Installs the process's metrics recorder: EMF, in the namespace [`super::NAMESPACE`],
    /// every metric with the dimension [`super::STAGE`] = `stage` (a function's name). Once per
    /// process; a second call fails.
    pub fn install(stage: &str) -> Result<(), String> {
        use super::{NAMESPACE, STAGE, metric};
        let collector = metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace(NAMESPACE)
            .with_dimension(STAGE, stage.to_string())
            .init()
            .map_err(|e| e.to_string())?;
        let duration = metric::HANDLER_DURATION;
        metrics::describe_histogram!(duration, metrics::Unit::Milliseconds, "handler duration");
        metrics::describe_histogram!(metric::FRESHNESS, metrics::Unit::Seconds, "gold freshness");
        metrics::describe_counter!(metric::BYTES_READ, metrics::Unit::Bytes, "bytes read");
        metrics::describe_counter!(metric::BYTES_WRITTEN, metrics::Unit::Bytes, "bytes written");
        COLLECTOR
            .set(collector)
            .map_err(|_| "already installed".to_string())
    }

    /// Writes the metrics recorded since the last call as EMF documents (one JSON line per set
    /// of dimensions) to `writer`. Nothing without [`install`].
    pub fn flush(writer: impl std::io::Write) {
        if let Some(collector) = COLLECTOR.get()
            && let Err(e) = collector.flush(writer)
        {
            tracing::warn!("metrics not written: {e}");
        }
    }

    /// One metric's values over many documents.
    #[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
    pub struct Summary {
        /// Values: one per document of a counter or gauge, one per recording of a histogram
        /// (for [`super::metric::HANDLER_DURATION`], the invocations).
        pub samples: u64,
        /// Sum of its values.
        pub sum: f64,
        /// Largest value.
        pub max: f64,
        /// The value in the last document.
        pub last: f64,
    }

    /// Sums by metric name over every dimension but [`super::STAGE`].
    pub type Sums = BTreeMap<String, Summary>;

    /// The metrics of the EMF documents in every `*.log` file of `dir` (the local stack's
    /// logs), by the stage that emitted them.
    pub fn read_logs(dir: &std::path::Path) -> std::io::Result<BTreeMap<String, Sums>> {
        let mut stages = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|x| x == "log") {
                stages.extend(read(&String::from_utf8_lossy(&std::fs::read(&path)?)));
            }
        }
        stages.remove("");
        Ok(stages)
    }

    /// The metrics of the EMF documents in `log`, by the stage that emitted them. Lines that are
    /// not EMF documents are skipped.
    pub fn read(log: &str) -> BTreeMap<String, Sums> {
        let mut stages: BTreeMap<String, Sums> = BTreeMap::new();
        for line in log.lines().filter(|l| l.contains("\"_aws\"")) {
            let Ok(document) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let stage = document[super::STAGE].as_str().unwrap_or_default();
            let sums = stages.entry(stage.to_string()).or_default();
            let metrics = &document["_aws"]["CloudWatchMetrics"][0]["Metrics"];
            for m in metrics.as_array().into_iter().flatten() {
                let name = m["Name"].as_str().unwrap_or_default();
                // A counter or gauge is one value; a histogram, the list of values recorded.
                let values: Vec<f64> = match &document[name] {
                    serde_json::Value::Array(values) => {
                        values.iter().filter_map(|v| v.as_f64()).collect()
                    }
                    value => value.as_f64().into_iter().collect(),
                };
                for value in values {
                    let s = sums.entry(name.to_string()).or_default();
                    s.samples += 1;
                    s.sum += value;
                    s.max = if s.samples == 1 {
                        value
                    } else {
                        s.max.max(value)
                    };
                    s.last = value;
                }
            }
        }
        stages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_lines_are_summed_per_stage_counters_and_histograms_alike() {
        let line = |stage: &str, name: &str, value: serde_json::Value| {
            serde_json::json!({
                "_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": NAMESPACE,
                    "Dimensions": [[STAGE]], "Metrics": [{"Name": name}]}]},
                STAGE: stage,
                name: value,
            })
            .to_string()
        };
        let log = [
            line("silver", metric::RECORDS_IN, 10.into()),
            "a log line, not a document".to_string(),
            line("silver", metric::RECORDS_IN, 5.into()),
            line(
                "silver",
                metric::HANDLER_DURATION,
                serde_json::json!([40.0, 2.0]),
            ),
            line("gold", metric::FRESHNESS, 30.0.into()),
        ]
        .join("\n");
        let stages = emf::read(&log);
        let silver = &stages["silver"];
        assert_eq!(
            (
                silver[metric::RECORDS_IN].sum,
                silver[metric::RECORDS_IN].samples
            ),
            (15.0, 2)
        );
        let duration = silver[metric::HANDLER_DURATION];
        assert_eq!(
            (duration.sum, duration.samples, duration.max),
            (42.0, 2, 40.0)
        );
        assert_eq!(stages["gold"][metric::FRESHNESS].last, 30.0);
    }
}
