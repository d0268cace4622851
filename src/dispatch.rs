//! Method dispatch: the `system.*` methods (multicall and introspection) on top
//! of a table of application methods. It knows nothing of trackers.

use crate::xmlrpc::{Fault, MethodCall, Value};

/// The application methods the dispatcher serves.
pub trait Methods {
    /// Runs one application method (never a `system.*` one).
    fn call(&mut self, name: &str, params: &[Value]) -> Result<Value, Fault>;
    /// The application method names.
    fn names(&self) -> Vec<&'static str>;
    /// `system.methodHelp` text for a method.
    fn help(&self, name: &str) -> Option<&'static str>;
    /// `system.methodSignature` types (return type first) for a method.
    fn signature(&self, name: &str) -> Option<&'static [&'static str]>;
}

/// Most calls in one `system.multicall` (each answer is held in memory until the
/// whole response is sent).
pub const MAX_MULTICALL: usize = 1000;

const SYSTEM: [&str; 4] = [
    "system.listMethods",
    "system.methodHelp",
    "system.methodSignature",
    "system.multicall",
];

fn fault_struct(f: Fault) -> Value {
    Value::Struct(vec![
        ("faultCode".into(), Value::Int(f.code as i64)),
        ("faultString".into(), Value::String(f.string)),
    ])
}

fn name_arg(params: &[Value]) -> Result<&str, Fault> {
    match params {
        [Value::String(s)] => Ok(s),
        _ => Err(Fault::new(
            crate::error::codes::INVALID_PARAMS,
            "expected one method name",
        )),
    }
}

/// Answers one call: a `system.*` method or an application method.
pub fn dispatch(methods: &mut dyn Methods, call: &MethodCall) -> Result<Value, Fault> {
    match call.name.as_str() {
        "system.listMethods" => {
            let mut names: Vec<Value> = methods.names().into_iter().map(Value::str).collect();
            names.extend(SYSTEM.iter().map(|n| Value::str(*n)));
            Ok(Value::Array(names))
        }
        "system.methodHelp" => {
            let name = name_arg(&call.params)?;
            let help = match name {
                "system.listMethods" => Some("system.listMethods() -> array: the names of all methods."),
                "system.methodHelp" => Some("system.methodHelp(name) -> string: documentation of a method."),
                "system.methodSignature" => Some("system.methodSignature(name) -> array: [[return type, parameter types...]]."),
                "system.multicall" => Some("system.multicall([{methodName, params}, ...]) -> array: [result] or a fault struct per call."),
                n => methods.help(n),
            };
            help.map(Value::str).ok_or_else(|| not_supported(name))
        }
        "system.methodSignature" => {
            let name = name_arg(&call.params)?;
            let sig: Option<&[&str]> = match name {
                "system.listMethods" => Some(&["array"]),
                "system.methodHelp" | "system.methodSignature" => Some(&["string", "string"]),
                "system.multicall" => Some(&["array", "array"]),
                n => methods.signature(n),
            };
            sig.map(|s| {
                Value::Array(vec![Value::Array(
                    s.iter().map(|t| Value::str(*t)).collect(),
                )])
            })
            .ok_or_else(|| not_supported(name))
        }
        "system.multicall" => {
            let calls = match call.params.as_slice() {
                [Value::Array(calls)] => calls,
                _ => {
                    return Err(Fault::new(
                        crate::error::codes::INVALID_PARAMS,
                        "system.multicall expects one array of calls",
                    ))
                }
            };
            if calls.len() > MAX_MULTICALL {
                return Err(Fault::new(
                    crate::error::codes::INVALID_REQUEST,
                    format!("system.multicall: more than {MAX_MULTICALL} calls"),
                ));
            }
            let mut results = Vec::with_capacity(calls.len());
            for c in calls {
                results.push(match one_of_multicall(methods, c) {
                    Ok(v) => Value::Array(vec![v]),
                    Err(f) => fault_struct(f),
                });
            }
            Ok(Value::Array(results))
        }
        name => methods.call(name, &call.params),
    }
}

fn not_supported(name: &str) -> Fault {
    crate::error::Error::Exception(format!("method \"{name}\" is not supported")).to_fault()
}

fn one_of_multicall(methods: &mut dyn Methods, c: &Value) -> Result<Value, Fault> {
    let Value::Struct(members) = c else {
        return Err(
            crate::error::Error::TypeError("multicall entries must be structs".into()).to_fault(),
        );
    };
    let get = |k: &str| members.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    let name = match get("methodName") {
        Some(Value::String(n)) => n.clone(),
        Some(_) => {
            return Err(
                crate::error::Error::TypeError("methodName must be a string".into()).to_fault(),
            )
        }
        None => return Err(crate::error::Error::KeyError("methodName".into()).to_fault()),
    };
    let params = match get("params") {
        Some(Value::Array(p)) => p.clone(),
        Some(_) => {
            return Err(crate::error::Error::TypeError("params must be an array".into()).to_fault())
        }
        None => return Err(crate::error::Error::KeyError("params".into()).to_fault()),
    };
    if name == "system.multicall" {
        return Err(Fault::new(
            crate::error::codes::INVALID_REQUEST,
            "recursive system.multicall forbidden",
        ));
    }
    dispatch(methods, &MethodCall { name, params })
}
