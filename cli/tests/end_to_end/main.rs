//! End-to-end tests of the `clickstream` binary, as one test binary (one link instead of one per
//! file): the embedded demo, the dashboard in a real browser, and the local stack.

mod browser;
mod concurrent;
mod demo;
mod erasure;
mod faults;
mod least_privilege;
mod live;
mod local_stack;
mod serve;
mod stack;

/// Tests that load the whole machine (the local stack, eight writers at once) take turns, so that
/// neither's deadlines measure the other's load. An async mutex: the turn is held across the
/// test's awaits (and a failed test's turn is released as it unwinds).
pub static MACHINE_WIDE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for and holds [`MACHINE_WIDE`].
pub async fn machine_wide() -> tokio::sync::MutexGuard<'static, ()> {
    MACHINE_WIDE.lock().await
}

/// Set by `scripts/test` (and so in CI): a test whose tools or binaries are missing fails instead
/// of being skipped.
pub const REQUIRE_SERVICES: &str = "CLICKSTREAM_REQUIRE_SERVICES";

/// True when nothing is `missing`. Otherwise `test` is skipped with the reason printed (what a
/// plain `cargo test` on a fresh clone expects), or fails when [`REQUIRE_SERVICES`] is set.
pub fn available(test: &str, missing: &[String]) -> bool {
    if missing.is_empty() {
        return true;
    }
    let reason = format!(
        "{test} needs {}: scripts/test installs and builds them",
        missing.join(", ")
    );
    assert!(std::env::var_os(REQUIRE_SERVICES).is_none(), "{reason}");
    eprintln!("skipped: {reason}");
    false
}
