//! Hardened streaming decoder for `<methodCall>` documents.
//!
//! The body is read with xml-rs as a stream of events and turned into a
//! [`MethodCall`] by an explicit state machine (a `Vec` of frames, never
//! recursion), so hostile nesting cannot exhaust the Rust stack. Every limit in
//! [`Limits`] is checked as the events arrive, before anything unbounded is built:
//!
//! * the body size before parsing starts;
//! * the nesting depth of arrays/structs when an `<array>`/`<struct>` opens;
//! * the number of `<value>` elements when each one opens;
//! * string, name and base64 lengths on every text chunk (base64 is sized
//!   before it is decoded), and the total text kept, which may never exceed
//!   `max_body_bytes`;
//! * xml-rs itself is configured so that a single text run, tag name or
//!   attribute can never grow past the largest of those limits.
//!
//! DTDs are refused: any `<!DOCTYPE ...>` is an error, entity expansion is
//! switched off in the parser (expansion depth 0, no extra entities), and only
//! the five predefined entities and character references are understood.
//! Processing instructions and comments are ignored; CDATA is read as text.
//!
//! # Errors and fault codes
//!
//! | [`DecodeError`] variant | cause (examples) | fault code (made in `error.rs`) |
//! |---|---|---|
//! | `Parse` | not well-formed XML: invalid UTF-8, NUL or other illegal characters, truncated document, mismatched tags, junk after the root element | -32700 |
//! | `Forbidden` | `<!DOCTYPE>` / DTD, internal or external entity declarations, parameter entities, references to undefined entities | -32700 |
//! | `Invalid` | well-formed XML that is not an XML-RPC `<methodCall>`: wrong root, missing or empty `<methodName>`, unknown or misplaced elements, text where none is allowed, `<param>` without `<value>` | -32600 |
//! | `BadValue` | a scalar that cannot be converted: `<int>` outside 32 bits, `<i8>` outside 64 bits, boolean other than 0/1, malformed double or base64 | -32600 |
//! | `TooLarge` | a [`Limits`] bound was exceeded; the message names the limit (`max_body_bytes`, `max_depth`, `max_values`, `max_string_bytes`, `max_base64_bytes`, `max_name_bytes`) | -32600 |
//!
//! -32700 is the interoperability code for "parse error. not well formed" and
//! -32600 for "server error. invalid xml-rpc. not conforming to spec"
//! (<http://xmlrpc-epi.sourceforge.net/specs/rfc.fault_codes.php>). DTD and
//! entity refusals are reported as -32700 because, as with Python's defusedxml,
//! they are refused at the XML-parser level before any XML-RPC is looked at.

use std::collections::HashMap;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use xml::common::{Position, TextPosition};
use xml::reader::{ErrorKind, EventReader, ParserConfig, XmlEvent};

use super::value::{MethodCall, Value};

/// Limits enforced while reading a request.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted request body, in bytes (after gzip decoding).
    pub max_body_bytes: usize,
    /// Deepest nesting of arrays/structs.
    pub max_depth: usize,
    /// Most values in one request.
    pub max_values: usize,
    /// Longest string value, in bytes.
    pub max_string_bytes: usize,
    /// Largest decoded base64 value, in bytes.
    pub max_base64_bytes: usize,
    /// Longest method name or struct member name, in bytes.
    pub max_name_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 << 20,
            max_depth: 32,
            max_values: 100_000,
            max_string_bytes: 8 << 20,
            max_base64_bytes: 8 << 20,
            max_name_bytes: 256,
        }
    }
}

/// Longest text accepted inside `<int>`, `<boolean>`, `<double>` or
/// `<dateTime.iso8601>` (whitespace included); real values are a few dozen bytes.
const MAX_SCALAR_TEXT: usize = 4096;

/// Longest element or attribute name the XML parser accepts.
const MAX_XML_NAME: usize = 128;

/// Most attributes on one element (XML-RPC uses none; namespace declarations are attributes).
const MAX_XML_ATTRIBUTES: usize = 16;

/// Longest attribute value.
const MAX_XML_ATTRIBUTE: usize = 1024;

