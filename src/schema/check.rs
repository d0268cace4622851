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
//! operand := "$user" | "null" | '"' text '"'    (\" and \\ escape inside text)
//! PROP    := a property of the grant's class, or "id" (the item's id), or one of
//!            the automatic "creation", "activity", "creator", "actor"
//! ```
//! Keywords are lower case and recognised by position only, so a property may be
//! called e.g. `empty`. [`CheckExpr::parse`] checks the syntax; the schema loader
//! checks the property names against the class.
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

/// Deepest allowed nesting of parentheses in a check condition.
pub const MAX_CHECK_DEPTH: usize = 32;

/// Why a check condition does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct CheckParseError {
    /// 1-based character column in the condition text where the problem is.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// One lexical token of a check condition, with its 0-based character offset.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    EqEq,
    NotEq,
    LParen,
    RParen,
    User,
    Str(String),
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("\"{s}\""),
            Tok::EqEq => "\"==\"".into(),
            Tok::NotEq => "\"!=\"".into(),
            Tok::LParen => "\"(\"".into(),
            Tok::RParen => "\")\"".into(),
            Tok::User => "\"$user\"".into(),
            Tok::Str(s) => format!("string \"{s}\""),
            Tok::End => "end of condition".into(),
        }
    }
}

fn err(column0: usize, message: impl Into<String>) -> CheckParseError {
    CheckParseError {
        column: column0 + 1,
        message: message.into(),
    }
}

