//! Target precision (`--target-se METRIC[WORLD]=SE`): run reduction block
//! after block until every named standard error is below its target, or the
//! sample cap is reached.
//!
//! The block layout is the cap's, so the blocks run are a prefix of the
//! capped run's blocks and stopping happens only at block boundaries. After
//! each checkpoint the report of the prefix is built (tails resolved exactly
//! by pass 2 over the prefix) and the standard errors are read from it, by
//! the names the report uses. The next checkpoint is where the slowest
//! target is predicted to be met (SE ∝ 1/√n, plus 10%), at least one block
//! on. Every decision depends on the samples alone, so the same seed stops
//! at the same N.

use super::pipeline::{self, Accum, Compiled, RunFacts};
use super::{RunError, RunOptions, RunOutput, ScenarioInfo, select_worlds, tails};
use whatif_lang::CausalModel;
use whatif_report::{Report, TargetSe, TargetSeResult, num};

/// One parsed `--target-se`.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The target as written.
    pub text: String,
    pub metric: String,
    /// The world's name as the report spells it.
    pub world: String,
    /// `Some(vs)`: the effect of `world` vs `vs` (its `difference_std_error`).
    pub vs: Option<String>,
    pub value: f64,
}

impl Target {
    /// The standard error this target reads from a report (`None`: absent
    /// or not finite).
    pub fn std_error(&self, r: &Report) -> Option<f64> {
        match &self.vs {
            None => {
                r.worlds
                    .iter()
                    .find(|w| w.name == self.world)?
                    .metrics
                    .iter()
                    .find(|m| m.name == self.metric)?
                    .std_error
            }
            Some(vs) => {
                r.effects
                    .iter()
                    .find(|e| e.world == self.world && &e.vs == vs && e.metric == self.metric)?
                    .difference_std_error
            }
        }
    }
}

/// Parse `METRIC[WORLD]=SE` and `effect(METRIC, WORLD[, VS])=SE` against the
/// model and the worlds `opts` evaluates.
pub fn parse_targets(
    model: &CausalModel,
    opts: &RunOptions,
    texts: &[String],
) -> Result<Vec<Target>, String> {
    let evaluated = select_worlds(model, &opts.worlds).map_err(|e| e.to_string())?;
    let world_name = |name: &str, text: &str| -> Result<String, String> {
        let ids = select_worlds(model, &[name.trim().to_string()])
            .map_err(|e| format!("--target-se {text}: {e}"))?;
        let id = *ids.last().expect("baseline is always selected");
        if !evaluated.contains(&id) {
            return Err(format!(
                "--target-se {text}: world `{name}` is not evaluated in this run (add --world {name})"
            ));
        }
        Ok(model.worlds[id.index()].name.clone())
    };
    let mut out = vec![];
    for text in texts {
        let bad = || {
            format!(
                "--target-se {text}: write METRIC[WORLD]=SE or effect(METRIC, WORLD)=SE, e.g. es99[recession]=5"
            )
        };
        let (lhs, rhs) = text.rsplit_once('=').ok_or_else(bad)?;
        let value: f64 = rhs.trim().parse().map_err(|_| bad())?;
        if !(value > 0.0 && value.is_finite()) {
            return Err(format!(
                "--target-se {text}: the target must be a positive number"
            ));
        }
        let lhs = lhs.trim();
        let (metric, world, vs) = if let Some(inner) = lhs
            .strip_prefix("effect(")
            .and_then(|s| s.strip_suffix(')'))
        {
            let args: Vec<&str> = inner.split(',').map(str::trim).collect();
            match args.as_slice() {
                [m, w] => (m.to_string(), w.to_string(), Some("baseline".to_string())),
                [m, w, v] => (m.to_string(), w.to_string(), Some(v.to_string())),
                _ => return Err(bad()),
            }
        } else {
            let (m, rest) = lhs.split_once('[').ok_or_else(bad)?;
            let w = rest.strip_suffix(']').ok_or_else(bad)?;
            (m.trim().to_string(), w.to_string(), None)
        };
        if !model.metrics.iter().any(|m| m.name == metric) {
            let names: Vec<&str> = model.metrics.iter().map(|m| m.name.as_str()).collect();
            return Err(format!(
                "--target-se {text}: unknown metric `{metric}`; the scenario has: {}",
                names.join(", ")
            ));
        }
        let world = world_name(&world, text)?;
        let vs = match vs {
            Some(v) => Some(world_name(&v, text)?),
            None => None,
        };
        if vs.as_deref() == Some(world.as_str()) {
            return Err(format!(
                "--target-se {text}: an effect needs two different worlds"
            ));
        }
        out.push(Target {
            text: text.clone(),
            metric,
            world,
            vs,
            value,
        });
    }
    Ok(out)
}