/// Why a request document was refused.
///
/// See the module documentation for the table of variants and fault codes.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not well-formed XML (bad encoding, illegal characters, truncated, junk after the root).
    #[error("parse error: {0}")]
    Parse(String),
    /// A DTD, an entity declaration or a reference to an undefined entity.
    #[error("forbidden XML construct: {0}")]
    Forbidden(String),
    /// Well-formed XML that is not a conforming XML-RPC `<methodCall>`.
    #[error("invalid XML-RPC request: {0}")]
    Invalid(String),
    /// A scalar value whose text cannot be converted (int overflow, bad boolean, double or base64).
    #[error("invalid XML-RPC value: {0}")]
    BadValue(String),
    /// A configured limit was exceeded; `limit` names it and `max` is its value.
    #[error("request too large: limit {limit} ({max}) exceeded")]
    TooLarge {
        /// Name of the exceeded limit, e.g. `max_depth`.
        limit: &'static str,
        /// The configured value of that limit.
        max: usize,
    },
}

impl DecodeError {
    fn located(self, pos: TextPosition) -> DecodeError {
        let at = |m: String| format!("{m} (line {}, column {})", pos.row + 1, pos.column + 1);
        match self {
            DecodeError::Invalid(m) => DecodeError::Invalid(at(m)),
            DecodeError::BadValue(m) => DecodeError::BadValue(at(m)),
            other => other,
        }
    }
}

fn invalid<T>(msg: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError::Invalid(msg.into()))
}

fn too_large<T>(limit: &'static str, max: usize) -> Result<T, DecodeError> {
    Err(DecodeError::TooLarge { limit, max })
}

/// The scalar element types, all of which hold only text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    Int32,
    Int64,
    Bool,
    Str,
    Double,
    DateTime,
    Base64,
}

impl Scalar {
    fn from_tag(tag: &str) -> Option<Scalar> {
        Some(match tag {
            "int" | "i4" | "i1" | "i2" => Scalar::Int32,
            "i8" | "biginteger" => Scalar::Int64,
            "boolean" => Scalar::Bool,
            "string" => Scalar::Str,
            "double" | "float" => Scalar::Double,
            "dateTime.iso8601" => Scalar::DateTime,
            "base64" => Scalar::Base64,
            _ => return None,
        })
    }

    fn tag(self) -> &'static str {
        match self {
            Scalar::Int32 => "int",
            Scalar::Int64 => "i8",
            Scalar::Bool => "boolean",
            Scalar::Str => "string",
            Scalar::Double => "double",
            Scalar::DateTime => "dateTime.iso8601",
            Scalar::Base64 => "base64",
        }
    }
}

/// One open element of the document, with whatever it is building.
#[derive(Debug)]
enum Frame {
    MethodCall {
        seen_name: bool,
        seen_params: bool,
    },
    MethodName,
    Params,
    Param {
        has_value: bool,
    },
    /// `had_child` is set once a typed element opened; `child` holds its value.
    Value {
        had_child: bool,
        child: Option<Value>,
    },
    Scalar(Scalar),
    Nil,
    Array {
        items: Option<Vec<Value>>,
    },
    Data {
        items: Vec<Value>,
    },
    Struct(StructBuilder),
    Member {
        name: Option<String>,
        value: Option<Value>,
    },
    Name,
}

impl Frame {
    fn tag(&self) -> &'static str {
        match self {
            Frame::MethodCall { .. } => "methodCall",
            Frame::MethodName => "methodName",
            Frame::Params => "params",
            Frame::Param { .. } => "param",
            Frame::Value { .. } => "value",
            Frame::Scalar(kind) => kind.tag(),
            Frame::Nil => "nil",
            Frame::Array { .. } => "array",
            Frame::Data { .. } => "data",
            Frame::Struct(_) => "struct",
            Frame::Member { .. } => "member",
            Frame::Name => "name",
        }
    }
}

/// Struct members in first-seen order; a repeated name replaces the earlier value
/// in place (Python dict semantics). Large structs get a hash index so duplicate
/// detection stays linear.
#[derive(Debug, Default)]
struct StructBuilder {
    members: Vec<(String, Value)>,
    index: Option<HashMap<String, usize>>,
}

impl StructBuilder {
    const LINEAR_MAX: usize = 16;

