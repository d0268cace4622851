//! The tracker schema: the model (classes, properties, keys, roles, permissions and
//! the detectors: which built-ins run on which classes, and the Python detector
//! files, [`detectors`]), the check-condition language of grants ([`check`]), and
//! the loaders of `schema.toml` ([`load`], [`grants`]) and
//! `initial_data.toml` ([`initial_data`]). The bottom floor of the Roundup side: it
//! imports nothing of the crate.

pub mod check;
pub mod detectors;
pub mod grants;
pub mod initial_data;
pub mod load;
pub mod source;

pub use check::CheckExpr;
pub use detectors::{BuiltinDetector, DetectorUse, Detectors};
pub use initial_data::InitialData;
pub use load::{load_schema, parse_schema};
pub use source::SchemaError;

/// The type of one property, as in Roundup's `roundup.hyperdb`.
#[derive(Debug, Clone, PartialEq)]
pub enum PropType {
    /// `String(indexme=...)`.
    String {
        /// Full-text indexed (Roundup's `indexme='yes'`).
        indexme: bool,
    },
    /// `Password()`.
    Password,
    /// `Date()`.
    Date,
    /// `Interval()`.
    Interval,
    /// `Link("class")`.
    Link {
        /// The target class name.
        class: String,
        /// Write `link`/`unlink` journal entries on the target (`do_journal`).
        do_journal: bool,
    },
    /// `Multilink("class")`.
    Multilink {
        /// The target class name.
        class: String,
        /// Write `link`/`unlink` journal entries on the targets (`do_journal`).
        do_journal: bool,
    },
    /// `Boolean()`.
    Boolean,
    /// `Number()` (a double).
    Number,
    /// `Integer()`.
    Integer,
}

impl PropType {
    /// Roundup's repr of the type, as `schema()` returns it, e.g.
    /// `<roundup.hyperdb.Link to "user">`.
    pub fn repr(&self) -> String {
        match self {
            PropType::String { .. } => "<roundup.hyperdb.String>".into(),
            PropType::Password => "<roundup.hyperdb.Password>".into(),
            PropType::Date => "<roundup.hyperdb.Date>".into(),
            PropType::Interval => "<roundup.hyperdb.Interval>".into(),
            PropType::Link { class, .. } => format!("<roundup.hyperdb.Link to \"{class}\">"),
            PropType::Multilink { class, .. } => {
                format!("<roundup.hyperdb.Multilink to \"{class}\">")
            }
            PropType::Boolean => "<roundup.hyperdb.Boolean>".into(),
            PropType::Number => "<roundup.hyperdb.Number>".into(),
            PropType::Integer => "<roundup.hyperdb.Integer>".into(),
        }
    }

    /// The target class of a Link or Multilink.
    pub fn link_target(&self) -> Option<&str> {
        match self {
            PropType::Link { class, .. } | PropType::Multilink { class, .. } => Some(class),
            _ => None,
        }
    }

    /// True for Multilink.
    pub fn is_multilink(&self) -> bool {
        matches!(self, PropType::Multilink { .. })
    }
}

/// One declared property of a class.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    /// Property name (a valid identifier).
    pub name: String,
    /// Its type.
    pub kind: PropType,
    /// `quiet=True`: changes are left out of `set()` results and nosy mails.
    pub quiet: bool,
    /// `required=True` (informational: Roundup's XML-RPC path does not enforce it).
    pub required: bool,
}

/// The three kinds of hyperdb class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassKind {
    /// `Class`.
    Class,
    /// `FileClass`: content stored in a file, plus `content` and `type` properties.
    FileClass,
    /// `IssueClass`: plus `title`, `messages`, `files`, `nosy`, `superseder`.
    IssueClass,
}

/// One class of the schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassDef {
    /// Class name, e.g. `issue`.
    pub name: String,
    /// Class, FileClass or IssueClass.
    pub kind: ClassKind,
    /// Declared properties in definition order, including those FileClass and
    /// IssueClass add (as Roundup adds them: after the declared ones). Never contains
    /// the automatic `id`, `creation`, `activity`, `creator`, `actor`.
    pub properties: Vec<Property>,
    /// The key property (`setkey`), always a String property.
    pub key: Option<String>,
    /// Explicit label property (`setlabelprop`).
    pub labelprop: Option<String>,
    /// Explicit order property (`setorderprop`).
    pub orderprop: Option<String>,
}

impl ClassDef {
    /// The declared property called `name`.
    pub fn prop(&self, name: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.name == name)
    }

    /// Roundup's `labelprop()`: explicit labelprop, else the key, else `name`, else
    /// `title`, else the alphabetically first of all properties (automatic ones included).
    pub fn labelprop(&self) -> String {
        if let Some(l) = &self.labelprop {
            return l.clone();
        }
        if let Some(k) = &self.key {
            return k.clone();
        }
        for n in ["name", "title"] {
            if self.prop(n).is_some() {
                return n.to_string();
            }
        }
        let mut all: Vec<&str> = self.properties.iter().map(|p| p.name.as_str()).collect();
        all.extend(["activity", "actor", "creation", "creator", "id"]);
        all.sort_unstable();
        all[0].to_string()
    }

    /// Roundup's `orderprop()`: explicit orderprop, else `order` if declared, else the labelprop.
    pub fn orderprop(&self) -> String {
        if let Some(o) = &self.orderprop {
            return o.clone();
        }
        if self.prop("order").is_some() {
            return "order".into();
        }
        self.labelprop()
    }
}

/// A role: a named set of permission grants. Role names compare case-insensitively.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    /// Name as written in the schema (e.g. `User`); matched lower-cased.
    pub name: String,
    /// Free text.
    pub description: String,
}

/// One permission granted to one or more roles, as Roundup's
/// `addPermission` + `addPermissionToRole` pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// Lower-cased role names this grant belongs to.
    pub roles: Vec<String>,
    /// Permission name: `View`, `Edit`, `Create`, `Retire`, `Restore`, `Search`,
    /// `Register`, `Web Access`, `Xmlrpc Access`, ...
    pub permission: String,
    /// The class it is limited to; None means every class.
    pub class: Option<String>,
    /// The properties it is limited to; None means all.
    pub properties: Option<Vec<String>>,
    /// Roundup's `props_only`: a property-limited grant does not also grant the
    /// class-level check.
    pub props_only: bool,
    /// The item check condition, if any (Roundup's `check=` function).
    pub check: Option<CheckExpr>,
    /// Free text.
    pub description: String,
}

/// A whole tracker schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// Classes in definition order.
    pub classes: Vec<ClassDef>,
    /// Roles in definition order (always includes `admin`, `user`, `anonymous`).
    pub roles: Vec<Role>,
    /// Permission grants in definition order.
    pub grants: Vec<Grant>,
    /// Which built-in detectors run on which classes, and the Python detector files.
    pub detectors: Detectors,
}

impl Schema {
    /// The class called `name`.
    pub fn class(&self, name: &str) -> Option<&ClassDef> {
        self.classes.iter().find(|c| c.name == name)
    }

    /// True if a role of that (case-insensitive) name exists.
    pub fn has_role(&self, name: &str) -> bool {
        let l = name.to_lowercase();
        self.roles.iter().any(|r| r.name.to_lowercase() == l)
    }
}
