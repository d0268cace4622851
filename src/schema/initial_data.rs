//! `initial_data.toml`: the items `init` creates in a new tracker database, with
//! `${name}` placeholders, checked against the schema ([`InitialData::validate`]).

use std::collections::HashMap;
use std::path::Path;

use toml::de::DeTable;

use super::load::{is_valid_class_name, is_valid_prop_name};
use super::source::{Ctx, SchemaError};
use super::Schema;

/// The data `init` writes into a new tracker database: one `create` per entry, in
/// order, each as `(class name, ["prop=value", ...])` with placeholders substituted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InitialData {
    /// The creates, in file order.
    pub creates: Vec<(String, Vec<String>)>,
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
