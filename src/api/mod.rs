//! The Roundup XML-RPC methods, one file each, with the argument parsing and value
//! encoding they share. Each method takes the call context and the raw params and
//! answers as Roundup 2.6's `roundup/xmlrpc.py` does (reference §2).
//!
//! [`METHODS`] is the one method table; [`call`] and [`Caller`] ([`run`]) are the
//! one way to run a method (in its transaction, as a user); [`dispatch`] adds the
//! `system.*` methods (multicall and introspection).

pub mod action;
pub mod args;
pub mod create;
pub mod dispatch;
pub mod display;
pub mod filter;
pub mod list;
pub mod lookup;
pub mod pydb;
pub mod run;
pub mod schema;
pub mod set;
pub mod values;

pub use run::{call, Caller};

use crate::error::Result;
use crate::items::Ctx;
use crate::xmlrpc::Value;

/// A Roundup method: its name, whether it writes, its documentation and the
/// function that runs it.
pub struct Method {
    /// The XML-RPC method name.
    pub name: &'static str,
    /// True if it may write (runs in a write transaction).
    pub writes: bool,
    /// `system.methodHelp` text.
    pub help: &'static str,
    /// `system.methodSignature`: return type then parameter types.
    pub signature: &'static [&'static str],
    /// The implementation.
    pub run: fn(&mut Ctx<'_>, &[Value]) -> Result<Value>,
}

/// All Roundup methods, in the order Roundup documents them.
pub const METHODS: &[Method] = &[
    Method {
        name: "schema",
        writes: false,
        help: "schema() -> {class: [[property, type], ...]}: the tracker's classes and property types.",
        signature: &["struct"],
        run: schema::schema,
    },
    Method {
        name: "list",
        writes: false,
        help: "list(classname, [propname]) -> array: the property (default: the label property) of every visible, non-retired item.",
        signature: &["array", "string", "string"],
        run: list::list,
    },
    Method {
        name: "display",
        writes: false,
        help: "display(designator, [propname, ...]) -> struct: the given (default: all) properties of one item.",
        signature: &["struct", "string", "string"],
        run: display::display,
    },
    Method {
        name: "create",
        writes: true,
        help: "create(classname, 'prop=value', ...) -> string: creates an item and returns its id.",
        signature: &["string", "string", "string"],
        run: create::create,
    },
    Method {
        name: "set",
        writes: true,
        help: "set(designator, 'prop=value', ...) -> struct: changes an item; returns the properties that changed.",
        signature: &["struct", "string", "string"],
        run: set::set,
    },
    Method {
        name: "lookup",
        writes: false,
        help: "lookup(classname, keyvalue) -> string: the id of the non-retired item with that key value.",
        signature: &["string", "string", "string"],
        run: lookup::lookup,
    },
    Method {
        name: "filter",
        writes: false,
        help: "filter(classname, ids or None, {prop: value}, [sort], [group]) -> array: ids of matching visible items.",
        signature: &["array", "string", "array", "struct", "array", "array"],
        run: filter::filter,
    },
    Method {
        name: "action",
        writes: true,
        help: "action(name, designator) -> nil: runs the 'retire' or 'restore' action on an item.",
        signature: &["nil", "string", "string"],
        run: action::action,
    },
];

/// The Roundup method called `name`.
pub fn method(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}
