//! Roundup's `Interval` (`roundup/date.py`): parsing, `str()`/`repr()`, the serialised
//! form and the seconds value used for the `__<prop>_int__` column.
//!
//! Like Roundup, an interval keeps the components exactly as given (no normalisation:
//! `25:00` stays 25 hours, `2w` becomes 14 days). Equality and ordering compare
//! [`Interval::as_seconds`], as Python's comparison operators do.

use super::date::{set_fields, Date, DateError, Fields};
use super::pycompat::{cap, compile, digits_i64, WS};
use super::tz::Tz;
use regex::Regex;
use std::cmp::Ordering;
use std::fmt;
use std::sync::LazyLock;
use thiserror::Error;

/// A Roundup interval: a sign and un-normalised year, month, day, hour, minute and
/// second counts.
///
/// Invariant: [`Interval::as_seconds`] fits an `i64` (so it can be stored in SQLite).
#[derive(Debug, Clone, Copy)]
pub struct Interval {
    sign: i8,
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
}

/// Why an interval spec was rejected; Display is Roundup's message text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IntervalError {
    /// No interval component and no date spec was found.
    #[error("Not an interval spec: \"{0}\" ([+-] [#y] [#m] [#w] [#d] [[[H]H:MM]:SS])")]
    NotAnIntervalSpec(String),
    /// Roundup's other "not an interval" text (unreachable in practice: the pattern
    /// always matches); kept for completeness.
    #[error("Not an interval spec: \"{0}\" ([+-] [#y] [#m] [#w] [#d] [[[H]H:MM]:SS] [date spec])")]
    NotAnIntervalOrDateSpec(String),
    /// The embedded date spec (interval = now − date) is invalid.
    #[error(transparent)]
    Date(#[from] DateError),
    /// The seconds value does not fit a 64-bit integer. Roundup accepts such intervals
    /// and fails when storing them, with this OverflowError from the sqlite driver.
    #[error("Python int too large to convert to SQLite INTEGER")]
    TooLarge,
}

impl IntervalError {
    /// The Python exception class behind this error (`ValueError` or `OverflowError`).
    pub fn python_class(&self) -> &'static str {
        match self {
            IntervalError::Date(d) => d.python_class(),
            IntervalError::TooLarge => "OverflowError",
            _ => "ValueError",
        }
    }
}

static SERIALISED_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"^(?P<s>[+-])?1?(?P<y>([ ]{3}\d|\d{4}))(?P<m>\d{2})(?P<d>\d{2})",
        r"(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})"
    ))
});

static INTERVAL_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(&format!(
        concat!(
            r"^[{ws}]*(?P<s>[-+])?",
            r"[{ws}]*((?P<y>\d+[{ws}]*)y)?",
            r"[{ws}]*((?P<m>\d+[{ws}]*)m)?",
            r"[{ws}]*((?P<w>\d+[{ws}]*)w)?",
            r"[{ws}]*((?P<d>\d+[{ws}]*)d)?",
            r"[{ws}]*(((?P<H>\d+):(?P<M>\d+))?(:(?P<S>\d+))?)?",
            r"[{ws}]*(?P<D>(\d\d\d\d[/-])?(\d\d?)?[/-](\d\d?)?\.?(\d?\d:\d\d)?(:\d\d)?)?"
        ),
        ws = WS
    ))
});

