//! Criterion benchmarks for the XML-RPC codec hot path: decoding a typical
//! `display` request and encoding a typical `display` response.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use roundup_xmlrpc::xmlrpc::encode::encode_call;
use roundup_xmlrpc::xmlrpc::{
    decode_request, encode_fault, encode_response, Fault, Limits, MethodCall, Value,
};

fn ids(list: &[&str]) -> Value {
    Value::Array(list.iter().map(|s| Value::str(*s)).collect())
}

/// A classic-tracker issue as `display('issue42')` returns it.
fn display_response() -> Value {
    Value::Struct(vec![
        (
            "activity".into(),
            Value::str("<Date 2024-03-01.10:11:12.000>"),
        ),
        ("assignedto".into(), Value::Nil),
        (
            "creation".into(),
            Value::str("<Date 2024-02-27.08:00:00.000>"),
        ),
        ("creator".into(), Value::str("3")),
        ("files".into(), ids(&[])),
        ("keyword".into(), ids(&["1", "4"])),
        ("messages".into(), ids(&["101", "102", "107", "110", "123"])),
        ("nosy".into(), ids(&["1", "3", "5", "12"])),
        ("priority".into(), Value::str("3")),
        ("status".into(), Value::str("2")),
        ("superseder".into(), ids(&[])),
        (
            "title".into(),
            Value::str("Login page shows a traceback when the password contains <&> characters"),
        ),
    ])
}

fn display_request() -> Vec<u8> {
    encode_call(&MethodCall {
        name: "display".into(),
        params: [
            "issue42",
            "activity",
            "assignedto",
            "creation",
            "creator",
            "files",
            "keyword",
            "messages",
            "nosy",
            "priority",
            "status",
            "superseder",
            "title",
        ]
        .iter()
        .map(|s| Value::str(*s))
        .collect(),
    })
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let req = display_request();
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Bytes(req.len() as u64));
    g.bench_function("decode_display_request", |b| {
        b.iter(|| decode_request(black_box(&req), &limits))
    });
    let big = encode_call(&MethodCall {
        name: "create".into(),
        params: vec![
            Value::str("file"),
            Value::str("content=".to_string() + &"spam & eggs\n".repeat(87_382)),
        ],
    });
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("decode_1mb_string_request", |b| {
        b.iter(|| decode_request(black_box(&big), &limits))
    });
    let resp = display_response();
    g.throughput(Throughput::Bytes(encode_response(&resp).len() as u64));
    g.bench_function("encode_display_response", |b| {
        b.iter(|| encode_response(black_box(&resp)))
    });
    let fault = Fault::new(1, "<class 'IndexError'>:no such issue 99");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_fault", |b| {
        b.iter(|| encode_fault(black_box(&fault)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
