//! Block reductions: what each reduction block keeps of the output columns,
//! and the sequential, block-ordered merge of those partials.
//!
//! Per block and per (metric, world) the reducer keeps the sufficient
//! statistics of the metric (moments, co-moments, the radix histogram of
//! the block's tail values),
//! paired co-moments against the baseline for mean-type effects, and
//! guardrail violation counts. Every block also yields the metric's own
//! per-block value, which batch-means standard errors are made from.

use whatif_ir::OutputRole;
use whatif_ir::exec::BlockReducer;
use whatif_lang::{CausalModel, MetricKind};
use whatif_stats::comoments::{CoMoments, CoMomentsSummary};
use whatif_stats::moments::{Moments, MomentsSummary};
use whatif_stats::radix::SparseHistogram;
use whatif_stats::tail::TailKeeper;

/// What to accumulate for one statistic.
#[derive(Debug, Clone)]
pub enum SlotSpec {
    /// Moments of one column (mean, var, sd, prob).
    Moments { col: usize },
    /// Co-moments of two columns (corr; paired effects with `x` = world,
    /// `y` = baseline).
    Co { x: usize, y: usize },
    /// The upper or lower tail of a column at level q.
    Tail { col: usize, q: f64, upper: bool },
    /// Count lanes outside [min, max] (NaN counts as a violation); with
    /// `sum`, the column already holds each sample's violation count (a
    /// structured model's guardrail over units and periods) and is summed.
    Guard {
        col: usize,
        min: f64,
        max: f64,
        sum: bool,
    },
}

/// Where each statistic of the summary lives among the slots.
#[derive(Debug, Clone)]
pub struct Slots {
    pub specs: Vec<SlotSpec>,
    /// `metric_slot[world][metric]`: slot of the metric's own statistic.
    pub metric_slot: Vec<Vec<usize>>,
    /// `paired_slot[world][metric]`: co-moments of the metric's argument in
    /// this world vs baseline (mean and prob metrics, worlds other than 0).
    pub paired_slot: Vec<Vec<Option<usize>>>,
    /// `(guardrail, world index, slot, evaluations per sample)`.
    pub guard_slots: Vec<(usize, usize, usize, u64)>,
    /// `(world, metric, column)`: the metric variables kept for charts.
    pub chart_cols: Vec<(usize, usize, usize)>,
    /// `(world, node, period, column)`: per-period node values kept for the
    /// fan charts of a multi-period model (after `chart_cols` in a chart
    /// partial).
    pub fan_cols: Vec<(usize, u32, u32, usize)>,
    /// Keep chart samples from blocks starting below this sample index.
    pub chart_limit: u64,
}

impl Slots {
    /// Columns a chart partial holds: metric variables, then fan columns.
    pub fn n_chart_columns(&self) -> usize {
        self.chart_cols.len() + self.fan_cols.len()
    }

