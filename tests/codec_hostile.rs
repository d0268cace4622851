//! Malformed and hostile request documents: each must be refused with the
//! expected error variant, quickly, and without deep recursion or large memory.

use std::time::{Duration, Instant};

use roundup_xmlrpc::xmlrpc::{decode_request, DecodeError, Limits};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Parse,
    Forbidden,
    Invalid,
    BadValue,
    TooLarge(&'static str),
}

fn kind(e: &DecodeError) -> Kind {
    match e {
        DecodeError::Parse(_) => Kind::Parse,
        DecodeError::Forbidden(_) => Kind::Forbidden,
        DecodeError::Invalid(_) => Kind::Invalid,
        DecodeError::BadValue(_) => Kind::BadValue,
        DecodeError::TooLarge { limit, .. } => Kind::TooLarge(limit),
    }
}

fn call_with(params: &str) -> Vec<u8> {
    format!("<?xml version='1.0'?><methodCall><methodName>m</methodName><params>{params}</params></methodCall>")
        .into_bytes()
}

fn param(value_inner: &str) -> Vec<u8> {
    call_with(&format!("<param><value>{value_inner}</value></param>"))
}

fn nested(depth: usize, open: &str, close: &str) -> Vec<u8> {
    let mut s = String::from("<methodCall><methodName>m</methodName><params><param><value>");
    s.reserve(depth * (open.len() + close.len()) + 200);
    for _ in 0..depth {
        s.push_str(open);
    }
    s.push_str("<int>1</int>");
    for _ in 0..depth {
        s.push_str(close);
    }
    s.push_str("</value></param></params></methodCall>");
    s.into_bytes()
}

const BILLION_LAUGHS: &str = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<methodCall><methodName>m</methodName><params><param><value><string>&lol9;</string></value></param></params></methodCall>"#;

const EXTERNAL_ENTITY: &str = r#"<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<methodCall><methodName>m</methodName><params><param><value>&xxe;</value></param></params></methodCall>"#;

const EXTERNAL_DTD: &str = r#"<?xml version="1.0"?>
<!DOCTYPE methodCall SYSTEM "http://example.invalid/evil.dtd">
<methodCall><methodName>m</methodName></methodCall>"#;

const PLAIN_DOCTYPE: &str =
    "<!DOCTYPE methodCall><methodCall><methodName>m</methodName></methodCall>";

const PARAMETER_ENTITIES: &str = r#"<?xml version="1.0"?>
<!DOCTYPE x [
 <!ENTITY % a "<!ENTITY b 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'>">
 %a;
 <!ENTITY % pe1 "%pe0;%pe0;%pe0;%pe0;%pe0;%pe0;%pe0;%pe0;%pe0;%pe0;">
]>
<methodCall><methodName>m</methodName><params><param><value>&b;</value></param></params></methodCall>"#;

const PARAMETER_ENTITY_EXTERNAL: &str = r#"<?xml version="1.0"?>
<!DOCTYPE x [ <!ENTITY % ext SYSTEM "http://example.invalid/x.dtd"> %ext; ]>
<methodCall><methodName>m</methodName></methodCall>"#;

struct Case {
    name: &'static str,
    body: Vec<u8>,
    limits: Limits,
    want: Kind,
}

fn case(name: &'static str, body: impl Into<Vec<u8>>, want: Kind) -> Case {
    Case {
        name,
        body: body.into(),
        limits: Limits::default(),
        want,
    }
}

