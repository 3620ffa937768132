//! Without control-plane binaries a cluster test fails, saying how to build them; it never
//! passes without running. Its own test binary: it changes the environment of the whole process.

use harness::{ControlPlane, HarnessError};

#[test]
fn missing_binaries_fail_with_how_to_build_them() {
    let empty = tempfile::tempdir().expect("a temporary directory");
    // SAFETY: this binary runs this single test, on one thread, before anything reads the environment.
    unsafe {
        std::env::set_var("KUBE_BINARIES", empty.path());
        std::env::set_var("CI", "");
    }
    match ControlPlane::start() {
        Err(HarnessError::BinariesMissing { why, how }) => {
            assert!(why.contains("kube-apiserver"), "{why}");
            assert!(how.contains("tests/upstream/build"), "{how}");
            assert!(how.contains("IPPOOL_SKIP_CLUSTER"), "{how}");
        }
        Err(other) => panic!("expected BinariesMissing, got {other}"),
        Ok(_) => panic!("expected BinariesMissing, got a control plane"),
    }
}
