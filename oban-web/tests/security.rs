//! Who may act: anonymous and read-only users are refused every action, by form and by forged
//! request; actions need a valid CSRF token; values from the database render inert; a
//! redirect never leaves the dashboard.

mod common;

use axum::http::StatusCode;
use axum::Router;
use common::{Client, Db};
use oban::NewJob;
use oban_web::{Access, Config, Resolver, TokenAuth};
use serde_json::json;

const TOKEN: &str = "a-long-enough-test-token";

fn dashboard(db: &Db, resolver: impl Resolver) -> Router {
    oban_web::router(db.admin(), Config::new().resolver(resolver))
}

/// A discarded job to act on, the one step of the workflow `wf-sec`.
async fn discarded(db: &Db) -> i64 {
    let id = db
        .insert(
            NewJob::new("Mailer", json!({"to": "a@example.com"}))
                .queue("mailers")
                .meta("workflow", true)
                .meta("workflow_id", "wf-sec")
                .meta("name", "mail")
                .meta("deps", json!([])),
        )
        .await;
    db.set_state(
        id,
        "discarded",
        json!([{"attempt": 1, "at": "2026-12-04T05:00:00Z", "error": "boom"}]),
    )
    .await;
    id
}

/// Every action route, for job `id` and queue `mailers`, with the fields it needs.
fn actions(id: i64) -> Vec<(String, Vec<(&'static str, String)>)> {
    let ids = vec![("ids", id.to_string())];
    vec![
        (format!("/jobs/{id}/retry"), vec![]),
        (format!("/jobs/{id}/cancel"), vec![]),
        (format!("/jobs/{id}/delete"), vec![]),
        ("/jobs/retry".into(), ids.clone()),
        ("/jobs/cancel".into(), ids.clone()),
        ("/jobs/delete".into(), ids),
        ("/queues/mailers/pause".into(), vec![]),
        ("/queues/mailers/resume".into(), vec![]),
        ("/queues/mailers/scale".into(), vec![("limit", "3".into())]),
        (
            "/queues/mailers/limits".into(),
            vec![("global", "3".into())],
        ),
        ("/queues/mailers/limits/clear".into(), vec![]),
        ("/workflows/wf-sec/retry".into(), vec![]),
        ("/workflows/wf-sec/cancel".into(), vec![]),
    ]
}

fn pairs<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    fields.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn anonymous_and_read_only_users_get_403_for_every_action_by_form_and_forged_request() {
    let db = common::sqlite().await;
    let id = discarded(&db).await;
    for access in [Access::None, Access::ReadOnly] {
        for (path, fields) in actions(id) {
            // By form: with the token a page of the dashboard gave this browser.
            let mut browser = Client::new(dashboard(&db, access));
            let page = browser.get("/").await;
            if access == Access::ReadOnly {
                let token = page.csrf();
                let mut with_token = vec![("_csrf", token.as_str())];
                with_token.extend(pairs(&fields));
                let answer = browser.post(&path, &with_token).await;
                assert_eq!(
                    answer.status,
                    StatusCode::FORBIDDEN,
                    "{access:?} form {path}"
                );
                assert!(answer.body.contains("read-only"), "{}", answer.body);
            } else {
                assert_eq!(page.status, StatusCode::FORBIDDEN, "no access sees no page");
            }
            // Forged: no cookie, no token, as another site's form would send.
            let mut forger = Client::new(dashboard(&db, access));
            let answer = forger.post(&path, &pairs(&fields)).await;
            assert_eq!(
                answer.status,
                StatusCode::FORBIDDEN,
                "{access:?} forged {path}"
            );
        }
    }
    assert_eq!(
        db.state(id).await.as_deref(),
        Some("discarded"),
        "nothing changed"
    );
    assert!(
        db.admin()
            .queue_limits("mailers", 1)
            .await
            .unwrap()
            .is_none(),
        "no limits set"
    );
}

#[tokio::test]
async fn read_only_pages_show_no_action_controls() {
    let db = common::sqlite().await;
    let id = discarded(&db).await;
    for (access, expect_forms) in [(Access::ReadOnly, false), (Access::Full, true)] {
        let mut browser = Client::new(dashboard(&db, access));
        for path in [
            "/queues",
            "/jobs",
            &format!("/jobs/{id}"),
            "/workflows/wf-sec",
        ] {
            let page = browser.get(path).await;
            assert_eq!(page.status, StatusCode::OK, "{path}");
            assert_eq!(
                page.body.contains("method=\"post\""),
                expect_forms,
                "{access:?} {path}: action forms"
            );
        }
    }
}

#[tokio::test]
async fn an_action_without_a_valid_csrf_token_is_refused() {
    let db = common::sqlite().await;
    let id = discarded(&db).await;
    let path = format!("/jobs/{id}/retry");
    let mut browser = Client::new(dashboard(&db, Access::Full));
    let token = browser.get("/").await.csrf();

    let missing = browser.post(&path, &[]).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(missing.body.contains("security token"), "{}", missing.body);

    let wrong = browser.post(&path, &[("_csrf", &"0".repeat(64))]).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);

    // The limits form alike: full access without the token changes nothing.
    for limits in ["/queues/mailers/limits", "/queues/mailers/limits/clear"] {
        let refused = browser.post(limits, &[("global", "3")]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{limits}");
    }
    assert!(db
        .admin()
        .queue_limits("mailers", 1)
        .await
        .unwrap()
        .is_none());

    // Another browser's token does not fit this browser's cookie.
    let mut other = Client::new(dashboard(&db, Access::Full));
    let theirs = other.get("/").await.csrf();
    assert_ne!(theirs, token);
    let foreign = browser.post(&path, &[("_csrf", &theirs)]).await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);

    // A cookie the attacker planted with a token they made up under another secret.
    let mut planted = Client::new(dashboard(&db, Access::Full));
    planted
        .cookies
        .insert("oban_web_csrf".into(), "f".repeat(32));
    let answer = planted.post(&path, &[("_csrf", &"a".repeat(64))]).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(db.state(id).await.as_deref(), Some("discarded"));

    // A valid token, but the browser says the request came from another site.
    let mut cross =
        Client::new(dashboard(&db, Access::Full)).with_header("sec-fetch-site", "cross-site");
    let token_cross = cross.get("/").await.csrf();
    let answer = cross.post(&path, &[("_csrf", &token_cross)]).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(db.state(id).await.as_deref(), Some("discarded"));

    let valid = browser.post(&path, &[("_csrf", &token)]).await;
    assert_eq!(valid.status, StatusCode::SEE_OTHER, "{}", valid.body);
    assert_eq!(db.state(id).await.as_deref(), Some("available"));
}

