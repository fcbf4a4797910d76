//! Terminal and file output for the CLI: the results table, the progress
//! bar, scenario hashing and atomic file writes (temporary file in the
//! target directory, then rename, so no half-written output is ever left).

use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::Path;
use whatif_report::{Num, Report};

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Write `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    // Temporary files are created private (0600); a report is an ordinary
    // output file, readable like any other the user writes.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The kind of human report, from the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    Html,
    Markdown,
}

impl ReportKind {
    pub fn from_path(p: &Path) -> Result<ReportKind, String> {
        match p
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("html" | "htm") => Ok(ReportKind::Html),
            Some("md" | "markdown") => Ok(ReportKind::Markdown),
            _ => Err(format!(
                "--report {}: use a .html or .md file name",
                p.display()
            )),
        }
    }
}

/// Write an HTML report, or a Markdown report with its SVG files beside it
/// (each file atomically), creating the report's directory if needed.
pub fn write_report(
    path: &Path,
    kind: ReportKind,
    report: &Report,
    model: &whatif_lang::CausalModel,
    charts: &whatif_report::charts::ChartData,
) -> std::io::Result<()> {
    // `--report out/run.md` creates `out/` (and the SVG files go beside it).
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    match kind {
        ReportKind::Html => write_atomic(
            path,
            whatif_report::html::render(report, model, charts).as_bytes(),
        ),
        ReportKind::Markdown => {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("report");
            let md = whatif_report::markdown::render_named(report, model, charts, stem);
            let dir = path.parent().unwrap_or(Path::new(""));
            for (name, svg) in &md.files {
                write_atomic(&dir.join(name), svg.as_bytes())?;
            }
            write_atomic(path, md.markdown.as_bytes())
        }
    }
}

/// A progress bar on stderr that only appears when the run lasts longer
/// than about a second and stderr is a terminal.
#[derive(Debug)]
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    started: std::time::Instant,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        let bar = enabled.then(|| {
            let b = indicatif::ProgressBar::hidden();
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} blocks (eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        Progress {
            bar,
            started: std::time::Instant::now(),
        }
    }

    pub fn update(&self, done: u64, total: u64) {
        if let Some(b) = &self.bar {
            if b.is_hidden() && self.started.elapsed().as_secs_f64() > 1.0 {
                b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            b.set_length(total);
            b.set_position(done);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn fmt_num(x: Num) -> String {
    match x {
        None => "n/a".to_string(),
        Some(v) => fmt_g(v),
    }
}

/// Six significant digits, without scientific notation for everyday sizes.
pub fn fmt_g(v: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let a = v.abs();
    if !(1e-4..1e9).contains(&a) {
        return format!("{v:.4e}");
    }
    let digits = (5 - a.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The human-readable results table.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let m = &r.manifest;
    let _ = writeln!(
        s,
        "{}: {} samples, seed {}, backend {} ({}), {:.2} s",
        m.scenario_name, m.samples, m.seed, m.backend, m.kernel, m.run.wall_seconds
    );
    if let Some(st) = &m.structure {
        let rate = m
            .run
            .unit_evaluations_per_second
            .map_or_else(|| "—".to_string(), |r| format!("{r:.3e}"));
        let dims = match (st.units, st.periods) {
            (1, p) => format!("{p} periods"),
            (u, 1) => format!("{u} units"),
            (u, p) => format!("{u} units × {p} periods"),
        };
        let _ = writeln!(
            s,
            "{dims}: {} unit evaluations per world, {rate} per second per world",
            st.unit_evaluations_per_world
        );
    }
    let _ = writeln!(s);
    // Worlds × metrics.
    let metric_names: Vec<&str> = r
        .worlds
        .first()
        .map(|w| w.metrics.iter().map(|m| m.name.as_str()).collect())
        .unwrap_or_default();
    let mut rows: Vec<Vec<String>> = vec![];
    let mut header = vec!["world".to_string()];
    header.extend(metric_names.iter().map(|n| n.to_string()));
    rows.push(header);
    for w in &r.worlds {
        let mut row = vec![w.name.clone()];
        for mr in &w.metrics {
            row.push(format!(
                "{} ± {}",
                fmt_num(mr.estimate),
                fmt_num(mr.std_error)
            ));
        }
        rows.push(row);
    }
    s.push_str(&grid(&rows));
    if !r.effects.is_empty() {
        let _ = writeln!(s);
        let mut rows = vec![vec![
            "effect".to_string(),
            "metric".to_string(),
            "difference".to_string(),
            "ratio".to_string(),
        ]];
        for e in &r.effects {
            rows.push(vec![
                format!("{} vs {}", e.world, e.vs),
                e.metric.clone(),
                format!(
                    "{} ± {}",
                    fmt_num(e.difference),
                    fmt_num(e.difference_std_error)
                ),
                format!("{} ± {}", fmt_num(e.ratio), fmt_num(e.ratio_std_error)),
            ]);
        }
        s.push_str(&grid(&rows));
    }
    if !r.checks.is_empty() || !r.guardrails.is_empty() {
        let _ = writeln!(s);
    }
    for c in &r.checks {
        let verdict = if c.passed { "PASS" } else { "FAIL" };
        match (c.lhs, c.rhs) {
            (Some(_), Some(_)) | (None, Some(_)) | (Some(_), None) => {
                let _ = writeln!(
                    s,
                    "{verdict}  {}: {}  (lhs {} ± {}, rhs {})",
                    c.name,
                    c.expect,
                    fmt_num(c.lhs),
                    fmt_num(c.lhs_std_error),
                    fmt_num(c.rhs)
                );
            }
            (None, None) => {
                let _ = writeln!(s, "{verdict}  {}: {}", c.name, c.expect);
            }
        }
    }
    for g in &r.guardrails {
        let verdict = if g.passed { "PASS" } else { "FAIL" };
        let bounds = match (g.min, g.max) {
            (Some(lo), Some(hi)) => format!("in [{}, {}]", fmt_g(lo), fmt_g(hi)),
            (Some(lo), None) => format!(">= {}", fmt_g(lo)),
            (None, Some(hi)) => format!("<= {}", fmt_g(hi)),
            (None, None) => "bounded".to_string(),
        };
        let _ = writeln!(
            s,
            "{verdict}  guardrail {} {bounds} in {}: {} violations (share {}, 95% upper {}, allowed {})",
            g.node,
            g.world,
            g.violations,
            fmt_num(g.share),
            fmt_num(g.share_upper95),
            fmt_g(g.max_share)
        );
    }
    for f in &r.numeric_faults {
        let _ = writeln!(
            s,
            "FAULT  node {} produced NaN/inf in {} lanes (worlds {}; first sample {})",
            f.node,
            f.lanes,
            f.worlds.join(", "),
            f.first_sample
        );
    }
    s
}

/// Rows of cells as an aligned text table, the first row a header.
pub fn grid_text(rows: &[Vec<String>]) -> String {
    grid(rows)
}

fn grid(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|x| x.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = String::new();
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, x)| format!("{x:<w$}", w = width[c]))
            .collect();
        let _ = writeln!(s, "{}", cells.join("  ").trim_end());
        if i == 0 {
            let total: usize = width.iter().sum::<usize>() + 2 * cols.saturating_sub(1);
            let _ = writeln!(s, "{}", "-".repeat(total));
        }
    }
    s
}
