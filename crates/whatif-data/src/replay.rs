//! The prediction step of a backtest as lanes: each lane is one observed
//! row in one posterior draw, its inputs the row's observed values, the
//! abducted (or fresh) standard noise of every site and the lagged values
//! that draw reads. A [`Replayer`] evaluates the policy world's
//! mechanisms on a batch of lanes. [`ReferenceReplayer`] does it here, in
//! f64 with [`crate::eval`]; the root crate lowers the same layout to a
//! program (`whatif_ir::lower::lower_replay`) and runs it on the backend
//! `whatif run` uses, so this crate links no backend.

use std::collections::BTreeMap;

use whatif_lang::{CausalModel, Dist, Expr, ExprKind, Mechanism, NodeId, SiteId, WorldId};

use crate::DataError;
use crate::eval::Env;

/// Which nodes a replay recomputes and which inputs each lane carries, in
/// column order: `observed`, `sites`, `lags`, then the period when
/// `period` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayLayout {
    /// Nodes the policy can change, and latent nodes (sampled from their
    /// posterior), in node order: the replay's outputs.
    pub recomputed: Vec<NodeId>,
    /// Every other node: its observed value is an input.
    pub observed: Vec<NodeId>,
    /// Sites drawn by the recomputed mechanisms, with the distribution
    /// that reads the noise: one standard-noise column each.
    pub sites: Vec<(SiteId, Dist)>,
    /// Every `lag(x, k)` the model reads: one column each.
    pub lags: Vec<(NodeId, u32)>,
    /// Some recomputed node's edit starts at a period (`from`): a last
    /// column holds each lane's period.
    pub period: bool,
}

impl ReplayLayout {
    /// The layout of replaying `model` under `policy`. `changed` are the
    /// nodes whose value can differ from the observed one
    /// ([`crate::backtest::changed_nodes`]).
    pub fn new(model: &CausalModel, policy: WorldId, changed: &[NodeId]) -> ReplayLayout {
        let redo: Vec<bool> = (0..model.nodes.len())
            .map(|n| model.nodes[n].latent || changed.iter().any(|c| c.index() == n))
            .collect();
        let mut sites: BTreeMap<SiteId, Dist> = BTreeMap::new();
        let mut period = false;
        let mut seen_natural = vec![false; model.nodes.len()];
        for (n, _) in redo.iter().enumerate().filter(|(_, r)| **r) {
            let node = NodeId(n as u32);
            let mut exprs: Vec<&Expr> = vec![];
            match model.mechanism(policy, node) {
                Mechanism::Natural(e) => exprs.push(e),
                Mechanism::Edited { node_edit, .. } => {
                    exprs.push(&node_edit.expr);
                    if model.has_periods && node_edit.from > 0 {
                        period = true;
                        exprs.push(&model.nodes[n].expr);
                    }
                }
            }
            while let Some(e) = exprs.pop() {
                e.walk(&mut |x| match &x.kind {
                    ExprKind::Draw { dist, site, .. } => {
                        sites.insert(*site, *dist);
                    }
                    ExprKind::Natural(m) if !seen_natural[m.index()] => {
                        seen_natural[m.index()] = true;
                        exprs.push(&model.nodes[m.index()].expr);
                    }
                    _ => {}
                });
            }
        }
        ReplayLayout {
            recomputed: (0..model.nodes.len() as u32)
                .map(NodeId)
                .filter(|n| redo[n.index()])
                .collect(),
            observed: (0..model.nodes.len() as u32)
                .map(NodeId)
                .filter(|n| !redo[n.index()])
                .collect(),
            sites: sites.into_iter().collect(),
            lags: crate::history::lag_reads(model),
            period,
        }
    }

    /// Number of input columns.
    pub fn columns(&self) -> usize {
        self.observed.len() + self.sites.len() + self.lags.len() + usize::from(self.period)
    }

    /// The column of site `s`'s noise.
    pub fn site_column(&self, s: SiteId) -> Option<usize> {
        self.sites
            .iter()
            .position(|(x, _)| *x == s)
            .map(|i| self.observed.len() + i)
    }

    /// The column of `lag(node, k)`.
    pub fn lag_column(&self, node: NodeId, k: u32) -> Option<usize> {
        self.lags
            .iter()
            .position(|l| *l == (node, k))
            .map(|i| self.observed.len() + self.sites.len() + i)
    }
}

/// The node a metric argument is, when it is a bare node: the replay
/// does not output it again (it is a node output, or the observed row).
pub fn metric_arg_node(e: &Expr) -> Option<NodeId> {
    match e.kind {
        ExprKind::Node(n) => Some(n),
        _ => None,
    }
}

