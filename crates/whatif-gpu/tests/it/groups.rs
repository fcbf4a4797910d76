//! Device-side reductions: the group partials the fused path computes on
//! the device, merged on the host, agree with statistics computed in f64
//! from the same lanes read back as columns.

use crate::common::*;
use crate::equiv::chain;
use std::sync::Mutex;
use whatif_gpu::{GpuPath, TensorDevice};
use whatif_ir::exec::{BlockReducer, GroupStat, GroupValue};
use whatif_ir::layout::BlockLayout;
use whatif_ir::{Dist, Op};

/// Takes group partials; records, per block, each statistic merged over
/// its groups (Chan's pairwise update for mean and M2 and co-moment).
struct Grouped {
    stats: Vec<GroupStat>,
    seen: Mutex<u64>,
}

/// Merged per block and statistic: (n, a, b, c, d, e) in the statistic's
/// own layout (moments: n, mean, m2, min, max; co: n, mean_x, mean_y, c_xy;
/// outside: n, count).
type Merged = Vec<[f64; 6]>;

impl BlockReducer for Grouped {
    type Partial = Merged;
    type Output = Merged;
    fn begin(&self, _b: u64, _r: std::ops::Range<u64>) -> Merged {
        vec![]
    }
    fn feed(&self, _p: &mut Merged, _start: u64, _cols: &[&[f32]]) {
        panic!("the fused path must feed groups when the reducer accepts them");
    }
    fn group_stats(&self) -> Option<Vec<GroupStat>> {
        Some(self.stats.clone())
    }
    fn feed_groups(&self, p: &mut Merged, values: &[GroupValue]) {
        *self.seen.lock().expect("lock") += 1;
        let s_n = self.stats.len();
        for (s, st) in self.stats.iter().enumerate() {
            let mut acc = [0.0f64; 6];
            let mut n = 0.0f64;
            for g in values.iter().skip(s).step_by(s_n) {
                let m = g.n as f64;
                match st {
                    GroupStat::Moments { .. } => {
                        let [mean, m2, _, _, lo, hi] = g.v;
                        if n == 0.0 {
                            acc = [0.0, mean, m2, 0.0, lo, hi];
                        } else {
                            let d = mean - acc[1];
                            acc[1] += d * m / (n + m);
                            acc[2] += m2 + d * d * n * m / (n + m);
                            acc[4] = acc[4].min(lo);
                            acc[5] = acc[5].max(hi);
                        }
                    }
                    GroupStat::Co { .. } => {
                        let [mx, my, _, _, cxy, _] = g.v;
                        if n == 0.0 {
                            acc = [0.0, mx, my, cxy, 0.0, 0.0];
                        } else {
                            let (dx, dy) = (mx - acc[1], my - acc[2]);
                            acc[1] += dx * m / (n + m);
                            acc[2] += dy * m / (n + m);
                            acc[3] += cxy + dx * dy * n * m / (n + m);
                        }
                    }
                    GroupStat::Outside { .. } => acc[1] += g.v[0],
                }
                n += m;
            }
            acc[0] = n;
            p.push(acc);
        }
    }
    fn end(&self, p: Merged) -> Merged {
        p
    }
}

fn rel_close(what: &str, a: f64, b: f64, rel: f64) {
    assert!(
        (a - b).abs() <= rel * a.abs().max(b.abs()) + 1e-6,
        "{what}: device {a} vs host {b}"
    );
}

#[test]
fn group_partials_match_host_statistics() {
    let Some(a) = gpu() else { return };
    let mut p = chain(6, 5);
    let rate = p.push(Op::Const(0.5), None);
    let e = p.push(
        Op::Draw {
            dist: Dist::Exponential,
            site: 77,
            args: vec![rate],
            period: 0,
            unit: false,
        },
        None,
    );
    // A shifted column (mean 1000): two-pass group moments must not cancel.
    let big = p.push(Op::Const(1000.0), None);
    let shifted = p.push(Op::Binary(whatif_ir::BinaryOp::Add, e, big), None);
    out(&mut p, e);
    out(&mut p, shifted);
    let v = verified(&p);
    let stats = vec![
        GroupStat::Moments { col: 0 },
        GroupStat::Moments { col: 2 },
        GroupStat::Co { x: 0, y: 1 },
        GroupStat::Outside {
            col: 0,
            lo: -1.0,
            hi: 1.0,
        },
    ];
    // 70,003 lanes in blocks of 2048, launches of 8192: ragged last block,
    // several blocks per launch, several launches.
    let n = 70_003;
    let layout = BlockLayout::with_block_size(n, 2048);
    let exec = gpu_exec(&v, &a, GpuPath::Fused, 8192, TensorDevice::Wgpu);
    let (cols, _) = run_gpu(&exec, &v, layout);
    let reducer = Grouped {
        stats: stats.clone(),
        seen: Mutex::new(0),
    };
    let mut blocks = vec![];
    exec.try_run(layout, 0..layout.n_blocks(), &reducer, |r| blocks.push(r))
        .expect("gpu run");
    assert_eq!(*reducer.seen.lock().expect("lock"), layout.n_blocks());
    for r in &blocks {
        let range = layout.block_range(r.block);
        let lanes = |c: usize| -> Vec<f64> {
            cols[c][range.start as usize..range.end as usize]
                .iter()
                .map(|&x| f64::from(x))
                .collect()
        };
        let nn = (range.end - range.start) as f64;
        let mean = |x: &[f64]| x.iter().sum::<f64>() / nn;
        for (s, st) in stats.iter().enumerate() {
            let got = r.partial[s];
            assert_eq!(got[0], nn, "block {} stat {s}: lane count", r.block);
            let what = format!("block {} stat {s}", r.block);
            match *st {
                GroupStat::Moments { col } => {
                    let x = lanes(col);
                    let m = mean(&x);
                    let m2: f64 = x.iter().map(|v| (v - m) * (v - m)).sum();
                    rel_close(&format!("{what} mean"), got[1], m, 1e-6);
                    rel_close(&format!("{what} m2"), got[2], m2, 1e-4);
                    let lo = x.iter().cloned().fold(f64::INFINITY, f64::min);
                    let hi = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    assert_eq!((got[4], got[5]), (lo, hi), "{what} min/max");
                }
                GroupStat::Co { x, y } => {
                    let (xs, ys) = (lanes(x), lanes(y));
                    let (mx, my) = (mean(&xs), mean(&ys));
                    let c: f64 = xs.iter().zip(&ys).map(|(a, b)| (a - mx) * (b - my)).sum();
                    rel_close(&format!("{what} mean_x"), got[1], mx, 1e-6);
                    // The co-moment of independent columns is near 0:
                    // scale the tolerance by sqrt(m2_x · m2_y).
                    let sxx: f64 = xs.iter().map(|a| (a - mx) * (a - mx)).sum();
                    let syy: f64 = ys.iter().map(|b| (b - my) * (b - my)).sum();
                    let tol = 1e-5 * (sxx * syy).sqrt();
                    assert!((got[3] - c).abs() <= tol, "{what} c_xy: {} vs {c}", got[3]);
                }
                GroupStat::Outside { col, lo, hi } => {
                    let k = lanes(col)
                        .iter()
                        .filter(|&&v| !(f64::from(lo) <= v && v <= f64::from(hi)))
                        .count() as f64;
                    assert_eq!(got[1], k, "{what} count");
                }
            }
        }
    }
}
