//! Loading a tracker's `schema.toml` (into [`Schema`]) and `initial_data.toml` (into
//! [`InitialData`]), with every mistake reported as `file:line:column: message`.
//!
//! The file formats are documented in `tracker-template/README.md`. The loader adds
//! what Roundup's core adds by itself: the automatic FileClass and IssueClass
//! properties, the built-in `User`, `Admin` and `Anonymous` roles and the ten global
//! permissions Roundup gives the Admin role ([`implicit_grants`]).

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use toml::de::{DeArray, DeTable, DeValue};
use toml::Spanned;

use crate::security::CheckExpr;
use crate::tracker::schema::{
    ClassDef, ClassKind, Detectors, Grant, PropType, Property, Role, Schema,
};

/// The properties every class has without declaring them (Roundup's automatic ones).
pub const AUTOMATIC_PROPS: [&str; 5] = ["id", "creation", "activity", "creator", "actor"];

/// The roles Roundup's `Security` creates by itself, with their descriptions, in
/// Roundup's order.
pub const BUILTIN_ROLES: [(&str, &str); 3] = [
    ("User", "A regular user, no privs"),
    ("Admin", "An admin user, full privs"),
    ("Anonymous", "An anonymous user"),
];

/// An error in a tracker TOML file (`schema.toml` or `initial_data.toml`).
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The file could not be read.
    #[error("{file}: cannot read the file: {source}")]
    Io {
        /// The path as given.
        file: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not describe a valid schema / data set.
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        /// The file name as given.
        file: String,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column (in characters) of the offending text.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

impl SchemaError {
    /// The message without the `file:line:column: ` prefix (the I/O error text for `Io`).
    pub fn message(&self) -> String {
        match self {
            SchemaError::Io { source, .. } => source.to_string(),
            SchemaError::Invalid { message, .. } => message.clone(),
        }
    }
}

/// The data `init` writes into a new tracker database: one `create` per entry, in
/// order, each as `(class name, ["prop=value", ...])` with placeholders substituted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InitialData {
    /// The creates, in file order.
    pub creates: Vec<(String, Vec<String>)>,
}

type V<'i> = Spanned<DeValue<'i>>;
type K<'i> = Spanned<std::borrow::Cow<'i, str>>;

