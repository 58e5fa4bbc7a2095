//! Recorded results: a worker's return value kept with its completed job, in the layout Elixir
//! Oban Pro and Python Oban use, so any of them can read what another recorded.
//!
//! A recorded job's `meta` holds `"recorded": true` and `"return"`: the value in the Erlang
//! external term format, base64-encoded without padding. This runtime writes JSON values as
//! terms (objects as maps with binary keys, strings as binaries, integers as integers, floats
//! as floats, `true`/`false` as those atoms, `null` as `nil`, arrays as lists) and reads back
//! any term a JSON value can stand for: compressed terms (as Elixir writes them), padded or
//! unpadded base64, atom keys (read as strings), tuples (read as arrays), binaries (read as
//! strings when they are UTF-8), and lists of small integers, which Erlang stores in the form
//! it also uses for charlists, as lists of integers (`[1, 2, 3]`; `~c"ab"` reads `[97, 98]`). Pids, references, functions and
//! non-UTF-8 binaries have no JSON form and are refused with an error naming them.
//!
//! ```
//! use serde_json::json;
//! use oban_core::recorded;
//!
//! let value = json!({"rows": 3, "file": "export.csv", "ok": true});
//! let text = recorded::encode(&value).unwrap();
//! assert_eq!(recorded::decode(&text).unwrap(), value);
//! ```

use std::collections::HashMap;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use eetf::{Atom, BigInteger, Binary, FixInteger, Float, List, Map, Term, Tuple};
use serde_json::{Map as JsonMap, Number, Value};

use crate::error::{Error, Result};

/// The meta key marking a recorded job.
pub const RECORDED_KEY: &str = "recorded";
/// The meta key holding the encoded value.
pub const RETURN_KEY: &str = "return";
/// The largest encoded value a node records unless configured otherwise
/// ([`WorkerOptions::record_limit`](crate::WorkerOptions::record_limit)): 32,000 characters of base64
/// (about 24 KB of term), as Oban Pro's default. A job's meta is read with every fetch of it.
pub const DEFAULT_LIMIT: usize = 32_000;

/// `value` as the text stored in `meta.return`.
///
/// # Errors
/// A number JSON holds that is neither an integer nor a float (never, with serde_json's
/// defaults).
pub fn encode(value: &Value) -> Result<String> {
    let term = to_term(value)?;
    let mut bytes = Vec::new();
    term.encode(&mut bytes)
        .map_err(|e| Error::Recorded(format!("cannot encode the value as an Erlang term: {e}")))?;
    Ok(STANDARD_NO_PAD.encode(bytes))
}

/// The value a `meta.return` text holds, whoever recorded it.
///
/// # Errors
/// Text that is not base64 or not an Erlang term, or a term without a JSON form (a pid, a
/// function, a binary that is not UTF-8): the message says which.
pub fn decode(text: &str) -> Result<Value> {
    let text = text.trim();
    let bytes = STANDARD_NO_PAD
        .decode(text.trim_end_matches('='))
        .or_else(|_| STANDARD.decode(text))
        .map_err(|e| Error::Recorded(format!("`return` is not base64: {e}")))?;
    let term = Term::decode(bytes.as_slice())
        .map_err(|e| Error::Recorded(format!("`return` is not an Erlang term: {e}")))?;
    to_json(term)
}

/// The recorded value a job's `meta` holds, if any (what [`Job::recorded`](crate::Job::recorded)
/// decodes before giving it a type; the dashboard shows it as it is).
///
/// ```
/// use serde_json::json;
/// use oban_core::recorded;
///
/// assert_eq!(recorded::decode_meta(&json!({"snoozed": 1})).unwrap(), None);
/// ```
///
/// # Errors
/// A `return` that is not a base64 Erlang term with a JSON form.
pub fn decode_meta(meta: &Value) -> Result<Option<Value>> {
    match meta.get(RETURN_KEY) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => decode(text).map(Some),
        Some(other) => Err(Error::Recorded(format!(
            "`meta.return` should be a base64 string, found {other}"
        ))),
    }
}

