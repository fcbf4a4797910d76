//! The command-line side of sweeps and reverse stress search (`whatif run
//! --sweep`, `[sweeps]`, `--sweep-out`, `--find-breaking`): arguments,
//! validation messages, output files and the text tables. The logic lives
//! in `whatif::engine::sweep`.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use whatif::engine::sweep::{self, BreakingOptions, SweepError};
use whatif::engine::{RunOptions, ScenarioInfo};
use whatif::output::{self, fmt_g};
use whatif_lang::CausalModel;
use whatif_lang::sweep::Sweep;
use whatif_report::charts::ChartData;
use whatif_report::sweep::{BreakingSearch, SweepReport};

/// Sweep and search options of `whatif run`.
#[derive(clap::Args, Debug, Default)]
pub struct SweepArgs {
    /// Sweep a parameter over `POINTS` evenly spaced values from `LO` to
    /// `HI`, both included (repeatable: several form a full grid). Replaces
    /// the scenario's `[sweeps]`. Every grid point uses the same random
    /// numbers.
    #[arg(long = "sweep", value_name = "PARAM=LO:HI:POINTS", conflicts_with_all = ["shard", "target_se"])]
    pub sweeps: Vec<String>,
    /// Ignore the scenario's `[sweeps]`.
    #[arg(long, conflicts_with = "sweeps")]
    pub no_sweeps: bool,
    /// Write the sweep results: `.csv` (the tidy metric table) or `.json`
    /// (the sweep document, `whatif schema sweep`); repeatable.
    #[arg(long = "sweep-out", value_name = "FILE")]
    pub sweep_out: Vec<PathBuf>,
    /// Reverse stress search: the mildest value of PARAM, going from FROM
    /// toward TO, at which a check fails, decided k standard errors beyond
    /// each check's threshold.
    #[arg(long, value_name = "PARAM=FROM:TO", conflicts_with_all = ["shard", "target_se"])]
    pub find_breaking: Option<String>,
    /// With --find-breaking: search this check only (repeatable; default:
    /// every check, the shock breaks when any fails).
    #[arg(
        long = "breaking-check",
        value_name = "NAME",
        requires = "find_breaking"
    )]
    pub breaking_checks: Vec<String>,
    /// With --find-breaking: the Monte Carlo decision margin in standard
    /// errors.
    #[arg(long, default_value_t = sweep::DEFAULT_K, requires = "find_breaking")]
    pub breaking_k: f64,
    /// With --find-breaking: stop when the bracket is this narrow (default:
    /// |TO − FROM| / 200).
    #[arg(long, requires = "find_breaking")]
    pub breaking_tol: Option<f64>,
    /// With --find-breaking: the most runs the search may make.
    #[arg(long, default_value_t = sweep::DEFAULT_MAX_EVALUATIONS, requires = "find_breaking")]
    pub breaking_max_runs: u32,
}

/// What `whatif run` will sweep and search, validated before any run.
#[derive(Debug, Default)]
pub struct Plan {
    sweeps: Vec<Sweep>,
    breaking: Option<BreakingOptions>,
    outputs: Vec<(PathBuf, OutKind)>,
    /// The scenario's file name and text, for diagnostics of a bad point.
    file_name: String,
    source: String,
}

#[derive(Debug, Clone, Copy)]
enum OutKind {
    Csv,
    Json,
}

impl Plan {
    /// Whether there is anything to do.
    pub fn is_empty(&self) -> bool {
        self.sweeps.is_empty() && self.breaking.is_none()
    }
}

