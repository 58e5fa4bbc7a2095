//! `GET`/`POST /login` and `POST /logout`: signing a browser in with the dashboard's token
//! ([`TokenAuth`](crate::TokenAuth)); 404 when no token is configured.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::html;

use crate::access::SESSION_COOKIE;
use crate::app::App;
use crate::cookies;
use crate::guard::{Ctx, Fields};
use crate::layout::{self, csrf_field};
use crate::reply;

/// How long a sign-in lasts: a working day.
const SESSION_SECS: i64 = 12 * 3600;

/// `GET /login`.
pub(crate) async fn form(State(app): State<Arc<App>>, Extension(ctx): Extension<Ctx>) -> Response {
    if app.config.resolver.token().is_none() {
        return reply::not_found(&ctx, "the sign-in page (no token is configured)");
    }
    page(&ctx, StatusCode::OK, None)
}

fn page(ctx: &Ctx, status: StatusCode, error: Option<&str>) -> Response {
    let body = html! {
        section.login.panel {
            h1 { "Sign in" }
            p.muted { "Enter the dashboard's token for full access." }
            @if let Some(error) = error { p.reason role="alert" { (error) } }
            form method="post" action=(ctx.url("/login")) {
                (csrf_field(ctx))
                input type="password" name="token" autocomplete="current-password" required autofocus aria-label="Token";
                button.primary type="submit" { "Sign in" }
            }
        }
    };
    (status, layout::page(ctx, "Sign in", "", 0, body)).into_response()
}

/// `POST /login`.
pub(crate) async fn submit(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Extension(fields): Extension<Fields>,
) -> Response {
    let Some(auth) = app.config.resolver.token() else {
        return reply::not_found(&ctx, "the sign-in page (no token is configured)");
    };
    if !auth.matches(fields.get("token").unwrap_or_default()) {
        return page(&ctx, StatusCode::FORBIDDEN, Some("That is not the token."));
    }
    let mut response = (StatusCode::SEE_OTHER, [(LOCATION, ctx.url("/"))]).into_response();
    response.headers_mut().append(
        SET_COOKIE,
        cookies::set(
            SESSION_COOKIE,
            &auth.session_value(),
            &ctx.base,
            Some(SESSION_SECS),
        ),
    );
    response
}

/// `POST /logout`.
pub(crate) async fn logout(Extension(ctx): Extension<Ctx>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(LOCATION, ctx.url("/"))]).into_response();
    response.headers_mut().append(
        SET_COOKIE,
        cookies::set(SESSION_COOKIE, "", &ctx.base, Some(0)),
    );
    response
}
