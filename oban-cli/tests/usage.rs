//! What the binary refuses before it connects: no database, bad filters, bulk commands without
//! a filter. Exit code 2, and a message saying what is wrong.

use assert_cmd::Command;

fn oban() -> Command {
    let mut cmd = Command::cargo_bin("oban").expect("the oban binary is built");
    cmd.env_remove("DATABASE_URL");
    cmd
}

fn refused(args: &[&str], expected: &str) {
    let output = oban().args(args).output().expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
    assert!(output.stdout.is_empty(), "{args:?}");
}

#[test]
fn without_a_database_it_says_how_to_give_one() {
    refused(&["queues"], "pass --database URL or set DATABASE_URL");
}

#[test]
fn bad_filters_are_refused_before_anything_runs() {
    // A URL nothing listens on: the refusal comes before any connection.
    let db = ["--database", "postgres://nobody:secret@127.0.0.1:1/none"];
    let cases: [(&[&str], &str); 6] = [
        (&["jobs", "--state", "dead"], "unknown job state `dead`"),
        (&["jobs", "--args", "{user: 1}"], "is not JSON"),
        (&["failing", "--since", "1 hour"], "invalid duration"),
        (&["retry"], "needs a filter"),
        (
            &["replay", "--state", "retryable"],
            "replay does not change retryable jobs",
        ),
        (&["scale", "default", "0"], "0 is not in 1.."),
    ];
    for (args, expected) in cases {
        let all: Vec<&str> = db.iter().chain(args).copied().collect();
        refused(&all, expected);
    }
}

#[test]
fn bad_limits_are_refused_before_anything_runs() {
    let db = ["--database", "postgres://nobody:secret@127.0.0.1:1/none"];
    let cases: [(&[&str], &str); 9] = [
        (&["limits", "q", "--global", "0"], "0 is not in 1.."),
        (&["limits", "q", "--rate", "100"], "the `/` is missing"),
        (&["limits", "q", "--rate", "100/60"], "the unit is missing"),
        (&["limits", "q", "--rate", "5/2d"], "1s to 1d"),
        (&["limits", "q", "--rate", "0/1m"], "pause the queue"),
        (
            &["limits", "q", "--global", "3", "--global-by", "tenant"],
            "neither worker nor args",
        ),
        (&["limits", "q", "--global-by", "worker"], "--global <N>"),
        (&["limits", "--global", "3"], "<QUEUE>"),
        (
            &["limits", "q", "--clear", "--rate", "5/1s"],
            "cannot be used with",
        ),
    ];
    for (args, expected) in cases {
        let all: Vec<&str> = db.iter().chain(args).copied().collect();
        refused(&all, expected);
    }
}

#[test]
fn a_database_error_exits_1_without_the_password() {
    let output = oban()
        .args([
            "--database",
            "postgres://nobody:s3cret@127.0.0.1:1/none",
            "queues",
        ])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[test]
fn help_names_every_command() {
    let output = oban().arg("--help").output().expect("run");
    let text = String::from_utf8_lossy(&output.stdout);
    for command in [
        "queues", "jobs", "job", "failing", "pause", "resume", "scale", "retry", "cancel",
        "delete", "replay", "prune", "migrate", "cron", "limits",
    ] {
        assert!(text.contains(command), "{command}: {text}");
    }
}