/// Validate the sweep arguments against the model (and the file's
/// `[sweeps]`); print a message and return exit code 2 on bad input.
pub fn plan(args: &SweepArgs, model: &CausalModel, source: &str, file: &Path) -> Result<Plan, u8> {
    let fail = |msg: String| {
        eprintln!("error: {msg}");
        2u8
    };
    let mut p = Plan {
        file_name: file.display().to_string(),
        source: source.to_string(),
        ..Plan::default()
    };
    if !args.sweeps.is_empty() {
        for text in &args.sweeps {
            let spec = whatif_lang::sweep::parse_spec(text)
                .map_err(|e| fail(format!("--sweep {text}: {e}")))?;
            let s = whatif_lang::sweep::sweep_from_spec(model, &spec)
                .map_err(|e| fail(format!("--sweep {text}: {e}")))?;
            let bad = whatif_lang::sweep::check_values(model, s.param, &s.values(), None);
            if !bad.is_empty() {
                eprint!(
                    "{}",
                    whatif_lang::render_diagnostics(&bad, &file.display().to_string(), source)
                );
                return Err(fail(format!(
                    "--sweep {text} reaches invalid parameter values"
                )));
            }
            p.sweeps.push(s);
        }
    } else if !args.no_sweeps {
        p.sweeps = model.sweeps.clone();
    }
    // The whole grid is checked before the scenario's own run starts.
    if let Err(e) = sweep::check_grid(model, &p.sweeps) {
        if let SweepError::InvalidPoint { diagnostics, .. } = &e {
            eprint!(
                "{}",
                whatif_lang::render_diagnostics(diagnostics, &file.display().to_string(), source)
            );
        }
        return Err(fail(e.to_string()));
    }
    if let Some(text) = &args.find_breaking {
        let (name, from, to) = whatif_lang::sweep::parse_range(text)
            .map_err(|e| fail(format!("--find-breaking {text}: {e}")))?;
        // Validate the name like a sweep (two points: the ends).
        let (lo, hi) = if from < to { (from, to) } else { (to, from) };
        let spec = whatif_lang::sweep::SweepSpec {
            name,
            lo,
            hi,
            points: 2,
        };
        let s = whatif_lang::sweep::sweep_from_spec(model, &spec)
            .map_err(|e| fail(format!("--find-breaking {text}: {e}")))?;
        if !(args.breaking_k.is_finite() && args.breaking_k >= 0.0) {
            return Err(fail(format!(
                "--breaking-k {} must be a finite number >= 0",
                args.breaking_k
            )));
        }
        if let Some(t) = args.breaking_tol
            && !(t.is_finite() && t > 0.0)
        {
            return Err(fail(format!(
                "--breaking-tol {t} must be a positive number"
            )));
        }
        p.breaking = Some(BreakingOptions {
            param: s.param,
            from,
            to,
            checks: args.breaking_checks.clone(),
            k: args.breaking_k,
            tolerance: args.breaking_tol,
            max_evaluations: args.breaking_max_runs,
        });
    }
    for path in &args.sweep_out {
        let kind = match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => OutKind::Csv,
            Some("json") => OutKind::Json,
            _ => {
                return Err(fail(format!(
                    "--sweep-out {}: use a .csv or .json file name",
                    path.display()
                )));
            }
        };
        p.outputs.push((path.clone(), kind));
    }
    if !p.outputs.is_empty() && p.is_empty() {
        return Err(fail(
            "--sweep-out needs a sweep: give --sweep, --find-breaking or a `[sweeps]` table".into(),
        ));
    }
    Ok(p)
}

/// Run the plan's grid and search after the nominal run, write the
/// `--sweep-out` files and fill the report's sweep charts. Returns the
/// sweep document (`None` for an empty plan) or exit code 2.
pub fn run(
    plan: &Plan,
    model: &CausalModel,
    info: &ScenarioInfo,
    opts: &RunOptions,
    nominal: &whatif_report::Report,
    charts: &mut ChartData,
    quiet: bool,
) -> Result<Option<SweepReport>, u8> {
    if plan.is_empty() {
        return Ok(None);
    }
    let bar = output::Progress::new(!quiet && std::io::stderr().is_terminal());
    let fail = |e: SweepError| {
        bar.finish();
        if let SweepError::InvalidPoint { diagnostics, .. } = &e {
            eprint!(
                "{}",
                whatif_lang::render_diagnostics(diagnostics, &plan.file_name, &plan.source)
            );
        }
        eprintln!("error: {e}");
        2u8
    };
    let mut doc = if plan.sweeps.is_empty() {
        sweep::empty_report(nominal.manifest.clone())
    } else {
        sweep::run_sweep(model, info, opts, &plan.sweeps, &mut |d, t| {
            bar.update(d, t)
        })
        .map_err(fail)?
    };
    if let Some(b) = &plan.breaking {
        let found = sweep::find_breaking(model, info, opts, b, &mut |d, t| bar.update(d, t))
            .map_err(fail)?;
        doc.breaking = Some(found);
    }
    bar.finish();
    let charts_of_grid = whatif_report::sweep::line_charts(&doc);
    if !charts_of_grid.is_empty() {
        charts.sweeps = Some(charts_of_grid);
    }
    for (path, kind) in &plan.outputs {
        let text = match kind {
            OutKind::Csv => whatif_report::sweep::to_csv(&doc),
            OutKind::Json => {
                serde_json::to_string_pretty(&doc).expect("sweep documents serialise") + "\n"
            }
        };
        if let Err(e) = output::write_atomic(path, text.as_bytes()) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return Err(2);
        }
    }
    Ok(Some(doc))
}

