//! Roundup password storage: the `{SCHEME}data` strings of `_user._password`.
//!
//! This module re-implements `roundup/password.py` (Roundup 2.6.0) so that hashes
//! written by either implementation verify in the other:
//!
//! | scheme | data |
//! |---|---|
//! | `PBKDF2S5` | `<rounds>$<h64 salt>$<h64 digest>`, PBKDF2-HMAC-SHA512, 20-byte salt, 64-byte key |
//! | `PBKDF2` | same, PBKDF2-HMAC-SHA1, 20-byte key |
//! | `SSHA` | base64 of `sha1(password ‖ salt) ‖ salt`, salt 36–51 random bytes |
//! | `SHA` / `MD5` | lower-case hex digest of the password |
//! | `crypt` | crypt(3) output; new hashes use traditional DES with a 2-character salt |
//! | `plaintext` | the password itself |
//! | `BCRYPT` | **our extension**: a standard `$2b$…` bcrypt string (Python Roundup rejects it) |
//!
//! Verification re-hashes the candidate with the stored parameters and compares in
//! constant time, as Roundup does (it compares the re-encoded strings).
//!
//! Deliberate differences from Roundup, all of them hardening:
//! * Work factors stored in a hash are capped ([`MAX_PBKDF2_ROUNDS`],
//!   [`MAX_BCRYPT_COST`], [`MAX_CRYPT_ROUNDS`]): a client may store a pre-hashed
//!   password, and an absurd round count would otherwise cost minutes of CPU per login.
//! * Base64 in stored hashes is decoded strictly (Python silently skips characters
//!   outside the alphabet); such a hash gives an error instead of a mismatch.
//! * `crypt` is always available (Python 3.13 dropped its `crypt` module). DES,
//!   MD5-, SHA-256-, SHA-512-, SHA1-, BSDi-crypt and bcrypt hashes are supported (see
//!   [`super::crypt`]); other libxcrypt formats such as yescrypt (`$y$`) give
//!   [`PasswordError::UnsupportedCrypt`].

use std::fmt;
use std::str::FromStr;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use md5::Md5;
use rand::rand_core::UnwrapErr;
use rand::rngs::SysRng;
use rand::{Rng, RngExt};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// Lowest PBKDF2 round count Roundup accepts, both when hashing and when verifying.
pub const MIN_PBKDF2_ROUNDS: u32 = 1000;

/// Highest PBKDF2 round count we accept (Roundup has no limit; see the module docs).
pub const MAX_PBKDF2_ROUNDS: u32 = 10_000_000;

/// Highest bcrypt cost we verify (`{BCRYPT}` or bcrypt inside `{crypt}`); 2^16 rounds.
pub const MAX_BCRYPT_COST: u32 = 16;

/// Cost used for new `{BCRYPT}` hashes by [`hash`] (the `bcrypt` crate's default, 12);
/// a tracker sets its own with `[xmlrpc_server] bcrypt_cost` ([`HashPolicy`]).
pub const BCRYPT_COST: u32 = bcrypt::DEFAULT_COST;

/// Lowest bcrypt cost the `bcrypt` crate accepts.
pub const MIN_BCRYPT_COST: u32 = 4;

/// Highest round count we verify for SHA-crypt, SHA1-crypt and BSDi-crypt hashes in `{crypt}`.
pub const MAX_CRYPT_ROUNDS: u32 = 1_000_000;

/// Length in bytes of the random salt of new PBKDF2 hashes (Roundup: 20).
const PBKDF2_SALT_LEN: usize = 20;