/// Error construction and type-checked access to TOML values, bound to one file.
struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> SchemaError {
        let (line, column) = line_col(self.text, span.start);
        SchemaError::Invalid {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    fn toml_err(&self, e: &toml::de::Error) -> SchemaError {
        let span = e.span().unwrap_or(0..0);
        let mut message = e.message().trim().to_string();
        if message == "duplicate key" {
            let key = self.text.get(span.clone()).unwrap_or("").trim();
            message = format!(
                "duplicate key {key}: TOML allows each key only once per table, so a class, \
                 property, option or table header may appear only once"
            );
        } else {
            message = format!("invalid TOML: {message}");
        }
        self.err(span, message)
    }

    fn table<'v, 'i>(&self, v: &'v V<'i>, what: &str) -> Result<&'v DeTable<'i>, SchemaError> {
        match v.get_ref() {
            DeValue::Table(t) => Ok(t),
            other => Err(self.err(
                v.span(),
                format!("{what} must be a table, not {}", article(other.type_str())),
            )),
        }
    }

    fn array<'v, 'i>(&self, v: &'v V<'i>, what: &str) -> Result<&'v DeArray<'i>, SchemaError> {
        match v.get_ref() {
            DeValue::Array(a) => Ok(a),
            other => Err(self.err(
                v.span(),
                format!("{what} must be an array, not {}", article(other.type_str())),
            )),
        }
    }

    fn string<'v>(&self, v: &'v V<'_>, what: &str) -> Result<&'v str, SchemaError> {
        match v.get_ref() {
            DeValue::String(s) => Ok(s),
            other => Err(self.err(
                v.span(),
                format!("{what} must be a string, not {}", article(other.type_str())),
            )),
        }
    }

    fn boolean(&self, v: &V<'_>, what: &str) -> Result<bool, SchemaError> {
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            other => Err(self.err(
                v.span(),
                format!(
                    "{what} must be true or false, not {}",
                    article(other.type_str())
                ),
            )),
        }
    }

    /// A string, or an array of strings; each with its span.
    fn strings(&self, v: &V<'_>, what: &str) -> Result<Vec<(String, Range<usize>)>, SchemaError> {
        match v.get_ref() {
            DeValue::String(s) => Ok(vec![(s.to_string(), v.span())]),
            DeValue::Array(a) => {
                if a.is_empty() {
                    return Err(self.err(v.span(), format!("{what} must not be empty")));
                }
                a.iter()
                    .map(|x| {
                        Ok((
                            self.string(x, &format!("each of {what}"))?.to_string(),
                            x.span(),
                        ))
                    })
                    .collect()
            }
            other => Err(self.err(
                v.span(),
                format!(
                    "{what} must be a string or an array of strings, not {}",
                    article(other.type_str())
                ),
            )),
        }
    }

    fn check_keys(
        &self,
        t: &DeTable<'_>,
        allowed: &[&str],
        place: &str,
    ) -> Result<(), SchemaError> {
        for (k, _) in t.iter() {
            if !allowed.contains(&k.get_ref().as_ref()) {
                return Err(self.err(
                    k.span(),
                    format!(
                        "unknown key \"{}\" in {place} (expected {})",
                        k.get_ref(),
                        one_of(allowed)
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn article(type_str: &str) -> String {
    match type_str {
        "integer" | "array" => format!("an {type_str}"),
        _ => format!("a {type_str}"),
    }
}

fn one_of(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        _ => format!("one of: {}", items.join(", ")),
    }
}

/// 1-based line and character column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut off = offset.min(text.len());
    while !text.is_char_boundary(off) {
        off -= 1;
    }
    let before = &text[..off];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Roundup's class-name rule (`hyperdb.Class.class_re`): a letter first, then letters,
/// digits and `_`, and not ending in a digit (so `issue12` splits as a designator).
pub fn is_valid_class_name(name: &str) -> bool {
    let b = name.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphabetic()
                && (l.is_ascii_alphabetic() || *l == b'_')
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        }
        _ => false,
    }
}

/// Our property-name rule: a letter first, then letters, digits and `_` (a Python
/// identifier not starting with `_`, so it can be a keyword argument and a column).
pub fn is_valid_prop_name(name: &str) -> bool {
    let b = name.as_bytes();
    matches!(b.first(), Some(f) if f.is_ascii_alphabetic())
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

const TYPE_NAMES: [&str; 9] = [
    "String",
    "Password",
    "Date",
    "Interval",
    "Link",
    "Multilink",
    "Boolean",
    "Number",
    "Integer",
];

/// A class as parsed, with the spans later checks need.
struct ClassSrc {
    def: ClassDef,
    name_span: Range<usize>,
    /// Per property (same order as `def.properties`): the span of its name and of
    /// its link target (for implicit properties: the class's `kind`).
    prop_spans: Vec<(Range<usize>, Range<usize>, bool)>,
}

/// Reads and validates `schema.toml` (see [`parse_schema`]).
pub fn load_schema(path: &Path) -> Result<Schema, SchemaError> {
    let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Io {
        file: path.display().to_string(),
        source,
    })?;
    parse_schema(&text, &path.display().to_string())
}

/// Parses and validates the text of a `schema.toml`; `file_name` prefixes error
/// messages. Adds the implicit properties, roles and Admin grants.
pub fn parse_schema(text: &str, file_name: &str) -> Result<Schema, SchemaError> {
    let cx = Ctx {
        file: file_name,
        text,
    };
    let doc = DeTable::parse(text).map_err(|e| cx.toml_err(&e))?;
    let root = doc.get_ref();
    cx.check_keys(root, &["class", "role", "grant", "detectors"], "the schema")?;

    let mut classes: Vec<ClassSrc> = Vec::new();
    if let Some(cv) = root.get("class") {
        let ct = cx.table(cv, "\"class\"")?;
        for (name, v) in ct.iter() {
            classes.push(parse_class(&cx, name, v)?);
        }
    }
    check_links(&cx, &classes)?;
    check_tables(&cx, &classes)?;
    let schema_classes: Vec<ClassDef> = classes.iter().map(|c| c.def.clone()).collect();

    let roles = parse_roles(&cx, root.get("role"))?;
    let mut grants = implicit_grants();
    if let Some(gv) = root.get("grant") {
        let arr = cx.array(gv, "\"grant\" (write [[grant]])")?;
        for g in arr.iter() {
            grants.extend(parse_grant(&cx, g, &schema_classes, &roles)?);
        }
    }
    let detectors = match root.get("detectors") {
        Some(dv) => parse_detectors(&cx, dv, &schema_classes)?,
        None => Detectors::default(),
    };
    check_user_class(&cx, root, &classes)?;
    Ok(Schema {
        classes: schema_classes,
        roles,
        grants,
        detectors,
    })
}

fn parse_class(cx: &Ctx<'_>, name: &K<'_>, v: &V<'_>) -> Result<ClassSrc, SchemaError> {
    let cname = name.get_ref().to_string();
    if !is_valid_class_name(&cname) {
        return Err(cx.err(
            name.span(),
            format!(
                "invalid class name \"{cname}\": it must start with a letter, contain only \
                 letters, digits and \"_\", and end with a letter or \"_\""
            ),
        ));
    }
    let place = format!("class \"{cname}\"");
    let t = cx.table(v, &place)?;
    cx.check_keys(
        t,
        &["kind", "key", "labelprop", "orderprop", "properties"],
        &place,
    )?;

    let (kind, kind_span) = match t.get("kind") {
        None => (ClassKind::Class, name.span()),
        Some(kv) => {
            let k = cx.string(kv, &format!("\"kind\" of {place}"))?;
            let kind = match k {
                "Class" => ClassKind::Class,
                "FileClass" => ClassKind::FileClass,
                "IssueClass" => ClassKind::IssueClass,
                _ => {
                    return Err(cx.err(
                        kv.span(),
                        format!(
                        "{place}: unknown kind \"{k}\" (expected Class, FileClass or IssueClass)"
                    ),
                    ))
                }
            };
            (kind, kv.span())
        }
    };

    let mut props: Vec<Property> = Vec::new();
    let mut prop_spans = Vec::new();
    if let Some(pv) = t.get("properties") {
        let pt = cx.table(pv, &format!("\"properties\" of {place}"))?;
        for (pname, spec) in pt.iter() {
            let (prop, target_span) = parse_prop(cx, &cname, pname, spec)?;
            let lower = prop.name.to_lowercase();
            if let Some(other) = props.iter().find(|p| p.name.to_lowercase() == lower) {
                return Err(cx.err(
                    pname.span(),
                    format!(
                        "property \"{}\" of {place} clashes with property \"{}\": SQLite \
                         column names ignore case",
                        prop.name, other.name
                    ),
                ));
            }
            props.push(prop);
            prop_spans.push((pname.span(), target_span, false));
        }
    }

    // What FileClass / IssueClass add, in Roundup's order, unless declared.
    let string = |indexme| PropType::String { indexme };
    let ml = |class: &str, do_journal| PropType::Multilink {
        class: class.to_string(),
        do_journal,
    };
    let implicit: Vec<(&str, PropType)> = match kind {
        ClassKind::Class => vec![],
        ClassKind::FileClass => vec![("content", string(true)), ("type", string(false))],
        ClassKind::IssueClass => vec![
            ("title", string(true)),
            ("messages", ml("msg", true)),
            ("files", ml("file", true)),
            ("nosy", ml("user", false)),
            ("superseder", ml(&cname, true)),
        ],
    };
    for (pname, kind) in implicit {
        if props.iter().all(|p| p.name != pname) {
            props.push(Property {
                name: pname.to_string(),
                kind,
                quiet: false,
                required: false,
            });
            prop_spans.push((kind_span.clone(), kind_span.clone(), true));
        }
    }

    let mut def = ClassDef {
        name: cname.clone(),
        kind,
        properties: props,
        key: None,
        labelprop: None,
        orderprop: None,
    };
    if let Some(kv) = t.get("key") {
        let k = cx.string(kv, &format!("\"key\" of {place}"))?;
        match def.prop(k) {
            None => {
                return Err(cx.err(
                    kv.span(),
                    format!("key \"{k}\" is not a property of {place}"),
                ))
            }
            Some(p) if !matches!(p.kind, PropType::String { .. }) => {
                return Err(cx.err(
                    kv.span(),
                    format!(
                        "key \"{k}\" of {place} must be a String property, not {}",
                        type_name(&p.kind)
                    ),
                ))
            }
            Some(_) => def.key = Some(k.to_string()),
        }
    }
    for (opt, slot) in [("labelprop", 0), ("orderprop", 1)] {
        if let Some(lv) = t.get(opt) {
            let l = cx.string(lv, &format!("\"{opt}\" of {place}"))?;
            if def.prop(l).is_none() && !AUTOMATIC_PROPS.contains(&l) {
                return Err(cx.err(
                    lv.span(),
                    format!("{opt} \"{l}\" is not a property of {place}"),
                ));
            }
            if slot == 0 {
                def.labelprop = Some(l.to_string());
            } else {
                def.orderprop = Some(l.to_string());
            }
        }
    }
    Ok(ClassSrc {
        def,
        name_span: name.span(),
        prop_spans,
    })
}

fn type_name(t: &PropType) -> &'static str {
    match t {
        PropType::String { .. } => "String",
        PropType::Password => "Password",
        PropType::Date => "Date",
        PropType::Interval => "Interval",
        PropType::Link { .. } => "Link",
        PropType::Multilink { .. } => "Multilink",
        PropType::Boolean => "Boolean",
        PropType::Number => "Number",
        PropType::Integer => "Integer",
    }
}

/// Parses one property spec; returns it and the span of its link target (or of its name).
fn parse_prop(
    cx: &Ctx<'_>,
    cname: &str,
    pname: &K<'_>,
    spec: &V<'_>,
) -> Result<(Property, Range<usize>), SchemaError> {
    let name = pname.get_ref().to_string();
    if AUTOMATIC_PROPS
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&name))
    {
        return Err(cx.err(
            pname.span(),
            format!(
                "property name \"{name}\" is reserved (every class has id, creation, \
                 activity, creator and actor)"
            ),
        ));
    }
    if name.starts_with('_') {
        return Err(cx.err(
            pname.span(),
            format!("property name \"{name}\" is reserved: names starting with \"_\" are internal"),
        ));
    }
    if !is_valid_prop_name(&name) {
        return Err(cx.err(
            pname.span(),
            format!(
                "invalid property name \"{name}\": it must start with a letter and contain \
                 only letters, digits and \"_\""
            ),
        ));
    }
    let place = format!("property \"{name}\" of class \"{cname}\"");
    let check_type = |tv: &V<'_>| -> Result<String, SchemaError> {
        let t = cx.string(tv, &format!("the type of {place}"))?;
        if TYPE_NAMES.contains(&t) {
            return Ok(t.to_string());
        }
        let hint = TYPE_NAMES
            .iter()
            .find(|n| n.eq_ignore_ascii_case(t))
            .map(|n| format!(" (type names are capitalised: {n})"))
            .unwrap_or_else(|| format!(" (expected {})", one_of(&TYPE_NAMES)));
        Err(cx.err(tv.span(), format!("{place}: unknown type \"{t}\"{hint}")))
    };
    let simple = |t: &str| match t {
        "String" => Some(PropType::String { indexme: false }),
        "Password" => Some(PropType::Password),
        "Date" => Some(PropType::Date),
        "Interval" => Some(PropType::Interval),
        "Boolean" => Some(PropType::Boolean),
        "Number" => Some(PropType::Number),
        "Integer" => Some(PropType::Integer),
        _ => None,
    };
    match spec.get_ref() {
        DeValue::String(_) => {
            let t = check_type(spec)?;
            match simple(&t) {
                Some(kind) => Ok((
                    Property {
                        name,
                        kind,
                        quiet: false,
                        required: false,
                    },
                    pname.span(),
                )),
                None => Err(cx.err(
                    spec.span(),
                    format!(
                        "{place}: a {t} needs a target class: write \
                         {{ type = \"{t}\", to = \"<class>\" }}"
                    ),
                )),
            }
        }
        DeValue::Table(t) => {
            cx.check_keys(
                t,
                &["type", "to", "indexme", "do_journal", "quiet", "required"],
                &place,
            )?;
            let Some(tv) = t.get("type") else {
                return Err(cx.err(spec.span(), format!("{place}: missing \"type\"")));
            };
            let ty = check_type(tv)?;
            let is_link = ty == "Link" || ty == "Multilink";
            let flag = |key: &str, default: bool| -> Result<bool, SchemaError> {
                t.get(key).map_or(Ok(default), |v| {
                    cx.boolean(v, &format!("\"{key}\" of {place}"))
                })
            };
            for (key, ok, applies) in [
                ("to", is_link, "Link and Multilink"),
                ("do_journal", is_link, "Link and Multilink"),
                ("indexme", ty == "String", "String"),
            ] {
                if let (Some((k, _)), false) = (t.get_key_value(key), ok) {
                    return Err(cx.err(
                        k.span(),
                        format!(
                            "{place}: \"{key}\" applies only to {applies} properties, not {ty}"
                        ),
                    ));
                }
            }
            let quiet = flag("quiet", false)?;
            let required = flag("required", false)?;
            if is_link {
                let Some(to) = t.get("to") else {
                    return Err(cx.err(
                        tv.span(),
                        format!("{place}: a {ty} needs \"to\", the name of the target class"),
                    ));
                };
                let class = cx.string(to, &format!("\"to\" of {place}"))?.to_string();
                let do_journal = flag("do_journal", true)?;
                let kind = if ty == "Link" {
                    PropType::Link { class, do_journal }
                } else {
                    PropType::Multilink { class, do_journal }
                };
                Ok((
                    Property {
                        name,
                        kind,
                        quiet,
                        required,
                    },
                    to.span(),
                ))
            } else {
                let kind = if ty == "String" {
                    PropType::String {
                        indexme: flag("indexme", false)?,
                    }
                } else {
                    simple(&ty).unwrap_or(PropType::String { indexme: false })
                };
                Ok((
                    Property {
                        name,
                        kind,
                        quiet,
                        required,
                    },
                    pname.span(),
                ))
            }
        }
        other => Err(cx.err(
            spec.span(),
            format!(
                "{place} must be a type name or a table, not {}",
                article(other.type_str())
            ),
        )),
    }
}

