//! Answers other than a page: refusals and errors (an HTML page for a person, JSON for a
//! script), and the redirect after an action with its flash message.

use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::html;
use serde_json::json;

use crate::guard::{Ctx, FLASH_COOKIE};
use crate::{cookies, layout};

/// 403 with the reason.
pub(crate) fn forbidden(ctx: &Ctx, reason: &str) -> Response {
    problem(ctx, StatusCode::FORBIDDEN, reason)
}

/// 404 for `what` (`job 42`).
pub(crate) fn not_found(ctx: &Ctx, what: &str) -> Response {
    problem(
        ctx,
        StatusCode::NOT_FOUND,
        &format!("{what} does not exist (or no longer: it may have been pruned)"),
    )
}

/// A database or input error: 500 for the first, 400 for the second.
pub(crate) fn failed(ctx: &Ctx, error: &oban_core::Error) -> Response {
    let status = match error {
        oban_core::Error::Config(_) | oban_core::Error::EmptyFilter { .. } => {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status.is_server_error() {
        tracing::warn!(%error, "oban-web: a request failed");
    }
    problem(ctx, status, &error.to_string())
}

/// An error page (or `{"ok": false, "error": ..}`) with `status`.
pub(crate) fn problem(ctx: &Ctx, status: StatusCode, message: &str) -> Response {
    if ctx.json {
        return (status, Json(json!({"ok": false, "error": message}))).into_response();
    }
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        section.problem {
            h1 { (status.as_u16()) " " (title) }
            p.reason { (message) }
            @if status == StatusCode::FORBIDDEN && ctx.sign_in && !ctx.access.can_act() {
                p { a href=(ctx.url("/login")) { "Sign in with the token" } }
            }
            p { a href=(ctx.url("/")) { "Back to the overview" } }
        }
    };
    (status, layout::page(ctx, title, "", 0, body)).into_response()
}

/// After an action: a person is sent back to `back` (a path under the dashboard) or to
/// `fallback`, with `message` shown once there; a script gets `{"ok": true, "message": ..,
/// "count": n}`.
pub(crate) fn done(
    ctx: &Ctx,
    back: Option<&str>,
    fallback: &str,
    message: &str,
    count: Option<u64>,
) -> Response {
    if ctx.json {
        return Json(json!({"ok": true, "message": message, "count": count})).into_response();
    }
    let target = back
        .filter(|back| safe_back(ctx, back))
        .map_or_else(|| ctx.url(fallback), str::to_owned);
    let mut response = (StatusCode::SEE_OTHER, [(LOCATION, target)]).into_response();
    response.headers_mut().append(
        SET_COOKIE,
        cookies::set(FLASH_COOKIE, message, &ctx.base, Some(60)),
    );
    response
}

/// Whether `back` is a path of this dashboard (never another site: `//evil`, `/\evil`,
/// `https://..`).
fn safe_back(ctx: &Ctx, back: &str) -> bool {
    back.starts_with('/')
        && !back.starts_with("//")
        && !back.contains('\\')
        && !back.chars().any(char::is_control)
        && (ctx.base.is_empty()
            || back == ctx.base
            || back.starts_with(&format!("{}/", ctx.base))
            || back.starts_with(&format!("{}?", ctx.base)))
}
