//! The unit dimension of a program: which ops are unit-level, and the
//! schedule backends follow to evaluate them.
//!
//! A program stays one flat SSA list. An op is *unit-level* when it is a
//! covariate, a unit draw, or reads a unit-level value other than through
//! [`Op::UnitAgg`]; everything else is sample-level. Backends run a
//! [`Schedule`]: runs of sample-level ops, and unit loops that evaluate a
//! set of unit-level ops once per unit and fold them into aggregates.
//!
//! Stages: an aggregate's value exists only after its loop, and a unit op
//! may read a sample op that reads an earlier aggregate (a portfolio that
//! reacts to last quarter's total), so ops are grouped by *stage*: the
//! number of aggregates on the longest path into them. Loop `k` evaluates
//! every unit op its aggregates need; unit values are never stored across
//! loops — a unit op needed by two loops is evaluated in both (it is a pure
//! function of sample, unit and its operands, so both give the same lanes).
//! Memory stays (chunk × live values), whatever the unit count.

use crate::program::{Op, Program, ValueId};

/// Where an op is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpLevel {
    Sample,
    Unit,
}

/// The level of every op of `p`.
pub fn op_levels(p: &Program) -> Vec<OpLevel> {
    let mut lv: Vec<OpLevel> = Vec::with_capacity(p.ops.len());
    for op in &p.ops {
        let unit = match op {
            Op::Covariate(_) => true,
            Op::Draw { unit: true, .. } => true,
            Op::UnitAgg(..) => false,
            _ => op.operands().iter().any(|a| lv[a.index()] == OpLevel::Unit),
        };
        lv.push(if unit { OpLevel::Unit } else { OpLevel::Sample });
    }
    lv
}

/// One step of a [`Schedule`].
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Sample-level ops, in program order.
    Ops(Vec<ValueId>),
    /// For every unit: evaluate `body` (unit-level ops, program order), then
    /// fold each aggregate's operand into it. `aggs` are [`Op::UnitAgg`] ops.
    Units {
        body: Vec<ValueId>,
        aggs: Vec<ValueId>,
    },
}

/// The order in which a backend evaluates a program with units.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub steps: Vec<Step>,
    pub levels: Vec<OpLevel>,
}

impl Schedule {
    /// Whether the program has any unit loop.
    pub fn has_units(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Step::Units { .. }))
    }
}

/// Build the schedule of `p`. Unit-level ops no aggregate reads are dropped
/// (they cannot reach an output: outputs are sample-level, see `verify`).
pub fn schedule(p: &Program) -> Schedule {
    let levels = op_levels(p);
    let n = p.ops.len();
    // stage(op): aggregates on the longest path into it.
    let mut stage = vec![0u32; n];
    for (i, op) in p.ops.iter().enumerate() {
        let s = op
            .operands()
            .iter()
            .map(|a| stage[a.index()])
            .max()
            .unwrap_or(0);
        stage[i] = if matches!(op, Op::UnitAgg(..)) {
            s + 1
        } else {
            s
        };
    }
    let max_stage = stage.iter().copied().max().unwrap_or(0);
    let mut steps = Vec::new();
    for k in 0..=max_stage {
        let ops: Vec<ValueId> = (0..n)
            .filter(|&i| levels[i] == OpLevel::Sample && stage[i] == k)
            // Aggregates are produced by the loop that follows the sample
            // ops of the stage before theirs, not listed in `Ops`.
            .filter(|&i| !matches!(p.ops[i], Op::UnitAgg(..)))
            .map(|i| ValueId(i as u32))
            .collect();
        if !ops.is_empty() {
            steps.push(Step::Ops(ops));
        }
        let aggs: Vec<ValueId> = (0..n)
            .filter(|&i| matches!(p.ops[i], Op::UnitAgg(..)) && stage[i] == k + 1)
            .map(|i| ValueId(i as u32))
            .collect();
        if aggs.is_empty() {
            continue;
        }
        // The unit ops the aggregates need (transitively, through unit ops).
        let mut need = vec![false; n];
        let mut stack: Vec<ValueId> = aggs
            .iter()
            .flat_map(|a| p.ops[a.index()].operands())
            .collect();
        while let Some(v) = stack.pop() {
            let i = v.index();
            if levels[i] != OpLevel::Unit || need[i] {
                continue;
            }
            need[i] = true;
            stack.extend(p.ops[i].operands());
        }
        let body: Vec<ValueId> = (0..n)
            .filter(|&i| need[i])
            .map(|i| ValueId(i as u32))
            .collect();
        steps.push(Step::Units { body, aggs });
    }
    Schedule { steps, levels }
}