/// `Interval.set(spec, allowdate, add_granularity)`.
pub(crate) fn parse_impl(
    spec: &str,
    allowdate: bool,
    add_granularity: bool,
    now: &Date,
) -> Result<Interval, IntervalError> {
    let (c, allowdate) = match SERIALISED_RE.captures(spec) {
        Some(c) => (c, false),
        None => match INTERVAL_RE.captures(spec) {
            Some(c) => (c, allowdate),
            None => return Err(IntervalError::NotAnIntervalOrDateSpec(spec.to_string())),
        },
    };
    let negative = cap(&c, "s") == Some("-");

    // The components in Python's `info` dict: y, m, w, d, H, M, S.
    const NAMES: [&str; 7] = ["y", "m", "w", "d", "H", "M", "S"];
    let mut vals: [Option<i64>; 7] = [None; 7];
    for (slot, name) in vals.iter_mut().zip(NAMES) {
        if let Some(text) = cap(&c, name) {
            *slot = Some(digits_i64(text).ok_or(IntervalError::TooLarge)?);
        }
    }
    if add_granularity {
        // Python's order: S, M, H, d, w, m, y.
        for idx in [6, 5, 4, 3, 2, 1, 0] {
            if let Some(v) = vals[idx] {
                let step = if negative { -1 } else { 1 };
                vals[idx] = Some(v.checked_add(step).ok_or(IntervalError::TooLarge)?);
                break;
            }
        }
    }
    let date_part = cap(&c, "D");
    if vals.iter().all(Option::is_none) && date_part.is_none_or(str::is_empty) {
        return Err(IntervalError::NotAnIntervalSpec(spec.to_string()));
    }
    let [y, m, w, d, hh, mm, ss] = vals.map(|v| v.unwrap_or(0));
    let day = w
        .checked_mul(7)
        .and_then(|wd| wd.checked_add(d))
        .ok_or(IntervalError::TooLarge)?;
    let sign = if negative { -1 } else { 1 };
    let mut iv = Interval::new(sign, y, m, day, hh, mm, ss).ok_or(IntervalError::TooLarge)?;

    if allowdate {
        if let Some(dspec) = date_part {
            let mut now_f: Fields = set_fields(".", Tz::UTC, now, false)?;
            let date = set_fields(dspec, Tz::UTC, now, false)?;
            // Python: `if not date.hour or date.minute or date.second:`
            if date.h == 0 || date.mi != 0 || date.sf != 0.0 {
                now_f.h = 0;
                now_f.mi = 0;
                now_f.s = 0;
                now_f.sf = 0.0;
            }
            if !date.same_instant(&now_f) {
                let sum = date.plus(&iv)?;
                iv = now_f.delta(&sum.fields());
            }
        }
    }
    Ok(iv)
}

impl Interval {
    /// Roundup's `Interval(spec)`: `[+|-] [#y] [#m] [#w] [#d] [[H]H:MM[:SS]]`, the
    /// serialised `[+-]yyyymmddHHMMSS` form, or a date spec (interval = now − date),
    /// with `now` standing in for the current time.
    pub fn parse(spec: &str, now: Date) -> Result<Interval, IntervalError> {
        parse_impl(spec, true, false, &now)
    }

    /// Roundup's `Interval(spec, add_granularity=True)`: the smallest unit given is
    /// incremented by one (decremented if the sign is `-`); used for filter ranges.
    pub fn parse_upper_bound(spec: &str, now: Date) -> Result<Interval, IntervalError> {
        parse_impl(spec, true, true, &now)
    }

    /// Read back the stored `str()` form (`+ 1d 2:30`, `00:00`); `None` if invalid.
    pub fn from_stored(s: &str) -> Option<Interval> {
        parse_impl(s, false, false, &Date::from_unix_millis(0)?).ok()
    }

    /// Build from components; `sign` must be 1 or -1. `None` if the seconds value
    /// would not fit an `i64`.
    pub fn new(
        sign: i8,
        year: i64,
        month: i64,
        day: i64,
        hour: i64,
        minute: i64,
        second: i64,
    ) -> Option<Interval> {
        if sign != 1 && sign != -1 {
            return None;
        }
        let iv = Interval::from_parts_unchecked(sign, year, month, day, hour, minute, second);
        i64::try_from(iv.seconds_wide()).ok().map(|_| iv)
    }

    /// Build without checking the invariant; callers guarantee small values.
    pub(crate) fn from_parts_unchecked(
        sign: i8,
        year: i64,
        month: i64,
        day: i64,
        hour: i64,
        minute: i64,
        second: i64,
    ) -> Interval {
        Interval {
            sign,
            year,
            month,
            day,
            hour,
            minute,
            second,
        }
    }

