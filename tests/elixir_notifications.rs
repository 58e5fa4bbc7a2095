//! Notifications from Elixir Oban: payloads compressed by Erlang's own zlib and base64
//! (`tests/fixtures/elixir_notifications.txt`, in the "Z:" form of Elixir Oban 2.22+ and the
//! legacy form of 2.15 to 2.21 and Python Oban) are decoded, and act on Rust queues; what Rust
//! nodes send is what every one of them reads.

mod common;

use std::time::Duration;

use common::wait;
use oban::engine::{payload, Channel, Command, Notice, Notifier as _};
use oban::engines::postgres::PostgresEngine;
use oban::{Nodes, Oban};
use serde_json::{json, Value};
use sqlx::postgres::PgListener;
use sqlx::PgPool;

/// One line of the fixture: a payload as an Elixir node sends it, and the JSON inside.
struct Fixture {
    form: String,
    channel: Channel,
    json: String,
    payload: String,
}

fn fixtures() -> Vec<Fixture> {
    let text = include_str!("fixtures/elixir_notifications.txt");
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 4, "a fixture line has four columns: {line}");
            let channel = match cols[1] {
                "signal" => Channel::Signal,
                "insert" => Channel::Insert,
                "leader" => Channel::Leader,
                other => panic!("unknown channel {other}"),
            };
            Fixture {
                form: cols[0].to_owned(),
                channel,
                json: cols[2].to_owned(),
                payload: cols[3].to_owned(),
            }
        })
        .collect()
}

/// The fixture's payload of `json` in `form`.
fn payload_of(form: &str, json: &str) -> String {
    fixtures()
        .into_iter()
        .find(|f| f.form == form && f.json == json)
        .unwrap_or_else(|| panic!("no {form} fixture for {json}"))
        .payload
}

#[test]
fn every_payload_erlang_compressed_decodes_to_its_json() {
    let fixtures = fixtures();
    assert_eq!(fixtures.len(), 22, "eleven messages in two forms");
    for f in &fixtures {
        match f.form.as_str() {
            "z" => assert!(f.payload.starts_with("Z:H4sI"), "{}", f.payload),
            "legacy" => assert!(f.payload.starts_with("H4sI"), "{}", f.payload),
            other => panic!("unknown form {other}"),
        }
        assert_eq!(payload::decode(&f.payload).unwrap(), f.json);
        let notice = Notice::decode(f.channel, &f.payload);
        assert!(
            notice.is_some(),
            "{} {} decodes to a notice",
            f.form,
            f.json
        );
        assert_eq!(
            notice,
            Notice::decode(f.channel, &f.json),
            "compressed and plain decode alike"
        );
    }
}

