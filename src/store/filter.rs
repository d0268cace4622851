//! The backend-neutral form of a `filter()` query: conditions and sort keys that
//! the API layer builds from a client's filterspec, and a backend turns into SQL.

use super::Id;

/// A whole filter query on one class.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilterQuery {
    /// Restrict to these ids (`search_matches`); `None` = no restriction.
    pub search_matches: Option<Vec<Id>>,
    /// Conditions, all of which must hold.
    pub conds: Vec<Cond>,
    /// Sort keys, most significant first (the API appends `id` ascending).
    pub sort: Vec<SortKey>,
}

/// A boolean expression over the ids a Link or Multilink holds (Roundup's postfix
/// filter expressions: `-1` empty, `-2` NOT, `-3` AND, `-4` OR).
#[derive(Debug, Clone, PartialEq)]
pub enum IdExpr {
    /// The property holds this id.
    Has(Id),
    /// The property is NULL / the Multilink is empty.
    Empty,
    /// Negation.
    Not(Box<IdExpr>),
    /// Both.
    And(Box<IdExpr>, Box<IdExpr>),
    /// Either.
    Or(Box<IdExpr>, Box<IdExpr>),
}

/// A scalar compared for equality.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// Text (String, Password, serialised Date).
    Text(String),
    /// Integer (Integer, Boolean as 0/1).
    Int(i64),
    /// Real (Number).
    Real(f64),
}

/// One alternative of a Date condition.
#[derive(Debug, Clone, PartialEq)]
pub enum DateAlt {
    /// The date is NULL.
    Null,
    /// Inclusive bounds in the serialised `YYYYMMDDHHMMSS.fff` form.
    Range {
        /// Lower bound.
        from: Option<String>,
        /// Upper bound.
        to: Option<String>,
    },
}

/// One condition on a property of the class being filtered.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// String property contains every needle, case-insensitively (ASCII), with
    /// `%`, `_` and `\` matched literally.
    Contains {
        /// Property name.
        prop: String,
        /// Substrings, all required.
        needles: Vec<String>,
    },
    /// The item id is one of these.
    IdIn(Vec<Id>),
    /// Link equals one of `ids`, or is NULL when `null`.
    LinkIn {
        /// Property name.
        prop: String,
        /// Accepted target ids.
        ids: Vec<Id>,
        /// Also accept NULL.
        null: bool,
    },
    /// Multilink contains one of `ids`, or is empty when `empty`.
    MultilinkIn {
        /// Property name.
        prop: String,
        /// Accepted target ids.
        ids: Vec<Id>,
        /// Also accept an empty Multilink.
        empty: bool,
    },
    /// A Link or Multilink expression.
    Expr {
        /// Property name.
        prop: String,
        /// True for a Multilink.
        multilink: bool,
        /// The expression.
        expr: IdExpr,
    },
    /// Date alternatives, any of which may match.
    Dates {
        /// Property name.
        prop: String,
        /// Alternatives (OR).
        alts: Vec<DateAlt>,
    },
    /// Interval seconds within inclusive bounds.
    IntervalRange {
        /// Property name.
        prop: String,
        /// Lower bound in seconds.
        from: Option<i64>,
        /// Upper bound in seconds.
        to: Option<i64>,
    },
    /// Interval seconds equal to one of these.
    IntervalIn {
        /// Property name.
        prop: String,
        /// Accepted values in seconds.
        secs: Vec<i64>,
    },
    /// Column equals one of these values (Boolean, Number, Integer, Password,
    /// Date lists).
    ColumnIn {
        /// Property name.
        prop: String,
        /// Accepted values.
        values: Vec<Scalar>,
    },
    /// The Link/Multilink `prop` points at an item (of its target class) for which
    /// all `inner` conditions hold (transitive properties like `status.name`).
    Via {
        /// Property name (a Link or Multilink).
        prop: String,
        /// Conditions on the target class.
        inner: Vec<Cond>,
    },
    /// Matches nothing.
    Never,
    /// Matches everything (an ignored condition, e.g. an unparsable date range).
    Always,
}

/// One sort key: a property path ending in a non-link property (the API appends
/// the target's orderprop to Link paths) and a direction.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// Property names from the filtered class, e.g. `["status", "order"]`;
    /// `["id"]` sorts by id.
    pub path: Vec<String>,
    /// Descending when true.
    pub descending: bool,
}
