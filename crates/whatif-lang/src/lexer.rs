//! The expression lexer: decoded string text in, tokens with spans out.

use crate::model::Span;

/// One token of the expression language.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Num(f64),
    Ident(String),
    Plus,
    Minus,
    Star,
    Slash,
    Caret,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Lt,
    Le,
    Gt,
    Ge,
    EqEq,
    Ne,
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Num(v) => format!("number `{v}`"),
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Plus => "`+`".into(),
            Tok::Minus => "`-`".into(),
            Tok::Star => "`*`".into(),
            Tok::Slash => "`/`".into(),
            Tok::Caret => "`^`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Lt => "`<`".into(),
            Tok::Le => "`<=`".into(),
            Tok::Gt => "`>`".into(),
            Tok::Ge => "`>=`".into(),
            Tok::EqEq => "`==`".into(),
            Tok::Ne => "`!=`".into(),
            Tok::Eof => "end of expression".into(),
        }
    }
}

/// A lexing error: message, span (in the decoded string) and an optional help.
#[derive(Debug, Clone, PartialEq)]
pub struct LexError {
    pub message: String,
    pub span: Span,
    pub help: Option<String>,
}

/// Splits `text` into tokens; the last token is always [`Tok::Eof`].
pub fn lex(text: &str) -> Result<Vec<(Tok, Span)>, LexError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            i = lex_number(bytes, i);
            let raw = &text[start..i];
            let span = Span::new(start, i);
            if raw.ends_with('_') || raw.contains("__") || raw.contains("_.") || raw.contains("._")
            {
                return Err(LexError {
                    message: format!("invalid number `{raw}`"),
                    span,
                    help: Some("underscores may only separate digits (`1_000`)".into()),
                });
            }
            let cleaned: String = raw.chars().filter(|&c| c != '_').collect();
            match cleaned.parse::<f64>() {
                Ok(v) if v.is_finite() => out.push((Tok::Num(v), span)),
                Ok(_) => {
                    return Err(LexError {
                        message: format!("number `{raw}` is out of range"),
                        span,
                        help: Some("numbers must fit in a finite 64-bit float".into()),
                    });
                }
                Err(_) => {
                    return Err(LexError {
                        message: format!("invalid number `{raw}`"),
                        span,
                        help: None,
                    });
                }
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push((Tok::Ident(text[start..i].to_string()), Span::new(start, i)));
            continue;
        }
        if c == b'?' {
            // `?name`: a parameter that `whatif fit` estimates from data. It
            // lexes as one identifier (`?` included), so the parser needs no
            // new form and the printer round-trips it; resolve gives it
            // meaning.
            i += 1;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let name = &text[start + 1..i];
            if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                return Err(LexError {
                    message: "`?` must be followed by a parameter name".into(),
                    span: Span::new(start, i.max(start + 1)),
                    help: Some("a fitted parameter is written `?name`, e.g. `?slope`".into()),
                });
            }
            out.push((Tok::Ident(text[start..i].to_string()), Span::new(start, i)));
            continue;
        }
        let two = bytes.get(i + 1).copied();
        let (tok, len) = match (c, two) {
            (b'<', Some(b'=')) => (Tok::Le, 2),
            (b'>', Some(b'=')) => (Tok::Ge, 2),
            (b'=', Some(b'=')) => (Tok::EqEq, 2),
            (b'!', Some(b'=')) => (Tok::Ne, 2),
            (b'+', _) => (Tok::Plus, 1),
            (b'-', _) => (Tok::Minus, 1),
            (b'*', Some(b'*')) => {
                return Err(LexError {
                    message: "unexpected `**`".into(),
                    span: Span::new(i, i + 2),
                    help: Some("powers are written `x ^ y`".into()),
                });
            }
            (b'*', _) => (Tok::Star, 1),
            (b'/', _) => (Tok::Slash, 1),
            (b'^', _) => (Tok::Caret, 1),
            (b'(', _) => (Tok::LParen, 1),
            (b')', _) => (Tok::RParen, 1),
            (b'[', _) => (Tok::LBracket, 1),
            (b']', _) => (Tok::RBracket, 1),
            (b',', _) => (Tok::Comma, 1),
            (b'<', _) => (Tok::Lt, 1),
            (b'>', _) => (Tok::Gt, 1),
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                let span = Span::new(i, i + ch.len_utf8());
                let help = match (c, two) {
                    (b'=', _) => Some("comparison is written `==`".to_string()),
                    (b'&', _) => Some("logical and is written `and`".to_string()),
                    (b'|', _) => Some("logical or is written `or`".to_string()),
                    (b'!', _) => Some("negation is written `not`".to_string()),
                    _ => None,
                };
                return Err(LexError {
                    message: format!("unexpected character `{ch}`"),
                    span,
                    help,
                });
            }
        };
        out.push((tok, Span::new(i, i + len)));
        i += len;
    }
    out.push((Tok::Eof, Span::new(bytes.len(), bytes.len())));
    Ok(out)
}

/// Scans `digits[_digits][.digits][e[+-]digits]` from `i`; returns the end.
fn lex_number(b: &[u8], mut i: usize) -> usize {
    let digits = |b: &[u8], mut i: usize| {
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
        i
    };
    i = digits(b, i);
    if i < b.len() && b[i] == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i = digits(b, i + 1);
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            i = digits(b, j);
        }
    }
    i
}
