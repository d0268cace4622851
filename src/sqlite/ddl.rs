//! Creating and evolving the Roundup 2.6 sqlite layout (reference §8.2, §8.6).

use crate::schema::{ClassDef, PropType, Schema};
use crate::store::pyrepr::class_spec_repr;
use crate::store::schema_row::{disallowed, schema_text, stored_schema};
use crate::store::Result;
use rusqlite::{params, Connection, OptionalExtension};

pub use crate::store::schema_row::DB_VERSION;

/// The SQL column type Roundup's sqlite backend declares for a property type.
fn sql_type(kind: &PropType) -> &'static str {
    match kind {
        PropType::String { .. } | PropType::Interval | PropType::Password => "VARCHAR(255)",
        PropType::Date => "VARCHAR(30)",
        PropType::Link { .. } | PropType::Integer => "INTEGER",
        PropType::Boolean => "BOOLEAN",
        PropType::Number => "REAL",
        PropType::Multilink { .. } => "",
    }
}

/// The non-Multilink columns of a class table, sorted by name as Roundup sorts them.
pub fn columns(class: &ClassDef) -> Vec<(String, &'static str)> {
    crate::store::row::columns(class, sql_type)
}

/// Creates the tables every Roundup sqlite database has, if `schema` is missing.
/// Returns true when the database was new.
pub fn ensure_base_tables(conn: &Connection) -> Result<bool> {
    let exists: Option<String> = conn
        .query_row(
            "select name from sqlite_master where type='table' and name='schema'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_some() {
        return Ok(false);
    }
    conn.execute_batch(
        "create table schema (schema varchar);
         create table ids (name varchar, num integer);
         create index ids_name_idx on ids(name);
         create table otks (otk_key varchar, otk_value varchar, otk_time integer);
         create index otks_key_idx on otks(otk_key);
         create table sessions (session_key varchar, session_time integer, session_value varchar);
         create index sessions_key_idx on sessions(session_key);
         CREATE TABLE __textids (_class varchar, _itemid varchar, _prop varchar, _textid integer primary key);
         CREATE TABLE __words (_word varchar, _textid integer);
         CREATE INDEX words_word_ids ON __words(_word);
         CREATE INDEX words_by_id ON __words (_textid);
         CREATE UNIQUE INDEX __textids_by_props ON __textids (_class, _itemid, _prop);
         insert into ids (name, num) values ('__textids', 1);
         CREATE virtual TABLE __fts USING fts5(_class, _itemid, _prop, _textblob);",
    )?;
    Ok(true)
}

