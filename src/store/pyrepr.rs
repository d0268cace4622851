//! Python `repr()` text, for the rows Roundup stores as Python literals: the
//! `schema` table and journal `params`. Python Roundup `eval`s these, so they must
//! be valid Python and look exactly as Roundup writes them.

use std::fmt::Write;

/// Python's `repr(str)`: single quotes unless the text contains `'` and no `"`.
pub fn str_repr(s: &str) -> String {
    crate::hyperdb::pycompat::py_repr(s)
}

/// Python 3's `repr(s.encode('utf-8'))[1:]`: how Roundup's `repr_export` writes a
/// string (Python 2 style) — ASCII kept, other bytes as `\xNN`.
pub fn bytes_repr(s: &str) -> String {
    let b = s.as_bytes();
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(b.len() + 2);
    out.push(quote);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if c as char == quote => {
                out.push('\\');
                out.push(c as char);
            }
            0x20..=0x7e => out.push(c as char),
            c => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
    out.push(quote);
    out
}

/// Python's `repr(float)`: the shortest text that reads back the same value,
/// `1.0` for integral values, exponent form outside `1e-4 <= |x| < 1e16`.
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Shortest round-trip digits and exponent from Rust's formatter.
    let sci = format!("{x:e}"); // e.g. "-1.2345e-7"
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if !(-4..16).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// The Python repr of one class's entry in the `schema` row:
/// `('key', [('prop', '<roundup.hyperdb.X>'), ...])`.
pub fn class_spec_repr(class: &crate::schema::ClassDef) -> String {
    let props: Vec<String> = class
        .properties
        .iter()
        .map(|p| format!("({}, {})", str_repr(&p.name), str_repr(&p.kind.repr())))
        .collect();
    format!(
        "({}, [{}])",
        str_repr(class.key.as_deref().unwrap_or("")),
        props.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_quote_like_python() {
        assert_eq!(str_repr("abc"), "'abc'");
        assert_eq!(str_repr("it's"), "\"it's\"");
        assert_eq!(str_repr("both ' and \""), "'both \\' and \"'");
        assert_eq!(
            str_repr("a\nb\\c\x01é\u{2028}"),
            "'a\\nb\\\\c\\x01é\\u2028'"
        );
    }

    #[test]
    fn bytes_like_python2_export() {
        assert_eq!(bytes_repr("Joe \u{dc}ser"), "'Joe \\xc3\\x9cser'");
        assert_eq!(bytes_repr("it's"), "\"it's\"");
        assert_eq!(bytes_repr("a\tb"), "'a\\tb'");
    }

    #[test]
    fn floats_like_python() {
        for (x, s) in [
            (1.0, "1.0"),
            (3.5, "3.5"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (123456.789, "123456.789"),
            (f64::INFINITY, "inf"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ] {
            assert_eq!(float_repr(x), s, "{x}");
        }
    }
}

/// A Python literal as Roundup writes them (enough for the `schema` row).
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    /// `None`
    None,
    /// `True` / `False`
    Bool(bool),
    /// An int.
    Int(i64),
    /// A float.
    Float(f64),
    /// A str.
    Str(String),
    /// A tuple.
    Tuple(Vec<PyValue>),
    /// A list.
    List(Vec<PyValue>),
    /// A dict, in order.
    Dict(Vec<(PyValue, PyValue)>),
}

impl PyValue {
    /// Python's repr of the value.
    pub fn repr(&self) -> String {
        match self {
            PyValue::None => "None".into(),
            PyValue::Bool(b) => if *b { "True" } else { "False" }.into(),
            PyValue::Int(i) => i.to_string(),
            PyValue::Float(f) => float_repr(*f),
            PyValue::Str(s) => str_repr(s),
            PyValue::Tuple(v) => {
                let items: Vec<String> = v.iter().map(PyValue::repr).collect();
                if items.len() == 1 {
                    format!("({},)", items[0])
                } else {
                    format!("({})", items.join(", "))
                }
            }
            PyValue::List(v) => {
                let items: Vec<String> = v.iter().map(PyValue::repr).collect();
                format!("[{}]", items.join(", "))
            }
            PyValue::Dict(v) => {
                let items: Vec<String> = v
                    .iter()
                    .map(|(k, x)| format!("{}: {}", k.repr(), x.repr()))
                    .collect();
                format!("{{{}}}", items.join(", "))
            }
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            PyValue::Str(s) => Some(s),
            _ => None,
        }
    }

    fn items(&self) -> Option<&[PyValue]> {
        match self {
            PyValue::Tuple(v) | PyValue::List(v) => Some(v),
            _ => None,
        }
    }
}

/// A parse failure of a Python literal.
#[derive(Debug, thiserror::Error)]
#[error("python literal: {0} at byte {1}")]
pub struct ParseError(pub &'static str, pub usize);

/// Parses a Python literal (str, int, float, None, True, False, tuple, list, dict).
pub fn parse(text: &str) -> Result<PyValue, ParseError> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
        depth: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(ParseError("trailing text", p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn value(&mut self) -> Result<PyValue, ParseError> {
        self.ws();
        self.depth += 1;
        if self.depth > 64 {
            return Err(ParseError("nested too deeply", self.i));
        }
        let v = match self.peek() {
            Some(b'\'') | Some(b'"') => PyValue::Str(self.string()?),
            Some(b'(') => {
                let (items, trailing_comma) = self.seq(b')')?;
                if items.len() == 1 && !trailing_comma {
                    items.into_iter().next().unwrap_or(PyValue::None)
                } else {
                    PyValue::Tuple(items)
                }
            }
            Some(b'[') => PyValue::List(self.seq(b']')?.0),
            Some(b'{') => self.dict()?,
            Some(_) => self.atom()?,
            None => return Err(ParseError("unexpected end", self.i)),
        };
        self.depth -= 1;
        Ok(v)
    }

    fn seq(&mut self, close: u8) -> Result<(Vec<PyValue>, bool), ParseError> {
        self.i += 1;
        let mut items = Vec::new();
        let mut trailing = false;
        loop {
            self.ws();
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok((items, trailing));
            }
            items.push(self.value()?);
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    trailing = true;
                }
                Some(c) if c == close => {
                    trailing = false;
                }
                _ => return Err(ParseError("expected , or close", self.i)),
            }
        }
    }

    fn dict(&mut self) -> Result<PyValue, ParseError> {
        self.i += 1;
        let mut items = Vec::new();
        loop {
            self.ws();
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(PyValue::Dict(items));
            }
            let k = self.value()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(ParseError("expected :", self.i));
            }
            self.i += 1;
            let v = self.value()?;
            items.push((k, v));
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err(ParseError("expected , or }", self.i)),
            }
        }
    }

    fn atom(&mut self) -> Result<PyValue, ParseError> {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || b"+-._".contains(&self.s[self.i]))
        {
            self.i += 1;
        }
        let word = &self.text[start..self.i];
        match word {
            "None" => Ok(PyValue::None),
            "True" => Ok(PyValue::Bool(true)),
            "False" => Ok(PyValue::Bool(false)),
            _ => {
                if let Ok(i) = word.parse::<i64>() {
                    Ok(PyValue::Int(i))
                } else if let Ok(f) = word.parse::<f64>() {
                    Ok(PyValue::Float(f))
                } else {
                    Err(ParseError("unknown literal", start))
                }
            }
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let quote = self.s[self.i];
        self.i += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.i..];
            let mut chars = rest.chars();
            let c = chars
                .next()
                .ok_or(ParseError("unterminated string", self.i))?;
            self.i += c.len_utf8();
            if c as u32 == quote as u32 {
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let e = chars.next().ok_or(ParseError("bad escape", self.i))?;
            self.i += e.len_utf8();
            match e {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                '\\' => out.push('\\'),
                '\'' => out.push('\''),
                '"' => out.push('"'),
                'x' | 'u' | 'U' => {
                    let n = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex = self
                        .text
                        .get(self.i..self.i + n)
                        .ok_or(ParseError("bad escape", self.i))?;
                    let code = u32::from_str_radix(hex, 16)
                        .map_err(|_| ParseError("bad escape", self.i))?;
                    out.push(char::from_u32(code).ok_or(ParseError("bad escape", self.i))?);
                    self.i += n;
                }
                _ => return Err(ParseError("unsupported escape", self.i)),
            }
        }
    }
}