    fn insert(&mut self, name: String, value: Value) {
        if let Some(index) = &mut self.index {
            if let Some(&i) = index.get(&name) {
                self.members[i].1 = value;
            } else {
                index.insert(name.clone(), self.members.len());
                self.members.push((name, value));
            }
            return;
        }
        if let Some(slot) = self.members.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
            return;
        }
        self.members.push((name, value));
        if self.members.len() > Self::LINEAR_MAX {
            let index = self
                .members
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (n.clone(), i))
                .collect();
            self.index = Some(index);
        }
    }
}

struct Decoder<'l> {
    limits: &'l Limits,
    frames: Vec<Frame>,
    /// Text of the innermost text-holding element.
    text: String,
    /// Non-whitespace characters in `text` while inside `<base64>`.
    b64_chars: usize,
    /// All text bytes received so far.
    total_text: usize,
    values: usize,
    depth: usize,
    name: Option<String>,
    params: Vec<Value>,
    done: bool,
}

impl<'l> Decoder<'l> {
    fn new(limits: &'l Limits) -> Self {
        Decoder {
            limits,
            frames: Vec::with_capacity(16),
            text: String::new(),
            b64_chars: 0,
            total_text: 0,
            values: 0,
            depth: 0,
            name: None,
            params: Vec::new(),
            done: false,
        }
    }

    fn push_container(&mut self, frame: Frame) -> Result<(), DecodeError> {
        if self.depth >= self.limits.max_depth {
            return too_large("max_depth", self.limits.max_depth);
        }
        self.depth += 1;
        self.frames.push(frame);
        Ok(())
    }

    fn open_value(&mut self) -> Result<(), DecodeError> {
        if self.values >= self.limits.max_values {
            return too_large("max_values", self.limits.max_values);
        }
        self.values += 1;
        self.text.clear();
        self.frames.push(Frame::Value {
            had_child: false,
            child: None,
        });
        Ok(())
    }

    fn start(&mut self, tag: &str) -> Result<(), DecodeError> {
        let Some(top) = self.frames.last_mut() else {
            if self.done {
                return invalid("content after </methodCall>");
            }
            if tag != "methodCall" {
                return invalid(format!("root element is <{tag}>, expected <methodCall>"));
            }
            self.frames.push(Frame::MethodCall {
                seen_name: false,
                seen_params: false,
            });
            return Ok(());
        };
        match top {
            Frame::MethodCall {
                seen_name,
                seen_params,
            } => match tag {
                "methodName" if !*seen_name => {
                    self.text.clear();
                    self.frames.push(Frame::MethodName);
                }
                "params" if *seen_name && !*seen_params => self.frames.push(Frame::Params),
                "methodName" | "params" => {
                    return invalid(format!("unexpected or repeated <{tag}> in <methodCall>"))
                }
                _ => return invalid(format!("unexpected <{tag}> in <methodCall>")),
            },
            Frame::Params => match tag {
                "param" => self.frames.push(Frame::Param { has_value: false }),
                _ => return invalid(format!("unexpected <{tag}> in <params>")),
            },
            Frame::Param { has_value } => match tag {
                "value" if !*has_value => self.open_value()?,
                _ => return invalid(format!("unexpected <{tag}> in <param>")),
            },
            Frame::Data { .. } => match tag {
                "value" => self.open_value()?,
                _ => return invalid(format!("unexpected <{tag}> in <data>")),
            },
            Frame::Array { items } => match tag {
                "data" if items.is_none() => self.frames.push(Frame::Data { items: Vec::new() }),
                _ => return invalid(format!("unexpected <{tag}> in <array>")),
            },
            Frame::Struct(_) => match tag {
                "member" => self.frames.push(Frame::Member {
                    name: None,
                    value: None,
                }),
                _ => return invalid(format!("unexpected <{tag}> in <struct>")),
            },
            Frame::Member { name, value } => match tag {
                "name" if name.is_none() && value.is_none() => {
                    self.text.clear();
                    self.frames.push(Frame::Name);
                }
                "value" if name.is_some() && value.is_none() => self.open_value()?,
                _ => return invalid(format!("unexpected <{tag}> in <member>")),
            },
            Frame::Value { had_child, .. } => {
                if *had_child {
                    return invalid(format!("more than one element in <value> (<{tag}>)"));
                }
                if !is_xml_whitespace(&self.text) {
                    return invalid(format!("text mixed with <{tag}> in <value>"));
                }
                *had_child = true;
                self.text.clear();
                if let Some(kind) = Scalar::from_tag(tag) {
                    self.b64_chars = 0;
                    self.frames.push(Frame::Scalar(kind));
                } else {
                    match tag {
                        "nil" => self.frames.push(Frame::Nil),
                        "array" => self.push_container(Frame::Array { items: None })?,
                        "struct" => self.push_container(Frame::Struct(StructBuilder::default()))?,
                        _ => return invalid(format!("unknown value type <{tag}>")),
                    }
                }
            }
            Frame::MethodName | Frame::Name | Frame::Scalar(_) | Frame::Nil => {
                let parent = top.tag();
                return invalid(format!("unexpected <{tag}> in <{parent}>"));
            }
        }
        Ok(())
    }