#[tokio::test]
async fn markup_in_args_errors_tags_and_names_renders_inert() {
    let db = common::sqlite().await;
    let id = db
        .insert(
            NewJob::new("<b>Worker</b>", json!({"html": "<script>alert('args')</script>", "q": "\"><img src=x onerror=alert(1)>"}))
                .queue("mailers")
                .tag("<i>tag</i>")
                .meta("note", "</pre><script>alert('meta')</script>"),
        )
        .await;
    db.set_state(
        id,
        "discarded",
        json!([{"attempt": 1, "at": "2026-12-04T05:00:00Z", "error": "<img src=x onerror=alert('error')>"}]),
    )
    .await;
    let step = db
        .insert(
            NewJob::new("<b>Worker</b>", json!({}))
                .meta("workflow", true)
                .meta("workflow_id", "wf\"><script>alert('id')</script>")
                .meta("workflow_name", "<script>alert('wf')</script>")
                .meta("name", "<img src=x onerror=alert('step')>")
                .meta(
                    "deps",
                    json!(["<b>dep</b>", ["<script>alert('x')</script>", "*"]]),
                ),
        )
        .await;
    let mut browser = Client::new(dashboard(&db, Access::Full));
    for path in [
        "/".to_owned(),
        "/jobs".to_owned(),
        format!("/jobs/{id}"),
        "/jobs?q=%3Cscript%3E".to_owned(),
        "/queues".to_owned(),
        "/workflows".to_owned(),
        "/workflows/wf%22%3E%3Cscript%3Ealert('id')%3C%2Fscript%3E".to_owned(),
        format!("/jobs/{step}"),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        for live in ["<script>alert", "<img src=x", "<b>Worker", "<i>tag"] {
            assert!(
                !page.body.contains(live),
                "{path} renders `{live}` as markup"
            );
        }
    }
    let page = browser.get(&format!("/jobs/{id}")).await;
    assert!(
        page.body
            .contains("&lt;script&gt;alert(&#39;args&#39;)&lt;/script&gt;")
            || page
                .body
                .contains("&lt;script&gt;alert('args')&lt;/script&gt;"),
        "args shown as text"
    );
    assert!(
        page.body.contains("&lt;img src=x onerror=alert("),
        "error shown as text"
    );
    // A search for markup echoes it as text in the search box.
    let search = browser
        .get("/jobs?q=%22%3E%3Cscript%3Ealert(2)%3C%2Fscript%3E")
        .await;
    assert!(!search.body.contains("<script>alert(2)"));
}

