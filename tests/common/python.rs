//! The pinned Python Oban package (oban 0.7.0 on Python 3.12) for the interop tests, driven
//! through `tests/interop/node.py`.
//!
//! The interpreter is `OBAN_PY_PYTHON` (`.ci/run` creates the venv and sets it), else the venv
//! `.ci/run` leaves at `target/interop-venv`. Without either, a test that needs it prints a
//! notice and passes, unless `CI=true`, where it fails: CI must run them.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::ChildGuard;

/// How long one command of `node.py` may take (`work` runs until its stdin closes).
pub const LIMIT: Duration = Duration::from_secs(60);

/// The interpreter with the pinned package, or `None` (after a notice) when there is none and
/// this is not CI.
pub fn interpreter(test: &str) -> Option<PathBuf> {
    let path = match std::env::var_os("OBAN_PY_PYTHON") {
        Some(path) => Some(PathBuf::from(path)),
        None => {
            let venv =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/interop-venv/bin/python");
            venv.exists().then_some(venv)
        }
    };
    match path {
        Some(path) => {
            assert!(
                path.exists(),
                "OBAN_PY_PYTHON is {}, which does not exist: run .ci/run to create the venv",
                path.display()
            );
            Some(path)
        }
        None if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "{test}: no Python with the oban package: set OBAN_PY_PYTHON or run .ci/run, which \
             creates target/interop-venv from Python 3.12"
        ),
        None => {
            eprintln!(
                "SKIPPED {test}: Python interop needs Python 3.12 with oban==0.7.0; run .ci/run \
                 (it creates target/interop-venv) or set OBAN_PY_PYTHON"
            );
            None
        }
    }
}

/// `node.py` with `args` under `python`, its stdout and stderr piped.
fn node_py(python: &PathBuf, args: &[&str]) -> Command {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/node.py");
    let mut command = Command::new(python);
    command
        .arg(script)
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs one `node.py` command to its end and returns its stdout; panics with its stderr when
/// it fails.
pub async fn run(python: &PathBuf, args: &[&str]) -> String {
    let child = ChildGuard::spawn(
        format!("python {}", args[0]),
        node_py(python, args).stdin(Stdio::null()),
    );
    let output = child.wait_with_output(LIMIT).await;
    assert!(
        output.status.success(),
        "python node.py {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// The schema the pinned package installs (`oban.schema.install_sql()`), as SQL.
pub async fn install_sql(python: &PathBuf) -> String {
    run(python, &["install-sql"]).await
}

/// A Python node working queue `default` on `url` as `node`, until [`stop_node`].
pub fn spawn_node(python: &PathBuf, url: &str, node: &str) -> ChildGuard {
    ChildGuard::spawn(
        format!("python node {node}"),
        node_py(python, &["work", url, node]).stdin(Stdio::piped()),
    )
}

/// Stops a node [`spawn_node`] started (its stdin closes, it shuts down) and returns the ids of
/// the jobs it ran, once per run. Anything Python Oban logged (its failed loops: a query the
/// schema could not answer) fails the test.
pub async fn stop_node(mut node: ChildGuard) -> Vec<i64> {
    node.close_stdin();
    let output = node.wait_with_output(LIMIT).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the Python node failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("Traceback"),
        "a loop of the Python node failed: {stderr}"
    );
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("ran "))
        .map(|id| id.trim().parse().expect("a job id"))
        .collect()
}
