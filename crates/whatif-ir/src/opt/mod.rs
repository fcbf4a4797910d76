//! Optimisation passes, one module each, each switchable.
//!
//! Order: `fold` → `share` → `cse` → `dce`. Every pass keeps the program's
//! meaning exactly (same value for every lane of every output and probe);
//! the verifier runs after each pass in debug builds and tests.

pub mod cse;
pub mod dce;
pub mod fold;
pub mod share;

use crate::program::{Op, Program, ValueId};
use crate::verify;

/// Which passes to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassOptions {
    pub fold: bool,
    pub share: bool,
    pub cse: bool,
    pub dce: bool,
}

impl PassOptions {
    pub const ALL: PassOptions = PassOptions {
        fold: true,
        share: true,
        cse: true,
        dce: true,
    };
    pub const NONE: PassOptions = PassOptions {
        fold: false,
        share: false,
        cse: false,
        dce: false,
    };
}

impl Default for PassOptions {
    fn default() -> Self {
        PassOptions::ALL
    }
}

/// Run the enabled passes, verifying between them in debug builds.
pub fn optimise(mut p: Program, opts: PassOptions) -> Program {
    let step = |p: Program, name: &str, f: fn(Program) -> Program| {
        let out = f(p);
        if cfg!(debug_assertions)
            && let Err(e) = verify::check(&out)
        {
            panic!("after pass {name}: {e}");
        }
        out
    };
    if opts.fold {
        p = step(p, "fold", fold::run);
    }
    if opts.share {
        p = step(p, "share", share::run);
    }
    if opts.cse {
        p = step(p, "cse", cse::run);
    }
    if opts.dce {
        p = step(p, "dce", dce::run);
    }
    p
}

/// What a rewrite decides for one op.
pub(crate) enum Rewrite {
    /// Keep the (operand-remapped) op, in the given world.
    Keep(Op, Option<u32>),
    /// Replace every use by an existing new value.
    Alias(ValueId),
}

/// Rebuild `p` op by op: operands are remapped to the new numbering before
/// `f` sees them. Outputs and probes are remapped; probes that end up on the
/// same (node, value) are merged, keeping world lists sorted.
pub(crate) fn rebuild(
    p: Program,
    mut f: impl FnMut(&Program, Op, Option<u32>) -> Rewrite,
) -> Program {
    let mut out = Program {
        ops: vec![],
        op_world: vec![],
        ..p.clone()
    };
    let mut map: Vec<ValueId> = Vec::with_capacity(p.ops.len());
    for (op, w) in p.ops.into_iter().zip(p.op_world) {
        let mut op = op;
        op.map_operands(|v| map[v.index()]);
        let v = match f(&out, op, w) {
            Rewrite::Keep(op, w) => out.push(op, w),
            Rewrite::Alias(v) => v,
        };
        map.push(v);
    }
    remap_roots(&mut out, &map);
    out
}

pub(crate) fn remap_roots(p: &mut Program, map: &[ValueId]) {
    for o in &mut p.outputs {
        o.value = map[o.value.index()];
    }
    let mut probes: Vec<crate::program::Probe> = vec![];
    for mut pr in std::mem::take(&mut p.probes) {
        pr.value = map[pr.value.index()];
        if let Some(q) = probes
            .iter_mut()
            .find(|q| q.node == pr.node && q.value == pr.value)
        {
            q.worlds.extend(pr.worlds);
            q.worlds.sort_unstable();
            q.worlds.dedup();
        } else {
            probes.push(pr);
        }
    }
    p.probes = probes;
}

/// A hashable identity of an op for value numbering (constants by bits,
/// commutative operands sorted).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum OpKey {
    Const(u64),
    Param(u32),
    Draw(whatif_lang::Dist, u32, Vec<ValueId>, u32, bool),
    Covariate(u32),
    Input(u32),
    UnitAgg(crate::program::UnitAgg, ValueId),
    Unary(crate::program::UnaryOp, ValueId),
    Binary(crate::program::BinaryOp, ValueId, ValueId),
    Select(ValueId, ValueId, ValueId),
}

pub(crate) fn key(op: &Op) -> OpKey {
    match op {
        Op::Const(x) => OpKey::Const(if x.is_nan() {
            f64::NAN.to_bits()
        } else {
            (x + 0.0).to_bits()
        }),
        Op::Param(k) => OpKey::Param(*k),
        Op::Draw {
            dist,
            site,
            args,
            period,
            unit,
        } => OpKey::Draw(*dist, *site, args.clone(), *period, *unit),
        Op::Covariate(c) => OpKey::Covariate(*c),
        Op::Input(c) => OpKey::Input(*c),
        Op::UnitAgg(agg, a) => OpKey::UnitAgg(*agg, *a),
        Op::Unary(u, a) => OpKey::Unary(*u, *a),
        Op::Binary(b, x, y) => {
            let (x, y) = if b.is_commutative() && y < x {
                (*y, *x)
            } else {
                (*x, *y)
            };
            OpKey::Binary(*b, x, y)
        }
        Op::Select(c, a, b) => OpKey::Select(*c, *a, *b),
    }
}