fn check_links(cx: &Ctx<'_>, classes: &[ClassSrc]) -> Result<(), SchemaError> {
    for c in classes {
        for (p, (_, span, implicit)) in c.def.properties.iter().zip(&c.prop_spans) {
            let Some(target) = p.kind.link_target() else {
                continue;
            };
            if classes.iter().any(|o| o.def.name == target) {
                continue;
            }
            let ty = type_name(&p.kind);
            let msg = if *implicit {
                format!(
                    "IssueClass \"{}\" adds {ty} \"{}\" to class \"{target}\", which is not \
                     defined (define class \"{target}\" or declare \"{}\" yourself)",
                    c.def.name, p.name, p.name
                )
            } else {
                format!("{ty} \"{}\" targets unknown class \"{target}\"", p.name)
            };
            return Err(cx.err(span.clone(), msg));
        }
    }
    Ok(())
}

/// SQLite table names ignore case: refuse classes whose names differ only in case and
/// Multilink tables (`<class>_<prop>`) that collide with each other or with a
/// journal table (`<class>__journal`).
fn check_tables(cx: &Ctx<'_>, classes: &[ClassSrc]) -> Result<(), SchemaError> {
    let mut seen: HashMap<String, String> = HashMap::new();
    for c in classes {
        let cn = &c.def.name;
        for (table, what) in [
            (format!("_{cn}"), format!("class \"{cn}\"")),
            (
                format!("{cn}__journal"),
                format!("the journal of class \"{cn}\""),
            ),
        ] {
            if let Some(prev) = seen.get(&table.to_lowercase()) {
                return Err(cx.err(
                    c.name_span.clone(),
                    format!(
                        "{what} needs SQLite table \"{table}\", which {prev} also needs \
                         (SQLite table names ignore case)"
                    ),
                ));
            }
            seen.insert(table.to_lowercase(), what);
        }
    }
    for c in classes {
        let cn = &c.def.name;
        for (p, (name_span, _, _)) in c.def.properties.iter().zip(&c.prop_spans) {
            if !p.kind.is_multilink() {
                continue;
            }
            let table = format!("{cn}_{}", p.name);
            let what = format!("Multilink \"{}\" of class \"{cn}\"", p.name);
            if let Some(prev) = seen.get(&table.to_lowercase()) {
                return Err(cx.err(
                    name_span.clone(),
                    format!(
                        "{what} needs SQLite table \"{table}\", which {prev} also needs \
                         (SQLite table names ignore case)"
                    ),
                ));
            }
            seen.insert(table.to_lowercase(), what);
        }
    }
    Ok(())
}

