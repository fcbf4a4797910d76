//! The causal DAG drawn as SVG: a layered (Sugiyama-style) layout, left to
//! right, with edited nodes highlighted and latent nodes dashed.
//!
//! Steps, each simple and deterministic (no hashing, ties broken by node
//! index):
//! 1. layers by longest path from the roots, so every edge points right;
//! 2. edges spanning several layers get dummy points, one per layer crossed,
//!    so they route between nodes instead of through them;
//! 3. order within layers by barycentre sweeps (down, up, repeated), keeping
//!    the ordering with the fewest crossings;
//! 4. vertical positions relaxed toward neighbours' mean with a minimum gap,
//!    so edges straighten without reordering;
//! 5. edges as cubic curves with horizontal tangents through their dummy
//!    points, ending in an arrowhead.
//!
//! The drawer works on [`DagInput`], a plain struct, so it can be tested
//! without a compiled model; [`DagInput::from_model`] adapts a
//! [`CausalModel`].

use std::fmt::Write as _;

use whatif_lang::{CausalModel, Expr, ExprKind, Mechanism, NodeId, WorldId};

use crate::charts::svg::{Svg, esc, n, text_width};
use crate::charts::{INK, MUTED};

/// A node to draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagNode {
    pub name: String,
    /// Never observed (an unobserved confounder): dashed outline.
    pub latent: bool,
    /// Its mechanism is replaced in the world drawn (or in any world).
    pub edited: bool,
    /// Every edit of it is a constant (a hard `do`), cutting its parents.
    pub hard: bool,
    /// Tooltip, e.g. which worlds edit the node.
    pub note: Option<String>,
}

/// A graph to draw: nodes and directed edges `(from, to)` by node index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DagInput {
    pub nodes: Vec<DagNode>,
    pub edges: Vec<(usize, usize)>,
}

impl DagInput {
    /// The model's graph. With `world = None`: the baseline graph, marking
    /// every node that some evaluated world edits (hard when all of its edits
    /// are constants). With `Some(world)`: that world's graph (edited nodes
    /// take the edit's parents, and keep the baseline's when the edit reads
    /// the node's own natural value).
    pub fn from_model(model: &CausalModel, world: Option<WorldId>) -> DagInput {
        let mut nodes: Vec<DagNode> = model
            .nodes
            .iter()
            .map(|nd| DagNode {
                name: nd.name.clone(),
                latent: nd.latent,
                edited: false,
                hard: false,
                note: nd.doc.clone(),
            })
            .collect();
        let mut edges = Vec::new();
        match world {
            None => {
                for (i, nd) in model.nodes.iter().enumerate() {
                    edges.extend(nd.parents.iter().map(|p| (p.index(), i)));
                    let mut by: Vec<&str> = Vec::new();
                    let mut all_hard = true;
                    for (w, world) in model.worlds.iter().enumerate().skip(1) {
                        if let Mechanism::Edited { node_edit, .. } =
                            model.mechanism(WorldId(w as u32), NodeId(i as u32))
                        {
                            by.push(&world.name);
                            all_hard &= is_constant(&node_edit.expr);
                        }
                    }
                    if !by.is_empty() {
                        nodes[i].edited = true;
                        nodes[i].hard = all_hard;
                        nodes[i].note = Some(format!("edited in: {}", by.join(", ")));
                    }
                }
            }
            Some(w) => {
                for (i, nd) in model.nodes.iter().enumerate() {
                    match model.mechanism(w, NodeId(i as u32)) {
                        Mechanism::Natural(_) => {
                            edges.extend(nd.parents.iter().map(|p| (p.index(), i)))
                        }
                        Mechanism::Edited { node_edit, edit } => {
                            let mut ps: Vec<usize> =
                                node_edit.parents.iter().map(|p| p.index()).collect();
                            if node_edit.reads_self {
                                ps.extend(nd.parents.iter().map(|p| p.index()));
                            }
                            ps.sort_unstable();
                            ps.dedup();
                            edges.extend(ps.into_iter().filter(|&p| p != i).map(|p| (p, i)));
                            nodes[i].edited = true;
                            nodes[i].hard = is_constant(&node_edit.expr);
                            nodes[i].note =
                                Some(format!("edited by {}", model.edits[edit.index()].name));
                        }
                    }
                }
            }
        }
        DagInput { nodes, edges }
    }
}