    fn characters(&mut self, s: String) -> Result<(), DecodeError> {
        self.total_text = self.total_text.saturating_add(s.len());
        if self.total_text > self.limits.max_body_bytes {
            return too_large("max_body_bytes", self.limits.max_body_bytes);
        }
        let max = match self.frames.last() {
            Some(Frame::MethodName) | Some(Frame::Name) => {
                Some(("max_name_bytes", self.limits.max_name_bytes))
            }
            Some(Frame::Value {
                had_child: false, ..
            })
            | Some(Frame::Scalar(Scalar::Str)) => {
                Some(("max_string_bytes", self.limits.max_string_bytes))
            }
            Some(Frame::Scalar(Scalar::Base64)) => {
                self.b64_chars += s.bytes().filter(|b| !b.is_ascii_whitespace()).count();
                let decoded = self.b64_chars / 4 * 3 + (self.b64_chars % 4).saturating_sub(1);
                // Trailing '=' padding is not known yet; allow for up to two of them.
                if decoded > self.limits.max_base64_bytes.saturating_add(2) {
                    return too_large("max_base64_bytes", self.limits.max_base64_bytes);
                }
                None
            }
            Some(Frame::Scalar(_)) => Some(("scalar text length", MAX_SCALAR_TEXT)),
            Some(other) => {
                if is_xml_whitespace(&s) {
                    return Ok(());
                }
                return invalid(format!("unexpected text in <{}>", other.tag()));
            }
            None => return invalid("text outside the root element"),
        };
        if let Some((limit, max)) = max {
            if self.text.len().saturating_add(s.len()) > max {
                return too_large(limit, max);
            }
        }
        if self.text.is_empty() {
            self.text = s;
        } else {
            self.text.push_str(&s);
        }
        Ok(())
    }

    /// Hands a finished value to the `<value>` frame that encloses it.
    fn give_to_value(&mut self, v: Value) -> Result<(), DecodeError> {
        match self.frames.last_mut() {
            Some(Frame::Value { child, .. }) if child.is_none() => {
                *child = Some(v);
                Ok(())
            }
            _ => invalid("value element outside <value>"),
        }
    }

