//! clients/python: the package's own pytest suite (sync and async clients,
//! ASGI middleware under uvicorn, WSGI middleware under waitress, failure
//! handling, mypy --strict) run against this build's floodgate. Fails when
//! pytest fails; skipped (with a message) only where `python3` is missing.
//! `scripts/test` creates the virtual environment `clients/python/.venv`.

use std::process::Command;

use floodgate_e2e::{binary, repo_root};

#[test]
fn python_client_pytest_suite_passes() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("python3 is not installed: skipping the Python client tests");
        return;
    }
    let root = repo_root();
    let python = root.join("clients/python/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test, or `python3 -m venv clients/python/.venv && \
         clients/python/.venv/bin/pip install -r clients/python/requirements-dev.txt`",
        python.display()
    );
    let output = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(root.join("clients/python/tests"))
        .current_dir(&root)
        .env("FLOODGATE_BIN", binary())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "pytest failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains(" passed"),
        "pytest ran no tests:\n{stdout}\n{stderr}"
    );
}
