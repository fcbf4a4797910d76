//! Golden IR dumps: `tests/golden/<case>/scenario.toml` → `ir.txt` (the
//! optimised program) and `ir-unopt.txt` (straight from lowering). Set
//! `WHATIF_BLESS=1` to rewrite the expectations after a deliberate change.
//! Also checks, per case, that the optimised and unoptimised programs agree
//! lane for lane on the reference interpreter.

use std::path::Path;
use whatif_ir::opt::PassOptions;

fn compile(src: &str, passes: PassOptions) -> whatif_ir::VerifiedProgram {
    let m = crate::common::model(src);
    let worlds: Vec<whatif_lang::WorldId> = (0..m.worlds.len() as u32)
        .map(whatif_lang::WorldId)
        .collect();
    whatif_ir::compile(&m, &worlds, passes)
}

fn check_file(path: &Path, actual: &str) -> Option<String> {
    let bless = std::env::var_os("WHATIF_BLESS").is_some();
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected == actual {
        return None;
    }
    if bless {
        std::fs::write(path, actual).expect("bless");
        return None;
    }
    Some(format!(
        "{} differs (run with WHATIF_BLESS=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    ))
}

#[test]
fn golden_ir() {
    let mut failures = vec![];
    let mut cases = 0;
    let mut dirs: Vec<_> = std::fs::read_dir("tests/golden")
        .expect("tests/golden")
        .map(|e| e.expect("e").path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let src = match std::fs::read_to_string(dir.join("scenario.toml")) {
            Ok(s) => s,
            Err(_) => continue,
        };
        cases += 1;
        let opt = compile(&src, PassOptions::ALL);
        let unopt = compile(&src, PassOptions::NONE);
        failures.extend(check_file(
            &dir.join("ir.txt"),
            &whatif_ir::dump::dump(&opt),
        ));
        failures.extend(check_file(
            &dir.join("ir-unopt.txt"),
            &whatif_ir::dump::dump(&unopt),
        ));
        // Optimised = unoptimised, on the f64 oracle.
        let a = whatif_ir::interp::eval_outputs(&opt, 0..64);
        let b = whatif_ir::interp::eval_outputs(&unopt, 0..64);
        for (o, (ca, cb)) in a.iter().zip(&b).enumerate() {
            for (i, (x, y)) in ca.iter().zip(cb).enumerate() {
                assert!(
                    x == y
                        || (x - y).abs() <= 1e-12 * (1.0 + y.abs())
                        || (x.is_nan() && y.is_nan()),
                    "{}: output {o} lane {i}: {x} vs {y}",
                    dir.display()
                );
            }
        }
    }
    assert!(cases >= 3, "golden cases found: {cases}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