    /// Plan the slots for a program's outputs. `n` is the number of samples
    /// of the run, which sizes tail keepers.
    pub fn new(model: &CausalModel, program: &whatif_ir::Program) -> Slots {
        let n_worlds = program.worlds.len();
        let col_of = |world: usize, role: &OutputRole| -> usize {
            program
                .outputs
                .iter()
                .position(|o| o.world as usize == world && &o.role == role)
                .expect("invariant: lowering emits every metric argument in every world")
        };
        let mut specs = vec![];
        let mut chart_cols = vec![];
        let mut metric_slot = vec![vec![]; n_worlds];
        let mut paired_slot = vec![vec![]; n_worlds];
        for w in 0..n_worlds {
            for (mi, m) in model.metrics.iter().enumerate() {
                let arg = |a: u32| {
                    col_of(
                        w,
                        &OutputRole::MetricArg {
                            metric: mi as u32,
                            arg: a,
                        },
                    )
                };
                chart_cols.push((w, mi, arg(0)));
                let spec = match m.kind {
                    MetricKind::Mean | MetricKind::Var | MetricKind::Sd | MetricKind::Prob => {
                        SlotSpec::Moments { col: arg(0) }
                    }
                    MetricKind::Corr => SlotSpec::Co {
                        x: arg(0),
                        y: arg(1),
                    },
                    MetricKind::Quantile(q) | MetricKind::ValueAtRisk(q) => SlotSpec::Tail {
                        col: arg(0),
                        q,
                        upper: q >= 0.5,
                    },
                    MetricKind::ExpectedShortfall(q) => SlotSpec::Tail {
                        col: arg(0),
                        q,
                        upper: true,
                    },
                };
                metric_slot[w].push(specs.len());
                specs.push(spec);
                let paired = if w > 0 && matches!(m.kind, MetricKind::Mean | MetricKind::Prob) {
                    let base = col_of(
                        0,
                        &OutputRole::MetricArg {
                            metric: mi as u32,
                            arg: 0,
                        },
                    );
                    specs.push(SlotSpec::Co { x: arg(0), y: base });
                    Some(specs.len() - 1)
                } else {
                    None
                };
                paired_slot[w].push(paired);
            }
        }
        let fan_cols = program
            .outputs
            .iter()
            .enumerate()
            .filter_map(|(oi, o)| match o.role {
                OutputRole::Path { node, period } => Some((o.world as usize, node, period, oi)),
                _ => None,
            })
            .collect();
        let mut guard_slots = vec![];
        for (oi, o) in program.outputs.iter().enumerate() {
            if let OutputRole::Guardrail { guardrail } = o.role {
                let g = &model.guardrails[guardrail as usize];
                let per_unit = model.node(g.node).level == whatif_lang::Level::Unit;
                let evals = u64::from(model.periods)
                    * if per_unit {
                        u64::from(model.unit_count())
                    } else {
                        1
                    };
                guard_slots.push((guardrail as usize, o.world as usize, specs.len(), evals));
                specs.push(SlotSpec::Guard {
                    col: oi,
                    min: g.min.unwrap_or(f64::NEG_INFINITY),
                    max: g.max.unwrap_or(f64::INFINITY),
                    sum: model.is_structured(),
                });
            }
        }
        Slots {
            specs,
            metric_slot,
            paired_slot,
            guard_slots,
            chart_cols,
            fan_cols,
            chart_limit: 0,
        }
    }
}

/// One slot's accumulator while a block streams in.
#[derive(Debug)]
pub enum Acc {
    Moments(Moments),
    Co(CoMoments),
    Tail(Vec<f32>),
    Guard(u64),
    /// Moments of a block the backend reduced on its device, merged group
    /// by group in sample order.
    MomentsSum(MomentsSummary),
    /// Co-moments of a device-reduced block.
    CoSum(CoMomentsSummary),
}

/// One block's partial.
#[derive(Debug)]
pub struct BlockPartial {
    pub n: u64,
    pub accs: Vec<Acc>,
    /// Chart samples (one column per `Slots::chart_cols`), when kept.
    pub chart: Option<Vec<Vec<f32>>>,
}

/// The reducer handed to the backend.
#[derive(Debug)]
pub struct Reducer<'a> {
    pub slots: &'a Slots,
    pub kinds: &'a CausalModelKinds,
}

