//! The `[detectors]` section of `schema.toml`: which built-in detectors run on which
//! classes, their options, and the tracker's own Python detector files.
//!
//! A built-in detector is the Rust equivalent of one of the detectors Roundup 2.6
//! ships in its templates ([`BuiltinDetector`]). Each is switched on for a list of
//! classes (`nosyreaction = { classes = ["bug", "task"] }`), or with `true` for the
//! classes Roundup's template registers it on ([`BuiltinDetector::default_classes`]).
//! What it reads is checked per class when the schema is loaded, so a detector never
//! meets a class without the properties it needs. The registrations themselves
//! (which function runs on which event) are the item layer's
//! (`items::detectors::Registry`); [`Kind`] and [`Event`], the words of a
//! registration, are defined here, below both that registry and the Python worker
//! (`pyworker`, which reports its detectors' registrations), so that both use one
//! type.
//!
//! `python = ["detectors/x.py", ...]` lists the tracker's own detector files; the
//! schema only records them (paths relative to the tracker directory).

use std::ops::Range;

use toml::de::DeValue;

use super::load::type_name;
use super::source::{article, Ctx, SchemaError, V};
use super::{ClassDef, ClassKind, PropType};

/// The Rust equivalents of the detectors shipped with Roundup 2.6's templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BuiltinDetector {
    /// Classic `statusauditor.py`: `presetunread` (audit create) and `chatty`
    /// (audit set).
    StatusAuditor,
    /// `nosyreaction.py`: `updatenosy` (audit create, set) and `nosyreaction`
    /// (react create, set).
    NosyReaction,
    /// `messagesummary.py`: `summarygenerator` (audit create).
    MessageSummary,
    /// `userauditor.py`: `audit_user_fields` (audit create, set).
    UserAuditor,
    /// devel/responsive `no_texthtml.py`: `audit_html_files` (audit create, set).
    NoTextHtml,
    /// devel/responsive `statusauditor.py`: `preset_new` (audit create).
    PresetNew,
    /// devel/responsive `severityauditor.py`: `init_severity` (audit create).
    InitSeverity,
    /// devel/responsive `patches.py`: `patches_text_plain` (audit create).
    PatchesTextPlain,
    /// devel/responsive `patches.py`: `patches_keyword` (audit create, set).
    PatchesKeyword,
}

impl BuiltinDetector {
    /// Every built-in detector, in the order they are listed and documented.
    pub const ALL: [BuiltinDetector; 9] = [
        BuiltinDetector::StatusAuditor,
        BuiltinDetector::NosyReaction,
        BuiltinDetector::MessageSummary,
        BuiltinDetector::UserAuditor,
        BuiltinDetector::NoTextHtml,
        BuiltinDetector::PresetNew,
        BuiltinDetector::InitSeverity,
        BuiltinDetector::PatchesTextPlain,
        BuiltinDetector::PatchesKeyword,
    ];

    /// Its key in `[detectors]`: the module name for the classic template's
    /// detectors and `no_texthtml`, the function name for the devel template's
    /// extras (whose modules either clash with classic names or hold two detectors).
    pub fn key(self) -> &'static str {
        match self {
            BuiltinDetector::StatusAuditor => "statusauditor",
            BuiltinDetector::NosyReaction => "nosyreaction",
            BuiltinDetector::MessageSummary => "messagesummary",
            BuiltinDetector::UserAuditor => "userauditor",
            BuiltinDetector::NoTextHtml => "no_texthtml",
            BuiltinDetector::PresetNew => "preset_new",
            BuiltinDetector::InitSeverity => "init_severity",
            BuiltinDetector::PatchesTextPlain => "patches_text_plain",
            BuiltinDetector::PatchesKeyword => "patches_keyword",
        }
    }

    /// The detector whose key is `key`.
    pub fn from_key(key: &str) -> Option<BuiltinDetector> {
        BuiltinDetector::ALL.into_iter().find(|d| d.key() == key)
    }

    /// The classes `true` stands for: where Roundup's template registers it (for
    /// the devel extras, where its commented-out `init` would).
    pub fn default_classes(self) -> &'static [&'static str] {
        match self {
            BuiltinDetector::StatusAuditor | BuiltinDetector::NosyReaction => &["issue"],
            BuiltinDetector::MessageSummary => &["msg"],
            BuiltinDetector::UserAuditor => &["user"],
            BuiltinDetector::NoTextHtml | BuiltinDetector::PatchesTextPlain => &["file"],
            BuiltinDetector::PresetNew
            | BuiltinDetector::InitSeverity
            | BuiltinDetector::PatchesKeyword => &["bug"],
        }
    }

    /// The options its table may have besides `enabled` and `classes`.
    fn options(self) -> &'static [&'static str] {
        match self {
            BuiltinDetector::StatusAuditor => &["chatting_requires_two_users"],
            _ => &[],
        }
    }
}

