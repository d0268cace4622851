//! Property values on the worker's wire: JSON, with Roundup's types tagged so
//! that the worker hands detectors real `roundup.date.Date`, `date.Interval` and
//! `password.Password` objects (see `worker.py`). Links are id strings and
//! Multilinks lists of them, as in Roundup.

use crate::error::Error;
use crate::hyperdb::date::Date;
use crate::hyperdb::interval::Interval;
use crate::schema::PropType;
use crate::store::{Id, PropValue};
use base64::Engine as _;
use serde_json::{json, Value as J};

/// How Booleans and Numbers look to Python: they differ between what a client's
/// arguments become and what Roundup's SQLite backend reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// As `props_from_args` builds newvalues: Boolean `bool`, Number `float`.
    NewValues,
    /// As `cl.get` returns stored values on SQLite: Boolean `0`/`1`, a whole
    /// Number as `int`.
    Stored,
}

/// An id as Roundup shows it.
pub fn id_text(id: Id) -> J {
    J::String(id.to_string())
}

/// A property value (None is `null`).
pub fn encode(v: Option<&PropValue>, style: Style) -> J {
    let Some(v) = v else { return J::Null };
    match v {
        PropValue::String(s) => J::String(s.clone()),
        PropValue::Password(p) => json!({ "$p": p }),
        PropValue::Date(d) => json!({ "$d": d.serialise() }),
        PropValue::Interval(i) => json!({ "$i": i.to_string() }),
        PropValue::Link(id) => id_text(*id),
        PropValue::Multilink(ids) => J::Array(ids.iter().map(|i| id_text(*i)).collect()),
        PropValue::Boolean(b) => match style {
            Style::NewValues => J::Bool(*b),
            Style::Stored => J::from(i64::from(*b)),
        },
        PropValue::Number(n) => {
            if style == Style::Stored && n.fract() == 0.0 && n.abs() < 9.0e15 {
                J::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n).map_or(J::Null, J::Number)
            }
        }
        PropValue::Integer(i) => J::from(*i),
    }
}

/// FileClass content: a `str` when it is UTF-8 text (what a client's string
/// argument gives), else `bytes`.
pub fn encode_content(content: &[u8]) -> J {
    match std::str::from_utf8(content) {
        Ok(s) => J::String(s.to_string()),
        Err(_) => encode_bytes(content),
    }
}

/// Bytes, tagged.
pub fn encode_bytes(b: &[u8]) -> J {
    json!({ "$b": base64::engine::general_purpose::STANDARD.encode(b) })
}

/// The one tagged value of `v`, if it is `{"<tag>": "<text>"}`.
fn tagged<'v>(v: &'v J, tag: &str) -> Option<&'v str> {
    match v {
        J::Object(m) if m.len() == 1 => m.get(tag).and_then(J::as_str),
        _ => None,
    }
}

/// FileClass content from the worker: `str` or tagged bytes.
pub fn decode_content(v: &J) -> Result<Vec<u8>, Error> {
    if let J::String(s) = v {
        return Ok(s.as_bytes().to_vec());
    }
    tagged(v, "$b")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .ok_or_else(|| Error::TypeError("new property \"content\" not a string".into()))
}

/// An id string from the worker; one that cannot name an item of `target` gives
/// Roundup's `IndexError('<target> has no node <v>')`.
pub fn decode_id(v: &str, target: &str) -> Result<Id, Error> {
    v.parse::<Id>()
        .ok()
        .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| Error::IndexError(format!("{target} has no node {v}")))
}

