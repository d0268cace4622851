//! Roundup's `Date` (`roundup/date.py`): parsing of client date specs, the storage
//! form, `repr()`/`str()`, and date ± interval arithmetic.
//!
//! A [`Date`] is an instant in UTC with millisecond precision, restricted to the years
//! 1..=9999 (Python's `datetime` range). Parsing follows `Date.set()` step by step,
//! including its quirks: the explicit `+HHMM` zone and any `± interval` suffix are
//! applied through `addInterval`, which drops fractional seconds; month arithmetic
//! keeps the day number and lets it overflow into the next month
//! (`2020-01-31 + 1m` = `2020-03-02`).

use super::interval::Interval;
use super::pycompat::{ascii_digits, cap, compile, digits_i64, py_repr, py_strip, WS};
use super::tz::{Tz, TzError};
use regex::Regex;
use std::fmt;
use std::sync::LazyLock;
use thiserror::Error;

const MS_PER_DAY: i64 = 86_400_000;

/// An instant in UTC with millisecond precision (years 1..=9999), as Roundup stores it.
///
/// Internally milliseconds since 1970-01-01T00:00:00Z, so comparison is integer
/// comparison and the value is `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    ms: i64,
}

/// Why a date spec was rejected; Display is Roundup's (Python's) message text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DateError {
    /// The spec matches neither the serialised form nor Roundup's date pattern.
    #[error("Not a date spec: {} (\"yyyy-mm-dd\", \"mm-dd\", \"HH:MM\", \"HH:MM:SS\" or \"yyyy-mm-dd.HH:MM:SS.SSS\")", py_repr(.0))]
    NotADateSpec(String),
    /// The trailing `± interval` part of the spec is not a valid interval.
    #[error("{} not a date / time spec \"yyyy-mm-dd\", \"mm-dd\", \"HH:MM\", \"HH:MM:SS\" or \"yyyy-mm-dd.HH:MM:SS.SSS\"", py_repr(.0))]
    NotADateTimeSpec(String),
    /// A field out of range, with Python `datetime`'s message (`month must be in 1..12`,
    /// `day is out of range for month`, `hour must be in 0..23`, ...).
    #[error("{0}")]
    Field(&'static str),
    /// The year is outside 1..=9999 (`year 0 is out of range`).
    #[error("year {0} is out of range")]
    YearOutOfRange(i64),
    /// Converting local time to UTC left the datetime range (Python's OverflowError).
    #[error("date value out of range")]
    Overflow,
    /// The time zone offset is unusable (24 hours or more).
    #[error(transparent)]
    Tz(TzError),
    /// A filter range bound whose granularity cannot be determined (e.g. `01-25`, `.`).
    #[error("Could not determine granularity")]
    NoGranularity,
    /// A filter range bound given to the second (`12:00:30`): Roundup raises a bare
    /// `ValueError()` with an empty message.
    #[error("")]
    SecondsGranularity,
    /// Date ± interval left the datetime range; carries Python's tuple repr,
    /// e.g. `Unknown spec (10000, 1, 1, 0, 0, 0, 0, 0, 0)`.
    #[error("Unknown spec {0}")]
    UnknownSpec(String),
}

impl DateError {
    /// The Python exception class Roundup raises for this error: `ValueError` (turned
    /// into "is an invalid date" by `from_raw`, ignored by filters) or `OverflowError`
    /// (not caught by Roundup: a `<class 'OverflowError'>:...` fault).
    pub fn python_class(&self) -> &'static str {
        match self {
            DateError::Overflow => "OverflowError",
            DateError::Tz(e) => e.python_class(),
            _ => "ValueError",
        }
    }
}

// ---------------------------------------------------------------------------------
// Calendar helpers (proleptic Gregorian, any year; Howard Hinnant's algorithms).

