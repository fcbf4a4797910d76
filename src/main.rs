//! The `whatif` command-line interface: parses arguments, reads files,
//! renders diagnostics, chooses exit codes and writes outputs atomically.
//! Libraries below it never print and never exit.
//!
//! Exit codes: 0 success; 1 a check or guardrail failed; 2 bad input or a
//! run error.

use clap::{Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use whatif::engine::{self, Backend, RunOptions, ScenarioInfo};
use whatif::output;

mod data_cli;
mod shard_cli;
mod sweep_cli;

#[derive(Parser, Debug)]
#[command(name = "whatif", version, about = "Counterfactual simulation engine: what would happen if…", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check scenario files and print diagnostics (exit 2 on any error).
    Check {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Diagnostic format.
        #[arg(long, value_enum, default_value_t = DiagFormat::Human)]
        format: DiagFormat,
        /// Print the optimised IR of each scenario.
        #[arg(long)]
        dump_ir: bool,
        /// With --dump-ir: print the IR before optimisation.
        #[arg(long, requires = "dump_ir")]
        no_opt: bool,
    },
    /// Print the causal graph (DOT or Mermaid).
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        /// Draw the graph of this world: hard-intervened nodes lose their
        /// incoming edges, edited nodes are marked.
        #[arg(long)]
        world: Option<String>,
    },
    /// Simulate the worlds of a scenario and report metrics, effects,
    /// checks and guardrails.
    Run(Box<RunArgs>),
    /// Compare two JSON reports: which metrics and effects moved beyond
    /// Monte Carlo noise (z-tests, Holm-corrected across everything compared).
    Diff {
        a: PathBuf,
        b: PathBuf,
        /// Family-wise error rate of the Holm–Bonferroni procedure.
        #[arg(long, default_value_t = 0.01)]
        alpha: f64,
        /// Exit 1 when something moved.
        #[arg(long)]
        fail_on_change: bool,
    },
    /// List GPU adapters and say what `--backend auto` would pick.
    Devices,
    /// Merge the parts of a sharded run (`whatif run --shard i/n`) into the
    /// report a single run gives; phase-1 parts of a run with tail metrics
    /// give the plan of phase 2 (`--plan-out`).
    Merge {
        /// Part files (phase 1, and phase 2 when tails were resolved).
        #[arg(required = true)]
        parts: Vec<PathBuf>,
        /// Write the JSON report here (atomically).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where to write the phase-2 plan when the parts need one.
        #[arg(long)]
        plan_out: Option<PathBuf>,
        /// Accept parts that ran with different CPU kernel variants (the
        /// report then equals a single run's only within rounding).
        #[arg(long)]
        allow_mixed_kernels: bool,
        /// Output format on stdout.
        #[arg(long, value_enum, default_value_t = OutFormat::Table)]
        format: OutFormat,
    },
    /// Estimate the scenario's `?params` from its `[data]` and write
    /// `<stem>.fit.lock` next to it.
    Fit(data_cli::FitArgs),
    /// Replay observed rows under a policy (abduction, action, prediction)
    /// and report observed vs counterfactual outcomes per period.
    Backtest(data_cli::BacktestArgs),
    /// Print the JSON Schema of an output (`report`).
    Schema {
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(whatif_report::schema::NAMES))]
        name: String,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    file: PathBuf,
    /// Number of Monte Carlo samples (overrides `[scenario] samples`).
    #[arg(long)]
    samples: Option<u64>,
    /// Seed (overrides `[scenario] seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Lanes per chunk (a multiple of 64; default 2048).
    #[arg(long, default_value_t = 0)]
    chunk: usize,
    /// Execution backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// Evaluate only this world (repeatable; baseline is always included).
    #[arg(long = "world")]
    worlds: Vec<String>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = OutFormat::Table)]
    format: OutFormat,
    /// Write the JSON report here (atomically).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write a human report: `.html` (one self-contained page with charts)
    /// or `.md` (Markdown plus SVG files next to it).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write JUnit XML: each check and guardrail a testcase.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Hide the progress bar.
    #[arg(short, long)]
    quiet: bool,
    /// Run only shard I of N (block-aligned, 0 ≤ I < N) and write a part to
    /// --out instead of a report (merge parts with `whatif merge`).
    #[arg(long, value_name = "I/N", conflicts_with_all = ["report", "junit"])]
    shard: Option<whatif::engine::shard::ShardSpec>,
    /// With --shard: phase 2, resolve the tail buckets of this plan
    /// (written by `whatif merge --plan-out`).
    #[arg(long, value_name = "PLAN", requires = "shard")]
    resolve: Option<PathBuf>,
    /// Run block after block until this standard error is reached:
    /// `METRIC[WORLD]=SE` or `effect(METRIC, WORLD)=SE` (repeatable).
    #[arg(long = "target-se", value_name = "TARGET", conflicts_with = "shard")]
    target_se: Vec<String>,
    /// With --target-se: the most samples to run (default: the scenario's).
    #[arg(long, requires = "target_se")]
    max_samples: Option<u64>,
    #[command(flatten)]
    sweep: sweep_cli::SweepArgs,
    /// Use a fit lock whose data or scenario hash no longer matches.
    #[arg(long)]
    stale_fit_ok: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum DiagFormat {
    Human,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum GraphFormat {
    Dot,
    Mermaid,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum BackendArg {
    /// A real GPU when present, else the CPU (software adapters are skipped).
    Auto,
    Cpu,
    /// The fused per-scenario GPU kernel on any wgpu adapter.
    Wgpu,
    /// burn tensor ops on wgpu (reference path for the fused kernel).
    WgpuTensor,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum OutFormat {
    Table,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Check {
            files,
            format,
            dump_ir,
            no_opt,
        } => check(&files, format, dump_ir, no_opt),
        Command::Graph {
            file,
            format,
            world,
        } => graph(&file, format, world.as_deref()),
        Command::Run(args) => run(*args),
        Command::Fit(args) => data_cli::fit_cmd(&args),
        Command::Backtest(args) => data_cli::backtest_cmd(&args),
        Command::Diff {
            a,
            b,
            alpha,
            fail_on_change,
        } => diff(&a, &b, alpha, fail_on_change),
        Command::Devices => devices(),
        Command::Merge {
            parts,
            out,
            plan_out,
            allow_mixed_kernels,
            format,
        } => match shard_cli::merge(&parts, plan_out.as_deref(), allow_mixed_kernels) {
            Ok(report) => emit_merged(&report, out.as_deref(), format),
            Err(code) => code,
        },
        Command::Schema { name } => {
            let s = whatif_report::schema::by_name(&name).expect("clap restricts schema names");
            println!(
                "{}",
                serde_json::to_string_pretty(&s).expect("a JSON value serialises")
            );
            0
        }
    };
    ExitCode::from(code)
}

/// Read and compile a scenario, printing diagnostics on failure.
fn load(path: &Path, format: DiagFormat) -> Result<(String, whatif_lang::CausalModel), u8> {
    let source = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return Err(2);
        }
    };
    // `[periods]` without `count` takes it from the data's period column.
    let periods = match whatif_lang::periods_from_data(&source) {
        Some((data, column)) => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            match whatif_data::history::period_count(&dir.join(&data), &data, &column) {
                Ok(n) => Some(n),
                Err(e) => {
                    eprintln!(
                        "error[{}]: {}: [periods] count from the data: {e}",
                        e.code(),
                        path.display()
                    );
                    return Err(2);
                }
            }
        }
        None => None,
    };
    match whatif_lang::compile_full(&source, path.parent(), None, periods) {
        Ok(m) => Ok((source, m)),
        Err(diags) => {
            let name = path.display().to_string();
            match format {
                DiagFormat::Human => eprint!(
                    "{}",
                    whatif_lang::render_diagnostics(&diags, &name, &source)
                ),
                DiagFormat::Json => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&whatif_lang::diagnostics_json(
                            &diags, &name, &source
                        ))
                        .expect("JSON serialises")
                    )
                }
            }
            Err(2)
        }
    }
}

