//! Creating the database and evolving Roundup 2.6's PostgreSQL layout, statement
//! for statement as `back_postgresql.py`/`rdbms_common.py` do it: a database made
//! here dumps (`pg_dump -s`) identically to one Roundup made, and Roundup opens it
//! without migrating.

use super::connect::Target;
use super::pool::Conn;
use super::value::Cell;
use crate::schema::{ClassDef, PropType, Schema};
use crate::store::pyrepr::class_spec_repr;
use crate::store::schema_row::{disallowed, schema_text, stored_schema};
use crate::store::{Result, StoreError};
use tokio_postgres::error::SqlState;

/// The column type Roundup's PostgreSQL backend declares for a property type.
fn sql_type(kind: &PropType) -> &'static str {
    match kind {
        PropType::String { .. } => "TEXT",
        PropType::Interval | PropType::Password => "VARCHAR(255)",
        PropType::Date => "TIMESTAMP",
        PropType::Link { .. } | PropType::Integer => "INTEGER",
        PropType::Boolean => "BOOLEAN",
        PropType::Number => "REAL",
        PropType::Multilink { .. } => "",
    }
}

/// The non-Multilink columns of a class table, sorted by name as Roundup sorts
/// them (Python string order of `_<prop>`, before PostgreSQL folds case).
pub fn columns(class: &ClassDef) -> Vec<(String, &'static str)> {
    crate::store::row::columns(class, sql_type)
}

/// The tables every Roundup PostgreSQL database has (`open_connection` +
/// `fix_version_3_tables` + the `__fts` table), in the column order Roundup's
/// ALTERs leave behind.
const BASE_TABLES: &str = "
CREATE TABLE schema (schema TEXT);
CREATE TABLE dual (dummy integer);
insert into dual values (1);
CREATE TABLE otks (otk_key VARCHAR(255), otk_time float, otk_value TEXT);
CREATE INDEX otks_key_idx ON otks(otk_key);
CREATE TABLE sessions (session_key VARCHAR(255), session_time float, session_value TEXT);
CREATE INDEX sessions_key_idx ON sessions(session_key);
CREATE SEQUENCE ___textids_ids;
CREATE TABLE __textids (_textid integer primary key, _class VARCHAR(255),
    _itemid VARCHAR(255), _prop VARCHAR(255));
CREATE TABLE __words (_word VARCHAR(55), _textid integer);
CREATE INDEX words_word_idx ON __words(_word);
CREATE INDEX words_by_id ON __words (_textid);
CREATE UNIQUE INDEX __textids_by_props ON __textids (_class, _itemid, _prop);
CREATE INDEX words_both_idx ON __words USING btree (_word, _textid);
CREATE TABLE __fts (_class VARCHAR(255), _itemid VARCHAR(255), _prop VARCHAR(255), _tsv tsvector);
CREATE INDEX __fts_idx ON __fts USING GIN (_tsv);
";

fn relation_exists(c: &mut Conn, name: &str) -> Result<bool> {
    let row = c.query_one("select to_regclass($1) is not null", &[&name])?;
    Ok(row.get(0))
}