fn cases() -> Vec<Case> {
    let big_limits = Limits {
        max_body_bytes: 64 << 20,
        ..Limits::default()
    };
    let small = Limits {
        max_string_bytes: 1000,
        max_base64_bytes: 1000,
        max_values: 100,
        max_name_bytes: 16,
        ..Limits::default()
    };
    let mut v = vec![
        // DTDs and entities.
        case("billion laughs", BILLION_LAUGHS, Kind::Forbidden),
        case("external entity", EXTERNAL_ENTITY, Kind::Forbidden),
        case("external DTD", EXTERNAL_DTD, Kind::Forbidden),
        case("plain DOCTYPE", PLAIN_DOCTYPE, Kind::Forbidden),
        case("parameter entities", PARAMETER_ENTITIES, Kind::Forbidden),
        case("external parameter entity", PARAMETER_ENTITY_EXTERNAL, Kind::Forbidden),
        case("undefined entity", param("<string>&nbsp;</string>"), Kind::Forbidden),
        case("undefined entity in name", b"<methodCall><methodName>&foo;</methodName></methodCall>".to_vec(), Kind::Forbidden),
        // Nesting.
        case("100k nested arrays", nested(100_000, "<array><data><value>", "</value></data></array>"), Kind::TooLarge("max_depth")),
        case("100k nested structs", nested(100_000, "<struct><member><name>a</name><value>", "</value></member></struct>"), Kind::TooLarge("max_depth")),
        case("33 nested arrays", nested(33, "<array><data><value>", "</value></data></array>"), Kind::TooLarge("max_depth")),
        case("nested unknown elements", "<a>".repeat(1_000_000), Kind::Invalid),
        case("value in value", nested(1000, "<value>", "</value>"), Kind::Invalid),
        // Sizes.
        case("huge string", param(&format!("<string>{}</string>", "x".repeat(9 << 20))), Kind::TooLarge("max_string_bytes")),
        case("huge bare string", param(&"y".repeat(9 << 20)), Kind::TooLarge("max_string_bytes")),
        case("huge base64", param(&format!("<base64>{}</base64>", "QUFB\n".repeat(3 << 20))), Kind::TooLarge("max_base64_bytes")),
        case("huge method name", format!("<methodCall><methodName>{}</methodName></methodCall>", "m".repeat(300)), Kind::TooLarge("max_name_bytes")),
        case("huge member name", param(&format!("<struct><member><name>{}</name><value>1</value></member></struct>", "n".repeat(300))), Kind::TooLarge("max_name_bytes")),
        case("huge int text", param(&format!("<int>{}1</int>", " ".repeat(10_000))), Kind::TooLarge("scalar text length")),
        case("too many values", call_with(&"<param><value/></param>".repeat(100_001)), Kind::TooLarge("max_values")),
        case("body too large", vec![b' '; (16 << 20) + 1], Kind::TooLarge("max_body_bytes")),
        // Scalars.
        case("int overflow", param("<int>2147483648</int>"), Kind::BadValue),
        case("i4 underflow", param("<i4>-2147483649</i4>"), Kind::BadValue),
        case("i8 overflow", param("<i8>9223372036854775808</i8>"), Kind::BadValue),
        case("int not a number", param("<int>12a</int>"), Kind::BadValue),
        case("empty int", param("<int></int>"), Kind::BadValue),
        case("boolean true", param("<boolean>true</boolean>"), Kind::BadValue),
        case("boolean 2", param("<boolean>2</boolean>"), Kind::BadValue),
        case("bad double", param("<double>1.2.3</double>"), Kind::BadValue),
        case("hex double", param("<double>0x10</double>"), Kind::BadValue),
        case("bad base64", param("<base64>!!!!</base64>"), Kind::BadValue),
        case("base64 bad length", param("<base64>QUFBQ</base64>"), Kind::BadValue),
        // Encoding and well-formedness.
        case("invalid UTF-8", [param("<string>").as_slice(), b"\xff\xfe", b"</string></value></param></params></methodCall>"].concat(), Kind::Parse),
        case("overlong UTF-8", [b"<methodCall><methodName>".as_slice(), b"\xc0\xaf", b"</methodName></methodCall>"].concat(), Kind::Parse),
        case("NUL byte", param("<string>a\0b</string>"), Kind::Parse),
        case("NUL char ref", param("<string>&#0;</string>"), Kind::Parse),
        case("control char ref", param("<string>&#1;</string>"), Kind::Parse),
        case("surrogate char ref", param("<string>&#xD800;</string>"), Kind::Parse),
        case("truncated", b"<?xml version='1.0'?><methodCall><methodName>m</methodName><params><param><value><str".to_vec(), Kind::Parse),
        case("truncated after root open", b"<methodCall>".to_vec(), Kind::Parse),
        case("empty body", Vec::new(), Kind::Parse),
        case("only declaration", b"<?xml version='1.0'?>".to_vec(), Kind::Parse),
        case("trailing junk", [call_with("").as_slice(), b"junk"].concat(), Kind::Parse),
        case("second root", [call_with("").as_slice(), b"<methodCall/>"].concat(), Kind::Parse),
        case("mismatched tags", b"<methodCall><methodName>m</methodCall></methodName>".to_vec(), Kind::Parse),
        case("unbound prefix", param("<ex:nil/>"), Kind::Parse),
        // Structure.
        case("unknown value tag", param("<foo>1</foo>"), Kind::Invalid),
        case("bigdecimal unsupported", param("<bigdecimal>1.5</bigdecimal>"), Kind::Invalid),
        case("unknown tag in params", call_with("<bogus/>"), Kind::Invalid),
        case("unknown tag in methodCall", b"<methodCall><methodName>m</methodName><foo/></methodCall>".to_vec(), Kind::Invalid),
        case("empty methodName", b"<methodCall><methodName></methodName></methodCall>".to_vec(), Kind::Invalid),
        case("self-closed methodName", b"<methodCall><methodName/></methodCall>".to_vec(), Kind::Invalid),
        case("missing methodName", b"<methodCall><params></params></methodCall>".to_vec(), Kind::Invalid),
        case("empty methodCall", b"<methodCall/>".to_vec(), Kind::Invalid),
        case("two methodNames", b"<methodCall><methodName>a</methodName><methodName>b</methodName></methodCall>".to_vec(), Kind::Invalid),
        case("wrong root", b"<methodResponse><params/></methodResponse>".to_vec(), Kind::Invalid),
        case("html root", b"<html><body>hi</body></html>".to_vec(), Kind::Invalid),
        case("param without value", call_with("<param></param>"), Kind::Invalid),
        case("param with two values", call_with("<param><value>1</value><value>2</value></param>"), Kind::Invalid),
        case("two typed elements", param("<int>1</int><int>2</int>"), Kind::Invalid),
        case("mixed content", param("abc<string>x</string>"), Kind::Invalid),
        case("text after typed", param("<string>x</string>abc"), Kind::Invalid),
        case("text in params", call_with("hello"), Kind::Invalid),
        case("element in string", param("<string>a<b/>c</string>"), Kind::Invalid),
        case("element in methodName", b"<methodCall><methodName>a<b/></methodName></methodCall>".to_vec(), Kind::Invalid),
        case("array without data", param("<array></array>"), Kind::Invalid),
        case("array with bare value", param("<array><value>1</value></array>"), Kind::Invalid),
        case("member without name", param("<struct><member><value>1</value></member></struct>"), Kind::Invalid),
        case("member without value", param("<struct><member><name>a</name></member></struct>"), Kind::Invalid),
        case("member value before name", param("<struct><member><value>1</value><name>a</name></member></struct>"), Kind::Invalid),
        case("text in nil", param("<nil>x</nil>"), Kind::Invalid),
        case("text in struct", param("<struct>x</struct>"), Kind::Invalid),
    ];
    // Limits that are configured small are named in the error.
    for (name, body, want) in [
        (
            "small string",
            param(&format!("<string>{}</string>", "x".repeat(1001))),
            "max_string_bytes",
        ),
        (
            "small base64",
            param(&format!("<base64>{}</base64>", "QUFB".repeat(400))),
            "max_base64_bytes",
        ),
        (
            "small values",
            call_with(&"<param><value/></param>".repeat(101)),
            "max_values",
        ),
        (
            "small name",
            param("<struct><member><name>seventeen-chars!!</name><value/></member></struct>"),
            "max_name_bytes",
        ),
    ] {
        v.push(Case {
            name,
            body,
            limits: small.clone(),
            want: Kind::TooLarge(want),
        });
    }
    v.push(Case {
        name: "1M nested arrays",
        body: nested(1_000_000, "<value><array><data>", "</data></array></value>"),
        limits: big_limits.clone(),
        want: Kind::Invalid, // <value> directly inside <value> is refused at depth 1
    });
    v.push(Case {
        name: "1M nested arrays (well-formed levels)",
        body: nested(1_000_000, "<array><data><value>", "</value></data></array>"),
        limits: big_limits,
        want: Kind::TooLarge("max_depth"),
    });
    v
}

