//! The one gate every request passes ([`guard`]): where the dashboard is mounted, who the
//! request is, its CSRF nonce and flash message (a [`Ctx`] for the handlers), and for every
//! POST the checks an action needs before any handler runs: a same-site request, a valid CSRF
//! token, full access.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{OriginalUri, Request, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE, SET_COOKIE};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::access::{bearer, Access};
use crate::app::App;
use crate::{cookies, csrf, reply};

/// The cookie carrying a one-shot message to the next page (what an action did).
pub(crate) const FLASH_COOKIE: &str = "oban_web_flash";

/// The largest form body an action accepts (a selection of a page of ids is a few KB).
const MAX_FORM: usize = 256 * 1024;

/// What a handler knows of the request beyond its path.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    /// Where the dashboard is mounted, without a trailing slash (`""` at the root, `"/oban"`).
    pub(crate) base: String,
    /// Who the request is.
    pub(crate) access: Access,
    /// The token forms carry (`_csrf`).
    pub(crate) csrf: String,
    /// The message of the last action, shown once.
    pub(crate) flash: Option<String>,
    /// Whether a sign-in page exists (a token is configured).
    pub(crate) sign_in: bool,
    /// Whether the client asked for JSON (a script).
    pub(crate) json: bool,
}

impl Ctx {
    /// The URL of `path` (which starts with `/`) under the mount point. The root under a
    /// mount point is the mount point itself (`/oban`: axum's `nest` does not route `/oban/`).
    pub(crate) fn url(&self, path: &str) -> String {
        if path == "/" && !self.base.is_empty() {
            return self.base.clone();
        }
        format!("{}{}", self.base, path)
    }
}

/// The fields of an action's urlencoded form, in order (a key may repeat: `ids=1&ids=2`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Fields(pub(crate) Vec<(String, String)>);

impl Fields {
    /// The first value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub(crate) fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The middleware: see the module's docs.
pub(crate) async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let base = mount_point(&request);
    let (mut parts, body) = request.into_parts();
    let access = app.config.resolver.resolve(&parts).await;
    let path = parts.uri.path().to_owned();
    let json = parts
        .headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let live = parts.headers.contains_key("x-oban-live");

    let known_nonce = cookies::get(&parts.headers, csrf::COOKIE).filter(|n| n.len() == 32);
    let nonce = known_nonce.clone().unwrap_or_else(csrf::nonce);
    let flash = if live {
        None
    } else {
        cookies::get(&parts.headers, FLASH_COOKIE)
    };
    let ctx = Ctx {
        base: base.clone(),
        access,
        csrf: app.config.secret.token(&nonce),
        flash: flash.clone(),
        sign_in: app.config.resolver.token().is_some(),
        json,
    };
    let public = path.starts_with("/assets/") || path == "/login" || path == "/logout";

    let mut request = if parts.method == Method::POST {
        if parts
            .headers
            .get("sec-fetch-site")
            .is_some_and(|site| site.as_bytes() == b"cross-site")
        {
            return reply::forbidden(&ctx, "cross-site requests cannot act on the dashboard");
        }
        if !public && !access.can_act() {
            return reply::forbidden(&ctx, refusal(access));
        }
        let Ok(bytes) = to_bytes(body, MAX_FORM).await else {
            return reply::problem(
                &ctx,
                StatusCode::PAYLOAD_TOO_LARGE,
                "the form is too large: select fewer jobs, or use a filter",
            );
        };
        let urlencoded = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let fields = if urlencoded {
            Fields(form_urlencoded::parse(&bytes).into_owned().collect())
        } else {
            Fields::default()
        };
        if bearer(&parts).is_none() {
            let token = fields.get(csrf::FIELD).map(str::to_owned).or_else(|| {
                parts
                    .headers
                    .get(csrf::HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            });
            let valid = match (&known_nonce, token) {
                (Some(nonce), Some(token)) => app.config.secret.verify(nonce, &token),
                _ => false,
            };
            if !valid {
                return reply::forbidden(
                    &ctx,
                    "the form's security token is missing or stale: reload the page and try again",
                );
            }
        }
        parts.extensions.insert(fields);
        Request::from_parts(parts, Body::from(bytes))
    } else {
        if !public && !access.can_read() {
            return reply::forbidden(&ctx, refusal(access));
        }
        Request::from_parts(parts, body)
    };
    request.extensions_mut().insert(ctx);

    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if known_nonce.is_none() {
        headers.append(SET_COOKIE, cookies::set(csrf::COOKIE, &nonce, &base, None));
    }
    let sets_flash = headers
        .get_all(SET_COOKIE)
        .iter()
        .any(|v| v.as_bytes().starts_with(FLASH_COOKIE.as_bytes()));
    if flash.is_some() && !sets_flash {
        headers.append(SET_COOKIE, cookies::set(FLASH_COOKIE, "", &base, Some(0)));
    }
    response
}

/// Why a request was refused.
fn refusal(access: Access) -> &'static str {
    match access {
        Access::Full => "allowed",
        Access::ReadOnly => "this dashboard is read-only for you: actions need full access",
        Access::None => "you have no access to this dashboard",
    }
}

/// Where the dashboard is mounted: the part of the original path before the path the nested
/// router saw (`/oban` for `/oban/jobs` seen as `/jobs`).
fn mount_point(request: &Request) -> String {
    let inner = request.uri().path();
    let original = request
        .extensions()
        .get::<OriginalUri>()
        .map_or(inner, |uri| uri.0.path());
    let base = original
        .strip_suffix(inner)
        .or_else(|| (inner == "/").then_some(original))
        .unwrap_or("");
    base.trim_end_matches('/').to_owned()
}