/// The lower-cased column names of a table.
fn existing_columns(c: &mut Conn, table: &str) -> Result<Vec<String>> {
    let rows = c.query(
        "select a.attname::text from pg_attribute a where a.attrelid = to_regclass($1) \
         and a.attnum > 0 and not a.attisdropped",
        &[&table],
    )?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

fn create_class(c: &mut Conn, class: &ClassDef) -> Result<()> {
    let cn = &class.name;
    let mut cols: Vec<String> = columns(class)
        .into_iter()
        .map(|(c, t)| format!("{c} {t}"))
        .collect();
    cols.push("id INTEGER PRIMARY KEY".into());
    cols.push("__retired__ INTEGER DEFAULT 0".into());
    c.batch_execute(&format!(
        "CREATE SEQUENCE _{cn}_ids;
         create table _{cn} ({});
         create index _{cn}_retired_idx on _{cn}(__retired__);",
        cols.join(",")
    ))?;
    if let Some(key) = &class.key {
        c.batch_execute(&format!(
            "create index _{cn}_{key}_idx on _{cn}(_{key});
             create unique index _{cn}_key_retired_idx on _{cn}(__retired__, _{key});"
        ))?;
    }
    create_journal(c, cn)?;
    for p in class.properties.iter().filter(|p| p.kind.is_multilink()) {
        create_multilink_table(c, cn, &p.name)?;
    }
    Ok(())
}

fn create_journal(c: &mut Conn, cn: &str) -> Result<()> {
    c.batch_execute(&format!(
        "create table {cn}__journal (nodeid integer, date TIMESTAMP, tag varchar(255),
             action varchar(255), params text);
         create index {cn}_journ_idx on {cn}__journal(nodeid);"
    ))?;
    Ok(())
}

fn create_multilink_table(c: &mut Conn, cn: &str, prop: &str) -> Result<()> {
    c.batch_execute(&format!(
        "create table {cn}_{prop} (linkid INTEGER, nodeid INTEGER);
         create index {cn}_{prop}_l_idx on {cn}_{prop}(linkid);
         create index {cn}_{prop}_n_idx on {cn}_{prop}(nodeid);"
    ))?;
    Ok(())
}

/// Brings an existing class's tables up to the schema (Roundup's `update_class`
/// additions): new columns, Multilink tables, key indexes, the journal and the id
/// sequence. Never drops anything.
fn update_class(c: &mut Conn, class: &ClassDef) -> Result<()> {
    let cn = &class.name;
    let have = existing_columns(c, &format!("_{cn}"))?;
    for (col, ty) in columns(class) {
        if !have.iter().any(|h| *h == col.to_lowercase()) {
            c.batch_execute(&format!("alter table _{cn} add column {col} {ty}"))?;
            tracing::info!(class = %cn, column = %col, "schema migration: column added");
        }
    }
    for p in class.properties.iter().filter(|p| p.kind.is_multilink()) {
        if !relation_exists(c, &format!("{cn}_{}", p.name.to_lowercase()))? {
            tracing::info!(class = %cn, property = %p.name,
                "schema migration: Multilink table added");
            create_multilink_table(c, cn, &p.name)?;
        }
    }
    if let Some(key) = &class.key {
        if !relation_exists(c, &format!("_{cn}_{key}_idx").to_lowercase())? {
            c.batch_execute(&format!("create index _{cn}_{key}_idx on _{cn}(_{key})"))?;
        }
        if !relation_exists(c, &format!("_{cn}_key_retired_idx").to_lowercase())? {
            // Old data may hold duplicate keys: like Roundup, carry on without the
            // unique index then (a failed statement aborts the transaction, hence
            // the savepoint).
            c.batch_execute("SAVEPOINT rxs_key_idx")?;
            let made = c.batch_execute(&format!(
                "create unique index _{cn}_key_retired_idx on _{cn}(__retired__, _{key})"
            ));
            match made {
                Ok(()) => c.batch_execute("RELEASE SAVEPOINT rxs_key_idx")?,
                Err(e) => {
                    tracing::warn!(class = %cn, key = %key, error = %e,
                        "schema migration: duplicate keys in old data; unique key index not created");
                    c.batch_execute("ROLLBACK TO SAVEPOINT rxs_key_idx")?;
                }
            }
        }
    }
    if !relation_exists(c, &format!("{cn}__journal"))? {
        tracing::info!(class = %cn, "schema migration: journal table added");
        create_journal(c, cn)?;
    }
    if !relation_exists(c, &format!("_{cn}_ids"))? {
        c.batch_execute(&format!("CREATE SEQUENCE _{cn}_ids"))?;
        c.execute(
            &format!("select setval('_{cn}_ids', coalesce(max(id), 0) + 1, false) from _{cn}"),
            &[],
        )?;
    }
    Ok(())
}

