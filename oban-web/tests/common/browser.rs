//! A real browser for the dashboard's tests: Debian's `chromium`, headless, driven through
//! `chromedriver` (started here on a free port, killed with its browser on drop) by the
//! `fantoccini` WebDriver client; and the dashboard served over TCP by `axum::serve`, mounted
//! under a path as an application would.
//!
//! Without chromium or chromedriver on `PATH`, [`Browser::start`] prints a notice and gives
//! `None` (the test passes), except when `CI=true`, where it fails: CI installs both (`.ci/run`).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use fantoccini::error::CmdError;
use fantoccini::wd::{Capabilities, TimeoutConfiguration, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Semaphore, SemaphorePermit};

/// How long any wait of these tests may take.
pub const WAIT: Duration = Duration::from_secs(15);

/// The browser's window: wide enough for every table.
pub const WIDTH: u32 = 1400;
pub const HEIGHT: u32 = 1000;

/// Browsers running at once across this test binary's tests (the machine may have 2 cores).
static BROWSERS: Semaphore = Semaphore::const_new(2);

/// Polls `probe` until it gives a value, at most [`WAIT`]; panics naming `what` otherwise.
pub async fn until<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "waited {WAIT:?} for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first of `names` found on `PATH`.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// `chromedriver` in a process group of its own, so that dropping it ends the browsers it
/// started as well.
struct Driver {
    child: Child,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser log's entries, which fantoccini has no call for: chromedriver's `se/log`.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// A headless Chromium session and its chromedriver.
pub struct Browser {
    pub client: Client,
    /// Where relative paths lead (`http://127.0.0.1:port/ops/oban`).
    pub base: String,
    _permit: SemaphorePermit<'static>,
    _driver: Driver,
}

impl Browser {
    /// A browser, or `None` (after a notice) when chromium or chromedriver is missing and this
    /// is not CI.
    pub async fn start() -> Option<Browser> {
        let (Some(driver), Some(chromium)) = (
            on_path(&["chromedriver"]),
            on_path(&["chromium", "chromium-browser", "google-chrome"]),
        ) else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "chromium and chromedriver must be on PATH in CI (apt-get install chromium \
                     chromium-driver; .ci/run does)"
                );
            }
            eprintln!(
                "notice: chromium or chromedriver not on PATH; the browser tests are skipped \
                 (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let permit = BROWSERS
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(&driver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", driver.display()))
        };
        let driver = Driver { child };
        let webdriver = format!("http://127.0.0.1:{port}/");
        until("chromedriver to listen", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
        })
        .await;

        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    format!("--window-size={WIDTH},{HEIGHT}"),
                    "--disable-dev-shm-usage", "--force-device-scale-factor=1",
                    "--hide-scrollbars",
                ],
            }),
        );
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let client = tokio::time::timeout(
            WAIT,
            ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities)
                .connect(&webdriver),
        )
        .await
        .unwrap_or_else(|_| panic!("a Chromium session within {WAIT:?}"))
        .expect("a Chromium session");
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(WAIT),
                Some(WAIT),
                Some(Duration::ZERO),
            ))
            .await
            .expect("set the timeouts");
        Some(Browser {
            client,
            base: String::new(),
            _permit: permit,
            _driver: driver,
        })
    }

    /// Opens `path` under [`base`](Self::base), waits for the page to be loaded and checks
    /// that nothing went to the console as an error.
    pub async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
        self.loaded().await;
    }

    /// Waits for the document to be complete and its script to have run, then checks the
    /// console.
    pub async fn loaded(&self) {
        until("the page to load", || async {
            let ready = self
                .js("return document.readyState === 'complete' && !!document.body")
                .await;
            (ready == json!(true)).then_some(())
        })
        .await;
        let errors = self.console_errors().await;
        assert!(errors.is_empty(), "console errors: {errors:#?}");
    }

    /// The browser log's errors since it was last read (chromedriver empties it on reading).
    pub async fn console_errors(&self) -> Vec<String> {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("read the browser log");
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Runs `script` in the page and gives its result.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("run {script}: {e}"))
    }

    /// The current URL's path and query, without the base.
    pub async fn location(&self) -> url::Url {
        self.client.current_url().await.expect("the current URL")
    }

    /// The text of the element `css` when there is one.
    pub async fn text(&self, css: &str) -> Option<String> {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.ok(),
            Err(_) => None,
        }
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map(|all| all.len())
            .unwrap_or(0)
    }

    /// The values of attribute `attr` of every element matching `css`.
    pub async fn attrs(&self, css: &str, attr: &str) -> Vec<String> {
        let mut values = Vec::new();
        for element in self.client.find_all(Locator::Css(css)).await.unwrap() {
            if let Ok(Some(value)) = element.attr(attr).await {
                values.push(value);
            }
        }
        values
    }

    /// Clicks the element `css`, finding it again if live refresh replaced it meanwhile.
    pub async fn click(&self, css: &str) {
        until(&format!("a click on {css}"), || async {
            let element = self.client.find(Locator::Css(css)).await.ok()?;
            match element.click().await {
                Ok(()) => Some(()),
                Err(CmdError::Standard(e))
                    if e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
                {
                    None
                }
                Err(e) => panic!("click {css}: {e}"),
            }
        })
        .await;
    }

    /// A screenshot of the whole page (the window grown to the document's height).
    pub async fn full_page_png(&self) -> Vec<u8> {
        // The window's size includes whatever the browser draws around the page.
        let size = self
            .js("return [Math.ceil(document.body.scrollHeight), \
                 window.outerHeight - window.innerHeight]")
            .await;
        let height = |i: usize| size[i].as_u64().expect("a height") as u32;
        self.client
            .set_window_size(WIDTH, height(0).max(600) + height(1))
            .await
            .expect("resize the window");
        let png = self.client.screenshot().await.expect("a screenshot");
        self.client
            .set_window_size(WIDTH, HEIGHT)
            .await
            .expect("resize the window back");
        png
    }

    /// Ends the session (the browser exits); the driver is killed on drop.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// A dashboard served over TCP on a free loopback port until dropped.
pub struct Served {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves `app` with `axum::serve` on 127.0.0.1:0.
pub async fn serve(app: Router) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("its address");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .expect("serve the dashboard");
    });
    Served {
        addr,
        stop: Some(stop),
    }
}
