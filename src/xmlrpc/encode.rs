//! Response encoder (placeholder; being written).

use super::value::{Fault, Value};

/// Encodes a successful `<methodResponse>` carrying `value`.
pub fn encode_response(_value: &Value) -> Vec<u8> {
    Vec::new()
}

/// Encodes a `<methodResponse>` carrying `fault`.
pub fn encode_fault(_fault: &Fault) -> Vec<u8> {
    Vec::new()
}
