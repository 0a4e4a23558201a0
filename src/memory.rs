//! Memory goes back to the system after a burst.
//!
//! Bursts of large messages are what the proxy's byte budgets bound; after
//! one, glibc's malloc kept what it had grown to: measured with 20 clients
//! sending 1 MiB `xhr_send` bodies to a service with no backend, then a
//! backend draining them, RSS was 153 MiB at the peak and still 135 MiB five
//! seconds after the drain (3 GB after a burst before the budgets existed).
//! The cause is glibc's dynamic mmap threshold: once a large mmapped block
//! is freed, the threshold rises (up to 32 MiB) and later large blocks come
//! from the heap, which is rarely trimmed. Fixing the threshold at 256 KiB
//! keeps every large message in a mapping of its own, unmapped when freed:
//! the same burst then peaked at 125 MiB and fell to 22 MiB after the drain.
//!
//! mimalloc was tried as well: 208 MiB at the peak and 208 MiB after the
//! drain (it frees pages with `MADV_FREE`, which leaves them counted in RSS
//! until the kernel needs them).

/// Large blocks each get their own mapping above this size.
const MMAP_THRESHOLD: i32 = 256 * 1024;

/// Sets glibc's allocator up to give freed memory back; does nothing
/// elsewhere.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called once at start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
