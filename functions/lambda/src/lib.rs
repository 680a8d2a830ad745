//! What every function binary shares: process setup, one log line and one metrics document per
//! invocation, and errors that tell Lambda (and its destinations and alarms) whether a retry can
//! help.

#![deny(missing_docs)]

use std::future::Future;
use std::time::Instant;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use clickstream_allocator::Allocator;
pub use lambda_runtime::Error as RuntimeError;

/// When [`init`] ran: the start of the function's init, for the `initialized` log line.
static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Sets up the process: the allocator's tuning (the binary chooses [`Allocator`] as its global
/// allocator) and JSON logs for CloudWatch. Call first in `main`.
pub fn init() {
    STARTED.get_or_init(Instant::now);
    clickstream_allocator::tune();
    clickstream::telemetry::init("info", clickstream::telemetry::LogFormat::Json);
    let function = std::env::var(clickstream::settings::LAMBDA_FUNCTION_NAME)
        .unwrap_or_else(|_| "local".into());
    if let Err(e) = clickstream::telemetry::emf::install(&function) {
        tracing::warn!("metrics are not emitted: {e}");
    }
}

/// Records what one invocation did: its outcome's counts, its duration, and a failure.
pub fn record_invocation<R: clickstream::telemetry::Measured>(
    result: &clickstream::Result<R>,
    elapsed_ms: u64,
) {
    use clickstream::telemetry::metric;
    match result {
        Ok(outcome) => outcome.record(),
        Err(e) => {
            let class = if e.is_retryable() {
                "Retryable"
            } else {
                "Permanent"
            };
            metrics::counter!(metric::FAILURES, "Class" => class).increment(1);
        }
    }
    metrics::histogram!(metric::HANDLER_DURATION).record(elapsed_ms as f64);
}

/// Serves invocations with `handler` until the runtime stops. Each invocation logs when it
/// starts and how it ended; a failure reaches Lambda as a [`Failure`].
pub async fn serve<E, R, F, Fut>(handler: F) -> Result<(), RuntimeError>
where
    E: DeserializeOwned + Send,
    R: Serialize + clickstream::telemetry::Measured,
    F: Fn(E) -> Fut,
    Fut: Future<Output = clickstream::Result<R>>,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<E>| async move {
        let request = event.context.request_id;
        let started = Instant::now();
        tracing::info!(request, "invocation started");
        let result = handler(event.payload).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        record_invocation(&result, elapsed_ms);
        clickstream::telemetry::emf::flush(std::io::stdout().lock());
        match &result {
            Ok(_) => tracing::info!(request, elapsed_ms, "invocation finished"),
            Err(e) => tracing::error!(
                request,
                elapsed_ms,
                retryable = e.is_retryable(),
                "invocation failed: {e}"
            ),
        }
        result.map_err(Failure)
    }))
    .await
}

/// The `main` of a function whose handler needs only the lake: [`init`], the lake named by
/// [`LakeSettings`](clickstream::settings::LakeSettings), `prepare` (see [`PREPARE_TIMEOUT`]),
/// then [`serve`] with `handler`.
pub async fn serve_lake<E, R>(
    handler: impl AsyncFn(&clickstream::Lake, E) -> clickstream::Result<R>,
    prepare: impl AsyncFnOnce(&clickstream::Lake) -> clickstream::Result<()>,
) -> Result<(), RuntimeError>
where
    E: DeserializeOwned + Send,
    R: Serialize + clickstream::telemetry::Measured,
{
    init();
    let lake = clickstream::settings::LakeSettings::from_env()?.open()?;
    prepare_at_init(&lake, prepare).await;
    serve(|event| handler(&lake, event)).await
}

