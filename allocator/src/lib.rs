//! The allocator every binary of the project chooses, and its tuning:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: clickstream_allocator::MiMalloc = clickstream_allocator::MiMalloc;
//!
//! fn main() {
//!     clickstream_allocator::tune();
//! }
//! ```
//!
//! mimalloc, because Arrow and Parquet make many short-lived allocations, where glibc's allocator
//! spends time consolidating and keeps memory.

#![deny(missing_docs)]

pub use mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`: its index in the vendored v3 `mimalloc.h` (the Rust bindings
/// do not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory mapped for a second before mimalloc returns it to the OS (its default is
/// about 10 ms). A stage that builds and drops batches of 100 MB otherwise spends a fifth of its
/// time in the kernel zeroing the same pages again (`clear_page_erms` in the profile of a landed
/// 1M-event file: 11.4 s -> 8.1 s). Binaries call it first thing in `main`.
pub fn tune() {
    // SAFETY: setting an option is a plain store mimalloc allows at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) }
}
