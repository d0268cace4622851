//! The one fault path: every fault a client can get is made in `src/error.rs`, and
//! README's fault-code table lists exactly the codes it makes.

use roundup_xmlrpc::error::{codes, decode_fault, Error};
use roundup_xmlrpc::xmlrpc::{decode_request, DecodeError, Limits};
use std::path::Path;

/// The `| code | when |` rows of README's "## Faults" table, in order.
fn readme_rows() -> Vec<(i32, String)> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("\n## Faults\n").expect("a Faults section");
    let section = &readme[start + 1..];
    let section = &section[..section[1..].find("\n## ").map_or(section.len(), |e| e + 1)];
    section
        .lines()
        .filter_map(|l| {
            let mut cells = l.split('|').map(str::trim).skip(1);
            let code = cells.next()?.parse::<i32>().ok()?;
            Some((code, cells.next()?.to_string()))
        })
        .collect()
}

/// One error of every kind.
fn every_error() -> Vec<Error> {
    let m = || "m".to_string();
    vec![
        Error::KeyError(m()),
        Error::IndexError(m()),
        Error::UsageError(m()),
        Error::Unauthorised(m()),
        Error::DesignatorError(m()),
        Error::TypeError(m()),
        Error::ValueError(m()),
        Error::AttributeError(m()),
        Error::Reject(m()),
        Error::OverflowError(m()),
        Error::Exception(m()),
        Error::Forbidden,
        Error::InvalidParams(m()),
        Error::InvalidRequest(m()),
        Error::MethodNotFound(m()),
        Error::Store(m()),
        Error::ReadOnlyStore(m()),
        Error::Internal(m()),
    ]
}

fn every_decode_error() -> Vec<DecodeError> {
    let m = || "m".to_string();
    vec![
        DecodeError::Parse(m()),
        DecodeError::Forbidden(m()),
        DecodeError::Invalid(m()),
        DecodeError::BadValue(m()),
        DecodeError::TooLarge {
            limit: "max_depth",
            max: 1,
        },
    ]
}

#[test]
fn readme_table_lists_exactly_the_interop_codes() {
    let rows = readme_rows();
    let listed: Vec<i32> = rows.iter().map(|(c, _)| *c).collect();
    assert_eq!(listed, codes::ALL, "README's fault table against error.rs");
    // Each listed code is made by some error, and every error makes a listed code,
    // Roundup's 1 or the 403 of a missing `Xmlrpc Access`.
    let mut made: Vec<i32> = every_error().iter().map(|e| e.to_fault().code).collect();
    made.extend(every_decode_error().iter().map(|e| decode_fault(e).code));
    for code in &made {
        assert!(
            *code == 1 || *code == 403 || codes::ALL.contains(code),
            "fault code {code} is not documented"
        );
    }
    for code in codes::ALL {
        assert!(
            made.contains(&code),
            "README lists {code}, nothing makes it"
        );
    }
}

#[test]
fn readme_rows_say_what_makes_each_code() {
    let rows = readme_rows();
    let when = |code: i32| &rows.iter().find(|(c, _)| *c == code).unwrap().1;
    assert!(when(codes::PARSE_ERROR).contains("not well-formed XML"));
    assert!(when(codes::INVALID_REQUEST).contains("not an XML-RPC call"));
    assert!(when(codes::INVALID_REQUEST).contains("system.multicall"));
    assert!(when(codes::METHOD_NOT_FOUND).contains("system.methodHelp"));
    assert!(when(codes::INVALID_PARAMS).contains("system.*"));
    assert!(when(codes::INTERNAL_ERROR).contains("storage failure"));
}

#[test]
fn decode_errors_get_the_documented_codes() {
    let limits = Limits::default();
    let code = |body: &[u8]| decode_fault(&decode_request(body, &limits).unwrap_err()).code;
    assert_eq!(code(b"<methodCall>"), codes::PARSE_ERROR);
    assert_eq!(
        code(b"<!DOCTYPE x [<!ENTITY a \"b\">]><methodCall/>"),
        codes::PARSE_ERROR
    );
    assert_eq!(code(b"<methodResponse/>"), codes::INVALID_REQUEST);
    for e in every_decode_error() {
        let want = match e {
            DecodeError::Parse(_) | DecodeError::Forbidden(_) => codes::PARSE_ERROR,
            _ => codes::INVALID_REQUEST,
        };
        assert_eq!(decode_fault(&e).code, want, "{e}");
        assert_eq!(decode_fault(&e).string, e.to_string());
    }
}

#[test]
fn roundup_errors_are_fault_1_with_the_python_class() {
    for e in every_error() {
        let f = e.to_fault();
        match e {
            Error::Forbidden => assert_eq!((f.code, f.string.as_str()), (403, "Forbidden")),
            Error::InvalidParams(_)
            | Error::InvalidRequest(_)
            | Error::MethodNotFound(_)
            | Error::Store(_)
            | Error::ReadOnlyStore(_)
            | Error::Internal(_) => assert!(codes::ALL.contains(&f.code), "{e}"),
            _ => {
                assert_eq!(f.code, 1, "{e}");
                assert!(f.string.starts_with("<class '"), "{}", f.string);
            }
        }
    }
    assert_eq!(
        Error::KeyError("x".into()).to_fault().string,
        "<class 'KeyError'>:'x'"
    );
    assert_eq!(
        Error::MethodNotFound("nosuch".into()).to_fault().string,
        "method \"nosuch\" is not supported"
    );
    // Storage details stay in the log.
    assert!(!Error::Store("secret path".into())
        .to_fault()
        .string
        .contains("secret"));
}
