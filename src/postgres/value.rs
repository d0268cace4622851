//! Values on the wire: one parameter type ([`Param`]) that binds to whatever SQL
//! type PostgreSQL inferred for its placeholder, and one cell type ([`Cell`]) that
//! reads any column the layout has, with the conversions Roundup-on-PostgreSQL
//! applies (reference §2.3–§2.4 of the PostgreSQL notes).
//!
//! * ids, Links and Integers are `integer` (int4): an `i64` outside its range is
//!   refused before it is sent ([`ParamError::Range`]);
//! * Numbers are `real` (float4) or `double precision`: written as psycopg2 writes
//!   them (the shortest decimal of the f64, rounded by PostgreSQL to float4, see
//!   [`roundup_f32`]) and read back as Python reads PostgreSQL's text output
//!   ([`f32_as_python`]);
//! * Dates are `timestamp` (microseconds since 2000-01-01, no time zone, UTC).

use crate::hyperdb::date::Date;
use bytes::BytesMut;
use std::error::Error;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};

/// Milliseconds from 1970-01-01 to PostgreSQL's epoch 2000-01-01 (UTC).
const PG_EPOCH_MS: i64 = 946_684_800_000;

/// A Date as PostgreSQL `timestamp` microseconds.
pub fn date_to_micros(d: &Date) -> i64 {
    (d.unix_millis() - PG_EPOCH_MS) * 1000
}

/// A `timestamp` read back as a Date, rounded to the millisecond (Roundup writes
/// milliseconds; other writers may have stored microseconds). `None` for
/// `infinity` and dates outside years 1..=9999.
pub fn micros_to_date(us: i64) -> Option<Date> {
    if us == i64::MAX || us == i64::MIN {
        return None;
    }
    let ms = us.div_euclid(1000) + i64::from(us.rem_euclid(1000) >= 500);
    Date::from_unix_millis(ms.checked_add(PG_EPOCH_MS)?)
}

/// The float4 Roundup-on-PostgreSQL stores for `x`: psycopg2 sends Python's
/// `repr(x)` (the shortest decimal that reads back as `x`) and PostgreSQL rounds
/// that decimal to float4, which differs from `x as f32` in rare cases. `None`
/// when PostgreSQL would refuse it ("out of range for type real").
pub fn roundup_f32(x: f64) -> Option<f32> {
    if !x.is_finite() {
        return Some(x as f32);
    }
    let v: f32 = format!("{x:?}").parse().ok()?;
    if v.is_infinite() || (v == 0.0 && x != 0.0) {
        return None;
    }
    // "-0.0" arrives as the numeric 0.
    Some(if v == 0.0 { 0.0 } else { v })
}

/// The f64 Python gets for a float4 read from PostgreSQL: the shortest decimal of
/// the float4 (PostgreSQL's text output since version 12), parsed as a double.
pub fn f32_as_python(v: f32) -> f64 {
    if !v.is_finite() {
        return f64::from(v);
    }
    format!("{v}").parse().unwrap_or(f64::from(v))
}

/// Why a parameter could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum ParamError {
    /// A value outside the range of its column type.
    #[error("{0}")]
    Range(String),
    /// A value of a kind the placeholder's type cannot take (a bug).
    #[error("cannot send {0} as {1}")]
    Type(&'static str, String),
}

/// One bound parameter; converted to the type PostgreSQL inferred for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// SQL NULL.
    Null,
    /// An integer (ids, Links, Integers, seconds, tokens).
    Int(i64),
    /// A Number.
    Real(f64),
    /// Text.
    Text(String),
    /// A Boolean.
    Bool(bool),
    /// A Date.
    Date(Date),
    /// A list of integers (`= any($n)`).
    Ints(Vec<i64>),
    /// A list of texts (`= any($n)`, `unnest($n)`).
    Texts(Vec<String>),
}

fn int4(i: i64) -> Result<i32, ParamError> {
    i32::try_from(i)
        .map_err(|_| ParamError::Range(format!("value {i} is out of range for type integer")))
}