    fn end(&mut self) -> Result<(), DecodeError> {
        let Some(frame) = self.frames.pop() else {
            return invalid("unbalanced end tag");
        };
        match frame {
            Frame::MethodCall { seen_name, .. } => {
                if !seen_name {
                    return invalid("missing <methodName>");
                }
                self.done = true;
            }
            Frame::MethodName => {
                let name = std::mem::take(&mut self.text);
                if name.is_empty() {
                    return invalid("empty <methodName>");
                }
                self.name = Some(name);
                if let Some(Frame::MethodCall { seen_name, .. }) = self.frames.last_mut() {
                    *seen_name = true;
                }
            }
            Frame::Params => {
                if let Some(Frame::MethodCall { seen_params, .. }) = self.frames.last_mut() {
                    *seen_params = true;
                }
            }
            Frame::Param { has_value } => {
                if !has_value {
                    return invalid("<param> without <value>");
                }
            }
            Frame::Value { had_child, child } => {
                let v = if had_child {
                    match child {
                        Some(v) => v,
                        None => return invalid("empty <value> element"),
                    }
                } else {
                    Value::String(std::mem::take(&mut self.text))
                };
                match self.frames.last_mut() {
                    Some(Frame::Param { has_value }) => {
                        *has_value = true;
                        self.params.push(v);
                    }
                    Some(Frame::Data { items }) => items.push(v),
                    Some(Frame::Member { value, .. }) => *value = Some(v),
                    _ => return invalid("<value> in an unexpected place"),
                }
            }
            Frame::Scalar(kind) => {
                let v = self.convert_scalar(kind)?;
                self.give_to_value(v)?;
            }
            Frame::Nil => self.give_to_value(Value::Nil)?,
            Frame::Array { items } => {
                self.depth = self.depth.saturating_sub(1);
                match items {
                    Some(items) => self.give_to_value(Value::Array(items))?,
                    None => return invalid("<array> without <data>"),
                }
            }
            Frame::Data { items } => match self.frames.last_mut() {
                Some(Frame::Array { items: slot }) => *slot = Some(items),
                _ => return invalid("<data> outside <array>"),
            },
            Frame::Struct(builder) => {
                self.depth = self.depth.saturating_sub(1);
                self.give_to_value(Value::Struct(builder.members))?;
            }
            Frame::Member { name, value } => {
                let (Some(name), Some(value)) = (name, value) else {
                    return invalid("<member> needs a <name> and a <value>");
                };
                match self.frames.last_mut() {
                    Some(Frame::Struct(builder)) => builder.insert(name, value),
                    _ => return invalid("<member> outside <struct>"),
                }
            }
            Frame::Name => {
                let name = std::mem::take(&mut self.text);
                match self.frames.last_mut() {
                    Some(Frame::Member { name: slot, .. }) => *slot = Some(name),
                    _ => return invalid("<name> outside <member>"),
                }
            }
        }
        Ok(())
    }

    fn convert_scalar(&mut self, kind: Scalar) -> Result<Value, DecodeError> {
        let text = std::mem::take(&mut self.text);
        match kind {
            Scalar::Str => Ok(Value::String(text)),
            Scalar::Int32 => match parse_python_int(&text) {
                Some(Ok(n)) if i32::try_from(n).is_ok() => Ok(Value::Int(n)),
                Some(_) => Err(DecodeError::BadValue(format!(
                    "int {:?} does not fit in 32 bits",
                    text.trim()
                ))),
                None => Err(DecodeError::BadValue(format!(
                    "malformed int {:?}",
                    text.trim()
                ))),
            },
            Scalar::Int64 => match parse_python_int(&text) {
                Some(Ok(n)) => Ok(Value::Int(n)),
                Some(Err(())) => Err(DecodeError::BadValue(format!(
                    "i8 {:?} does not fit in 64 bits",
                    text.trim()
                ))),
                None => Err(DecodeError::BadValue(format!(
                    "malformed i8 {:?}",
                    text.trim()
                ))),
            },
            Scalar::Bool => match text.trim_matches(is_xml_ws_char) {
                "0" => Ok(Value::Bool(false)),
                "1" => Ok(Value::Bool(true)),
                other => Err(DecodeError::BadValue(format!(
                    "boolean must be 0 or 1, not {other:?}"
                ))),
            },
            Scalar::Double => parse_python_float(&text).map(Value::Double).ok_or_else(|| {
                DecodeError::BadValue(format!("malformed double {:?}", text.trim()))
            }),
            Scalar::DateTime => Ok(Value::DateTime(text.trim().to_owned())),
            Scalar::Base64 => self.decode_base64(text).map(Value::Base64),
        }
    }

    fn decode_base64(&self, mut text: String) -> Result<Vec<u8>, DecodeError> {
        text.retain(|c| !is_xml_ws_char(c));
        let max = self.limits.max_base64_bytes;
        let unpadded = text.trim_end_matches('=').len();
        // Exact decoded size for well-formed input, computed before decoding.
        if unpadded / 4 * 3 + (unpadded % 4).saturating_sub(1) > max {
            return too_large("max_base64_bytes", max);
        }
        BASE64
            .decode(text.as_bytes())
            .map_err(|e| DecodeError::BadValue(format!("malformed base64: {e}")))
    }

    fn finish(self) -> Result<MethodCall, DecodeError> {
        match (self.done, self.name) {
            (true, Some(name)) => Ok(MethodCall {
                name,
                params: self.params,
            }),
            _ => invalid("incomplete <methodCall>"),
        }
    }
}

