//! `cargo xtask replay-matrix [MUTANT...]`: for each seeded bug of the target (all it declares, or the
//! ones named), records a failing run of its first killed-by scenario (`cargo stress-cache --tier pr
//! --mutant NAME -E ...`; `--tier nightly` when only that tier runs the scenario), replays it `--times N` (the reproduction rate) and shrinks it (processes and
//! faults before → after); then prints one table. Every run dir lands under
//! `target/stress-cache/replay-matrix-<unix time>/<mutant>/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use stress_cache_metadata::TargetSpec;
use stress_cache_runner::cargo::Cargo;
use stress_cache_runner::workspace::Workspace;

/// One mutant's row.
#[derive(Debug, Default)]
struct Row {
    mutant: String,
    scenario: String,
    reproduced: String,
    processes: String,
    faults: String,
    note: String,
}

/// The target's mutants with their first killed-by scenario (record name), `only` ones if given.
fn mutants(only: &[String]) -> Result<Vec<(String, String)>> {
    let cargo = Cargo::from_env(None, None, stress_cache_runner::cargo::CargoColor::Never, true);
    let workspace = Workspace::load(&cargo).context("reading the workspace")?;
    let spec: TargetSpec = workspace.resolve_target(None, None).context("resolving the target")?.spec;
    let declared = spec.mutants.context("the target declares no mutants")?;
    if let Some(unknown) = only.iter().find(|m| !declared.names.contains(m)) {
        bail!("`{unknown}` is not a mutant of the target (declared: {})", declared.names.join(", "));
    }
    Ok(declared
        .names
        .iter()
        .filter(|m| only.is_empty() || only.contains(m))
        .filter_map(|m| Some((m.clone(), declared.killed_by.get(m)?.first()?.clone())))
        .collect())
}

/// Runs the matrix and prints the table.
pub fn run(root: &Path, only: &[String], times: u32) -> Result<()> {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let base = root.join("target/stress-cache").join(format!("replay-matrix-{stamp}"));
    let mut rows = Vec::new();
    for (mutant, scenario) in mutants(only)? {
        let row = one(root, &base.join(&mutant), &mutant, &scenario, times)
            .unwrap_or_else(|e| Row { note: format!("{e:#}"), ..Row::default() });
        eprintln!("xtask: {mutant}: {} {} {} {}", row.reproduced, row.processes, row.faults, row.note);
        rows.push(Row { mutant: mutant.clone(), scenario: scenario.clone(), ..row });
    }
    println!("| mutant | scenario | replay | processes | faults | note |\n|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.mutant, r.scenario, r.reproduced, r.processes, r.faults, r.note
        );
    }
    eprintln!("xtask: run dirs under {}", base.display());
    Ok(())
}

fn one(root: &Path, dir: &Path, mutant: &str, scenario: &str, times: u32) -> Result<Row> {
    let test = scenario.replace(['.', '-'], "_");
    let filter = format!("test(/(^|::){test}$/)");
    // The PR tier first; a killer that only the nightly tier runs (the nightly parts' seeded bugs) is
    // recorded there, and the row says so.
    let mut recorded = None;
    for tier in ["pr", "nightly"] {
        let record_dir = dir.join(format!("record-{tier}"));
        let record_dir_s = record_dir.display().to_string();
        let args =
            ["stress-cache", "--tier", tier, "--mutant", mutant, "-E", &filter, "--run-dir", &record_dir_s];
        let _ = output(root, &args)?; // exit 1 is the expected verdict: the record says what happened
        if let Ok(record) = find_record(&record_dir, scenario) {
            recorded = Some((tier, record));
            break;
        }
    }
    let Some((tier, record)) = recorded else {
        bail!("no record of {scenario} under {} in the pr or nightly tier", dir.display())
    };
    let record_s = record.display().to_string();
    let times_s = times.to_string();
    let replayed = output(root, &["stress-cache", "replay", &record_s, "--times", &times_s])?;
    let reproduced = after(&replayed, "reproduced in ").map_or_else(
        || "?".to_string(),
        |rest| rest.split(" replays").next().unwrap_or("?").replace(" of ", "/"),
    );
    let shrunk = output(root, &["stress-cache", "shrink", &record_s])?;
    let pair = |key: &str| {
        after(&shrunk, key).map(|rest| rest.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
    };
    Ok(Row {
        reproduced,
        processes: pair("processes: ").unwrap_or_else(|| "?".into()),
        faults: pair("faults: ").unwrap_or_else(|| "?".into()),
        note: if tier == "pr" { String::new() } else { format!("recorded in the {tier} tier") },
        ..Row::default()
    })
}

/// The first line of `text` containing `key`, from just after it.
fn after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.find(key).map(|i| &l[i + key.len()..]))
}

/// `cargo <args>` in `root`; its stdout and stderr together (either may carry the summary line).
fn output(root: &Path, args: &[&str]) -> Result<String> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    stress_cache_runner::cargo::scrub_package_env(&mut cmd);
    let out =
        cmd.args(args).current_dir(root).output().with_context(|| format!("cannot run cargo {args:?}"))?;
    Ok(format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The record of `scenario` under `dir` (`records/<name>*.json`, not a `.shrunk.json`).
fn find_record(dir: &Path, scenario: &str) -> Result<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    for _ in 0..10_000 {
        let Some(d) = stack.pop() else { break };
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))?.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() && !["kept", "tmp", "bin"].contains(&name.as_str()) {
                stack.push(path);
            } else if d.ends_with("records")
                && name.starts_with(&format!("{scenario}-"))
                && !name.ends_with(".shrunk.json")
            {
                return Ok(path);
            }
        }
    }
    bail!("no record of {scenario} under {}", dir.display())
}
