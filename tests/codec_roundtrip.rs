//! Round-trip tests: every value type through encode -> decode, plus the exact
//! handling of empty and whitespace-only strings and other accepted inputs.

use proptest::prelude::*;
use roundup_xmlrpc::xmlrpc::encode::encode_call;
use roundup_xmlrpc::xmlrpc::{decode_request, encode_response, Limits, MethodCall, Value};

/// What the decoder gives back for `v` after our encoder wrote it: illegal XML
/// characters replaced by U+FFFD, dateTime text trimmed, duplicate struct names
/// merged (first position, last value).
fn normalize(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(sanitize(s)),
        Value::DateTime(s) => Value::DateTime(sanitize(s).trim().to_string()),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::Struct(members) => {
            let mut out: Vec<(String, Value)> = Vec::new();
            for (n, v) in members {
                let n = sanitize(n);
                let v = normalize(v);
                match out.iter_mut().find(|(k, _)| *k == n) {
                    Some(slot) => slot.1 = v,
                    None => out.push((n, v)),
                }
            }
            Value::Struct(out)
        }
        other => other.clone(),
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
            _ => c,
        })
        .collect()
}

/// Structural equality that treats NaN as equal to NaN and compares doubles bitwise.
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

fn decode_ok(body: &[u8]) -> MethodCall {
    match decode_request(body, &Limits::default()) {
        Ok(c) => c,
        Err(e) => panic!("decode failed: {e}\n{}", String::from_utf8_lossy(body)),
    }
}

/// Turns an encoded `<methodResponse>` into a `<methodCall>` so the request
/// decoder can read the response encoder's output.
fn response_as_call(resp: &[u8]) -> Vec<u8> {
    let s = String::from_utf8(resp.to_vec()).expect("encoder emits UTF-8");
    s.replacen(
        "<methodResponse>\n",
        "<methodCall>\n<methodName>r</methodName>\n",
        1,
    )
    .replacen("</methodResponse>\n", "</methodCall>\n", 1)
    .into_bytes()
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \t\r\n]{0,6}",
        "[a-z<>&'\" \r\n]{0,20}",
        Just(String::new()),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Int),
        any::<i32>().prop_map(|n| Value::Int(i64::from(n))),
        any::<bool>().prop_map(Value::Bool),
        arb_text().prop_map(Value::String),
        any::<f64>().prop_map(Value::Double),
        prop_oneof![
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::NAN),
            Just(-0.0)
        ]
        .prop_map(Value::Double),
        "[0-9]{8}T[0-9]{2}:[0-9]{2}:[0-9]{2}".prop_map(Value::DateTime),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::Base64),
        Just(Value::Nil),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec(("[a-z_]{0,6}|.{0,4}", inner), 0..8).prop_map(Value::Struct),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn call_roundtrip(name in "[A-Za-z_.][A-Za-z0-9_.<&]{0,30}", params in proptest::collection::vec(arb_value(), 0..4)) {
        let call = MethodCall { name: name.clone(), params: params.clone() };
        let decoded = decode_ok(&encode_call(&call));
        prop_assert_eq!(&decoded.name, &name);
        prop_assert_eq!(decoded.params.len(), params.len());
        for (got, sent) in decoded.params.iter().zip(&params) {
            let want = normalize(sent);
            prop_assert!(same(got, &want), "got {:?}\nwant {:?}", got, want);
        }
    }

    #[test]
    fn response_roundtrip(v in arb_value()) {
        let body = response_as_call(&encode_response(&v));
        let decoded = decode_ok(&body);
        prop_assert_eq!(decoded.params.len(), 1);
        let want = normalize(&v);
        prop_assert!(same(&decoded.params[0], &want), "got {:?}\nwant {:?}", decoded.params[0], want);
    }

    #[test]
    fn string_roundtrip(s in any::<String>()) {
        let body = response_as_call(&encode_response(&Value::String(s.clone())));
        let decoded = decode_ok(&body);
        prop_assert_eq!(&decoded.params, &vec![Value::String(sanitize(&s))]);
    }

    #[test]
    fn int_roundtrip(n in any::<i64>()) {
        let body = encode_response(&Value::Int(n));
        let text = String::from_utf8_lossy(&body).into_owned();
        let tag = if i32::try_from(n).is_ok() { "<int>" } else { "<i8>" };
        prop_assert!(text.contains(tag));
        let decoded = decode_ok(&response_as_call(&body));
        prop_assert_eq!(&decoded.params, &vec![Value::Int(n)]);
    }

    #[test]
    fn double_roundtrip(x in any::<f64>()) {
        let decoded = decode_ok(&response_as_call(&encode_response(&Value::Double(x))));
        prop_assert!(same(&decoded.params[0], &Value::Double(x)));
    }

    #[test]
    fn base64_roundtrip(b in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let decoded = decode_ok(&response_as_call(&encode_response(&Value::Base64(b.clone()))));
        prop_assert_eq!(&decoded.params, &vec![Value::Base64(b)]);
    }
}