/// Characters of a traditional crypt(3) salt.
const CRYPT_SALT_CHARS: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Standard alphabet, padding required, but non-zero trailing bits accepted as
/// Python's `binascii` does.
const LENIENT_BITS: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Errors from parsing or verifying stored passwords.
///
/// Messages follow `roundup/password.py` where Roundup has an equivalent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// The `{SCHEME}` is not one we know (`{CRYPT}` is unknown: the name is `crypt`).
    #[error("Unknown encryption scheme: '{0}'")]
    UnknownScheme(String),
    /// A stored value without a `{SCHEME}` prefix (or with empty data).
    #[error("stored password has no {{SCHEME}} prefix")]
    NoScheme,
    /// A PBKDF2 value that is not `rounds$salt$digest`.
    #[error("invalid PBKDF2 hash (wrong number of separators)")]
    WrongSeparators,
    /// A PBKDF2 round count written with a leading zero.
    #[error("invalid PBKDF2 hash (zero-padded rounds)")]
    ZeroPaddedRounds,
    /// A PBKDF2 round count that is not an integer.
    #[error("invalid PBKDF2 hash (invalid rounds)")]
    InvalidRounds,
    /// A PBKDF2 round count below [`MIN_PBKDF2_ROUNDS`].
    #[error("invalid PBKDF2 hash (rounds too low)")]
    RoundsTooLow,
    /// A work factor above our caps (not a Roundup error; see the module docs).
    #[error("password hash work factor too high")]
    CostTooHigh,
    /// Salt or digest that is not valid (h64 or standard) base64.
    #[error("Invalid base64 input")]
    InvalidBase64,
    /// A `{BCRYPT}` value that is not a valid bcrypt string.
    #[error("invalid bcrypt hash")]
    InvalidBcrypt,
    /// A `{crypt}` value in a crypt(3) format we cannot compute.
    #[error("unsupported crypt(3) hash format")]
    UnsupportedCrypt,
    /// An empty Password property value given to [`from_input`] (Roundup: no password).
    #[error("empty password value")]
    Empty,
}

/// A password storage scheme, named exactly (case-sensitively) as in Roundup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `PBKDF2S5`: PBKDF2-HMAC-SHA512, Roundup's default and only non-deprecated scheme.
    Pbkdf2S5,
    /// `PBKDF2`: PBKDF2-HMAC-SHA1 (deprecated).
    Pbkdf2,
    /// `SSHA`: salted SHA-1 (deprecated).
    Ssha,
    /// `SHA`: unsalted SHA-1 hex (deprecated).
    Sha,
    /// `MD5`: unsalted MD5 hex (deprecated).
    Md5,
    /// `crypt`: crypt(3), traditional DES for new hashes (deprecated).
    Crypt,
    /// `plaintext`: the password itself (deprecated).
    Plaintext,
    /// `BCRYPT`: our extension, a standard `$2b$` bcrypt string; unknown to Python Roundup.
    Bcrypt,
}

impl Scheme {
    /// All schemes, Roundup's order first (default, deprecated ones) then ours.
    pub const ALL: [Scheme; 8] = [
        Scheme::Pbkdf2S5,
        Scheme::Pbkdf2,
        Scheme::Ssha,
        Scheme::Sha,
        Scheme::Md5,
        Scheme::Crypt,
        Scheme::Plaintext,
        Scheme::Bcrypt,
    ];