fn table_exists(conn: &Connection, name: &str) -> Result<bool> {
    let n: i64 = conn.query_row(
        "select count(*) from sqlite_master where type='table' and name=?1",
        [name],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

fn existing_columns(conn: &Connection, table: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("pragma table_info({table})"))?;
    let cols = stmt
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(cols)
}

/// Creates the tables and indexes of a new class, exactly as Roundup does.
fn create_class(conn: &Connection, class: &ClassDef) -> Result<()> {
    let cn = &class.name;
    let mut cols: Vec<String> = columns(class)
        .into_iter()
        .map(|(c, t)| format!("{c} {t}"))
        .collect();
    cols.push("id INTEGER PRIMARY KEY".into());
    cols.push("__retired__ INTEGER DEFAULT 0".into());
    conn.execute_batch(&format!(
        "create table _{cn} ({});
         create index _{cn}_retired_idx on _{cn}(__retired__);",
        cols.join(",")
    ))?;
    if let Some(key) = &class.key {
        create_key_indexes(conn, cn, key)?;
    }
    create_journal_table(conn, cn)?;
    for p in class.properties.iter().filter(|p| p.kind.is_multilink()) {
        create_multilink_table(conn, cn, &p.name)?;
    }
    conn.execute("insert into ids (name, num) values (?1, 1)", [cn])?;
    Ok(())
}

fn create_key_indexes(conn: &Connection, cn: &str, key: &str) -> Result<()> {
    conn.execute_batch(&format!(
        "create index if not exists _{cn}_{key}_idx on _{cn}(_{key});
         create unique index if not exists _{cn}_key_retired_idx
            on _{cn}(__retired__, _{key});"
    ))?;
    Ok(())
}

fn create_multilink_table(conn: &Connection, cn: &str, prop: &str) -> Result<()> {
    conn.execute_batch(&format!(
        "create table if not exists {cn}_{prop} (linkid INTEGER, nodeid INTEGER);
         create index if not exists {cn}_{prop}_l_idx on {cn}_{prop}(linkid);
         create index if not exists {cn}_{prop}_n_idx on {cn}_{prop}(nodeid);"
    ))?;
    Ok(())
}

/// Brings an existing class's tables up to the schema: adds missing columns,
/// Multilink tables and indexes. Never drops anything (removing a property from
/// schema.toml keeps its data).
fn update_class(conn: &Connection, class: &ClassDef) -> Result<()> {
    let cn = &class.name;
    let db = conn.path().unwrap_or_default();
    let have = existing_columns(conn, &format!("_{cn}"))?;
    for (col, ty) in columns(class) {
        if !have.iter().any(|c| c == &col) {
            conn.execute_batch(&format!("alter table _{cn} add column {col} {ty}"))?;
            tracing::info!(db, class = %cn, column = %col, "schema migration: column added");
            if let Some(prop) = col
                .strip_prefix("__")
                .and_then(|c| c.strip_suffix("_int__"))
            {
                // Fill the seconds column of an Interval that already had text values.
                let _ = prop;
            }
        }
    }
    for p in class.properties.iter().filter(|p| p.kind.is_multilink()) {
        if !table_exists(conn, &format!("{cn}_{}", p.name))? {
            tracing::info!(db, class = %cn, property = %p.name,
                "schema migration: Multilink table added");
        }
        create_multilink_table(conn, cn, &p.name)?;
    }
    if let Some(key) = &class.key {
        // Roundup's unique (retired, key) index may be refused if old data has
        // duplicates; like Roundup, carry on without it then.
        if create_key_indexes(conn, cn, key).is_err() {
            tracing::warn!(db, class = %cn, key = %key,
                "schema migration: duplicate keys in old data; unique key index not created");
            conn.execute_batch(&format!(
                "create index if not exists _{cn}_{key}_idx on _{cn}(_{key});"
            ))?;
        }
    }
    if !table_exists(conn, &format!("{cn}__journal"))? {
        tracing::info!(db, class = %cn, "schema migration: journal table added");
        create_journal_table(conn, cn)?;
    }
    let has_ids: i64 =
        conn.query_row("select count(*) from ids where name=?1", [cn], |r| r.get(0))?;
    if has_ids == 0 {
        let max: i64 =
            conn.query_row(&format!("select coalesce(max(id),0) from _{cn}"), [], |r| {
                r.get(0)
            })?;
        conn.execute(
            "insert into ids (name, num) values (?1, ?2)",
            params![cn, max + 1],
        )?;
    }
    Ok(())
}

/// Roundup's journal table of class `cn` and its index.
fn create_journal_table(conn: &Connection, cn: &str) -> Result<()> {
    conn.execute_batch(&format!(
        "create table {cn}__journal (
            nodeid integer, date VARCHAR(30), tag varchar(255),
            action varchar(255), params text);
         create index {cn}_journ_idx on {cn}__journal(nodeid);"
    ))?;
    Ok(())
}

/// Makes the database match `schema`: creates base tables on a new database,
/// checks the stored version, creates or extends class tables, and rewrites the
/// `schema` row. Runs in its own transaction.
pub fn sync_schema(conn: &mut Connection, schema: &Schema, options: &super::Options) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    ensure_base_tables(&tx)?;
    let stored: Option<String> = tx
        .query_row("select schema from schema", [], |r| r.get(0))
        .optional()?;
    let stored_tables = stored_schema(stored.as_deref())?;
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut changed = stored.is_none();
    for class in &schema.classes {
        let spec = class_spec_repr(class);
        match stored_tables.tables.iter().find(|(n, _)| n == &class.name) {
            Some((_, old)) if old.same_as(class) => {}
            Some(_) => {
                if !options.allow_alter {
                    return Err(disallowed("ALTER", &class.name, "allow_alter"));
                }
                update_class(&tx, class)?;
                changed = true;
            }
            None => {
                if table_exists(&tx, &format!("_{}", class.name))? {
                    if !options.allow_alter {
                        return Err(disallowed("ALTER", &class.name, "allow_alter"));
                    }
                    update_class(&tx, class)?;
                } else {
                    if !options.allow_create {
                        return Err(disallowed("CREATE", &class.name, "allow_create"));
                    }
                    create_class(&tx, class)?;
                    if stored.is_some() {
                        tracing::info!(db = tx.path().unwrap_or_default(), class = %class.name,
                            "schema migration: class added (tables created)");
                    }
                }
                changed = true;
            }
        }
        entries.push((class.name.clone(), spec));
    }
    // Classes that left schema.toml keep their tables and their schema entry.
    for (name, old) in &stored_tables.tables {
        if schema.class(name).is_none() {
            tracing::info!(db = tx.path().unwrap_or_default(), class = %name,
                "class not in schema.toml: its tables and data are kept");
            entries.push((name.clone(), old.raw.clone()));
        }
    }
    if changed {
        let text = schema_text(&entries);
        tx.execute("delete from schema", [])?;
        tx.execute("insert into schema values (?1)", [text])?;
        if stored.is_some() {
            tracing::info!(
                db = tx.path().unwrap_or_default(),
                "schema migration: database brought up to schema.toml"
            );
        }
    }
    tx.commit()?;
    Ok(())
}
