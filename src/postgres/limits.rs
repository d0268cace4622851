//! The failed-login limiter's state in the database, shared by every daemon on it:
//! rows of Roundup's `otks` table in the format Roundup's own API limiter writes
//! (`LoginAction.rateLimitLogin`): key = the limiter key (Roundup's is
//! `LOGIN-API<username>`, which our per-username key equals, so failures counted
//! by Roundup's web and REST endpoints count here too), value = the repr of a
//! dict with `tat` (ISO 8601 UTC) and `__timestamp`, `otk_time` = when Roundup's
//! clean-up may delete it.
//!
//! Each check is one indexed select; each update is a short transaction of its
//! own (not the call's, so a call that fails still counts), serialised per key by
//! an advisory lock because `otk_key` has no unique index.

use super::pool::{Conn, PgError};
use super::value::{Cell, Param};
use super::PgStore;
use crate::store::pyrepr::{self, PyValue};
use crate::store::{Result, SharedLimits, StoreError};
use sha2::{Digest, Sha256};
use std::sync::atomic::Ordering;
use tokio_postgres::types::ToSql;

/// Roundup's OTK lifetime base: rows whose `otk_time` is older than a week are
/// deleted by its clean-up (`sessions_rdbms.py`).
const WEEK: f64 = 604_800.0;

/// How often expired rows are deleted here (seconds).
const CLEAN_EVERY: i64 = 3600;

/// The query reading limiter rows (`$1`: the keys as [`db_key`] stores them).
pub(super) const TATS_SQL: &str = "select otk_key, otk_value from otks where otk_key = any($1)";

/// `otk_key` is `varchar(255)`: longer keys are stored as a digest.
pub(super) fn db_key(key: &str) -> String {
    if key.len() <= 255 {
        return key.to_string();
    }
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("LOGIN-SHA256-{hex}")
}

/// Python's `datetime.isoformat()` of a UTC instant: `2026-12-04T20:56:56.619462+00:00`
/// (no fraction when the microseconds are 0).
pub fn isoformat(unix: f64) -> String {
    let micros = (unix * 1e6).round() as i64;
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    if frac != 0 {
        s.push_str(&format!(".{frac:06}"));
    }
    s.push_str("+00:00");
    s
}

/// Parses what [`isoformat`] writes (any offset), to Unix seconds.
pub fn parse_iso(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        frac = format!("0.{}", &r[..n]).parse().ok()?;
        rest = &r[n..];
    }
    let offset = match rest {
        "" | "Z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let v = o[1..3].parse::<i64>().ok()? * 3600 + o[4..6].parse::<i64>().ok()? * 60;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset) as f64 + frac)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// The arrival times of `db_keys` in rows of [`TATS_SQL`], in key order.
pub(super) fn tats_from_rows(db_keys: &[String], rows: &[tokio_postgres::Row]) -> Vec<Option<f64>> {
    let mut out = vec![None; db_keys.len()];
    for r in rows {
        let (Some(k), Some(v)) = (r.get::<_, Cell>(0).text(), r.get::<_, Cell>(1).text()) else {
            continue;
        };
        if let Some(i) = db_keys.iter().position(|d| *d == k) {
            let tat = stored_tat(&v);
            // Duplicate rows (no unique index): the latest state wins.
            out[i] = match (out[i], tat) {
                (Some(a), Some(b)) => Some(f64::max(a, b)),
                (a, b) => a.or(b),
            };
        }
    }
    out
}

/// The arrival times of `db_keys` from parallel arrays of keys and values.
pub(super) fn tats_from_arrays(
    db_keys: &[String],
    keys: &[Option<String>],
    values: &[Option<String>],
) -> Vec<Option<f64>> {
    let mut out = vec![None; db_keys.len()];
    for (k, v) in keys.iter().zip(values) {
        let (Some(k), Some(v)) = (k, v) else { continue };
        if let Some(i) = db_keys.iter().position(|d| d == k) {
            let tat = stored_tat(v);
            out[i] = match (out[i], tat) {
                (Some(a), Some(b)) => Some(f64::max(a, b)),
                (a, b) => a.or(b),
            };
        }
    }
    out
}

/// The `tat` of a stored value, if it has a readable one.
fn stored_tat(value: &str) -> Option<f64> {
    let PyValue::Dict(items) = pyrepr::parse(value).ok()? else {
        return None;
    };
    items.iter().find_map(|(k, v)| match (k, v) {
        (PyValue::Str(k), PyValue::Str(t)) if k == "tat" => parse_iso(t),
        _ => None,
    })
}

/// The stored value with `tat` and `__timestamp` replaced (other keys kept, in
/// order; new keys appended as Python's `dict.update` does).
fn new_value(old: Option<&str>, tat: f64, timestamp: f64) -> String {
    let mut items = match old.map(pyrepr::parse) {
        Some(Ok(PyValue::Dict(items))) => items,
        _ => Vec::new(),
    };
    let mut set = |key: &str, v: PyValue| match items
        .iter_mut()
        .find(|(k, _)| matches!(k, PyValue::Str(s) if s == key))
    {
        Some(slot) => slot.1 = v,
        None => items.push((PyValue::Str(key.into()), v)),
    };
    set("tat", PyValue::Str(isoformat(tat)));
    set("__timestamp", PyValue::Float(timestamp));
    PyValue::Dict(items).repr()
}

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl PgStore {
    fn limits_txn<T>(
        &self,
        f: impl FnOnce(&mut Conn) -> std::result::Result<T, PgError>,
    ) -> Result<T> {
        let mut conn = self.pool.get()?;
        let result = conn
            .batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            .and_then(|()| f(&mut conn))
            .and_then(|v| conn.batch_execute("COMMIT").map(|()| v));
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                if conn.batch_execute("ROLLBACK").is_err() || conn.is_closed() {
                    conn.set_broken();
                    self.pool.flush_idle();
                }
                Err(StoreError::from(e))
            }
        }
    }
}

