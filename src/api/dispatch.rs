//! Dispatch: the `system.*` methods (multicall and introspection) on top of the
//! Roundup methods of [`super::METHODS`]. Every fault is made by
//! [`crate::error::Error::to_fault`].

use super::run::Caller;
use crate::error::Error;
use crate::xmlrpc::{Fault, MethodCall, Value};

/// Most calls in one `system.multicall` (each answer is held in memory until the
/// whole response is sent).
pub const MAX_MULTICALL: usize = 1000;

/// The `system.*` methods: name, help text and signature (return type first).
const SYSTEM: [(&str, &str, &[&str]); 4] = [
    (
        "system.listMethods",
        "system.listMethods() -> array: the names of all methods.",
        &["array"],
    ),
    (
        "system.methodHelp",
        "system.methodHelp(name) -> string: documentation of a method.",
        &["string", "string"],
    ),
    (
        "system.methodSignature",
        "system.methodSignature(name) -> array: [[return type, parameter types...]].",
        &["string", "string"],
    ),
    (
        "system.multicall",
        "system.multicall([{methodName, params}, ...]) -> array: [result] or a fault struct per call.",
        &["array", "array"],
    ),
];

/// The name of a method this server has (`system.*` ones included), as a static
/// string (a bounded label for metrics); `None` for any other name.
pub fn known_method(name: &str) -> Option<&'static str> {
    super::method(name).map(|m| m.name).or_else(|| {
        SYSTEM
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(n, _, _)| *n)
    })
}

/// The help text and signature of any method, `system.*` ones included.
fn describe(name: &str) -> Option<(&'static str, &'static [&'static str])> {
    match SYSTEM.iter().find(|(n, _, _)| *n == name) {
        Some((_, help, signature)) => Some((help, signature)),
        None => super::method(name).map(|m| (m.help, m.signature)),
    }
}

fn fault_struct(f: Fault) -> Value {
    Value::Struct(vec![
        ("faultCode".into(), Value::Int(f.code as i64)),
        ("faultString".into(), Value::String(f.string)),
    ])
}

/// The method named by the one parameter of `system.methodHelp`/`methodSignature`,
/// with its help and signature; `MethodNotFound` (-32601) when there is none.
fn described(params: &[Value]) -> Result<(&'static str, &'static [&'static str]), Fault> {
    let [Value::String(name)] = params else {
        return Err(Error::InvalidParams("expected one method name".into()).to_fault());
    };
    describe(name).ok_or_else(|| Error::MethodNotFound(name.clone()).to_fault())
}

/// Answers one call: a `system.*` method or a Roundup method.
pub fn dispatch(caller: &mut Caller<'_>, call: &MethodCall) -> Result<Value, Fault> {
    match call.name.as_str() {
        "system.listMethods" => {
            let names = super::METHODS
                .iter()
                .map(|m| m.name)
                .chain(SYSTEM.iter().map(|(n, _, _)| *n));
            Ok(Value::Array(names.map(Value::str).collect()))
        }
        "system.methodHelp" => described(&call.params).map(|(help, _)| Value::str(help)),
        "system.methodSignature" => described(&call.params).map(|(_, signature)| {
            Value::Array(vec![Value::Array(
                signature.iter().map(|t| Value::str(*t)).collect(),
            )])
        }),
        "system.multicall" => {
            let [Value::Array(calls)] = call.params.as_slice() else {
                return Err(Error::InvalidParams(
                    "system.multicall expects one array of calls".into(),
                )
                .to_fault());
            };
            if calls.len() > MAX_MULTICALL {
                return Err(Error::InvalidRequest(format!(
                    "system.multicall: more than {MAX_MULTICALL} calls"
                ))
                .to_fault());
            }
            let mut results = Vec::with_capacity(calls.len());
            for c in calls {
                results.push(match one_of_multicall(caller, c) {
                    Ok(v) => Value::Array(vec![v]),
                    Err(f) => fault_struct(f),
                });
            }
            Ok(Value::Array(results))
        }
        name => caller.run_fault(name, &call.params),
    }
}

fn one_of_multicall(caller: &mut Caller<'_>, c: &Value) -> Result<Value, Fault> {
    let Value::Struct(members) = c else {
        return Err(Error::TypeError("multicall entries must be structs".into()).to_fault());
    };
    let get = |k: &str| members.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    let name = match get("methodName") {
        Some(Value::String(n)) => n.clone(),
        Some(_) => return Err(Error::TypeError("methodName must be a string".into()).to_fault()),
        None => return Err(Error::KeyError("methodName".into()).to_fault()),
    };
    let params = match get("params") {
        Some(Value::Array(p)) => p.clone(),
        Some(_) => return Err(Error::TypeError("params must be an array".into()).to_fault()),
        None => return Err(Error::KeyError("params".into()).to_fault()),
    };
    if name == "system.multicall" {
        return Err(
            Error::InvalidRequest("recursive system.multicall forbidden".into()).to_fault(),
        );
    }
    dispatch(caller, &MethodCall { name, params })
}