/// One built-in detector switched on, with the classes it runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorUse {
    /// The detector.
    pub detector: BuiltinDetector,
    /// The classes it is registered on, in the order written (never empty).
    pub classes: Vec<String>,
}

/// The `[detectors]` section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Detectors {
    /// The built-in detectors switched on, in [`BuiltinDetector::ALL`] order.
    pub builtins: Vec<DetectorUse>,
    /// statusauditor's `chatting_requires_two_users` (Roundup's
    /// `detectors/config.ini [statusauditor]` option).
    pub chatting_requires_two_users: bool,
    /// The tracker's own Python detector files (`python = [...]`), relative to the
    /// tracker directory, in the order written.
    pub python: Vec<String>,
}

impl Detectors {
    /// The classes `detector` runs on (empty when it is off).
    pub fn classes(&self, detector: BuiltinDetector) -> &[String] {
        self.builtins
            .iter()
            .find(|u| u.detector == detector)
            .map_or(&[], |u| u.classes.as_slice())
    }

    /// True if `detector` runs on at least one class.
    pub fn enabled(&self, detector: BuiltinDetector) -> bool {
        !self.classes(detector).is_empty()
    }
}

/// Parses `[detectors]` and checks each enabled detector against each of its classes.
pub(crate) fn parse_detectors(
    cx: &Ctx<'_>,
    v: &V<'_>,
    classes: &[ClassDef],
) -> Result<Detectors, SchemaError> {
    let t = cx.table(v, "\"detectors\"")?;
    let mut names: Vec<&str> = BuiltinDetector::ALL.iter().map(|d| d.key()).collect();
    names.push("python");
    cx.check_keys(t, &names, "[detectors]")?;
    let mut d = Detectors::default();
    for (k, dv) in t.iter() {
        let name = k.get_ref().as_ref();
        if name == "python" {
            d.python = parse_python(cx, dv)?;
            continue;
        }
        let Some(detector) = BuiltinDetector::from_key(name) else {
            continue; // check_keys let only known names through
        };
        let place = format!("detector \"{name}\"");
        // (class name, span to blame, whether it came from `true`)
        let mut on: Vec<(String, Range<usize>, bool)> = Vec::new();
        let defaults = || {
            detector
                .default_classes()
                .iter()
                .map(|c| (c.to_string(), k.span(), true))
                .collect::<Vec<_>>()
        };
        match dv.get_ref() {
            DeValue::Boolean(true) => on = defaults(),
            DeValue::Boolean(false) => {}
            DeValue::Table(dt) => {
                let mut allowed = vec!["enabled", "classes"];
                allowed.extend_from_slice(detector.options());
                cx.check_keys(dt, &allowed, &place)?;
                if let Some(cv) = dt.get("chatting_requires_two_users") {
                    d.chatting_requires_two_users =
                        cx.boolean(cv, "\"chatting_requires_two_users\"")?;
                }
                let enabled = match dt.get("enabled") {
                    Some(ev) => cx.boolean(ev, &format!("\"enabled\" of {place}"))?,
                    None => true,
                };
                if enabled {
                    on = match dt.get("classes") {
                        Some(cv) => {
                            let arr = cx.array(cv, &format!("\"classes\" of {place}"))?;
                            if arr.is_empty() {
                                return Err(cx.err(
                                    cv.span(),
                                    format!(
                                        "\"classes\" of {place} must name at least one class \
                                         (write {name} = false to switch it off)"
                                    ),
                                ));
                            }
                            let mut out: Vec<(String, Range<usize>, bool)> = Vec::new();
                            for x in arr.iter() {
                                let c = cx.string(x, &format!("each of \"classes\" of {place}"))?;
                                if out.iter().any(|(o, _, _)| o == c) {
                                    return Err(cx.err(
                                        x.span(),
                                        format!("class \"{c}\" is listed twice for {place}"),
                                    ));
                                }
                                out.push((c.to_string(), x.span(), false));
                            }
                            out
                        }
                        None => defaults(),
                    };
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
        }
        for (class, span, from_default) in &on {
            if let Err(need) = requirements(detector, class, classes) {
                let hint = if *from_default {
                    " (true stands for Roundup's registration; list the classes it runs on \
                     with classes = [...])"
                } else {
                    ""
                };
                return Err(cx.err(span.clone(), format!("{place} {need}{hint}")));
            }
        }
        if !on.is_empty() {
            d.builtins.push(DetectorUse {
                detector,
                classes: on.into_iter().map(|(c, _, _)| c).collect(),
            });
        }
    }
    d.builtins.sort_by_key(|u| u.detector);
    Ok(d)
}

/// `python = [...]`: relative paths of `.py` files inside the tracker directory.
fn parse_python(cx: &Ctx<'_>, v: &V<'_>) -> Result<Vec<String>, SchemaError> {
    let what = "\"python\" of [detectors]";
    let arr = cx.array(v, what)?;
    let mut out: Vec<String> = Vec::new();
    for x in arr.iter() {
        let p = cx.string(x, &format!("each of {what}"))?;
        let bad = if !p.ends_with(".py") {
            Some("must name a .py file")
        } else if p.starts_with('/') || p.starts_with('\\') {
            Some("must be relative to the tracker directory")
        } else if p
            .split(['/', '\\'])
            .any(|part| part == ".." || part.is_empty())
        {
            Some("must stay inside the tracker directory (no \"..\" or empty parts)")
        } else if p.chars().any(char::is_control) {
            Some("must not contain control characters")
        } else {
            None
        };
        if let Some(why) = bad {
            return Err(cx.err(
                x.span(),
                format!("Python detector file {:?}: the path {why}", p),
            ));
        }
        if out.iter().any(|o| o == p) {
            return Err(cx.err(
                x.span(),
                format!("Python detector file {p:?} is listed twice"),
            ));
        }
        out.push(p.to_string());
    }
    Ok(out)
}

/// Which class a requirement is about.
#[derive(Clone, Copy)]
enum Of {
    /// The class the detector is registered on.
    This,
    /// A class the detector's Roundup code names (`db.msg`, `db.status`, ...).
    Named(&'static str),
}

/// One thing a detector reads.
enum Need {
    /// A property of a type (`Link`, `Multilink`, `String`), and for links the
    /// target class when it matters.
    Prop(Of, &'static str, &'static str, Option<&'static str>),
    /// If present, a String property.
    OptString(Of, &'static str),
    /// If present, a Link or Multilink to class `user`.
    OptUserLink(&'static str),
    /// The named class with a key (the detector looks items up by name).
    Keyed(&'static str),
    /// The registered class is an IssueClass.
    Issue,
}

fn needs(d: BuiltinDetector) -> Vec<Need> {
    use Need::*;
    use Of::*;
    match d {
        BuiltinDetector::StatusAuditor => vec![
            Prop(This, "status", "Link", Some("status")),
            Prop(This, "messages", "Multilink", None),
            Keyed("status"),
        ],
        BuiltinDetector::NosyReaction => vec![
            Issue,
            Prop(This, "nosy", "Multilink", Some("user")),
            Prop(This, "messages", "Multilink", Some("msg")),
            Prop(This, "title", "String", None),
            OptUserLink("assignedto"),
            Prop(Named("msg"), "author", "Link", Some("user")),
            Prop(Named("msg"), "recipients", "Multilink", Some("user")),
            Prop(Named("msg"), "content", "String", None),
        ],
        BuiltinDetector::MessageSummary => vec![
            Prop(This, "summary", "String", None),
            Prop(This, "content", "String", None),
        ],
        BuiltinDetector::UserAuditor => {
            let mut v = Vec::new();
            for p in [
                "username",
                "address",
                "alternate_addresses",
                "roles",
                "timezone",
            ] {
                v.push(OptString(This, p));
                v.push(OptString(Named("user"), p));
            }
            v
        }
        BuiltinDetector::NoTextHtml => vec![Prop(This, "type", "String", None)],
        BuiltinDetector::PresetNew => vec![
            Prop(This, "status", "Link", Some("status")),
            Keyed("status"),
        ],
        BuiltinDetector::InitSeverity => vec![
            Prop(This, "severity", "Link", Some("severity")),
            Keyed("severity"),
        ],
        BuiltinDetector::PatchesTextPlain => vec![
            Prop(This, "name", "String", None),
            Prop(This, "type", "String", None),
        ],
        BuiltinDetector::PatchesKeyword => vec![
            Prop(This, "files", "Multilink", Some("file")),
            Prop(This, "keywords", "Multilink", Some("keyword")),
            Prop(Named("file"), "name", "String", None),
            Keyed("keyword"),
        ],
    }
}

/// Checks that `detector` can run on `class`: Err("on class ... needs ...").
pub(crate) fn requirements(
    detector: BuiltinDetector,
    class: &str,
    classes: &[ClassDef],
) -> Result<(), String> {
    let find = |c: &str| classes.iter().find(|x| x.name == c);
    let Some(this) = find(class) else {
        return Err(format!(
            "names class \"{class}\", which is not in the schema"
        ));
    };
    let on = format!("on class \"{class}\"");
    let resolve = |of: Of| -> Result<&ClassDef, String> {
        match of {
            Of::This => Ok(this),
            Of::Named(n) => find(n)
                .ok_or_else(|| format!("{on} needs a class \"{n}\" (Roundup's code reads it)")),
        }
    };
    let whose = |of: Of| match of {
        Of::This => String::new(),
        Of::Named(n) => format!(" of class \"{n}\""),
    };
    for need in needs(detector) {
        match need {
            Need::Prop(of, p, ty, target) => {
                let def = resolve(of)?;
                let ok = def.prop(p).is_some_and(|prop| {
                    type_name(&prop.kind) == ty
                        && target.is_none_or(|t| prop.kind.link_target() == Some(t))
                });
                if !ok {
                    let to = target.map_or(String::new(), |t| format!(" to class \"{t}\""));
                    return Err(format!(
                        "{on} needs a {ty} property \"{p}\"{to}{}",
                        whose(of)
                    ));
                }
            }
            Need::OptString(of, p) => {
                let Ok(def) = resolve(of) else { continue };
                if let Some(prop) = def.prop(p) {
                    if !matches!(prop.kind, PropType::String { .. }) {
                        return Err(format!(
                            "{on} needs \"{p}\"{}, if present, to be a String",
                            whose(of)
                        ));
                    }
                }
            }
            Need::OptUserLink(p) => {
                if let Some(prop) = this.prop(p) {
                    if prop.kind.link_target() != Some("user") {
                        return Err(format!(
                            "{on} needs \"{p}\", if present, to be a Link or Multilink to \
                             class \"user\""
                        ));
                    }
                }
            }
            Need::Keyed(n) => {
                if find(n).is_none_or(|c| c.key.is_none()) {
                    return Err(format!(
                        "{on} needs a class \"{n}\" with a key property (it looks {n} items \
                         up by name)"
                    ));
                }
            }
            Need::Issue => {
                if this.kind != ClassKind::IssueClass {
                    return Err(format!(
                        "{on} needs an IssueClass (Roundup mails through IssueClass.nosymessage)"
                    ));
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Registrations: shared by the built-in registry (`items::detectors`) and the
// Python worker (`pyworker`), which reports its detectors' registrations.

/// Auditor (runs before the change is written, may change or refuse it) or reactor
/// (runs after it was written, in the same transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `cl.audit(...)`.
    Audit,
    /// `cl.react(...)`.
    React,
}

impl Kind {
    /// `"audit"` or `"react"`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Audit => "audit",
            Kind::React => "react",
        }
    }

    /// The kind called `name` (`"audit"`, `"react"`).
    pub fn from_name(name: &str) -> Option<Kind> {
        [Kind::Audit, Kind::React]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// The four events Roundup fires detectors for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// `create`: auditors get the new values (`nodeid` None), reactors the new id.
    Create,
    /// `set`: auditors get the changes, reactors the item as it was before.
    Set,
    /// `retire`: auditors and reactors get neither values nor old values.
    Retire,
    /// `restore`: as `retire`.
    Restore,
}

impl Event {
    /// Every event, in Roundup's order.
    pub const ALL: [Event; 4] = [Event::Create, Event::Set, Event::Retire, Event::Restore];

    /// Roundup's name: `"create"`, `"set"`, `"retire"`, `"restore"`.
    pub fn name(self) -> &'static str {
        match self {
            Event::Create => "create",
            Event::Set => "set",
            Event::Retire => "retire",
            Event::Restore => "restore",
        }
    }

    /// The event called `name`.
    pub fn from_name(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Its position in [`Event::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}
