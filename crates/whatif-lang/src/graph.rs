//! DOT and Mermaid export of a model's DAG, for `whatif graph` and reports.
//!
//! For a world, a node whose mechanism is a hard intervention (the edit's
//! expression reads no node and not its own natural value) loses its incoming
//! edges: that is what `do(x = …)` does to the graph. Edited nodes are
//! filled and labelled with the edit's name; latent nodes are dashed. Output
//! is deterministic: nodes in file order, edges sorted. In a structured
//! model, unit-level nodes get a double border (DOT) and a `[unit]` tag, and
//! `lag` reads are dotted edges labelled `lag` (they cross periods, so
//! they may point backwards).

use crate::model::Level;

use std::fmt::Write;

use crate::model::{CausalModel, Mechanism, NodeId, WorldId};

struct View {
    /// (name, latent, Some(edit name) when edited, hard intervention)
    nodes: Vec<(String, bool, Option<String>, bool)>,
    /// (parent, child)
    edges: Vec<(usize, usize)>,
    /// (parent, child) of `lag` reads (baseline mechanisms).
    lag_edges: Vec<(usize, usize)>,
    unit: Vec<bool>,
}

fn view(model: &CausalModel, world: Option<WorldId>) -> View {
    let world = world.filter(|w| w.index() < model.worlds.len());
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for (i, n) in model.nodes.iter().enumerate() {
        let id = NodeId(i as u32);
        let (edit, hard, parents) = match world.map(|w| model.mechanism(w, id)) {
            Some(Mechanism::Edited { edit, node_edit }) => {
                let hard = node_edit.parents.is_empty() && !node_edit.reads_self;
                let mut ps = node_edit.parents.clone();
                if node_edit.reads_self {
                    // The natural value still depends on the baseline parents.
                    ps.extend(n.parents.iter().copied());
                }
                ps.sort();
                ps.dedup();
                (Some(model.edits[edit.index()].name.clone()), hard, ps)
            }
            _ => (None, false, n.parents.clone()),
        };
        for p in parents {
            edges.push((p.index(), i));
        }
        nodes.push((n.name.clone(), n.latent, edit, hard));
    }
    edges.sort();
    let mut lag_edges: Vec<(usize, usize)> = model
        .nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.lag_parents.iter().map(move |p| (p.index(), i)))
        .collect();
    lag_edges.sort();
    let unit = model.nodes.iter().map(|n| n.level == Level::Unit).collect();
    View {
        nodes,
        edges,
        lag_edges,
        unit,
    }
}

/// Graphviz DOT text of the DAG (of `world`, when given).
pub fn to_dot(model: &CausalModel, world: Option<WorldId>) -> String {
    let v = view(model, world);
    let mut out = String::new();
    let title = world
        .and_then(|w| model.worlds.get(w.index()))
        .map(|w| w.name.as_str())
        .unwrap_or("baseline");
    let _ = writeln!(
        out,
        "digraph \"{}\" {{",
        escape(&format!("{} [{title}]", model.name))
    );
    let _ = writeln!(out, "  rankdir=LR;");
    let _ = writeln!(out, "  node [shape=box, fontname=\"Helvetica\"];");
    for (i, (name, latent, edit, hard)) in v.nodes.iter().enumerate() {
        let mut attrs = Vec::new();
        let tag = if v.unit[i] { " [unit]" } else { "" };
        let label = match edit {
            Some(e) if *hard => format!("{name}{tag}\\ndo({e})"),
            Some(e) => format!("{name}{tag}\\nedited by {e}"),
            None => format!("{name}{tag}"),
        };
        if v.unit[i] {
            attrs.push("peripheries=2".to_string());
        }
        attrs.push(format!(
            "label=\"{}\"",
            escape(&label).replace("\\\\n", "\\n")
        ));
        let mut style = Vec::new();
        if *latent {
            style.push("dashed");
        }
        if edit.is_some() {
            style.push("filled");
            attrs.push("fillcolor=\"#ffd27f\"".into());
        }
        if !style.is_empty() {
            attrs.push(format!("style=\"{}\"", style.join(",")));
        }
        let _ = writeln!(out, "  \"{}\" [{}];", escape(name), attrs.join(", "));
    }
    for (p, c) in &v.edges {
        let dashed = if v.nodes[*p].1 { " [style=dashed]" } else { "" };
        let _ = writeln!(
            out,
            "  \"{}\" -> \"{}\"{dashed};",
            escape(&v.nodes[*p].0),
            escape(&v.nodes[*c].0)
        );
    }
    for (p, c) in &v.lag_edges {
        let _ = writeln!(
            out,
            "  \"{}\" -> \"{}\" [style=dotted, label=\"lag\", constraint=false];",
            escape(&v.nodes[*p].0),
            escape(&v.nodes[*c].0)
        );
    }
    out.push_str("}\n");
    out
}

/// Mermaid flowchart text of the DAG (of `world`, when given).
pub fn to_mermaid(model: &CausalModel, world: Option<WorldId>) -> String {
    let v = view(model, world);
    let mut out = String::from("flowchart LR\n");
    for (i, (name, latent, edit, hard)) in v.nodes.iter().enumerate() {
        let tag = if v.unit[i] { " [unit]" } else { "" };
        let label = match edit {
            Some(e) if *hard => format!("{name}{tag}<br/>do({e})"),
            Some(e) => format!("{name}{tag}<br/>edited by {e}"),
            None => format!("{name}{tag}"),
        };
        let _ = writeln!(out, "  {name}[\"{label}\"]");
        if *latent {
            let _ = writeln!(out, "  style {name} stroke-dasharray: 5 5");
        }
        if edit.is_some() {
            let _ = writeln!(out, "  style {name} fill:#ffd27f");
        }
    }
    for (p, c) in &v.edges {
        let arrow = if v.nodes[*p].1 { "-.->" } else { "-->" };
        let _ = writeln!(out, "  {} {arrow} {}", v.nodes[*p].0, v.nodes[*c].0);
    }
    for (p, c) in &v.lag_edges {
        let _ = writeln!(out, "  {} -. lag .-> {}", v.nodes[*p].0, v.nodes[*c].0);
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
