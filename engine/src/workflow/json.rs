//! Workflow files written as JSON: serde_json reads the text into the same spanned document
//! tree that the TOML parser builds ([`DeTable`]), so both formats share one deserializer, one
//! unknown-key check and real line and column numbers. Positions come from counting the bytes
//! serde_json has consumed; no JSON is parsed by hand here.
//!
//! JSON-only rules: a key set to `null` is the same as leaving it out (the schema allows `null`
//! for optional keys); `null` inside a list and duplicate keys are errors.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::io;
use std::rc::Rc;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

/// A JSON syntax or shape error with serde_json's line and column.
#[derive(Debug)]
pub(super) struct JsonError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Reads JSON text into a spanned document tree.
pub(super) fn parse(text: &str) -> Result<Spanned<DeTable<'_>>, JsonError> {
    let consumed = Rc::new(Cell::new(0));
    let reader = Counting { bytes: text.as_bytes(), consumed: Rc::clone(&consumed) };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let seed = ValueSeed { text, consumed: &consumed };
    let result = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    let value = result.map_err(|e| {
        let message = e.to_string();
        // serde_json appends " at line L column C"; the diagnostic carries the position itself.
        let message = match message.rfind(" at line ") {
            Some(i) => message[..i].to_owned(),
            None => message,
        };
        JsonError { line: e.line().max(1), column: e.column().max(1), message }
    })?;
    match value {
        Some(v) => {
            let span = v.span();
            match v.into_inner() {
                DeValue::Table(t) => Ok(Spanned::new(span, t)),
                other => Err(JsonError {
                    line: 1,
                    column: 1,
                    message: format!("the file is a JSON {}, not an object", other.type_str()),
                }),
            }
        }
        None => Err(JsonError { line: 1, column: 1, message: "the file is JSON null, not an object".into() }),
    }
}

/// Hands serde_json one byte per read and counts them. serde_json's reader looks at most one
/// byte ahead, so when a value starts, the count is one past the byte it has peeked.
struct Counting<'a> {
    bytes: &'a [u8],
    consumed: Rc<Cell<usize>>,
}

impl io::Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let at = self.consumed.get();
        match (self.bytes.get(at), buf.first_mut()) {
            (Some(b), Some(slot)) => {
                *slot = *b;
                self.consumed.set(at + 1);
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

/// Where the value that serde_json is about to read starts: the byte it peeked (or, after a
/// `:`, the next byte), past whitespace.
fn value_start(text: &str, consumed: usize) -> usize {
    let bytes = text.as_bytes();
    let mut i = consumed.saturating_sub(1);
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r' | b':') {
        i += 1;
    }
    i
}

struct ValueSeed<'t, 'c> {
    text: &'t str,
    consumed: &'c Cell<usize>,
}

impl<'de, 't> DeserializeSeed<'de> for ValueSeed<'t, '_> {
    /// `None` for `null`.
    type Value = Option<Spanned<DeValue<'t>>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let start = value_start(self.text, self.consumed.get());
        let value = d.deserialize_any(ValueVisitor { text: self.text, consumed: self.consumed, start })?;
        let end = match &value {
            Some((_, Some(len))) => start + len,
            _ => self.consumed.get().max(start),
        };
        Ok(value.map(|(v, _)| Spanned::new(start..end, v)))
    }
}

struct KeySeed<'t, 'c> {
    text: &'t str,
    consumed: &'c Cell<usize>,
}

impl<'de, 't> DeserializeSeed<'de> for KeySeed<'t, '_> {
    type Value = Spanned<Cow<'t, str>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let start = value_start(self.text, self.consumed.get());
        let key = String::deserialize(d)?;
        let end = self.consumed.get().max(start);
        Ok(Spanned::new(start..end, Cow::Owned(key)))
    }
}

use serde::Deserialize as _;

struct ValueVisitor<'t, 'c> {
    text: &'t str,
    consumed: &'c Cell<usize>,
    start: usize,
}

