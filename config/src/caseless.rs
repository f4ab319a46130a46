//! JSON as a Go plugin reads it. Go's `encoding/json` matches an object key
//! to a struct field ignoring case, and when two keys of one object match the
//! same field it does not complain: it decodes both, in order, so the **last**
//! one wins whatever its case (`{"ipam":…,"IPAM":…}` gives the `IPAM` value;
//! into a map-typed field the two are even merged). A config checked with
//! exact keys and then handed to a Go delegate can therefore mean something
//! else to the delegate. This module is the one place that models it:
//!
//! - [`fold`] is the key folding of Go's decoder: ASCII case, plus the two
//!   non-ASCII letters it folds onto ASCII ones, U+212A KELVIN SIGN (k) and
//!   U+017F LONG S (s). Not the dotted capital I (U+0130) nor the dotless
//!   small i (U+0131), whose case mappings reach ASCII too: Go 1.19 and 1.23
//!   both leave them alone, as the differential test (fuzz/tests/go_view.rs)
//!   shows against the real decoder.
//! - [`decode`] parses a document into the one value both sides agree on:
//!   any object, at any depth, holding two keys that fold together (exact
//!   duplicates included) is refused, naming both keys and where they are.
//! - [`canonicalize_keys`] renames Go-style spellings of known keys to the
//!   canonical one (containerd serializes capability args with Go field names:
//!   `HostPort`, `IngressRate`), keeping the last, as Go does.
//! - [`insert`] sets a key after removing every spelling Go would read as it,
//!   so what a plugin reads is what was inserted.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::ConfigError;

/// One character as Go's decoder folds it when it compares a key with a
/// field name. Beyond ASCII only the Kelvin sign and the long s reach an
/// ASCII letter; other characters fold by their one-character case mapping
/// among themselves (where Rust's mapping is several characters — ß, ﬀ,
/// Greek with iota subscript — the character stays as it is). Such keys
/// never match an ASCII field name, which is all CNI plugins have; two of
/// them in one object are refused all the same.
pub fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    match c {
        // KELVIN SIGN: lowercase k.
        '\u{212A}' => 'K',
        // LATIN SMALL LETTER LONG S: uppercase S.
        '\u{017F}' => 'S',
        c => {
            let lower = single(c.to_lowercase()).unwrap_or(c);
            let folded = single(lower.to_uppercase()).unwrap_or(lower);
            // ı (U+0131) uppercases to I: Go does not match it to i.
            if folded.is_ascii() {
                c
            } else {
                folded
            }
        }
    }
}

/// The one character of a case mapping, if it is one.
fn single(mut it: impl Iterator<Item = char>) -> Option<char> {
    let first = it.next()?;
    it.next().is_none().then_some(first)
}

/// A key folded as Go's decoder compares it: two keys are read as the same
/// struct field exactly when their folds are equal.
pub fn fold(key: &str) -> String {
    key.chars().map(fold_char).collect()
}

/// Whether a Go plugin reads `a` and `b` as the same field.
pub fn go_key_eq(a: &str, b: &str) -> bool {
    a.chars().map(fold_char).eq(b.chars().map(fold_char))
}

/// Two keys of one object that a Go plugin reads as one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// Where the object is (`ipam`, `plugins[1]`); empty for the top level.
    pub at: String,
    pub first: String,
    pub second: String,
}

impl Duplicate {
    fn into_error(self, what: &str) -> ConfigError {
        let field = match self.at.as_str() {
            "" => what.to_string(),
            at => format!("{what} {at}"),
        };
        ConfigError::invalid(
            field,
            format!("{} / {}", self.first, self.second),
            "two keys a Go plugin reads as one field (Go's JSON decoder ignores case \
             and takes the last); keep one spelling",
        )
    }
}

