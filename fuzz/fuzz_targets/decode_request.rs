//! Fuzz target: `decode_request` must never panic, must stay within its limits,
//! and whatever it accepts must survive a re-encode / re-decode round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roundup_xmlrpc::xmlrpc::encode::encode_call;
use roundup_xmlrpc::xmlrpc::{decode_request, encode_response, Limits, Value};

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Struct(members) => 1 + members.iter().map(|(_, v)| depth(v)).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_body_bytes: 1 << 20,
        max_depth: 8,
        max_values: 2000,
        max_string_bytes: 4096,
        max_base64_bytes: 4096,
        max_name_bytes: 64,
    };
    let Ok(call) = decode_request(data, &limits) else {
        return;
    };
    assert!(!call.name.is_empty());
    assert!(call.name.len() <= limits.max_name_bytes);
    for p in &call.params {
        assert!(depth(p) <= limits.max_depth);
        let _ = encode_response(p);
    }
    // Re-encoding what we accepted must decode again to the same shape.
    let generous = Limits {
        max_body_bytes: 64 << 20,
        max_name_bytes: 1 << 12,
        max_string_bytes: 1 << 20,
        ..Limits::default()
    };
    let again = match decode_request(&encode_call(&call), &generous) {
        Ok(c) => c,
        Err(e) => panic!("re-decode failed: {e}"),
    };
    assert_eq!(again.params.len(), call.params.len());
    let illegal = |c: char| {
        (c < '\u{20}' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{fffe}' || c == '\u{ffff}'
    };
    if !call.name.chars().any(illegal) {
        assert_eq!(again.name, call.name);
    }
});
