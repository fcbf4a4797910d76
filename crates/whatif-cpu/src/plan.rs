//! Compiling a verified Program into a CPU plan: instructions over a small
//! set of reusable chunk-sized registers.
//!
//! Constants and parameters never get a buffer: they become scalar operands,
//! so `0.9 * x` is one loop over `x`. Registers are allocated by last use, so
//! the working set is (chunk size × live values), independent of the number
//! of samples or ops.
//!
//! Units: a program with units compiles its [`whatif_ir::structure::Schedule`]
//! into [`Instr::UnitLoop`]s. The unit loop runs *inside* the chunk: for each
//! unit, the body's instructions run over all lanes of the chunk (one
//! vectorised loop each, covariates as scalar operands), then each
//! aggregate folds the body's value into an accumulator register. Memory is
//! (chunk × live values) whatever the unit count.

use whatif_ir::structure::{Step, schedule};
use whatif_ir::{BinaryOp, Dist, Op, UnaryOp, UnitAgg, ValueId, VerifiedProgram};

/// A register index.
pub type Reg = u16;

/// An instruction operand: a chunk register, a scalar broadcast to all
/// lanes, or a covariate of the current unit (a scalar per unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Src {
    R(Reg),
    S(f32),
    C(u16),
}

/// One aggregate of a unit loop: `acc ⊕= src` after every unit.
#[derive(Debug, Clone, PartialEq)]
pub struct AggInstr {
    pub agg: UnitAgg,
    pub src: Src,
    pub acc: Reg,
}

/// One step of a plan; every step writes `dst` for all lanes of a chunk.
#[derive(Debug, Clone, PartialEq)]
pub enum Instr {
    Fill {
        dst: Reg,
        value: f32,
    },
    /// Copy the chunk's lanes of input column `col`.
    Input {
        col: u32,
        dst: Reg,
    },
    Draw {
        dist: Dist,
        site: u32,
        args: Vec<Src>,
        dst: Reg,
        period: u32,
        /// Per unit: the unit index goes into the Philox counter.
        unit: bool,
    },
    Unary {
        op: UnaryOp,
        a: Src,
        dst: Reg,
    },
    Binary {
        op: BinaryOp,
        a: Src,
        b: Src,
        dst: Reg,
    },
    Select {
        c: Src,
        a: Src,
        b: Src,
        dst: Reg,
    },
    /// For every unit in order: run `body`, then fold `aggs`. `Mean`
    /// accumulators are divided by the unit count at the end.
    UnitLoop {
        body: Vec<Instr>,
        aggs: Vec<AggInstr>,
    },
}

/// A compiled plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub instrs: Vec<Instr>,
    pub n_regs: usize,
    /// Register of each program output, in `Program::outputs` order.
    pub outputs: Vec<Reg>,
    /// Where each probe's value lives, in `Program::probes` order.
    pub probes: Vec<Src>,
    pub seed: u64,
    /// Units per sample (1 without units).
    pub units: u32,
    /// `covariates[c][u]`, rounded to f32 once.
    pub covariates: Vec<Vec<f32>>,
    /// `inputs[c][lane]` (`Program::inputs`), rounded to f32 once.
    pub inputs: Vec<Vec<f32>>,
}

/// Register allocation state.
struct Alloc {
    free: Vec<Reg>,
    n_regs: usize,
}

impl Alloc {
    fn take(&mut self) -> Reg {
        self.free.pop().unwrap_or_else(|| {
            self.n_regs += 1;
            (self.n_regs - 1) as Reg
        })
    }
    fn release(&mut self, s: Option<Src>) {
        if let Some(Src::R(r)) = s
            && !self.free.contains(&r)
        {
            self.free.push(r);
        }
    }
}