/// Whether an expression is a constant (reads no node and draws no noise):
/// an edit to a constant is a hard intervention.
fn is_constant(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Num(_) | ExprKind::Param(_) => true,
        ExprKind::Node(_)
        | ExprKind::Natural(_)
        | ExprKind::Draw { .. }
        | ExprKind::Covariate(_)
        | ExprKind::Lag { .. }
        | ExprKind::UnitAgg { .. }
        | ExprKind::Path { .. } => false,
        ExprKind::Neg(a) | ExprKind::Not(a) => is_constant(a),
        ExprKind::Binary { lhs, rhs, .. } => is_constant(lhs) && is_constant(rhs),
        ExprKind::If {
            cond,
            then,
            otherwise,
        } => is_constant(cond) && is_constant(then) && is_constant(otherwise),
        ExprKind::Call { args, .. } => args.iter().all(is_constant),
    }
}

/// Where everything goes: node boxes and edge routes, in px.
#[derive(Debug, Clone, PartialEq)]
pub struct DagLayout {
    /// Layer (column) of each node.
    pub layer: Vec<usize>,
    /// Box of each node: (x, y, width, height), top-left corner.
    pub boxes: Vec<(f64, f64, f64, f64)>,
    /// Each edge's points from the source's right side through its dummy
    /// points to the target's left side, in input edge order.
    pub routes: Vec<Vec<(f64, f64)>>,
    /// The edges drawn, `(from, to)`, parallel to `routes` (self-loops and
    /// edges to unknown nodes dropped).
    pub edges: Vec<(usize, usize)>,
    /// Edge crossings between adjacent layers in the chosen ordering.
    pub crossings: usize,
    pub width: f64,
    pub height: f64,
}

const NODE_H: f64 = 34.0;
const V_GAP: f64 = 18.0;
const H_GAP: f64 = 64.0;
const MARGIN: f64 = 20.0;
const FONT: f64 = 13.0;