/// The keys an ack merges into `meta` for `value`, checked against `limit` characters.
pub(crate) fn meta_for(value: &Value, limit: usize) -> std::result::Result<Value, String> {
    let text = encode(value).map_err(|e| e.to_string())?;
    if text.len() > limit {
        return Err(format!(
            "the recorded result is {} characters encoded, over the limit of {limit}: return less, \
             or raise the worker's limit (WorkerOptions::record_limit)",
            text.len()
        ));
    }
    Ok(serde_json::json!({ RECORDED_KEY: true, RETURN_KEY: text }))
}

fn to_term(value: &Value) -> Result<Term> {
    Ok(match value {
        Value::Null => Term::from(Atom::from("nil")),
        Value::Bool(b) => Term::from(Atom::from(if *b { "true" } else { "false" })),
        Value::Number(n) => number_term(n)?,
        Value::String(s) => Term::from(Binary::from(s.as_bytes())),
        Value::Array(items) => Term::from(List::from(
            items.iter().map(to_term).collect::<Result<Vec<_>>>()?,
        )),
        Value::Object(fields) => {
            let mut map = HashMap::with_capacity(fields.len());
            for (key, value) in fields {
                map.insert(Term::from(Binary::from(key.as_bytes())), to_term(value)?);
            }
            Term::from(Map::from(map))
        }
    })
}

fn number_term(n: &Number) -> Result<Term> {
    if let Some(i) = n.as_i64() {
        return Ok(match i32::try_from(i) {
            Ok(small) => Term::from(FixInteger::from(small)),
            Err(_) => Term::from(BigInteger::from(i)),
        });
    }
    if let Some(u) = n.as_u64() {
        return Ok(Term::from(BigInteger::from(u)));
    }
    let f = n
        .as_f64()
        .ok_or_else(|| Error::Recorded(format!("{n} is not a number a term can hold")))?;
    Float::try_from(f)
        .map(Term::from)
        .map_err(|e| Error::Recorded(format!("{n}: {e}")))
}

