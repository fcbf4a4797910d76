//! The CLI side of observed data: `whatif fit`, `whatif backtest`, and the
//! fit lock that `whatif run` applies. Errors are printed here with their
//! stable code (`error[whatif::data::missing_column]: …`) and exit 2; a
//! failed backtest check or guardrail exits 1.

use std::io::Write;
use std::path::{Path, PathBuf};

use whatif::output;
use whatif_data::backtest::{self, BacktestManifest, BacktestOptions, BacktestReport, RowSink};
use whatif_data::fit::{self, FitOptions};
use whatif_data::lock::{self, FitLock};
use whatif_data::mle::MleSolver;
use whatif_data::{DataError, DataSource};
use whatif_lang::CausalModel;

/// `whatif fit FILE`.
#[derive(clap::Args, Debug)]
pub struct FitArgs {
    /// Scenario file with `?params` and a `[data]` section.
    pub file: PathBuf,
    /// Fit only on rows outside these periods (the lock records it).
    #[arg(long = "exclude-period", value_name = "PERIOD")]
    pub exclude: Vec<String>,
}

/// `whatif backtest FILE --policy NAME`.
#[derive(clap::Args, Debug)]
pub struct BacktestArgs {
    /// Scenario file with a `[data]` section.
    pub file: PathBuf,
    /// The policy world to replay the data under (an intervention, a
    /// stress, or a combination such as `a+b`).
    #[arg(long)]
    pub policy: String,
    /// Posterior draws per row where the noise is not point-identified.
    #[arg(long, default_value_t = 200)]
    pub draws: u32,
    /// Seed of the posterior draws (default: the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the JSON report here (atomically).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write per-row counterfactuals here (`.csv` or `.parquet`).
    #[arg(long)]
    pub rows_out: Option<PathBuf>,
    /// Validate out of sample: fit on the other periods, predict these.
    #[arg(long, value_name = "PERIOD", num_args = 1..)]
    pub holdout: Vec<String>,
    /// Use a fit lock whose data or scenario hash no longer matches.
    #[arg(long)]
    pub stale_fit_ok: bool,
    /// Rows per chunk read from the data file.
    #[arg(long, default_value_t = whatif_data::table::DEFAULT_CHUNK_ROWS)]
    pub chunk_rows: usize,
    /// Where the replay (the prediction under the policy) runs: the
    /// backends of `whatif run` (f32), or `cpu-f64`, the f64 reference
    /// evaluator. Abduction and statistics are f64 either way.
    #[arg(long, value_enum, default_value_t = ReplayBackend::Auto)]
    pub backend: ReplayBackend,
    /// Worker threads (default: one per core): for abduction, and for the
    /// replay on the CPU backend. Results do not depend on it.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// `backtest --backend`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayBackend {
    /// A real GPU when present, else the CPU (as `whatif run`).
    Auto,
    Cpu,
    /// The fused GPU kernel on any wgpu adapter.
    Wgpu,
    /// burn tensor ops on wgpu.
    WgpuTensor,
    /// The f64 reference evaluator (slow; the oracle of the others).
    CpuF64,
}

/// Output formats of `backtest`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

/// What `run` and `backtest` record about the fit lock they used.
#[derive(Debug, Clone, Default)]
pub struct LockInfo {
    pub lock_sha256: Option<String>,
    pub data_sha256: Option<String>,
}

fn fail(e: &DataError) -> u8 {
    eprintln!("error[{}]: {e}", e.code());
    2
}

