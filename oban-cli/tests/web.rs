//! `oban web`: the dashboard served by the binary, with its safe defaults (loopback, read-only
//! without a token), a token that grants full access, and a clean stop on SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

const TOKEN: &str = "token-for-the-web-test-0123";

/// A running `oban web`, stopped (SIGTERM) on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(url: &str, args: &[&str]) -> Server {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("oban"))
            .env_remove("DATABASE_URL")
            .env_remove("OBAN_WEB_TOKEN")
            .args(["--database", url, "web", "--listen", "127.0.0.1:0"])
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start oban web");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        stderr.read_line(&mut line).expect("the banner");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        Server { child, addr }
    }

    /// One HTTP/1.1 exchange: status and body.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let status = response[9..12].parse().expect("a status code");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// Stops it with SIGTERM and returns its exit code.
    fn stop(mut self) -> Option<i32> {
        terminate(&mut self.child)
    }
}

fn terminate(child: &mut Child) -> Option<i32> {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    child.wait().ok().and_then(|status| status.code())
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            terminate(&mut self.child);
        }
    }
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

#[tokio::test]
async fn without_a_token_everyone_reads_and_nobody_acts() {
    let db = common::sqlite().await;
    let server = Server::start(&db.url, &[]);
    let (status, body) = server.request("GET", "/queues", &[], "");
    assert_eq!(status, 200);
    assert!(body.contains("read-only"));
    assert!(!body.contains("method=\"post\""), "no action controls");
    let (status, _) = server.request("POST", "/queues/default/pause", &[FORM], "");
    assert_eq!(status, 403);
    assert_eq!(
        server.request("GET", "/login", &[], "").0,
        404,
        "no token, no sign-in page"
    );
    assert_eq!(server.stop(), Some(0), "SIGTERM stops it cleanly");
}

#[tokio::test]
async fn the_token_grants_full_access_to_a_script_and_private_hides_the_rest() {
    let db = common::sqlite().await;
    let job = oban::NewJob::new("Mailer", json!({"to": "a@example.com"}))
        .queue("mailers")
        .insert(&db.pool)
        .await
        .unwrap();
    let server = Server::start(&db.url, &["--token", TOKEN, "--private"]);
    assert_eq!(server.request("GET", "/jobs", &[], "").0, 403);
    assert_eq!(server.request("GET", "/login", &[], "").0, 200);
    let bearer = format!("Bearer {TOKEN}");
    let (status, body) = server.request(
        "POST",
        &format!("/jobs/{}/cancel", job.id),
        &[
            FORM,
            ("authorization", &bearer),
            ("accept", "application/json"),
        ],
        "",
    );
    assert_eq!(status, 200, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["count"], 1);
    let state: String = sqlx::query_scalar("SELECT state FROM oban_jobs WHERE id = ?")
        .bind(job.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(state, "cancelled");
}

#[test]
fn a_short_token_or_private_without_one_is_a_usage_error() {
    for (args, expected) in [
        (&["web", "--token", "short"][..], "at least 16 characters"),
        (&["web", "--private"][..], "--token"),
    ] {
        let output = common::oban("sqlite://unused.db")
            .args(args)
            .output()
            .expect("run oban");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
