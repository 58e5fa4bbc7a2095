//! Reading the `Cookie` header and writing `Set-Cookie` for the dashboard's three cookies:
//! the CSRF nonce, the token session and the one-shot flash message.

use axum::http::header::{HeaderMap, COOKIE};
use axum::http::HeaderValue;
use cookie::{Cookie, SameSite};

/// The value of the cookie `name`, percent-decoded.
pub(crate) fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse_encoded)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == name)
        .map(|cookie| cookie.value().to_owned())
}

/// A `Set-Cookie` value: HTTP-only, same-site strict, for the dashboard's path; `max_age` in
/// seconds (0 deletes it; `None` lasts for the browser session).
pub(crate) fn set(name: &str, value: &str, path: &str, max_age: Option<i64>) -> HeaderValue {
    let mut cookie = Cookie::build((name.to_owned(), value.to_owned()))
        .path(if path.is_empty() { "/" } else { path }.to_owned())
        .http_only(true)
        .same_site(SameSite::Strict)
        .build();
    if let Some(secs) = max_age {
        cookie.set_max_age(cookie::time::Duration::seconds(secs));
    }
    HeaderValue::from_str(&cookie.encoded().to_string())
        .expect("an encoded cookie is a valid header value")
}
