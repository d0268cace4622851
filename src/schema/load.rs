//! Loading a tracker's `schema.toml` into a [`Schema`]: the classes and their
//! properties, and the checks that the result can be served. Roles and grants are
//! read by [`super::grants`], `[detectors]` by [`super::detectors`]; the TOML access
//! and error positions are [`super::source`]'s.
//!
//! The file format is documented in `tracker-template/README.md`. The loader adds
//! what Roundup's core adds by itself: the automatic FileClass and IssueClass
//! properties, the built-in `User`, `Admin` and `Anonymous` roles and the ten global
//! permissions Roundup gives the Admin role ([`super::grants::implicit_grants`]).

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::detectors::{parse_detectors, Detectors};
use super::grants::{implicit_grants, parse_grant, parse_roles};
use super::source::{article, one_of, Ctx, SchemaError, K, V};
use super::{ClassDef, ClassKind, PropType, Property, Schema};

/// The properties every class has without declaring them (Roundup's automatic ones).
pub const AUTOMATIC_PROPS: [&str; 5] = ["id", "creation", "activity", "creator", "actor"];

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

pub(crate) fn type_name(t: &PropType) -> &'static str {
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
            let (kind, span) = if is_link {
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
                (kind, to.span())
            } else if ty == "String" {
                let indexme = flag("indexme", false)?;
                (PropType::String { indexme }, pname.span())
            } else {
                let kind = simple(&ty).unwrap_or(PropType::String { indexme: false });
                (kind, pname.span())
            };
            Ok((
                Property {
                    name,
                    kind,
                    quiet,
                    required,
                },
                span,
            ))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
