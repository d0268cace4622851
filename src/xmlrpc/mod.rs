//! XML-RPC: the value model, the hardened request decoder and the response encoder.
//!
//! This layer knows nothing of trackers: it turns request bytes into a
//! [`MethodCall`] and a [`Value`] or [`Fault`] back into response bytes.

pub mod decode;
pub mod encode;
pub mod value;

pub use decode::{decode_request, DecodeError, Limits};
pub use encode::{encode_call, encode_fault, encode_response};
pub use value::{Fault, MethodCall, Value};
