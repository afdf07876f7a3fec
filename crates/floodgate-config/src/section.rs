//! Reads one TOML table into its raw serde struct and collects *every*
//! problem on the way.
//!
//! serde stops at the first error, so a table is read in rounds: first every
//! key the struct does not know is reported and dropped, then the struct is
//! deserialized; when that fails, the error is reported at its span, the key
//! it belongs to is dropped, and the struct is deserialized again. Each round
//! drops a key, so this ends, and a table with three bad settings reports
//! three errors. Keys that failed are remembered so later validation does not
//! report them a second time.

use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, SeqAccess, Visitor};
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::error::Diagnostics;

/// A value of the parsed document, with its span.
pub(crate) type Node<'a> = Spanned<DeValue<'a>>;

/// One table of the file, read into its raw struct `T`.
pub(crate) struct Section<'a, T> {
    /// The settings that could be read; failed ones are `None`/default.
    pub raw: T,
    /// How the table is named in messages: `[server]`, `[[policy]]`.
    pub name: String,
    /// Span of the table header (or of the whole table when inline).
    header: Range<usize>,
    /// The table as parsed, for spans and sub-tables.
    table: Option<&'a DeTable<'a>>,
    /// Keys already reported as wrong.
    failed: Vec<String>,
    /// Keys reported as unknown (a subset of `failed`).
    unknown: Vec<String>,
}

impl<'a, T: DeserializeOwned + Default> Section<'a, T> {
    /// A section the file does not have: every setting takes its default.
    pub(crate) fn absent(name: &str) -> Self {
        Section {
            raw: T::default(),
            name: name.to_string(),
            header: 0..0,
            table: None,
            failed: Vec::new(),
            unknown: Vec::new(),
        }
    }

    /// Reads `node` if present, else the defaults. A node that is not a
    /// table is reported and read as the defaults.
    pub(crate) fn read_or_default(
        node: Option<&'a Node<'a>>,
        name: &str,
        diag: &mut Diagnostics<'_>,
    ) -> Self {
        node.and_then(|n| Self::read(n, name, diag))
            .unwrap_or_else(|| Self::absent(name))
    }

    /// Reads the table `node`, reporting every problem into `diag`.
    /// `None` when `node` is not a table at all.
    pub(crate) fn read(node: &'a Node<'a>, name: &str, diag: &mut Diagnostics<'_>) -> Option<Self> {
        let span = node.span();
        let Some(table) = node.get_ref().as_table() else {
            diag.push(
                span,
                format!(
                    "{name} must be a table, found {}",
                    article(node.get_ref().type_str())
                ),
            );
            return None;
        };
        let known = field_names::<T>();
        let mut remaining = table.clone();
        let mut unknown = Vec::new();
        for (key, _) in table.iter() {
            if !known.contains(&key.get_ref().as_ref()) {
                diag.push(key.span(), unknown_key(key.get_ref(), name, known));
                remaining.remove(key.get_ref().as_ref());
                unknown.push(key.get_ref().to_string());
            }
        }
        let mut failed = unknown.clone();
        let raw = loop {
            let attempt = Spanned::new(span.clone(), DeValue::Table(remaining.clone()));
            let error = match T::deserialize(ValueDeserializer::from(attempt)) {
                Ok(raw) => break raw,
                Err(error) => error,
            };
            let at = error.span().unwrap_or_else(|| span.clone());
            let culprit = remaining
                .iter()
                .find(|(k, v)| k.span().contains(&at.start) || holds(v, at.start))
                .map(|(k, _)| k.get_ref().to_string());
            let Some(key) = culprit else {
                // Not attributable to one key: report it, keep the defaults.
                diag.push(at, error.message().to_string());
                break T::default();
            };
            diag.push(at, humanize(error.message(), &key, name));
            remaining.remove(key.as_str());
            failed.push(key);
        };
        Some(Section {
            raw,
            name: name.to_string(),
            header: span,
            table: Some(table),
            failed,
            unknown,
        })
    }
}

impl<'a, T> Section<'a, T> {
    /// Where to report a problem with `key`: its value, or the table header
    /// when the key is absent.
    pub(crate) fn at(&self, key: &str) -> Range<usize> {
        self.table
            .and_then(|t| t.get(key))
            .map_or_else(|| self.header.clone(), Spanned::span)
    }

    /// Where to report a problem with element `index` of the array at
    /// `key`: that element, or the whole value.
    pub(crate) fn element_at(&self, key: &str, index: usize) -> Range<usize> {
        self.table
            .and_then(|t| t.get(key))
            .and_then(|v| v.get_ref().as_array())
            .and_then(|a| a.get(index))
            .map_or_else(|| self.at(key), Spanned::span)
    }

    /// The table header (or the whole inline table).
    pub(crate) fn header(&self) -> Range<usize> {
        self.header.clone()
    }