#[test]
fn elixir_signals_mean_what_elixir_means() {
    let signal = |json: &str| {
        for form in ["z", "legacy"] {
            let Some(Notice::Signal(signal)) =
                Notice::decode(Channel::Signal, &payload_of(form, json))
            else {
                panic!("{json} is a signal")
            };
            if form == "legacy" {
                return signal;
            }
        }
        unreachable!()
    };
    let pause = signal(r#"{"action":"pause","ident":"any","queue":"default"}"#);
    assert_eq!(
        (&pause.command, pause.queue.as_deref()),
        (&Command::Pause, Some("default"))
    );
    assert!(pause.is_for("any-node"));
    let all = signal(r#"{"action":"pause","ident":"any","queue":"*"}"#);
    assert_eq!(all.queue.as_deref(), Some("*"));
    let local = signal(r#"{"action":"pause","ident":"Oban.web-1","queue":"default"}"#);
    assert!(local.is_for("web-1") && !local.is_for("web-2"));
    assert_eq!(
        signal(r#"{"action":"scale","ident":"any","limit":5,"queue":"default"}"#).command,
        Command::Scale(5)
    );
    assert_eq!(
        signal(r#"{"action":"start","ident":"any","limit":3,"local_only":false,"queue":"media"}"#)
            .command,
        Command::Start(3)
    );
    assert_eq!(
        signal(r#"{"action":"stop","ident":"any","queue":"media"}"#).command,
        Command::Stop
    );
    assert_eq!(
        signal(r#"{"action":"pkill","job_id":42}"#).command,
        Command::Kill(42)
    );
    // Over 512 bytes, as Elixir 2.22 sends it "Z:"-compressed (Pro's partitioned global limit):
    // the limit is read, the rest ignored.
    let large = fixtures()
        .into_iter()
        .find(|f| f.form == "z" && f.json.contains("global_limit"))
        .expect("the large fixture");
    assert!(large.json.len() > payload::COMPRESS_ABOVE);
    let Some(Notice::Signal(scale)) = Notice::decode(Channel::Signal, &large.payload) else {
        panic!("a signal")
    };
    assert_eq!(scale.command, Command::Scale(5));
    assert_eq!(
        Notice::decode(Channel::Insert, &payload_of("z", r#"{"queue":"default"}"#)),
        Some(Notice::Insert {
            queue: "default".into()
        })
    );
    assert_eq!(
        Notice::decode(Channel::Leader, &payload_of("legacy", r#"{"down":"Oban"}"#)),
        Some(Notice::LeaderDown {
            name: "Oban".into()
        })
    );
}

#[test]
fn undecodable_payloads_are_dropped() {
    for bad in [
        "Z:!!!",
        "Z:H4sIAAAA",
        "H4sI",
        "H4sIAAAAAAAAA6tWSkwuyczPU7JSKkgsLU5V0lEqLE0tTQXyU1LTEktzSoAimSm",
        "{not json",
        "",
    ] {
        assert_eq!(Notice::decode(Channel::Signal, bad), None, "{bad}");
    }
    // Compressed text that is valid but not JSON.
    let text = payload::encode(&"x".repeat(600));
    assert!(text.starts_with("H4sI"));
    assert_eq!(Notice::decode(Channel::Signal, &text), None);
}

async fn node(pool: &PgPool, name: &str) -> Oban {
    Oban::builder()
        .pool(pool.clone())
        .node(name)
        .queue("default", 2)
        .heartbeat_interval(Duration::from_millis(100))
        .start()
        .await
        .unwrap()
}

/// `pg_notify(channel, payload)`, as an Elixir node's notifier sends it.
async fn elixir_notify(pool: &PgPool, channel: &str, payload: &str) {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(pool)
        .await
        .unwrap();
}

async fn paused(oban: &Oban, node: &str) -> Option<bool> {
    oban.check_queue("default")
        .await
        .unwrap()
        .iter()
        .find(|q| q.node == node)
        .map(|q| q.paused)
}

#[tokio::test]
async fn an_erlang_compressed_pause_pauses_a_rust_queue_and_a_resume_resumes_it() {
    let pool = common::test_pool().await;
    let oban = node(&pool, "web-1").await;
    assert!(oban.notifications_enabled());
    wait::wait_until("the queue is listed", Duration::from_secs(5), async || {
        paused(&oban, "web-1").await == Some(false)
    })
    .await;

    // Payloads that cannot be decoded first: logged and dropped, the listener goes on.
    for bad in ["Z:H4sIAAAA", "H4sI!!", "{\"action\":", "Z:"] {
        elixir_notify(&pool, "public.oban_signal", bad).await;
    }
    let pause = payload_of("z", r#"{"action":"pause","ident":"any","queue":"default"}"#);
    elixir_notify(&pool, "public.oban_signal", &pause).await;
    wait::wait_until("the queue is paused", Duration::from_secs(5), async || {
        paused(&oban, "web-1").await == Some(true)
    })
    .await;

    let resume = payload_of(
        "legacy",
        r#"{"action":"resume","ident":"any","queue":"default"}"#,
    );
    elixir_notify(&pool, "public.oban_signal", &resume).await;
    wait::wait_until("the queue is resumed", Duration::from_secs(5), async || {
        paused(&oban, "web-1").await == Some(false)
    })
    .await;
    oban.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_pause_scoped_to_one_node_pauses_only_that_node() {
    let pool = common::test_pool().await;
    let web1 = node(&pool, "web-1").await;
    let web2 = node(&pool, "web-2").await;
    let pause = payload_of(
        "z",
        r#"{"action":"pause","ident":"Oban.web-1","queue":"default"}"#,
    );
    elixir_notify(&pool, "public.oban_signal", &pause).await;
    wait::wait_until("web-1 is paused", Duration::from_secs(5), async || {
        paused(&web1, "web-1").await == Some(true)
    })
    .await;
    // web-2 heard the same notification (it is delivered to every listener at once, and web-1
    // acted on it); its next heartbeats still say it runs.
    wait::sample_for(
        Duration::from_millis(300),
        Duration::from_millis(50),
        async || assert_eq!(paused(&web2, "web-2").await, Some(false)),
    )
    .await;
    web1.shutdown(Duration::from_secs(1)).await;
    web2.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn rust_nodes_send_plain_json_when_small_and_the_legacy_form_when_large() {
    let pool = common::test_pool().await;
    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen("public.oban_signal").await.unwrap();

    // A signal from the public API: small, so plain JSON.
    let oban = node(&pool, "web-1").await;
    oban.pause_queue("default", Nodes::All).await.unwrap();
    let small = wait::within(
        "the pause notification",
        Duration::from_secs(5),
        listener.recv(),
    )
    .await
    .unwrap();
    let value: Value = serde_json::from_str(small.payload()).expect("plain JSON");
    assert_eq!(value["action"], "pause");

    // A large payload: base64(gzip(json)), which Python Oban 0.7 and Elixir Oban 2.15+ read
    // (Python: `gzip.decompress(base64.b64decode(p))`, Elixir: `decode("H4sI" <> _)`).
    let engine = PostgresEngine::new(pool.clone());
    let big = json!({"action": "pause", "queue": "q".repeat(600), "ident": "any"});
    engine.notify(Channel::Signal, big.clone()).await.unwrap();
    let large = wait::within(
        "the large notification",
        Duration::from_secs(5),
        listener.recv(),
    )
    .await
    .unwrap();
    assert!(large.payload().starts_with("H4sI"), "{}", large.payload());
    assert!(!large.payload().starts_with("Z:"));
    let json: Value = serde_json::from_str(&payload::decode(large.payload()).unwrap()).unwrap();
    assert_eq!(json, big);
    oban.shutdown(Duration::from_secs(1)).await;
}