/// Run `model` (its `n_samples` is the cap) until every target is met.
/// `progress(done, total)` counts blocks of pass 1 against the cap.
pub fn run_to_target(
    model: &CausalModel,
    info: &ScenarioInfo,
    opts: &RunOptions,
    targets: &[Target],
    charts: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RunOutput, RunError> {
    let started = std::time::Instant::now();
    let start_time = super::now_rfc3339();
    let mut c = Compiled::new(model, opts)?;
    let exec = c.executor(opts)?;
    if charts {
        c.slots.chart_limit = super::CHART_SAMPLES.min(model.n_samples);
    }
    let mut acc = Accum::new(&c);
    let total = c.layout.n_blocks();
    let bs = c.layout.block_size;
    // First checkpoint: enough blocks for batch-means standard errors.
    let mut next = (whatif_stats::batch::MIN_BATCH_BLOCKS as u64).min(total);
    let mut done = 0;
    loop {
        pass1(&c, &exec, done..next, &mut acc, &mut |b| {
            progress(b + 1, total)
        })?;
        done = next;
        let n = (done * bs).min(model.n_samples);
        if c.has_tails() {
            tails::resolve(
                &exec,
                c.layout,
                0..done,
                &c.slots,
                &mut acc.merged,
                &mut |_| {},
            )?;
        }
        let mut report = pipeline::build_report(
            model,
            info,
            &c,
            &acc.merged,
            &acc.faults,
            RunFacts {
                exec: exec.info(),
                samples: n,
                start_time: start_time.clone(),
                wall_seconds: started.elapsed().as_secs_f64(),
                host: super::hostname(),
            },
        );
        let ses: Vec<Option<f64>> = targets.iter().map(|t| t.std_error(&report)).collect();
        let met = ses
            .iter()
            .zip(targets)
            .all(|(se, t)| se.is_some_and(|se| se < t.value));
        if met || done == total {
            report.manifest.target_se = Some(TargetSe {
                max_samples: model.n_samples,
                reached: met,
                targets: targets
                    .iter()
                    .zip(&ses)
                    .map(|(t, se)| TargetSeResult {
                        target: t.text.clone(),
                        value: t.value,
                        std_error: se.and_then(num),
                    })
                    .collect(),
            });
            if !met {
                report.warnings.push(format!(
                    "--target-se not reached within {} samples: {}",
                    model.n_samples,
                    targets
                        .iter()
                        .zip(&ses)
                        .filter(|(t, se)| !se.is_some_and(|se| se < t.value))
                        .map(|(t, se)| match se {
                            Some(se) => format!("{} (SE {se:.4e})", t.text),
                            None => format!("{} (SE undefined)", t.text),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let charts = super::chart_data(model, &c, acc.chart_cols, charts);
            return Ok(RunOutput { report, charts });
        }
        // SE ∝ 1/√n: the slowest target needs n·(se/target)² samples.
        let grow = ses
            .iter()
            .zip(targets)
            .map(|(se, t)| match se {
                Some(se) => (se / t.value).powi(2) * 1.1,
                None => 2.0,
            })
            .fold(1.0f64, f64::max);
        let want = ((n as f64 * grow) / bs as f64).ceil() as u64;
        next = want.clamp(done + 1, total);
    }
}

fn pass1(
    c: &Compiled,
    exec: &super::Executor,
    blocks: std::ops::Range<u64>,
    acc: &mut Accum,
    progress: &mut dyn FnMut(u64),
) -> Result<(), RunError> {
    if blocks.is_empty() {
        return Ok(());
    }
    pipeline::pass1(c, exec, blocks, acc, progress)
}