impl BlockReducer for Reducer<'_> {
    type Partial = BlockPartial;
    type Output = (u64, Vec<Fin>, Option<Vec<Vec<f32>>>);

    fn begin(&self, _block: u64, range: std::ops::Range<u64>) -> BlockPartial {
        let chart = (range.start < self.slots.chart_limit)
            .then(|| vec![vec![]; self.slots.n_chart_columns()]);
        let len = (range.end - range.start) as usize;
        let accs = self
            .slots
            .specs
            .iter()
            .map(|s| match s {
                SlotSpec::Moments { .. } => Acc::Moments(Moments::new()),
                SlotSpec::Co { .. } => Acc::Co(CoMoments::new()),
                SlotSpec::Tail { .. } => Acc::Tail(Vec::with_capacity(len)),
                SlotSpec::Guard { .. } => Acc::Guard(0),
            })
            .collect();
        BlockPartial {
            n: len as u64,
            accs,
            chart,
        }
    }

    fn feed(&self, p: &mut BlockPartial, start: u64, cols: &[&[f32]]) {
        if let Some(chart) = &mut p.chart {
            let keep = (self.slots.chart_limit.saturating_sub(start) as usize)
                .min(cols.first().map_or(0, |c| c.len()));
            let cols_kept = self
                .slots
                .chart_cols
                .iter()
                .map(|c| c.2)
                .chain(self.slots.fan_cols.iter().map(|c| c.3));
            for (dst, col) in chart.iter_mut().zip(cols_kept) {
                dst.extend_from_slice(&cols[col][..keep]);
            }
        }
        for (acc, spec) in p.accs.iter_mut().zip(&self.slots.specs) {
            match (acc, spec) {
                (Acc::Moments(m), SlotSpec::Moments { col }) => m.push(start, cols[*col]),
                (Acc::Co(c), SlotSpec::Co { x, y }) => c.push(start, cols[*x], cols[*y]),
                (Acc::Tail(v), SlotSpec::Tail { col, .. }) => v.extend_from_slice(cols[*col]),
                (Acc::Guard(k), SlotSpec::Guard { col, sum: true, .. }) => {
                    // Integer counts below 2^24: exact in f32.
                    *k += cols[*col].iter().map(|&x| x as u64).sum::<u64>();
                }
                (Acc::Guard(k), SlotSpec::Guard { col, min, max, .. }) => {
                    let (lo, hi) = (*min as f32, *max as f32);
                    // `!(lo <= x && x <= hi)` counts NaN as a violation.
                    *k += cols[*col]
                        .iter()
                        .filter(|&&x| !(lo <= x && x <= hi))
                        .count() as u64;
                }
                _ => unreachable!("invariant: accumulator kinds follow slot specs"),
            }
        }
    }

    fn group_stats(&self) -> Option<Vec<whatif_ir::exec::GroupStat>> {
        use whatif_ir::exec::GroupStat;
        if self.slots.chart_limit > 0 {
            return None;
        }
        self.slots
            .specs
            .iter()
            .map(|s| match *s {
                SlotSpec::Moments { col } => Some(GroupStat::Moments { col }),
                SlotSpec::Co { x, y } => Some(GroupStat::Co { x, y }),
                SlotSpec::Guard { sum: true, .. } => None,
                SlotSpec::Guard { col, min, max, .. } => Some(GroupStat::Outside {
                    col,
                    lo: min as f32,
                    hi: max as f32,
                }),
                SlotSpec::Tail { .. } => None,
            })
            .collect()
    }

    fn feed_groups(&self, p: &mut BlockPartial, values: &[whatif_ir::exec::GroupValue]) {
        let n_stats = self.slots.specs.len();
        for (si, acc) in p.accs.iter_mut().enumerate() {
            let groups = values.iter().skip(si).step_by(n_stats);
            match acc {
                Acc::Moments(_) | Acc::MomentsSum(_) => {
                    let mut sum = MomentsSummary::default();
                    for g in groups.filter(|g| g.n > 0) {
                        let [mean, m2, m3, m4, min, max] = g.v;
                        sum.merge(&MomentsSummary {
                            n: g.n,
                            mean,
                            m2,
                            m3,
                            m4,
                            min,
                            max,
                        });
                    }
                    *acc = Acc::MomentsSum(sum);
                }
                Acc::Co(_) | Acc::CoSum(_) => {
                    let mut sum = CoMomentsSummary::default();
                    for g in groups.filter(|g| g.n > 0) {
                        let [mean_x, mean_y, m2_x, m2_y, c_xy, _] = g.v;
                        sum.merge(&CoMomentsSummary {
                            n: g.n,
                            mean_x,
                            mean_y,
                            m2_x,
                            m2_y,
                            c_xy,
                        });
                    }
                    *acc = Acc::CoSum(sum);
                }
                Acc::Guard(k) => *k = groups.map(|g| g.v[0] as u64).sum(),
                Acc::Tail(_) => unreachable!("invariant: group_stats is None with tail slots"),
            }
        }
    }

    fn end(&self, mut p: BlockPartial) -> Self::Output {
        let chart = p.chart.take();
        (p.n, finish_block(self.slots, self.kinds, p), chart)
    }
}

/// A finished block statistic: what the merge and batch means consume.
#[derive(Debug, Clone)]
pub enum Fin {
    Moments(MomentsSummary),
    Co(CoMomentsSummary),
    /// The block's radix histogram (merged into the run's tail state;
    /// `None` when a shard part already carries the merged histogram) and
    /// the block's own tail estimate (for batch means).
    Tail {
        hist: Option<SparseHistogram>,
        block_value: f64,
    },
    Guard(u64),
}