    /// Whether `key` was present in the file.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.table.is_some_and(|t| t.contains_key(key))
    }

    /// Whether `key` was already reported: as wrong, or as the likely
    /// meaning of a misspelt unknown key (`windw` for `window`). Problems
    /// that follow from it ("window is required") would only be noise.
    pub(crate) fn has_failed(&self, key: &str) -> bool {
        self.failed.iter().any(|k| k == key) || self.unknown.iter().any(|k| is_near(k, key))
    }

    /// The sub-table or array at `key`, unless it was already reported.
    pub(crate) fn child(&self, key: &str) -> Option<&'a Node<'a>> {
        if self.failed.iter().any(|k| k == key) {
            return None;
        }
        self.table.and_then(|t| t.get(key))
    }

    /// Parses the value of `key` as one of `choices`, or reports it.
    pub(crate) fn choice<C: Copy>(
        &self,
        key: &str,
        value: Option<&str>,
        choices: &[(&str, C)],
        diag: &mut Diagnostics<'_>,
    ) -> Option<C> {
        let value = value?;
        if let Some((_, c)) = choices.iter().find(|(name, _)| *name == value) {
            return Some(*c);
        }
        let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
        diag.push(
            self.at(key),
            format!(
                "invalid {key} {value:?} in {}; expected one of: {}",
                self.name,
                names.join(", ")
            ),
        );
        None
    }
}

/// Whether `pos` lies anywhere inside `node`: its own span or, for tables
/// defined by headers, any of their keys and values.
fn holds(node: &Node<'_>, pos: usize) -> bool {
    if node.span().contains(&pos) {
        return true;
    }
    match node.get_ref() {
        DeValue::Table(t) => t
            .iter()
            .any(|(k, v)| k.span().contains(&pos) || holds(v, pos)),
        DeValue::Array(a) => a.iter().any(|v| holds(v, pos)),
        _ => false,
    }
}

/// `unknown key "limt" in [[policy]]; expected one of: …`, with a guess.
fn unknown_key(key: &str, section: &str, known: &[&str]) -> String {
    let mut message = format!(
        "unknown key {key:?} {}; expected one of: {}",
        place(section),
        known.join(", ")
    );
    if let Some(close) = known.iter().find(|k| is_near(key, k)) {
        message.push_str(&format!(" (did you mean {close:?}?)"));
    }
    message
}

/// Whether `typed` is probably a misspelling of `known`.
fn is_near(typed: &str, known: &str) -> bool {
    edit_distance(typed, known) <= 2.min(known.len() / 2)
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// Rewrites serde's `invalid type: string "ten", expected u64` as
/// `invalid limit in [[policy]]: expected a non-negative integer, found
/// string "ten"`. Messages of our own deserializers are kept as they are.
fn humanize(message: &str, key: &str, section: &str) -> String {
    let rest = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "));
    let Some((found, expected)) = rest.and_then(|r| r.rsplit_once(", expected ")) else {
        return message.to_string();
    };
    let expected = match expected {
        "u8" | "u16" | "u64" | "usize" => "a non-negative integer".to_string(),
        "u32" => format!("a non-negative integer up to {}", u32::MAX),
        "a sequence" => "an array".to_string(),
        "an array of tables" => format!("an array of tables, written [[{key}]]"),
        other => other.to_string(),
    };
    let found = match found {
        "map" => "a table",
        "sequence" => "an array",
        other => other
            .trim_end_matches(" as i128")
            .trim_end_matches(" as u128"),
    };
    format!(
        "invalid {key} {}: expected {expected}, found {found}",
        place(section)
    )
}

/// "in [server]", "at the top level".
fn place(section: &str) -> String {
    if section.starts_with('[') {
        format!("in {section}")
    } else {
        format!("at {section}")
    }
}

/// "an integer", "a string", … from toml's type names.
fn article(type_name: &str) -> String {
    match type_name {
        "integer" | "array" => format!("an {type_name}"),
        other => format!("a {other}"),
    }
}

/// The field names a derived `Deserialize` struct accepts, captured from
/// the `fields` argument serde passes to `deserialize_struct`, so the list
/// of known keys can never drift from the struct.
pub(crate) fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut capture = FieldCapture(&[]);
    let _ = T::deserialize(&mut capture);
    capture.0
}

struct FieldCapture(&'static [&'static str]);

impl<'de> de::Deserializer<'de> for &mut FieldCapture {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = fields;
        Err(de::Error::custom("fields captured"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// A sub-table, read later as a section of its own so its errors are
/// reported one by one; here only its type is checked.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SubTable;

impl<'de> de::Deserialize<'de> for SubTable {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SubTable;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SubTable, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(SubTable)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// An array of tables (`[[policy]]`), each read later as its own section.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TableArray;

impl<'de> de::Deserialize<'de> for TableArray {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TableArray;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of tables")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TableArray, A::Error> {
                while seq.next_element::<SubTable>()?.is_some() {}
                Ok(TableArray)
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("limt", "limit"), 1);
        assert_eq!(edit_distance("windw", "window"), 1);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn humanizes_serde_type_errors() {
        assert_eq!(
            humanize(
                "invalid type: string \"ten\", expected u64",
                "limit",
                "[[policy]]"
            ),
            "invalid limit in [[policy]]: expected a non-negative integer, found string \"ten\""
        );
        assert_eq!(
            humanize("custom words", "limit", "[[policy]]"),
            "custom words"
        );
    }
}
