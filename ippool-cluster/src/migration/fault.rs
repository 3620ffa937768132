//! Fault injection for the kill tests, compiled in only with the `fault-injection` feature (the
//! plugin's test builds turn it on; without it `at` does nothing): with `IPPOOL_FAULT_AT=<point>` in the environment the
//! process exits at once with status 137 (what a shell reports for SIGKILL) when it reaches that
//! point — no cleanup, no lock release, no record update — so that a test can stop a migration at
//! an exact step boundary and check that running the command again finishes it.
//!
//! Points, in the order a migration reaches them:
//! - `create-new`, `disable-old`, `move-workloads`, `verify`, `release-old`, `delete-old`: just
//!   before that step starts (the previous one is recorded as done). `delete-old` is the moment
//!   between the affinity release and the pool delete.
//! - `mid-move`: while moving workloads, as soon as the first workload has moved and before the
//!   others are recorded (with `--concurrency` > 1 others may be half-way).
//! - `unlock`: every step done, the lock not yet released.
//!
//! A resize prefixes the points of its first migration (NAME → temporary pool) with `to-temp/`
//! and of its second (temporary pool → NAME) with `back/`, and adds `clean-old-cidr` and
//! `recreate` before those steps; `unlock` is the resize's own last point.

/// The environment variable naming the point.
pub const ENV: &str = "IPPOOL_FAULT_AT";

/// Exits with status 137 if `IPPOOL_FAULT_AT` names `point`.
#[cfg(feature = "fault-injection")]
pub fn at(point: &str) {
    if std::env::var(ENV).is_ok_and(|wanted| wanted == point) {
        eprintln!("{ENV}={point}: exiting with status 137 as if killed");
        std::process::exit(137);
    }
}

/// Without the feature there is no fault point: the environment is not even read.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn at(_point: &str) {}

/// The environment variable naming the host a session claims to run on.
pub const HOST_ENV: &str = "IPPOOL_FAULT_HOST";

/// With `IPPOOL_FAULT_HOST`, the host this process's session names: a test's second process
/// passes for one on another machine, whose liveness only its Lease renewals can tell.
#[cfg(feature = "fault-injection")]
pub fn session_host() -> Option<String> {
    std::env::var(HOST_ENV).ok().filter(|h| !h.is_empty())
}

/// Without the feature a session names the real host.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn session_host() -> Option<String> {
    None
}