impl Plan {
    /// Compile `p`. Params take their slot values (runtime values for the CPU
    /// are fixed per plan; a sweep builds one plan per grid point).
    pub fn new(p: &VerifiedProgram) -> Plan {
        let n = p.ops.len();
        let sched = schedule(p);
        // Positions in execution order. A sample value read inside a unit
        // loop is read on every unit: its use counts at the loop's end.
        let mut last_use = vec![0usize; n];
        let mut pos = 0usize;
        for step in &sched.steps {
            match step {
                Step::Ops(ops) => {
                    for v in ops {
                        pos += 1;
                        for a in p.ops[v.index()].operands() {
                            last_use[a.index()] = last_use[a.index()].max(pos);
                        }
                    }
                }
                Step::Units { body, aggs } => {
                    pos += body.len() + 2;
                    for v in body.iter().chain(aggs) {
                        for a in p.ops[v.index()].operands() {
                            if sched.levels[a.index()] == whatif_ir::structure::OpLevel::Sample {
                                last_use[a.index()] = last_use[a.index()].max(pos);
                            }
                        }
                    }
                }
            }
        }
        let mut pinned = vec![false; n];
        for o in &p.outputs {
            pinned[o.value.index()] = true;
        }
        for pr in &p.probes {
            pinned[pr.value.index()] = true;
        }
        let mut loc: Vec<Option<Src>> = vec![None; n];
        let mut al = Alloc {
            free: vec![],
            n_regs: 0,
        };
        let mut instrs = vec![];
        let mut pos = 0usize;
        for step in &sched.steps {
            match step {
                Step::Ops(ops) => {
                    for &v in ops {
                        pos += 1;
                        let (s, ins) = compile_op(p, v, &loc, &mut al);
                        instrs.extend(ins);
                        loc[v.index()] = Some(s);
                        for a in p.ops[v.index()].operands() {
                            if last_use[a.index()] == pos && !pinned[a.index()] {
                                al.release(loc[a.index()]);
                            }
                        }
                        // A value nobody reads (and that is no output) frees
                        // at once.
                        if !pinned[v.index()] && last_use[v.index()] <= pos {
                            al.release(Some(s));
                        }
                    }
                }
                Step::Units { body, aggs } => {
                    pos += body.len() + 2;
                    // Accumulators live across the whole loop.
                    let accs: Vec<Reg> = aggs.iter().map(|_| al.take()).collect();
                    // Body values: last use within one unit's iteration
                    // (aggregate folds read them after the whole body).
                    let local: std::collections::HashMap<ValueId, usize> =
                        body.iter().enumerate().map(|(k, v)| (*v, k)).collect();
                    let mut body_last = vec![0usize; body.len()];
                    for (k, v) in body.iter().enumerate() {
                        for a in p.ops[v.index()].operands() {
                            if let Some(&j) = local.get(&a) {
                                body_last[j] = body_last[j].max(k);
                            }
                        }
                    }
                    for a in aggs {
                        for x in p.ops[a.index()].operands() {
                            if let Some(&j) = local.get(&x) {
                                body_last[j] = body.len();
                            }
                        }
                    }
                    let mut body_instrs = vec![];
                    for (k, &v) in body.iter().enumerate() {
                        let (s, ins) = compile_op(p, v, &loc, &mut al);
                        body_instrs.extend(ins);
                        loc[v.index()] = Some(s);
                        for a in p.ops[v.index()].operands() {
                            if let Some(&j) = local.get(&a)
                                && body_last[j] == k
                            {
                                al.release(loc[a.index()]);
                            }
                        }
                        if body_last[k] <= k {
                            al.release(Some(s));
                        }
                    }
                    let agg_instrs: Vec<AggInstr> = aggs
                        .iter()
                        .zip(&accs)
                        .map(|(a, &acc)| {
                            let Op::UnitAgg(agg, x) = p.ops[a.index()] else {
                                unreachable!("schedule lists aggregates only")
                            };
                            AggInstr {
                                agg,
                                src: loc[x.index()].expect("invariant: operand defined"),
                                acc,
                            }
                        })
                        .collect();
                    // Body registers die with the iteration; unit values are
                    // never read after their loop (a later loop recomputes).
                    for (k, v) in body.iter().enumerate() {
                        if body_last[k] == body.len() {
                            al.release(loc[v.index()]);
                        }
                        loc[v.index()] = None;
                    }
                    // Sample values whose last reader was this loop.
                    for v in body.iter().chain(aggs) {
                        for x in p.ops[v.index()].operands() {
                            if sched.levels[x.index()] == whatif_ir::structure::OpLevel::Sample
                                && last_use[x.index()] == pos
                                && !pinned[x.index()]
                            {
                                al.release(loc[x.index()]);
                            }
                        }
                    }
                    for (a, &acc) in aggs.iter().zip(&accs) {
                        loc[a.index()] = Some(Src::R(acc));
                        if !pinned[a.index()] && last_use[a.index()] <= pos {
                            al.release(Some(Src::R(acc)));
                        }
                    }
                    instrs.push(Instr::UnitLoop {
                        body: body_instrs,
                        aggs: agg_instrs,
                    });
                }
            }
        }
        let mut outputs = vec![];
        for o in &p.outputs {
            match loc[o.value.index()].expect("invariant: output defined") {
                Src::R(r) => outputs.push(r),
                Src::S(x) => {
                    let dst = al.take();
                    instrs.push(Instr::Fill { dst, value: x });
                    loc[o.value.index()] = Some(Src::R(dst));
                    outputs.push(dst);
                }
                Src::C(_) => unreachable!("verify: outputs are sample-level"),
            }
        }
        let probes = p
            .probes
            .iter()
            .map(|pr| loc[pr.value.index()].expect("invariant: probe defined"))
            .collect();
        Plan {
            instrs,
            n_regs: al.n_regs,
            outputs,
            probes,
            seed: p.seed,
            units: p.unit_count(),
            covariates: p.units.as_ref().map_or_else(Vec::new, |u| {
                u.columns
                    .iter()
                    .map(|c| c.iter().map(|&x| x as f32).collect())
                    .collect()
            }),
            inputs: p.inputs.as_ref().map_or_else(Vec::new, |t| {
                t.columns
                    .iter()
                    .map(|c| c.iter().map(|&x| x as f32).collect())
                    .collect()
            }),
        }
    }
}

