//! Crash points for the crash-consistency tests: with the `test-hooks` feature,
//! `VFPLEX_CRASH_AT=<n>` makes ADD die at once (abort, no cleanup) at point n,
//! after printing `VFPLEX-CRASH-POINT <n>` on stderr.
//! The plugins number their steps (see each `add.rs`). Without the feature this
//! compiles to nothing, so production builds cannot be told to crash.

#[cfg(feature = "test-hooks")]
pub fn point(n: usize) {
    if std::env::var("VFPLEX_CRASH_AT")
        .ok()
        .and_then(|v| v.parse().ok())
        == Some(n)
    {
        // The marker tells a test this is the crash it asked for, not an
        // ordinary early error.
        eprintln!("VFPLEX-CRASH-POINT {n}");
        std::process::abort();
    }
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn point(_n: usize) {}