    /// The scheme name as written between the braces, e.g. `PBKDF2S5` or `crypt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Pbkdf2S5 => "PBKDF2S5",
            Scheme::Pbkdf2 => "PBKDF2",
            Scheme::Ssha => "SSHA",
            Scheme::Sha => "SHA",
            Scheme::Md5 => "MD5",
            Scheme::Crypt => "crypt",
            Scheme::Plaintext => "plaintext",
            Scheme::Bcrypt => "BCRYPT",
        }
    }

    /// Parses a scheme name, case-sensitively as Roundup (`crypt` yes, `CRYPT` no).
    pub fn parse(name: &str) -> Option<Scheme> {
        Scheme::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// True for the schemes Roundup lists as deprecated (migrated on login).
    ///
    /// `PBKDF2S5` and our `BCRYPT` are not deprecated.
    pub fn is_deprecated(self) -> bool {
        !matches!(self, Scheme::Pbkdf2S5 | Scheme::Bcrypt)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scheme {
    type Err = PasswordError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scheme::parse(s).ok_or_else(|| PasswordError::UnknownScheme(s.to_owned()))
    }
}

/// Splits `{SCHEME}data` the way Roundup's `re.match(r'{(\w+)}(.+)', s)` does.
///
/// The match is anchored at the start only: data runs up to the first newline and
/// must not be empty, and `\w` is Unicode-aware as in Python 3.
fn split_stored(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix('{')?;
    let close = rest.find('}')?;
    let name = &rest[..close];
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    let after = &rest[close + 1..];
    let data = match after.find('\n') {
        Some(nl) => &after[..nl],
        None => after,
    };
    if data.is_empty() {
        return None;
    }
    Some((name, data))
}

/// The scheme name of a stored `{SCHEME}data` value, as Roundup's journal records it
/// (`{SCHEME}*encrypted*`); `None` when the value has no such prefix.
pub fn scheme_of(stored: &str) -> Option<&str> {
    split_stored(stored).map(|(name, _)| name)
}

/// Roundup's "h64" encoding: standard base64 with `.` for `+` and no padding.
pub fn h64_encode(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(data)
        .replace('+', ".")
}

/// Decodes Roundup's "h64" encoding (padding re-added; length ≡ 1 mod 4 is invalid).
///
/// Like Python's decoder this also accepts `+` for 62; unlike it, other characters
/// outside the alphabet are an error rather than skipped.
pub fn h64_decode(text: &str) -> Result<Vec<u8>, PasswordError> {
    let mut s = text.replace('.', "+");
    match s.len() % 4 {
        0 => {}
        1 => return Err(PasswordError::InvalidBase64),
        2 => s.push_str("=="),
        _ => s.push('='),
    }
    LENIENT_BITS
        .decode(s.as_bytes())
        .map_err(|_| PasswordError::InvalidBase64)
}

/// Constant-time equality of two strings (the length is not hidden).
fn ct_str_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Verifies `candidate` against a stored `{SCHEME}data` value.
///
/// `Ok(false)` is a wrong password; `Err` means the stored value cannot be checked
/// (unknown scheme, malformed data, work factor above our caps), which Roundup
/// reports as an exception. A missing (NULL) stored password is the caller's case.
pub fn verify(stored: &str, candidate: &str) -> Result<bool, PasswordError> {
    let (name, data) = split_stored(stored).ok_or(PasswordError::NoScheme)?;
    let scheme = Scheme::parse(name).ok_or_else(|| PasswordError::UnknownScheme(name.into()))?;
    let pw = candidate.as_bytes();
    match scheme {
        Scheme::Pbkdf2S5 | Scheme::Pbkdf2 => verify_pbkdf2(scheme, data, pw),
        Scheme::Ssha => {
            let raw = LENIENT_BITS
                .decode(data.trim_ascii().as_bytes())
                .map_err(|_| PasswordError::InvalidBase64)?;
            let salt = raw.get(20..).unwrap_or(&[]);
            Ok(ct_str_eq(&ssha(pw, salt), data))
        }
        Scheme::Sha => Ok(ct_str_eq(&hex(&Sha1::digest(pw)), data)),
        Scheme::Md5 => Ok(ct_str_eq(&hex(&Md5::digest(pw)), data)),
        Scheme::Crypt => verify_crypt(data, pw),
        Scheme::Plaintext => Ok(ct_str_eq(candidate, data)),
        Scheme::Bcrypt => {
            check_bcrypt_cost(data)?;
            bcrypt::verify(pw, data).map_err(|_| PasswordError::InvalidBcrypt)
        }
    }
}

/// Parsed PBKDF2 round count.
struct Rounds {
    /// The value (saturated; negative values are reported as 0).
    value: u64,
    /// True when the text is exactly the `%d` rendering Roundup writes back.
    canonical: bool,
}

/// Parses the rounds field like Roundup's `pbkdf2_unpack` (`startswith("0")`, then
/// Python `int()`, which also takes whitespace, a sign and `_` between digits).
fn parse_rounds(text: &str) -> Result<Rounds, PasswordError> {
    if text.starts_with('0') {
        return Err(PasswordError::ZeroPaddedRounds);
    }
    let t = text.trim_ascii();
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let bytes = digits.as_bytes();
    let well_formed = !bytes.is_empty()
        && bytes[0].is_ascii_digit()
        && bytes[bytes.len() - 1].is_ascii_digit()
        && bytes.iter().all(|b| b.is_ascii_digit() || *b == b'_')
        && !digits.contains("__");
    if !well_formed {
        return Err(PasswordError::InvalidRounds);
    }
    let mut value: u64 = 0;
    for b in bytes.iter().filter(|b| b.is_ascii_digit()) {
        value = value.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    let canonical = t.len() == text.len() && digits.len() == text.len() && !digits.contains('_');
    if negative {
        value = 0;
    }
    Ok(Rounds { value, canonical })
}

/// Splits PBKDF2 data into (rounds, salt text, raw salt, digest text), in Roundup's
/// order of checks.
fn pbkdf2_unpack(data: &str) -> Result<(Rounds, &str, Vec<u8>, &str), PasswordError> {
    let mut parts = data.split('$');
    let (Some(rounds), Some(salt), Some(digest), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(PasswordError::WrongSeparators);
    };
    let rounds = parse_rounds(rounds)?;
    let raw_salt = h64_decode(salt)?;
    Ok((rounds, salt, raw_salt, digest))
}

fn verify_pbkdf2(scheme: Scheme, data: &str, pw: &[u8]) -> Result<bool, PasswordError> {
    let (rounds, _salt, raw_salt, digest) = pbkdf2_unpack(data)?;
    if rounds.value < u64::from(MIN_PBKDF2_ROUNDS) {
        return Err(PasswordError::RoundsTooLow);
    }
    if !rounds.canonical {
        // Roundup re-renders the rounds with %d and compares strings: never equal.
        return Ok(false);
    }
    let rounds = u32::try_from(rounds.value)
        .ok()
        .filter(|r| *r <= MAX_PBKDF2_ROUNDS)
        .ok_or(PasswordError::CostTooHigh)?;
    let computed = pbkdf2_digest(scheme, pw, &raw_salt, rounds);
    Ok(ct_str_eq(&h64_encode(&computed), digest))
}

/// The raw PBKDF2 key: SHA-512 with 64 bytes for `PBKDF2S5`, SHA-1 with 20 otherwise.
fn pbkdf2_digest(scheme: Scheme, pw: &[u8], salt: &[u8], rounds: u32) -> Vec<u8> {
    if scheme == Scheme::Pbkdf2S5 {
        let mut out = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<sha2::Sha512>(pw, salt, rounds, &mut out);
        out.to_vec()
    } else {
        let mut out = [0u8; 20];
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(pw, salt, rounds, &mut out);
        out.to_vec()
    }
}

/// Roundup's `ssha()`: base64 (padded) of `sha1(password ‖ salt) ‖ salt`.
fn ssha(pw: &[u8], salt: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(pw);
    h.update(salt);
    let mut raw = h.finalize().to_vec();
    raw.extend_from_slice(salt);
    STANDARD.encode(raw)
}

/// Lower-case hex, as Python's `hexdigest()`.
fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Rejects bcrypt strings whose cost exceeds [`MAX_BCRYPT_COST`].
fn check_bcrypt_cost(data: &str) -> Result<(), PasswordError> {
    // `$2b$12$…`: the cost is the second `$` field.
    let cost = data.split('$').nth(2).ok_or(PasswordError::InvalidBcrypt)?;
    match cost.parse::<u32>() {
        Ok(c) if c > MAX_BCRYPT_COST => Err(PasswordError::CostTooHigh),
        Ok(_) => Ok(()),
        Err(_) => Err(PasswordError::InvalidBcrypt),
    }
}

/// Value of a crypt(3) base64 character (`./0-9A-Za-z`).
fn crypt_b64_value(c: u8) -> Option<u32> {
    CRYPT_SALT_CHARS
        .iter()
        .position(|x| *x == c)
        .and_then(|p| u32::try_from(p).ok())
}

/// Rejects crypt(3) strings whose work factor exceeds our caps, and formats we
/// cannot compute.
fn check_crypt_cost(data: &str) -> Result<(), PasswordError> {
    if let Some(rest) = data.strip_prefix('_') {
        // BSDi: 4 characters of rounds, little-endian 6-bit groups.
        let rounds = rest
            .bytes()
            .take(4)
            .enumerate()
            .try_fold(0u32, |acc, (i, c)| {
                crypt_b64_value(c).map(|v| acc | (v << (6 * i)))
            });
        return match rounds {
            Some(r) if r > MAX_CRYPT_ROUNDS => Err(PasswordError::CostTooHigh),
            _ => Ok(()),
        };
    }
    let Some(rest) = data.strip_prefix('$') else {
        return Ok(()); // traditional DES
    };
    let mut fields = rest.split('$');
    let id = fields.next().unwrap_or_default();
    let param = fields.next().unwrap_or_default();
    let too_high = |n: Option<u32>, max: u32| match n {
        Some(n) if n > max => Err(PasswordError::CostTooHigh),
        _ => Ok(()),
    };
    match id {
        "1" => Ok(()),
        "2a" | "2b" | "2y" => too_high(param.parse().ok(), MAX_BCRYPT_COST),
        "5" | "6" => too_high(
            param.strip_prefix("rounds=").and_then(|n| n.parse().ok()),
            MAX_CRYPT_ROUNDS,
        ),
        "sha1" => too_high(param.parse().ok(), MAX_CRYPT_ROUNDS),
        _ => Err(PasswordError::UnsupportedCrypt),
    }
}

fn verify_crypt(data: &str, pw: &[u8]) -> Result<bool, PasswordError> {
    check_crypt_cost(data)?;
    if ["$2a$", "$2b$", "$2y$"].iter().any(|p| data.starts_with(p)) {
        return Ok(super::crypt::bcrypt_matches(pw, data));
    }
    // Roundup: crypt.crypt(candidate, stored) == stored. An invalid salt makes
    // crypt(3) fail ("*0"), which never equals the stored string.
    Ok(super::crypt::crypt(pw, data).is_some_and(|computed| ct_str_eq(&computed, data)))
}

/// The operating system's random number generator: salts come straight from it
/// (Roundup's from the `secrets` module). A failure to read it panics: there is no
/// safe way to go on without randomness.
fn os_rng() -> UnwrapErr<SysRng> {
    UnwrapErr(SysRng)
}

/// Hashes `plaintext` with `scheme` and a fresh random salt, returning `{SCHEME}data`
/// exactly as Roundup would write it, so Python Roundup can verify it.
///
/// `pbkdf2_rounds` applies to the PBKDF2 schemes and is clamped to
/// [`MIN_PBKDF2_ROUNDS`]..=[`MAX_PBKDF2_ROUNDS`] (Roundup raises below 1000; the
/// configuration layer should reject such values). `BCRYPT` uses [`BCRYPT_COST`];
/// [`HashPolicy::hash`] takes the configured cost instead.
pub fn hash(scheme: Scheme, plaintext: &str, pbkdf2_rounds: u32) -> String {
    hash_with(scheme, plaintext, pbkdf2_rounds, BCRYPT_COST)
}

/// [`hash`] with an explicit bcrypt cost (clamped to 4..=[`MAX_BCRYPT_COST`], so
/// that every hash written here can be verified here).
fn hash_with(scheme: Scheme, plaintext: &str, pbkdf2_rounds: u32, bcrypt_cost: u32) -> String {
    let pw = plaintext.as_bytes();
    let data = match scheme {
        Scheme::Pbkdf2S5 | Scheme::Pbkdf2 => {
            let rounds = pbkdf2_rounds.clamp(MIN_PBKDF2_ROUNDS, MAX_PBKDF2_ROUNDS);
            let mut salt = [0u8; PBKDF2_SALT_LEN];
            os_rng().fill_bytes(&mut salt);
            let digest = pbkdf2_digest(scheme, pw, &salt, rounds);
            format!("{rounds}${}${}", h64_encode(&salt), h64_encode(&digest))
        }
        Scheme::Ssha => {
            // Roundup: randbelow(52 - 36) + 36 bytes.
            let mut rng = os_rng();
            let mut salt = vec![0u8; rng.random_range(36..52)];
            rng.fill_bytes(&mut salt);
            ssha(pw, &salt)
        }
        Scheme::Sha => hex(&Sha1::digest(pw)),
        Scheme::Md5 => hex(&Md5::digest(pw)),
        Scheme::Crypt => {
            let mut rng = os_rng();
            let salt: String = (0..2)
                .map(|_| char::from(CRYPT_SALT_CHARS[rng.random_range(0..CRYPT_SALT_CHARS.len())]))
                .collect();
            // Traditional DES, what Roundup writes (weak: prefer another scheme).
            super::crypt::des_crypt(pw, &salt).expect("salt drawn from the crypt alphabet")
        }
        Scheme::Plaintext => plaintext.to_owned(),
        Scheme::Bcrypt => bcrypt::hash(pw, bcrypt_cost.clamp(MIN_BCRYPT_COST, MAX_BCRYPT_COST))
            .expect("cost clamped to bcrypt's valid range"),
    };
    format!("{{{scheme}}}{data}")
}

/// Converts a client-supplied Password property value to the string to store, as
/// Roundup's `hyperdb.Password.from_raw` (`Password(encrypted=raw, strict=True)`).
///
/// A value matching `{(\w+)}(.+)` (anchored at the start, data up to the first
/// newline) is taken as pre-hashed and stored as given if the scheme is known,
/// otherwise [`PasswordError::UnknownScheme`] (`Unknown encryption scheme: 'FOO'`).
/// Anything else is a plaintext password, hashed with `default_scheme` and `rounds`.
/// Roundup treats an empty value as "no password"; the caller must handle that
/// before calling, and gets [`PasswordError::Empty`] otherwise. Pre-hashed data is
/// not validated (as in Roundup); a malformed one fails later at [`verify`].
pub fn from_input(raw: &str, default_scheme: Scheme, rounds: u32) -> Result<String, PasswordError> {
    if raw.is_empty() {
        return Err(PasswordError::Empty);
    }
    match split_stored(raw) {
        Some((name, data)) => {
            let scheme =
                Scheme::parse(name).ok_or_else(|| PasswordError::UnknownScheme(name.to_owned()))?;
            Ok(format!("{{{scheme}}}{data}"))
        }
        None => Ok(hash(default_scheme, raw, rounds)),
    }
}

/// True when a stored password should be re-hashed on a successful login, as
/// Roundup's `Password.needs_migration`: a deprecated scheme, or PBKDF2S5 with fewer
/// than 1000 or fewer than `configured_rounds` rounds (capped at
/// [`MAX_PBKDF2_ROUNDS`] like [`hash`], so a fresh hash never needs migration).
///
/// `BCRYPT`, unknown schemes and malformed values give `false` (Roundup would raise;
/// such values fail verification anyway).
pub fn needs_migration(stored: &str, configured_rounds: u32) -> bool {
    let Some((name, data)) = split_stored(stored) else {
        return false;
    };
    match Scheme::parse(name) {
        Some(Scheme::Pbkdf2S5) => match pbkdf2_unpack(data) {
            Ok((rounds, ..)) => {
                // Clamped as in `hash`, so that a re-hash always satisfies the test.
                let wanted = configured_rounds.clamp(MIN_PBKDF2_ROUNDS, MAX_PBKDF2_ROUNDS);
                rounds.value < u64::from(wanted)
            }
            Err(_) => false,
        },
        Some(s) => s.is_deprecated(),
        None => false,
    }
}

/// How a tracker hashes new passwords (its configured scheme and work factors),
/// and so which stored hashes are outdated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashPolicy {
    /// The scheme of new hashes (`[xmlrpc_server] password_default_scheme`).
    pub scheme: Scheme,
    /// PBKDF2 rounds of new hashes (`[main] password_pbkdf2_default_rounds`).
    pub pbkdf2_rounds: u32,
    /// bcrypt cost of new `{BCRYPT}` hashes (`[xmlrpc_server] bcrypt_cost`).
    pub bcrypt_cost: u32,
}

impl Default for HashPolicy {
    /// Roundup's defaults: `PBKDF2S5` with 250 000 rounds (bcrypt cost 12).
    fn default() -> Self {
        HashPolicy {
            scheme: Scheme::Pbkdf2S5,
            pbkdf2_rounds: 250_000,
            bcrypt_cost: BCRYPT_COST,
        }
    }
}

impl HashPolicy {
    /// Hashes `plaintext` with this policy's scheme and work factor.
    pub fn hash(&self, plaintext: &str) -> String {
        hash_with(self.scheme, plaintext, self.pbkdf2_rounds, self.bcrypt_cost)
    }

    /// [`from_input`] with this policy: plaintext is hashed with its scheme and
    /// work factor, pre-hashed values are stored as given.
    pub fn from_input(&self, raw: &str) -> Result<String, PasswordError> {
        if raw.is_empty() {
            return Err(PasswordError::Empty);
        }
        match split_stored(raw) {
            Some(_) => from_input(raw, self.scheme, self.pbkdf2_rounds),
            None => Ok(self.hash(raw)),
        }
    }

    /// True when a stored hash should be re-hashed with [`hash`](Self::hash) after
    /// the password was verified (`[web] migrate_passwords`): its scheme is not this
    /// policy's scheme (so every deprecated scheme, as in Roundup's
    /// `needs_migration`, and also `PBKDF2S5` ↔ `BCRYPT` after the configured
    /// scheme changed), or it is this scheme with a lower work factor (PBKDF2 rounds
    /// or bcrypt cost, clamped like [`hash`](Self::hash) so that a fresh hash never
    /// needs migration). Unknown schemes and malformed values give `false` (they
    /// fail verification anyway).
    pub fn needs_migration(&self, stored: &str) -> bool {
        let Some((name, data)) = split_stored(stored) else {
            return false;
        };
        let Some(scheme) = Scheme::parse(name) else {
            return false;
        };
        if scheme != self.scheme {
            return true;
        }
        match scheme {
            Scheme::Pbkdf2S5 | Scheme::Pbkdf2 => match pbkdf2_unpack(data) {
                Ok((rounds, ..)) => {
                    let wanted = self
                        .pbkdf2_rounds
                        .clamp(MIN_PBKDF2_ROUNDS, MAX_PBKDF2_ROUNDS);
                    rounds.value < u64::from(wanted)
                }
                Err(_) => false,
            },
            Scheme::Bcrypt => match data.split('$').nth(2).map(str::parse::<u32>) {
                Some(Ok(cost)) => cost < self.bcrypt_cost.clamp(MIN_BCRYPT_COST, MAX_BCRYPT_COST),
                _ => false,
            },
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h64_roundtrip() {
        let salt = b"0123456789abcdefghij";
        assert_eq!(h64_encode(salt), "MDEyMzQ1Njc4OWFiY2RlZmdoaWo");
        assert_eq!(h64_decode("MDEyMzQ1Njc4OWFiY2RlZmdoaWo").unwrap(), salt);
        assert_eq!(h64_encode(&[0xfb, 0xff]), "./8");
        assert_eq!(h64_decode("./8").unwrap(), [0xfb, 0xff]);
        assert_eq!(h64_decode("+/8").unwrap(), [0xfb, 0xff]);
        assert_eq!(h64_decode("A"), Err(PasswordError::InvalidBase64));
        assert_eq!(h64_decode("AA!A"), Err(PasswordError::InvalidBase64));
    }

    #[test]
    fn split_like_python_regex() {
        assert_eq!(split_stored("{SHA}abc"), Some(("SHA", "abc")));
        assert_eq!(split_stored("{SHA}abc\ndef"), Some(("SHA", "abc")));
        assert_eq!(split_stored("{SHA}"), None);
        assert_eq!(split_stored("{SHA}\nabc"), None);
        assert_eq!(split_stored("{}abc"), None);
        assert_eq!(split_stored("{S-A}abc"), None);
        assert_eq!(split_stored(" {SHA}abc"), None);
        assert_eq!(split_stored("{SHA}}"), Some(("SHA", "}")));
        assert_eq!(split_stored("{Ünï_1}x"), Some(("Ünï_1", "x")));
    }

    #[test]
    fn rounds_parsing() {
        let r = parse_rounds("1000").unwrap();
        assert!(r.canonical && r.value == 1000);
        let r = parse_rounds("+1000").unwrap();
        assert!(!r.canonical && r.value == 1000);
        let r = parse_rounds(" 1_000 ").unwrap();
        assert!(!r.canonical && r.value == 1000);
        assert_eq!(parse_rounds("-5").unwrap().value, 0);
        assert!(matches!(
            parse_rounds("0999"),
            Err(PasswordError::ZeroPaddedRounds)
        ));
        assert!(matches!(
            parse_rounds("0"),
            Err(PasswordError::ZeroPaddedRounds)
        ));
        assert!(matches!(
            parse_rounds(""),
            Err(PasswordError::InvalidRounds)
        ));
        assert!(matches!(
            parse_rounds("1__0"),
            Err(PasswordError::InvalidRounds)
        ));
        assert!(matches!(
            parse_rounds("1e3"),
            Err(PasswordError::InvalidRounds)
        ));
        assert_eq!(
            parse_rounds("99999999999999999999999").unwrap().value,
            u64::MAX
        );
    }

    #[test]
    fn pbkdf2_rfc6070_vector() {
        assert_eq!(
            hex(&pbkdf2_digest(Scheme::Pbkdf2, b"password", b"salt", 4096)),
            "4b007901b765489abead49d926f721d065a429c1"
        );
    }

    #[test]
    fn crypt_cost_caps() {
        assert_eq!(check_crypt_cost("abfbSiOREpOPQ"), Ok(()));
        assert_eq!(check_crypt_cost("$1$abc$x"), Ok(()));
        assert_eq!(
            check_crypt_cost("$2b$31$x"),
            Err(PasswordError::CostTooHigh)
        );
        assert_eq!(check_crypt_cost("$2b$10$x"), Ok(()));
        assert_eq!(
            check_crypt_cost("$6$rounds=999999999$salt$x"),
            Err(PasswordError::CostTooHigh)
        );
        assert_eq!(check_crypt_cost("$6$rounds=5000$salt$x"), Ok(()));
        assert_eq!(check_crypt_cost("$6$salt$x"), Ok(()));
        assert_eq!(
            check_crypt_cost("_zzzzsalt"),
            Err(PasswordError::CostTooHigh)
        );
        assert_eq!(check_crypt_cost("_J9..salt"), Ok(()));
        assert_eq!(
            check_crypt_cost("$y$j9T$x$y"),
            Err(PasswordError::UnsupportedCrypt)
        );
    }
}
