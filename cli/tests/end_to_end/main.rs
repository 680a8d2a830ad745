//! End-to-end tests of the `clickstream` binary, as one test binary (one link instead of one per
//! file): the embedded demo, the dashboard in a real browser, and the local stack.

mod browser;
mod concurrent;
mod demo;
mod faults;
mod local_stack;
mod stack;

/// Tests that load the whole machine (the local stack, eight writers at once) take turns, so that
/// neither's deadlines measure the other's load.
pub static MACHINE_WIDE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds [`MACHINE_WIDE`] (also after another such test failed while holding it).
pub fn machine_wide() -> std::sync::MutexGuard<'static, ()> {
    MACHINE_WIDE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
