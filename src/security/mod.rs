//! Roundup's permission model: roles, grants and `hasPermission` (being written).

pub mod check;

pub use check::CheckExpr;
