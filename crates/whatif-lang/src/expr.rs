//! The expression parser: tokens in, an untyped [`ast::Expr`] out.
//!
//! Grammar, loosest to tightest (Python-like):
//!
//! ```text
//! or     := and ("or" and)*
//! and    := not ("and" not)*
//! not    := "not" not | cmp
//! cmp    := add (("<" | "<=" | ">" | ">=" | "==" | "!=") add)?   -- no chaining
//! add    := mul (("+" | "-") mul)*
//! mul    := unary (("*" | "/") unary)*
//! unary  := "-" unary | pow
//! pow    := atom ("^" unary)?                                    -- right-assoc
//! atom   := number | ident | ident "(" args ")" | ident "[" world "]" | "(" or ")"
//! world  := ident ("+" ident)*
//! ```
//!
//! `^` binds tighter than unary minus, so `-x^2` is `-(x^2)` and `2^-1` is
//! `2^(-1)`. Trees are limited to [`MAX_DEPTH`] levels so that no input can
//! overflow the stack of the recursive passes after parsing.

use crate::ast::{Expr, ExprKind};
use crate::lexer::{LexError, Tok, lex};
use crate::model::{BinOp, Span};

/// The deepest expression tree accepted.
pub const MAX_DEPTH: usize = 128;
/// The deepest parser recursion accepted (parentheses, prefix operators and
/// right operands of `^`); about ten stack frames each in a debug build.
pub const MAX_NESTING: usize = 40;

/// A syntax error in an expression; spans are in the decoded string.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub message: String,
    pub span: Span,
    pub label: String,
    pub help: Option<String>,
    /// E.g. the unclosed opening parenthesis.
    pub secondary: Vec<(Span, String)>,
}

impl From<LexError> for ParseError {
    fn from(e: LexError) -> Self {
        ParseError {
            message: e.message,
            span: e.span,
            label: "here".into(),
            help: e.help,
            secondary: vec![],
        }
    }
}

