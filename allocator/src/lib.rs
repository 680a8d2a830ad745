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

/// mimalloc's `mi_option_purge_delay` and `mi_option_allow_thp`: their indexes in the vendored v3
/// `mimalloc.h` (the Rust bindings do not name them).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// The environment variable with which mimalloc lets a user choose transparent huge pages; when it
/// is set, [`tune`] leaves that choice alone.
pub const ALLOW_THP_ENV: &str = "MIMALLOC_ALLOW_THP";

/// The environment variable with which mimalloc lets a user choose the purge delay (ms); when it
/// is set, [`tune`] leaves that choice alone.
pub const PURGE_DELAY_ENV: &str = "MIMALLOC_PURGE_DELAY";

/// Tunes mimalloc for short-lived processes that build and drop Arrow batches. Binaries call it
/// first thing in `main`.
///
/// - Freed memory stays mapped for a second before it goes back to the OS (mimalloc's default is
///   about 10 ms; [`PURGE_DELAY_ENV`] chooses another). A stage that builds and drops batches of
///   100 MB otherwise spends a fifth of its time in the kernel zeroing the same pages again
///   (`clear_page_erms` in the profile of a landed 1M-event file: 11.4 s -> 8.1 s). It costs
///   memory: the streaming million peaks at about 1.25 GiB with it and 0.9 GiB with a delay of
///   0 ms, which takes 1.5x as long.
/// - No transparent huge pages for the process (unless [`ALLOW_THP_ENV`] says otherwise).
///   mimalloc asks for them (`MADV_HUGEPAGE`), so on a kernel set to `madvise` (or `always`) the
///   first touch of any 4 KiB faults in and zeroes 2 MiB, after compacting memory to find them. A
///   fresh process touches nothing but new memory: in the profile of a fresh `clickstream ingest`
///   of 100 events, 60% of the samples were the kernel zeroing huge pages, and its peak RSS was
///   twice what it was without them.
pub fn tune() {
    if std::env::var_os(PURGE_DELAY_ENV).is_none() {
        // SAFETY: setting an option is a plain store mimalloc allows at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) }
    }
    if std::env::var_os(ALLOW_THP_ENV).is_none() {
        // SAFETY: as above.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0) }
        disable_transparent_huge_pages();
    }
}

/// Turns transparent huge pages off for this process, also in memory mimalloc reserved before
/// `main` (its own switch acts only when it starts, on the environment variable).
#[cfg(target_os = "linux")]
fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and changes only this process's flag. On a
    // kernel without it the call fails and nothing changes, which is fine.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(not(target_os = "linux"))]
fn disable_transparent_huge_pages() {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// The process's `THP_enabled` flag, from `/proc/self/status`.
    fn thp_enabled() -> Option<bool> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("THP_enabled:"))?;
        Some(line.split_whitespace().nth(1)? == "1")
    }

    #[test]
    fn tune_turns_transparent_huge_pages_off_and_delays_purges() {
        if std::env::var_os(super::ALLOW_THP_ENV).is_some() {
            eprintln!("skipped: {} is set", super::ALLOW_THP_ENV);
            return;
        }
        let before = thp_enabled().expect("this kernel reports THP_enabled in /proc/self/status");
        assert!(
            before,
            "a test process starts with transparent huge pages allowed"
        );
        super::tune();
        assert_eq!(thp_enabled(), Some(false));
        if std::env::var_os(super::PURGE_DELAY_ENV).is_none() {
            // SAFETY: reading an option is a plain load.
            let delay = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
            assert_eq!(delay, 1000, "freed memory stays mapped for a second");
        }
    }
}
