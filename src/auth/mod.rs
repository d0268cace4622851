//! Authentication building blocks: everything between the `Authorization` header and
//! "this request runs as user X", except the user-table lookup, which the caller does.
//!
//! * [`basic`] parses the header into [`Credentials`] (strict RFC 7617 Basic).
//! * [`password`] implements Roundup's `{SCHEME}data` password storage
//!   ([`verify`], [`hash`], [`from_input`], [`needs_migration`]), interoperable with
//!   Python Roundup, plus our `{BCRYPT}` extension; [`HashPolicy`] is a tracker's
//!   configured scheme and work factors; [`crypt`] is crypt(3) for its `{crypt}`.
//! * [`cache`] remembers successful verifications ([`CredentialCache`]) so that
//!   PBKDF2 is not paid on every request.
//! * [`limiter`] is Roundup's failed-login limiter ([`LoginLimiter`], GCRA).
//!
//! Intended flow for one request (`App::login` in `app/login.rs`): parse the header; for
//! `Basic` credentials call [`LoginLimiter::check`] (refuse with 429 on `Err`); look
//! the user up; check the cache, else [`verify`] — against a dummy hash when there
//! is no such user, so that both cost one hash — (on success insert into the cache,
//! and re-hash when [`HashPolicy::needs_migration`]); on failure call
//! [`LoginLimiter::record_failure`] (429 on `Err`, else 403).

pub mod basic;
pub mod cache;
pub mod crypt;
pub mod limiter;
pub mod password;

pub use basic::{parse_authorization, BasicError, Credentials};
pub use cache::CredentialCache;
pub use limiter::{LoginLimiter, RetryAfter};
pub use password::{
    from_input, hash, needs_migration, scheme_of, verify, HashPolicy, PasswordError, Scheme,
};
