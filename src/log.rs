//! Client-chosen text in log lines: escaped and bounded.
//!
//! Every string a client picked (request path, user name, method names, header-derived
//! values) goes through [`field`] before it reaches a log line, so that no client can
//! start a line of its own (control characters, newlines and Unicode line separators
//! are escaped), inject a fake `key=value` pair (values with spaces, quotes or `=` are
//! quoted) or write huge lines (each value is cut at [`MAX_FIELD_CHARS`] characters).
//! [`method_list`] bounds the method names of a `system.multicall`.
//!
//! Use the wrappers with tracing's `%` (Display); `%` alone prints a `String` raw.

use std::fmt::{self, Write};

/// Characters of one client-chosen value kept in a log line; the rest is replaced
/// by a `…(N more bytes)` marker.
pub const MAX_FIELD_CHARS: usize = 200;

/// Method names of a `system.multicall` listed in its log line; the others are
/// counted (`+N more`).
pub const MAX_LOGGED_METHODS: usize = 5;

/// A client-chosen value, displayed escaped and bounded (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Field<'a>(&'a str);

/// Wraps a client-chosen string for a log line.
pub fn field(s: &str) -> Field<'_> {
    Field(s)
}

/// True for characters that are escaped: control characters (C0, DEL, C1), Unicode
/// line and paragraph separators, and the bidirectional overrides and isolates that
/// can make a terminal show text in another order than it is stored.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// True when the value must be quoted to stay one unambiguous `key=value` token.
fn needs_quotes(s: &str) -> bool {
    s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '=' | '\\') || needs_escape(c))
}

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kept, rest) = match self.0.char_indices().nth(MAX_FIELD_CHARS) {
            Some((at, _)) => (&self.0[..at], self.0.len() - at),
            None => (self.0, 0),
        };
        let quote = needs_quotes(kept);
        if quote {
            f.write_char('"')?;
        }
        for c in kept.chars() {
            match c {
                '"' if quote => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if needs_escape(c) => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        if rest > 0 {
            write!(f, "…({rest} more bytes)")?;
        }
        if quote {
            f.write_char('"')?;
        }
        Ok(())
    }
}

/// The method names of a call for its log line: the name itself, or for a
/// `system.multicall` its first [`MAX_LOGGED_METHODS`] sub-call names (each escaped
/// and bounded like a [`field`]) and how many more there are.
pub fn method_list<'a>(name: &'a str, multicall_names: &'a [&'a str]) -> MethodList<'a> {
    MethodList {
        name,
        inner: multicall_names,
    }
}

/// See [`method_list`].
#[derive(Debug, Clone, Copy)]
pub struct MethodList<'a> {
    name: &'a str,
    inner: &'a [&'a str],
}

impl fmt::Display for MethodList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name != "system.multicall" {
            return field(self.name).fmt(f);
        }
        f.write_str("system.multicall[")?;
        for (i, name) in self.inner.iter().take(MAX_LOGGED_METHODS).enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            field(name).fmt(f)?;
        }
        if self.inner.len() > MAX_LOGGED_METHODS {
            write!(f, ",+{} more", self.inner.len() - MAX_LOGGED_METHODS)?;
        }
        f.write_char(']')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(s: &str) -> String {
        field(s).to_string()
    }

    #[test]
    fn plain_values_are_unchanged() {
        assert_eq!(show("admin"), "admin");
        assert_eq!(show("/demo/xmlrpc"), "/demo/xmlrpc");
        assert_eq!(show("système"), "système");
    }

    #[test]
    fn line_breaks_and_controls_are_escaped() {
        assert_eq!(show("a\nb"), "\"a\\nb\"");
        assert_eq!(
            show("a\r\n2024-01-01 INFO forged"),
            "\"a\\r\\n2024-01-01 INFO forged\""
        );
        assert_eq!(show("\x1b[31mred"), "\"\\u{1b}[31mred\"");
        assert_eq!(show("x\u{85}y"), "\"x\\u{85}y\"");
        assert_eq!(show("x\u{2028}y"), "\"x\\u{2028}y\"");
        assert_eq!(show("\u{202e}txt"), "\"\\u{202e}txt\"");
        assert_eq!(show("nul\0"), "\"nul\\u{0}\"");
        for s in ["a\nb", "\r", "\u{2029}", "\x0b\x0c"] {
            let out = show(s);
            assert!(!out.chars().any(needs_escape), "{out:?}");
        }
    }

    #[test]
    fn fake_fields_are_quoted() {
        assert_eq!(show("joe outcome=ok"), "\"joe outcome=ok\"");
        assert_eq!(show("a\"b"), "\"a\\\"b\"");
        assert_eq!(show("back\\slash"), "\"back\\\\slash\"");
        assert_eq!(show(""), "\"\"");
    }

    #[test]
    fn long_values_are_cut() {
        let long = "x".repeat(100_000);
        let out = show(&long);
        assert!(out.len() < 300, "{}", out.len());
        assert!(out.ends_with(&format!("…({} more bytes)", 100_000 - MAX_FIELD_CHARS)));
        // Cut on a character boundary.
        let wide = "é".repeat(1000);
        let out = show(&wide);
        assert!(out.starts_with(&"é".repeat(MAX_FIELD_CHARS)));
        assert!(out.contains(&format!("({} more bytes)", 2000 - 2 * MAX_FIELD_CHARS)));
    }

    #[test]
    fn multicall_lists_a_few_names_then_a_count() {
        assert_eq!(method_list("display", &[]).to_string(), "display");
        assert_eq!(
            method_list("system.multicall", &["list", "display"]).to_string(),
            "system.multicall[list,display]"
        );
        let names: Vec<String> = (0..1000)
            .map(|i| format!("m{i}\n{}", "y".repeat(500)))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let out = method_list("system.multicall", &refs).to_string();
        assert!(out.ends_with(",+995 more]"), "{out}");
        assert!(!out.contains('\n'));
        assert!(out.len() < 2_000, "{}", out.len());
    }

    #[test]
    fn a_hostile_method_name_cannot_start_a_line() {
        let out = method_list("x\n2025-01-01T00:00:00Z  INFO call user=admin", &[]).to_string();
        assert!(!out.contains('\n'));
        assert!(out.starts_with('"'));
    }
}