/// Parse `bytes` as the one value a Go plugin and vfplex both see: invalid
/// JSON is a decode error (code 6), an object with two keys that fold
/// together an invalid config (code 7) naming both. `what` names the document.
pub fn decode(bytes: &[u8], what: &'static str) -> Result<Value, ConfigError> {
    let dup = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = GoValue { at: "", dup: &dup }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    match (parsed, dup.into_inner()) {
        (_, Some(d)) => Err(d.into_error(what)),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(ConfigError::decode(what, e)),
    }
}

/// The same check on a value already parsed (exact duplicates are gone by
/// then; keys that differ only in case are not).
pub fn check_value(v: &Value, what: &str) -> Result<(), ConfigError> {
    fn walk(v: &Value, at: &str) -> Result<(), Duplicate> {
        match v {
            Value::Object(m) => {
                let mut seen: HashMap<String, &str> = HashMap::with_capacity(m.len());
                for (k, child) in m {
                    if let Some(first) = seen.insert(fold(k), k) {
                        return Err(Duplicate {
                            at: at.to_string(),
                            first: first.to_string(),
                            second: k.clone(),
                        });
                    }
                    walk(child, &join(at, k))?;
                }
                Ok(())
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, x)| walk(x, &format!("{at}[{i}]"))),
            _ => Ok(()),
        }
    }
    walk(v, "").map_err(|d| d.into_error(what))
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

/// Deserializes one JSON value into a [`Value`], refusing fold-equal keys.
struct GoValue<'a> {
    at: &'a str,
    dup: &'a RefCell<Option<Duplicate>>,
}

impl<'de> DeserializeSeed<'de> for GoValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for GoValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let at = format!("{}[{}]", self.at, out.len());
            let seed = GoValue {
                at: &at,
                dup: self.dup,
            };
            match seq.next_element_seed(seed)? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        while let Some(key) = map.next_key::<String>()? {
            if let Some(first) = seen.insert(fold(&key), key.clone()) {
                *self.dup.borrow_mut() = Some(Duplicate {
                    at: self.at.to_string(),
                    first,
                    second: key,
                });
                return Err(serde::de::Error::custom("keys a Go plugin reads as one"));
            }
            let at = join(self.at, &key);
            let v = map.next_value_seed(GoValue {
                at: &at,
                dup: self.dup,
            })?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Rename every key of `obj` that a Go plugin reads as one of `canonical` to
/// that spelling. Where several spellings of one key are present, the last
/// one is kept, as Go's decoder keeps it.
pub fn canonicalize_keys(obj: &mut Map<String, Value>, canonical: &[&str]) {
    for &name in canonical {
        let spellings: Vec<String> = obj.keys().filter(|k| go_key_eq(k, name)).cloned().collect();
        let Some(last) = spellings.last() else {
            continue;
        };
        if spellings.len() == 1 && last == name {
            continue;
        }
        let kept = obj.get(last).cloned();
        for k in &spellings {
            obj.remove(k);
        }
        if let Some(v) = kept {
            obj.insert(name.to_string(), v);
        }
    }
}

/// Set `key` to `value` after removing every spelling of it a Go plugin
/// would read in its place (the meta plugin's own insertions go through this).
pub fn insert(obj: &mut Map<String, Value>, key: &str, value: Value) {
    obj.retain(|k, _| k == key || !go_key_eq(k, key));
    obj.insert(key.to_string(), value);
}

/// The value of `key` as a Go plugin reads it: the last spelling present.
pub fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter()
        .rev()
        .find(|(k, _)| go_key_eq(k, key))
        .map(|(_, v)| v)
}

/// Canonicalize the keys of an object (or of every object in an array) and decode it.
pub fn from_value_caseless<T: DeserializeOwned>(
    mut value: Value,
    canonical: &[&str],
    what: &'static str,
) -> Result<T, ConfigError> {
    match &mut value {
        Value::Object(obj) => canonicalize_keys(obj, canonical),
        Value::Array(items) => {
            for item in items {
                if let Value::Object(obj) = item {
                    canonicalize_keys(obj, canonical);
                }
            }
        }
        _ => {}
    }
    serde_json::from_value(value).map_err(|e| ConfigError::decode(what, e))
}

#[cfg(test)]
mod tests;
