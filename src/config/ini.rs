//! The ini reader under `config.ini`: Python `configparser`'s syntax (`[section]`,
//! `key = value`, `#`/`;` comment lines, continuation lines, case-insensitive option
//! names), `%%` and `%(name)s` interpolation, and typed getters whose errors name the
//! file, section and option.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ::ini::{Ini, ParseOption};

use super::ConfigError;

/// The sections and options of an ini text: option names lower-cased, values raw.
pub(crate) struct RawIni {
    pub(crate) file: String,
    pub(crate) home: PathBuf,
    pub(crate) sections: HashMap<String, HashMap<String, String>>,
}

/// Checks config.ini line by line with the rules of Python's configparser (which
/// Roundup reads it with), so that a mistake is reported at its own line in plain
/// words: every line is blank, a comment (`#` or `;` first), a `[section]` header,
/// `name = value` (or `name: value`), or an indented continuation of a value.
fn check_syntax(text: &str, file: &str) -> Result<(), ConfigError> {
    let error = |line: usize, message: String| ConfigError::Syntax {
        file: file.to_string(),
        line,
        message,
    };
    let mut in_section = false;
    let mut in_value = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            if raw.starts_with([' ', '\t']) {
                return Err(error(
                    n,
                    format!(
                        "{}: a comment must start at the beginning of the line",
                        quote_line(raw)
                    ),
                ));
            }
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            if in_value {
                continue;
            }
            return Err(error(
                n,
                format!(
                    "{}: indented, but there is no option above it to continue \
                     (remove the leading spaces)",
                    quote_line(raw)
                ),
            ));
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(error(
                    n,
                    format!("{}: a section header must end with `]`", quote_line(raw)),
                ));
            };
            if name.trim().is_empty() || name.contains(['[', ']']) {
                return Err(error(
                    n,
                    format!("{}: not a valid section name", quote_line(raw)),
                ));
            }
            in_section = true;
            in_value = false;
            continue;
        }
        let Some(at) = trimmed.find(['=', ':']) else {
            return Err(error(
                n,
                format!(
                    "{}: expected `name = value`, a `[section]` header or a comment",
                    quote_line(raw)
                ),
            ));
        };
        if trimmed[..at].trim().is_empty() {
            return Err(error(
                n,
                format!("{}: the option name is missing", quote_line(raw)),
            ));
        }
        if !in_section {
            return Err(error(
                n,
                format!(
                    "{}: an option before the first `[section]` header",
                    quote_line(raw)
                ),
            ));
        }
        in_value = true;
    }
    Ok(())
}

/// A config.ini line for an error message: backquoted, at most 60 characters.
fn quote_line(line: &str) -> String {
    let line = line.trim_end();
    let mut shown: String = line.chars().take(60).collect();
    if shown.len() < line.len() {
        shown.push('…');
    }
    format!("`{}`", shown.escape_debug())
}

/// rust-ini's message in plain words (for what [`check_syntax`] lets through).
fn plain_parse_error(msg: &str) -> String {
    if msg.contains("found EOF") {
        "the file ends in the middle of a line that is not finished".into()
    } else if msg.contains("inline comment") {
        "a comment must start at the beginning of the line".into()
    } else if msg.contains("missing key") {
        "the option name is missing".into()
    } else {
        format!("cannot be read as an ini file ({msg})")
    }
}

pub(crate) fn read_ini(text: &str, file: &str, home: &Path) -> Result<RawIni, ConfigError> {
    let opt = ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        enabled_indented_mutiline_value: true,
        enabled_preserve_key_leading_whitespace: false,
    };
    check_syntax(text, file)?;
    let ini = Ini::load_from_str_opt(text, opt).map_err(|e| ConfigError::Syntax {
        file: file.to_string(),
        line: e.line,
        message: plain_parse_error(&e.msg),
    })?;
    let mut sections: HashMap<String, HashMap<String, String>> = HashMap::new();
    for (name, props) in ini.iter() {
        let Some(name) = name else {
            if let Some((k, _)) = props.iter().next() {
                return Err(ConfigError::Invalid {
                    file: file.to_string(),
                    section: String::new(),
                    option: k.to_string(),
                    message: "option before the first [section] header".into(),
                });
            }
            continue;
        };
        if sections.contains_key(name) {
            return Err(ConfigError::Invalid {
                file: file.to_string(),
                section: name.to_string(),
                option: String::new(),
                message: "section appears twice".into(),
            });
        }
        let mut opts = HashMap::new();
        for (k, v) in props.iter() {
            let key = k.trim().to_lowercase();
            if opts.insert(key.clone(), v.to_string()).is_some() {
                return Err(ConfigError::Invalid {
                    file: file.to_string(),
                    section: name.to_string(),
                    option: key,
                    message: "option set twice in this section".into(),
                });
            }
        }
        sections.insert(name.to_string(), opts);
    }
    Ok(RawIni {
        file: file.to_string(),
        home: home.to_path_buf(),
        sections,
    })
}

