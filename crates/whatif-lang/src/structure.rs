//! Structured models: `[units]` (a portfolio on every Monte Carlo path) and
//! `[periods]` (dynamics over time), resolved here so the resolver stays
//! about names and types.
//!
//! The level rule: a node is unit-level when it is declared so, reads a unit
//! covariate, or reads (same-period or through `lag`) a unit-level node,
//! outside a unit aggregate. Everything else is sample-level. A
//! sample-level value reads unit-level ones only through `sum_units`,
//! `mean_units`, `count_units` or `max_units`.

use std::path::Path;

use crate::diag::{Code, Diagnostic};
use crate::model::{Expr, ExprKind, Level, Node, Span, Units};
use crate::parse::UnitsDecl;

/// The most units one sample may carry (the unit index fills one 32-bit
/// Philox counter word; a bound far below keeps run times sane).
pub const MAX_UNITS: i64 = 1 << 24;
/// The most periods (the period fills 16 bits of the Philox key).
pub const MAX_PERIODS: i64 = 4096;

/// Validate `[units]` and read its unit file, if any.
pub(crate) fn load_units(
    decl: &UnitsDecl,
    base: Option<&Path>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Units> {
    let mut err = |span: Span, msg: String, label: &str, help: Option<String>| {
        diags.push(Diagnostic::new(Code::UnitsFile, span, msg, label).with_opt_help(help));
    };
    match (&decl.count, &decl.path) {
        (Some((n, span)), None) => {
            if *n < 1 || *n > MAX_UNITS {
                err(
                    *span,
                    format!("`[units] count` is {n}, but must be between 1 and {MAX_UNITS}"),
                    "out of range",
                    None,
                );
                return None;
            }
            Some(Units {
                count: *n as u32,
                path: None,
                covariates: vec![],
                values: vec![],
                span: decl.span,
            })
        }
        (None, Some((path, span))) => {
            let full = match base {
                Some(b) => b.join(path),
                None => Path::new(path).to_path_buf(),
            };
            let (names, values) = match read_unit_file(&full) {
                Ok(x) => x,
                Err(msg) => {
                    let help = if full.exists() {
                        "one row per unit, a header of covariate names, numbers only"
                    } else {
                        "the path is relative to the scenario file's directory"
                    };
                    err(
                        *span,
                        format!("unit file `{}`: {msg}", full.display()),
                        "cannot use this unit file",
                        Some(help.into()),
                    );
                    return None;
                }
            };
            let count = values.first().map_or(0, Vec::len);
            if count as i64 > MAX_UNITS {
                err(
                    *span,
                    format!("unit file has {count} rows, more than {MAX_UNITS}"),
                    "too many units",
                    None,
                );
                return None;
            }
            Some(Units {
                count: count as u32,
                path: Some(path.clone()),
                covariates: names,
                values,
                span: decl.span,
            })
        }
        (Some((_, span)), Some(_)) => {
            err(
                *span,
                "`[units]` has both `count` and `path`".into(),
                "choose one",
                Some("with `path`, the unit count is the file's row count".into()),
            );
            None
        }
        (None, None) => {
            diags.push(
                Diagnostic::new(
                    Code::MissingKey,
                    decl.span,
                    "[units] has neither `count` nor `path`",
                    "missing `count`",
                )
                .with_help("write `count = 10_000`, or `path = \"portfolio.csv\"`"),
            );
            None
        }
    }
}

/// Header and numeric columns of a unit CSV file; the message of an error
/// names the row (1-based, header excluded), column and value.
fn read_unit_file(path: &Path) -> Result<(Vec<String>, Vec<Vec<f64>>), String> {
    if !path.exists() {
        return Err("not found".into());
    }
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = rd
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if names.is_empty() || names.iter().all(String::is_empty) {
        return Err("no header row".into());
    }
    for n in &names {
        if !crate::parse::is_ident(n) {
            return Err(format!("column `{n}` is not a valid name"));
        }
    }
    let mut values = vec![Vec::new(); names.len()];
    for (row, rec) in rd.records().enumerate() {
        // Data row r is line r + 1 of the file (the header is line 1).
        let at = |r: usize| format!("row {} (line {})", r + 1, r + 2);
        let rec = rec.map_err(|e| format!("{}: {e}", at(row)))?;
        for (c, cell) in rec.iter().enumerate() {
            let v: f64 = cell.trim().parse().map_err(|_| {
                format!(
                    "{}, column `{}`: `{cell}` is not a number",
                    at(row),
                    names[c]
                )
            })?;
            if !v.is_finite() {
                return Err(format!(
                    "{}, column `{}`: `{cell}` is not finite",
                    at(row),
                    names[c]
                ));
            }
            values[c].push(v);
        }
    }
    if values[0].is_empty() {
        return Err("no rows".into());
    }
    Ok((names, values))
}

/// The span of the first unit-level read of `e` outside unit aggregates
/// (a covariate, or a unit-level node, same-period or lagged), if any.
pub fn unit_read(e: &Expr, levels: &[Level]) -> Option<Span> {
    let mut found = None;
    walk_outside_aggs(e, &mut |x| {
        if found.is_some() {
            return;
        }
        let unit = match &x.kind {
            ExprKind::Covariate(_) => true,
            ExprKind::Node(n) | ExprKind::Natural(n) | ExprKind::Lag { node: n, .. } => {
                levels[n.index()] == Level::Unit
            }
            _ => false,
        };
        if unit {
            found = Some(x.span);
        }
    });
    found
}

/// Pre-order walk that does not descend into unit aggregates.
fn walk_outside_aggs(e: &Expr, f: &mut dyn FnMut(&Expr)) {
    f(e);
    match &e.kind {
        ExprKind::UnitAgg { .. } => {}
        ExprKind::Neg(x) | ExprKind::Not(x) | ExprKind::Path { arg: x, .. } => {
            walk_outside_aggs(x, f)
        }
        ExprKind::Binary { lhs, rhs, .. } => {
            walk_outside_aggs(lhs, f);
            walk_outside_aggs(rhs, f);
        }
        ExprKind::If {
            cond,
            then,
            otherwise,
        } => {
            walk_outside_aggs(cond, f);
            walk_outside_aggs(then, f);
            walk_outside_aggs(otherwise, f);
        }
        ExprKind::Call { args, .. } | ExprKind::Draw { args, .. } => {
            args.iter().for_each(|a| walk_outside_aggs(a, f))
        }
        ExprKind::Num(_)
        | ExprKind::Param(_)
        | ExprKind::Node(_)
        | ExprKind::Natural(_)
        | ExprKind::Covariate(_)
        | ExprKind::Lag { .. } => {}
    }
}

/// Levels of all nodes: the least fixed point of the level rule, starting
/// from the declared unit-level nodes.
pub(crate) fn infer_levels(nodes: &[Node], declared_unit: &[bool]) -> Vec<Level> {
    let mut levels: Vec<Level> = declared_unit
        .iter()
        .map(|&u| if u { Level::Unit } else { Level::Sample })
        .collect();
    loop {
        let mut changed = false;
        for (i, n) in nodes.iter().enumerate() {
            if levels[i] == Level::Sample && unit_read(&n.expr, &levels).is_some() {
                levels[i] = Level::Unit;
                changed = true;
            }
        }
        if !changed {
            return levels;
        }
    }
}