fn params_of(xml_params: &str) -> Vec<Value> {
    let body = format!(
        "<?xml version='1.0'?>\n<methodCall><methodName>m</methodName><params>{xml_params}</params></methodCall>"
    );
    decode_ok(body.as_bytes()).params
}

fn one(value_xml: &str) -> Value {
    let mut p = params_of(&format!("<param>{value_xml}</param>"));
    assert_eq!(p.len(), 1, "{value_xml}");
    p.remove(0)
}

#[test]
fn strings_are_kept_exactly() {
    let s = |x: &str| Value::String(x.to_string());
    assert_eq!(one("<value><string>  </string></value>"), s("  "));
    assert_eq!(one("<value></value>"), s(""));
    assert_eq!(one("<value/>"), s(""));
    assert_eq!(one("<value><string/></value>"), s(""));
    assert_eq!(one("<value><string></string></value>"), s(""));
    assert_eq!(one("<value>  </value>"), s("  "));
    assert_eq!(one("<value> bare text </value>"), s(" bare text "));
    assert_eq!(one("<value>\n<string>x</string>\n</value>"), s("x"));
    assert_eq!(one("<value><string>\n\t\n</string></value>"), s("\n\t\n"));
    assert_eq!(one("<value><string>a&#13;b</string></value>"), s("a\rb"));
    assert_eq!(one("<value><string>a\r\nb</string></value>"), s("a\nb"));
    assert_eq!(
        one("<value><string>&lt;&gt;&amp;&apos;&quot;&#x263A;&#65;</string></value>"),
        s("<>&'\"\u{263A}A")
    );
    assert_eq!(
        one("<value><string><![CDATA[<raw> & ]]>x<!-- c -->y</string></value>"),
        s("<raw> & xy")
    );
    assert_eq!(
        one("<value><string>h\u{e9}llo \u{1F600}</string></value>"),
        s("h\u{e9}llo \u{1F600}")
    );
}

#[test]
fn scalars() {
    assert_eq!(one("<value><int>42</int></value>"), Value::Int(42));
    assert_eq!(one("<value><i4> -7 </i4></value>"), Value::Int(-7));
    assert_eq!(
        one("<value><int>2147483647</int></value>"),
        Value::Int(i64::from(i32::MAX))
    );
    assert_eq!(
        one("<value><int>-2147483648</int></value>"),
        Value::Int(i64::from(i32::MIN))
    );
    assert_eq!(
        one("<value><i8>9223372036854775807</i8></value>"),
        Value::Int(i64::MAX)
    );
    assert_eq!(
        one("<value><boolean>1</boolean></value>"),
        Value::Bool(true)
    );
    assert_eq!(
        one("<value><boolean> 0\n</boolean></value>"),
        Value::Bool(false)
    );
    assert_eq!(
        one("<value><double>3.5</double></value>"),
        Value::Double(3.5)
    );
    assert_eq!(
        one("<value><double> -inf </double></value>"),
        Value::Double(f64::NEG_INFINITY)
    );
    assert_eq!(
        one("<value><double>1e+20</double></value>"),
        Value::Double(1e20)
    );
    assert!(matches!(one("<value><double>nan</double></value>"), Value::Double(x) if x.is_nan()));
    assert_eq!(
        one("<value><dateTime.iso8601> 20200101T12:00:00 </dateTime.iso8601></value>"),
        Value::DateTime("20200101T12:00:00".into())
    );
    assert_eq!(
        one("<value><base64>\naGVs\nbG8=\n</base64></value>"),
        Value::Base64(b"hello".to_vec())
    );
    assert_eq!(
        one("<value><base64>aGVsbG8</base64></value>"),
        Value::Base64(b"hello".to_vec())
    );
    assert_eq!(
        one("<value><base64></base64></value>"),
        Value::Base64(Vec::new())
    );
    assert_eq!(one("<value><nil/></value>"), Value::Nil);
    assert_eq!(one("<value><nil></nil></value>"), Value::Nil);
    assert_eq!(
        one(
            "<value><ex:nil xmlns:ex='http://ws.apache.org/xmlrpc/namespaces/extensions'/></value>"
        ),
        Value::Nil
    );
}