/// Runs a function's `prepare` at init (bounded by [`PREPARE_TIMEOUT`]; a failure is logged and
/// left to the first invocation), then logs `initialized` with the init's duration.
pub async fn prepare_at_init(
    lake: &clickstream::Lake,
    prepare: impl AsyncFnOnce(&clickstream::Lake) -> clickstream::Result<()>,
) {
    match tokio::time::timeout(PREPARE_TIMEOUT, prepare(lake)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("init: preparing failed, the first invocation will: {e}"),
        Err(_) => tracing::warn!(
            "init: preparing took over {PREPARE_TIMEOUT:?}, the first invocation will do it"
        ),
    }
    let init_ms = STARTED.get().map_or(0, |t| t.elapsed().as_millis() as u64);
    tracing::info!(init_ms, "initialized");
}

/// How long a function's init may spend preparing what its first invocation would otherwise read
/// (Lambda allows an init 10 s). Preparing is only a head start: when it fails or takes longer,
/// the function starts anyway and its first invocation does the work.
pub const PREPARE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Nothing to prepare at init.
pub async fn nothing_to_prepare(_: &clickstream::Lake) -> clickstream::Result<()> {
    Ok(())
}

/// Declares a function binary's global allocator ([`Allocator`]) and its `main`, which serves
/// `handler` (an `async fn(&Lake, Event) -> Result<Outcome>`) with [`serve_lake`]: the whole
/// `main.rs` of a function that needs only the lake, besides its handler and tests. A second
/// argument (an `async fn(&Lake) -> Result<()>`) is run at init, before the first event.
#[macro_export]
macro_rules! lake_function {
    ($handler:path) => {
        $crate::lake_function!($handler, $crate::nothing_to_prepare);
    };
    ($handler:path, $prepare:path) => {
        #[global_allocator]
        static ALLOCATOR: $crate::Allocator = $crate::Allocator;

        #[tokio::main]
        async fn main() -> Result<(), $crate::RuntimeError> {
            $crate::serve_lake($handler, $prepare).await
        }
    };
}

/// A stage error as Lambda reports it: `errorType` is `Retryable.KIND` when the same event may
/// succeed later (a store that did not answer, a lost commit race) and `Permanent.KIND` when it
/// will fail the same way again (a malformed trigger event, a table without a column the stage
/// reads), with KIND the [`clickstream::Error`] variant.
#[derive(Debug)]
pub struct Failure(pub clickstream::Error);

impl Failure {
    /// `Retryable.KIND` or `Permanent.KIND`.
    pub fn error_type(&self) -> String {
        let class = if self.0.is_retryable() {
            "Retryable"
        } else {
            "Permanent"
        };
        format!("{class}.{}", self.0.kind())
    }
}

impl From<Failure> for Diagnostic {
    fn from(failure: Failure) -> Diagnostic {
        let mut message = failure.0.to_string();
        let mut cause = std::error::Error::source(&failure.0);
        while let Some(c) = cause {
            let text = c.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            cause = c.source();
        }
        Diagnostic {
            error_type: failure.error_type(),
            error_message: message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickstream::Error;
    use clickstream::error::TriggerError;

    #[test]
    fn a_malformed_trigger_is_permanent_and_a_store_failure_retryable() {
        let trigger = Diagnostic::from(Failure(Error::Trigger(TriggerError::Shape {
            expected: "no Records",
        })));
        assert_eq!(trigger.error_type, "Permanent.Trigger");
        assert!(trigger.error_message.contains("no Records"));
        let store = Diagnostic::from(Failure(Error::ObjectStore(object_store_timeout())));
        assert_eq!(store.error_type, "Retryable.ObjectStore");
        let gone = Diagnostic::from(Failure(Error::ObjectStore(object_store_not_found(
            "landing/a.jsonl",
        ))));
        assert_eq!(gone.error_type, "Permanent.ObjectStore");
        assert!(gone.error_message.contains("landing/a.jsonl"), "{gone:?}");
    }

    fn object_store_timeout() -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: "operation timed out".into(),
        }
    }

    fn object_store_not_found(path: &str) -> object_store::Error {
        object_store::Error::NotFound {
            path: path.into(),
            source: "404".into(),
        }
    }
}
