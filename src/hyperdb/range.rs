//! Filter ranges for Date and Interval properties (§4.3): Roundup's `date.Range` plus
//! the way `rdbms_common.Class._filter_sql` turns a filterspec string into SQL.
//!
//! How Roundup builds the SQL (sqlite backend), which callers should reproduce:
//!
//! * **Date** (`parse_date_filter`): the string is split on `,`; each piece is either
//!   exactly `-` (`_<p> is NULL`) or a range giving `_<p> >= ?` (from) and/or
//!   `_<p> <= ?` (to), bound with [`Date::serialise`] (`YYYYMMDDHHMMSS.fff`, compared as
//!   text); the two conditions of a piece are ANDed, the pieces ORed, all inside one
//!   pair of parentheses. If **any** piece fails to parse the whole property filter is
//!   dropped (no restriction). A piece with neither bound (`;`) makes Roundup emit an
//!   empty `()` (an SQL syntax error); see [`DateRange::Between`].
//! * **Interval** (`parse_interval_filter`): the whole string is one range (no `,`
//!   splitting, no NULL form) on the `__<p>_int__` column (seconds): `>= from`,
//!   `<= to`; unparsable → no restriction.
//! * A *list* of values (not handled here) means exact equality: `Date::parse(x,
//!   Tz::UTC, now)` (note: no user time zone!) / `Interval::parse(x).as_seconds()`, and
//!   errors there are not caught by Roundup.
//!
//! Range syntax: `from;to`, `from;`, `;to` ("geek"), `[from] X to Y`, `from X`, `to Y`
//! (keywords case-insensitive), or a single value `X`, which means
//! `X` .. `X` + its granularity − 1 second for dates (`2020` = the whole year) and
//! `X` .. `X` with its smallest unit incremented for intervals. Bounds are inclusive.

use super::date::{set_fields, Date, DateError};
use super::interval::{parse_impl, IntervalError};
use super::pycompat::{compile, py_strip};
use super::tz::Tz;
use regex::Regex;
use std::sync::LazyLock;

/// One alternative of a Date filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateRange {
    /// The piece `-`: the property is NULL (`_<p> is NULL`).
    Null,
    /// `from <= value <= to` (each bound optional, inclusive). Both `None` happens for
    /// `;` alone: Roundup then generates invalid SQL (`()`), so callers should treat it
    /// as an error or as "no condition" deliberately.
    Between {
        /// Lower bound (`_<p> >= from.serialise()`), if any.
        from: Option<Date>,
        /// Upper bound (`_<p> <= to.serialise()`), if any.
        to: Option<Date>,
    },
}

/// A range on an Interval property's seconds value (`__<p>_int__`), bounds inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IntervalRange {
    /// Lower bound in seconds (`__<p>_int__ >= from`), if any.
    pub from: Option<i64>,
    /// Upper bound in seconds (`__<p>_int__ <= to`), if any.
    pub to: Option<i64>,
}

static RE_RANGE: LazyLock<Regex> = LazyLock::new(|| compile(r"(?i)^(?:from)?(.+?)?to(.+?)?\n?\z"));

static RE_RANGE_NO_TO: LazyLock<Regex> = LazyLock::new(|| compile(r"(?i)^from(.+)(.)?\n?\z"));

static RE_GEEK_RANGE: LazyLock<Regex> = LazyLock::new(|| compile(r"^(.+?)?;(.+?)?\n?\z"));

/// How `Range.__init__` splits a spec.
enum Split<'a> {
    /// Explicit bounds (each still to be stripped and parsed).
    Bounds(Option<&'a str>, Option<&'a str>),
    /// A single value: from = `Type(spec)`, to = `Type(spec, add_granularity=True)`.
    Single,
}

fn split_range(spec: &str) -> Split<'_> {
    let stripped = py_strip(spec);
    let m = if spec.contains(';') {
        RE_GEEK_RANGE.captures(stripped)
    } else {
        RE_RANGE
            .captures(stripped)
            .or_else(|| RE_RANGE_NO_TO.captures(stripped))
    };
    match m {
        Some(c) => Split::Bounds(
            c.get(1).map(|m| m.as_str()).filter(|s| !s.is_empty()),
            c.get(2).map(|m| m.as_str()).filter(|s| !s.is_empty()),
        ),
        None => Split::Single,
    }
}

/// Roundup's `Range(spec, Date, offset=tz)`: the bounds of one date range.
pub fn parse_date_range(spec: &str, tz: Tz, now: Date) -> Result<DateRange, DateError> {
    let parse = |s: &str, gran: bool| set_fields(s, tz, &now, gran).and_then(|f| f.to_date());
    Ok(match split_range(spec) {
        Split::Bounds(from, to) => DateRange::Between {
            from: from.map(|s| parse(py_strip(s), false)).transpose()?,
            to: to.map(|s| parse(py_strip(s), false)).transpose()?,
        },
        Split::Single => DateRange::Between {
            from: Some(parse(spec, false)?),
            to: Some(parse(spec, true)?),
        },
    })
}

/// Roundup's `Range(spec, Interval)`: the bounds of an interval range, in seconds.
pub fn parse_interval_range(spec: &str, now: Date) -> Result<IntervalRange, IntervalError> {
    let parse = |s: &str, gran: bool| parse_impl(s, true, gran, &now).map(|i| i.as_seconds());
    Ok(match split_range(spec) {
        Split::Bounds(from, to) => IntervalRange {
            from: from.map(|s| parse(py_strip(s), false)).transpose()?,
            to: to.map(|s| parse(py_strip(s), false)).transpose()?,
        },
        Split::Single => IntervalRange {
            from: Some(parse(spec, false)?),
            to: Some(parse(spec, true)?),
        },
    })
}

/// A Date property's filterspec string as Roundup's sqlite backend reads it: the
/// alternatives to OR together, or `None` when any piece is invalid (Roundup then
/// ignores the property's filter entirely).
///
/// Deviation: where Roundup raises an (uncaught) OverflowError — dates at the very
/// ends of years 1..9999 shifted by a time zone, or time zones of ±24h or more — the
/// filter is ignored here too.
pub fn parse_date_filter(spec: &str, tz: Tz, now: Date) -> Option<Vec<DateRange>> {
    spec.split(',')
        .map(|piece| {
            if piece == "-" {
                Some(DateRange::Null)
            } else {
                parse_date_range(piece, tz, now).ok()
            }
        })
        .collect()
}

/// An Interval property's filterspec string as Roundup reads it (one range on the
/// seconds column); `None` when it is invalid (Roundup then ignores it).
pub fn parse_interval_filter(spec: &str, now: Date) -> Option<IntervalRange> {
    parse_interval_range(spec, now).ok()
}