#[test]
fn containers() {
    assert_eq!(
        one("<value><array><data></data></array></value>"),
        Value::Array(vec![])
    );
    assert_eq!(
        one("<value><array><data/></array></value>"),
        Value::Array(vec![])
    );
    assert_eq!(
        one("<value><struct>\n</struct></value>"),
        Value::Struct(vec![])
    );
    assert_eq!(
        one(
            "<value><struct><member><name>b</name><value>1</value></member>\
             <member><name>a</name><value><int>2</int></value></member>\
             <member><name>b</name><value><nil/></value></member></struct></value>"
        ),
        Value::Struct(vec![("b".into(), Value::Nil), ("a".into(), Value::Int(2))])
    );
    assert_eq!(
        one("<value><struct><member><name></name><value>x</value></member></struct></value>"),
        Value::Struct(vec![(String::new(), Value::str("x"))])
    );
    assert_eq!(
        one("<value><array><data><value>1</value><value><array><data><value><i4>2</i4></value></data></array></value></data></array></value>"),
        Value::Array(vec![Value::str("1"), Value::Array(vec![Value::Int(2)])])
    );
}

#[test]
fn method_calls_without_params() {
    let c = decode_ok(b"<methodCall><methodName>schema</methodName></methodCall>");
    assert_eq!(
        c,
        MethodCall {
            name: "schema".into(),
            params: vec![]
        }
    );
    let c = decode_ok(b"<?xml version='1.0'?>\n<methodCall>\n<methodName>schema</methodName>\n<params>\n</params>\n</methodCall>\n");
    assert_eq!(
        c,
        MethodCall {
            name: "schema".into(),
            params: vec![]
        }
    );
    // Comments, processing instructions and a BOM are harmless.
    let c = decode_ok(
        "\u{FEFF}<?xml version=\"1.0\" encoding=\"UTF-8\"?><!-- hi --><?pi x?><methodCall><methodName>a.b</methodName><params/></methodCall><!-- bye -->\n".as_bytes(),
    );
    assert_eq!(c.name, "a.b");
}

#[test]
fn latin1_declared_encoding() {
    let mut body = b"<?xml version='1.0' encoding='ISO-8859-1'?><methodCall><methodName>m</methodName><params><param><value>caf".to_vec();
    body.push(0xE9);
    body.extend_from_slice(b"</value></param></params></methodCall>");
    assert_eq!(decode_ok(&body).params, vec![Value::str("caf\u{e9}")]);
}

#[test]
fn large_struct_with_many_duplicates_is_fast() {
    let mut doc =
        String::from("<methodCall><methodName>m</methodName><params><param><value><struct>");
    for i in 0..50_000 {
        doc.push_str(&format!(
            "<member><name>k{}</name><value><int>{i}</int></value></member>",
            i % 1000
        ));
    }
    doc.push_str("</struct></value></param></params></methodCall>");
    let t = std::time::Instant::now();
    let c = decode_ok(doc.as_bytes());
    assert!(t.elapsed().as_secs() < 10);
    let Value::Struct(m) = &c.params[0] else {
        panic!("not a struct")
    };
    assert_eq!(m.len(), 1000);
    assert_eq!(m[0], ("k0".to_string(), Value::Int(49_000)));
}

#[test]
fn encode_layout_matches_python() {
    // Expected bytes produced by Python 3.11:
    // xmlrpc.client.dumps(({'a': 1, 'b': None, 'c': ['1', '2'], 'd': {}, 'e': 1.5, 'f': True},),
    //                     methodresponse=True, allow_none=True)
    let v = Value::Struct(vec![
        ("a".into(), Value::Int(1)),
        ("b".into(), Value::Nil),
        (
            "c".into(),
            Value::Array(vec![Value::str("1"), Value::str("2")]),
        ),
        ("d".into(), Value::Struct(vec![])),
        ("e".into(), Value::Double(1.5)),
        ("f".into(), Value::Bool(true)),
    ]);
    let want = "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><struct>\n\
<member>\n<name>a</name>\n<value><int>1</int></value>\n</member>\n\
<member>\n<name>b</name>\n<value><nil/></value></member>\n\
<member>\n<name>c</name>\n<value><array><data>\n<value><string>1</string></value>\n<value><string>2</string></value>\n</data></array></value>\n</member>\n\
<member>\n<name>d</name>\n<value><struct>\n</struct></value>\n</member>\n\
<member>\n<name>e</name>\n<value><double>1.5</double></value>\n</member>\n\
<member>\n<name>f</name>\n<value><boolean>1</boolean></value>\n</member>\n\
</struct></value>\n</param>\n</params>\n</methodResponse>\n";
    assert_eq!(String::from_utf8_lossy(&encode_response(&v)), want);

    let fault = roundup_xmlrpc::xmlrpc::Fault::new(1, "<class 'IndexError'>:no such status 99");
    let want = "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n<member>\n\
<name>faultCode</name>\n<value><int>1</int></value>\n</member>\n<member>\n<name>faultString</name>\n\
<value><string>&lt;class 'IndexError'&gt;:no such status 99</string></value>\n</member>\n\
</struct></value>\n</fault>\n</methodResponse>\n";
    assert_eq!(
        String::from_utf8_lossy(&roundup_xmlrpc::xmlrpc::encode_fault(&fault)),
        want
    );
}
