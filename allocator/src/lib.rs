//! The allocator every binary of the project chooses, and its tuning:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: clickstream_allocator::Allocator = clickstream_allocator::Allocator;
//!
//! fn main() {
//!     clickstream_allocator::tune();
//! }
//! ```
//!
//! jemalloc, because Arrow and Parquet make many short-lived allocations on threads that come and
//! go (delta-kernel decodes Parquet on tokio's blocking pool: ~100 threads over a streaming
//! million, ~20 alive at once). glibc's allocator keeps freed memory in an arena per thread
//! (1.36 GiB peak RSS on that run), and mimalloc, used before, in pages per thread heap that an
//! exiting thread abandons (1.06-1.20 GiB); jemalloc's few shared arenas hand freed memory on
//! to the next thread and return it to the OS after a second (0.55-0.69 GiB, at the same speed).

#![deny(missing_docs)]

pub use tikv_jemallocator::Jemalloc as Allocator;

/// The environment variable with which jemalloc (as this build prefixes its symbols) lets a user
/// choose its options; they apply after [`MALLOC_CONF`]'s.
pub const MALLOC_CONF_ENV: &str = "_RJEM_MALLOC_CONF";

/// jemalloc's options, read when it starts (before `main`):
///
/// - `background_thread:true`: a thread returns freed memory to the OS, not the allocating ones.
/// - `dirty_decay_ms:200`: freed pages stay mapped for a fifth of a second (jemalloc's default is
///   10 s), so that a stage's next allocations reuse them without the kernel zeroing them again,
///   and memory a batch no longer needs leaves the RSS soon after. Against 1 s, the million of
///   `bench pipeline` peaked 27-64 MiB lower for 2-7% more wall time (docs/benchmarks.md); at 0,
///   its wall time doubled.
/// - `muzzy_decay_ms:0`: pages are handed back at once when they leave the dirty list.
/// - `percpu_arena:percpu`: one arena per CPU, whatever the number of threads.
pub const MALLOC_CONF: &std::ffi::CStr =
    c"background_thread:true,dirty_decay_ms:200,muzzy_decay_ms:0,percpu_arena:percpu";

/// A C string pointer that may live in a `static`.
#[repr(transparent)]
struct ConfPointer(*const std::ffi::c_char);

// SAFETY: it points at a `'static` string that is never written.
unsafe impl Sync for ConfPointer {}

/// jemalloc reads its options from this symbol (its weak default is empty).
#[used]
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_CONF: ConfPointer = ConfPointer(MALLOC_CONF.as_ptr());

/// Tunes the process for short-lived work that builds and drops Arrow batches. Binaries call it
/// first thing in `main`.
///
/// No transparent huge pages for the process (unless [`ALLOW_THP_ENV`] is set). On a kernel set
/// to `always`, the first touch of any 4 KiB faults in and zeroes 2 MiB, after compacting memory
/// to find them. A fresh process touches nothing but new memory: in the profile of a fresh
/// `clickstream ingest` of 100 events, 60% of the samples were the kernel zeroing huge pages, and
/// its peak RSS was twice what it was without them.
pub fn tune() {
    if std::env::var_os(ALLOW_THP_ENV).is_none() {
        disable_transparent_huge_pages();
    }
}

/// The environment variable that, when set, leaves transparent huge pages as the system has them.
pub const ALLOW_THP_ENV: &str = "CLICKSTREAM_ALLOW_THP";

/// Turns transparent huge pages off for this process, also in memory mapped before `main`.
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

#[cfg(test)]
mod tests {
    #[global_allocator]
    static ALLOCATOR: super::Allocator = super::Allocator;

    #[test]
    fn jemalloc_reads_the_options_built_in() {
        if std::env::var_os(super::MALLOC_CONF_ENV).is_some() {
            eprintln!("skipped: {} is set", super::MALLOC_CONF_ENV);
            return;
        }
        let _ = vec![0u8; 1 << 20];
        // SAFETY: each name is a NUL-terminated option of jemalloc 5 of the type read.
        let (decay, muzzy, background, percpu) = unsafe {
            (
                tikv_jemalloc_ctl::raw::read::<isize>(b"opt.dirty_decay_ms\0").unwrap(),
                tikv_jemalloc_ctl::raw::read::<isize>(b"opt.muzzy_decay_ms\0").unwrap(),
                tikv_jemalloc_ctl::raw::read::<bool>(b"opt.background_thread\0").unwrap(),
                tikv_jemalloc_ctl::raw::read::<*const std::ffi::c_char>(b"opt.percpu_arena\0")
                    .map(|p| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
                    .unwrap(),
            )
        };
        assert_eq!((decay, muzzy, background), (200, 0, true));
        assert_eq!(percpu, "percpu");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn tune_turns_transparent_huge_pages_off() {
        /// The process's `THP_enabled` flag, from `/proc/self/status`.
        fn thp_enabled() -> Option<bool> {
            let status = std::fs::read_to_string("/proc/self/status").ok()?;
            let line = status.lines().find(|l| l.starts_with("THP_enabled:"))?;
            Some(line.split_whitespace().nth(1)? == "1")
        }
        if std::env::var_os(super::ALLOW_THP_ENV).is_some() {
            eprintln!("skipped: {} is set", super::ALLOW_THP_ENV);
            return;
        }
        assert_eq!(
            thp_enabled(),
            Some(true),
            "a test process starts with transparent huge pages allowed"
        );
        super::tune();
        assert_eq!(thp_enabled(), Some(false));
    }
}
