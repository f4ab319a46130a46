//! Crash points for the crash-consistency tests: with the `test-hooks` feature,
//! `VFPLEX_CRASH_AT=<n>` makes ADD die at once (abort, no cleanup) at point n:
//! 1 after the cache entry is written, 2 + i after delegate i attached, 100
//! after every delegate attached. Without the feature this compiles to nothing,
//! so production builds cannot be told to crash.

#[cfg(feature = "test-hooks")]
pub fn point(n: usize) {
    if std::env::var("VFPLEX_CRASH_AT")
        .ok()
        .and_then(|v| v.parse().ok())
        == Some(n)
    {
        std::process::abort();
    }
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn point(_n: usize) {}
