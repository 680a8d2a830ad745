//! Logging: JSON lines in Lambda (CloudWatch), human-readable on a terminal.

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
    let _ = if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        builder.json().without_time().try_init()
    } else {
        use std::io::IsTerminal;
        builder
            .compact()
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}
