//! Resolution of `[data]`: which column holds which node.
//!
//! Every observed (non-latent) node gets a column: the explicit mapping in
//! `columns = { node = "column" }`, else the node's own name. A latent node
//! with an explicit column is a contradiction (it is never observed) and so
//! are two nodes on one column. Whether the columns exist is a question
//! about the file, answered by `whatif-data` when it reads it.

use std::collections::HashMap;

use crate::diag::{Code, Diagnostic, did_you_mean};
use crate::model::{DataColumn, DataSpec, Node, NodeId, Span};
use crate::parse::DataDecl;

/// Validates `[data]` against the resolved nodes; pushes diagnostics and
/// returns `None` when the section cannot be used.
pub(crate) fn resolve_data(
    d: &DataDecl,
    nodes: &[Node],
    diags: &mut Vec<Diagnostic>,
) -> Option<DataSpec> {
    let n_before = diags.len();
    let mut explicit: HashMap<NodeId, (String, Span)> = HashMap::new();
    for (node, (col, span)) in &d.columns {
        let Some(i) = nodes.iter().position(|n| n.name == node.name) else {
            diags.push(
                Diagnostic::new(
                    Code::UnknownName,
                    node.span,
                    format!("`[data] columns` maps unknown node `{}`", node.name),
                    "not a node",
                )
                .with_opt_help(did_you_mean(
                    &node.name,
                    nodes.iter().map(|n| n.name.as_str()),
                )),
            );
            continue;
        };
        if nodes[i].latent {
            diags.push(
                Diagnostic::new(
                    Code::DataMapping,
                    node.span,
                    format!("latent node `{}` has a data column `{col}`", node.name),
                    "latent node",
                )
                .with_secondary(nodes[i].span, "declared latent here")
                .with_help(
                    "a latent node is never observed: drop the mapping or make the node observed",
                ),
            );
            continue;
        }
        explicit.insert(NodeId(i as u32), (col.clone(), *span));
    }
    let mut columns = Vec::new();
    let mut used: HashMap<String, (NodeId, Span)> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        let id = NodeId(i as u32);
        if n.latent {
            continue;
        }
        let (column, span) = match explicit.get(&id) {
            Some((c, s)) => (c.clone(), Some(*s)),
            None => (n.name.clone(), None),
        };
        let at = span.unwrap_or(n.span);
        if let Some((other, other_at)) = used.get(&column) {
            diags.push(
                Diagnostic::new(
                    Code::DataMapping,
                    at,
                    format!(
                        "nodes `{}` and `{}` both read column `{column}`",
                        nodes[other.index()].name,
                        n.name
                    ),
                    "second use of the column",
                )
                .with_secondary(*other_at, "first use")
                .with_help("map each observed node to its own column"),
            );
            continue;
        }
        used.insert(column.clone(), (id, at));
        columns.push(DataColumn {
            node: id,
            column,
            span,
        });
    }
    if diags.len() > n_before {
        return None;
    }
    let (path, path_span) = d.path.clone()?;
    Some(DataSpec {
        path,
        path_span,
        period: d.period.clone(),
        unit: d.unit.clone(),
        columns,
        span: d.span,
    })
}

#[cfg(test)]
mod tests {
    use crate::{ExprKind, compile, parse_expr};

    #[test]
    fn fitted_params_resolve_in_source_order_and_round_trip() {
        let m = compile(
            "[params]\nk = 2\n[nodes]\nx = \"normal(0, 1)\"\ny = \"?b * x + ?a + k + normal(0, ?s)\"\n\
             [data]\npath = \"d.csv\"\ncolumns = { y = \"outcome\" }\n",
        )
        .expect("compiles");
        let names: Vec<(&str, bool)> = m
            .params
            .iter()
            .map(|p| (p.name.as_str(), p.is_fitted()))
            .collect();
        assert_eq!(
            names,
            [("k", false), ("?b", true), ("?a", true), ("?s", true)]
        );
        assert!(m.params[1].value.is_nan());
        let y = &m.nodes[1];
        assert!(matches!(y.expr.kind, ExprKind::Binary { .. }));
        let e = parse_expr("?b * x + ?a").expect("parses");
        assert_eq!(e.to_string(), "?b * x + ?a");
        let d = m.data.as_ref().expect("[data]");
        let cols: Vec<&str> = d.columns.iter().map(|c| c.column.as_str()).collect();
        assert_eq!(cols, ["x", "outcome"]);
        assert!(d.columns[0].span.is_none() && d.columns[1].span.is_some());
    }
}