fn parse_roles(cx: &Ctx<'_>, v: Option<&V<'_>>) -> Result<Vec<Role>, SchemaError> {
    let mut roles: Vec<Role> = BUILTIN_ROLES
        .iter()
        .map(|(n, d)| Role {
            name: n.to_string(),
            description: d.to_string(),
        })
        .collect();
    let Some(v) = v else {
        return Ok(roles);
    };
    let arr = cx.array(v, "\"role\" (write [[role]])")?;
    let mut declared: Vec<String> = Vec::new();
    for r in arr.iter() {
        let t = cx.table(r, "each [[role]]")?;
        cx.check_keys(t, &["name", "description"], "[[role]]")?;
        let Some(nv) = t.get("name") else {
            return Err(cx.err(r.span(), "[[role]] needs a \"name\""));
        };
        let name = cx.string(nv, "the role name")?;
        if name.is_empty() || name.trim() != name || name.contains(',') {
            return Err(cx.err(
                nv.span(),
                format!(
                    "invalid role name \"{name}\": it must be non-empty, without commas and \
                     without leading or trailing spaces"
                ),
            ));
        }
        let lower = name.to_lowercase();
        if declared.contains(&lower) {
            return Err(cx.err(
                nv.span(),
                format!("role \"{name}\" is declared twice (role names ignore case)"),
            ));
        }
        declared.push(lower.clone());
        let description = match t.get("description") {
            Some(dv) => Some(cx.string(dv, "the role description")?.to_string()),
            None => None,
        };
        if let Some(existing) = roles.iter_mut().find(|r| r.name.to_lowercase() == lower) {
            if let Some(d) = description {
                existing.description = d;
            }
        } else {
            roles.push(Role {
                name: name.to_string(),
                description: description.unwrap_or_default(),
            });
        }
    }
    Ok(roles)
}