    /// Roundup's `from_seconds`: days, hours, minutes and seconds from a signed count.
    pub fn from_seconds(seconds: i64) -> Interval {
        let sign = if seconds < 0 { -1 } else { 1 };
        Interval::from_sign_and_seconds(sign, seconds.unsigned_abs())
    }

    /// `sign` and `seconds` as days, hours, minutes and seconds.
    pub(crate) fn from_sign_and_seconds(sign: i8, seconds: u64) -> Interval {
        Interval::from_parts_unchecked(
            sign,
            0,
            0,
            (seconds / 86_400) as i64,
            ((seconds / 3600) % 24) as i64,
            ((seconds / 60) % 60) as i64,
            (seconds % 60) as i64,
        )
    }

    fn seconds_wide(&self) -> i128 {
        let n = i128::from(self.year) * 365 + i128::from(self.month) * 30 + i128::from(self.day);
        let n = ((n * 24 + i128::from(self.hour)) * 60 + i128::from(self.minute)) * 60
            + i128::from(self.second);
        n * i128::from(self.sign)
    }

    /// `sign*(((y*365 + m*30 + d)*24 + H)*60 + M)*60 + S`, the `__<prop>_int__` value.
    pub fn as_seconds(&self) -> i64 {
        // The constructors guarantee the value fits.
        i64::try_from(self.seconds_wide()).unwrap_or(if self.sign < 0 {
            i64::MIN
        } else {
            i64::MAX
        })
    }

    /// The sign, 1 or -1.
    pub fn sign(&self) -> i8 {
        self.sign
    }
    /// The years component.
    pub fn year(&self) -> i64 {
        self.year
    }
    /// The months component.
    pub fn month(&self) -> i64 {
        self.month
    }
    /// The days component (weeks are folded in as 7 days each).
    pub fn day(&self) -> i64 {
        self.day
    }
    /// The hours component (not normalised: may exceed 23).
    pub fn hour(&self) -> i64 {
        self.hour
    }
    /// The minutes component (not normalised).
    pub fn minute(&self) -> i64 {
        self.minute
    }
    /// The seconds component (not normalised).
    pub fn second(&self) -> i64 {
        self.second
    }

    /// The same components with the opposite sign.
    pub fn negated(&self) -> Interval {
        Interval {
            sign: -self.sign,
            ..*self
        }
    }

    /// Python's `repr()`: `<Interval + 1d 2:30>`.
    pub fn repr(&self) -> String {
        format!("<Interval {self}>")
    }

    /// Roundup's `serialise()`: `[+-]yyyymmddHHMMSS` (`'%s%04d%02d%02d%02d%02d%02d'`).
    pub fn serialise(&self) -> String {
        format!(
            "{}{:04}{:02}{:02}{:02}{:02}{:02}",
            if self.sign > 0 { '+' } else { '-' },
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second
        )
    }
}

/// Python's `str()`, also the stored form: `+ 1d 2:30`, `- 2:00`, `+ 0:04:33`, `00:00`.
impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if self.year != 0 {
            parts.push(format!("{}y", self.year));
        }
        if self.month != 0 {
            parts.push(format!("{}m", self.month));
        }
        if self.day != 0 {
            parts.push(format!("{}d", self.day));
        }
        if self.second != 0 {
            parts.push(format!(
                "{}:{:02}:{:02}",
                self.hour, self.minute, self.second
            ));
        } else if self.hour != 0 || self.minute != 0 {
            parts.push(format!("{}:{:02}", self.hour, self.minute));
        }
        if parts.is_empty() {
            return f.write_str("00:00");
        }
        let sign = if self.sign > 0 { "+" } else { "-" };
        write!(f, "{sign} {}", parts.join(" "))
    }
}

impl PartialEq for Interval {
    fn eq(&self, other: &Self) -> bool {
        self.as_seconds() == other.as_seconds()
    }
}

impl Eq for Interval {}

impl PartialOrd for Interval {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Interval {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_seconds().cmp(&other.as_seconds())
    }
}