fn check(files: &[PathBuf], format: DiagFormat, dump_ir: bool, no_opt: bool) -> u8 {
    let mut code = 0;
    for f in files {
        match load(f, format) {
            Ok((_, model)) => {
                if dump_ir {
                    let worlds: Vec<whatif_lang::WorldId> = (0..model.worlds.len() as u32)
                        .map(whatif_lang::WorldId)
                        .collect();
                    let passes = if no_opt {
                        whatif_ir::opt::PassOptions::NONE
                    } else {
                        whatif_ir::opt::PassOptions::ALL
                    };
                    let p = whatif_ir::compile(&model, &worlds, passes);
                    print!("{}", whatif_ir::dump::dump(&p));
                } else if format == DiagFormat::Human {
                    eprintln!("{}: ok", f.display());
                }
            }
            Err(c) => code = code.max(c),
        }
    }
    code
}

fn graph(file: &Path, format: GraphFormat, world: Option<&str>) -> u8 {
    let (_, model) = match load(file, DiagFormat::Human) {
        Ok(x) => x,
        Err(c) => return c,
    };
    let world = match world {
        None => None,
        Some(name) => match engine::select_worlds(&model, &[name.to_string()]) {
            Ok(ids) => Some(*ids.last().expect("baseline is always selected")),
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        },
    };
    let text = match format {
        GraphFormat::Dot => whatif_lang::graph::to_dot(&model, world),
        GraphFormat::Mermaid => whatif_lang::graph::to_mermaid(&model, world),
    };
    print!("{text}");
    0
}