/// The ten global permissions Roundup's core (`security.py`, `cgi/client.py`,
/// `mailgw.py`) creates and gives to the Admin role before the schema runs, in
/// Roundup's order. `parse_schema` puts them first in [`Schema::grants`].
pub fn implicit_grants() -> Vec<Grant> {
    let mut out = Vec::new();
    for p in ["Create", "Edit", "Restore", "Retire", "View"] {
        out.push(admin_grant(
            p,
            &format!("User may {} everything", p.to_lowercase()),
        ));
    }
    for (p, d) in [
        ("Web Access", "User may access the web interface"),
        ("Rest Access", "User may access the rest interface"),
        ("Xmlrpc Access", "User may access the xmlrpc interface"),
        (
            "Web Roles",
            "User may manipulate user Roles through the web",
        ),
        ("Email Access", "User may use the email interface"),
    ] {
        out.push(admin_grant(p, d));
    }
    out
}

fn admin_grant(permission: &str, description: &str) -> Grant {
    Grant {
        roles: vec!["admin".into()],
        permission: permission.into(),
        class: None,
        properties: None,
        props_only: false,
        check: None,
        description: description.into(),
    }
}

/// Roundup's description of the permission a plain grant refers to.
fn default_description(permission: &str, class: Option<&str>) -> String {
    match class {
        Some(c) => match permission {
            "Create" => format!("User is allowed to create {c}"),
            "Edit" => format!("User is allowed to edit {c}"),
            "View" => format!("User is allowed to access {c}"),
            "Retire" => format!("User is allowed to retire {c}"),
            _ => String::new(),
        },
        None => implicit_grants()
            .into_iter()
            .find(|g| g.permission == permission)
            .map(|g| g.description)
            .unwrap_or_default(),
    }
}

