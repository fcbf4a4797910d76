//! The verifier: the invariants every pass must keep and every backend may
//! rely on. A program that passes is wrapped in a [`VerifiedProgram`].
//!
//! Invariants:
//! - `op_world.len() == ops.len()`; world indices are `< worlds.len()`;
//!   `worlds[0] == "baseline"`.
//! - SSA order: every operand of op `i` is a value `< i`.
//! - Scoping: a shared op (`None`) only reads shared ops; an op of world `w`
//!   reads shared ops or ops of world `w`.
//! - `Draw` has exactly `dist.arity()` operands; `Param(k)` has `k < params.len()`.
//! - Outputs and probes name existing values that are visible in their
//!   world(s), and each output world is in range.
//! - No two `Draw` ops with the same `(site, dist, args)` exist after CSE is
//!   not required, but two draws of the same site within one world must have
//!   the same distribution (they see the same uniforms; anything else means
//!   lowering mixed up site ids).
//! - Units: `Covariate`, unit draws and `UnitAgg` only in a program with
//!   units; covariate indices in range; draw periods `< periods ≤ 2^16`;
//!   outputs and probes are sample-level (see [`crate::structure`]).

use crate::program::{Op, Program, ValueId, VerifiedProgram};
use std::collections::BTreeMap;

/// A broken IR invariant. Always a bug in lowering or a pass, never user error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("IR invariant violated ({invariant}): {detail}")]
pub struct VerifyError {
    pub invariant: &'static str,
    pub detail: String,
}

fn err(invariant: &'static str, detail: String) -> VerifyError {
    VerifyError { invariant, detail }
}

/// Check every invariant listed in the module docs.
pub fn check(p: &Program) -> Result<(), VerifyError> {
    if p.op_world.len() != p.ops.len() {
        return Err(err(
            "op_world length",
            format!("{} ops, {} tags", p.ops.len(), p.op_world.len()),
        ));
    }
    if p.worlds.first().map(String::as_str) != Some("baseline") {
        return Err(err("baseline first", format!("worlds = {:?}", p.worlds)));
    }
    let n_worlds = p.worlds.len() as u32;
    let visible = |user: Option<u32>, def: ValueId| -> bool {
        match (user, p.op_world[def.index()]) {
            (_, None) => true,
            (Some(u), Some(d)) => u == d,
            (None, Some(_)) => false,
        }
    };
    let levels = crate::structure::op_levels(p);
    let n_cov = p.units.as_ref().map_or(0, |u| u.names.len());
    if p.periods == 0 || p.periods > crate::rng::MAX_PERIODS {
        return Err(err("periods", format!("{} periods", p.periods)));
    }
    if let Some(u) = &p.units
        && (u.count == 0
            || u.columns.len() != u.names.len()
            || u.columns.iter().any(|c| c.len() != u.count as usize))
    {
        return Err(err(
            "unit table",
            format!("{} units, {} covariates", u.count, u.names.len()),
        ));
    }
    if let Some(t) = &p.inputs {
        if p.units.is_some() {
            return Err(err(
                "lane inputs",
                "a program with units has no lane inputs".into(),
            ));
        }
        let n = t.lanes();
        if t.columns.len() != t.names.len() || t.columns.iter().any(|c| c.len() != n) {
            return Err(err(
                "lane inputs",
                format!(
                    "{} names, {} columns of unequal length",
                    t.names.len(),
                    t.columns.len()
                ),
            ));
        }
    }
    let mut draw_dist: BTreeMap<(Option<u32>, u32), whatif_lang::Dist> = BTreeMap::new();
    for (i, op) in p.ops.iter().enumerate() {
        let w = p.op_world[i];
        if let Some(w) = w
            && w >= n_worlds
        {
            return Err(err("world index", format!("op %{i} in world {w}")));
        }
        for a in op.operands() {
            if a.index() >= i {
                return Err(err("ssa order", format!("op %{i} reads {a}")));
            }
            if !visible(w, a) {
                return Err(err(
                    "world scoping",
                    format!("op %{i} ({w:?}) reads {a} of another world"),
                ));
            }
        }
        match op {
            Op::Covariate(_) | Op::UnitAgg(..) | Op::Draw { unit: true, .. }
                if p.units.is_none() =>
            {
                return Err(err("units", format!("op %{i} needs units")));
            }
            Op::Input(c)
                if p.inputs
                    .as_ref()
                    .is_none_or(|t| *c as usize >= t.columns.len()) =>
            {
                return Err(err("input", format!("op %{i} reads input {c}")));
            }
            Op::Covariate(c) if *c as usize >= n_cov => {
                return Err(err("covariate", format!("op %{i} reads covariate {c}")));
            }
            Op::Draw { period, .. } if *period >= p.periods => {
                return Err(err("draw period", format!("op %{i} in period {period}")));
            }
            Op::Draw {
                dist, site, args, ..
            } => {
                if args.len() != dist.arity() {
                    return Err(err(
                        "draw arity",
                        format!("op %{i}: {} takes {}", dist.name(), dist.arity()),
                    ));
                }
                if let Some(prev) = draw_dist.insert((w, *site), *dist)
                    && prev != *dist
                {
                    // Different transforms of one site are legal across
                    // worlds (a replacing edit); within a world they are not.
                    return Err(err(
                        "site distribution",
                        format!(
                            "site {site:#010x} drawn as {} and {}",
                            prev.name(),
                            dist.name()
                        ),
                    ));
                }
            }
            Op::Param(k) if *k as usize >= p.params.len() => {
                return Err(err("param slot", format!("op %{i} reads slot {k}")));
            }
            _ => {}
        }
    }
    for o in &p.outputs {
        if o.value.index() >= p.ops.len()
            || o.world >= n_worlds
            || !visible(Some(o.world), o.value)
            || levels[o.value.index()] != crate::structure::OpLevel::Sample
        {
            return Err(err("output", format!("{o:?}")));
        }
    }
    for pr in &p.probes {
        if pr.value.index() >= p.ops.len()
            || pr.worlds.is_empty()
            || levels[pr.value.index()] != crate::structure::OpLevel::Sample
        {
            return Err(err("probe", format!("{pr:?}")));
        }
        for &w in &pr.worlds {
            if w >= n_worlds || !visible(Some(w), pr.value) {
                return Err(err("probe world", format!("{pr:?}")));
            }
        }
    }
    Ok(())
}

/// Verify and wrap.
pub fn verify(p: Program) -> Result<VerifiedProgram, VerifyError> {
    check(&p)?;
    Ok(VerifiedProgram(p))
}
