//! clients/node: the Node package's own tests (`npm test`: node's test
//! runner; the client, and real Express and Fastify apps) against this
//! build's floodgate. Skipped (with a message) where `node` is not
//! installed; `scripts/test` installs the npm packages they need.

use std::path::PathBuf;
use std::process::Command;

use floodgate_e2e::{binary, repo_root};

/// Runs `npm run <script>` in clients/node with `FLOODGATE_BIN` set to the
/// binary under test; panics with npm's output when it fails. Does nothing
/// (says so) when node is not installed.
fn npm_run(script: &str) {
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!("node is not installed: skipping the Node client's tests");
        return;
    }
    let package: PathBuf = repo_root().join("clients/node");
    assert!(
        package.join("node_modules").exists(),
        "clients/node/node_modules is missing: run `npm ci --prefix clients/node --no-audit --no-fund` (scripts/test does)"
    );
    let output = Command::new("npm")
        .args(["run", script])
        .current_dir(&package)
        .env("FLOODGATE_BIN", binary())
        .env("npm_config_update_notifier", "false")
        .output()
        .expect("run npm (installed with node)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "`npm run {script}` failed in clients/node:\n{stdout}\n{stderr}"
    );
}

#[test]
fn node_client_package_tests_pass() {
    npm_run("test");
}

#[test]
fn node_client_new_fields_tests_pass() {
    npm_run("test:new-fields");
}
