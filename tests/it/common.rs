//! Helpers shared by the end-to-end tests.

use whatif::engine::{RunOptions, ScenarioInfo, run};
use whatif_report::Report;

/// Compile scenario text, panicking with the rendered diagnostics.
pub fn model(src: &str) -> whatif_lang::CausalModel {
    whatif_lang::compile(src)
        .unwrap_or_else(|d| panic!("{}", whatif_lang::render_diagnostics(&d, "test.toml", src)))
}

/// Run scenario text with options.
pub fn run_src(src: &str, opts: &RunOptions) -> Report {
    let m = model(src);
    run(
        &m,
        &ScenarioInfo {
            sha256: whatif::output::sha256_hex(src.as_bytes()),
        },
        opts,
        &mut |_, _| {},
    )
    .expect("run succeeds")
}

/// A metric's estimate and SE in a world.
pub fn metric(r: &Report, world: &str, name: &str) -> (f64, f64) {
    let w = r
        .worlds
        .iter()
        .find(|w| w.name == world)
        .unwrap_or_else(|| panic!("no world {world}"));
    let m = w
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name}"));
    (
        m.estimate.expect("finite estimate"),
        m.std_error.expect("finite SE"),
    )
}

/// The effect of `world` vs baseline on `name`: (difference, SE).
pub fn effect(r: &Report, world: &str, name: &str) -> (f64, f64) {
    let e = r
        .effects
        .iter()
        .find(|e| e.world == world && e.vs == "baseline" && e.metric == name)
        .unwrap_or_else(|| panic!("no effect {world}/{name}"));
    (
        e.difference.expect("finite"),
        e.difference_std_error.expect("finite"),
    )
}

/// Assert |estimate − truth| ≤ k·SE, with a message.
pub fn within(label: &str, est: f64, se: f64, truth: f64, k: f64) {
    assert!(se.is_finite() && se >= 0.0, "{label}: bad SE {se}");
    assert!(
        (est - truth).abs() <= k * se,
        "{label}: estimate {est} vs closed form {truth} (SE {se}, |z| = {:.2})",
        (est - truth).abs() / se
    );
}