/// The sweep tables for stdout: per metric, grid points × worlds, then the
/// checks per grid point and the reverse stress search.
pub fn table(doc: &SweepReport) -> String {
    let mut s = String::new();
    if !doc.params.is_empty() {
        let dims: Vec<String> = doc
            .params
            .iter()
            .map(|p| {
                format!(
                    "{} = {}..{} ({} points)",
                    p.name,
                    fmt_g(p.lo),
                    fmt_g(p.hi),
                    p.points
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "\nsweep: {} ({} samples per point, common random numbers)",
            dims.join(" × "),
            doc.manifest.samples
        );
        let mut metrics: Vec<&str> = vec![];
        let mut worlds: Vec<&str> = vec![];
        for r in &doc.metrics {
            if !metrics.contains(&r.metric.as_str()) {
                metrics.push(&r.metric);
            }
            if !worlds.contains(&r.world.as_str()) {
                worlds.push(&r.world);
            }
        }
        let n_points = doc.metrics.iter().map(|r| r.point + 1).max().unwrap_or(0);
        for m in metrics {
            let _ = writeln!(s, "\n{m}");
            let mut rows: Vec<Vec<String>> = vec![];
            let mut header: Vec<String> = doc.params.iter().map(|p| p.name.clone()).collect();
            header.extend(worlds.iter().map(|w| w.to_string()));
            rows.push(header);
            for point in 0..n_points {
                let cells: Vec<&whatif_report::sweep::SweepMetricRow> = doc
                    .metrics
                    .iter()
                    .filter(|r| r.point == point && r.metric == m)
                    .collect();
                let Some(first) = cells.first() else { continue };
                let mut row: Vec<String> = doc
                    .params
                    .iter()
                    .map(|p| {
                        first
                            .params
                            .get(&p.name)
                            .map(|&v| fmt_g(v))
                            .unwrap_or_default()
                    })
                    .collect();
                for w in &worlds {
                    row.push(match cells.iter().find(|r| r.world == *w) {
                        Some(r) => format!("{} ± {}", opt(r.estimate), opt(r.std_error)),
                        None => String::new(),
                    });
                }
                rows.push(row);
            }
            s.push_str(&output::grid_text(&rows));
        }
        if !doc.checks.is_empty() {
            let _ = writeln!(s, "\nchecks per grid point");
            let mut names: Vec<&str> = vec![];
            for c in &doc.checks {
                if !names.contains(&c.name.as_str()) {
                    names.push(&c.name);
                }
            }
            let mut rows: Vec<Vec<String>> = vec![];
            let mut header: Vec<String> = doc.params.iter().map(|p| p.name.clone()).collect();
            header.extend(names.iter().map(|n| n.to_string()));
            rows.push(header);
            for point in 0..n_points {
                let cells: Vec<_> = doc.checks.iter().filter(|c| c.point == point).collect();
                let Some(first) = cells.first() else { continue };
                let mut row: Vec<String> = doc
                    .params
                    .iter()
                    .map(|p| {
                        first
                            .params
                            .get(&p.name)
                            .map(|&v| fmt_g(v))
                            .unwrap_or_default()
                    })
                    .collect();
                for n in &names {
                    row.push(match cells.iter().find(|c| c.name == *n) {
                        Some(c) if c.passed => "PASS".into(),
                        Some(_) => "FAIL".into(),
                        None => String::new(),
                    });
                }
                rows.push(row);
            }
            s.push_str(&output::grid_text(&rows));
        }
    }
    if let Some(b) = &doc.breaking {
        s.push_str(&breaking_text(b));
    }
    s
}

fn opt(x: Option<f64>) -> String {
    x.map(fmt_g).unwrap_or_else(|| "n/a".into())
}

fn breaking_text(b: &BreakingSearch) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nreverse stress search: {} from {} toward {}, checks {}",
        b.param,
        fmt_g(b.from),
        fmt_g(b.to),
        b.checks
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        s,
        "  Monte Carlo tolerance: a point passes or fails only when every check is {} standard errors inside, or some check {} standard errors beyond, its threshold ({} samples per point, common random numbers); bracket tolerance {}",
        fmt_g(b.k),
        fmt_g(b.k),
        b.samples,
        fmt_g(b.tolerance)
    );
    match b.outcome.as_str() {
        "bracketed" => {
            let _ = writeln!(
                s,
                "  breaking point between {} (passes) and {} (fails){}",
                opt(b.last_pass),
                opt(b.first_fail),
                b.estimate
                    .map(|e| format!("; point estimate {}", fmt_g(e)))
                    .unwrap_or_default()
            );
            if let Some([u0, u1]) = b.undecided {
                let _ = writeln!(
                    s,
                    "  undecided (within {} SE of the threshold) at {} .. {}: more samples would narrow the bracket",
                    fmt_g(b.k),
                    fmt_g(u0),
                    fmt_g(u1)
                );
            }
        }
        "passes_throughout" => {
            let _ = writeln!(
                s,
                "  no breaking point: the checks still pass at {}",
                fmt_g(b.to)
            );
        }
        "fails_at_start" => {
            let _ = writeln!(s, "  a check already fails at {}", fmt_g(b.from));
        }
        _ => {
            let _ = writeln!(
                s,
                "  undecided: at an end of the range a check is within {} SE of its threshold; use more samples or a wider range",
                fmt_g(b.k)
            );
        }
    }
    let _ = writeln!(s, "  {} runs:", b.evaluations.len());
    for e in &b.evaluations {
        let zs: Vec<String> = e
            .checks
            .iter()
            .map(|c| {
                format!(
                    "{} z={}",
                    c.name,
                    c.z.map(|z| format!("{z:+.2}")).unwrap_or("n/a".into())
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "    {} = {:<12} {:<9} {}",
            b.param,
            fmt_g(e.value),
            e.verdict,
            zs.join(", ")
        );
    }
    s
}
