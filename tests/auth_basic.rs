//! `Authorization: Basic` parsing, including hostile headers.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use proptest::prelude::*;
use roundup_xmlrpc::auth::basic::{parse_authorization, BasicError, Credentials, MAX_HEADER_LEN};

fn basic(user: &str, pw: &str) -> Credentials {
    Credentials::Basic {
        username: user.into(),
        password: pw.into(),
    }
}

fn header(decoded: &[u8]) -> Vec<u8> {
    format!("Basic {}", STANDARD.encode(decoded)).into_bytes()
}

fn parse(h: &[u8]) -> Result<Credentials, BasicError> {
    parse_authorization(Some(h))
}

#[test]
fn absent_header_is_anonymous() {
    assert_eq!(parse_authorization(None), Ok(Credentials::Anonymous));
    assert_eq!(parse(b""), Ok(Credentials::Anonymous));
    assert_eq!(parse(b"   "), Ok(Credentials::Anonymous));
}

#[test]
fn valid_credentials() {
    let cases: &[(&[u8], Credentials)] = &[
        (b"admin:sekrit", basic("admin", "sekrit")),
        (b"admin:", basic("admin", "")),
        (b"user:a:b", basic("user", "a:b")),
        (b"user:::", basic("user", "::")),
        (
            b"j\xc3\xb6rg:p\xc3\xa4ss \xe2\x98\x83",
            basic("jörg", "päss ☃"),
        ),
        (b" sp ace : pw ", basic(" sp ace ", " pw ")),
        // An empty user name is a (failing) login, not anonymous.
        (b":", basic("", "")),
        (b":pw", basic("", "pw")),
    ];
    for (decoded, want) in cases {
        assert_eq!(parse(&header(decoded)).as_ref(), Ok(want), "{decoded:?}");
    }
    // RFC 4648 example from RFC 7617.
    assert_eq!(
        parse(b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        Ok(basic("Aladdin", "open sesame"))
    );
}

#[test]
fn scheme_is_case_insensitive_and_whitespace_tolerant() {
    for h in [
        "basic YWRtaW46c2Vrcml0",
        "BASIC YWRtaW46c2Vrcml0",
        "bAsIc YWRtaW46c2Vrcml0",
        "Basic  YWRtaW46c2Vrcml0",
        "Basic\tYWRtaW46c2Vrcml0",
        " Basic YWRtaW46c2Vrcml0 ",
    ] {
        assert_eq!(parse(h.as_bytes()), Ok(basic("admin", "sekrit")), "{h:?}");
    }
}

#[test]
fn other_schemes_are_anonymous() {
    for h in [
        &b"Bearer eyJhbGciOi.x.y"[..],
        b"Bearer",
        b"Digest username=\"admin\"",
        b"Basically YWRtaW46c2Vrcml0",
        b"Basic2 YWRtaW46c2Vrcml0",
        b"YWRtaW46c2Vrcml0",
        b"\xff\xfe x",
        b"Negotiate \x00",
    ] {
        assert_eq!(parse(h), Ok(Credentials::Anonymous), "{h:?}");
    }
}

#[test]
fn hostile_headers() {
    let mut long_text = vec![b'a'; (MAX_HEADER_LEN - 6) / 4 * 3];
    long_text[0] = b':';
    let long_ok = header(&long_text);
    assert!(long_ok.len() <= MAX_HEADER_LEN);
    assert!(parse(&long_ok).is_ok());
    let too_long = header(&vec![b'a'; MAX_HEADER_LEN]);
    let huge_other = vec![b'x'; 1 << 20];

    let cases: &[(&[u8], BasicError)] = &[
        (b"Basic", BasicError::MissingCredentials),
        (b"Basic ", BasicError::MissingCredentials),
        (b"basic \t ", BasicError::MissingCredentials),
        (b"Basic !!!", BasicError::InvalidBase64),
        (b"Basic !!!!", BasicError::InvalidBase64),
        (b"Basic YWRtaW46c2Vrcml0!", BasicError::InvalidBase64),
        (b"Basic YWRt aW46c2Vrcml0", BasicError::InvalidBase64),
        (b"Basic YWRtaW4", BasicError::InvalidBase64), // missing padding
        (b"Basic YWRtaW4==", BasicError::InvalidBase64), // wrong padding
        (b"Basic YWRtaW4===", BasicError::InvalidBase64),
        (b"Basic YWRtaW5=", BasicError::InvalidBase64), // non-canonical trailing bits
        (b"Basic YW-taW4_", BasicError::InvalidBase64), // URL-safe alphabet
        (b"Basic YWRt\x00aW4=", BasicError::InvalidBase64),
        (b"Basic \xff\xff\xff\xff", BasicError::InvalidBase64),
        (&too_long, BasicError::TooLong),
        (&huge_other, BasicError::TooLong),
    ];
    for (h, err) in cases {
        let shown = String::from_utf8_lossy(&h[..h.len().min(40)]);
        assert_eq!(parse(h), Err(*err), "{shown:?}");
    }
}

#[test]
fn bad_decoded_text() {
    let cases: &[(&[u8], BasicError)] = &[
        (b"\xff\xfe:pw", BasicError::InvalidUtf8),
        (b"admin:\xc3", BasicError::InvalidUtf8),
        (b"admin\x00:pw", BasicError::ControlCharacter),
        (b"admin:p\x00w", BasicError::ControlCharacter),
        (b"admin:pw\n", BasicError::ControlCharacter),
        (b"ad\rmin", BasicError::ControlCharacter),
        (b"admin:\x7f", BasicError::ControlCharacter),
        (b"\x00", BasicError::ControlCharacter),
        // RFC 7617: user-pass = user-id ":" password. Roundup's standalone server
        // logged a password-less user in with just its name.
        (b"admin", BasicError::NoColon),
        (b"nopw", BasicError::NoColon),
    ];
    for (decoded, err) in cases {
        assert_eq!(parse(&header(decoded)), Err(*err), "{decoded:?}");
    }
}

#[test]
fn debug_redacts_password() {
    let c = basic("admin", "sekrit");
    let shown = format!("{c:?}");
    assert!(
        shown.contains("admin") && !shown.contains("sekrit"),
        "{shown}"
    );
}

#[test]
fn errors_have_messages() {
    assert_eq!(
        BasicError::InvalidBase64.to_string(),
        "Basic authorization credentials are not valid base64"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_panics(h in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse(&h);
        let mut with_scheme = b"Basic ".to_vec();
        with_scheme.extend_from_slice(&h);
        let _ = parse(&with_scheme);
    }

    #[test]
    fn roundtrips(user in "[^:\\p{Cc}]{0,30}", pw in "[^\\p{Cc}]{0,30}") {
        let decoded = format!("{user}:{pw}");
        let got = parse(&header(decoded.as_bytes()));
        prop_assert_eq!(got, Ok(Credentials::Basic { username: user, password: pw }));
    }
}