/// Options of [`sync_schema`].
#[derive(Debug, Clone, Copy)]
pub struct SyncOptions {
    /// `[rdbms] allow_create`.
    pub allow_create: bool,
    /// `[rdbms] allow_alter`.
    pub allow_alter: bool,
    /// A database without Roundup's tables may get them (`init` only).
    pub create: bool,
}

/// Makes the database match `schema` in one transaction: creates the base tables
/// of a new database (`create` only), checks the stored version, creates or
/// extends class tables and rewrites the `schema` row. The `schema` table is
/// locked for the duration, so that daemons starting together (and Roundup, whose
/// every open rewrites the row) take turns.
pub fn sync_schema(c: &mut Conn, schema: &Schema, opts: SyncOptions) -> Result<()> {
    c.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")?;
    let result = sync_inner(c, schema, opts);
    match result {
        Ok(()) => c.batch_execute("COMMIT")?,
        Err(e) => {
            let _ = c.batch_execute("ROLLBACK");
            return Err(e);
        }
    }
    Ok(())
}

fn sync_inner(c: &mut Conn, schema: &Schema, opts: SyncOptions) -> Result<()> {
    let new = !relation_exists(c, "schema")?;
    if new {
        if !opts.create {
            return Err(StoreError::Incompatible(
                "the database has no Roundup tables (no \"schema\" table): `roundup-xmlrpc-server init` creates a tracker, serving never creates one".into(),
            ));
        }
        c.batch_execute(BASE_TABLES)?;
    }
    c.batch_execute("LOCK TABLE schema IN SHARE ROW EXCLUSIVE MODE")?;
    let stored: Option<String> = c
        .query_opt("select schema from schema", &[])?
        .and_then(|r| r.get::<_, Cell>(0).text());
    let stored_tables = stored_schema(stored.as_deref())?;
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut changed = stored.is_none();
    for class in &schema.classes {
        match stored_tables.tables.iter().find(|(n, _)| n == &class.name) {
            Some((_, old)) if old.same_as(class) => {}
            Some(_) => {
                if !opts.allow_alter {
                    return Err(disallowed("ALTER", &class.name, "allow_alter"));
                }
                update_class(c, class)?;
                changed = true;
            }
            None => {
                if relation_exists(c, &format!("_{}", class.name))? {
                    if !opts.allow_alter {
                        return Err(disallowed("ALTER", &class.name, "allow_alter"));
                    }
                    update_class(c, class)?;
                } else {
                    if !opts.allow_create {
                        return Err(disallowed("CREATE", &class.name, "allow_create"));
                    }
                    create_class(c, class)?;
                    if stored.is_some() {
                        tracing::info!(class = %class.name,
                            "schema migration: class added (tables created)");
                    }
                }
                changed = true;
            }
        }
        entries.push((class.name.clone(), class_spec_repr(class)));
    }
    // Classes that left schema.toml keep their tables and their schema entry.
    for (name, old) in &stored_tables.tables {
        if schema.class(name).is_none() {
            entries.push((name.clone(), old.raw.clone()));
        }
    }
    if changed {
        let text = schema_text(&entries);
        c.batch_execute("delete from schema")?;
        c.execute("insert into schema values ($1)", &[&text])?;
        if stored.is_some() {
            tracing::info!("schema migration: database brought up to schema.toml");
        }
    }
    Ok(())
}

/// Checks what the store relies on: PostgreSQL 12 or later (shortest float
/// output) and a UTF-8 database.
pub fn check_server(c: &mut Conn) -> Result<()> {
    let row = c.query_one(
        "select current_setting('server_version_num')::int, current_setting('server_encoding')",
        &[],
    )?;
    let version: i32 = row.get(0);
    let encoding: String = row.get(1);
    if version < 120_000 {
        return Err(StoreError::Incompatible(format!(
            "PostgreSQL {version} is too old: version 12 or later is needed"
        )));
    }
    if encoding != "UTF8" {
        return Err(StoreError::Incompatible(format!(
            "the database encoding is {encoding}; Roundup's layout needs UTF8"
        )));
    }
    Ok(())
}

