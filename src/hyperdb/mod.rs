//! Roundup's hyperdb value types for dates and intervals: a port of the parts of
//! `roundup/date.py` (Roundup 2.6.0, without pytz) that the XML-RPC server needs.
//!
//! * [`Date`]: UTC instants with millisecond precision; client specs (§3.4), the
//!   storage form (§8.3), `repr()` (§2.3) and date ± interval arithmetic.
//! * [`Interval`]: un-normalised intervals (§3.5), their `str()`/`repr()` and seconds.
//! * [`Tz`]: fixed-hour time zones and the userauditor's validation (§7.4).
//! * [`parse_date_filter`] / [`parse_interval_filter`]: filter ranges (§4.3).
//!
//! Error types render Roundup's (Python's) exact message texts and expose the Python
//! exception class via `python_class()`.

pub mod date;
pub mod interval;
pub(crate) mod pycompat;
pub mod range;
pub mod tz;

pub use date::{Date, DateError};
pub use interval::{Interval, IntervalError};
pub use range::{
    parse_date_filter, parse_date_range, parse_interval_filter, parse_interval_range, DateRange,
    IntervalRange,
};
pub use tz::{parse_timezone, Tz, TzError};