/// Lay out the graph. Self-loops and edges to unknown nodes are ignored;
/// nodes on a cycle (which a validated model never has) go to the last layer.
pub fn layout(input: &DagInput) -> DagLayout {
    let nn = input.nodes.len();
    let edges: Vec<(usize, usize)> = input
        .edges
        .iter()
        .copied()
        .filter(|&(a, b)| a != b && a < nn && b < nn)
        .collect();
    // 1. Longest-path layering via Kahn's algorithm in index order.
    let mut indeg = vec![0usize; nn];
    for &(_, b) in &edges {
        indeg[b] += 1;
    }
    let mut layer = vec![0usize; nn];
    let mut done = vec![false; nn];
    let mut ready: Vec<usize> = (0..nn).filter(|&i| indeg[i] == 0).collect();
    while !ready.is_empty() {
        let u = ready.remove(0);
        done[u] = true;
        for &(a, b) in &edges {
            if a == u {
                layer[b] = layer[b].max(layer[u] + 1);
                indeg[b] -= 1;
                if indeg[b] == 0 {
                    let at = ready.partition_point(|&x| x < b);
                    ready.insert(at, b);
                }
            }
        }
    }
    let max_layer = layer.iter().copied().max().unwrap_or(0);
    for i in 0..nn {
        if !done[i] {
            layer[i] = max_layer + 1;
        }
    }
    let n_layers = layer.iter().copied().max().map_or(0, |m| m + 1);

    // 2. Virtual graph: real nodes 0..nn, then one dummy per crossed layer.
    let mut vlayer = layer.clone();
    let mut chains: Vec<Vec<usize>> = Vec::new();
    let mut vedges: Vec<(usize, usize)> = Vec::new();
    for &(a, b) in &edges {
        let mut chain = vec![a];
        if layer[b] > layer[a] {
            for l in layer[a] + 1..layer[b] {
                vlayer.push(l);
                chain.push(vlayer.len() - 1);
            }
        }
        chain.push(b);
        vedges.extend(chain.windows(2).map(|w| (w[0], w[1])));
        chains.push(chain);
    }
    let nv = vlayer.len();
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); nv];
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); nv];
    for &(a, b) in &vedges {
        if vlayer[b] == vlayer[a] + 1 {
            preds[b].push(a);
            succs[a].push(b);
        }
    }

    // 3. Ordering by barycentre sweeps.
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); n_layers];
    for v in 0..nv {
        order[vlayer[v]].push(v);
    }
    let mut best = order.clone();
    let mut best_cross = count_crossings(&order, &succs, nv);
    for it in 0..16 {
        let down = it % 2 == 0;
        let layers: Vec<usize> = if down {
            (1..n_layers).collect()
        } else {
            (0..n_layers.saturating_sub(1)).rev().collect()
        };
        for l in layers {
            let mut pos = vec![f64::NAN; nv];
            let adj_layer = if down { l - 1 } else { l + 1 };
            for (i, &v) in order[adj_layer].iter().enumerate() {
                pos[v] = i as f64;
            }
            let current: Vec<f64> = (0..order[l].len()).map(|i| i as f64).collect();
            let mut keyed: Vec<(f64, usize, usize)> = order[l]
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let nb = if down { &preds[v] } else { &succs[v] };
                    let bc = if nb.is_empty() {
                        current[i]
                    } else {
                        nb.iter().map(|&u| pos[u]).sum::<f64>() / nb.len() as f64
                    };
                    (bc, i, v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            order[l] = keyed.into_iter().map(|k| k.2).collect();
        }
        let c = count_crossings(&order, &succs, nv);
        if c < best_cross {
            best_cross = c;
            best = order.clone();
        }
    }
    let order = best;

    // 4. Coordinates: columns by layer, rows relaxed toward neighbours.
    let widths: Vec<f64> = (0..nv)
        .map(|v| {
            if v < nn {
                text_width(&input.nodes[v].name, FONT) + 30.0
            } else {
                0.0
            }
        })
        .collect();
    let heights: Vec<f64> = (0..nv).map(|v| if v < nn { NODE_H } else { 2.0 }).collect();
    let col_w: Vec<f64> = (0..n_layers)
        .map(|l| order[l].iter().map(|&v| widths[v]).fold(24.0, f64::max))
        .collect();
    let mut col_x = vec![MARGIN; n_layers];
    for l in 1..n_layers {
        col_x[l] = col_x[l - 1] + col_w[l - 1] + H_GAP;
    }
    let gap = |a: usize, b: usize| {
        (heights[a] + heights[b]) / 2.0 + if a < nn && b < nn { V_GAP } else { 8.0 }
    };
    let mut y = vec![0.0f64; nv];
    for layer_nodes in &order {
        let mut acc = 0.0;
        for (i, &v) in layer_nodes.iter().enumerate() {
            if i > 0 {
                acc += gap(layer_nodes[i - 1], v);
            }
            y[v] = acc;
        }
        let mid = acc / 2.0;
        for &v in layer_nodes {
            y[v] -= mid;
        }
    }
    for _ in 0..24 {
        for layer_nodes in &order {
            let desired: Vec<f64> = layer_nodes
                .iter()
                .map(|&v| {
                    let nb: Vec<usize> = preds[v].iter().chain(&succs[v]).copied().collect();
                    if nb.is_empty() {
                        y[v]
                    } else {
                        nb.iter().map(|&u| y[u]).sum::<f64>() / nb.len() as f64
                    }
                })
                .collect();
            // Keep the order and the gaps: forward pass pushes down, then
            // centre the layer on where its nodes want to be.
            let mut placed = desired.clone();
            for i in 1..placed.len() {
                let min = placed[i - 1] + gap(layer_nodes[i - 1], layer_nodes[i]);
                if placed[i] < min {
                    placed[i] = min;
                }
            }
            let shift = (desired.iter().sum::<f64>() - placed.iter().sum::<f64>())
                / placed.len().max(1) as f64;
            for (i, &v) in layer_nodes.iter().enumerate() {
                y[v] = placed[i] + shift;
            }
        }
    }
    let top = (0..nv)
        .map(|v| y[v] - heights[v] / 2.0)
        .fold(f64::INFINITY, f64::min);
    let top = if top.is_finite() { top } else { 0.0 };
    for v in y.iter_mut() {
        *v = *v - top + MARGIN;
    }
    let center_x = |v: usize| col_x[vlayer[v]] + col_w[vlayer[v]] / 2.0;
    let boxes: Vec<(f64, f64, f64, f64)> = (0..nn)
        .map(|v| {
            (
                center_x(v) - widths[v] / 2.0,
                y[v] - NODE_H / 2.0,
                widths[v],
                NODE_H,
            )
        })
        .collect();
    let routes = chains
        .iter()
        .map(|chain| {
            let (a, b) = (chain[0], chain[chain.len() - 1]);
            let mut pts = vec![(boxes[a].0 + boxes[a].2, y[a])];
            pts.extend(
                chain[1..chain.len() - 1]
                    .iter()
                    .map(|&d| (center_x(d), y[d])),
            );
            pts.push((boxes[b].0, y[b]));
            pts
        })
        .collect();
    let width = col_x
        .last()
        .map_or(2.0 * MARGIN, |x| x + col_w[n_layers - 1] + MARGIN);
    let height = (0..nv).map(|v| y[v] + heights[v] / 2.0).fold(0.0, f64::max) + MARGIN;
    DagLayout {
        layer,
        boxes,
        routes,
        edges,
        crossings: best_cross,
        width,
        height,
    }
}

