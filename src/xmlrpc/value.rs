//! The XML-RPC value model shared by the decoder, the encoder and the dispatcher.

/// One XML-RPC value, as received from or sent to a client.
///
/// `Struct` keeps member order (Python dict order matters to clients that print
/// results); `Nil` is Python's `<nil/>` extension, which Roundup enables.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `<int>`, `<i4>` or `<i8>`. Encoded as `<int>` when it fits 32 bits, else `<i8>`.
    Int(i64),
    /// `<boolean>` 0 or 1.
    Bool(bool),
    /// `<string>` or bare text inside `<value>`.
    String(String),
    /// `<double>`.
    Double(f64),
    /// `<dateTime.iso8601>`, kept as the text the client sent (e.g. `20200101T12:00:00`).
    DateTime(String),
    /// `<base64>`, decoded to bytes.
    Base64(Vec<u8>),
    /// `<struct>` with members in document order.
    Struct(Vec<(String, Value)>),
    /// `<array>`.
    Array(Vec<Value>),
    /// `<nil/>`.
    Nil,
}

impl Value {
    /// The string inside a `String` value, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Shorthand for building a string value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    /// The name Python would give this value's type (`str`, `int`, `NoneType`...),
    /// used in fault texts that mimic Python's TypeError/AttributeError messages.
    pub fn python_type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Bool(_) => "bool",
            Value::String(_) => "str",
            Value::Double(_) => "float",
            Value::DateTime(_) => "DateTime",
            Value::Base64(_) => "bytes",
            Value::Struct(_) => "dict",
            Value::Array(_) => "list",
            Value::Nil => "NoneType",
        }
    }
}

/// A decoded `<methodCall>`.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodCall {
    /// The `<methodName>` text (never empty).
    pub name: String,
    /// The `<params>` values in order.
    pub params: Vec<Value>,
}

/// An XML-RPC fault: the error half of a `<methodResponse>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `faultCode`: 1 for Roundup application errors, 403 for access refusals,
    /// the -32xxx interop codes for protocol failures.
    pub code: i32,
    /// `faultString`, e.g. `<class 'KeyError'>:'bogus'`.
    pub string: String,
}

impl Fault {
    /// Builds a fault from its code and text.
    pub fn new(code: i32, string: impl Into<String>) -> Fault {
        Fault {
            code,
            string: string.into(),
        }
    }
}