/// `n` empty output columns in `out`, keeping their capacity: how a
/// [`Replayer::replay_into`] starts a batch.
pub fn reset_outputs(out: &mut Vec<Vec<f64>>, n: usize) {
    out.resize(n, Vec::new());
    for o in out.iter_mut() {
        o.clear();
    }
}

/// Evaluates the policy world on batches of lanes laid out by a
/// [`ReplayLayout`].
pub trait Replayer {
    /// What the report's manifest records as the backend (`cpu-f64`, or
    /// the executor that ran: `cpu`, `wgpu`, …).
    fn backend(&self) -> String;

    /// `lanes` lanes with inputs `inputs[c][lane]` (every column `lanes`
    /// long); returns `out[j][lane]`: the value of `layout.recomputed[j]`
    /// for `j < recomputed.len()`, then the metrics' arguments that are not
    /// a bare node ([`metric_arg_node`]), metric by metric (NaN for an
    /// argument over paths: `at`, `final`, …).
    ///
    /// `out` is the caller's, reused batch after batch: a replayer clears
    /// and refills it (its vectors keep their capacity, so a long backtest
    /// does not allocate per batch).
    fn replay_into(
        &mut self,
        lanes: usize,
        inputs: &[Vec<f64>],
        out: &mut Vec<Vec<f64>>,
    ) -> Result<(), DataError>;

    /// [`Replayer::replay_into`] into fresh vectors.
    fn replay(&mut self, lanes: usize, inputs: &[Vec<f64>]) -> Result<Vec<Vec<f64>>, DataError> {
        let mut out = Vec::new();
        self.replay_into(lanes, inputs, &mut out)?;
        Ok(out)
    }
}

/// The f64 reference: [`crate::eval`] lane by lane.
#[derive(Debug)]
pub struct ReferenceReplayer<'a> {
    model: &'a CausalModel,
    policy: WorldId,
    layout: ReplayLayout,
    params: Vec<f64>,
}

impl<'a> ReferenceReplayer<'a> {
    pub fn new(model: &'a CausalModel, policy: WorldId, layout: ReplayLayout) -> Self {
        let params = (0..model.params.len())
            .map(|p| model.param_value(policy, whatif_lang::ParamId(p as u32)))
            .collect();
        ReferenceReplayer {
            model,
            policy,
            layout,
            params,
        }
    }
}

impl Replayer for ReferenceReplayer<'_> {
    fn backend(&self) -> String {
        "cpu-f64".into()
    }

    fn replay_into(
        &mut self,
        lanes: usize,
        inputs: &[Vec<f64>],
        out: &mut Vec<Vec<f64>>,
    ) -> Result<(), DataError> {
        let (model, l) = (self.model, &self.layout);
        let n_args = model
            .metrics
            .iter()
            .flat_map(|m| &m.args)
            .filter(|a| metric_arg_node(a).is_none())
            .count();
        reset_outputs(out, l.recomputed.len() + n_args);
        let mut values = vec![f64::NAN; model.nodes.len()];
        let redo: Vec<bool> = (0..model.nodes.len())
            .map(|n| l.recomputed.iter().any(|r| r.index() == n))
            .collect();
        let order = &model.worlds[self.policy.index()].topo_order;
        // `lane` indexes every input column, in closures too.
        #[allow(clippy::needless_range_loop)]
        for lane in 0..lanes {
            for (c, n) in l.observed.iter().enumerate() {
                values[n.index()] = inputs[c][lane];
            }
            let t = if l.period {
                inputs[l.columns() - 1][lane] as u32
            } else {
                0
            };
            let noise = |s: SiteId, _: Dist| l.site_column(s).map(|c| inputs[c][lane]);
            let lag = |n: NodeId, k: u32| l.lag_column(n, k).map(|c| inputs[c][lane]);
            for &n in order {
                if !redo[n.index()] {
                    continue;
                }
                let expr = match model.mechanism_at(self.policy, n, t) {
                    Mechanism::Natural(e) => e,
                    Mechanism::Edited { node_edit, .. } => &node_edit.expr,
                };
                let v = Env {
                    model,
                    params: &self.params,
                    values: &values,
                    noise: &noise,
                    lag: &lag,
                }
                .eval(expr);
                values[n.index()] = v;
            }
            for (j, n) in l.recomputed.iter().enumerate() {
                out[j].push(values[n.index()]);
            }
            let none = |_, _| None;
            let env = Env {
                model,
                params: &self.params,
                values: &values,
                noise: &none,
                lag: &lag,
            };
            let mut j = l.recomputed.len();
            for a in model.metrics.iter().flat_map(|m| &m.args) {
                if metric_arg_node(a).is_none() {
                    // `Env` gives NaN for path functions.
                    out[j].push(env.eval(a));
                    j += 1;
                }
            }
        }
        Ok(())
    }
}