fn scenario_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Loads `<stem>.fit.lock` when the model has `?params`: checks its hashes
/// (refusing a stale one unless `stale_ok`), sets the params, and says so on
/// stderr. A model with `?params` and no lock is an error.
pub fn apply_lock(
    file: &Path,
    source: &str,
    model: &mut CausalModel,
    stale_ok: bool,
) -> Result<LockInfo, u8> {
    let fitted = lock::fitted_names(model);
    if fitted.is_empty() {
        return Ok(LockInfo::default());
    }
    let path = lock::lock_path(file);
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(_) => {
            return Err(fail(&DataError::NoLock {
                params: fitted.join(", "),
                lock: shown,
            }));
        }
    };
    let l = FitLock::parse(&text, &shown).map_err(|e| fail(&e))?;
    let scenario_sha = output::sha256_hex(source.as_bytes());
    let data_path = model
        .data
        .as_ref()
        .map(|d| scenario_dir(file).join(&d.path));
    let data_sha = match &data_path {
        Some(p) if p.exists() => Some(whatif_data::sha256_file(p).map_err(|e| fail(&e))?),
        _ => None,
    };
    if data_path.is_some() && data_sha.is_none() {
        eprintln!("warning: the data file of the fit lock is not there; its hash is not checked");
    }
    let tolerated = l
        .check(&shown, &scenario_sha, data_sha.as_deref(), stale_ok)
        .map_err(|e| fail(&e))?;
    for t in tolerated {
        eprintln!("warning: {t} (--stale-fit-ok)");
    }
    l.apply(model, &shown).map_err(|e| fail(&e))?;
    eprintln!(
        "using fit lock {shown} ({} params fitted {} on {} rows)",
        l.params.len(),
        l.created,
        l.rows
    );
    Ok(LockInfo {
        lock_sha256: Some(output::sha256_hex(text.as_bytes())),
        data_sha256: Some(l.data_sha256.clone()),
    })
}

fn load(file: &Path) -> Result<(String, CausalModel), u8> {
    super::load(file, super::DiagFormat::Human)
}

/// The maximum likelihood solver of this build: burn's autodiff on the
/// GPU adapter when there is one, else on burn's CPU backend; none without
/// the `gpu` feature (then `fit` refuses those shapes, saying so).
#[cfg(feature = "gpu")]
fn mle_solver() -> Option<whatif_gpu::mle::BurnMle> {
    Some(whatif_gpu::mle::BurnMle::auto())
}

#[cfg(not(feature = "gpu"))]
fn mle_solver() -> Option<NoSolver> {
    None
}

/// Stands in for the solver type of a build without burn (never built).
#[cfg(not(feature = "gpu"))]
#[derive(Debug)]
enum NoSolver {}

#[cfg(not(feature = "gpu"))]
impl MleSolver for NoSolver {
    fn name(&self) -> String {
        match *self {}
    }
    fn solve(
        &self,
        _: &whatif_data::mle::MleProblem,
        _: &mut dyn whatif_data::mle::RowSource,
    ) -> Result<whatif_data::mle::MleFit, DataError> {
        match *self {}
    }
}

/// `whatif fit`: estimates the `?params` and writes the lock atomically.
pub fn fit_cmd(args: &FitArgs) -> u8 {
    let (source, model) = match load(&args.file) {
        Ok(x) => x,
        Err(c) => return c,
    };
    let exclude = args.exclude.clone();
    let keep = move |p: &str| !exclude.iter().any(|x| x == p);
    let solver = mle_solver();
    let opts = FitOptions {
        chunk_rows: None,
        use_period: (!args.exclude.is_empty()).then_some(&keep as &dyn Fn(&str) -> bool),
        mle: solver.as_ref().map(|s| s as &dyn MleSolver),
    };
    if let Err(e) = fit::check_fittable(&model, &opts) {
        return fail(&e);
    }
    let src = match DataSource::open(&model, &scenario_dir(&args.file)) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    if !args.exclude.is_empty() && src.period.is_none() {
        return fail(&DataError::Usage(
            "--exclude-period needs a period column (`[data] period`)".into(),
        ));
    }
    let res = match fit::fit(&model, &src, &opts) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let data_sha = match whatif_data::sha256_file(&src.path) {
        Ok(h) => h,
        Err(e) => return fail(&e),
    };
    let l = FitLock {
        version: lock::LOCK_VERSION,
        engine_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario: args
            .file
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        scenario_sha256: output::sha256_hex(source.as_bytes()),
        data: src.display.clone(),
        data_sha256: data_sha,
        rows: res.rows,
        created: whatif::engine::now_rfc3339(),
        nodes: res.nodes.clone(),
        params: res.params.clone(),
    };
    let path = lock::lock_path(&args.file);
    if let Err(e) = output::write_atomic(&path, l.render().as_bytes()) {
        eprintln!("error: cannot write {}: {e}", path.display());
        return 2;
    }
    let mut out = String::new();
    out.push_str(&format!(
        "fitted {} params on {} rows of {} → {}\n\n",
        l.params.len(),
        l.rows,
        l.data,
        path.display()
    ));
    out.push_str(&format!(
        "{:<16} {:<14} {:>14} {:>12}\n",
        "param", "node", "estimate", "std error"
    ));
    for p in &l.params {
        out.push_str(&format!(
            "{:<16} {:<14} {:>14.6} {:>12.6}\n",
            format!("?{}", p.name),
            p.node,
            p.estimate,
            p.std_error
        ));
    }
    for n in &l.nodes {
        out.push_str(&format!(
            "\n{}: {} ({} rows, {} iteration{}){}",
            n.node,
            n.method,
            n.rows,
            n.iterations,
            if n.iterations == 1 { "" } else { "s" },
            n.sigma_estimator
                .as_ref()
                .map(|s| format!("; sigma {s}"))
                .unwrap_or_default()
        ));
    }
    out.push('\n');
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    0
}

