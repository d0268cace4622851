//! The TOML side of the tracker files (`schema.toml`, `initial_data.toml`): typed
//! access to spanned TOML values, and every mistake reported as
//! `file:line:column: message` ([`SchemaError`]).

use std::ops::Range;

use toml::de::{DeArray, DeTable, DeValue};
use toml::Spanned;

/// An error in a tracker TOML file (`schema.toml` or `initial_data.toml`).
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The file could not be read.
    #[error("{file}: cannot read the file: {source}")]
    Io {
        /// The path as given.
        file: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not describe a valid schema / data set.
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        /// The file name as given.
        file: String,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column (in characters) of the offending text.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

impl SchemaError {
    /// The message without the `file:line:column: ` prefix (the I/O error text for `Io`).
    pub fn message(&self) -> String {
        match self {
            SchemaError::Io { source, .. } => source.to_string(),
            SchemaError::Invalid { message, .. } => message.clone(),
        }
    }
}

pub(crate) type V<'i> = Spanned<DeValue<'i>>;
pub(crate) type K<'i> = Spanned<std::borrow::Cow<'i, str>>;

/// Error construction and type-checked access to TOML values, bound to one file.
pub(crate) struct Ctx<'a> {
    pub(crate) file: &'a str,
    pub(crate) text: &'a str,
}

impl Ctx<'_> {
    pub(crate) fn err(&self, span: Range<usize>, message: impl Into<String>) -> SchemaError {
        let (line, column) = line_col(self.text, span.start);
        SchemaError::Invalid {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    pub(crate) fn toml_err(&self, e: &toml::de::Error) -> SchemaError {
        let span = e.span().unwrap_or(0..0);
        let mut message = e.message().trim().to_string();
        if message == "duplicate key" {
            let key = self.text.get(span.clone()).unwrap_or("").trim();
            message = format!(
                "duplicate key {key}: TOML allows each key only once per table, so a class, \
                 property, option or table header may appear only once"
            );
        } else {
            message = format!("invalid TOML: {message}");
        }
        self.err(span, message)
    }

    /// `get`'s value of `v`, or the error `<what> must be <want>, not <type>`.
    fn typed<'v, 'i, T>(
        &self,
        v: &'v V<'i>,
        what: &str,
        want: &str,
        get: impl FnOnce(&'v DeValue<'i>) -> Option<T>,
    ) -> Result<T, SchemaError> {
        get(v.get_ref()).ok_or_else(|| {
            let found = article(v.get_ref().type_str());
            self.err(v.span(), format!("{what} must be {want}, not {found}"))
        })
    }

    pub(crate) fn table<'v, 'i>(
        &self,
        v: &'v V<'i>,
        what: &str,
    ) -> Result<&'v DeTable<'i>, SchemaError> {
        self.typed(v, what, "a table", |d| match d {
            DeValue::Table(t) => Some(t),
            _ => None,
        })
    }

    pub(crate) fn array<'v, 'i>(
        &self,
        v: &'v V<'i>,
        what: &str,
    ) -> Result<&'v DeArray<'i>, SchemaError> {
        self.typed(v, what, "an array", |d| match d {
            DeValue::Array(a) => Some(a),
            _ => None,
        })
    }

    pub(crate) fn string<'v>(&self, v: &'v V<'_>, what: &str) -> Result<&'v str, SchemaError> {
        self.typed(v, what, "a string", |d| match d {
            DeValue::String(s) => Some(s.as_ref()),
            _ => None,
        })
    }

    pub(crate) fn boolean(&self, v: &V<'_>, what: &str) -> Result<bool, SchemaError> {
        self.typed(v, what, "true or false", |d| match d {
            DeValue::Boolean(b) => Some(*b),
            _ => None,
        })
    }

    /// A string, or an array of strings; each with its span.
    pub(crate) fn strings(
        &self,
        v: &V<'_>,
        what: &str,
    ) -> Result<Vec<(String, Range<usize>)>, SchemaError> {
        match v.get_ref() {
            DeValue::String(s) => Ok(vec![(s.to_string(), v.span())]),
            DeValue::Array(a) => {
                if a.is_empty() {
                    return Err(self.err(v.span(), format!("{what} must not be empty")));
                }
                a.iter()
                    .map(|x| {
                        Ok((
                            self.string(x, &format!("each of {what}"))?.to_string(),
                            x.span(),
                        ))
                    })
                    .collect()
            }
            other => Err(self.err(
                v.span(),
                format!(
                    "{what} must be a string or an array of strings, not {}",
                    article(other.type_str())
                ),
            )),
        }
    }

    pub(crate) fn check_keys(
        &self,
        t: &DeTable<'_>,
        allowed: &[&str],
        place: &str,
    ) -> Result<(), SchemaError> {
        for (k, _) in t.iter() {
            if !allowed.contains(&k.get_ref().as_ref()) {
                return Err(self.err(
                    k.span(),
                    format!(
                        "unknown key \"{}\" in {place} (expected {})",
                        k.get_ref(),
                        one_of(allowed)
                    ),
                ));
            }
        }
        Ok(())
    }
}

pub(crate) fn article(type_str: &str) -> String {
    match type_str {
        "integer" | "array" => format!("an {type_str}"),
        _ => format!("a {type_str}"),
    }
}

pub(crate) fn one_of(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        _ => format!("one of: {}", items.join(", ")),
    }
}

/// 1-based line and character column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut off = offset.min(text.len());
    while !text.is_char_boundary(off) {
        off -= 1;
    }
    let before = &text[..off];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let t = "ab\ncdé\nx";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 7), (2, 4));
        assert_eq!(line_col(t, 8), (3, 1));
        assert_eq!(line_col(t, 100), (3, 2));
    }
}