/// The operand a value becomes, and the instruction computing it (none for
/// constants, params and covariates).
fn compile_op(
    p: &VerifiedProgram,
    v: ValueId,
    loc: &[Option<Src>],
    al: &mut Alloc,
) -> (Src, Option<Instr>) {
    let src = |x: &ValueId| loc[x.index()].expect("invariant: SSA operand defined before use");
    let op = &p.ops[v.index()];
    match op {
        Op::Const(x) => return (Src::S(*x as f32), None),
        Op::Param(k) => return (Src::S(p.params[*k as usize].value as f32), None),
        Op::Covariate(c) => return (Src::C(*c as u16), None),
        _ => {}
    }
    let dst = al.take();
    let ins = match op {
        Op::Input(c) => Instr::Input { col: *c, dst },
        Op::Draw {
            dist,
            site,
            args,
            period,
            unit,
        } => Instr::Draw {
            dist: *dist,
            site: *site,
            args: args.iter().map(src).collect(),
            dst,
            period: *period,
            unit: *unit,
        },
        Op::Unary(u, a) => Instr::Unary {
            op: *u,
            a: src(a),
            dst,
        },
        Op::Binary(b, x, y) => Instr::Binary {
            op: *b,
            a: src(x),
            b: src(y),
            dst,
        },
        Op::Select(c, a, b) => Instr::Select {
            c: src(c),
            a: src(a),
            b: src(b),
            dst,
        },
        Op::Const(_) | Op::Param(_) | Op::Covariate(_) | Op::UnitAgg(..) => {
            unreachable!("handled above or by the unit loop")
        }
    };
    (Src::R(dst), Some(ins))
}
