//! Interoperability with Python's `xmlrpc.client`: requests produced by
//! `xmlrpc.client.dumps` must decode to the expected values, and our responses
//! must be read back by `xmlrpc.client.loads` as the same values (and be
//! byte-identical to Python's own output where we do not deliberately differ).
//! Skipped, with a message, when `python3` is not installed (failed with
//! `RXS_REQUIRE_TOOLS` set).

mod require;

use std::io::Write;
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use roundup_xmlrpc::xmlrpc::encode::encode_call;
use roundup_xmlrpc::xmlrpc::{
    decode_request, encode_fault, encode_response, Fault, Limits, MethodCall, Value,
};

/// Runs `python3 -c script` with `input` on stdin; `None` if python3 is missing.
fn python(script: &str, input: &str) -> Option<String> {
    let child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            require::missing(&format!("python3 ({e})"));
            return None;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("write to python");
    let out = child.wait_with_output().expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("python prints UTF-8"))
}

fn s(x: &str) -> Value {
    Value::String(x.to_string())
}

/// (Python expression, the equivalent Value, whether our bytes must equal Python's).
fn cases() -> Vec<(&'static str, Value, bool)> {
    vec![
        ("'hello'", s("hello"), true),
        ("''", s(""), true),
        ("'   '", s("   "), true),
        ("' \\t\\n '", s(" \t\n "), true),
        ("'line1\\r\\nline2'", s("line1\r\nline2"), false),
        ("'\\r'", s("\r"), false),
        ("'h\\u00e9llo \\u2603 \\U0001F600 \\u4e2d\\u6587'", s("h\u{e9}llo \u{2603} \u{1F600} \u{4e2d}\u{6587}"), true),
        ("'<Date 2021-05-06.07:08:09.000> & \"q\" \\'a\\''", s("<Date 2021-05-06.07:08:09.000> & \"q\" 'a'"), true),
        ("']]> &amp; &#13;'", s("]]> &amp; &#13;"), true),
        ("0", Value::Int(0), true),
        ("-2147483648", Value::Int(-2147483648), true),
        ("2147483647", Value::Int(2147483647), true),
        ("2**40", Value::Int(1 << 40), false),
        ("-2**63", Value::Int(i64::MIN), false),
        ("True", Value::Bool(true), true),
        ("False", Value::Bool(false), true),
        ("None", Value::Nil, true),
        ("1.0", Value::Double(1.0), true),
        ("3.5", Value::Double(3.5), true),
        ("-0.0", Value::Double(-0.0), true),
        ("0.1", Value::Double(0.1), true),
        ("1e20", Value::Double(1e20), true),
        ("1e16", Value::Double(1e16), true),
        ("1e15", Value::Double(1e15), true),
        ("1e-5", Value::Double(1e-5), true),
        ("0.0001", Value::Double(0.0001), true),
        ("123456789.12345679", Value::Double(123456789.12345679), true),
        ("2.2250738585072014e-308", Value::Double(2.2250738585072014e-308), true),
        ("5e-324", Value::Double(5e-324), true),
        ("1.7976931348623157e308", Value::Double(f64::MAX), true),
        ("float('inf')", Value::Double(f64::INFINITY), true),
        ("float('-inf')", Value::Double(f64::NEG_INFINITY), true),
        ("float('nan')", Value::Double(f64::NAN), true),
        ("x.Binary(b'')", Value::Base64(vec![]), true),
        ("x.Binary(b'hello')", Value::Base64(b"hello".to_vec()), true),
        ("x.Binary(bytes(range(256)) * 3)", Value::Base64((0..=255u8).cycle().take(768).collect()), true),
        ("x.DateTime('20200101T12:00:00')", Value::DateTime("20200101T12:00:00".into()), true),
        ("[]", Value::Array(vec![]), true),
        ("{}", Value::Struct(vec![]), true),
        ("['1', '2', '10']", Value::Array(vec![s("1"), s("2"), s("10")]), true),
        (
            "{'assignedto': None, 'files': [], 'messages': ['1', '3'], 'nosy': ['1', '2'], 'priority': '3', 'status': '1', 'title': 'Spam \\u00e9', 'creation': '<Date 2021-05-06.07:08:09.000>', 'superseder': [], 'keyword': []}",
            Value::Struct(vec![
                ("assignedto".into(), Value::Nil),
                ("files".into(), Value::Array(vec![])),
                ("messages".into(), Value::Array(vec![s("1"), s("3")])),
                ("nosy".into(), Value::Array(vec![s("1"), s("2")])),
                ("priority".into(), s("3")),
                ("status".into(), s("1")),
                ("title".into(), s("Spam \u{e9}")),
                ("creation".into(), s("<Date 2021-05-06.07:08:09.000>")),
                ("superseder".into(), Value::Array(vec![])),
                ("keyword".into(), Value::Array(vec![])),
            ]),
            true,
        ),
        (
            "[[['deep', [None, {'k': [1, 2.5, True]}]]], {'a <&>': {'': ''}}]",
            Value::Array(vec![
                Value::Array(vec![Value::Array(vec![
                    s("deep"),
                    Value::Array(vec![
                        Value::Nil,
                        Value::Struct(vec![(
                            "k".into(),
                            Value::Array(vec![Value::Int(1), Value::Double(2.5), Value::Bool(true)]),
                        )]),
                    ]),
                ])]),
                Value::Struct(vec![("a <&>".into(), Value::Struct(vec![(String::new(), s(""))]))]),
            ]),
            true,
        ),
        (
            "{'scheme': 'PBKDF2S5', 'password': '250000$abc', 'plaintext': None}",
            Value::Struct(vec![
                ("scheme".into(), s("PBKDF2S5")),
                ("password".into(), s("250000$abc")),
                ("plaintext".into(), Value::Nil),
            ]),
            true,
        ),
    ]
}