#[tokio::test]
async fn a_bearer_token_acts_without_csrf_and_a_wrong_one_is_refused() {
    let db = common::sqlite().await;
    let id = discarded(&db).await;
    let path = format!("/jobs/{id}/retry");

    let mut wrong = Client::new(dashboard(&db, TokenAuth::new(TOKEN)))
        .with_header("authorization", "Bearer not-the-token-at-all")
        .with_header("accept", "application/json");
    let answer = wrong.post(&path, &[]).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(db.state(id).await.as_deref(), Some("discarded"));

    let mut script = Client::new(dashboard(&db, TokenAuth::new(TOKEN)))
        .with_header("authorization", &format!("Bearer {TOKEN}"))
        .with_header("accept", "application/json");
    let answer = script.post(&path, &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let reply: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(reply["ok"], true);
    assert_eq!(reply["count"], 1);
    assert_eq!(db.state(id).await.as_deref(), Some("available"));
}

#[tokio::test]
async fn signing_in_with_the_token_grants_full_access_until_signing_out() {
    let db = common::sqlite().await;
    let id = discarded(&db).await;
    let mut browser = Client::new(dashboard(&db, TokenAuth::new(TOKEN)));
    let home = browser.get("/").await;
    assert!(home.body.contains("read-only"));
    assert!(home.body.contains("Sign in"));

    let token = browser.get("/login").await.csrf();
    let refused = browser
        .post(
            "/login",
            &[("_csrf", &token), ("token", "guess-guess-guess-guess")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(!browser.cookies.contains_key("oban_web_session"));
    let without_csrf = browser.post("/login", &[("token", TOKEN)]).await;
    assert_eq!(without_csrf.status, StatusCode::FORBIDDEN, "login CSRF");

    let signed = browser
        .post("/login", &[("_csrf", &token), ("token", TOKEN)])
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER);
    assert!(browser.cookies.contains_key("oban_web_session"));
    let page = browser.get(&format!("/jobs/{id}")).await;
    assert!(page.body.contains("full access"));
    let answer = browser.act(&format!("/jobs/{id}/retry"), &[]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(db.state(id).await.as_deref(), Some("available"));

    browser.act("/logout", &[]).await;
    assert!(!browser.cookies.contains_key("oban_web_session"));
    let answer = browser.act("/queues/mailers/pause", &[]).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    // Private: nobody without the token sees anything, but the sign-in page.
    let mut stranger = Client::new(dashboard(
        &db,
        TokenAuth::new(TOKEN).anonymous(Access::None),
    ));
    assert_eq!(stranger.get("/jobs").await.status, StatusCode::FORBIDDEN);
    assert_eq!(stranger.get("/login").await.status, StatusCode::OK);
}

#[tokio::test]
async fn mounted_under_a_path_links_and_redirects_stay_under_it_and_never_leave() {
    let db = common::sqlite().await;
    let id = discarded(&db).await;
    let app = Router::new().nest("/ops/oban", dashboard(&db, Access::Full));
    let mut browser = Client::new(app);
    let page = browser.get("/ops/oban/jobs").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("href=\"/ops/oban/jobs/"),
        "job links under the mount point"
    );
    assert!(page.body.contains("/ops/oban/assets/app.css"));
    let root = browser.get("/ops/oban").await;
    assert_eq!(root.status, StatusCode::OK);

    let token = page.csrf();
    let back = "/ops/oban/jobs?state=discarded";
    let answer = browser
        .post(
            &format!("/ops/oban/jobs/{id}/retry"),
            &[("_csrf", &token), ("back", back)],
        )
        .await;
    assert_eq!(answer.location(), Some(back));
    // The flash message shows once on the next page.
    let next = browser.get(back).await;
    assert!(
        next.body.contains(&format!("Job {id} retried.")),
        "{}",
        next.body
    );
    let again = browser.get(back).await;
    assert!(!again.body.contains(&format!("Job {id} retried.")));

    for evil in [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "/elsewhere",
    ] {
        let answer = browser
            .post(
                "/ops/oban/queues/mailers/pause",
                &[("_csrf", &token), ("back", evil)],
            )
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER);
        assert_eq!(answer.location(), Some("/ops/oban/queues"), "back={evil}");
    }
}

#[tokio::test]
async fn processes_sharing_a_secret_accept_each_others_forms_and_others_do_not() {
    let db = common::sqlite().await;
    let id = discarded(&db).await;
    let with = |secret: &[u8]| {
        oban_web::router(
            db.admin(),
            Config::new().resolver(Access::Full).secret(secret),
        )
    };
    // The form is served by one process; the POST lands on another behind the same address.
    let mut browser = Client::new(with(b"shared secret of the deployment"));
    let token = browser.get("/").await.csrf();
    let path = format!("/jobs/{id}/retry");

    let mut elsewhere = Client::new(with(b"another deployment's secret"));
    elsewhere.cookies = browser.cookies.clone();
    let refused = elsewhere.post(&path, &[("_csrf", &token)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(db.state(id).await.as_deref(), Some("discarded"));

    let mut sibling = Client::new(with(b"shared secret of the deployment"));
    sibling.cookies = browser.cookies.clone();
    let accepted = sibling.post(&path, &[("_csrf", &token)]).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);
    assert_eq!(db.state(id).await.as_deref(), Some("available"));
}
