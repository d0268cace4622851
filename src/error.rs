//! Typed errors of the Roundup API and the one place where they, and protocol
//! failures, become XML-RPC faults.
//!
//! Roundup reports application errors as `Fault(1, "<class 'X'>:message")`, where
//! X is the Python exception class. Clients parse that text, so the variants here
//! are named after those classes and [`Error::to_fault`] reproduces the text.

use crate::store::pyrepr::str_repr;
use crate::store::StoreError;
use crate::xmlrpc::{DecodeError, Fault};

/// An error of a Roundup API call, named after the Python exception Roundup raises.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum Error {
    /// `KeyError(msg)`: unknown class or property, reserved names, lookup misses.
    #[error("KeyError: {0}")]
    KeyError(String),
    /// `IndexError(msg)`: no such item.
    #[error("IndexError: {0}")]
    IndexError(String),
    /// `roundup.exceptions.UsageError(msg)`: bad arguments and validation failures.
    #[error("UsageError: {0}")]
    UsageError(String),
    /// `roundup.exceptions.Unauthorised(msg)`: permission denied.
    #[error("Unauthorised: {0}")]
    Unauthorised(String),
    /// `roundup.hyperdb.DesignatorError(msg)`.
    #[error("DesignatorError: {0}")]
    DesignatorError(String),
    /// `TypeError(msg)`: wrong argument count or type.
    #[error("TypeError: {0}")]
    TypeError(String),
    /// `ValueError(msg)`.
    #[error("ValueError: {0}")]
    ValueError(String),
    /// `AttributeError(msg)`: a wrong argument type Roundup trips over.
    #[error("AttributeError: {0}")]
    AttributeError(String),
    /// `roundup.exceptions.Reject(msg)`: refused by an auditor.
    #[error("Reject: {0}")]
    Reject(String),
    /// `OverflowError(msg)`: an integer result does not fit XML-RPC.
    #[error("OverflowError: {0}")]
    OverflowError(String),
    /// `Exception(msg)`: unknown method or action.
    #[error("Exception: {0}")]
    Exception(String),
    /// The user lacks `Xmlrpc Access`: `Fault(403, 'Forbidden')`.
    #[error("Forbidden")]
    Forbidden,
    /// The method exists but its parameters are unusable at the protocol level.
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// The call is not one this server runs (a `system.multicall` over its limit or
    /// nested in another).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No such method as the target of `system.methodHelp`/`methodSignature`
    /// (interop code -32601; a call of an unknown method is Roundup's `Exception`).
    #[error("method not found: {0}")]
    MethodNotFound(String),
    /// A storage failure (logged; the client sees a generic fault).
    #[error("storage: {0}")]
    Store(String),
    /// The database or its directory cannot be written (logged with the detail;
    /// the client is told so in plain words).
    #[error("read-only storage: {0}")]
    ReadOnlyStore(String),
    /// The server is over a limit (busy, deadline).
    #[error("server error: {0}")]
    Internal(String),
    /// An exception a Python detector raised (or a failure of the detector worker,
    /// as `roundup.roundupdb.DetectorError`): the fault is `<class>:<message>`, as
    /// Roundup's.
    #[error("{class}: {message}")]
    Python {
        /// The exception's class as Python prints it, e.g. `<class 'KeyError'>`.
        class: String,
        /// `str()` of the exception.
        message: String,
        /// True for `TypeError`, `IndexError`, `ValueError` and their subclasses,
        /// which `create`/`set` report as `UsageError`.
        usage: bool,
        /// The worker's token for the exception object (it is re-raised as itself
        /// if it travels back into Python through a nested call).
        token: Option<u64>,
    },
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Limit(m) | StoreError::Value(m) => Error::ValueError(m),
            e if e.is_read_only() => Error::ReadOnlyStore(e.to_string()),
            e => Error::Store(e.to_string()),
        }
    }
}

