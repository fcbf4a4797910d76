//! A deterministic text dump of a Program (`whatif check --dump-ir`),
//! golden-tested. Constants print with Rust's shortest round-trip float
//! formatting; nothing depends on hash order, addresses or time.

use crate::program::{Op, OutputRole, Program};
use std::fmt::Write;

/// Render `p` as text.
pub fn dump(p: &Program) -> String {
    let mut s = String::new();
    let (shared, per_world) = p.op_counts();
    let _ = writeln!(
        s,
        "program: {} worlds, {} ops ({} shared, {} per-world), {} draws, seed {}",
        p.worlds.len(),
        p.ops.len(),
        shared,
        per_world,
        p.n_draws(),
        p.seed
    );
    if let Some(u) = &p.units {
        let _ = writeln!(s, "units: {} ({})", u.count, u.names.join(", "));
    }
    if p.periods > 1 {
        let _ = writeln!(s, "periods: {}", p.periods);
    }
    let _ = writeln!(s, "worlds:");
    for (i, w) in p.worlds.iter().enumerate() {
        let _ = writeln!(s, "  w{i} {w}");
    }
    if !p.params.is_empty() {
        let _ = writeln!(s, "params:");
        for (i, q) in p.params.iter().enumerate() {
            match q.world {
                Some(w) => {
                    let _ = writeln!(s, "  ${i} {} = {:?} [w{w}]", q.name, q.value);
                }
                None => {
                    let _ = writeln!(s, "  ${i} {} = {:?}", q.name, q.value);
                }
            }
        }
    }
    let _ = writeln!(s, "ops:");
    for (i, op) in p.ops.iter().enumerate() {
        let tag = match p.op_world[i] {
            Some(w) => format!("[w{w}]"),
            None => String::new(),
        };
        let _ = writeln!(s, "  {:<6}{:<6}= {}", format!("%{i}"), tag, op_text(op));
    }
    let _ = writeln!(s, "outputs:");
    for o in &p.outputs {
        let what = match &o.role {
            OutputRole::MetricArg { metric, arg } => {
                format!("metric {} arg {}", p.metric_names[*metric as usize], arg)
            }
            OutputRole::Path { node, period } => format!("path node {node} period {period}"),
            OutputRole::Node { node } => format!("node {node}"),
            OutputRole::Guardrail { guardrail } => {
                format!("guardrail {}", p.guardrail_names[*guardrail as usize])
            }
        };
        let _ = writeln!(s, "  w{} {} = {}", o.world, what, o.value);
    }
    let _ = writeln!(s, "probes:");
    for pr in &p.probes {
        let ws: Vec<String> = pr.worlds.iter().map(|w| format!("w{w}")).collect();
        let _ = writeln!(s, "  {} [{}] = {}", pr.node, ws.join(" "), pr.value);
    }
    s
}

fn op_text(op: &Op) -> String {
    match op {
        Op::Const(x) => format!("const {x:?}"),
        Op::Param(k) => format!("param ${k}"),
        Op::Draw {
            dist,
            site,
            args,
            period,
            unit,
        } => {
            let a: Vec<String> = args.iter().map(|v| v.to_string()).collect();
            let mut t = format!("draw {} site={site:#010x} ({})", dist.name(), a.join(", "));
            if *period != 0 {
                let _ = write!(t, " period={period}");
            }
            if *unit {
                t.push_str(" unit");
            }
            t
        }
        Op::Covariate(c) => format!("covariate {c}"),
        Op::Input(c) => format!("input {c}"),
        Op::UnitAgg(agg, a) => format!("{} {a}", agg.name()),
        Op::Unary(u, a) => format!("{} {a}", u.name()),
        Op::Binary(b, x, y) => format!("{} {x}, {y}", b.name()),
        Op::Select(c, a, b) => format!("select {c}, {a}, {b}"),
    }
}