/// A value of property `prop` (of type `kind`) from the worker, which has already
/// checked it as Roundup's `create_inner`/`set_inner` do; anything else is
/// refused with a `TypeError`.
pub fn decode(prop: &str, kind: &PropType, v: &J) -> Result<Option<PropValue>, Error> {
    if v.is_null() {
        return Ok(match kind {
            PropType::Multilink { .. } => Some(PropValue::Multilink(Vec::new())),
            _ => None,
        });
    }
    let bad = |what: &str| Error::TypeError(format!("new property \"{prop}\" not {what}"));
    Ok(Some(match kind {
        PropType::String { .. } => {
            PropValue::String(v.as_str().ok_or_else(|| bad("a string"))?.to_string())
        }
        PropType::Password => PropValue::Password(
            tagged(v, "$p")
                .ok_or_else(|| bad("a Password"))?
                .to_string(),
        ),
        PropType::Date => PropValue::Date(
            tagged(v, "$d")
                .and_then(Date::from_serialised)
                .ok_or_else(|| bad("a Date"))?,
        ),
        PropType::Interval => PropValue::Interval(
            tagged(v, "$i")
                .and_then(Interval::from_stored)
                .ok_or_else(|| bad("an Interval"))?,
        ),
        PropType::Link { class, .. } => {
            PropValue::Link(decode_id(v.as_str().ok_or_else(|| bad("a link"))?, class)?)
        }
        PropType::Multilink { class, .. } => {
            let items = v.as_array().ok_or_else(|| bad("an iterable of ids"))?;
            let mut ids = Vec::with_capacity(items.len());
            for item in items {
                ids.push(decode_id(
                    item.as_str().ok_or_else(|| bad("an iterable of ids"))?,
                    class,
                )?);
            }
            ids.sort_unstable();
            ids.dedup();
            PropValue::Multilink(ids)
        }
        PropType::Boolean => PropValue::Boolean(match v {
            J::Bool(b) => *b,
            J::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
            _ => return Err(bad("boolean")),
        }),
        PropType::Number => PropValue::Number(v.as_f64().ok_or_else(|| bad("numeric"))?),
        PropType::Integer => match v {
            J::Number(n) => PropValue::Integer(n.as_i64().ok_or_else(|| {
                Error::OverflowError("Python int too large to convert to SQLite INTEGER".into())
            })?),
            _ => return Err(bad("integer")),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(kind: PropType, v: PropValue) {
        let j = encode(Some(&v), Style::NewValues);
        assert_eq!(decode("p", &kind, &j).expect("decodes"), Some(v));
    }

    #[test]
    fn every_type_round_trips() {
        round_trip(
            PropType::String { indexme: false },
            PropValue::String("é\"x".into()),
        );
        round_trip(
            PropType::Password,
            PropValue::Password("{PBKDF2S5}1$ab$cd".into()),
        );
        let d = Date::from_serialised("20240102030405.678").expect("date");
        round_trip(PropType::Date, PropValue::Date(d));
        let i = Interval::from_stored("- 1d 2:03:04").expect("interval");
        round_trip(PropType::Interval, PropValue::Interval(i));
        let link = PropType::Link {
            class: "user".into(),
            do_journal: true,
        };
        round_trip(link, PropValue::Link(3));
        let ml = PropType::Multilink {
            class: "user".into(),
            do_journal: true,
        };
        round_trip(ml, PropValue::Multilink(vec![1, 10]));
        round_trip(PropType::Boolean, PropValue::Boolean(true));
        round_trip(PropType::Number, PropValue::Number(2.5));
        round_trip(PropType::Integer, PropValue::Integer(-7));
    }

    #[test]
    fn stored_style_matches_roundups_sqlite_reads() {
        assert_eq!(
            encode(Some(&PropValue::Boolean(true)), Style::Stored),
            json!(1)
        );
        assert_eq!(
            encode(Some(&PropValue::Number(3.0)), Style::Stored),
            json!(3)
        );
        assert_eq!(
            encode(Some(&PropValue::Number(3.5)), Style::Stored),
            json!(3.5)
        );
        assert_eq!(
            encode(Some(&PropValue::Number(3.0)), Style::NewValues),
            json!(3.0)
        );
    }

    #[test]
    fn bad_values_get_roundups_errors() {
        let link = PropType::Link {
            class: "status".into(),
            do_journal: true,
        };
        assert_eq!(
            decode("status", &link, &json!("99999999999999999999999")),
            Err(Error::IndexError(
                "status has no node 99999999999999999999999".into()
            ))
        );
        assert!(matches!(
            decode("title", &PropType::String { indexme: false }, &json!(5)),
            Err(Error::TypeError(_))
        ));
        assert!(matches!(
            decode("n", &PropType::Integer, &json!(1e30)),
            Err(Error::OverflowError(_))
        ));
        let ml = PropType::Multilink {
            class: "user".into(),
            do_journal: true,
        };
        assert_eq!(
            decode("nosy", &ml, &json!(["3", "1", "3"])),
            Ok(Some(PropValue::Multilink(vec![1, 3])))
        );
        assert_eq!(
            decode("nosy", &ml, &J::Null),
            Ok(Some(PropValue::Multilink(vec![])))
        );
    }

    #[test]
    fn content_is_text_when_it_can_be() {
        assert_eq!(encode_content(b"hi"), json!("hi"));
        let bin = encode_content(&[0xff, 0]);
        assert_eq!(decode_content(&bin).expect("bytes"), vec![0xff, 0]);
    }
}