/// Standard alphabet; padding optional and non-zero trailing bits tolerated,
/// like Python's `base64.decodebytes`.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn is_xml_ws_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_xml_whitespace(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Removes underscores that Python allows between digits (`1_000`), or returns
/// `None` if an underscore is misplaced. Borrows when there are none.
fn strip_digit_underscores(s: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !s.contains('_') {
        return Some(std::borrow::Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let before = i > 0 && b[i - 1].is_ascii_digit();
            let after = b.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !(before && after) {
                return None;
            }
        }
    }
    Some(std::borrow::Cow::Owned(s.replace('_', "")))
}

/// Parses an integer the way Python's `int(text)` does for ASCII input
/// (surrounding whitespace, sign, `_` between digits). `None` = syntax error,
/// `Some(Err(()))` = does not fit in 64 bits.
fn parse_python_int(text: &str) -> Option<Result<i64, ()>> {
    let t = text.trim();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits = strip_digit_underscores(digits)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut mag: u64 = 0;
    for b in digits.bytes() {
        let next = mag
            .checked_mul(10)
            .and_then(|m| m.checked_add(u64::from(b - b'0')));
        match next {
            Some(m) => mag = m,
            None => return Some(Err(())),
        }
    }
    let v = if neg {
        0i128 - i128::from(mag)
    } else {
        i128::from(mag)
    };
    Some(i64::try_from(v).map_err(|_| ()))
}

/// Parses a float the way Python's `float(text)` does for ASCII input
/// (whitespace, `inf`/`infinity`/`nan` in any case with a sign, `_` between digits).
fn parse_python_float(text: &str) -> Option<f64> {
    let t = text.trim();
    let t = strip_digit_underscores(t)?;
    let body = t.strip_prefix(['+', '-']).unwrap_or(&t);
    let lower = body.to_ascii_lowercase();
    if !matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        // Only the decimal grammar is left; Rust's parser accepts exactly that.
        if body.is_empty()
            || !body
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            return None;
        }
    }
    t.parse::<f64>().ok()
}

fn parser_config(limits: &Limits) -> (ParserConfig, usize) {
    // The largest text run any element may legitimately hold: a string, or
    // base64 text (4/3 of the bytes plus a line break every 76 characters).
    let b64_text = limits.max_base64_bytes.saturating_add(2) / 3 * 4;
    let b64_text = b64_text.saturating_add(b64_text / 38).saturating_add(1024);
    let data_limit = limits
        .max_string_bytes
        .max(b64_text)
        .max(limits.max_name_bytes)
        .max(MAX_SCALAR_TEXT)
        .min(limits.max_body_bytes.max(MAX_SCALAR_TEXT));
    let config = ParserConfig::new()
        .trim_whitespace(false)
        .whitespace_to_characters(true)
        .cdata_to_characters(true)
        .ignore_comments(true)
        .coalesce_characters(true)
        .ignore_end_of_stream(false)
        .replace_unknown_entity_references(false)
        .ignore_root_level_whitespace(true)
        .allow_multiple_root_elements(false)
        .max_entity_expansion_depth(0)
        .max_entity_expansion_length(0)
        .max_name_length(MAX_XML_NAME)
        .max_attributes(MAX_XML_ATTRIBUTES)
        .max_attribute_length(MAX_XML_ATTRIBUTE)
        .max_data_length(data_limit);
    (config, data_limit)
}