/// A sink that writes into a temporary file next to the target, renamed
/// into place only when the backtest succeeded.
struct AtomicRows {
    tmp: Option<tempfile::NamedTempFile>,
    inner: Box<dyn RowSink>,
}

fn open_rows(path: &Path) -> Result<AtomicRows, DataError> {
    let io = |e: std::io::Error| DataError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    let f = std::io::BufWriter::new(tmp.reopen().map_err(io)?);
    let shown = path.display().to_string();
    let parquet = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("parquet" | "pq")
    );
    let inner: Box<dyn RowSink> = if parquet {
        Box::new(whatif_data::rows_out::ParquetSink::new(f, &shown))
    } else {
        Box::new(whatif_data::rows_out::CsvSink::new(f, &shown))
    };
    Ok(AtomicRows {
        tmp: Some(tmp),
        inner,
    })
}

impl RowSink for AtomicRows {
    fn header(&mut self, columns: &[String]) -> Result<(), DataError> {
        self.inner.header(columns)
    }
    fn row(&mut self, p: u64, u: &str, per: &str, v: &[f64]) -> Result<(), DataError> {
        self.inner.row(p, u, per, v)
    }
    fn finish(&mut self) -> Result<(), DataError> {
        self.inner.finish()
    }
}

/// `whatif backtest`.
pub fn backtest_cmd(args: &BacktestArgs) -> u8 {
    let start = std::time::Instant::now();
    let (source, mut model) = match load(&args.file) {
        Ok(x) => x,
        Err(c) => return c,
    };
    if args.threads > whatif_cpu::MAX_THREADS {
        eprintln!(
            "error: {} worker threads is more than the limit of {}",
            args.threads,
            whatif_cpu::MAX_THREADS
        );
        return 2;
    }
    if args.draws == 0 || args.draws > backtest::MAX_DRAWS {
        eprintln!(
            "error: --draws must be between 1 and {} (got {})",
            backtest::MAX_DRAWS,
            args.draws
        );
        return 2;
    }
    let unfitted = model.clone();
    let lock_info = match apply_lock(&args.file, &source, &mut model, args.stale_fit_ok) {
        Ok(l) => l,
        Err(c) => return c,
    };
    let src = match DataSource::open(&model, &scenario_dir(&args.file)) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let data_sha = match whatif_data::sha256_file(&src.path) {
        Ok(h) => h,
        Err(e) => return fail(&e),
    };
    let opts = BacktestOptions {
        policy: args.policy.clone(),
        draws: args.draws,
        seed: args.seed.unwrap_or(model.seed),
        chunk_rows: args.chunk_rows,
        threads: args.threads,
        ..BacktestOptions::default()
    };
    let manifest = BacktestManifest {
        engine_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario_name: model.name.clone(),
        scenario_sha256: output::sha256_hex(source.as_bytes()),
        data_path: src.display.clone(),
        data_sha256: data_sha,
        fit_lock_sha256: lock_info.lock_sha256.clone(),
        backend: String::new(),
        start_time: whatif::engine::now_rfc3339(),
        ..BacktestManifest::default()
    };
    let mut rows = match args.rows_out.as_deref().map(open_rows).transpose() {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let result = replay_with(&model, &opts, args, |replayer| {
        backtest::backtest_on(
            &model,
            &src,
            &opts,
            manifest,
            rows.as_mut().map(|r| r as &mut dyn RowSink),
            replayer,
        )
    });
    let mut report = match result {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    if !args.holdout.is_empty() {
        match holdout(&unfitted, &model, &src, args, &opts) {
            Ok(h) => report.holdout = Some(h),
            Err(e) => return fail(&e),
        }
    }
    report.manifest.wall_seconds = start.elapsed().as_secs_f64();
    if let (Some(path), Some(r)) = (&args.rows_out, rows.as_mut()) {
        let tmp = r.tmp.take().expect("invariant: rows file persisted once");
        drop(rows);
        if let Err(e) = tmp.persist(path) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return 2;
        }
    }
    let json = serde_json::to_string_pretty(&report).expect("backtest reports serialise");
    if let Some(path) = &args.out
        && let Err(e) = output::write_atomic(path, json.as_bytes())
    {
        eprintln!("error: cannot write {}: {e}", path.display());
        return 2;
    }
    let text = match args.format {
        Format::Json => json + "\n",
        Format::Table => table(&report),
    };
    if std::io::stdout().lock().write_all(text.as_bytes()).is_err() {
        return 2;
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if report.passed() { 0 } else { 1 }
}

/// Builds the replayer `--backend` asks for and runs `f` with it.
fn replay_with<T>(
    model: &CausalModel,
    opts: &BacktestOptions,
    args: &BacktestArgs,
    f: impl FnOnce(&mut dyn whatif_data::replay::Replayer) -> Result<T, DataError>,
) -> Result<T, DataError> {
    use whatif::engine::Backend;
    use whatif_data::replay::ReferenceReplayer;
    let policy = model
        .world_id(&opts.policy)
        .filter(|w| w.index() > 0)
        // `backtest_on` names the valid policies.
        .unwrap_or(whatif_lang::WorldId(0));
    let layout = backtest::replay_layout(model, policy);
    let backend = match args.backend {
        ReplayBackend::CpuF64 => {
            return f(&mut ReferenceReplayer::new(model, policy, layout));
        }
        ReplayBackend::Auto => Backend::Auto,
        ReplayBackend::Cpu => Backend::Cpu,
        ReplayBackend::Wgpu => Backend::Wgpu,
        ReplayBackend::WgpuTensor => Backend::WgpuTensor,
    };
    if policy.index() == 0 {
        return f(&mut ReferenceReplayer::new(model, policy, layout));
    }
    let exec = whatif_ir::exec::ExecOptions {
        threads: args.threads,
        chunk: 0,
    };
    let mut r = whatif::engine::replay::BackendReplayer::new(model, policy, &layout, backend, exec)
        .map_err(|e| DataError::Usage(format!("--backend: {e}")))?;
    f(&mut r)
}

/// `--holdout`: refit on the other periods (when the scenario has
/// `?params`), then predict the held-out rows.
fn holdout(
    unfitted: &CausalModel,
    fitted: &CausalModel,
    src: &DataSource,
    args: &BacktestArgs,
    opts: &BacktestOptions,
) -> Result<whatif_data::backtest::HoldoutResult, DataError> {
    let mut model = fitted.clone();
    let mut fit_rows = 0;
    if !lock::fitted_names(unfitted).is_empty() {
        let hold = args.holdout.clone();
        let keep = move |p: &str| !hold.iter().any(|h| h == p);
        let solver = mle_solver();
        let res = fit::fit(
            unfitted,
            src,
            &FitOptions {
                chunk_rows: Some(args.chunk_rows),
                use_period: Some(&keep),
                mle: solver.as_ref().map(|s| s as &dyn MleSolver),
            },
        )?;
        model = unfitted.clone();
        res.apply(&mut model);
        fit_rows = res.rows;
    }
    backtest::holdout(
        &model,
        src,
        &args.holdout,
        opts.draws,
        opts.seed,
        fit_rows,
        args.chunk_rows,
    )
}

fn signed(v: f64) -> String {
    format!("{v:+.4}")
}

/// The human-readable backtest report.
pub fn table(r: &BacktestReport) -> String {
    let mut s = format!(
        "backtest of `{}` on {} ({} rows, {} draws per row; replay on {})\n",
        r.policy, r.manifest.data_path, r.manifest.rows, r.manifest.draws, r.manifest.backend
    );
    s.push_str(&format!(
        "intervals: {:.0}% posterior over draws; MC SE is the Monte Carlo error of the counterfactual mean\n\n",
        r.interval_level * 100.0
    ));
    s.push_str(&format!(
        "{:<12} {:<16} {:>12} {:>14} {:>11} {:>26} {:>9}\n",
        "period",
        "node",
        "observed",
        "counterfactual",
        "difference",
        "90% interval (difference)",
        "MC SE"
    ));
    for p in r.periods.iter().chain(std::iter::once(&r.overall)) {
        for n in &p.nodes {
            s.push_str(&format!(
                "{:<12} {:<16} {:>12.4} {:>14.4} {:>11} {:>26} {:>9.2e}\n",
                p.period,
                n.node,
                n.observed,
                n.counterfactual,
                signed(n.difference),
                format!("[{}, {}]", signed(n.difference_lo), signed(n.difference_hi)),
                n.mc_se
            ));
        }
    }
    if !r.metrics.is_empty() {
        s.push_str("\nmetrics (observed → counterfactual)\n");
        for m in &r.metrics {
            match (m.observed, m.counterfactual) {
                (Some(o), Some(c)) => s.push_str(&format!(
                    "  {:<20} {:>12.4} → {:>12.4}  [{:.4}, {:.4}]\n",
                    m.name,
                    o,
                    c,
                    m.counterfactual_lo.unwrap_or(f64::NAN),
                    m.counterfactual_hi.unwrap_or(f64::NAN)
                )),
                _ => s.push_str(&format!(
                    "  {:<20} {}\n",
                    m.name,
                    m.note.as_deref().unwrap_or("not computed")
                )),
            }
        }
    }
    if !r.checks.is_empty() {
        s.push_str("\nchecks\n");
        for c in &r.checks {
            s.push_str(&format!(
                "  {:<8} {}{}\n",
                c.status.to_uppercase(),
                c.name,
                c.reason
                    .as_ref()
                    .map(|x| format!(" ({x})"))
                    .unwrap_or_default()
            ));
        }
    }
    if !r.guardrails.is_empty() {
        s.push_str("\nguardrails\n");
        for g in &r.guardrails {
            s.push_str(&format!(
                "  {:<8} {}: {:.4}% of rows×draws out of bounds (max {:.4}%)\n",
                if g.passed { "PASS" } else { "FAIL" },
                g.node,
                100.0 * g.share,
                100.0 * g.max_share
            ));
        }
    }
    s.push_str("\nabduction\n");
    for a in &r.abduction {
        s.push_str(&format!(
            "  {:<16} {:<14} point {:>8}  interval {:>8}\n",
            a.node, a.noise, a.point_rows, a.interval_rows
        ));
    }
    s.push_str(
        "\nnoise diagnostics (KS of the abducted noise against its declared distribution)\n",
    );
    for x in &r.noise.residuals {
        s.push_str(&format!(
            "  {:<16} {:<10} n={:<8} D={:.4} p={:.3}{}\n",
            x.node,
            x.dist,
            x.n,
            x.ks_statistic,
            x.ks_pvalue,
            if x.flagged { "  FLAGGED" } else { "" }
        ));
    }
    for c in r.noise.correlations.iter().filter(|c| c.flagged) {
        s.push_str(&format!(
            "  correlated noises: {} ~ {} r={:.3} (n={})\n",
            c.a, c.b, c.r, c.n
        ));
    }
    if let Some(h) = &r.holdout {
        s.push_str(&format!(
            "\nholdout {} ({} rows; refit on {} rows)\n",
            h.periods.join(", "),
            h.rows,
            h.fit_rows
        ));
        for n in &h.nodes {
            s.push_str(&format!(
                "  {:<16} mean error {:+.4}{}\n",
                n.node,
                n.mean_error,
                n.coverage90
                    .map(|c| format!(", 90% interval coverage {:.1}%", 100.0 * c))
                    .unwrap_or_default()
            ));
            for b in n.calibration.iter().flatten() {
                s.push_str(&format!(
                    "    p in [{:.1}, {:.1}): n={:<6} predicted {:.3} observed {:.3}\n",
                    b.lo, b.hi, b.n, b.mean_predicted, b.observed_rate
                ));
            }
        }
    }
    s
}