/// One class entry of a stored `schema` row.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredClass {
    /// The key property, `""` for none.
    pub key: String,
    /// `(prop, repr)` pairs as stored.
    pub props: Vec<(String, String)>,
    /// The entry re-serialised (Python repr).
    pub raw: String,
}

impl StoredClass {
    /// True when `class` has the same key and the same set of `(prop, repr)`.
    pub fn same_as(&self, class: &crate::schema::ClassDef) -> bool {
        if self.key != class.key.clone().unwrap_or_default() {
            return false;
        }
        let mut mine: Vec<(String, String)> = class
            .properties
            .iter()
            .map(|p| (p.name.clone(), p.kind.repr()))
            .collect();
        mine.sort();
        let mut theirs = self.props.clone();
        theirs.sort();
        mine == theirs
    }
}

/// The decoded `schema` row.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSchema {
    /// `version`.
    pub version: i64,
    /// `tables`, in stored order.
    pub tables: Vec<(String, StoredClass)>,
}

/// Decodes the text of Roundup's `schema` row.
pub fn parse_schema_row(text: &str) -> Result<StoredSchema, ParseError> {
    let v = parse(text)?;
    let PyValue::Dict(top) = v else {
        return Err(ParseError("schema row is not a dict", 0));
    };
    let mut version = 1;
    let mut tables = Vec::new();
    for (k, v) in &top {
        match (k.as_str(), v) {
            (Some("version"), PyValue::Int(n)) => version = *n,
            (Some("tables"), PyValue::Dict(entries)) => {
                for (name, spec) in entries {
                    let name = name.as_str().ok_or(ParseError("class name", 0))?;
                    let parts = spec.items().ok_or(ParseError("class spec", 0))?;
                    let key = parts
                        .first()
                        .and_then(|k| k.as_str())
                        .unwrap_or("")
                        .to_string();
                    let mut props = Vec::new();
                    for p in parts.get(1).and_then(|p| p.items()).unwrap_or(&[]) {
                        let pair = p.items().ok_or(ParseError("prop spec", 0))?;
                        let (Some(n), Some(r)) = (
                            pair.first().and_then(|x| x.as_str()),
                            pair.get(1).and_then(|x| x.as_str()),
                        ) else {
                            return Err(ParseError("prop spec", 0));
                        };
                        props.push((n.to_string(), r.to_string()));
                    }
                    tables.push((
                        name.to_string(),
                        StoredClass {
                            key,
                            props,
                            raw: spec.repr(),
                        },
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(StoredSchema { version, tables })
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn roundtrips_a_schema_row() {
        let text = "{'version': 8, 'tables': {'status': ('name', [('name', '<roundup.hyperdb.String>'), ('order', '<roundup.hyperdb.Number>')]), 'query': ('', [('private_for', '<roundup.hyperdb.Link to \"user\">')])}}";
        let s = parse_schema_row(text).expect("parses");
        assert_eq!(s.version, 8);
        assert_eq!(s.tables[0].0, "status");
        assert_eq!(s.tables[0].1.key, "name");
        assert_eq!(
            s.tables[1].1.props[0].1,
            "<roundup.hyperdb.Link to \"user\">"
        );
        assert_eq!(parse(text).expect("parses").repr(), text);
    }

    #[test]
    fn single_tuple_and_escapes() {
        assert_eq!(
            parse("(('+', ['1']),)").expect("ok").repr(),
            "(('+', ['1']),)"
        );
        assert_eq!(
            parse("'a\\'b\\n'").expect("ok"),
            PyValue::Str("a'b\n".into())
        );
    }
}