/// A value and, for numbers, the length of its token in the text.
type Visited<'t> = Option<(DeValue<'t>, Option<usize>)>;

impl<'t> ValueVisitor<'t, '_> {
    /// A number as the TOML value of its own JSON token (JSON numbers are TOML numbers).
    fn number<E: de::Error>(&self) -> Result<Visited<'t>, E> {
        let rest = self.text.get(self.start..).unwrap_or_default();
        let len =
            rest.find(|c: char| !matches!(c, '0'..='9' | '-' | '+' | '.' | 'e' | 'E')).unwrap_or(rest.len());
        let token = &rest[..len];
        match DeValue::parse(token) {
            Ok(v) => Ok(Some((v.into_inner(), Some(len)))),
            Err(e) => Err(E::custom(format!("number {token} is not supported: {}", e.message()))),
        }
    }
}

impl<'de, 't> Visitor<'de> for ValueVisitor<'t, '_> {
    type Value = Visited<'t>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some((DeValue::Boolean(v), None)))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        self.number()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        self.number()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        self.number()
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some((DeValue::String(Cow::Owned(v.to_owned())), None)))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some((DeValue::String(Cow::Owned(v)), None)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut array = DeArray::new();
        loop {
            let seed = ValueSeed { text: self.text, consumed: self.consumed };
            match seq.next_element_seed(seed)? {
                Some(Some(item)) => array.push(item),
                Some(None) => return Err(de::Error::custom("null is not allowed in a list")),
                None => break,
            }
        }
        Ok(Some((DeValue::Array(array), None)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut table = DeTable::new();
        while let Some(key) = map.next_key_seed(KeySeed { text: self.text, consumed: self.consumed })? {
            let value = map.next_value_seed(ValueSeed { text: self.text, consumed: self.consumed })?;
            if table.contains_key(key.get_ref().as_ref()) {
                return Err(de::Error::custom(format!("duplicate key `{}`", key.get_ref())));
            }
            if let Some(value) = value {
                table.insert(key, value);
            }
        }
        Ok(Some((DeValue::Table(table), None)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start_of(text: &str, path: &[&str]) -> usize {
        let root = parse(text).unwrap();
        let mut table = root.get_ref();
        let (last, init) = path.split_last().unwrap();
        for key in init {
            table = table.get(*key).unwrap().get_ref().as_table().unwrap();
        }
        table.get(*last).unwrap().span().start
    }

    #[test]
    fn values_keep_their_positions() {
        let text = "{\n  \"name\": \"x\",\n  \"n\" :  12.5 ,\n  \"t\": {\"a\": [true, 3]}\n}";
        assert_eq!(start_of(text, &["name"]), text.find("\"x\"").unwrap());
        assert_eq!(start_of(text, &["n"]), text.find("12.5").unwrap());
        assert_eq!(start_of(text, &["t", "a"]), text.find("[true").unwrap());
        let root = parse(text).unwrap();
        let t = root.get_ref().get("t").unwrap().get_ref().as_table().unwrap();
        let a = t.get("a").unwrap().get_ref().as_array().unwrap();
        assert_eq!(a[1].span(), text.find("3]").unwrap()..text.find("3]").unwrap() + 1);
        assert_eq!(a[1].get_ref().as_integer().unwrap().as_str(), "3");
        let (key, _) = root.get_ref().get_key_value("n").unwrap();
        assert_eq!(key.span().start, text.find("\"n\"").unwrap());
    }

    #[test]
    fn nulls_duplicates_and_syntax_errors() {
        let root = parse(r#"{"a": null, "b": 1}"#).unwrap();
        assert!(root.get_ref().get("a").is_none());
        let e = parse(r#"{"a": [1, null]}"#).unwrap_err();
        assert_eq!(e.message, "null is not allowed in a list");
        let e = parse("{\"a\": 1,\n \"a\": 2}").unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (2, "duplicate key `a`"));
        let e = parse("{\"a\": 1,\n  }").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse("[1]").unwrap_err().message.contains("not an object"));
    }
}