/// Crossings between adjacent layers: pairs of edges whose ends are in
/// opposite order.
fn count_crossings(order: &[Vec<usize>], succs: &[Vec<usize>], nv: usize) -> usize {
    let mut pos = vec![0usize; nv];
    for layer in order {
        for (i, &v) in layer.iter().enumerate() {
            pos[v] = i;
        }
    }
    let mut total = 0;
    for layer in order {
        let es: Vec<(usize, usize)> = layer
            .iter()
            .flat_map(|&a| succs[a].iter().map(move |&b| (a, b)))
            .map(|(a, b)| (pos[a], pos[b]))
            .collect();
        for i in 0..es.len() {
            for j in i + 1..es.len() {
                let (a, b) = (es[i], es[j]);
                if (a.0 < b.0 && a.1 > b.1) || (a.0 > b.0 && a.1 < b.1) {
                    total += 1;
                }
            }
        }
    }
    total
}

/// Fill and stroke of node kinds; the edit colours echo the Okabe–Ito
/// orange and vermillion used for worlds.
const NODE_FILL: &str = "#eef2f7";
const NODE_STROKE: &str = "#5b6b80";
const EDIT_FILL: &str = "#fff1d6";
const EDIT_STROKE: &str = "#e69f00";
const HARD_FILL: &str = "#fde2d4";
const HARD_STROKE: &str = "#d55e00";

