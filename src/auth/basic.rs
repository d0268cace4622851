//! Parsing of the HTTP `Authorization` header (Basic scheme, RFC 7617).
//!
//! Outcomes, compared with Roundup's standalone server (reference §1.1):
//!
//! | header | Roundup | here |
//! |---|---|---|
//! | absent, empty | anonymous | [`Credentials::Anonymous`] |
//! | other scheme (`Bearer x`) or garbage without `basic` | anonymous (dropped connection when there is no space) | [`Credentials::Anonymous`] |
//! | `Basic` with no or empty credentials | dropped connection / anonymous | [`BasicError::MissingCredentials`] |
//! | non-alphabet characters (`Basic !!!`) | silently skipped (`!!!!` → anonymous) | [`BasicError::InvalidBase64`] |
//! | missing or wrong `=` padding | error (dropped connection) | [`BasicError::InvalidBase64`] |
//! | decoded text not UTF-8 | error (dropped connection) | [`BasicError::InvalidUtf8`] |
//! | control characters in user or password | accepted | [`BasicError::ControlCharacter`] (RFC 7617 §2 forbids them) |
//! | `user:pa:ss` | dropped connection (split on every `:`) | password `pa:ss` (split on the first `:`) |
//! | `user` (no colon) | user with no password: logs in a user that has none | [`BasicError::NoColon`] (RFC 7617 requires the `:`; Roundup's web path fails such a login too) |
//! | empty user (`:` or `:pw`) | anonymous (then checked against the supplied password) | [`Credentials::Basic`] with an empty user name: a failed login, as on Roundup's web path |
//! | longer than [`MAX_HEADER_LEN`] | accepted | [`BasicError::TooLong`] |
//!
//! Every error should become a 4xx answer; none of them is a login failure for the
//! rate limiter, since no username could be extracted.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Longest `Authorization` header value accepted (8 KiB).
pub const MAX_HEADER_LEN: usize = 8 * 1024;

/// Who the client claims to be.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No (usable) credentials: the request runs as the `anonymous` user.
    Anonymous,
    /// Basic credentials (`user:password`).
    Basic {
        /// The user name, exactly as sent (no case folding or trimming). It may be
        /// empty (`:pw`), which no user has: the login fails.
        username: String,
        /// The password, possibly empty (`user:`). An empty password logs in a user
        /// without a stored password only with `[web] login_empty_passwords`.
        password: String,
    },
}

impl fmt::Debug for Credentials {
    /// Never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, password } => f
                .debug_struct("Basic")
                .field("username", username)
                .field(
                    "password",
                    &if password.is_empty() {
                        ""
                    } else {
                        "<redacted>"
                    },
                )
                .finish(),
        }
    }
}

/// A malformed Basic `Authorization` header (answer with a 4xx status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BasicError {
    /// The header value is longer than [`MAX_HEADER_LEN`].
    #[error("Authorization header too long")]
    TooLong,
    /// `Basic` without credentials.
    #[error("Basic authorization without credentials")]
    MissingCredentials,
    /// The credentials are not strict, padded, standard-alphabet base64.
    #[error("Basic authorization credentials are not valid base64")]
    InvalidBase64,
    /// The decoded credentials are not UTF-8.
    #[error("Basic authorization credentials are not valid UTF-8")]
    InvalidUtf8,
    /// The decoded user name or password contains a control character.
    #[error("Basic authorization credentials contain a control character")]
    ControlCharacter,
    /// The decoded credentials have no `:` between user name and password.
    #[error("Basic authorization credentials have no ':' between user name and password")]
    NoColon,
}

/// Parses an `Authorization` header value (raw bytes; `None` when absent).
///
/// The scheme is matched case-insensitively; schemes other than `Basic` give
/// [`Credentials::Anonymous`], as in Roundup. The credentials are decoded as strict
/// base64 — a deliberate deviation: Roundup silently drops characters outside the
/// alphabet, so `Basic !!!!` logs in as anonymous there and is an error here. The
/// decoded text must be UTF-8 without control characters and is split on the
/// **first** `:`, so passwords may contain `:`; text without a `:` is malformed
/// ([`BasicError::NoColon`]). An empty user name is returned as such (the login
/// then fails), not turned into anonymous.
pub fn parse_authorization(header: Option<&[u8]>) -> Result<Credentials, BasicError> {
    let Some(raw) = header else {
        return Ok(Credentials::Anonymous);
    };
    if raw.len() > MAX_HEADER_LEN {
        return Err(BasicError::TooLong);
    }
    let value = raw.trim_ascii();
    let (scheme, rest) = match value.iter().position(|b| *b == b' ' || *b == b'\t') {
        Some(i) => (&value[..i], value[i..].trim_ascii_start()),
        None => (value, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Ok(Credentials::Anonymous);
    }
    if rest.is_empty() {
        return Err(BasicError::MissingCredentials);
    }
    let decoded = STANDARD
        .decode(rest)
        .map_err(|_| BasicError::InvalidBase64)?;
    let text = String::from_utf8(decoded).map_err(|_| BasicError::InvalidUtf8)?;
    if text.chars().any(|c| c.is_ascii_control()) {
        return Err(BasicError::ControlCharacter);
    }
    let (username, password) = text.split_once(':').ok_or(BasicError::NoColon)?;
    Ok(Credentials::Basic {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}