/// Result type of API calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Interop fault codes (specs.xmlrpc.com/spec/xmlrpc-interop fault codes) used for
/// failures Roundup never answered cleanly.
pub mod codes {
    /// Not well-formed XML, bad encoding, forbidden DTD/entities.
    pub const PARSE_ERROR: i32 = -32700;
    /// Well-formed but not a valid XML-RPC request, or over a limit.
    pub const INVALID_REQUEST: i32 = -32600;
    /// Method not found (introspection only; Roundup methods answer as Roundup).
    pub const METHOD_NOT_FOUND: i32 = -32601;
    /// Invalid method parameters at the protocol level.
    pub const INVALID_PARAMS: i32 = -32602;
    /// Internal error (storage failure, busy).
    pub const INTERNAL_ERROR: i32 = -32603;

    /// Every interop code, in the order of README's fault table.
    pub const ALL: [i32; 5] = [
        PARSE_ERROR,
        INVALID_REQUEST,
        METHOD_NOT_FOUND,
        INVALID_PARAMS,
        INTERNAL_ERROR,
    ];
}

impl Error {
    /// Wraps Python's `TypeError`/`IndexError`/`ValueError` raised inside
    /// `create`/`set` as `UsageError`, as Roundup's XML-RPC layer does.
    pub fn into_usage(self) -> Error {
        match self {
            Error::TypeError(m)
            | Error::IndexError(m)
            | Error::ValueError(m)
            | Error::DesignatorError(m) => Error::UsageError(m),
            Error::Python {
                message,
                usage: true,
                ..
            } => Error::UsageError(message),
            e => e,
        }
    }

    /// The fault a client sees. Storage details are not disclosed.
    pub fn to_fault(&self) -> Fault {
        let py = |class: &str, msg: &str| Fault::new(1, format!("<class '{class}'>:{msg}"));
        match self {
            Error::KeyError(m) => py("KeyError", &str_repr(m)),
            Error::IndexError(m) => py("IndexError", m),
            Error::UsageError(m) => py("roundup.exceptions.UsageError", m),
            Error::Unauthorised(m) => py("roundup.exceptions.Unauthorised", m),
            Error::DesignatorError(m) => py("roundup.hyperdb.DesignatorError", m),
            Error::TypeError(m) => py("TypeError", m),
            Error::ValueError(m) => py("ValueError", m),
            Error::AttributeError(m) => py("AttributeError", m),
            Error::Reject(m) => py("roundup.exceptions.Reject", m),
            Error::OverflowError(m) => py("OverflowError", m),
            Error::Exception(m) => py("Exception", m),
            Error::Forbidden => Fault::new(403, "Forbidden"),
            Error::InvalidParams(m) => Fault::new(codes::INVALID_PARAMS, m.clone()),
            Error::InvalidRequest(m) => Fault::new(codes::INVALID_REQUEST, m.clone()),
            Error::MethodNotFound(m) => Fault::new(
                codes::METHOD_NOT_FOUND,
                format!("method \"{m}\" is not supported"),
            ),
            Error::Store(_) => {
                Fault::new(codes::INTERNAL_ERROR, "database error; see the server log")
            }
            Error::ReadOnlyStore(_) => Fault::new(
                codes::INTERNAL_ERROR,
                "the tracker database is read-only: nothing was changed",
            ),
            Error::Internal(m) => Fault::new(codes::INTERNAL_ERROR, m.clone()),
            Error::Python { class, message, .. } => Fault::new(1, format!("{class}:{message}")),
        }
    }
}

impl DecodeError {
    /// The fault code of a request document that could not be decoded:
    /// [`codes::PARSE_ERROR`] when it is not well-formed XML or holds a forbidden DTD
    /// or entity (refused at the XML level, as defusedxml does), else
    /// [`codes::INVALID_REQUEST`].
    pub fn fault_code(&self) -> i32 {
        match self {
            DecodeError::Parse(_) | DecodeError::Forbidden(_) => codes::PARSE_ERROR,
            DecodeError::Invalid(_) | DecodeError::BadValue(_) | DecodeError::TooLarge { .. } => {
                codes::INVALID_REQUEST
            }
        }
    }
}

/// The fault for a request document that could not be decoded.
pub fn decode_fault(e: &DecodeError) -> Fault {
    Fault::new(e.fault_code(), e.to_string())
}
