//! CSRF protection for every action: a random nonce in a same-site cookie, and a token that is
//! the HMAC of that nonce under the dashboard's secret, which every form carries as `_csrf`
//! (scripts send it as the `x-csrf-token` header).
//!
//! A forged request from another site cannot read the token, and cannot compute one for a
//! nonce it planted without the secret. Requests authenticated by an `Authorization: Bearer`
//! header need no token: a browser never attaches that header on its own, so no other site can
//! make it send one.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The cookie holding the nonce.
pub(crate) const COOKIE: &str = "oban_web_csrf";
/// The form field carrying the token.
pub(crate) const FIELD: &str = "_csrf";
/// The header carrying the token for scripts.
pub(crate) const HEADER: &str = "x-csrf-token";

/// The key tokens are made with.
#[derive(Clone)]
pub(crate) struct Secret([u8; 32]);

impl Secret {
    /// A key from the embedding application's secret (the same on every node behind a load
    /// balancer, so a form served by one is accepted by another).
    pub(crate) fn derive(material: &[u8]) -> Secret {
        let mut mac = Hmac::<Sha256>::new_from_slice(material).expect("any key length");
        mac.update(b"oban-web csrf v1");
        Secret(mac.finalize().into_bytes().into())
    }

    /// A key for this process alone.
    pub(crate) fn random() -> Secret {
        let mut key = [0; 32];
        rand::thread_rng().fill_bytes(&mut key);
        Secret(key)
    }

    /// The token for `nonce`.
    pub(crate) fn token(&self, nonce: &str) -> String {
        hex::encode(self.mac(nonce).finalize().into_bytes())
    }

    /// Whether `token` is the token for `nonce` (in constant time).
    pub(crate) fn verify(&self, nonce: &str, token: &str) -> bool {
        match hex::decode(token) {
            Ok(bytes) if !nonce.is_empty() => self.mac(nonce).verify_slice(&bytes).is_ok(),
            _ => false,
        }
    }

    fn mac(&self, nonce: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(nonce.as_bytes());
        mac
    }
}

/// A fresh nonce for a browser without one.
pub(crate) fn nonce() -> String {
    let mut bytes = [0; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_for_its_nonce_and_secret() {
        let secret = Secret::random();
        let token = secret.token("abc");
        assert!(secret.verify("abc", &token));
        assert!(!secret.verify("abd", &token));
        assert!(!secret.verify("", &secret.token("")));
        assert!(!Secret::random().verify("abc", &token));
        assert!(!secret.verify("abc", "zz"));
        assert!(Secret::derive(b"k").verify("n", &Secret::derive(b"k").token("n")));
    }
}