/// Draw the graph as an SVG document with a legend. `id_prefix` makes the
/// arrowhead marker's id unique when several SVGs share a page.
pub fn render(input: &DagInput, title: &str, id_prefix: &str) -> String {
    let lay = layout(input);
    let legend_h = 44.0;
    let width = lay.width.max(520.0);
    let height = lay.height + legend_h + 30.0;
    let dx = (width - lay.width) / 2.0;
    let dy = 30.0;
    let mut svg = Svg::new(width, height, title);
    let arrow = format!("{id_prefix}-arrow");
    svg_defs(&mut svg, &arrow);
    svg.text(
        MARGIN,
        20.0,
        "start",
        &format!(r#"fill="{INK}" font-size="14" font-weight="600""#),
        title,
    );
    // Edges first, under the boxes.
    for (k, route) in lay.routes.iter().enumerate() {
        let a = lay.edges[k].0;
        let mut d = format!("M{} {}", n(route[0].0 + dx), n(route[0].1 + dy));
        for w in route.windows(2) {
            let ((x0, y0), (x1, y1)) = (w[0], w[1]);
            let h = (x1 - x0) / 2.0;
            let _ = write!(
                d,
                " C{} {} {} {} {} {}",
                n(x0 + h + dx),
                n(y0 + dy),
                n(x1 - h + dx),
                n(y1 + dy),
                n(x1 + dx - 1.5),
                n(y1 + dy)
            );
        }
        let dash = if input.nodes[a].latent {
            r#" stroke-dasharray="5 4""#
        } else {
            ""
        };
        svg.path(&d, &format!(r##"fill="none" stroke="#8a97a8" stroke-width="1.4"{dash} marker-end="url(#{arrow})""##));
    }
    for (i, node) in input.nodes.iter().enumerate() {
        let (x, y, w, h) = lay.boxes[i];
        let (x, y) = (x + dx, y + dy);
        let (fill, stroke, sw) = match (node.edited, node.hard) {
            (true, true) => (HARD_FILL, HARD_STROKE, 2.2),
            (true, false) => (EDIT_FILL, EDIT_STROKE, 2.2),
            _ => (NODE_FILL, NODE_STROKE, 1.2),
        };
        let (fill, dash) = if node.latent {
            ("#ffffff", r#" stroke-dasharray="5 3""#)
        } else {
            (fill, "")
        };
        let tip = match &node.note {
            Some(note) => format!("{} — {note}", node.name),
            None => node.name.clone(),
        };
        svg.titled_start(&tip);
        svg.rect(
            x,
            y,
            w,
            h,
            &format!(r#"rx="9" fill="{fill}" stroke="{stroke}" stroke-width="{sw}"{dash}"#),
        );
        let style = if node.latent {
            r#" font-style="italic""#
        } else {
            ""
        };
        let weight = if node.edited {
            r#" font-weight="600""#
        } else {
            ""
        };
        svg.text(
            x + w / 2.0,
            y + h / 2.0 + 4.5,
            "middle",
            &format!(r#"fill="{INK}" font-size="{FONT}"{style}{weight}"#),
            &node.name,
        );
        if node.edited && node.hard {
            svg.rect(
                x + w - 22.0,
                y - 8.0,
                26.0,
                15.0,
                &format!(r#"rx="7" fill="{HARD_STROKE}""#),
            );
            svg.text(
                x + w - 9.0,
                y + 3.0,
                "middle",
                r##"fill="#ffffff" font-size="9.5" font-weight="700""##,
                "do",
            );
        }
        svg.group_end();
    }
    // Legend.
    let ly = height - legend_h / 2.0;
    let mut lx = MARGIN;
    for (label, fill, stroke, dash) in [
        ("observed", NODE_FILL, NODE_STROKE, ""),
        (
            "latent (unobserved)",
            "#ffffff",
            NODE_STROKE,
            r#" stroke-dasharray="5 3""#,
        ),
        ("edited (policy or stress)", EDIT_FILL, EDIT_STROKE, ""),
        ("set to a constant (do)", HARD_FILL, HARD_STROKE, ""),
    ] {
        svg.rect(
            lx,
            ly - 9.0,
            22.0,
            14.0,
            &format!(r#"rx="4" fill="{fill}" stroke="{stroke}" stroke-width="1.5"{dash}"#),
        );
        svg.text(
            lx + 28.0,
            ly + 2.5,
            "start",
            &format!(r#"fill="{MUTED}" font-size="11.5""#),
            label,
        );
        lx += 28.0 + text_width(label, 11.5) + 22.0;
    }
    svg.finish()
}

fn svg_defs(svg: &mut Svg, arrow: &str) {
    svg.raw(&format!(
        r##"<defs><marker id="{}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0 0 L10 5 L0 10 Z" fill="#8a97a8"/></marker></defs>"##,
        esc(arrow)
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> DagNode {
        DagNode {
            name: name.into(),
            latent: false,
            edited: false,
            hard: false,
            note: None,
        }
    }

    #[test]
    fn layers_follow_longest_path() {
        // a → b → c and a → c: c sits two layers right of a.
        let g = DagInput {
            nodes: vec![node("a"), node("b"), node("c")],
            edges: vec![(0, 1), (1, 2), (0, 2)],
        };
        let l = layout(&g);
        assert_eq!(l.layer, vec![0, 1, 2]);
        // The long edge gets one dummy point.
        assert_eq!(l.routes[2].len(), 3);
        // Every edge goes left to right.
        for r in &l.routes {
            assert!(r.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }

    #[test]
    fn barycentre_removes_crossings() {
        // Two parallel chains listed in crossing order.
        let g = DagInput {
            nodes: vec![node("a1"), node("a2"), node("b2"), node("b1")],
            edges: vec![(0, 3), (1, 2)],
        };
        assert_eq!(layout(&g).crossings, 0);
    }

    #[test]
    fn boxes_do_not_overlap() {
        let mut nodes: Vec<DagNode> = (0..8).map(|i| node(&format!("n{i}"))).collect();
        nodes.push(node("sink"));
        let edges = (0..8).map(|i| (i, 8)).collect();
        let l = layout(&DagInput { nodes, edges });
        for i in 0..9 {
            for j in i + 1..9 {
                let (a, b) = (l.boxes[i], l.boxes[j]);
                let apart =
                    a.0 + a.2 <= b.0 || b.0 + b.2 <= a.0 || a.1 + a.3 <= b.1 || b.1 + b.3 <= a.1;
                assert!(apart, "{i} and {j} overlap");
            }
        }
    }
}