fn map_xml_error(
    e: &xml::reader::Error,
    limits: &Limits,
    data_limit: usize,
    top: Option<&Frame>,
) -> DecodeError {
    match e.kind() {
        ErrorKind::Syntax(msg) => {
            if msg.starts_with("Unexpected entity")
                || msg.starts_with("Undefined entity")
                || msg.starts_with("Entity too big")
            {
                DecodeError::Forbidden(format!("{e} (only the predefined entities are allowed)"))
            } else if msg.contains("larger/more complex than allowed") {
                // xml-rs buffers a whole text run before handing it over; name
                // the limit that applies to the element being read.
                let (limit, max) = match top {
                    Some(Frame::Scalar(Scalar::Base64)) => {
                        ("max_base64_bytes", limits.max_base64_bytes)
                    }
                    Some(Frame::Scalar(Scalar::Str)) | Some(Frame::Value { .. }) => {
                        ("max_string_bytes", limits.max_string_bytes)
                    }
                    Some(Frame::MethodName) | Some(Frame::Name) => {
                        ("max_name_bytes", limits.max_name_bytes)
                    }
                    _ => ("XML text, name or attribute size", data_limit),
                };
                DecodeError::TooLarge { limit, max }
            } else {
                DecodeError::Parse(e.to_string())
            }
        }
        ErrorKind::Utf8(_) => DecodeError::Parse(format!("invalid UTF-8: {e}")),
        ErrorKind::UnexpectedEof => DecodeError::Parse(format!("truncated document: {e}")),
        _ => DecodeError::Parse(e.to_string()),
    }
}

/// Decodes a request body into a method call, enforcing `limits` while reading.
pub fn decode_request(body: &[u8], limits: &Limits) -> Result<MethodCall, DecodeError> {
    if body.len() > limits.max_body_bytes {
        return too_large("max_body_bytes", limits.max_body_bytes);
    }
    let (config, data_limit) = parser_config(limits);
    let mut reader = EventReader::new_with_config(body, config);
    let mut decoder = Decoder::new(limits);
    loop {
        let event = reader
            .next()
            .map_err(|e| map_xml_error(&e, limits, data_limit, decoder.frames.last()))?;
        let step = match event {
            XmlEvent::StartDocument { .. }
            | XmlEvent::ProcessingInstruction { .. }
            | XmlEvent::Comment(_) => Ok(()),
            XmlEvent::Doctype { .. } => Err(DecodeError::Forbidden(
                "DOCTYPE/DTD declarations are not accepted".into(),
            )),
            XmlEvent::StartElement { name, .. } => decoder.start(&name.local_name),
            XmlEvent::EndElement { .. } => decoder.end(),
            XmlEvent::Characters(s) | XmlEvent::Whitespace(s) | XmlEvent::CData(s) => {
                decoder.characters(s)
            }
            XmlEvent::EndDocument => break,
        };
        step.map_err(|e| e.located(reader.position()))?;
    }
    decoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_int_syntax() {
        assert_eq!(parse_python_int(" -1_000 "), Some(Ok(-1000)));
        assert_eq!(parse_python_int("+007"), Some(Ok(7)));
        assert_eq!(parse_python_int("9223372036854775807"), Some(Ok(i64::MAX)));
        assert_eq!(parse_python_int("-9223372036854775808"), Some(Ok(i64::MIN)));
        assert_eq!(parse_python_int("9223372036854775808"), Some(Err(())));
        assert_eq!(parse_python_int("1__0"), None);
        assert_eq!(parse_python_int("_1"), None);
        assert_eq!(parse_python_int(""), None);
        assert_eq!(parse_python_int("-"), None);
        assert_eq!(parse_python_int("0x10"), None);
    }

    #[test]
    fn python_float_syntax() {
        assert_eq!(parse_python_float(" 1.5 "), Some(1.5));
        assert_eq!(parse_python_float("1_0.5"), Some(10.5));
        assert_eq!(parse_python_float("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_python_float("inf"), Some(f64::INFINITY));
        assert!(parse_python_float("nan").is_some_and(f64::is_nan));
        assert_eq!(parse_python_float(".5"), Some(0.5));
        assert_eq!(parse_python_float("5."), Some(5.0));
        assert_eq!(parse_python_float("1e400"), Some(f64::INFINITY));
        assert_eq!(parse_python_float("1e"), None);
        assert_eq!(parse_python_float("."), None);
        assert_eq!(parse_python_float(""), None);
        assert_eq!(parse_python_float("0x1p3"), None);
        assert_eq!(parse_python_float("1._5"), None);
    }

    #[test]
    fn struct_builder_dedupes_in_place() {
        let mut b = StructBuilder::default();
        for i in 0..40 {
            b.insert(format!("k{}", i % 20), Value::Int(i));
        }
        assert_eq!(b.members.len(), 20);
        assert_eq!(b.members[0], ("k0".to_string(), Value::Int(20)));
        assert_eq!(b.members[19], ("k19".to_string(), Value::Int(39)));
    }
}