impl Param {
    fn kind(&self) -> &'static str {
        match self {
            Param::Null => "NULL",
            Param::Int(_) => "an integer",
            Param::Real(_) => "a number",
            Param::Text(_) => "text",
            Param::Bool(_) => "a boolean",
            Param::Date(_) => "a date",
            Param::Ints(_) => "integers",
            Param::Texts(_) => "texts",
        }
    }

    fn mismatch(&self, ty: &Type) -> Box<dyn Error + Sync + Send> {
        Box::new(ParamError::Type(self.kind(), ty.name().to_string()))
    }
}

impl ToSql for Param {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match (self, ty) {
            (Param::Null, _) => Ok(IsNull::Yes),
            (Param::Int(i), &Type::INT4) => int4(*i)?.to_sql(ty, out),
            (Param::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Param::Int(i), &Type::INT2) => i16::try_from(*i)
                .map_err(|_| {
                    ParamError::Range(format!("value {i} is out of range for type smallint"))
                })?
                .to_sql(ty, out),
            (Param::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Param::Int(i), &Type::FLOAT4) => Param::Real(*i as f64).to_sql(ty, out),
            (Param::Int(i), &Type::TEXT | &Type::VARCHAR) => i.to_string().as_str().to_sql(ty, out),
            (Param::Int(i), &Type::BOOL) => (*i != 0).to_sql(ty, out),
            (Param::Real(x), &Type::FLOAT4) => match roundup_f32(*x) {
                Some(v) => v.to_sql(ty, out),
                None => Err(Box::new(ParamError::Range(format!(
                    "\"{}\" is out of range for type real",
                    crate::store::pyrepr::float_repr(*x)
                )))),
            },
            (Param::Real(x), &Type::FLOAT8) => x.to_sql(ty, out),
            (Param::Text(s), &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME) => {
                s.as_str().to_sql(ty, out)
            }
            (Param::Bool(b), &Type::BOOL) => b.to_sql(ty, out),
            (Param::Bool(b), &Type::INT4) => i32::from(*b).to_sql(ty, out),
            (Param::Date(d), &Type::TIMESTAMP) => {
                out.extend_from_slice(&date_to_micros(d).to_be_bytes());
                Ok(IsNull::No)
            }
            (Param::Ints(v), &Type::INT4_ARRAY) => {
                // Ids beyond int4 cannot be stored, so they match nothing.
                let v: Vec<i32> = v.iter().filter_map(|i| i32::try_from(*i).ok()).collect();
                v.to_sql(ty, out)
            }
            (Param::Ints(v), &Type::INT8_ARRAY) => v.to_sql(ty, out),
            (Param::Texts(v), &Type::TEXT_ARRAY | &Type::VARCHAR_ARRAY) => {
                let v: Vec<&str> = v.iter().map(String::as_str).collect();
                v.to_sql(ty, out)
            }
            _ => Err(self.mismatch(ty)),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// One cell read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// NULL.
    Null,
    /// Any integer column.
    Int(i64),
    /// `real` (as Python reads it) or `double precision`.
    Real(f64),
    /// Text of any kind.
    Text(String),
    /// `boolean`.
    Bool(bool),
    /// `timestamp`, microseconds since 2000-01-01.
    Timestamp(i64),
    /// An `integer[]` (Multilink ids gathered with `array(...)`).
    Ints(Vec<i64>),
    /// A `text[]` (NULL elements kept as `None`).
    Texts(Vec<Option<String>>),
}

impl Cell {
    /// The integer, if this is one.
    pub fn int(&self) -> Option<i64> {
        match self {
            Cell::Int(i) => Some(*i),
            Cell::Bool(b) => Some(i64::from(*b)),
            Cell::Real(f) => Some(*f as i64),
            Cell::Text(t) => t.trim().parse().ok(),
            _ => None,
        }
    }

