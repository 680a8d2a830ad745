//! Clickstream pipeline core.
//!
//! `producer -> Kafka -> bronze -> silver -> gold -> exports`: each stage is a plain function over
//! Arrow batches and Delta tables ([`bronze`], [`silver`], [`gold`], [`export`]); [`functions`]
//! holds the handlers the Lambda binaries and the embedded [`pipeline`] call.

pub mod bronze;
pub mod dashboard;
pub mod error;
pub mod event;
#[cfg(feature = "duckdb")]
pub mod export;
pub mod functions;
pub mod generator;
pub mod gold;
pub mod lake;
pub mod maintenance;
pub mod pipeline;
pub mod samples;
pub mod schema;
pub mod silver;
pub mod telemetry;
pub mod trigger;

pub use error::{Error, Result};
pub use lake::{Lake, Table};

/// Every binary linking the pipeline allocates with mimalloc: Arrow and Parquet make many
/// short-lived allocations, where glibc's allocator spends time consolidating and keeps memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`: its index in the vendored v3 `mimalloc.h` (the Rust bindings
/// do not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory mapped for a second before mimalloc returns it to the OS (its default is
/// about 10 ms). A stage that builds and drops batches of 100 MB otherwise spends a fifth of its
/// time in the kernel zeroing the same pages again (`clear_page_erms` in the profile of a landed
/// 1M-event file: 11.4 s -> 8.1 s). Binaries call it first thing in `main`.
pub fn tune_allocator() {
    // SAFETY: setting an option is a plain store mimalloc allows at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) }
}