/// Python helpers shared by both directions: `norm` maps a loaded value to a
/// comparable form (NaN, Binary, DateTime, and -0.0 distinguished).
const PY_PRELUDE: &str = r#"
import sys, math, base64, xmlrpc.client as x
def norm(v):
    if isinstance(v, float):
        return ('float', 'nan' if math.isnan(v) else repr(v))
    if isinstance(v, bool):
        return ('bool', v)
    if isinstance(v, x.Binary):
        return ('bin', v.data)
    if isinstance(v, x.DateTime):
        return ('dt', v.value)
    if isinstance(v, (list, tuple)):
        return ('list', [norm(i) for i in v])
    if isinstance(v, dict):
        return ('dict', [(k, norm(i)) for k, i in v.items()])
    return (type(v).__name__, v)
"#;

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => {
            (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Struct(x), Value::Struct(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((n, p), (m, q))| n == m && same(p, q))
        }
        _ => a == b,
    }
}

#[test]
fn python_requests_decode() {
    let cases = cases();
    let exprs: String = cases.iter().map(|(e, _, _)| format!("{e}\n")).collect();
    let script = format!(
        "{PY_PRELUDE}
for line in sys.stdin.read().splitlines():
    v = eval(line)
    try:
        body = x.dumps((v, 'tail'), 'display', allow_none=True).encode('utf-8')
    except OverflowError:  # Python cannot send ints beyond 32 bits
        print('SKIP'); continue
    print(base64.b64encode(body).decode())
print(base64.b64encode(x.dumps((), 'schema', allow_none=True).encode()).decode())
"
    );
    let Some(out) = python(&script, &exprs) else {
        return;
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), cases.len() + 1);
    let mut failures = Vec::new();
    for ((expr, want, _), line) in cases.iter().zip(&lines) {
        if *line == "SKIP" {
            continue;
        }
        let body = STANDARD.decode(line).expect("python sent base64");
        match decode_request(&body, &Limits::default()) {
            Ok(call) => {
                let expected = MethodCall {
                    name: "display".into(),
                    params: vec![want.clone(), s("tail")],
                };
                if call.name != expected.name
                    || call.params.len() != 2
                    || !same(&call.params[0], &want_after_wire(want))
                    || call.params[1] != s("tail")
                {
                    failures.push(format!("{expr}: decoded {:?}", call.params));
                }
            }
            Err(e) => failures.push(format!("{expr}: {e}")),
        }
    }
    let body = STANDARD.decode(lines[cases.len()]).expect("base64");
    let call = decode_request(&body, &Limits::default()).expect("schema() request decodes");
    assert_eq!(
        call,
        MethodCall {
            name: "schema".into(),
            params: vec![]
        }
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Python writes `\r` raw and XML parsers normalise it to `\n`.
fn want_after_wire(v: &Value) -> Value {
    match v {
        Value::String(t) => Value::String(t.replace("\r\n", "\n").replace('\r', "\n")),
        other => other.clone(),
    }
}

#[test]
fn our_responses_load_in_python() {
    let cases = cases();
    let mut input = String::new();
    for (expr, v, exact) in &cases {
        let ours = encode_response(v);
        input.push_str(&format!(
            "{expr}\t{}\t{}\n",
            STANDARD.encode(&ours),
            u8::from(*exact)
        ));
    }
    let script = format!(
        "{PY_PRELUDE}
for line in sys.stdin.read().splitlines():
    expr, ours, exact = line.split('\\t')
    want = eval(expr)
    data = base64.b64decode(ours)
    try:
        (got,), method = x.loads(data)
    except Exception as e:
        print('FAIL', expr, 'loads raised', repr(e)); continue
    if norm(got) != norm(want):
        print('FAIL', expr, 'loaded', repr(got)); continue
    if exact == '1':
        py = x.dumps((want,), methodresponse=True, allow_none=True).encode('utf-8')
        if py != data:
            print('FAIL', expr, 'bytes differ', repr(py), repr(data)); continue
    print('OK')
"
    );
    let Some(out) = python(&script, &input) else {
        return;
    };
    let failures: Vec<&str> = out.lines().filter(|l| *l != "OK").collect();
    assert_eq!(out.lines().count(), cases.len(), "{out}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn faults_and_special_strings_load_in_python() {
    let fault = Fault::new(
        1,
        "<class 'KeyError'>:'There is no class called \"nosuch\"'\r\n\u{1}",
    );
    let v = Value::Array(vec![
        s("a\rb\r\nc"),
        s("ctl\u{0}\u{8}\u{b}\u{c}\u{1f}\u{fffe}\u{ffff}end"),
        Value::Int(i64::MAX),
    ]);
    let input = format!(
        "{}\n{}\n{}\n",
        STANDARD.encode(encode_fault(&fault)),
        STANDARD.encode(encode_response(&v)),
        STANDARD.encode(encode_call(&MethodCall {
            name: "set".into(),
            params: vec![s("issue1"), s("title=a\rb")],
        })),
    );
    let script = format!(
        "{PY_PRELUDE}
f, r, c = sys.stdin.read().splitlines()
try:
    x.loads(base64.b64decode(f))
    print('no fault')
except x.Fault as e:
    print(e.faultCode, ascii(e.faultString))
(v,), _ = x.loads(base64.b64decode(r))
print(ascii(v))
params, method = x.loads(base64.b64decode(c))
print(method, ascii(params))
"
    );
    let Some(out) = python(&script, &input) else {
        return;
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        vec![
            r#"1 '<class \'KeyError\'>:\'There is no class called "nosuch"\'\r\n\ufffd'"#,
            r"['a\rb\r\nc', 'ctl\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\ufffdend', 9223372036854775807]",
            r"set ('issue1', 'title=a\rb')",
        ]
    );
}

#[test]
fn double_repr_matches_python_for_random_values() {
    // A fixed xorshift sequence of bit patterns plus values around the
    // fixed/scientific switch points.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut values: Vec<f64> = Vec::new();
    for _ in 0..5000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        values.push(f64::from_bits(state));
        values.push((state % 2_000_000) as f64 / 1000.0 - 1000.0);
    }
    for e in -8..=20 {
        let p = 10f64.powi(e);
        values.extend([p, -p, p * 1.5, p * 0.999_999_999, p * 9.99]);
    }
    let input: String = values
        .iter()
        .map(|v| format!("{}\n", v.to_bits()))
        .collect();
    let script = "import sys, struct
for line in sys.stdin.read().splitlines():
    print(repr(struct.unpack('<d', struct.pack('<Q', int(line)))[0]))
";
    let Some(out) = python(script, &input) else {
        return;
    };
    let mut failures = Vec::new();
    for (v, py) in values.iter().zip(out.lines()) {
        let body = encode_response(&Value::Double(*v));
        let text = String::from_utf8(body).expect("UTF-8");
        let ours = text
            .split("<double>")
            .nth(1)
            .and_then(|t| t.split("</double>").next())
            .unwrap_or("");
        if ours != py {
            failures.push(format!("{v:e}: ours {ours}, python {py}"));
        }
    }
    assert_eq!(out.lines().count(), values.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