impl SharedLimits for PgStore {
    fn tats(&self, keys: &[&str]) -> Result<Vec<Option<f64>>> {
        let db_keys: Vec<String> = keys.iter().map(|k| db_key(k)).collect();
        let mut conn = self.pool.get()?;
        let param = Param::Texts(db_keys.clone());
        let rows = match conn.query(TATS_SQL, &[&param as &(dyn ToSql + Sync)]) {
            Ok(rows) => rows,
            Err(e) => {
                if conn.is_closed() || !matches!(&e, PgError::Pg(p) if p.as_db_error().is_some()) {
                    conn.set_broken();
                    self.pool.flush_idle();
                }
                return Err(StoreError::from(e));
            }
        };
        Ok(tats_from_rows(&db_keys, &rows))
    }

    fn update(
        &self,
        key: &str,
        interval: f64,
        decide: &mut dyn FnMut(Option<f64>) -> Option<f64>,
    ) -> Result<bool> {
        let key = db_key(key);
        let now = now_unix();
        let clean = {
            let last = self.last_clean.load(Ordering::Relaxed);
            now as i64 - last >= CLEAN_EVERY
                && self
                    .last_clean
                    .compare_exchange(last, now as i64, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
        };
        self.limits_txn(|c| {
            c.execute(
                "select pg_advisory_xact_lock(hashtext('rxs:otk'), hashtext($1))",
                &[&key],
            )?;
            let old: Option<String> = c
                .query(
                    "select otk_value from otks where otk_key = $1 order by otk_time desc nulls last limit 1",
                    &[&key],
                )?
                .first()
                .and_then(|r| r.get::<_, Cell>(0).text());
            let tat = old.as_deref().and_then(stored_tat);
            let Some(new_tat) = decide(tat) else {
                return Ok(false);
            };
            // Roundup's lifetime convention: deletable two intervals from now.
            let timestamp = now - WEEK + 2.0 * interval;
            let value = new_value(old.as_deref(), new_tat, timestamp);
            let n = c.execute(
                "update otks set otk_value = $2, otk_time = $3 where otk_key = $1",
                &[&key, &value, &timestamp],
            )?;
            if n == 0 {
                c.execute(
                    "insert into otks (otk_key, otk_time, otk_value) values ($1, $3, $2)",
                    &[&key, &value, &timestamp],
                )?;
            }
            if clean {
                c.execute("delete from otks where otk_time < $1", &[&(now - WEEK)])?;
            }
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_as_python_writes_them() {
        assert_eq!(isoformat(0.0), "1970-01-01T00:00:00+00:00");
        assert_eq!(
            isoformat(1_795_813_016.619462),
            "2026-11-27T20:56:56.619462+00:00"
        );
        for t in [0.0, 1_795_813_016.619462, 1_700_000_000.5, 951_782_400.0] {
            let back = parse_iso(&isoformat(t)).expect("parses");
            assert!((back - t).abs() < 1e-6, "{t} -> {back}");
        }
        assert_eq!(
            parse_iso("2026-12-04T20:56:56+01:00"),
            parse_iso("2026-12-04T19:56:56+00:00")
        );
        assert_eq!(parse_iso("not a date"), None);
    }

    #[test]
    fn values_keep_roundups_format_and_other_keys() {
        let v = new_value(None, 0.0, 1.5);
        assert_eq!(
            v,
            "{'tat': '1970-01-01T00:00:00+00:00', '__timestamp': 1.5}"
        );
        assert_eq!(stored_tat(&v), Some(0.0));
        let old = "{'extra': 1, 'tat': '2026-12-04T20:56:56.619462+00:00', '__timestamp': 17.0}";
        let v = new_value(Some(old), 60.0, 2.0);
        assert_eq!(
            v,
            "{'extra': 1, 'tat': '1970-01-01T00:01:00+00:00', '__timestamp': 2.0}"
        );
        assert_eq!(stored_tat("garbage"), None);
    }

    #[test]
    fn long_keys_become_digests() {
        assert_eq!(db_key("LOGIN-APIjoe"), "LOGIN-APIjoe");
        let long = "x".repeat(300);
        assert!(db_key(&long).len() <= 255);
        assert_ne!(db_key(&long), db_key(&"y".repeat(300)));
    }
}
