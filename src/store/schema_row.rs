//! Roundup's `schema` row as both backends keep it: the layout version, the
//! stored row read with Roundup's version checks, the row's new text, and the
//! refusal of a table change that `[rdbms]` disallows.

use crate::store::pyrepr::{parse_schema_row, str_repr, StoredSchema};
use crate::store::{Result, StoreError};

/// Roundup's `current_db_version`.
pub const DB_VERSION: i64 = 8;

/// The stored `schema` row, parsed (`None`, a new database: this version, no
/// tables). Refused when unreadable, or of another version than
/// [`DB_VERSION`]: a newer one with Roundup's message, an older one because
/// Roundup 2.6 must upgrade it first.
pub fn stored_schema(stored: Option<&str>) -> Result<StoredSchema> {
    let stored_tables = match stored {
        Some(text) => parse_schema_row(text)
            .map_err(|e| StoreError::Incompatible(format!("unreadable schema row: {e}")))?,
        None => StoredSchema {
            version: DB_VERSION,
            tables: vec![],
        },
    };
    if stored_tables.version > DB_VERSION {
        return Err(StoreError::Incompatible(format!(
            "attempting to run rev {} DATABASE with rev {DB_VERSION} CODE!",
            stored_tables.version
        )));
    }
    if stored.is_some() && stored_tables.version < DB_VERSION {
        return Err(StoreError::Incompatible(format!(
            "database schema version {} is older than {DB_VERSION}; open it once with Roundup 2.6 to upgrade it",
            stored_tables.version
        )));
    }
    Ok(stored_tables)
}

/// The `schema` row's text for `entries` (class name, class spec repr), as
/// Roundup writes it.
pub fn schema_text(entries: &[(String, String)]) -> String {
    let body: Vec<String> = entries
        .iter()
        .map(|(n, s)| format!("{}: {}", str_repr(n), s))
        .collect();
    format!(
        "{{'version': {DB_VERSION}, 'tables': {{{}}}}}",
        body.join(", ")
    )
}

/// Roundup's refusal of a table change (`operation` on `class`) that the
/// `[rdbms]` `option` disallows.
pub fn disallowed(operation: &str, class: &str, option: &str) -> StoreError {
    StoreError::Incompatible(format!(
        "{operation} operation disallowed: \"{class}\" ([rdbms] {option} = no)"
    ))
}
