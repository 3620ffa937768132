//! Without control-plane binaries a user's `cargo test` skips cluster tests with a notice, and CI
//! fails. Its own test binary: it changes the environment of the whole process.

use harness::{ControlPlane, HarnessError};

#[test]
fn missing_binaries_skip_outside_ci_and_fail_in_ci() {
    let empty = tempfile::tempdir().expect("a temporary directory");
    // SAFETY: this binary runs this single test, on one thread, before anything reads the environment.
    unsafe {
        std::env::set_var("KUBEBUILDER_ASSETS", empty.path());
        std::env::remove_var("KUBE_BINARIES");
        std::env::remove_var("CI");
    }
    assert!(
        matches!(ControlPlane::start(), Ok(None)),
        "skipped without CI"
    );

    // SAFETY: as above.
    unsafe { std::env::set_var("CI", "true") };
    match ControlPlane::start() {
        Err(HarnessError::BinariesMissing { how }) => {
            assert!(how.contains("KUBEBUILDER_ASSETS"), "{how}")
        }
        Err(other) => panic!("expected BinariesMissing, got {other}"),
        Ok(started) => panic!(
            "expected BinariesMissing, got a control plane: {}",
            started.is_some()
        ),
    }
}