/// Quotes an identifier for `CREATE DATABASE`/`CREATE SCHEMA` (Roundup quotes
/// these names).
fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Connects to the tracker's database, creating it first when it does not exist
/// and `create` is set (Roundup's `db_create`: `CREATE DATABASE "<name>" WITH
/// ENCODING='UNICODE'` plus `TEMPLATE=<template>`, through the `postgres`
/// database, else `template1`; for `name = database.schema`, `CREATE SCHEMA`).
/// Returns the connection and whether the database (or schema) was created.
pub fn connect_or_create(target: &Target, create: bool) -> Result<(Conn, bool)> {
    let mut created = false;
    let client = match Conn::open(target) {
        Ok(c) => c,
        Err(e) if create && e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            let mut admin = match Conn::open(&target.with_dbname("postgres")) {
                Ok(c) => c,
                Err(_) => Conn::open(&target.with_dbname("template1"))
                    .map_err(|e| StoreError::Unavailable(super::pool::connect_error(target, &e)))?,
            };
            let mut sql = format!(
                "CREATE DATABASE {} WITH ENCODING='UNICODE'",
                quote_ident(&target.dbname)
            );
            if let Some(t) = &target.template {
                sql.push_str(&format!(" TEMPLATE={}", quote_ident(t)));
            }
            // Retried while the template is in use by another session, as Roundup does.
            let mut tries = 0;
            loop {
                match admin.batch_execute(&sql) {
                    Ok(()) => break,
                    Err(e) if tries < 50 && e.code() == Some(&SqlState::OBJECT_IN_USE) => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            drop(admin);
            created = true;
            Conn::open(target)
                .map_err(|e| StoreError::Unavailable(super::pool::connect_error(target, &e)))?
        }
        Err(e) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            return Err(StoreError::Missing(std::path::PathBuf::from(format!(
                "PostgreSQL database \"{}\"",
                target.dbname
            ))));
        }
        Err(e) => {
            return Err(StoreError::Unavailable(super::pool::connect_error(
                target, &e,
            )))
        }
    };
    let mut client = client;
    if let Some(schema) = &target.schema {
        let exists: bool = client
            .query_one(
                "select exists (select 1 from pg_namespace where nspname = $1)",
                &[schema],
            )?
            .get(0);
        if !exists {
            if !create {
                return Err(StoreError::Missing(std::path::PathBuf::from(format!(
                    "PostgreSQL schema \"{schema}\" in database \"{}\"",
                    target.dbname
                ))));
            }
            client.batch_execute(&format!(
                "CREATE SCHEMA {} AUTHORIZATION {}",
                quote_ident(schema),
                quote_ident(&target.user)
            ))?;
            created = true;
        }
    }
    Ok((client, created))
}

/// Drops the database `init` created when initialising it failed, so that the
/// next attempt starts clean (as `init` removes its half-made directory).
pub fn drop_created(target: &Target) {
    let result = (|| -> Result<()> {
        if let Some(schema) = &target.schema {
            let mut c = Conn::open(target)?;
            c.batch_execute(&format!("DROP SCHEMA {} CASCADE", quote_ident(schema)))?;
            return Ok(());
        }
        let mut admin = Conn::open(&target.with_dbname("postgres"))?;
        admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {}",
            quote_ident(&target.dbname)
        ))?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(target = ?target, error = %e, "could not drop the half-made database");
    }
}

/// True when the database holds no tables of ours or Roundup's (an existing
/// database that `init` may fill).
pub fn is_empty(c: &mut Conn) -> Result<bool> {
    let n: i64 = c
        .query_one(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname = current_schema() and c.relkind in ('r', 'S', 'v', 'm')",
            &[],
        )?
        .get(0);
    Ok(n == 0)
}
