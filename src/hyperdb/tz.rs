//! Time zones as Roundup 2.6 handles them without `pytz`
//! (`roundup.date.get_timezone`, `SimpleTimezone`, the classic `userauditor`).
//!
//! Without pytz a time zone is a whole number of hours east of UTC: an integer string
//! (`"5"`, `"-3"`, `" +2 "`, anything Python's `int()` accepts), `UTC`, or one of the
//! fixed names `GMT`/`UCT` (0), `EST` (5), `MST` (7), `HST` (10). Note that Roundup maps
//! `EST` to **+5** hours (not −5); we keep that. Names are case-sensitive.

use super::pycompat::{py_int, py_repr, PyInt};
use thiserror::Error;

/// A fixed offset in whole hours east of UTC (Roundup's `SimpleTimezone` or `UTC`).
///
/// Roundup's `get_timezone` accepts any integer; offsets of 24 hours or more only fail
/// when a date is converted (see [`Tz::check`]). `hours` is clamped into `i64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tz {
    hours: i64,
}

/// Error from resolving or validating a time zone, mirroring the Python exception.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TzError {
    /// `KeyError(name)` from `get_timezone` for an unknown name; Display is Python's
    /// `str(KeyError)`, i.e. the `repr()` of the name, e.g. `'Europe/Berlin'`.
    #[error("{}", py_repr(.0))]
    Unknown(String),
    /// The classic userauditor's ValueError for an offset of 24 hours or more.
    #[error("Timezone \"{0}\" exceeds valid range [-23...23]")]
    OutOfRange(String),
    /// A `ValueError` raised by Python's datetime for an offset of 24 hours or more
    /// (outside the userauditor).
    #[error(
        "offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24)."
    )]
    BadOffset,
    /// An `OverflowError` raised by Python's `timedelta(hours=n)` for enormous offsets;
    /// the string is the exact Python message.
    #[error("{0}")]
    Overflow(String),
}

impl TzError {
    /// The Python exception class Roundup raises for this error (`KeyError`,
    /// `ValueError` or `OverflowError`), for building `<class 'X'>:msg` faults.
    pub fn python_class(&self) -> &'static str {
        match self {
            TzError::Unknown(_) => "KeyError",
            TzError::OutOfRange(_) | TzError::BadOffset => "ValueError",
            TzError::Overflow(_) => "OverflowError",
        }
    }
}

impl Tz {
    /// Coordinated Universal Time (offset 0).
    pub const UTC: Tz = Tz { hours: 0 };

    /// A zone `hours` east of UTC (any value; see [`Tz::check`]).
    pub fn from_hours(hours: i64) -> Tz {
        Tz { hours }
    }

    /// The offset in hours east of UTC.
    pub fn hours(&self) -> i64 {
        self.hours
    }

    /// Roundup's `get_timezone(tz)` without pytz: integers (Python `int()` syntax) first,
    /// then `UTC`, `GMT`, `UCT`, `EST`, `MST`, `HST`; anything else is `KeyError(tz)`.
    ///
    /// Like Roundup, this does not check the range; an offset of ±24 hours or more is
    /// accepted here and fails when used (use [`parse_timezone`] to validate).
    pub fn from_roundup_str(tz: &str) -> Result<Tz, TzError> {
        if let Some(v) = py_int(tz) {
            let hours = match v {
                PyInt::Value(v) => v,
                PyInt::Huge(true) => i64::MAX,
                PyInt::Huge(false) => i64::MIN,
            };
            return Ok(Tz { hours });
        }
        let hours = match tz {
            "UTC" | "GMT" | "UCT" => 0,
            "EST" => 5,
            "MST" => 7,
            "HST" => 10,
            _ => return Err(TzError::Unknown(tz.to_string())),
        };
        Ok(Tz { hours })
    }

    /// What Python's datetime says when this zone's `utcoffset()` is used: `Ok` for
    /// −23..=23 hours, else the ValueError or OverflowError Roundup would raise.
    pub fn check(&self) -> Result<(), TzError> {
        let h = self.hours;
        // timedelta(hours=h) normalises to days = floor(h / 24).
        let days = h.div_euclid(24);
        if i32::try_from(days).is_err() {
            return Err(TzError::Overflow(
                "Python int too large to convert to C int".to_string(),
            ));
        }
        if days.abs() > 999_999_999 {
            return Err(TzError::Overflow(format!(
                "days={days}; must have magnitude <= 999999999"
            )));
        }
        if h.abs() >= 24 {
            return Err(TzError::BadOffset);
        }
        Ok(())
    }
}

/// Validate a user's `timezone` value as the classic `userauditor` does (§7.4):
/// unknown names give `KeyError` (uncaught in Roundup, so the fault is
/// `<class 'KeyError'>:'Europe/Berlin'`), offsets outside −23..=23 give
/// `Timezone "99" exceeds valid range [-23...23]`, enormous ones an OverflowError.
pub fn parse_timezone(tz: &str) -> Result<Tz, TzError> {
    let zone = Tz::from_roundup_str(tz)?;
    match zone.check() {
        Ok(()) => Ok(zone),
        Err(TzError::BadOffset) => Err(TzError::OutOfRange(tz.to_string())),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_offsets() {
        assert_eq!(parse_timezone("UTC"), Ok(Tz::UTC));
        assert_eq!(parse_timezone("EST").map(|t| t.hours()), Ok(5));
        assert_eq!(parse_timezone("MST").map(|t| t.hours()), Ok(7));
        assert_eq!(parse_timezone("HST").map(|t| t.hours()), Ok(10));
        assert_eq!(parse_timezone(" -3 ").map(|t| t.hours()), Ok(-3));
        assert_eq!(parse_timezone("23").map(|t| t.hours()), Ok(23));
    }

    #[test]
    fn errors() {
        let e = parse_timezone("Europe/Berlin").unwrap_err();
        assert_eq!(e.to_string(), "'Europe/Berlin'");
        assert_eq!(e.python_class(), "KeyError");
        let e = parse_timezone("99").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Timezone \"99\" exceeds valid range [-23...23]"
        );
        assert_eq!(e.python_class(), "ValueError");
        assert_eq!(
            parse_timezone("24000000000").unwrap_err().to_string(),
            "days=1000000000; must have magnitude <= 999999999"
        );
        assert_eq!(
            parse_timezone("-24000000025").unwrap_err().to_string(),
            "days=-1000000002; must have magnitude <= 999999999"
        );
        assert_eq!(
            parse_timezone("99999999999999999999999")
                .unwrap_err()
                .to_string(),
            "Python int too large to convert to C int"
        );
        assert_eq!(parse_timezone("utc").unwrap_err().to_string(), "'utc'");
        assert_eq!(parse_timezone("5.5").unwrap_err().to_string(), "'5.5'");
    }
}
