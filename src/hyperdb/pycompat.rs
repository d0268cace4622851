//! Small re-implementations of the Python built-ins that `roundup.date` leans on.
//!
//! Roundup's messages embed `repr()` of client strings, its regular expressions use
//! Python's notion of `\s` and `\d`, and it converts captured digits with `int()` and
//! `float()`. These helpers reproduce those behaviours closely enough for the texts and
//! values to match byte for byte in all practical cases.

use regex::Regex;
use std::sync::OnceLock;

/// Python's `str.isspace()`: Unicode White_Space plus the ASCII separators 0x1C..0x1F.
pub(crate) fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` without arguments.
pub(crate) fn py_strip(s: &str) -> &str {
    s.trim_matches(py_isspace)
}

/// Regex fragment for Python's `\s` (to be used inside or outside a character class
/// via [`WS`]): Rust's `\s` lacks 0x1C..0x1F.
pub(crate) const WS: &str = r"\s\x1C-\x1F";

/// Whether a non-ASCII character is printable in the sense of Python's `repr()`.
///
/// Python consults the full Unicode database; this covers the categories that matter in
/// practice (controls, separators other than space, format characters, private use).
/// Unassigned code points are treated as printable (Python escapes them).
fn py_isprintable_nonascii(c: char) -> bool {
    let u = c as u32;
    !matches!(u,
        0x80..=0xa0
        | 0xad
        | 0x600..=0x605
        | 0x61c
        | 0x6dd
        | 0x70f
        | 0x890..=0x891
        | 0x8e2
        | 0x1680
        | 0x180e
        | 0x2000..=0x200f
        | 0x2028..=0x202f
        | 0x205f..=0x2064
        | 0x2066..=0x206f
        | 0x3000
        | 0xd800..=0xf8ff
        | 0xfeff
        | 0xfff9..=0xfffb
        | 0x110bd
        | 0x110cd
        | 0x13430..=0x1343f
        | 0x1bca0..=0x1bca3
        | 0x1d173..=0x1d17a
        | 0xe0001
        | 0xe0020..=0xe007f
        | 0xf0000..=0xffffd
        | 0x100000..=0x10fffd
    )
}

/// Python's `repr()` of a `str`: quotes chosen as Python does, escapes for backslash,
/// the quote, `\t` `\n` `\r`, other controls and non-printable characters.
pub(crate) fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (c as u32) < 0x7f => out.push(c),
            c if py_isprintable_nonascii(c) => out.push(c),
            c => {
                let u = c as u32;
                if u <= 0xff {
                    out.push_str(&format!("\\x{u:02x}"));
                } else if u <= 0xffff {
                    out.push_str(&format!("\\u{u:04x}"));
                } else {
                    out.push_str(&format!("\\U{u:08x}"));
                }
            }
        }
    }
    out.push(quote);
    out
}

fn is_unicode_digit(c: char) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| compile(r"^\d$"));
    let mut buf = [0u8; 4];
    re.is_match(c.encode_utf8(&mut buf))
}

/// The value of a Unicode decimal digit (general category Nd), as Python's `int()` sees it.
///
/// Unicode guarantees that Nd characters come in contiguous runs of ten, 0 through 9, so
/// the value is the distance from the start of the contiguous Nd block modulo 10.
pub(crate) fn decimal_value(c: char) -> Option<u32> {
    if c.is_ascii_digit() {
        return Some(c as u32 - '0' as u32);
    }
    if c.is_ascii() || !is_unicode_digit(c) {
        return None;
    }
    let mut start = c as u32;
    while let Some(prev) = start.checked_sub(1).and_then(char::from_u32) {
        if !is_unicode_digit(prev) {
            break;
        }
        start -= 1;
    }
    Some((c as u32 - start) % 10)
}

/// Replace every Unicode decimal digit by its ASCII equivalent (other characters kept).
pub(crate) fn ascii_digits(s: &str) -> String {
    s.chars()
        .map(|c| match decimal_value(c) {
            Some(v) if !c.is_ascii_digit() => char::from_digit(v, 10).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// Outcome of Python's `int(s)` for a string, clamped into `i64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PyInt {
    /// The value fits an `i64`.
    Value(i64),
    /// The value is larger than `i64::MAX` (positive) or smaller than `i64::MIN`.
    Huge(bool),
}

/// Python's `int(s)` (base 10): surrounding whitespace, an optional sign, Unicode digits
/// with single underscores between them. `None` where Python raises ValueError.
pub(crate) fn py_int(s: &str) -> Option<PyInt> {
    let s = py_strip(s);
    let (neg, body) = match s.chars().next() {
        Some('-') => (true, &s[1..]),
        Some('+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let mut value: i128 = 0;
    let mut huge = false;
    let mut prev_underscore = true; // a leading underscore is invalid
    for c in body.chars() {
        if c == '_' {
            if prev_underscore {
                return None;
            }
            prev_underscore = true;
            continue;
        }
        let d = decimal_value(c)?;
        prev_underscore = false;
        if !huge {
            value = value * 10 + i128::from(d);
            if value > i128::from(i64::MAX) + 1 {
                huge = true;
            }
        }
    }
    if prev_underscore {
        return None;
    }
    let value = if neg { -value } else { value };
    if huge {
        return Some(PyInt::Huge(!neg));
    }
    match i64::try_from(value) {
        Ok(v) => Some(PyInt::Value(v)),
        Err(_) => Some(PyInt::Huge(!neg)),
    }
}

/// `int()` of a regex capture made of (Unicode) digits and surrounding whitespace;
/// `None` when it does not fit an `i64`.
pub(crate) fn digits_i64(s: &str) -> Option<i64> {
    match py_int(s)? {
        PyInt::Value(v) => Some(v),
        PyInt::Huge(_) => None,
    }
}

/// The text of the named group `name` of `c`, if it matched.
pub(crate) fn cap<'a>(c: &regex::Captures<'a>, name: &str) -> Option<&'a str> {
    c.name(name).map(|m| m.as_str())
}

/// Compile one of the module's fixed regular expressions.
pub(crate) fn compile(pattern: &str) -> Regex {
    match Regex::new(pattern) {
        Ok(re) => re,
        Err(e) => panic!("invalid built-in regex {pattern:?}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_python() {
        assert_eq!(py_repr("garbage"), "'garbage'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(py_repr("a\\b\n\t\r\x01\x7f"), "'a\\\\b\\n\\t\\r\\x01\\x7f'");
        assert_eq!(py_repr("é\u{a0}\u{2028}😀"), "'é\\xa0\\u2028😀'");
    }

    #[test]
    fn int_matches_python() {
        assert_eq!(py_int(" 5 "), Some(PyInt::Value(5)));
        assert_eq!(py_int("+5"), Some(PyInt::Value(5)));
        assert_eq!(py_int("-0"), Some(PyInt::Value(0)));
        assert_eq!(py_int("1_0"), Some(PyInt::Value(10)));
        assert_eq!(py_int("٥"), Some(PyInt::Value(5)));
        assert_eq!(py_int("１２"), Some(PyInt::Value(12)));
        assert_eq!(py_int("_1"), None);
        assert_eq!(py_int("1__0"), None);
        assert_eq!(py_int("1_"), None);
        assert_eq!(py_int("5.5"), None);
        assert_eq!(py_int(""), None);
        assert_eq!(py_int("-"), None);
        assert_eq!(py_int("99999999999999999999"), Some(PyInt::Huge(true)));
        assert_eq!(py_int("-99999999999999999999"), Some(PyInt::Huge(false)));
        assert_eq!(py_int("-9223372036854775808"), Some(PyInt::Value(i64::MIN)));
    }
}
