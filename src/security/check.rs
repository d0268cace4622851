//! Check conditions: the declarative stand-in for Roundup's Python `check=` functions.
//!
//! Grammar (written in `schema.toml` as `check = "..."`):
//! ```text
//! expr    := term ("or" term)*
//! term    := factor ("and" factor)*
//! factor  := "(" expr ")"
//!          | PROP "==" operand | PROP "!=" operand
//!          | PROP "contains" operand        (Multilink membership)
//!          | PROP "is" "empty"              (NULL, '' or [])
//! operand := "$user" | "null" | '"' text '"'
//! PROP    := a property of the grant's class, or "id" (the item's id)
//! ```
//! Examples: the classic template's own-record check is `id == $user`; its query
//! view check is `private_for is empty or private_for == $user`; its query edit
//! check is `creator == $user`.

/// A parsed check condition.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckExpr {
    /// True if any part is true.
    Or(Vec<CheckExpr>),
    /// True if every part is true.
    And(Vec<CheckExpr>),
    /// `prop == operand` (`op` Eq), `!=` (Ne) or `contains` (Contains).
    Compare {
        /// Property name, or `id`.
        prop: String,
        /// The comparison.
        op: CompareOp,
        /// What the property is compared with.
        operand: Operand,
    },
    /// `prop is empty`: the value is NULL, the empty string or an empty Multilink.
    IsEmpty(String),
}

/// A comparison operator of a check condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `contains` (Multilink holds the operand id)
    Contains,
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// `$user`: the id of the user being checked.
    User,
    /// `null`: no value.
    Null,
    /// A quoted literal, compared with the property's stored text or id.
    Literal(String),
}