fn parse_grant(
    cx: &Ctx<'_>,
    v: &V<'_>,
    classes: &[ClassDef],
    roles: &[Role],
) -> Result<Vec<Grant>, SchemaError> {
    let t = cx.table(v, "each [[grant]]")?;
    cx.check_keys(
        t,
        &[
            "roles",
            "permission",
            "class",
            "properties",
            "props_only",
            "check",
            "description",
        ],
        "[[grant]]",
    )?;
    let Some(rv) = t.get("roles") else {
        return Err(cx.err(v.span(), "[[grant]] needs \"roles\""));
    };
    let mut grant_roles = Vec::new();
    for (r, span) in cx.strings(rv, "\"roles\"")? {
        if !roles
            .iter()
            .any(|x| x.name.to_lowercase() == r.to_lowercase())
        {
            return Err(cx.err(span, format!("grant names unknown role \"{r}\"")));
        }
        let lower = r.to_lowercase();
        if !grant_roles.contains(&lower) {
            grant_roles.push(lower);
        }
    }
    let Some(pv) = t.get("permission") else {
        return Err(cx.err(v.span(), "[[grant]] needs \"permission\""));
    };
    let perms = cx.strings(pv, "\"permission\"")?;
    for (p, span) in &perms {
        if p.is_empty() || p.trim() != p {
            return Err(cx.err(
                span.clone(),
                format!("invalid permission name \"{p}\": it must be non-empty, without leading or trailing spaces"),
            ));
        }
    }
    let class_list: Vec<(Option<&ClassDef>, Range<usize>)> = match t.get("class") {
        None => vec![(None, v.span())],
        Some(cv) => {
            let mut out = Vec::new();
            for (c, span) in cx.strings(cv, "\"class\"")? {
                match classes.iter().find(|x| x.name == c) {
                    Some(def) => out.push((Some(def), span)),
                    None => return Err(cx.err(span, format!("grant names unknown class \"{c}\""))),
                }
            }
            out
        }
    };
    let has_class = t.contains_key("class");
    let properties: Option<Vec<(String, Range<usize>)>> = match t.get("properties") {
        None => None,
        Some(pv) => {
            if !has_class {
                return Err(cx.err(pv.span(), "a grant with \"properties\" needs a \"class\""));
            }
            let arr = cx.array(pv, "\"properties\"")?;
            if arr.is_empty() {
                return Err(cx.err(
                    pv.span(),
                    "\"properties\" must not be empty (leave it out to mean all properties)",
                ));
            }
            let mut out = Vec::new();
            for x in arr.iter() {
                out.push((
                    cx.string(x, "each of \"properties\"")?.to_string(),
                    x.span(),
                ));
            }
            Some(out)
        }
    };
    let props_only = match t.get_key_value("props_only") {
        None => false,
        Some((k, pv)) => {
            let b = cx.boolean(pv, "\"props_only\"")?;
            if properties.is_none() {
                return Err(cx.err(
                    k.span(),
                    "\"props_only\" has no effect without \"properties\"",
                ));
            }
            b
        }
    };
    let check = match t.get("check") {
        None => None,
        Some(chv) => {
            let text = cx.string(chv, "\"check\"")?;
            if !has_class {
                return Err(cx.err(
                    chv.span(),
                    "a grant with a \"check\" needs a \"class\" (the check reads that class's item)",
                ));
            }
            match CheckExpr::parse(text) {
                Ok(e) => Some((e, chv.span())),
                Err(e) => {
                    return Err(cx.err(chv.span(), format!("check \"{text}\": {e}")));
                }
            }
        }
    };
    let description = match t.get("description") {
        Some(dv) => Some(cx.string(dv, "\"description\"")?.to_string()),
        None => None,
    };

    let mut out = Vec::new();
    for (class, _) in &class_list {
        if let (Some(def), Some(props)) = (class, &properties) {
            for (p, span) in props {
                if def.prop(p).is_none() && !AUTOMATIC_PROPS.contains(&p.as_str()) {
                    return Err(cx.err(
                        span.clone(),
                        format!(
                            "grant property \"{p}\" is not a property of class \"{}\"",
                            def.name
                        ),
                    ));
                }
            }
        }
        if let (Some(def), Some((expr, span))) = (class, &check) {
            check_expr_props(cx, expr, def, span.clone())?;
        }
        for (perm, _) in &perms {
            let class_name = class.map(|c| c.name.clone());
            out.push(Grant {
                roles: grant_roles.clone(),
                permission: perm.clone(),
                class: class_name.clone(),
                properties: properties
                    .as_ref()
                    .map(|ps| ps.iter().map(|(p, _)| p.clone()).collect()),
                props_only,
                check: check.as_ref().map(|(e, _)| e.clone()),
                description: description.clone().unwrap_or_else(|| {
                    if properties.is_none() && check.is_none() {
                        default_description(perm, class_name.as_deref())
                    } else {
                        String::new()
                    }
                }),
            });
        }
    }
    Ok(out)
}

fn check_expr_props(
    cx: &Ctx<'_>,
    expr: &CheckExpr,
    def: &ClassDef,
    span: Range<usize>,
) -> Result<(), SchemaError> {
    for p in expr.props() {
        if def.prop(p).is_none() && !AUTOMATIC_PROPS.contains(&p) {
            return Err(cx.err(
                span,
                format!(
                    "check names \"{p}\", which is not a property of class \"{}\"",
                    def.name
                ),
            ));
        }
    }
    fn contains_ok(e: &CheckExpr, def: &ClassDef) -> Option<String> {
        match e {
            CheckExpr::Or(v) | CheckExpr::And(v) => v.iter().find_map(|x| contains_ok(x, def)),
            CheckExpr::Compare {
                prop,
                op: crate::security::check::CompareOp::Contains,
                ..
            } => match def.prop(prop) {
                Some(p) if p.kind.is_multilink() => None,
                _ => Some(prop.clone()),
            },
            _ => None,
        }
    }
    if let Some(p) = contains_ok(expr, def) {
        return Err(cx.err(
            span,
            format!(
                "check uses \"{p} contains ...\", but \"{p}\" is not a Multilink of class \"{}\"",
                def.name
            ),
        ));
    }
    Ok(())
}