#[test]
fn hostile_documents_are_refused() {
    let mut failures = Vec::new();
    for c in cases() {
        let t = Instant::now();
        let got = decode_request(&c.body, &c.limits);
        let elapsed = t.elapsed();
        if std::env::var_os("CODEC_TIMINGS").is_some() {
            eprintln!("{:>10.3?}  {}", elapsed, c.name);
        }
        match &got {
            Err(e) => {
                // Every error renders as a readable, bounded message.
                let msg = e.to_string();
                assert!(
                    !msg.is_empty() && msg.len() < 1000,
                    "{}: message {msg:?}",
                    c.name
                );
                if kind(e) != c.want {
                    failures.push(format!(
                        "{}: want {:?}, got {:?}: {e}",
                        c.name,
                        c.want,
                        kind(e)
                    ));
                }
            }
            Ok(call) => failures.push(format!(
                "{}: want {:?}, decoded {:?}",
                c.name, c.want, call.name
            )),
        }
        if elapsed > Duration::from_secs(5) {
            failures.push(format!("{}: took {elapsed:?}", c.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fault_codes() {
    let limits = Limits::default();
    let code = |body: &[u8]| {
        decode_request(body, &limits)
            .map(|_| 0)
            .unwrap_or_else(|e| e.fault_code())
    };
    assert_eq!(code(b"<methodCall>"), -32700);
    assert_eq!(code(PLAIN_DOCTYPE.as_bytes()), -32700);
    assert_eq!(code(b"<methodResponse/>"), -32600);
    assert_eq!(code(&param("<int>99999999999</int>")), -32600);
    assert_eq!(
        code(&nested(
            40,
            "<array><data><value>",
            "</value></data></array>"
        )),
        -32600
    );
}

#[test]
fn limits_are_inclusive() {
    let limits = Limits {
        max_string_bytes: 10,
        max_base64_bytes: 6,
        max_values: 3,
        max_name_bytes: 4,
        max_depth: 2,
        ..Limits::default()
    };
    let ok = |body: Vec<u8>| {
        if let Err(e) = decode_request(&body, &limits) {
            panic!("{e}: {}", String::from_utf8_lossy(&body));
        }
    };
    ok(param("<string>0123456789</string>"));
    ok(param("0123456789"));
    ok(param("<base64>QUFBQUFB</base64>"));
    ok(param("<base64>QUFBQUE=</base64>"));
    ok(call_with(&"<param><value/></param>".repeat(3)));
    ok(b"<methodCall><methodName>abcd</methodName></methodCall>".to_vec());
    ok(param(
        "<struct><member><name>abcd</name><value><array><data/></array></value></member></struct>",
    ));
    let err = |body: Vec<u8>| {
        decode_request(&body, &limits)
            .map(|_| ())
            .map_err(|e| kind(&e))
    };
    assert_eq!(
        err(param("<base64>QUFBQUFBQQ==</base64>")),
        Err(Kind::TooLarge("max_base64_bytes"))
    );
    assert_eq!(
        err(param("<string>0123456789a</string>")),
        Err(Kind::TooLarge("max_string_bytes"))
    );
    assert_eq!(
        err(call_with(&"<param><value/></param>".repeat(4))),
        Err(Kind::TooLarge("max_values"))
    );
    assert_eq!(
        err(param("<array><data><value><array><data><value><array><data/></array></value></data></array></value></data></array>")),
        Err(Kind::TooLarge("max_depth"))
    );
}
