//! The agent's heap: one malloc arena, and freed heap given back to the system after the
//! running checks change.
//!
//! glibc gives every thread that allocates its own arena (up to 8 per core), and each arena
//! keeps its own free pages: the two runtime workers and the blocking threads (spool
//! fsyncs, host readings) each held a partly empty heap. The agent allocates little and
//! rarely (one measurement per probe, about 100 per second at 1,000 checks @10s), so one
//! shared arena costs no measurable contention and saves about 1 MiB (`bench/agent-rss`).
//!
//! Building the checks leaves large freed regions behind: the parsed TOML document, every
//! probe start-up builds once to validate the file, the previous definitions after a
//! reload or a new assignment. glibc's allocator keeps freed pages of its arenas resident
//! until the top of a heap is free, so these transients would stay in the agent's RSS for
//! its whole life (measured: about 1 MiB at 1,000 checks, `bench/agent-rss`).
//!
//! Large blocks (64 KiB and more: a batch's JSON, zstd's compression context, a long
//! response body) are mapped and unmapped on their own. glibc's default would raise that
//! threshold after the first such block is freed and from then on keep them in the heap,
//! where their freed pages stay resident (measured: about 0.35 MiB at 1,000 checks,
//! `bench/agent-rss`); the cost is one mmap/munmap per such block, about one a second.
//!
//! Invariant: only whole free pages are returned (`malloc_trim`); nothing in use moves, so
//! this is safe at any time. It is called only when the checks change (start-up, SIGHUP,
//! a new assignment), never per probe. A no-op where the C library is not glibc.

/// Large blocks are mapped on their own from this size up (fixed: no dynamic threshold).
const MMAP_THRESHOLD: i32 = 64 * 1024;
/// Free memory at the top of the heap beyond this is returned at once (fixed as well).
const TRIM_THRESHOLD: i32 = 128 * 1024;

/// Makes every thread allocate from one arena, and large blocks come and go as their own
/// mappings. Call first thing in `main`, before any thread is started.
pub fn tune_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt changes an allocator parameter; with no other thread running yet
    // nothing observes the change half-way.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Returns free heap pages of every malloc arena to the system.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases pages the allocator holds free; it takes the
    // arenas' own locks and has no other effect on the process.
    unsafe {
        libc::malloc_trim(0);
    }
}