fn parse_detectors(
    cx: &Ctx<'_>,
    v: &V<'_>,
    classes: &[ClassDef],
) -> Result<Detectors, SchemaError> {
    let t = cx.table(v, "\"detectors\"")?;
    let names = [
        "statusauditor",
        "nosyreaction",
        "messagesummary",
        "userauditor",
    ];
    cx.check_keys(t, &names, "[detectors]")?;
    let mut d = Detectors::default();
    for (k, dv) in t.iter() {
        let name = k.get_ref().as_ref();
        let place = format!("detector \"{name}\"");
        let enabled = match dv.get_ref() {
            DeValue::Boolean(b) => *b,
            DeValue::Table(dt) => {
                let allowed: &[&str] = if name == "statusauditor" {
                    &["enabled", "chatting_requires_two_users"]
                } else {
                    &["enabled"]
                };
                cx.check_keys(dt, allowed, &place)?;
                if let Some(cv) = dt.get("chatting_requires_two_users") {
                    d.chatting_requires_two_users =
                        cx.boolean(cv, "\"chatting_requires_two_users\"")?;
                }
                match dt.get("enabled") {
                    Some(ev) => cx.boolean(ev, &format!("\"enabled\" of {place}"))?,
                    None => true,
                }
            }
            other => {
                return Err(cx.err(
                    dv.span(),
                    format!(
                        "{place} must be true, false or a table, not {}",
                        article(other.type_str())
                    ),
                ))
            }
        };
        if enabled {
            if let Err(need) = detector_requirements(name, classes) {
                return Err(cx.err(k.span(), format!("{place} needs {need}")));
            }
        }
        match name {
            "statusauditor" => d.statusauditor = enabled,
            "nosyreaction" => d.nosyreaction = enabled,
            "messagesummary" => d.messagesummary = enabled,
            _ => d.userauditor = enabled,
        }
    }
    Ok(d)
}