/// Parses one expression (the whole text).
pub fn parse_expr(text: &str) -> Result<Expr, ParseError> {
    let toks = lex(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let (e, _) = p.or()?;
    let (tok, span) = p.peek();
    if *tok != Tok::Eof {
        let help = match tok {
            Tok::Ident(_) | Tok::Num(_) | Tok::LParen => {
                Some("expected an operator between the two operands".to_string())
            }
            Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge | Tok::EqEq | Tok::Ne => {
                Some("comparisons do not chain: write `a < b and b < c`".to_string())
            }
            _ => None,
        };
        return Err(ParseError {
            message: format!("unexpected {} after the expression", tok.describe()),
            span,
            label: "unexpected".into(),
            help,
            secondary: vec![],
        });
    }
    Ok(e)
}

struct Parser {
    toks: Vec<(Tok, Span)>,
    pos: usize,
    /// Current recursion depth: bounded so `((((…` cannot overflow the stack.
    depth: usize,
}

type PResult = Result<(Expr, usize), ParseError>;

fn too_deep(span: Span) -> ParseError {
    ParseError {
        message: format!("expression nested deeper than {MAX_DEPTH} levels"),
        span,
        label: "too deep".into(),
        help: Some("split the expression into intermediate nodes".into()),
        secondary: vec![],
    }
}

fn binary(op: BinOp, (l, ld): (Expr, usize), (r, rd): (Expr, usize)) -> PResult {
    let span = l.span.to(r.span);
    let d = ld.max(rd) + 1;
    if d > MAX_DEPTH {
        return Err(too_deep(span));
    }
    Ok((
        Expr {
            kind: ExprKind::Binary {
                op,
                lhs: Box::new(l),
                rhs: Box::new(r),
            },
            span,
        },
        d,
    ))
}

impl Parser {
    fn peek(&self) -> (&Tok, Span) {
        // The token list always ends with Eof and `pos` never passes it.
        let (t, s) = &self.toks[self.pos.min(self.toks.len() - 1)];
        (t, *s)
    }

    fn bump(&mut self) -> (Tok, Span) {
        let (t, s) = self.peek();
        let out = (t.clone(), s);
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        out
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek().0, Tok::Ident(s) if s == kw)
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(too_deep(self.peek().1));
        }
        Ok(())
    }

    fn or(&mut self) -> PResult {
        self.enter()?;
        let r = self.or_inner();
        self.depth -= 1;
        r
    }

    fn or_inner(&mut self) -> PResult {
        let mut lhs = self.and()?;
        while self.is_kw("or") {
            self.bump();
            let rhs = self.and()?;
            lhs = binary(BinOp::Or, lhs, rhs)?;
        }
        Ok(lhs)
    }

    fn and(&mut self) -> PResult {
        let mut lhs = self.not()?;
        while self.is_kw("and") {
            self.bump();
            let rhs = self.not()?;
            lhs = binary(BinOp::And, lhs, rhs)?;
        }
        Ok(lhs)
    }

    fn not(&mut self) -> PResult {
        if self.is_kw("not") {
            let (_, span) = self.bump();
            self.enter()?;
            let r = self.not();
            self.depth -= 1;
            let (e, d) = r?;
            let span = span.to(e.span);
            if d + 1 > MAX_DEPTH {
                return Err(too_deep(span));
            }
            return Ok((
                Expr {
                    kind: ExprKind::Not(Box::new(e)),
                    span,
                },
                d + 1,
            ));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> PResult {
        let lhs = self.add()?;
        let op = match self.peek().0 {
            Tok::Lt => BinOp::Lt,
            Tok::Le => BinOp::Le,
            Tok::Gt => BinOp::Gt,
            Tok::Ge => BinOp::Ge,
            Tok::EqEq => BinOp::Eq,
            Tok::Ne => BinOp::Ne,
            _ => return Ok(lhs),
        };
        self.bump();
        let rhs = self.add()?;
        binary(op, lhs, rhs)
    }

    fn add(&mut self) -> PResult {
        let mut lhs = self.mul()?;
        loop {
            let op = match self.peek().0 {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.mul()?;
            lhs = binary(op, lhs, rhs)?;
        }
    }

    fn mul(&mut self) -> PResult {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.peek().0 {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.unary()?;
            lhs = binary(op, lhs, rhs)?;
        }
    }

    fn unary(&mut self) -> PResult {
        if *self.peek().0 == Tok::Minus {
            let (_, span) = self.bump();
            self.enter()?;
            let r = self.unary();
            self.depth -= 1;
            let (e, d) = r?;
            let span = span.to(e.span);
            if d + 1 > MAX_DEPTH {
                return Err(too_deep(span));
            }
            return Ok((
                Expr {
                    kind: ExprKind::Neg(Box::new(e)),
                    span,
                },
                d + 1,
            ));
        }
        self.pow()
    }

    fn pow(&mut self) -> PResult {
        let base = self.atom()?;
        if *self.peek().0 == Tok::Caret {
            self.bump();
            self.enter()?;
            let r = self.unary();
            self.depth -= 1;
            let exp = r?;
            return binary(BinOp::Pow, base, exp);
        }
        Ok(base)
    }

    fn expect_operand_error(&self, what: &str) -> ParseError {
        let (tok, span) = self.peek();
        let help = match tok {
            Tok::Ident(k) if k == "and" || k == "or" => {
                Some(format!("`{k}` needs an operand on each side"))
            }
            _ => None,
        };
        ParseError {
            message: format!("expected {what}, found {}", tok.describe()),
            span,
            label: format!("expected {what}"),
            help,
            secondary: vec![],
        }
    }

    fn atom(&mut self) -> PResult {
        let (tok, span) = self.peek();
        match tok.clone() {
            Tok::Num(v) => {
                self.bump();
                Ok((
                    Expr {
                        kind: ExprKind::Num(v),
                        span,
                    },
                    1,
                ))
            }
            Tok::Ident(name) if matches!(name.as_str(), "and" | "or") => {
                Err(self.expect_operand_error("an operand"))
            }
            Tok::Ident(name) => {
                self.bump();
                match self.peek().0 {
                    Tok::LParen => self.call(name, span),
                    Tok::LBracket => self.index(name, span),
                    _ => Ok((
                        Expr {
                            kind: ExprKind::Name(name),
                            span,
                        },
                        1,
                    )),
                }
            }
            Tok::LParen => {
                self.bump();
                let (mut e, d) = self.or()?;
                let (close, cspan) = self.peek();
                if *close != Tok::RParen {
                    let mut err = self.expect_operand_error("`)`");
                    err.secondary.push((span, "unclosed `(`".into()));
                    return Err(err);
                }
                let _ = cspan;
                self.bump();
                // The parenthesised expression keeps its own kind; widen the
                // span so diagnostics underline the parentheses too.
                e.span = span.to(cspan);
                Ok((e, d))
            }
            _ => Err(self.expect_operand_error("an expression")),
        }
    }

    fn call(&mut self, name: String, name_span: Span) -> PResult {
        let (_, open) = self.bump();
        let mut args = Vec::new();
        let mut depth = 1;
        if *self.peek().0 != Tok::RParen {
            loop {
                let (a, d) = self.or()?;
                depth = depth.max(d + 1);
                args.push(a);
                match self.peek().0 {
                    Tok::Comma => {
                        self.bump();
                    }
                    Tok::RParen => break,
                    _ => {
                        let mut err = self.expect_operand_error("`,` or `)`");
                        err.secondary
                            .push((open, format!("arguments of `{name}` start here")));
                        return Err(err);
                    }
                }
            }
        }
        let (_, close) = self.bump();
        if depth > MAX_DEPTH {
            return Err(too_deep(name_span.to(close)));
        }
        Ok((
            Expr {
                kind: ExprKind::Call {
                    name,
                    name_span,
                    args,
                },
                span: name_span.to(close),
            },
            depth,
        ))
    }

    fn index(&mut self, name: String, name_span: Span) -> PResult {
        let (_, open) = self.bump();
        let mut world = Vec::new();
        loop {
            let (tok, span) = self.peek();
            match tok.clone() {
                Tok::Ident(w) => {
                    self.bump();
                    world.push((w, span));
                }
                _ => {
                    let mut err = self.expect_operand_error("a world name");
                    err.secondary
                        .push((open, format!("world of `{name}` starts here")));
                    return Err(err);
                }
            }
            match self.peek().0 {
                Tok::Plus => {
                    self.bump();
                }
                Tok::RBracket => break,
                _ => {
                    let mut err = self.expect_operand_error("`+` or `]`");
                    err.secondary
                        .push((open, format!("world of `{name}` starts here")));
                    return Err(err);
                }
            }
        }
        let (_, close) = self.bump();
        Ok((
            Expr {
                kind: ExprKind::Index {
                    name,
                    name_span,
                    world,
                },
                span: name_span.to(close),
            },
            1,
        ))
    }
}
