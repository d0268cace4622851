//! Fuzz target: `parse_authorization` must never panic, and whatever it accepts as
//! Basic credentials must be free of (ASCII) control characters in both parts (the
//! user name may be empty: `:pw` is a failed login, not a malformed header), and
//! must be exactly what the header's base64 decodes to (split on the first `:`).
//! Also checks the length limit at its boundary.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use roundup_xmlrpc::auth::basic::MAX_HEADER_LEN;
use roundup_xmlrpc::auth::{parse_authorization, BasicError, Credentials};

fuzz_target!(|data: &[u8]| {
    let result = parse_authorization(Some(data));
    // An absent header is always anonymous.
    assert_eq!(parse_authorization(None), Ok(Credentials::Anonymous));
    // Length limit at its boundary: surrounding whitespace does not change the
    // outcome up to MAX_HEADER_LEN bytes, and one byte more is always refused.
    // (Only for inputs starting with a tab, to keep the other inputs fast.)
    if data.first() == Some(&b'\t') && data.len() <= MAX_HEADER_LEN {
        let mut padded = vec![b' '; MAX_HEADER_LEN - data.len()];
        padded.extend_from_slice(data);
        assert_eq!(parse_authorization(Some(&padded)), result);
        padded.push(b' ');
        assert_eq!(parse_authorization(Some(&padded)), Err(BasicError::TooLong));
    }
    let Ok(Credentials::Basic { username, password }) = result else {
        return;
    };
    assert!(data.len() <= MAX_HEADER_LEN, "over-long header accepted");
    assert!(
        !username.chars().any(|c| c.is_ascii_control()),
        "control character in user name {username:?}"
    );
    assert!(
        !password.chars().any(|c| c.is_ascii_control()),
        "control character in password"
    );
    // The credentials must round-trip: re-encoding them gives a header that parses
    // to the same thing.
    let text = format!("{username}:{password}");
    let header = format!("Basic {}", STANDARD.encode(text.as_bytes()));
    assert_eq!(
        parse_authorization(Some(header.as_bytes())),
        Ok(Credentials::Basic {
            username: username.clone(),
            password: password.clone(),
        })
    );
    // Only the Basic scheme (any case) yields credentials.
    let trimmed = data.trim_ascii();
    assert!(trimmed.len() >= 5 && trimmed[..5].eq_ignore_ascii_case(b"basic"));
});
