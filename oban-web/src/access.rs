//! Who a request is: [`Access`], decided by a [`Resolver`] the embedding application
//! implements, or by [`TokenAuth`] for standalone use.

use async_trait::async_trait;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::cookies;

/// What a request may do.
///
/// ```
/// use oban_web::Access;
///
/// assert!(Access::Full.can_act());
/// assert!(!Access::ReadOnly.can_act());
/// assert!(Access::ReadOnly.can_read());
/// assert!(!Access::None.can_read());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// Nothing: every page answers 403.
    None,
    /// Every page, no action: the pages show no action controls and every action answers 403.
    ReadOnly,
    /// Every page and every action.
    Full,
}

impl Access {
    /// Whether pages may be shown.
    pub fn can_read(self) -> bool {
        self >= Access::ReadOnly
    }

    /// Whether actions (retry, cancel, delete, pause, resume, scale) are allowed.
    pub fn can_act(self) -> bool {
        self == Access::Full
    }

    /// The word the page header shows.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Access::None => "no access",
            Access::ReadOnly => "read-only",
            Access::Full => "full access",
        }
    }
}

/// Decides the [`Access`] of each request, from its headers (a session cookie, a header set by
/// the application's authentication layer, ...). Implement it for the embedding application's
/// users; a plain [`Access`] is a resolver that gives every request that access.
///
/// The dashboard protects every action against CSRF itself, whatever the resolver.
///
/// ```
/// use axum::http::request::Parts;
/// use oban_web::{Access, Resolver};
///
/// /// Full access for requests an upstream proxy marked as admins, read-only otherwise.
/// struct ProxyRoles;
///
/// #[async_trait::async_trait]
/// impl Resolver for ProxyRoles {
///     async fn resolve(&self, parts: &Parts) -> Access {
///         match parts.headers.get("x-role").and_then(|v| v.to_str().ok()) {
///             Some("admin") => Access::Full,
///             Some("staff") => Access::ReadOnly,
///             _ => Access::None,
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait Resolver: Send + Sync + 'static {
    /// The access of the request whose method, URI and headers are `parts`.
    async fn resolve(&self, parts: &Parts) -> Access;

    /// Whether the dashboard offers a sign-in page (only [`TokenAuth`] does).
    #[doc(hidden)]
    fn token(&self) -> Option<&TokenAuth> {
        None
    }
}

#[async_trait]
impl Resolver for Access {
    async fn resolve(&self, _parts: &Parts) -> Access {
        *self
    }
}

/// Access by a shared token, for the standalone dashboard (`oban web --token`): a browser signs
/// in once on the dashboard's sign-in page and keeps a session cookie; a script sends
/// `Authorization: Bearer <token>`. Everyone else gets the anonymous access (read-only unless
/// told otherwise).
///
/// The session cookie is an HMAC of the token: changing the token signs every browser out,
/// and every process given the same token accepts the same cookie.
///
/// ```
/// use oban_web::{Access, TokenAuth};
///
/// let auth = TokenAuth::new("s3cret-token").anonymous(Access::None);
/// # let _ = auth;
/// ```
#[derive(Clone)]
pub struct TokenAuth {
    token: String,
    anonymous: Access,
}

impl std::fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuth")
            .field("token", &"<redacted>")
            .field("anonymous", &self.anonymous)
            .finish()
    }
}

/// The name of the session cookie [`TokenAuth`] sets.
pub(crate) const SESSION_COOKIE: &str = "oban_web_session";

impl TokenAuth {
    /// Full access for whoever presents `token`; read-only for everyone else.
    pub fn new(token: impl Into<String>) -> TokenAuth {
        TokenAuth {
            token: token.into(),
            anonymous: Access::ReadOnly,
        }
    }

    /// The access of requests without the token (default [`Access::ReadOnly`]).
    pub fn anonymous(mut self, access: Access) -> TokenAuth {
        self.anonymous = access;
        self
    }

    /// Whether `candidate` is the token (in constant time).
    pub(crate) fn matches(&self, candidate: &str) -> bool {
        let mut mac = self.mac();
        mac.update(b"token");
        let expected = mac.finalize().into_bytes();
        let mut mac = self.mac_with(candidate);
        mac.update(b"token");
        mac.verify_slice(&expected).is_ok()
    }

    /// The value of the session cookie for a browser that signed in.
    pub(crate) fn session_value(&self) -> String {
        let mut mac = self.mac();
        mac.update(b"oban-web session v1");
        hex::encode(mac.finalize().into_bytes())
    }

    fn valid_session(&self, value: &str) -> bool {
        let Ok(bytes) = hex::decode(value) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(b"oban-web session v1");
        mac.verify_slice(&bytes).is_ok()
    }

    fn mac(&self) -> Hmac<Sha256> {
        self.mac_with(&self.token)
    }

    fn mac_with(&self, key: &str) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes a key of any length")
    }
}

#[async_trait]
impl Resolver for TokenAuth {
    async fn resolve(&self, parts: &Parts) -> Access {
        if let Some(bearer) = bearer(parts) {
            return if self.matches(bearer) {
                Access::Full
            } else {
                Access::None
            };
        }
        match cookies::get(&parts.headers, SESSION_COOKIE) {
            Some(value) if self.valid_session(&value) => Access::Full,
            _ => self.anonymous,
        }
    }

    fn token(&self) -> Option<&TokenAuth> {
        Some(self)
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_accepted_only_for_the_same_token() {
        let auth = TokenAuth::new("one");
        assert!(auth.valid_session(&auth.session_value()));
        assert!(!TokenAuth::new("two").valid_session(&auth.session_value()));
        assert!(!auth.valid_session("not hex"));
        assert!(auth.matches("one"));
        assert!(!auth.matches("onf"));
        assert!(!auth.matches(""));
    }

    #[test]
    fn debug_never_prints_the_token() {
        assert!(!format!("{:?}", TokenAuth::new("s3cret")).contains("s3cret"));
    }
}
