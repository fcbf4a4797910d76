//! The untyped expression syntax tree, as written in a TOML string, and its
//! printer.
//!
//! Spans here are byte offsets into the *decoded* string value (the text the
//! expression parser saw); [`crate::parse::Src::span_of`] maps them back to
//! the scenario file. The printer emits the fewest parentheses that re-parse
//! to the same tree (the round-trip property test relies on it).

use std::fmt;

use crate::model::{BinOp, Span};

/// An untyped expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    /// Span in the decoded string.
    pub span: Span,
}

/// Expression forms before name resolution.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A finite, non-negative literal (`1_000`, `2.5e-3`).
    Num(f64),
    /// A bare identifier: a node, param, metric or (in checks) an edit.
    Name(String),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `name(args)`, including `if(c, a, b)`, distributions and aggregates.
    Call {
        name: String,
        name_span: Span,
        args: Vec<Expr>,
    },
    /// `metric[world]` in checks; `world` is `baseline` or edits joined by `+`.
    Index {
        name: String,
        name_span: Span,
        world: Vec<(String, Span)>,
    },
}

impl Expr {
    /// A node with a zero span (for building trees by hand and in tests).
    pub fn new(kind: ExprKind) -> Self {
        Expr {
            kind,
            span: Span::default(),
        }
    }

    /// The same tree with every span zeroed: compares shapes, not positions.
    pub fn without_spans(&self) -> Expr {
        let z = Span::default();
        let kind = match &self.kind {
            ExprKind::Num(v) => ExprKind::Num(*v),
            ExprKind::Name(n) => ExprKind::Name(n.clone()),
            ExprKind::Neg(e) => ExprKind::Neg(Box::new(e.without_spans())),
            ExprKind::Not(e) => ExprKind::Not(Box::new(e.without_spans())),
            ExprKind::Binary { op, lhs, rhs } => ExprKind::Binary {
                op: *op,
                lhs: Box::new(lhs.without_spans()),
                rhs: Box::new(rhs.without_spans()),
            },
            ExprKind::Call { name, args, .. } => ExprKind::Call {
                name: name.clone(),
                name_span: z,
                args: args.iter().map(Expr::without_spans).collect(),
            },
            ExprKind::Index { name, world, .. } => ExprKind::Index {
                name: name.clone(),
                name_span: z,
                world: world.iter().map(|(w, _)| (w.clone(), z)).collect(),
            },
        };
        Expr { kind, span: z }
    }
}

/// Binding strength used by the parser and the printer (higher binds tighter).
pub(crate) mod prec {
    pub const OR: u8 = 1;
    pub const AND: u8 = 2;
    pub const NOT: u8 = 3;
    pub const CMP: u8 = 4;
    pub const ADD: u8 = 5;
    pub const MUL: u8 = 6;
    pub const NEG: u8 = 7;
    pub const POW: u8 = 8;
    pub const ATOM: u8 = 9;
}

pub(crate) fn binop_prec(op: BinOp) -> u8 {
    match op {
        BinOp::Or => prec::OR,
        BinOp::And => prec::AND,
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne => prec::CMP,
        BinOp::Add | BinOp::Sub => prec::ADD,
        BinOp::Mul | BinOp::Div => prec::MUL,
        BinOp::Pow => prec::POW,
    }
}

fn expr_prec(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Binary { op, .. } => binop_prec(*op),
        ExprKind::Neg(_) => prec::NEG,
        ExprKind::Not(_) => prec::NOT,
        _ => prec::ATOM,
    }
}

fn write_at(f: &mut fmt::Formatter<'_>, e: &Expr, min: u8) -> fmt::Result {
    if expr_prec(e) < min {
        write!(f, "({e})")
    } else {
        write!(f, "{e}")
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            // `{}` on f64 prints the shortest text that parses back exactly.
            ExprKind::Num(v) => write!(f, "{v}"),
            ExprKind::Name(n) => f.write_str(n),
            ExprKind::Neg(e) => {
                f.write_str("-")?;
                write_at(f, e, prec::NEG)
            }
            ExprKind::Not(e) => {
                f.write_str("not ")?;
                write_at(f, e, prec::NOT)
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let p = binop_prec(*op);
                // Left-associative operators accept an equal-precedence left
                // operand; `^` is right-associative (its left operand must be
                // an atom, its right operand may be a unary minus or another
                // power); comparisons do not chain.
                let (lmin, rmin) = match op {
                    BinOp::Pow => (prec::ATOM, prec::NEG),
                    _ if p == prec::CMP => (p + 1, p + 1),
                    _ => (p, p + 1),
                };
                write_at(f, lhs, lmin)?;
                if *op == BinOp::Pow {
                    f.write_str("^")?;
                } else {
                    write!(f, " {} ", op.symbol())?;
                }
                write_at(f, rhs, rmin)
            }
            ExprKind::Call { name, args, .. } => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            ExprKind::Index { name, world, .. } => {
                write!(f, "{name}[")?;
                for (i, (w, _)) in world.iter().enumerate() {
                    if i > 0 {
                        f.write_str("+")?;
                    }
                    f.write_str(w)?;
                }
                f.write_str("]")
            }
        }
    }
}