fn devices() -> u8 {
    for line in whatif::engine::executor::describe_devices() {
        println!("{line}");
    }
    0
}

fn diff(a: &Path, b: &Path, alpha: f64, fail_on_change: bool) -> u8 {
    if !(alpha > 0.0 && alpha < 1.0) {
        eprintln!("error: --alpha {alpha} must lie in (0, 1)");
        return 2;
    }
    let read = |p: &Path| -> Result<whatif_report::Report, String> {
        let bytes = std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{}:{}:{}: not a whatif report: {e}",
                p.display(),
                e.line(),
                e.column()
            )
        })
    };
    let (ra, rb) = match (read(a), read(b)) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let d = whatif_report::diff::compare(&ra, &rb, alpha);
    print!("{}", d.render_text());
    if fail_on_change && d.moved() { 1 } else { 0 }
}

/// Write a merged report (`--out`), print it, and choose the exit code.
fn emit_merged(report: &whatif_report::Report, out: Option<&Path>, format: OutFormat) -> u8 {
    if let Some(path) = out {
        let json = serde_json::to_string_pretty(report).expect("reports serialise");
        if let Err(e) = output::write_atomic(path, json.as_bytes()) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return 2;
        }
    }
    let text = match format {
        OutFormat::Json => serde_json::to_string_pretty(report).expect("reports serialise") + "\n",
        OutFormat::Table => output::table(report),
    };
    if std::io::stdout().lock().write_all(text.as_bytes()).is_err() {
        return 2;
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if report.passed() { 0 } else { 1 }
}

