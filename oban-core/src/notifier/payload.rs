//! The text of a notification on the wire, in every form Oban's implementations send.
//!
//! - Plain JSON: every payload built in SQL (the insert notifications of any implementation),
//!   every payload of Elixir Oban before 2.15, and Elixir Oban's payloads of 512 bytes or less
//!   since 2.22.
//! - `base64(gzip(json))`, the "legacy" compressed form (it starts `H4sI`, the base64 of gzip's
//!   magic bytes): every other payload of Elixir Oban 2.15 to 2.21, and every payload Python
//!   Oban sends.
//! - `"Z:" + base64(gzip(json))`: Elixir Oban's payloads over 512 bytes since 2.22.
//!
//! [`decode`] reads all three. [`encode`] writes only what every supported peer reads: plain
//! JSON up to [`COMPRESS_ABOVE`] bytes, the legacy form above it. Python Oban 0.7 and Elixir
//! Oban 2.15 to 2.21 do not read the `Z:` form; Elixir Oban 2.22 and later reads the legacy form
//! (its `decode("H4sI" <> _)` clause); and every one of them reads plain JSON.
//!
//! # Example
//!
//! ```
//! use oban_core::engine::payload;
//!
//! let small = r#"{"action":"pause","queue":"default"}"#;
//! assert_eq!(payload::encode(small), small);
//! assert_eq!(payload::decode(small).unwrap(), small);
//!
//! let large = format!(r#"{{"queue":"{}"}}"#, "q".repeat(600));
//! let sent = payload::encode(&large);
//! assert!(sent.starts_with("H4sI"));
//! assert_eq!(payload::decode(&sent).unwrap(), large);
//! ```

use std::io::{Read, Write};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

/// Payloads whose JSON is longer than this many bytes are sent compressed (Elixir Oban's
/// threshold).
pub const COMPRESS_ABOVE: usize = 512;

/// The most a compressed payload may inflate to. A notification carries at most 8,000 bytes,
/// and no Oban message comes near this; a payload that would inflate further is refused rather
/// than allowed to take the listener's memory.
pub const MAX_INFLATED: u64 = 1 << 20;

/// Why a payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The compressed form's base64 is malformed.
    #[error("invalid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// The base64 decodes to something that is not gzip, or is truncated.
    #[error("invalid gzip: {0}")]
    Gzip(#[from] std::io::Error),
    /// The inflated payload is larger than [`MAX_INFLATED`].
    #[error("inflates to more than {MAX_INFLATED} bytes")]
    TooLarge,
    /// The inflated payload is not UTF-8.
    #[error("not UTF-8 text once inflated")]
    NotText,
}

/// The JSON text of a payload received in any of Oban's forms (see the module docs). Plain
/// JSON comes back as it is; it is not parsed here.
pub fn decode(payload: &str) -> Result<String, PayloadError> {
    if let Some(compressed) = payload.strip_prefix("Z:") {
        inflate(compressed)
    } else if payload.starts_with("H4sI") {
        inflate(payload)
    } else {
        Ok(payload.to_owned())
    }
}

/// The form of `json` to send: itself up to [`COMPRESS_ABOVE`] bytes, else
/// `base64(gzip(json))`.
pub fn encode(json: &str) -> String {
    if json.len() <= COMPRESS_ABOVE {
        return json.to_owned();
    }
    let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
    // Writing to a Vec cannot fail.
    gzip.write_all(json.as_bytes())
        .expect("compressing into memory");
    let compressed = gzip.finish().expect("compressing into memory");
    STANDARD.encode(compressed)
}

fn inflate(base64: &str) -> Result<String, PayloadError> {
    let compressed = STANDARD.decode(base64.trim_end())?;
    let mut inflated = Vec::new();
    GzDecoder::new(compressed.as_slice())
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut inflated)?;
    if inflated.len() as u64 > MAX_INFLATED {
        return Err(PayloadError::TooLarge);
    }
    String::from_utf8(inflated).map_err(|_| PayloadError::NotText)
}

/// The start of a payload, to name it in a log line: at most 40 characters.
pub(crate) fn prefix(payload: &str) -> &str {
    match payload.char_indices().nth(40) {
        Some((at, _)) => &payload[..at],
        None => payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_json_passes_through_and_small_payloads_stay_plain() {
        let json = r#"{"queue":"default"}"#;
        assert_eq!(decode(json).unwrap(), json);
        assert_eq!(encode(json), json);
        let exactly = format!(r#"{{"q":"{}"}}"#, "x".repeat(COMPRESS_ABOVE - 8));
        assert_eq!(exactly.len(), COMPRESS_ABOVE);
        assert_eq!(encode(&exactly), exactly);
    }

    #[test]
    fn large_payloads_go_out_in_the_legacy_form_and_come_back() {
        let json = format!(r#"{{"q":"{}"}}"#, "x".repeat(COMPRESS_ABOVE));
        let sent = encode(&json);
        assert!(sent.starts_with("H4sI"), "{sent}");
        assert!(sent.len() < json.len());
        assert_eq!(decode(&sent).unwrap(), json);
        // The same bytes behind Elixir 2.22's marker.
        assert_eq!(decode(&format!("Z:{sent}")).unwrap(), json);
    }

    #[test]
    fn malformed_compressed_payloads_are_errors() {
        assert!(matches!(
            decode("Z:not base64!"),
            Err(PayloadError::Base64(_))
        ));
        // Valid base64, starts like gzip, but truncated.
        assert!(matches!(decode("H4sIAAAA"), Err(PayloadError::Gzip(_))));
        assert!(matches!(decode("Z:"), Err(PayloadError::Gzip(_))));
        // A gzip bomb is refused.
        let mut gzip = GzEncoder::new(Vec::new(), Compression::best());
        gzip.write_all(&vec![b' '; (MAX_INFLATED + 10) as usize])
            .unwrap();
        let bomb = STANDARD.encode(gzip.finish().unwrap());
        assert!(bomb.len() < 8_000);
        assert!(matches!(decode(&bomb), Err(PayloadError::TooLarge)));
    }

    #[test]
    fn prefixes_cut_on_characters() {
        assert_eq!(prefix("short"), "short");
        assert_eq!(prefix(&"é".repeat(50)).chars().count(), 40);
    }
}
