//! The `deploy/` examples (Kubernetes Indexed Jobs, Slurm job arrays)
//! cannot run here; this lints what can be linted: shell syntax (`bash -n`,
//! and shellcheck when installed), the YAML (parsed by Python's PyYAML when
//! available), the shape of the Indexed Jobs, and that every whatif flag the
//! examples use exists in the built binary.

use std::path::{Path, PathBuf};
use std::process::Command;

fn files(dir: &str, exts: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e))
        })
        .collect();
    out.sort();
    out
}

fn tool_exists(name: &str) -> bool {
    Command::new(name).arg("--version").output().is_ok()
}

#[test]
fn shell_scripts_parse_and_pass_shellcheck() {
    let scripts: Vec<PathBuf> = files("deploy/slurm", &["sh", "sbatch"])
        .into_iter()
        .chain(files("deploy/kubernetes", &["sh"]))
        .collect();
    assert!(scripts.len() >= 5, "{scripts:?}");
    for s in &scripts {
        let o = Command::new("bash")
            .arg("-n")
            .arg(s)
            .output()
            .expect("bash");
        assert!(
            o.status.success(),
            "{}: {}",
            s.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    if tool_exists("shellcheck") {
        let o = Command::new("shellcheck").args(&scripts).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    } else {
        println!("skipped shellcheck: not installed (apt-get install shellcheck)");
    }
}

const CHECK_YAML: &str = r#"
import sys, yaml
shards = set()
for path in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(path)):
        assert doc["apiVersion"] and doc["kind"], path
        if doc["kind"] != "Job":
            continue
        spec = doc["spec"]
        pod = spec["template"]["spec"]
        assert pod["restartPolicy"] == "Never", path
        c = pod["containers"][0]
        script = " ".join(c["command"] + c["args"])
        assert any(v["persistentVolumeClaim"]["claimName"] == "whatif-work" for v in pod["volumes"]), path
        if spec.get("completionMode") == "Indexed":
            env = {e["name"]: e["value"] for e in c.get("env", [])}
            assert spec["completions"] == spec["parallelism"] == int(env["SHARDS"]), path
            assert '--shard "${JOB_COMPLETION_INDEX}/${SHARDS}"' in script, path
            shards.add(spec["completions"])
        print(path, doc["kind"], "ok")
assert len(shards) == 1, f"phases disagree on the shard count: {shards}"
"#;

#[test]
fn kubernetes_manifests_parse_and_agree() {
    let yamls = files("deploy/kubernetes", &["yaml"]);
    assert!(yamls.len() >= 4);
    let has_yaml = Command::new("python3")
        .args(["-c", "import yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_yaml {
        println!("skipped YAML parsing: python3 with PyYAML not available");
        return;
    }
    let o = Command::new("python3")
        .args(["-c", CHECK_YAML])
        .args(&yamls)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every `--flag` the examples pass to `whatif run` / `whatif merge` exists.
#[test]
fn deploy_examples_use_existing_flags() {
    let help = |cmd: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_whatif"))
            .args([cmd, "--help"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let (run, merge) = (help("run"), help("merge"));
    let mut seen = 0;
    for f in files("deploy/slurm", &["sh", "sbatch"])
        .into_iter()
        .chain(files("deploy/kubernetes", &["yaml"]))
    {
        let yaml = f.extension().is_some_and(|e| e == "yaml");
        // Drop comments; join continued shell lines.
        let text: String = std::fs::read_to_string(&f)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("\\\n", " ");
        // A shell statement ends at a newline; YAML folds its lines.
        let ends: &[char] = if yaml {
            &[';', '&', '|']
        } else {
            &[';', '&', '|', '\n']
        };
        for (cmd, h) in [
            ("whatif\" run", &run),
            ("whatif run", &run),
            ("whatif\" merge", &merge),
            ("whatif merge", &merge),
        ] {
            for part in text.split(cmd).skip(1) {
                // The command runs to the end of the shell statement.
                let stmt: String = part.split(ends).next().unwrap_or("").to_string();
                for flag in stmt.split_whitespace().filter(|w| w.starts_with("--")) {
                    let flag = flag.trim_end_matches('\\');
                    assert!(
                        h.contains(flag),
                        "{}: `{flag}` is not a flag of {cmd}",
                        Path::new(&f).display()
                    );
                    seen += 1;
                }
            }
        }
    }
    assert!(seen >= 10, "found only {seen} flags");
}