/// Finish a block's accumulators (runs on the worker thread).
pub fn finish_block(slots: &Slots, models: &CausalModelKinds, p: BlockPartial) -> Vec<Fin> {
    p.accs
        .into_iter()
        .zip(&slots.specs)
        .enumerate()
        .map(|(si, (acc, spec))| match (acc, spec) {
            (Acc::Moments(m), _) => Fin::Moments(m.finish()),
            (Acc::Co(c), _) => Fin::Co(c.finish()),
            (Acc::Tail(values), SlotSpec::Tail { q, upper, .. }) => {
                let block_value = block_tail_value(&values, *q, *upper, models.tail_wants_es[si]);
                Fin::Tail {
                    hist: Some(SparseHistogram::from_values(&values)),
                    block_value,
                }
            }
            (Acc::Guard(k), _) => Fin::Guard(k),
            (Acc::MomentsSum(m), _) => Fin::Moments(m),
            (Acc::CoSum(c), _) => Fin::Co(c),
            _ => unreachable!("invariant: accumulator kinds follow slot specs"),
        })
        .collect()
}

/// Which tail slots are expected shortfall (the block value is ES, not VaR).
#[derive(Debug, Clone)]
pub struct CausalModelKinds {
    pub tail_wants_es: Vec<bool>,
}

impl CausalModelKinds {
    pub fn new(model: &CausalModel, slots: &Slots) -> Self {
        let mut tail_wants_es = vec![false; slots.specs.len()];
        for world_slots in &slots.metric_slot {
            for (mi, &s) in world_slots.iter().enumerate() {
                tail_wants_es[s] =
                    matches!(model.metrics[mi].kind, MetricKind::ExpectedShortfall(_));
            }
        }
        CausalModelKinds { tail_wants_es }
    }
}

fn block_tail_value(values: &[f32], q: f64, upper: bool, es: bool) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut k = if upper {
        TailKeeper::new_upper(values.len() as u64, q)
    } else {
        TailKeeper::new(values.len() as u64, q)
    };
    k.push(values);
    match k.estimate() {
        Some(e) if es => e.expected_shortfall.unwrap_or(f64::NAN),
        Some(e) => e.value_at_risk,
        None => f64::NAN,
    }
}

/// The run-wide merge of block statistics, in block order.
#[derive(Debug)]
pub struct Merged {
    pub n: u64,
    pub stats: Vec<MergedStat>,
    /// Per-block values of each slot (batch means): moments → [mean,
    /// variance]; co-moments → [correlation, mean difference x − y]; tail →
    /// [the block's VaR or ES, 0]; guard → [violations, 0].
    pub block_values: Vec<Vec<[f64; 2]>>,
    pub block_sizes: Vec<u64>,
}

/// A slot's run-wide statistic.
#[derive(Debug)]
pub enum MergedStat {
    Moments(MomentsSummary),
    Co(CoMomentsSummary),
    /// Exact tails by radix select (`engine::tails`).
    Tail(Box<super::tails::TailState>),
    Guard(u64),
}

impl Merged {
    pub fn new(slots: &Slots, _n_samples: u64) -> Merged {
        let stats = slots
            .specs
            .iter()
            .map(|s| match s {
                SlotSpec::Moments { .. } => MergedStat::Moments(MomentsSummary::default()),
                SlotSpec::Co { .. } => MergedStat::Co(CoMomentsSummary::default()),
                SlotSpec::Tail { q, upper, .. } => {
                    MergedStat::Tail(Box::new(super::tails::TailState::new(*q, *upper)))
                }
                SlotSpec::Guard { .. } => MergedStat::Guard(0),
            })
            .collect();
        Merged {
            n: 0,
            stats,
            block_values: vec![vec![]; slots.specs.len()],
            block_sizes: vec![],
        }
    }

    /// Merge the next block (blocks must arrive in order).
    pub fn push(&mut self, n: u64, fins: Vec<Fin>) {
        self.n += n;
        self.block_sizes.push(n);
        for (si, fin) in fins.into_iter().enumerate() {
            let bv = match (&mut self.stats[si], fin) {
                (MergedStat::Moments(m), Fin::Moments(b)) => {
                    m.merge(&b);
                    [b.mean(), b.variance()]
                }
                (MergedStat::Co(c), Fin::Co(b)) => {
                    c.merge(&b);
                    [b.correlation(), b.mean_x() - b.mean_y()]
                }
                (MergedStat::Tail(t), Fin::Tail { hist, block_value }) => {
                    if let Some(h) = hist {
                        t.hist.merge_sparse(&h);
                    }
                    [block_value, 0.0]
                }
                (MergedStat::Guard(g), Fin::Guard(b)) => {
                    *g += b;
                    [b as f64, 0.0]
                }
                _ => unreachable!("invariant: finished kinds follow slot specs"),
            };
            self.block_values[si].push(bv);
        }
    }
}
