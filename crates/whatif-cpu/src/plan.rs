//! Compiling a verified Program into a CPU plan: instructions over a small
//! set of reusable chunk-sized registers.
//!
//! Constants and parameters never get a buffer: they become scalar operands,
//! so `0.9 * x` is one loop over `x`. Registers are allocated by last use, so
//! the working set is (chunk size × live values), independent of the number
//! of samples or ops.

use whatif_ir::{BinaryOp, Dist, Op, UnaryOp, VerifiedProgram};

/// A register index.
pub type Reg = u16;

/// An instruction operand: a chunk register or a scalar broadcast to all lanes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Src {
    R(Reg),
    S(f32),
}

/// One step of a plan; every step writes `dst` for all lanes of a chunk.
#[derive(Debug, Clone, PartialEq)]
pub enum Instr {
    Fill {
        dst: Reg,
        value: f32,
    },
    Draw {
        dist: Dist,
        site: u32,
        args: Vec<Src>,
        dst: Reg,
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
}

impl Plan {
    /// Compile `p`. Params take their slot values (runtime values for the CPU
    /// are fixed per plan; a sweep builds one plan per grid point).
    pub fn new(p: &VerifiedProgram) -> Plan {
        let n = p.ops.len();
        // Last use of each value; outputs and probes live to the end.
        let mut last_use = vec![0usize; n];
        for (i, op) in p.ops.iter().enumerate() {
            for a in op.operands() {
                last_use[a.index()] = i;
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
        let mut free: Vec<Reg> = vec![];
        let mut n_regs: usize = 0;
        let mut instrs = vec![];
        let mut alloc = |free: &mut Vec<Reg>| -> Reg {
            free.pop().unwrap_or_else(|| {
                n_regs += 1;
                (n_regs - 1) as Reg
            })
        };
        let src = |loc: &Vec<Option<Src>>, v: whatif_ir::ValueId| {
            loc[v.index()].expect("invariant: SSA operand defined before use")
        };
        for (i, op) in p.ops.iter().enumerate() {
            let s = match op {
                Op::Const(x) => Src::S(*x as f32),
                Op::Param(k) => Src::S(p.params[*k as usize].value as f32),
                _ => {
                    let dst = alloc(&mut free);
                    let ins = match op {
                        Op::Draw { dist, site, args } => Instr::Draw {
                            dist: *dist,
                            site: *site,
                            args: args.iter().map(|a| src(&loc, *a)).collect(),
                            dst,
                        },
                        Op::Unary(u, a) => Instr::Unary {
                            op: *u,
                            a: src(&loc, *a),
                            dst,
                        },
                        Op::Binary(b, x, y) => Instr::Binary {
                            op: *b,
                            a: src(&loc, *x),
                            b: src(&loc, *y),
                            dst,
                        },
                        Op::Select(c, a, b) => Instr::Select {
                            c: src(&loc, *c),
                            a: src(&loc, *a),
                            b: src(&loc, *b),
                            dst,
                        },
                        Op::Const(_) | Op::Param(_) => unreachable!(),
                    };
                    instrs.push(ins);
                    Src::R(dst)
                }
            };
            loc[i] = Some(s);
            // Free the registers of operands whose last use is this op.
            for a in op.operands() {
                if last_use[a.index()] == i
                    && !pinned[a.index()]
                    && let Some(Src::R(r)) = loc[a.index()]
                    && !free.contains(&r)
                {
                    free.push(r);
                }
            }
            // A value nobody reads (and that is no output) frees at once.
            // (Uses come after the definition, so `last_use <= i` means none.)
            if !pinned[i]
                && last_use[i] <= i
                && let Src::R(r) = s
            {
                free.push(r);
            }
        }
        let mut outputs = vec![];
        for o in &p.outputs {
            match loc[o.value.index()].expect("invariant: output defined") {
                Src::R(r) => outputs.push(r),
                Src::S(x) => {
                    let dst = alloc(&mut free);
                    instrs.push(Instr::Fill { dst, value: x });
                    loc[o.value.index()] = Some(Src::R(dst));
                    outputs.push(dst);
                }
            }
        }
        let probes = p
            .probes
            .iter()
            .map(|pr| loc[pr.value.index()].expect("invariant: probe defined"))
            .collect();
        Plan {
            instrs,
            n_regs,
            outputs,
            probes,
            seed: p.seed,
        }
    }
}
