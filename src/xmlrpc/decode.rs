//! Hardened streaming decoder for `<methodCall>` documents (placeholder; being written).

use super::value::MethodCall;

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

/// Why a request document was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not well-formed XML, or not XML-RPC.
    #[error("parse error: {0}")]
    Parse(String),
}

/// Decodes a request body into a method call, enforcing `limits` while reading.
pub fn decode_request(_body: &[u8], _limits: &Limits) -> Result<MethodCall, DecodeError> {
    Err(DecodeError::Parse("not implemented".into()))
}