pub(crate) fn days_from_civil(y: i128, m: i128, d: i128) -> i128 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn civil_from_days(z: i128) -> (i128, i128, i128) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Python `datetime(y, m, d, H, M, S)` argument validation, in Python's order.
fn check_datetime(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Result<(), DateError> {
    if !(1..=9999).contains(&y) {
        return Err(DateError::YearOutOfRange(y));
    }
    if !(1..=12).contains(&mo) {
        return Err(DateError::Field("month must be in 1..12"));
    }
    if d < 1 || d > days_in_month(y, mo) {
        return Err(DateError::Field("day is out of range for month"));
    }
    if !(0..=23).contains(&h) {
        return Err(DateError::Field("hour must be in 0..23"));
    }
    if !(0..=59).contains(&mi) {
        return Err(DateError::Field("minute must be in 0..59"));
    }
    if !(0..=59).contains(&s) {
        return Err(DateError::Field("second must be in 0..59"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// The state of a Python `Date` object while it is being computed.

/// Python `Date` attributes: integer fields plus the float `second` (`sf`, whose
/// integer part is `s`). Fields may be out of range until the final conversion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Fields {
    pub(crate) y: i64,
    pub(crate) mo: i64,
    pub(crate) d: i64,
    pub(crate) h: i64,
    pub(crate) mi: i64,
    pub(crate) s: i64,
    pub(crate) sf: f64,
}

impl Fields {
    /// Python's `Date.__cmp__` (fields, then float seconds) reduced to "equal".
    pub(crate) fn same_instant(&self, o: &Fields) -> bool {
        (self.y, self.mo, self.d, self.h, self.mi) == (o.y, o.mo, o.d, o.h, o.mi) && self.sf == o.sf
    }

    fn days(&self) -> i128 {
        days_from_civil(self.y.into(), self.mo.into(), self.d.into())
    }

    /// `calendar.timegm` of the integer fields (seconds since the epoch).
    fn timegm_int(&self) -> i128 {
        ((self.days() * 24 + i128::from(self.h)) * 60 + i128::from(self.mi)) * 60
    }

    /// `Date.addInterval`: add component-wise, then fix time, month and day overflow
    /// exactly as Roundup's loops do (closed form). Fractional seconds are dropped.
    pub(crate) fn add_interval(&self, iv: &Interval) -> Result<Fields, DateError> {
        let sg = i128::from(iv.sign());
        let year = i128::from(self.y) + sg * i128::from(iv.year());
        let month = i128::from(self.mo) + sg * i128::from(iv.month());
        let day = i128::from(self.d) + sg * i128::from(iv.day());
        let secs = (i128::from(self.h) + sg * i128::from(iv.hour())) * 3600
            + (i128::from(self.mi) + sg * i128::from(iv.minute())) * 60
            + i128::from(self.s)
            + sg * i128::from(iv.second());
        let carry = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let months = year * 12 + (month - 1);
        let ny = months.div_euclid(12);
        let nm = months.rem_euclid(12) + 1;
        let days = days_from_civil(ny, nm, 1) + day - 1 + carry;
        let (y, m, d) = civil_from_days(days);
        let conv = |v: i128| i64::try_from(v).map_err(|_| DateError::Overflow);
        let s = conv(rem % 60)?;
        Ok(Fields {
            y: conv(y)?,
            mo: conv(m)?,
            d: conv(d)?,
            h: conv(rem / 3600)?,
            mi: conv((rem / 60) % 60)?,
            s,
            sf: s as f64,
        })
    }

    /// `_local_to_utc`: shift by the zone's offset; keeps the fractional second.
    fn local_to_utc(&self, tz: Tz) -> Result<Fields, DateError> {
        tz.check().map_err(DateError::Tz)?;
        if tz.hours() == 0 {
            return Ok(*self);
        }
        let secs = (i128::from(self.h) - i128::from(tz.hours())) * 3600
            + i128::from(self.mi) * 60
            + i128::from(self.s);
        let days = self.days() + secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        if !(1..=9999).contains(&y) {
            return Err(DateError::Overflow);
        }
        Ok(Fields {
            y: y as i64,
            mo: m as i64,
            d: d as i64,
            h: (rem / 3600) as i64,
            mi: ((rem / 60) % 60) as i64,
            s: self.s,
            sf: self.sf,
        })
    }

    /// Python's `dateDelta` (`self - other` for two dates): whole seconds, truncated
    /// toward zero, as days/hours/minutes/seconds.
    pub(crate) fn delta(&self, other: &Fields) -> Interval {
        let a = self.timegm_int() as f64 + self.sf;
        let b = other.timegm_int() as f64 + other.sf;
        let diff = (a - b).trunc() as i64;
        let sign = if diff > 0 { 1 } else { -1 };
        Interval::from_sign_and_seconds(sign, diff.unsigned_abs())
    }

    /// Final conversion to a [`Date`]; the float seconds are rounded as `%06.3f` does.
    pub(crate) fn to_date(self) -> Result<Date, DateError> {
        if !(1..=9999).contains(&self.y) {
            return Err(DateError::YearOutOfRange(self.y));
        }
        let days = i64::try_from(self.days()).map_err(|_| DateError::Overflow)?;
        let ms_in_minute = round_ms(self.s, self.sf);
        Ok(Date {
            ms: days * MS_PER_DAY + self.h * 3_600_000 + self.mi * 60_000 + ms_in_minute,
        })
    }

    /// The Python tuple repr used in `Unknown spec` messages.
    fn tuple_repr(&self) -> String {
        format!(
            "({}, {}, {}, {}, {}, {}, 0, 0, 0)",
            self.y, self.mo, self.d, self.h, self.mi, self.s
        )
    }

    /// `Date.__add__`: `Date(self.addInterval(interval))`, validated by the tuple
    /// constructor (`ValueError('Unknown spec ...')`).
    pub(crate) fn plus(&self, iv: &Interval) -> Result<Date, DateError> {
        let f = self.add_interval(iv)?;
        if !(1..=9999).contains(&f.y) {
            return Err(DateError::UnknownSpec(f.tuple_repr()));
        }
        f.to_date()
    }
}

/// Milliseconds within the minute for integer seconds `s` and float seconds `sf`,
/// rounded exactly as Python's `'%06.3f' % sf`.
fn round_ms(s: i64, sf: f64) -> i64 {
    if sf == s as f64 {
        return s * 1000;
    }
    let text = format!("{sf:.3}");
    let (int, frac) = text.split_once('.').unwrap_or((&text, "0"));
    let int: i64 = int.parse().unwrap_or(s);
    let frac: i64 = frac.parse().unwrap_or(0);
    int * 1000 + frac
}

// ---------------------------------------------------------------------------------
// Regular expressions (Python's, transcribed; see pycompat for \s and $).

static SERIALISED_RE: LazyLock<Regex> =
    LazyLock::new(|| compile(r"^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d?(\.\d+)?)"));

static DATE_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(&format!(
        concat!(
            r"^((?P<y>\d\d\d\d)([/-](?P<m>\d\d?)([/-](?P<d>\d\d?))?)?",
            r"|(?P<a>\d\d?)[/-](?P<b>\d\d?))?",
            r"(?P<n>[.T])?",
            r"(((?P<H>\d?\d):(?P<M>\d\d))?(:(?P<S>\d\d?(\.\d+)?))?)?",
            r"(?:(?P<tz>[{ws}]?[+-]\d{{4}})|(?P<o>[\d{ws}mywd\-+]+))?",
            r"\n?\z"
        ),
        ws = WS
    ))
});

/// `int()` of a short all-digit capture (at most 4 digits: cannot overflow).
fn small_int(s: &str) -> i64 {
    digits_i64(s).unwrap_or(0)
}

/// The serialised branch of `Date.set` (`yyyymmddHHMMSS[.fff]`, prefix match, UTC).
/// Roundup accepts out-of-range fields here and stores garbage; we reject them with
/// `datetime`'s messages instead.
fn serialised_fields(spec: &str) -> Option<Result<Fields, DateError>> {
    let c = SERIALISED_RE.captures(spec)?;
    let g = |i: usize| c.get(i).map(|m| m.as_str()).unwrap_or("0");
    let (y, mo, d, h, mi) = (
        small_int(g(1)),
        small_int(g(2)),
        small_int(g(3)),
        small_int(g(4)),
        small_int(g(5)),
    );
    let sf: f64 = ascii_digits(g(6)).parse().unwrap_or(0.0);
    let s = sf.trunc() as i64;
    Some(check_datetime(y, mo, d, h, mi, s).map(|()| Fields {
        y,
        mo,
        d,
        h,
        mi,
        s,
        sf,
    }))
}

/// `Date.set(spec, offset, add_granularity)`: the Python object's fields before the
/// final range check.
pub(crate) fn set_fields(
    spec: &str,
    tz: Tz,
    now: &Date,
    add_granularity: bool,
) -> Result<Fields, DateError> {
    if let Some(r) = serialised_fields(spec) {
        return r;
    }
    let Some(c) = DATE_RE.captures(spec) else {
        return Err(DateError::NotADateSpec(spec.to_string()));
    };

    let granularity = if add_granularity {
        let mut found = None;
        for gran in ["S", "M", "H", "d", "m", "y"] {
            if c.name(gran).is_some() {
                found = Some(match gran {
                    "S" => return Err(DateError::SecondsGranularity),
                    "M" => Interval::from_parts_unchecked(1, 0, 0, 0, 0, 1, 0),
                    "H" => Interval::from_parts_unchecked(1, 0, 0, 0, 1, 0, 0),
                    "d" => Interval::from_parts_unchecked(1, 0, 0, 1, 0, 0, 0),
                    "m" => Interval::from_parts_unchecked(1, 0, 1, 0, 0, 0, 0),
                    _ => Interval::from_parts_unchecked(1, 1, 0, 0, 0, 0, 0),
                });
                break;
            }
        }
        Some(found.ok_or(DateError::NoGranularity)?)
    } else {
        None
    };

    // The current time is the default for every part.
    let n = now.fields();
    let (mut y, mut mo, mut d, mut h, mut mi) = (n.y, n.mo, n.d, n.h, n.mi);
    let mut sec: f64 = n.sf;
    let mut adjust = false;

    if cap(&c, "y").is_some() || cap(&c, "a").is_some() {
        if let Some(ys) = cap(&c, "y") {
            y = small_int(ys);
            mo = 1;
            d = 1;
            if let Some(ms) = cap(&c, "m") {
                mo = small_int(ms);
                if let Some(ds) = cap(&c, "d") {
                    d = small_int(ds);
                }
            }
        }
        if let (Some(a), Some(b)) = (cap(&c, "a"), cap(&c, "b")) {
            mo = small_int(a);
            d = small_int(b);
        }
        h = 0;
        mi = 0;
        sec = 0.0;
        adjust = true;
    }
    if let (Some(hs), Some(ms)) = (cap(&c, "H"), cap(&c, "M")) {
        h = small_int(hs);
        mi = small_int(ms);
        sec = 0.0;
        if let Some(ss) = cap(&c, "S") {
            sec = ascii_digits(ss).parse().unwrap_or(0.0);
        }
        adjust = true;
    }
    let tz_part = cap(&c, "tz");
    let offset = if tz_part.is_some() { Tz::UTC } else { tz };

    // datetime(y, m, d, H, M, int(S), int(frac * 1e6)), keeping the microseconds.
    let s_int = sec.trunc();
    let micro = ((sec - s_int) * 1_000_000.0).trunc();
    let s = s_int as i64;
    check_datetime(y, mo, d, h, mi, s)?;
    let mut f = Fields {
        y,
        mo,
        d,
        h,
        mi,
        s,
        sf: s_int + micro / 1_000_000.0,
    };
    if adjust {
        f = f.local_to_utc(offset)?;
    }

    if let Some(o) = cap(&c, "o") {
        let iv = super::interval::parse_impl(o, false, false, now)
            .map_err(|_| DateError::NotADateTimeSpec(spec.to_string()))?;
        f = f.add_interval(&iv)?;
    }

    if let Some(tzs) = tz_part {
        let chars: Vec<char> = py_strip(tzs).chars().collect();
        let sign = if chars.first() == Some(&'-') { 1 } else { -1 };
        let part = |r: std::ops::Range<usize>| -> i64 {
            small_int(
                &chars
                    .get(r)
                    .map(|c| c.iter().collect::<String>())
                    .unwrap_or_default(),
            )
        };
        let (hour, minute) = (part(1..3), part(3..5));
        f = f.add_interval(&Interval::from_parts_unchecked(
            sign, 0, 0, 0, hour, minute, 0,
        ))?;
    }

    if let Some(g) = granularity {
        f = f.add_interval(&g)?;
        f = f.add_interval(&Interval::from_parts_unchecked(-1, 0, 0, 0, 0, 0, 1))?;
    }
    Ok(f)
}

impl Date {
    /// The current time (UTC), rounded to the millisecond.
    pub fn now() -> Date {
        let now = chrono::Utc::now();
        let micros = now.timestamp_micros();
        Date {
            ms: (micros + 500).div_euclid(1000),
        }
    }

    /// Build from milliseconds since 1970-01-01T00:00:00Z; `None` outside years 1..=9999.
    pub fn from_unix_millis(ms: i64) -> Option<Date> {
        let d = Date { ms };
        let y = d.fields().y;
        (1..=9999).contains(&y).then_some(d)
    }

    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub fn unix_millis(&self) -> i64 {
        self.ms
    }

    /// Build from UTC calendar fields (`milli` in 0..=999); `None` if any is out of range.
    pub fn from_ymd_hms_milli(
        year: i64,
        month: i64,
        day: i64,
        hour: i64,
        minute: i64,
        second: i64,
        milli: i64,
    ) -> Option<Date> {
        check_datetime(year, month, day, hour, minute, second).ok()?;
        if !(0..=999).contains(&milli) {
            return None;
        }
        let days = days_from_civil(year.into(), month.into(), day.into()) as i64;
        Some(Date {
            ms: days * MS_PER_DAY + hour * 3_600_000 + minute * 60_000 + second * 1000 + milli,
        })
    }

    /// UTC calendar fields `(year, month, day, hour, minute, second, millisecond)`.
    pub fn components(&self) -> (i64, i64, i64, i64, i64, i64, i64) {
        let days = self.ms.div_euclid(MS_PER_DAY);
        let rem = self.ms.rem_euclid(MS_PER_DAY);
        let (y, m, d) = civil_from_days(days.into());
        (
            y as i64,
            m as i64,
            d as i64,
            rem / 3_600_000,
            (rem / 60_000) % 60,
            (rem / 1000) % 60,
            rem % 1000,
        )
    }

    pub(crate) fn fields(&self) -> Fields {
        let (y, mo, d, h, mi, s, milli) = self.components();
        Fields {
            y,
            mo,
            d,
            h,
            mi,
            s,
            sf: s as f64 + (milli * 1000) as f64 / 1_000_000.0,
        }
    }

    /// Roundup's `Date(spec, offset)`: parse a client date spec (§3.4) in time zone `tz`,
    /// with `now` standing in for the current time.
    ///
    /// Accepts the serialised `yyyymmddHHMMSS[.fff]` form (UTC),
    /// `[yyyy[-mm[-dd]] | mm-dd][. or T][HH:MM[:SS[.fff]]]` (`/` for `-`), a `+HHMM`/
    /// `-HHMM` zone that overrides `tz`, and a trailing interval (`-1d`, `. -1d`,
    /// `2020-01-01 + 1m`).
    pub fn parse(spec: &str, tz: Tz, now: Date) -> Result<Date, DateError> {
        set_fields(spec, tz, &now, false)?.to_date()
    }

    /// Roundup's `Date(spec, offset, add_granularity=True)`: the last second covered by
    /// the spec's precision (`2020` → `2020-12-31.23:59:59`), as used by filter ranges.
    pub fn parse_upper_bound(spec: &str, tz: Tz, now: Date) -> Result<Date, DateError> {
        set_fields(spec, tz, &now, true)?.to_date()
    }

    /// Parse the 18-character storage form `YYYYMMDDHHMMSS.fff` (also 14 digits without
    /// fraction), as read back from the database; `None` if it is not one.
    pub fn from_serialised(s: &str) -> Option<Date> {
        serialised_fields(s)?.ok()?.to_date().ok()
    }

    /// The storage form `YYYYMMDDHHMMSS.fff` (`'%04d%02d%02d%02d%02d%06.3f'`).
    pub fn serialise(&self) -> String {
        let (y, m, d, h, mi, s, ms) = self.components();
        format!("{y:04}{m:02}{d:02}{h:02}{mi:02}{s:02}.{ms:03}")
    }

    /// Python's `repr()`: `<Date 2020-01-01.10:34:56.000>` (UTC, seconds `%06.3f`).
    pub fn repr(&self) -> String {
        let (y, m, d, h, mi, s, ms) = self.components();
        format!("<Date {y:04}-{m:02}-{d:02}.{h:02}:{mi:02}:{s:02}.{ms:03}>")
    }

    /// `self + interval` as Roundup computes it (whole seconds; the fraction is dropped).
    pub fn add_interval(&self, interval: &Interval) -> Result<Date, DateError> {
        self.fields().plus(interval)
    }

    /// `self - interval` as Roundup computes it (adds the interval with its sign flipped).
    pub fn sub_interval(&self, interval: &Interval) -> Result<Date, DateError> {
        self.fields().plus(&interval.negated())
    }

    /// `self - other`: Roundup's `dateDelta`, an interval of days, hours, minutes and
    /// whole seconds (truncated toward zero); a zero difference carries sign `-`.
    pub fn diff(&self, other: &Date) -> Interval {
        self.fields().delta(&other.fields())
    }
}

/// Python's `str()` (`formal()`): `2020-01-01.10:34:56`, seconds truncated.
impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d, h, mi, s, _) = self.components();
        write!(f, "{y:04}-{m:02}-{d:02}.{h:02}:{mi:02}:{s:02}")
    }
}
