//! Dead-code elimination: keep only ops that some output needs. Probes on
//! dead values are dropped: a node nobody reads is not computed, so it
//! cannot fault.

use super::remap_roots;
use crate::program::{Program, ValueId};

pub fn run(mut p: Program) -> Program {
    let mut live = vec![false; p.ops.len()];
    for o in &p.outputs {
        live[o.value.index()] = true;
    }
    for i in (0..p.ops.len()).rev() {
        if live[i] {
            for a in p.ops[i].operands() {
                live[a.index()] = true;
            }
        }
    }
    p.probes.retain(|pr| live[pr.value.index()]);
    let mut map = vec![ValueId(u32::MAX); p.ops.len()];
    let ops = std::mem::take(&mut p.ops);
    let worlds = std::mem::take(&mut p.op_world);
    for (i, (mut op, w)) in ops.into_iter().zip(worlds).enumerate() {
        if live[i] {
            op.map_operands(|v| map[v.index()]);
            map[i] = p.push(op, w);
        }
    }
    remap_roots(&mut p, &map);
    p
}