impl RawIni {
    pub(crate) fn invalid(
        &self,
        section: &str,
        option: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            section: section.into(),
            option: option.into(),
            message: message.into(),
        }
    }

    pub(crate) fn raw(&self, section: &str, option: &str) -> Option<&str> {
        self.sections
            .get(section)
            .and_then(|s| s.get(option))
            .or_else(|| self.sections.get("DEFAULT").and_then(|s| s.get(option)))
            .map(String::as_str)
    }

    /// The interpolated value, if the option is present (configparser's
    /// BasicInterpolation: `%%` → `%`, `%(name)s` → that option of the same section,
    /// of `[DEFAULT]`, or `home` = the tracker directory).
    pub(crate) fn get(&self, section: &str, option: &str) -> Result<Option<String>, ConfigError> {
        match self.raw(section, option) {
            None => Ok(None),
            Some(v) => self.interpolate(section, option, v, 0).map(Some),
        }
    }

    pub(crate) fn interpolate(
        &self,
        section: &str,
        option: &str,
        v: &str,
        depth: usize,
    ) -> Result<String, ConfigError> {
        if depth > 10 {
            return Err(self.invalid(section, option, "interpolation nested too deeply"));
        }
        let mut out = String::new();
        let mut rest = v;
        while let Some(i) = rest.find('%') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(t) = after.strip_prefix('%') {
                out.push('%');
                rest = t;
            } else if let Some(t) = after.strip_prefix('(') {
                let Some(end) = t.find(")s") else {
                    return Err(self.invalid(
                        section,
                        option,
                        format!("bad interpolation in \"{v}\" (write %% for a literal %)"),
                    ));
                };
                let name = t[..end].to_lowercase();
                let sub = if name == "home" && self.raw(section, "home").is_none() {
                    self.home.display().to_string()
                } else {
                    match self.raw(section, &name) {
                        Some(r) => self.interpolate(section, option, r, depth + 1)?,
                        None => {
                            return Err(self.invalid(
                                section,
                                option,
                                format!("\"{v}\" refers to unknown option \"{name}\""),
                            ))
                        }
                    }
                };
                out.push_str(&sub);
                rest = &t[end + 2..];
            } else {
                return Err(self.invalid(
                    section,
                    option,
                    format!("bad interpolation in \"{v}\" (write %% for a literal %)"),
                ));
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    pub(crate) fn string(&self, s: &str, o: &str, default: &str) -> Result<String, ConfigError> {
        Ok(self.get(s, o)?.unwrap_or_else(|| default.to_string()))
    }

    /// Empty or missing → None.
    pub(crate) fn opt_string(&self, s: &str, o: &str) -> Result<Option<String>, ConfigError> {
        Ok(self.get(s, o)?.filter(|v| !v.is_empty()))
    }

    pub(crate) fn boolean(&self, s: &str, o: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(s, o)? {
            None => Ok(default),
            Some(v) => match v.to_lowercase().as_str() {
                "yes" | "true" | "on" | "1" => Ok(true),
                "no" | "false" | "off" | "0" => Ok(false),
                _ => Err(self.invalid(s, o, format!("\"{v}\": allowed values are yes and no"))),
            },
        }
    }

    pub(crate) fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
        &self,
        s: &str,
        o: &str,
        default: T,
        min: T,
        max: Option<T>,
    ) -> Result<T, ConfigError> {
        let Some(v) = self.get(s, o)? else {
            return Ok(default);
        };
        let range = match max {
            Some(m) => format!("an integer from {min} to {m}"),
            None => format!("an integer of at least {min}"),
        };
        match v.trim().parse::<T>() {
            Ok(n) if n >= min && max.is_none_or(|m| n <= m) => Ok(n),
            _ => Err(self.invalid(s, o, format!("\"{v}\": {range} is required"))),
        }
    }

    pub(crate) fn opt_number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
        &self,
        s: &str,
        o: &str,
        min: T,
    ) -> Result<Option<T>, ConfigError> {
        match self.opt_string(s, o)? {
            None => Ok(None),
            Some(_) => self.number(s, o, min, min, None).map(Some),
        }
    }

    pub(crate) fn choice<T: Copy>(
        &self,
        s: &str,
        o: &str,
        default: T,
        allowed: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        let Some(v) = self.get(s, o)? else {
            return Ok(default);
        };
        let lower = v.to_lowercase();
        allowed
            .iter()
            .find(|(n, _)| n.to_lowercase() == lower)
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
                self.invalid(
                    s,
                    o,
                    format!("\"{v}\": allowed values are {}", names.join(", ")),
                )
            })
    }

    /// Empty or missing → None; relative paths are resolved against the tracker dir.
    pub(crate) fn path(&self, s: &str, o: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.opt_string(s, o)?.map(|v| self.home.join(v)))
    }

    /// Roundup's SecretOption: `file://path` means the first line of that file.
    pub(crate) fn secret(&self, s: &str, o: &str) -> Result<Option<String>, ConfigError> {
        let Some(v) = self.opt_string(s, o)? else {
            return Ok(None);
        };
        let Some(p) = v.strip_prefix("file://") else {
            return Ok(Some(v));
        };
        let path = self.home.join(p.trim());
        let text = std::fs::read_to_string(&path)
            .map_err(|e| self.invalid(s, o, format!("cannot read {}: {e}", path.display())))?;
        Ok(Some(
            text.lines().next().unwrap_or("").trim_end().to_string(),
        ))
    }
}
