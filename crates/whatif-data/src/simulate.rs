//! Synthetic observed data from a model's baseline, for tests and the
//! shipped examples: each row is one draw of every node with prior noise
//! (the same standard-noise transforms the backtest inverts), so data
//! generated here has known true parameters.

use whatif_lang::{CausalModel, Dist, SiteId};

use crate::backtest::uniform;
use crate::eval::{Env, no_lag, std_ppf};

/// Separates the generator's random stream from the backtest's posterior
/// draws (which use the same seed by default): data generated with the
/// scenario's seed must not share uniforms with its own abduction.
const SIM_SALT: u64 = 0x5349_4d55_4c41_5445;

/// One period of generated rows: its label, row count and param values
/// that differ from the model's in that period (by name, `?` included).
#[derive(Debug, Clone)]
pub struct PeriodSpec {
    pub label: String,
    pub rows: usize,
    pub params: Vec<(String, f64)>,
}

/// Generates rows as CSV text: `unit,period,<observed nodes>` (latent
/// nodes are simulated but not written). Deterministic in `seed`.
pub fn simulate_csv(
    model: &CausalModel,
    periods: &[PeriodSpec],
    seed: u64,
    unit_col: &str,
    period_col: &str,
) -> String {
    let observed: Vec<usize> = (0..model.nodes.len())
        .filter(|&i| !model.nodes[i].latent)
        .collect();
    let mut out = format!("{unit_col},{period_col}");
    for &i in &observed {
        out.push(',');
        out.push_str(&model.nodes[i].name);
    }
    out.push('\n');
    let mut row = 0u64;
    let mut vals = vec![f64::NAN; model.nodes.len()];
    for p in periods {
        let mut params: Vec<f64> = model.params.iter().map(|x| x.value).collect();
        for (name, v) in &p.params {
            if let Some(id) = model.param_id(name) {
                params[id.index()] = *v;
            }
        }
        for _ in 0..p.rows {
            let noise = |site: SiteId, dist: Dist| {
                Some(std_ppf(
                    dist,
                    uniform(seed ^ SIM_SALT, model.sites[site.index()].hash, row, 0),
                ))
            };
            vals.fill(f64::NAN);
            for &n in &model.topo_order {
                let v = Env {
                    model,
                    params: &params,
                    values: &vals,
                    noise: &noise,
                    lag: &no_lag,
                }
                .eval(&model.nodes[n.index()].expr);
                vals[n.index()] = v;
            }
            out.push_str(&format!("u{:06},{}", row + 1, p.label));
            for &i in &observed {
                out.push_str(&format!(",{}", vals[i]));
            }
            out.push('\n');
            row += 1;
        }
    }
    out
}

/// Generates panel rows as CSV text for a multi-period model:
/// `unit,period,<observed nodes>`, one row per unit and period, written
/// period by period (units interleave, as in a monthly extract). Each unit
/// follows its own path of the baseline: `lag(x, k)` reads the unit's value
/// `k` periods earlier, or `x`'s `init` before period 0. `params` sets
/// param values by name (`?` included). Deterministic in `seed`.
pub fn simulate_panel_csv(
    model: &CausalModel,
    units: usize,
    params: &[(String, f64)],
    seed: u64,
    unit_col: &str,
    period_col: &str,
) -> String {
    let n = model.nodes.len();
    let periods = model.periods.max(1) as usize;
    let observed: Vec<usize> = (0..n).filter(|&i| !model.nodes[i].latent).collect();
    let mut out = format!("{unit_col},{period_col}");
    for &i in &observed {
        out.push(',');
        out.push_str(&model.nodes[i].name);
    }
    out.push('\n');
    let mut values: Vec<f64> = model.params.iter().map(|x| x.value).collect();
    for (name, v) in params {
        if let Some(id) = model.param_id(name) {
            values[id.index()] = *v;
        }
    }
    let params = values;
    // paths[u][t * n + node]
    let mut paths = vec![vec![f64::NAN; periods * n]; units];
    for t in 0..periods {
        for (u, path) in paths.iter_mut().enumerate() {
            let row = (u * periods + t) as u64;
            let noise = |site: SiteId, dist: Dist| {
                Some(std_ppf(
                    dist,
                    uniform(seed ^ SIM_SALT, model.sites[site.index()].hash, row, 0),
                ))
            };
            let (past, now) = path.split_at_mut(t * n);
            let lag = |node: whatif_lang::NodeId, k: u32| {
                (k as usize <= t).then(|| past[(t - k as usize) * n + node.index()])
            };
            let vals = &mut now[..n];
            for &id in &model.topo_order {
                let v = Env {
                    model,
                    params: &params,
                    values: vals,
                    noise: &noise,
                    lag: &lag,
                }
                .eval(&model.nodes[id.index()].expr);
                vals[id.index()] = v;
            }
            out.push_str(&format!("s{:04},{t}", u + 1));
            for &i in &observed {
                out.push_str(&format!(",{}", vals[i]));
            }
            out.push('\n');
        }
    }
    out
}
