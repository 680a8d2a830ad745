//! Logging: JSON lines in Lambda (CloudWatch), human-readable on a terminal. Metrics: what each
//! stage counted, recorded through the `metrics` facade under the names here (a function emits
//! them in CloudWatch's Embedded Metric Format; elsewhere no recorder is installed and recording
//! costs nothing).

use tracing_subscriber::EnvFilter;

/// Default filter: the delta kernel logs a failed snapshot load (a table not created yet) as an
/// error, which the library handles, and delta-rs warns on every write that it keeps no
/// statistics for binary columns; keep both out of the logs.
const QUIET_DEPENDENCIES: &str = "buoyant_kernel=off,deltalake_core=error,datafusion=warn";

/// Installs the global subscriber at `level` (`RUST_LOG` overrides it).
pub fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},{QUIET_DEPENDENCIES}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var_os(crate::settings::LAMBDA_FUNCTION_NAME).is_some() {
        builder.json().without_time().try_init()
    } else {
        use std::io::IsTerminal;
        builder
            .compact()
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "Clickstream";
/// The dimension every metric carries: the function that emitted it.
pub const STAGE: &str = "Stage";
/// The dimension of [`metric::QUARANTINED`]: the reject reason code.
pub const REASON: &str = "Reason";

/// Metric names, chosen once (Terraform's alarms and `clickstream status` read the same).
pub mod metric {
    /// Records a stage took in (bronze: received; silver: bronze rows read; gold: new silver
    /// rows; forget: rows removed).
    pub const RECORDS_IN: &str = "RecordsIn";
    /// Records a stage wrote (bronze: rows appended; silver: valid rows appended).
    pub const RECORDS_OUT: &str = "RecordsOut";
    /// Records silver quarantined, per [`super::REASON`].
    pub const QUARANTINED: &str = "Quarantined";
    /// Records silver dropped as duplicates, or bronze as already written.
    pub const DUPLICATES: &str = "Duplicates";
    /// Records silver dropped as an erased person's.
    pub const SUPPRESSED: &str = "Suppressed";
    /// Commit races lost and retried.
    pub const LOST_RACES: &str = "LostRaces";
    /// Milliseconds the handler took.
    pub const HANDLER_DURATION: &str = "HandlerDuration";
    /// Invocations that failed.
    pub const FAILURES: &str = "Failures";
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