/// What the classic detector `name` reads: Err(description of the first missing piece).
fn detector_requirements(name: &str, classes: &[ClassDef]) -> Result<(), String> {
    let class = |c: &str| classes.iter().find(|x| x.name == c);
    // (class, prop, want Link/Multilink/String, link target)
    let need: &[(&str, &str, &str, Option<&str>)] = match name {
        "statusauditor" => &[
            ("issue", "status", "Link", Some("status")),
            ("issue", "messages", "Multilink", None),
        ],
        "nosyreaction" => &[
            ("issue", "nosy", "Multilink", Some("user")),
            ("issue", "messages", "Multilink", Some("msg")),
            ("msg", "author", "Link", Some("user")),
            ("msg", "recipients", "Multilink", Some("user")),
            ("msg", "content", "String", None),
        ],
        "messagesummary" => &[
            ("msg", "summary", "String", None),
            ("msg", "content", "String", None),
        ],
        _ => &[],
    };
    for (c, p, ty, target) in need {
        let ok = class(c).and_then(|def| def.prop(p)).is_some_and(|prop| {
            type_name(&prop.kind) == *ty
                && target.is_none_or(|t| prop.kind.link_target() == Some(t))
        });
        if !ok {
            let what = match target {
                Some(t) => format!("{ty} \"{p}\" to class \"{t}\""),
                None => format!("{ty} \"{p}\""),
            };
            return Err(format!("class \"{c}\" with a {what}"));
        }
    }
    match name {
        "statusauditor" if class("status").is_none_or(|s| s.key.is_none()) => {
            Err("class \"status\" with a key property (it looks statuses up by name)".into())
        }
        "nosyreaction" => match class("issue").and_then(|i| i.prop("assignedto")) {
            Some(a) if a.kind.link_target() != Some("user") => Err(
                "\"assignedto\" of class \"issue\", if present, to be a Link or Multilink to class \"user\""
                    .into(),
            ),
            _ => Ok(()),
        },
        "userauditor" => {
            let user = class("user");
            for p in ["username", "address", "alternate_addresses", "roles", "timezone"] {
                if let Some(prop) = user.and_then(|u| u.prop(p)) {
                    if !matches!(prop.kind, PropType::String { .. }) {
                        return Err(format!("\"{p}\" of class \"user\", if present, to be a String"));
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Login and permission checks read `user.username` (the key), `user.password` and
/// `user.roles`: a schema without them cannot work.
fn check_user_class(
    cx: &Ctx<'_>,
    root: &DeTable<'_>,
    classes: &[ClassSrc],
) -> Result<(), SchemaError> {
    let Some(user) = classes.iter().find(|c| c.def.name == "user") else {
        let span = root.get_key_value("class").map_or(0..0, |(k, _)| k.span());
        return Err(cx.err(
            span,
            "the schema needs a class \"user\" (logins and roles are read from it)",
        ));
    };
    for (p, ty) in [
        ("username", "String"),
        ("password", "Password"),
        ("roles", "String"),
    ] {
        if user.def.prop(p).is_none_or(|x| type_name(&x.kind) != ty) {
            return Err(cx.err(
                user.name_span.clone(),
                format!("class \"user\" needs a {ty} property \"{p}\""),
            ));
        }
    }
    if user.def.key.as_deref() != Some("username") {
        return Err(cx.err(
            user.name_span.clone(),
            "class \"user\" needs key = \"username\" (logins look users up by it)",
        ));
    }
    Ok(())
}

/// Reads `initial_data.toml` (see [`parse_initial_data`]).
pub fn load_initial_data(
    path: &Path,
    vars: &HashMap<String, String>,
) -> Result<InitialData, SchemaError> {
    let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Io {
        file: path.display().to_string(),
        source,
    })?;
    parse_initial_data(&text, &path.display().to_string(), vars)
}

/// Parses the text of an `initial_data.toml`: `[[create]]` tables with `class` and
/// `props` (`"name=value"` strings). `${name}` in a value is replaced by `vars[name]`
/// (an unknown name is an error) and `$$` by `$`.
pub fn parse_initial_data(
    text: &str,
    file_name: &str,
    vars: &HashMap<String, String>,
) -> Result<InitialData, SchemaError> {
    let cx = Ctx {
        file: file_name,
        text,
    };
    let doc = DeTable::parse(text).map_err(|e| cx.toml_err(&e))?;
    let root = doc.get_ref();
    cx.check_keys(root, &["create"], "the initial data")?;
    let mut data = InitialData::default();
    let Some(cv) = root.get("create") else {
        return Ok(data);
    };
    for c in cx.array(cv, "\"create\" (write [[create]])")?.iter() {
        let t = cx.table(c, "each [[create]]")?;
        cx.check_keys(t, &["class", "props"], "[[create]]")?;
        let Some(clv) = t.get("class") else {
            return Err(cx.err(c.span(), "[[create]] needs a \"class\""));
        };
        let class = cx.string(clv, "\"class\"")?;
        if !is_valid_class_name(class) {
            return Err(cx.err(clv.span(), format!("invalid class name \"{class}\"")));
        }
        let mut props = Vec::new();
        if let Some(pv) = t.get("props") {
            for x in cx.array(pv, "\"props\"")?.iter() {
                let raw = cx.string(x, "each of \"props\"")?;
                let Some((name, value)) = raw.split_once('=') else {
                    return Err(
                        cx.err(x.span(), format!("\"{raw}\" is not of the form name=value"))
                    );
                };
                if !is_valid_prop_name(name) {
                    return Err(cx.err(
                        x.span(),
                        format!("\"{raw}\": invalid property name \"{name}\""),
                    ));
                }
                let value = substitute(value, vars).map_err(|m| cx.err(x.span(), m))?;
                props.push(format!("{name}={value}"));
            }
        }
        data.creates.push((class.to_string(), props));
    }
    Ok(data)
}

/// Replaces `${name}` by `vars[name]` and `$$` by `$`; other `$` stay as they are.
fn substitute(value: &str, vars: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let Some(end) = tail.find('}') else {
                return Err(format!("unterminated placeholder in \"{value}\""));
            };
            let name = &tail[..end];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    let mut known: Vec<&str> = vars.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    return Err(format!(
                        "unknown placeholder ${{{name}}} (known: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ));
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A create of the initial data that does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("create #{index} ({class}): {message}")]
pub struct InitialDataError {
    /// 1-based position of the `[[create]]` in the file.
    pub index: usize,
    /// Its class.
    pub class: String,
    /// What is wrong.
    pub message: String,
}

impl InitialData {
    /// Checks every create against `schema`: the class exists and each property is
    /// one of its declared (or kind-added) properties.
    pub fn validate(&self, schema: &Schema) -> Result<(), InitialDataError> {
        for (i, (class, props)) in self.creates.iter().enumerate() {
            let fail = |message: String| InitialDataError {
                index: i + 1,
                class: class.clone(),
                message,
            };
            let Some(def) = schema.class(class) else {
                return Err(fail(format!("unknown class \"{class}\"")));
            };
            for p in props {
                let name = p.split_once('=').map_or(p.as_str(), |(n, _)| n);
                if def.prop(name).is_none() {
                    return Err(fail(format!(
                        "\"{name}\" is not a property of class \"{class}\""
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let t = "ab\ncdé\nx";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 7), (2, 4));
        assert_eq!(line_col(t, 8), (3, 1));
        assert_eq!(line_col(t, 100), (3, 2));
    }

    #[test]
    fn names() {
        for ok in ["a", "issue", "a_b", "a1b", "x_"] {
            assert!(is_valid_class_name(ok), "{ok}");
        }
        for bad in ["", "1a", "_a", "a1", "a-b", "issue2", "é"] {
            assert!(!is_valid_class_name(bad), "{bad}");
        }
        assert!(is_valid_prop_name("a1"));
        assert!(!is_valid_prop_name("_a"));
        assert!(!is_valid_prop_name("a.b"));
    }

    #[test]
    fn placeholders() {
        let vars: HashMap<String, String> =
            [("a".to_string(), "X".to_string())].into_iter().collect();
        assert_eq!(substitute("p${a}q", &vars).unwrap(), "pXq");
        assert_eq!(substitute("$$${a}$", &vars).unwrap(), "$X$");
        assert_eq!(substitute("$5", &vars).unwrap(), "$5");
        assert!(substitute("${b}", &vars).unwrap_err().contains("${b}"));
        assert!(substitute("${a", &vars).is_err());
    }
}
