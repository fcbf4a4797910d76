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
pub mod structure;
pub mod sweep;

pub use diag::{Code, Diagnostic, diagnostics_json, render_diagnostics};
pub use expr::{ParseError, parse_expr};
pub use model::*;

/// Compiles a scenario file's text into a validated model, or returns every
/// diagnostic, sorted by position.
pub fn compile(source: &str) -> Result<CausalModel, Vec<Diagnostic>> {
    compile_at(source, None)
}

/// [`compile`] for a scenario file in `base_dir`: files it names (`[units]
/// path`) are read relative to that directory (the current directory when
/// `None`).
pub fn compile_at(
    source: &str,
    base_dir: Option<&std::path::Path>,
) -> Result<CausalModel, Vec<Diagnostic>> {
    compile_with(source, base_dir, None)
}

/// [`compile_at`], with `units` standing in for the scenario's `[units]`
/// (count and covariate names must be what the scenario declares; the
/// values are not read from the unit file).
pub fn compile_with(
    source: &str,
    base_dir: Option<&std::path::Path>,
    units: Option<Units>,
) -> Result<CausalModel, Vec<Diagnostic>> {
    compile_full(source, base_dir, units, None)
}

/// [`compile_with`], with `periods` as the count of a `[periods]` section
/// that has no `count` (the caller read it from the data's period column:
/// see [`periods_from_data`]). Ignored when the scenario gives a `count`.
pub fn compile_full(
    source: &str,
    base_dir: Option<&std::path::Path>,
    units: Option<Units>,
    periods: Option<u32>,
) -> Result<CausalModel, Vec<Diagnostic>> {
    let (mut scenario, mut diags) = parse::parse_scenario(source);
    scenario.base_dir = base_dir.map(std::path::Path::to_path_buf);
    scenario.units_override = units;
    scenario.periods_override = periods;
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

/// The data file and period column a scenario takes its period count
/// from: `Some((path as written, column))` when `[periods]` has no `count`
/// and `[data]` names a `period` column. The caller reads the column (the
/// largest period number + 1 is the count) and passes it to
/// [`compile_full`].
pub fn periods_from_data(source: &str) -> Option<(String, String)> {
    let (sc, _) = parse::parse_scenario(source);
    if sc.periods_span.is_none() || sc.periods.is_some() {
        return None;
    }
    let d = sc.data.as_ref()?;
    Some((d.path.as_ref()?.0.clone(), d.period.as_ref()?.0.clone()))
}

fn sorted(mut diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diags.sort_by(|a, b| {
        (a.span.start, a.span.end, a.code).cmp(&(b.span.start, b.span.end, b.code))
    });
    diags.dedup();
    diags
}