fn to_json(term: Term) -> Result<Value> {
    Ok(match term {
        Term::Atom(atom) => match atom.name.as_str() {
            "nil" | "undefined" | "None" => Value::Null,
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            name => Value::String(name.to_owned()),
        },
        Term::FixInteger(i) => Value::from(i.value),
        Term::BigInteger(big) => {
            let text = big.value.to_string();
            text.parse::<i64>()
                .map(Value::from)
                .or_else(|_| text.parse::<u64>().map(Value::from))
                .or_else(|_| text.parse::<f64>().map(Value::from))
                .map_err(|_| Error::Recorded(format!("the integer {text} has no JSON form")))?
        }
        Term::Float(f) => Number::from_f64(f.value)
            .map(Value::Number)
            .ok_or_else(|| Error::Recorded(format!("the float {} has no JSON form", f.value)))?,
        Term::Binary(b) => Value::String(String::from_utf8(b.bytes).map_err(|_| {
            Error::Recorded("a binary that is not UTF-8 text has no JSON form".into())
        })?),
        // A list of integers from 0 to 255, as Erlang encodes `[1, 2, 3]`: not text.
        Term::ByteList(list) => Value::Array(list.bytes.into_iter().map(Value::from).collect()),
        Term::List(list) => Value::Array(
            list.elements
                .into_iter()
                .map(to_json)
                .collect::<Result<_>>()?,
        ),
        Term::Tuple(Tuple { elements }) => {
            Value::Array(elements.into_iter().map(to_json).collect::<Result<_>>()?)
        }
        Term::Map(map) => {
            let mut fields = JsonMap::with_capacity(map.map.len());
            for (key, value) in map.map {
                let key = match to_json(key)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                fields.insert(key, to_json(value)?);
            }
            Value::Object(fields)
        }
        other => {
            return Err(Error::Recorded(format!(
                "the recorded term {other} has no JSON form"
            )))
        }
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_list_of_small_integers_is_read_back_as_a_list_not_as_text() {
        let value = serde_json::json!([1, 2, 3, 255]);
        assert_eq!(decode(&encode(&value).unwrap()).unwrap(), value);
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn values_round_trip() {
        for value in [
            json!(null),
            json!(true),
            json!(42),
            json!(-7),
            json!(3_000_000_000_i64),
            json!(u64::MAX),
            json!(1.5),
            json!("héllo"),
            json!([1, "two", [3.0], {"four": null}]),
            json!({"rows": 3, "nested": {"list": [false, true]}}),
        ] {
            assert_eq!(decode(&encode(&value).unwrap()).unwrap(), value, "{value}");
        }
    }

    #[test]
    fn the_bytes_are_what_erlang_writes() {
        // :erlang.term_to_binary(%{"a" => 1}) == <<131, 116, 0, 0, 0, 1, 109, 0, 0, 0, 1, 97, 97, 1>>
        let text = encode(&json!({"a": 1})).unwrap();
        assert_eq!(
            STANDARD_NO_PAD.decode(&text).unwrap(),
            [131, 116, 0, 0, 0, 1, 109, 0, 0, 0, 1, 97, 97, 1]
        );
        assert!(
            !text.ends_with('='),
            "no padding, as Elixir and Python write it"
        );
    }

    #[test]
    fn terms_other_writers_make_are_read() {
        // %{ok: {1, ~c"ab"}} with an atom key, a tuple and a charlist.
        let bytes = [
            131, 116, 0, 0, 0, 1, 100, 0, 2, b'o', b'k', 104, 2, 97, 1, 107, 0, 2, b'a', b'b',
        ];
        assert_eq!(
            decode(&STANDARD.encode(bytes)).unwrap(),
            // A charlist is the list of its integers (`~c"ab" == [97, 98]` in Elixir), which
            // is also how Erlang writes a list of small integers such as `[1, 2, 3]`.
            json!({"ok": [1, [97, 98]]})
        );
        // :erlang.term_to_binary("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", [:compressed])
        let plain: Vec<u8> = [109, 0, 0, 0, 40].into_iter().chain([b'a'; 40]).collect();
        let mut compressed = vec![131, 80];
        compressed.extend((plain.len() as u32).to_be_bytes());
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, &plain).unwrap();
        compressed.extend(z.finish().unwrap());
        assert_eq!(
            decode(&STANDARD.encode(&compressed)).unwrap(),
            json!("a".repeat(40))
        );
    }

    #[test]
    fn what_has_no_json_form_is_a_clear_error() {
        assert!(decode("not base64!")
            .unwrap_err()
            .to_string()
            .contains("base64"));
        assert!(decode(&STANDARD.encode([1, 2, 3]))
            .unwrap_err()
            .to_string()
            .contains("Erlang term"));
        // a binary that is not UTF-8
        let bytes = [131, 109, 0, 0, 0, 1, 255];
        assert!(decode(&STANDARD.encode(bytes))
            .unwrap_err()
            .to_string()
            .contains("UTF-8"));
    }

    #[test]
    fn the_limit_is_on_the_encoded_text() {
        let big = json!("x".repeat(100));
        assert!(meta_for(&big, 1_000).is_ok());
        let error = meta_for(&big, 50).unwrap_err();
        assert!(error.contains("over the limit of 50"), "{error}");
        let meta = meta_for(&json!(1), 100).unwrap();
        assert_eq!(meta[RECORDED_KEY], true);
        assert_eq!(decode_meta(&meta).unwrap(), Some(json!(1)));
        assert_eq!(decode_meta(&json!({})).unwrap(), None);
    }
}
