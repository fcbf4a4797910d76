//! Scenario language front end: TOML scenario files in, a validated
//! [`CausalModel`] (or a sorted list of diagnostics) out.
//!
//! Pipeline inside this crate: [`parse`] (TOML with spans) → [`expr`]
//! (expression strings to [`ast::Expr`]) → [`resolve`] (names, types, graph,
//! noise sites) → [`CausalModel`]. [`graph`] exports the DAG; [`diag`]
//! renders diagnostics.

pub mod ast;
pub mod data;
pub mod diag;
pub mod expr;
pub mod graph;
pub mod lexer;
pub mod model;
pub mod parse;
pub mod resolve;
pub mod sweep;

pub use diag::{Code, Diagnostic, diagnostics_json, render_diagnostics};
pub use expr::{ParseError, parse_expr};
pub use model::*;

/// Compiles a scenario file's text into a validated model, or returns every
/// diagnostic, sorted by position.
pub fn compile(source: &str) -> Result<CausalModel, Vec<Diagnostic>> {
    let (scenario, mut diags) = parse::parse_scenario(source);
    let model = resolve::resolve(&scenario);
    match model {
        Ok(m) if diags.is_empty() => Ok(m),
        Ok(_) => Err(sorted(diags)),
        Err(more) => {
            diags.extend(more);
            Err(sorted(diags))
        }
    }
}

fn sorted(mut diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diags.sort_by(|a, b| {
        (a.span.start, a.span.end, a.code).cmp(&(b.span.start, b.span.end, b.code))
    });
    diags.dedup();
    diags
}
