//! Log lines: their two formats and the client-chosen text in them.
//!
//! [`init`] installs the subscriber: one line per event on stderr, as text
//! (`key=value` pairs) or as JSON ([`Format`], `--log-format`; [`set_format`]
//! switches between them once the trackers' `[xmlrpc_server] log_format` is known).
//! Durations are logged in one unit everywhere, milliseconds ([`millis`], the
//! `duration_ms` field).
//!
//! Every string a client picked (request path, user name, method names, header-derived
//! values) goes through [`field`] before it reaches a log line, so that no client can
//! start a line of its own (control characters, newlines and Unicode line separators
//! are escaped), inject a fake `key=value` pair (values with spaces, quotes or `=` are
//! quoted) or write huge lines (each value is cut at [`MAX_FIELD_CHARS`] characters).
//! In JSON the value is the client's text itself, cut at the same length: JSON's
//! string escaping keeps it inside its field, and the JSON writer also escapes
//! DEL, the C1 controls, the Unicode line separators and the bidirectional controls
//! (as `\uXXXX`), so that no raw control character reaches a terminal.
//! [`method_list`] bounds the method names of a `system.multicall`.
//!
//! Use the wrappers with tracing's `%` (Display); `%` alone prints a `String` raw.

use std::fmt::{self, Write};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Characters of one client-chosen value kept in a log line; the rest is replaced
/// by a `…(N more bytes)` marker.
pub const MAX_FIELD_CHARS: usize = 200;

/// Method names of a `system.multicall` listed in its log line; the others are
/// counted (`+N more`).
pub const MAX_LOGGED_METHODS: usize = 5;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `2025-01-01T00:00:00.000000Z  INFO call peer=… tracker=demo …` (the default).
    #[default]
    Text,
    /// One JSON object a line: `timestamp`, `level`, `message` and the event's fields.
    Json,
}

impl Format {
    /// The name used by `--log-format` and `[xmlrpc_server] log_format`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
        }
    }
}

/// True while lines are written as JSON (see [`set_format`]).
static JSON: AtomicBool = AtomicBool::new(false);

/// Switches the format of the lines that follow (the subscriber of [`init`] has
/// both formats and writes one of them).
pub fn set_format(format: Format) {
    JSON.store(format == Format::Json, Ordering::Relaxed);
}

/// The format lines are written in now.
pub fn format() -> Format {
    if JSON.load(Ordering::Relaxed) {
        Format::Json
    } else {
        Format::Text
    }
}

/// A duration in milliseconds, rounded to the microsecond: the one unit of every
/// `duration_ms` field.
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Installs the process's subscriber: events at `default_level` and above (unless
/// `RUST_LOG` says otherwise) go to stderr, one line each, in `format` (changed later
/// with [`set_format`]). Text has colours only when `ansi`. Does nothing if a
/// subscriber is installed already.
pub fn init(default_level: &str, format: Format, ansi: bool) {
    use tracing_subscriber::filter::{dynamic_filter_fn, EnvFilter};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    set_format(format);
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let text = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .with_filter(dynamic_filter_fn(|_, _| !JSON.load(Ordering::Relaxed)));
    let json = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_writer(|| JsonSafe(io::stderr()))
        .with_filter(dynamic_filter_fn(|_, _| JSON.load(Ordering::Relaxed)));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .try_init();
}

/// True for the characters the JSON writer escapes although JSON allows them raw:
/// DEL, the C1 controls, the line and paragraph separators and the bidirectional
/// controls (the C0 controls JSON escapes itself).
fn json_unsafe(c: char) -> bool {
    needs_escape(c) && !c.is_ascii_control() || c == '\u{7f}'
}

/// Writes JSON lines with the characters of `json_unsafe` as `\uXXXX` escapes. They
/// can only occur inside JSON strings (keys and structure are ASCII), where the
/// escape means the same character: the line still decodes to exactly what was
/// logged.
pub struct JsonSafe<W>(pub W);

impl<W: io::Write> io::Write for JsonSafe<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = match std::str::from_utf8(buf) {
            Ok(text) if text.chars().any(json_unsafe) => text,
            // Nothing to escape (or not text at all, which the JSON formatter never
            // writes): as it is.
            _ => return self.0.write_all(buf).map(|()| buf.len()),
        };
        let mut out = String::with_capacity(text.len() + 16);
        for c in text.chars() {
            if json_unsafe(c) {
                // Every such character is in the Basic Multilingual Plane.
                let _ = write!(out, "\\u{:04x}", c as u32);
            } else {
                out.push(c);
            }
        }
        self.0.write_all(out.as_bytes()).map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

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
        write_field(f, self.0, format())
    }
}

/// Writes `s` as a value of a `format` line: cut at [`MAX_FIELD_CHARS`] characters;
/// in text escaped and quoted when needed, in JSON as it is (the JSON writer escapes).
fn write_field(f: &mut impl Write, s: &str, format: Format) -> fmt::Result {
    let (kept, rest) = match s.char_indices().nth(MAX_FIELD_CHARS) {
        Some((at, _)) => (&s[..at], s.len() - at),
        None => (s, 0),
    };
    if format == Format::Json {
        f.write_str(kept)?;
        if rest > 0 {
            write!(f, "…({rest} more bytes)")?;
        }
        return Ok(());
    }
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
        shown(s, Format::Text)
    }

    fn shown(s: &str, format: Format) -> String {
        let mut out = String::new();
        write_field(&mut out, s, format).expect("writes to a String");
        out
    }

    /// What the JSON writer makes of `line`.
    fn json_safe(line: &str) -> String {
        use std::io::Write as _;
        let mut w = JsonSafe(Vec::new());
        w.write_all(line.as_bytes()).expect("writes to a Vec");
        String::from_utf8(w.0).expect("UTF-8 out")
    }

    #[test]
    fn json_values_are_raw_but_bounded() {
        assert_eq!(shown("joe outcome=ok", Format::Json), "joe outcome=ok");
        assert_eq!(shown("a\nb\"c", Format::Json), "a\nb\"c");
        let out = shown(&"x".repeat(100_000), Format::Json);
        assert!(out.len() < 300, "{}", out.len());
        assert!(out.ends_with(&format!("…({} more bytes)", 100_000 - MAX_FIELD_CHARS)));
    }

    #[test]
    fn the_json_writer_escapes_what_json_leaves_raw() {
        assert_eq!(json_safe("{\"a\":\"plain é\"}\n"), "{\"a\":\"plain é\"}\n");
        assert_eq!(
            json_safe("{\"u\":\"x\u{85}y\u{2028}z\u{202e}w\u{7f}\"}\n"),
            "{\"u\":\"x\\u0085y\\u2028z\\u202ew\\u007f\"}\n"
        );
        // A real JSON line survives the round trip.
        let value = "joe\n\u{85}\u{2066}\"}";
        let line = format!("{{\"user\":{}}}\n", json_string(value));
        let safe = json_safe(&line);
        assert_eq!(safe.lines().count(), 1);
        assert!(
            !safe.chars().any(|c| c.is_control() && c != '\n'),
            "{safe:?}"
        );
        assert!(!safe.chars().any(json_unsafe));
    }

    /// A JSON string literal the way serde_json writes one (C0 escaped, the rest raw).
    fn json_string(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn durations_are_milliseconds() {
        assert_eq!(millis(Duration::from_micros(1234)), 1.234);
        assert_eq!(millis(Duration::from_secs(3)), 3000.0);
        assert_eq!(millis(Duration::from_nanos(1_234_567)), 1.235);
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