fn run(args: RunArgs) -> u8 {
    let (source, mut model) = match load(&args.file, DiagFormat::Human) {
        Ok(x) => x,
        Err(c) => return c,
    };
    if let Some(n) = args.samples {
        if n == 0 || n > (1u64 << 53) {
            eprintln!("error: --samples {n} is out of range: use 1 to 2^53");
            return 2;
        }
        model.n_samples = n;
    }
    if let Some(s) = args.seed {
        model.seed = s;
    }
    let lock_info = match data_cli::apply_lock(&args.file, &source, &mut model, args.stale_fit_ok) {
        Ok(l) => l,
        Err(c) => return c,
    };
    let opts = RunOptions {
        worlds: args.worlds.clone(),
        threads: args.threads,
        chunk: args.chunk,
        backend: match args.backend {
            BackendArg::Auto => Backend::Auto,
            BackendArg::Cpu => Backend::Cpu,
            BackendArg::Wgpu => Backend::Wgpu,
            BackendArg::WgpuTensor => Backend::WgpuTensor,
        },
        ..RunOptions::default()
    };
    let report_kind = match args.report.as_deref().map(output::ReportKind::from_path) {
        None => None,
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let info = ScenarioInfo {
        sha256: output::sha256_hex(source.as_bytes()),
    };
    let sweep_plan = match sweep_cli::plan(&args.sweep, &model, &source, &args.file) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let bar = output::Progress::new(!args.quiet && std::io::stderr().is_terminal());
    if let Some(spec) = args.shard {
        let provenance = engine::shard::Provenance {
            fit_lock_sha256: lock_info.lock_sha256.clone(),
            data_sha256: lock_info.data_sha256.clone(),
        };
        return shard_cli::run_shard(
            &model,
            &source,
            &info,
            &provenance,
            &opts,
            spec,
            args.resolve.as_deref(),
            args.out.as_deref(),
            &bar,
        );
    }
    let out = if args.target_se.is_empty() {
        engine::run_with_charts(
            &model,
            &info,
            &opts,
            report_kind.is_some(),
            &mut |done, total| bar.update(done, total),
        )
    } else {
        if let Some(n) = args.max_samples {
            if n == 0 || n > (1u64 << 53) {
                eprintln!("error: --max-samples {n} is out of range: use 1 to 2^53");
                return 2;
            }
            model.n_samples = n;
        }
        let targets = match engine::target::parse_targets(&model, &opts, &args.target_se) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        };
        engine::target::run_to_target(
            &model,
            &info,
            &opts,
            &targets,
            report_kind.is_some(),
            &mut |done, total| bar.update(done, total),
        )
    };
    let (mut report, mut charts) = match out {
        Ok(o) => (o.report, o.charts),
        Err(e) => {
            bar.finish();
            eprintln!("error: {e}");
            return 2;
        }
    };
    bar.finish();
    report.manifest.fit_lock_sha256 = lock_info.lock_sha256;
    report.manifest.data_sha256 = lock_info.data_sha256;
    let sweep_doc = match sweep_cli::run(
        &sweep_plan,
        &model,
        &info,
        &opts,
        &report,
        &mut charts,
        args.quiet,
    ) {
        Ok(d) => d,
        Err(c) => return c,
    };
    if let Some(path) = &args.out {
        let json = serde_json::to_string_pretty(&report).expect("reports serialise");
        if let Err(e) = output::write_atomic(path, json.as_bytes()) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return 2;
        }
    }
    if let (Some(path), Some(kind)) = (&args.report, report_kind)
        && let Err(e) = output::write_report(path, kind, &report, &model, &charts)
    {
        eprintln!("error: cannot write {}: {e}", path.display());
        return 2;
    }
    if let Some(path) = &args.junit
        && let Err(e) = output::write_atomic(path, whatif_report::junit::render(&report).as_bytes())
    {
        eprintln!("error: cannot write {}: {e}", path.display());
        return 2;
    }
    let mut stdout = std::io::stdout().lock();
    let written = match args.format {
        OutFormat::Json => writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&report).expect("reports serialise")
        ),
        OutFormat::Table => write!(
            stdout,
            "{}{}",
            output::table(&report),
            sweep_doc.as_ref().map(sweep_cli::table).unwrap_or_default()
        ),
    };
    if written.is_err() {
        return 2;
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if report.passed() { 0 } else { 1 }
}
