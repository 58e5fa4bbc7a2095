//! What the dashboard's tests share: a database of their own (a SQLite file or a PostgreSQL
//! database), jobs in chosen states, and a client that drives the router in memory with a
//! cookie jar, as a browser would.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod browser;

use std::collections::BTreeMap;
use std::path::PathBuf;

use axum::body::Body;
use axum::http::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use oban::{DbPool, NewJob};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, SqlitePool};
use tower::ServiceExt;

/// A database of the test's own, migrated; a SQLite file is removed on drop.
pub struct Db {
    pub pool: DbPool,
    pub url: String,
    file: Option<PathBuf>,
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(path) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

/// A fresh SQLite file.
pub async fn sqlite() -> Db {
    let path = std::env::temp_dir().join(format!("oban_web_{}.db", uuid::Uuid::new_v4().simple()));
    let url = format!("sqlite://{}", path.display());
    let pool = DbPool::connect(&url).await.expect("open SQLite");
    match &pool {
        DbPool::Sqlite(sqlite) => oban::migrate(sqlite).await.expect("migrate SQLite"),
        DbPool::Postgres(_) => unreachable!("a sqlite URL"),
    }
    Db {
        pool,
        url,
        file: Some(path),
    }
}

/// A fresh PostgreSQL database on `DATABASE_URL` (or the local default).
pub async fn postgres() -> Db {
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let options: PgConnectOptions = server.parse().expect("DATABASE_URL parses");
    let mut conn = PgConnection::connect_with(&options)
        .await
        .expect("connect to PostgreSQL");
    let stamp = chrono::Utc::now().timestamp();
    let name = format!("oban_test_{stamp}_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .expect("create the test database");
    let pool = PgPoolOptions::new()
        .max_connections(5)
        .connect_with(options.database(&name).disable_statement_logging())
        .await
        .expect("connect to the test database");
    oban::migrate(&pool).await.expect("migrate PostgreSQL");
    let (base, _) = server.split('?').next().unwrap().rsplit_once('/').unwrap();
    Db {
        pool: DbPool::Postgres(pool),
        url: format!("{base}/{name}"),
        file: None,
    }
}

impl Db {
    /// The admin the dashboard reads through.
    pub fn admin(&self) -> oban::admin::Admin {
        oban::admin::Admin::new(self.pool.clone(), oban::Prefix::PUBLIC).expect("an admin")
    }

    /// Inserts a job and returns its id.
    pub async fn insert(&self, job: NewJob) -> i64 {
        let job = match &self.pool {
            DbPool::Postgres(pool) => job.insert(pool).await,
            DbPool::Sqlite(pool) => job.insert(pool).await,
        };
        job.expect("insert").id
    }

    /// Moves a job to `state` (`discarded`, `completed`, ..) with `errors` as its history.
    pub async fn set_state(&self, id: i64, state: &str, errors: Value) {
        match &self.pool {
            DbPool::Postgres(pool) => {
                sqlx::query(
                    "UPDATE oban_jobs SET state = $2::oban_job_state, errors = ARRAY(SELECT jsonb_array_elements($3::jsonb)), \
                     attempt = greatest(attempt, 1), attempted_at = now(), \
                     discarded_at = CASE WHEN $2 = 'discarded' THEN now() END, \
                     completed_at = CASE WHEN $2 = 'completed' THEN now() END \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(state)
                .bind(errors)
                .execute(pool)
                .await
                .expect("set state");
            }
            DbPool::Sqlite(pool) => set_state_sqlite(pool, id, state, errors).await,
        }
    }

    /// A job's state.
    pub async fn state(&self, id: i64) -> Option<String> {
        self.admin()
            .job(id)
            .await
            .expect("read a job")
            .map(|job| job.state.to_string())
    }
}

async fn set_state_sqlite(pool: &SqlitePool, id: i64, state: &str, errors: Value) {
    sqlx::query(
        "UPDATE oban_jobs SET state = ?2, errors = ?3, attempt = max(attempt, 1), \
         attempted_at = strftime('%Y-%m-%dT%H:%M:%f', 'now'), \
         discarded_at = CASE WHEN ?2 = 'discarded' THEN strftime('%Y-%m-%dT%H:%M:%f', 'now') END, \
         completed_at = CASE WHEN ?2 = 'completed' THEN strftime('%Y-%m-%dT%H:%M:%f', 'now') END \
         WHERE id = ?1",
    )
    .bind(id)
    .bind(state)
    .bind(errors.to_string())
    .execute(pool)
    .await
    .expect("set state");
}

/// One answer of the router.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }

    /// The CSRF token the page carries (its `csrf-token` meta).
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf-token\" content=\"";
        let start = self
            .body
            .find(marker)
            .expect("the page has a csrf-token meta")
            + marker.len();
        self.body[start..start + 64].to_owned()
    }
}

/// A browser in memory: the router, the cookies it was given, the headers it always sends.
pub struct Client {
    pub router: Router,
    pub cookies: BTreeMap<String, String>,
    pub headers: Vec<(String, String)>,
}

impl Client {
    pub fn new(router: Router) -> Client {
        Client {
            router,
            cookies: BTreeMap::new(),
            headers: Vec::new(),
        }
    }

    /// Sends `header: value` with every request.
    pub fn with_header(mut self, name: &str, value: &str) -> Client {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    /// A form POST of `fields` (urlencoded).
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(Method::POST, path, Some(body)).await
    }

    /// A POST with the CSRF token of a freshly loaded page (as a person clicking a button).
    pub async fn act(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let token = self.get("/").await.csrf();
        let mut all = vec![("_csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post(path, &all).await
    }

    pub async fn send(&mut self, method: Method, path: &str, form: Option<String>) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            request = request.header(COOKIE, jar.join("; "));
        }
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let body = match form {
            Some(form) => {
                request = request.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(form)
            }
            None => Body::empty(),
        };
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).expect("a request"))
            .await
            .expect("the router answers");
        let status = response.status();
        let headers = response.headers().clone();
        for set in headers.get_all(SET_COOKIE) {
            let set = set.to_str().expect("ascii cookie");
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}