fn tokenize(text: &str) -> Result<Vec<(Tok, usize)>, CheckParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => {
                out.push((Tok::LParen, start));
                i += 1;
            }
            ')' => {
                out.push((Tok::RParen, start));
                i += 1;
            }
            '=' | '!' => {
                if chars.get(i + 1) != Some(&'=') {
                    return Err(err(
                        start,
                        format!("unexpected \"{c}\" (did you mean \"{c}=\"?)"),
                    ));
                }
                out.push((if c == '=' { Tok::EqEq } else { Tok::NotEq }, start));
                i += 2;
            }
            '$' => {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let name: String = chars[i + 1..j].iter().collect();
                if name != "user" {
                    return Err(err(
                        start,
                        format!("unknown variable \"${name}\" (only $user is defined)"),
                    ));
                }
                out.push((Tok::User, start));
                i = j;
            }
            '"' => {
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => return Err(err(start, "unterminated string literal")),
                        Some('"') => break,
                        Some('\\') => match chars.get(j + 1) {
                            Some(e @ ('"' | '\\')) => {
                                s.push(*e);
                                j += 2;
                            }
                            _ => return Err(err(
                                j,
                                "invalid escape in string literal (only \\\" and \\\\ are allowed)",
                            )),
                        },
                        Some(ch) => {
                            s.push(*ch);
                            j += 1;
                        }
                    }
                }
                out.push((Tok::Str(s), start));
                i = j + 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut j = i;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                out.push((Tok::Ident(chars[i..j].iter().collect()), start));
                i = j;
            }
            c => return Err(err(start, format!("unexpected character \"{c}\""))),
        }
    }
    out.push((Tok::End, chars.len()));
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &(Tok, usize) {
        // The token list always ends with Tok::End and `pos` never moves past it.
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> (Tok, usize) {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn is_keyword(&self, kw: &str) -> bool {
        matches!(&self.peek().0, Tok::Ident(s) if s == kw)
    }

    fn expr(&mut self, depth: usize) -> Result<CheckExpr, CheckParseError> {
        self.joined(depth, "or", Self::term, CheckExpr::Or)
    }

    fn term(&mut self, depth: usize) -> Result<CheckExpr, CheckParseError> {
        self.joined(depth, "and", Self::factor, CheckExpr::And)
    }

    /// `part (keyword part)*`: one part as it is, several joined by `join`.
    fn joined(
        &mut self,
        depth: usize,
        keyword: &str,
        part: fn(&mut Self, usize) -> Result<CheckExpr, CheckParseError>,
        join: fn(Vec<CheckExpr>) -> CheckExpr,
    ) -> Result<CheckExpr, CheckParseError> {
        let mut parts = vec![part(self, depth)?];
        while self.is_keyword(keyword) {
            self.next();
            parts.push(part(self, depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            join(parts)
        })
    }

    fn factor(&mut self, depth: usize) -> Result<CheckExpr, CheckParseError> {
        let (tok, at) = self.next();
        match tok {
            Tok::LParen => {
                if depth >= MAX_CHECK_DEPTH {
                    return Err(err(
                        at,
                        format!("parentheses nested deeper than {MAX_CHECK_DEPTH}"),
                    ));
                }
                let inner = self.expr(depth + 1)?;
                let (close, cat) = self.next();
                if close != Tok::RParen {
                    return Err(err(
                        cat,
                        format!("expected \")\", found {}", close.describe()),
                    ));
                }
                Ok(inner)
            }
            Tok::Ident(prop) => {
                let (op, oat) = self.next();
                let op = match op {
                    Tok::EqEq => CompareOp::Eq,
                    Tok::NotEq => CompareOp::Ne,
                    Tok::Ident(ref k) if k == "contains" => CompareOp::Contains,
                    Tok::Ident(ref k) if k == "is" => {
                        let (e, eat) = self.next();
                        if e != Tok::Ident("empty".into()) {
                            return Err(err(
                                eat,
                                format!("expected \"empty\" after \"is\", found {}", e.describe()),
                            ));
                        }
                        return Ok(CheckExpr::IsEmpty(prop));
                    }
                    other => {
                        return Err(err(
                            oat,
                            format!(
                                "expected \"==\", \"!=\", \"contains\" or \"is empty\" after \"{prop}\", found {}",
                                other.describe()
                            ),
                        ))
                    }
                };
                let (rhs, rat) = self.next();
                let operand = match rhs {
                    Tok::User => Operand::User,
                    Tok::Ident(ref k) if k == "null" => Operand::Null,
                    Tok::Str(s) => Operand::Literal(s),
                    other => {
                        return Err(err(
                            rat,
                            format!(
                                "expected $user, null or a quoted string, found {}",
                                other.describe()
                            ),
                        ))
                    }
                };
                Ok(CheckExpr::Compare { prop, op, operand })
            }
            other => Err(err(
                at,
                format!(
                    "expected a property name or \"(\", found {}",
                    other.describe()
                ),
            )),
        }
    }
}

impl CheckExpr {
    /// Parses a check condition written in the grammar above. Keywords (`or`, `and`,
    /// `contains`, `is`, `empty`, `null`) are lower case; a property name is recognised
    /// by its position, so a property may itself be called e.g. `empty`.
    pub fn parse(text: &str) -> Result<CheckExpr, CheckParseError> {
        let toks = tokenize(text)?;
        if toks.len() == 1 {
            return Err(err(0, "empty condition"));
        }
        let mut p = Parser { toks, pos: 0 };
        let e = p.expr(0)?;
        let (t, at) = p.next();
        if t != Tok::End {
            return Err(err(
                at,
                format!(
                    "expected \"and\", \"or\" or end of condition, found {}",
                    t.describe()
                ),
            ));
        }
        Ok(e)
    }

    /// The property names the condition reads, in order of first appearance, without
    /// duplicates (`id` included when used).
    pub fn props(&self) -> Vec<&str> {
        fn walk<'a>(e: &'a CheckExpr, out: &mut Vec<&'a str>) {
            match e {
                CheckExpr::Or(v) | CheckExpr::And(v) => v.iter().for_each(|x| walk(x, out)),
                CheckExpr::Compare { prop, .. } | CheckExpr::IsEmpty(prop) => {
                    if !out.contains(&prop.as_str()) {
                        out.push(prop);
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(prop: &str, op: CompareOp, operand: Operand) -> CheckExpr {
        CheckExpr::Compare {
            prop: prop.into(),
            op,
            operand,
        }
    }

    #[test]
    fn classic_checks() {
        assert_eq!(
            CheckExpr::parse("id == $user").unwrap(),
            cmp("id", CompareOp::Eq, Operand::User)
        );
        assert_eq!(
            CheckExpr::parse("private_for is empty or private_for == $user").unwrap(),
            CheckExpr::Or(vec![
                CheckExpr::IsEmpty("private_for".into()),
                cmp("private_for", CompareOp::Eq, Operand::User),
            ])
        );
        assert_eq!(
            CheckExpr::parse("creator==$user").unwrap(),
            cmp("creator", CompareOp::Eq, Operand::User)
        );
    }

    #[test]
    fn precedence_and_parens() {
        let e = CheckExpr::parse("a == null or b != \"x\" and c contains $user").unwrap();
        assert_eq!(
            e,
            CheckExpr::Or(vec![
                cmp("a", CompareOp::Eq, Operand::Null),
                CheckExpr::And(vec![
                    cmp("b", CompareOp::Ne, Operand::Literal("x".into())),
                    cmp("c", CompareOp::Contains, Operand::User),
                ]),
            ])
        );
        let e = CheckExpr::parse("(a is empty or b is empty) and (c == \"q\\\"t\")").unwrap();
        assert_eq!(
            e,
            CheckExpr::And(vec![
                CheckExpr::Or(vec![
                    CheckExpr::IsEmpty("a".into()),
                    CheckExpr::IsEmpty("b".into())
                ]),
                cmp("c", CompareOp::Eq, Operand::Literal("q\"t".into())),
            ])
        );
        assert_eq!(e.props(), vec!["a", "b", "c"]);
    }

    #[test]
    fn keywords_are_positional() {
        assert_eq!(
            CheckExpr::parse("empty is empty").unwrap(),
            CheckExpr::IsEmpty("empty".into())
        );
        assert_eq!(
            CheckExpr::parse("x == y or x == $user")
                .unwrap_err()
                .to_string(),
            "column 6: expected $user, null or a quoted string, found \"y\""
        );
    }

    #[test]
    fn props_are_deduplicated() {
        let e = CheckExpr::parse("a == $user or a is empty or id == \"1\"").unwrap();
        assert_eq!(e.props(), vec!["a", "id"]);
    }

    #[test]
    fn errors() {
        let cases = [
            ("", "column 1: empty condition"),
            ("   ", "column 1: empty condition"),
            ("id = $user", "column 4: unexpected \"=\" (did you mean \"==\"?)"),
            ("id == $me", "column 7: unknown variable \"$me\" (only $user is defined)"),
            ("id ==", "column 6: expected $user, null or a quoted string, found end of condition"),
            ("id", "column 3: expected \"==\", \"!=\", \"contains\" or \"is empty\" after \"id\", found end of condition"),
            ("id is null", "column 7: expected \"empty\" after \"is\", found \"null\""),
            ("(id == $user", "column 13: expected \")\", found end of condition"),
            ("id == $user)", "column 12: expected \"and\", \"or\" or end of condition, found \")\""),
            ("id == \"abc", "column 7: unterminated string literal"),
            ("id == $user or", "column 15: expected a property name or \"(\", found end of condition"),
            ("id == \"a\\n\"", "column 9: invalid escape in string literal (only \\\" and \\\\ are allowed)"),
            ("id == $user && x is empty", "column 13: unexpected character \"&\""),
            ("id == $user AND x is empty", "column 13: expected \"and\", \"or\" or end of condition, found \"AND\""),
        ];
        for (text, want) in cases {
            assert_eq!(
                CheckExpr::parse(text).unwrap_err().to_string(),
                want,
                "for {text:?}"
            );
        }
    }

    #[test]
    fn depth_limit() {
        let deep = format!("{}a is empty{}", "(".repeat(40), ")".repeat(40));
        let e = CheckExpr::parse(&deep).unwrap_err();
        assert!(e.message.contains("nested deeper"), "{e}");
        let ok = format!("{}a is empty{}", "(".repeat(10), ")".repeat(10));
        assert_eq!(
            CheckExpr::parse(&ok).unwrap(),
            CheckExpr::IsEmpty("a".into())
        );
    }
}