    /// The text, if this is text (or something with an obvious text form).
    pub fn text(self) -> Option<String> {
        match self {
            Cell::Text(t) => Some(t),
            Cell::Int(i) => Some(i.to_string()),
            Cell::Real(f) => Some(f.to_string()),
            Cell::Bool(b) => Some(if b { "true" } else { "false" }.into()),
            Cell::Timestamp(_) | Cell::Ints(_) | Cell::Texts(_) | Cell::Null => None,
        }
    }
}

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT2 => Cell::Int(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => Cell::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => Cell::Int(i64::from_sql(ty, raw)?),
            Type::OID => Cell::Int(u32::from_sql(ty, raw)?.into()),
            Type::FLOAT4 => Cell::Real(f32_as_python(f32::from_sql(ty, raw)?)),
            Type::FLOAT8 => Cell::Real(f64::from_sql(ty, raw)?),
            Type::BOOL => Cell::Bool(bool::from_sql(ty, raw)?),
            Type::TIMESTAMP => {
                let b: [u8; 8] = raw.try_into()?;
                Cell::Timestamp(i64::from_be_bytes(b))
            }
            Type::INT4_ARRAY => Cell::Ints(
                Vec::<Option<i32>>::from_sql(ty, raw)?
                    .into_iter()
                    .flatten()
                    .map(i64::from)
                    .collect(),
            ),
            Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => {
                Cell::Texts(Vec::<Option<String>>::from_sql(ty, raw)?)
            }
            _ => Cell::Text(String::from_utf8_lossy(raw).into_owned()),
        })
    }

    fn from_sql_null(_ty: &Type) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Cell::Null)
    }

    fn accepts(ty: &Type) -> bool {
        // Text-like types arrive as UTF-8 in the binary format too.
        matches!(
            *ty,
            Type::INT2
                | Type::INT4
                | Type::INT8
                | Type::OID
                | Type::FLOAT4
                | Type::FLOAT8
                | Type::BOOL
                | Type::TIMESTAMP
                | Type::INT4_ARRAY
                | Type::TEXT_ARRAY
                | Type::VARCHAR_ARRAY
                | Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::UNKNOWN
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_as_roundup_on_postgresql() {
        assert_eq!(roundup_f32(1.1), Some(1.1f32));
        assert_eq!(f32_as_python(1.1f32), 1.1);
        assert_eq!(f32_as_python(roundup_f32(0.1 + 0.2).expect("fits")), 0.3);
        assert_eq!(
            f32_as_python(roundup_f32(1.23456789).expect("fits")),
            1.2345679
        );
        assert_eq!(
            f32_as_python(roundup_f32(16777217.0).expect("fits")),
            16777216.0
        );
        // Rounding the decimal, not the binary double (strtof of "1.0000000596046448").
        assert_eq!(roundup_f32(1.0000000596046448), Some(1.0000001f32));
        assert_eq!(roundup_f32(3.4028235677973366e38), Some(f32::MAX));
        assert_eq!(roundup_f32(1e39), None);
        assert_eq!(roundup_f32(1e-50), None);
        assert_eq!(roundup_f32(-0.0).map(f32::is_sign_negative), Some(false));
        assert!(roundup_f32(1e-40).is_some_and(|v| v > 0.0));
    }

    #[test]
    fn timestamps_round_trip_dates() {
        for ms in [
            0i64,
            946_684_800_000,
            1_700_000_000_123,
            -62_135_596_800_000,
        ] {
            let d = Date::from_unix_millis(ms).expect("in range");
            assert_eq!(micros_to_date(date_to_micros(&d)), Some(d));
        }
        let d = Date::from_unix_millis(946_684_800_001).expect("in range");
        assert_eq!(micros_to_date(1499), Some(d));
        assert_eq!(micros_to_date(i64::MAX), None);
    }

    #[test]
    fn out_of_range_integers_are_refused_before_sending() {
        let mut out = BytesMut::new();
        assert!(Param::Int(1 << 31).to_sql(&Type::INT4, &mut out).is_err());
        assert!(Param::Int((1 << 31) - 1)
            .to_sql(&Type::INT4, &mut out)
            .is_ok());
        assert!(Param::Real(1e39).to_sql(&Type::FLOAT4, &mut out).is_err());
        assert!(Param::Text("x".into())
            .to_sql(&Type::INT4, &mut out)
            .is_err());
    }
}
