//! A run killed at any moment (kill -9) loses at most the steps since its last checkpoint and
//! resumes bit-exactly: after `--resume`, metrics.csv (all but its timing columns),
//! weights.csv and the final parameters and optimizer state equal an uninterrupted run's.
//! Mid-epoch checkpoints every 3 steps; kill points spread over both epochs. SIGINT instead
//! finishes the step, checkpoints and exits 1 saying how to resume. The resumes that cannot
//! go on (no checkpoint yet, a damaged one, another cosine length) are refused in one line
//! saying how to go on, and a finished run's says it is complete. Runs the binary.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use adaresnet::train::checkpoint::Checkpoint;

fn out(name: &str) -> common::Scratch {
    common::scratch(name)
}

fn args(dir: &Path, resume: bool) -> Vec<String> {
    let mut a: Vec<String> = [
        "train",
        "--model",
        "resnet8",
        "--train-limit",
        "330",
        "--test-limit",
        "64",
        "--epochs",
        "2",
        "--batch",
        "32",
        "--seed",
        "5",
        "--checkpoint-every",
        "3",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(dir.to_str().unwrap().into());
    if resume {
        a.push("--resume".into());
    }
    a
}

fn start(dir: &Path, resume: bool) -> Child {
    Command::new(env!("CARGO_BIN_EXE_adaresnet"))
        .args(args(dir, resume))
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("ADARESNET_CACHE_DIR", common::CACHE_DIR)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the adaresnet binary starts")
}

fn finish(child: Child, what: &str) -> (Option<i32>, String) {
    let o = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!text.contains("panicked"), "{what} panicked:\n{text}");
    (o.status.code(), text)
}

/// Waits until the run has written its first checkpoint (or ended).
fn wait_for_checkpoint(dir: &Path, child: &mut Child) {
    let t = Instant::now();
    while !dir.join("checkpoint.safetensors").exists() && child.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "no checkpoint after 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// metrics.csv without its timing columns (images/s and seconds), which no two runs share.
fn metrics(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.split(',').take(5).collect::<Vec<_>>().join(","))
        .collect()
}

fn same_run(a: &Path, b: &Path, what: &str) {
    assert_eq!(metrics(a), metrics(b), "{what}: metrics.csv");
    assert_eq!(metrics(a).len(), 3, "{what}: header and two epochs");
    assert_eq!(
        std::fs::read_to_string(a.join("weights.csv")).unwrap(),
        std::fs::read_to_string(b.join("weights.csv")).unwrap(),
        "{what}: weights.csv"
    );
    let ck = |d: &Path| Checkpoint::load(&d.join("checkpoint.safetensors")).unwrap();
    assert_eq!(
        ck(a).tensors,
        ck(b).tensors,
        "{what}: parameters and optimizer state"
    );
}

#[test]
fn kill_9_anywhere_then_resume_is_bit_exact() {
    let straight = out("straight");
    let (code, text) = finish(start(&straight, false), "uninterrupted run");
    assert_eq!(code, Some(0), "{text}");
    // Kill points after the first checkpoint: from at once to most of the way through.
    let (mut killed_running, mut mid_epoch) = (0, 0);
    for (k, delay_ms) in [0u64, 400, 1100, 2300].into_iter().enumerate() {
        let dir = out(&format!("killed{k}"));
        let mut child = start(&dir, false);
        wait_for_checkpoint(&dir, &mut child);
        std::thread::sleep(Duration::from_millis(delay_ms));
        killed_running += child.try_wait().unwrap().is_none() as usize;
        let _ = child.kill(); // SIGKILL: no handler runs
        let _ = child.wait();
        let ck = Checkpoint::load(&dir.join("checkpoint.safetensors"))
            .unwrap_or_else(|e| panic!("kill point {k}: the checkpoint is unreadable: {e:#}"));
        let step: u64 = ck.meta("step").unwrap().parse().unwrap();
        assert!(
            step >= 3,
            "kill point {k}: the first checkpoint is at step 3"
        );
        // 11 steps an epoch (10 full batches and one of 10): others are mid-epoch.
        mid_epoch += !step.is_multiple_of(11) as usize;
        let (code, text) = finish(start(&dir, true), "resumed run");
        assert_eq!(code, Some(0), "kill point {k} (after step {step}): {text}");
        same_run(
            &straight,
            &dir,
            &format!("kill point {k} (checkpoint at step {step})"),
        );
    }
    assert!(
        killed_running >= 3,
        "only {killed_running} of 4 runs were still running when killed"
    );
    assert!(mid_epoch >= 2, "only {mid_epoch} resumes started mid-epoch");
}

#[test]
fn sigint_checkpoints_and_says_how_to_resume() {
    let straight = out("sigint-straight");
    assert_eq!(
        finish(start(&straight, false), "uninterrupted run").0,
        Some(0)
    );
    let dir = out("sigint");
    let mut child = start(&dir, false);
    wait_for_checkpoint(&dir, &mut child);
    // Freeze the run the moment its first checkpoint (step 3 of 22) appears, so the signal
    // is pending while 19 steps remain, however fast the adapter: SIGINT then always lands
    // mid-run, and a run that ends with 0 is a failure, not a pass.
    let pid = child.id().to_string();
    let signal = |s: &str| {
        let ok = Command::new("kill")
            .args([s, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {s} {pid} failed");
    };
    signal("-STOP");
    signal("-INT");
    signal("-CONT");
    let (code, text) = finish(child, "interrupted run");
    assert_ne!(
        code,
        Some(0),
        "the run finished although SIGINT arrived while 19 steps remained:\n{text}"
    );
    assert_eq!(code, Some(1), "{text}");
    let error = text
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        error.contains("interrupted after step") && error.contains("--resume"),
        "{text}"
    );
    let (code, text) = finish(start(&dir, true), "resumed run");
    assert_eq!(code, Some(0), "{text}");
    same_run(&straight, &dir, "after SIGINT");
}

/// A one-epoch run of 2 steps into `dir`, with `--epochs epochs` (and `--resume`): the
/// shipped-data demo's cosine schedule.
fn tiny(dir: &Path, epochs: &str, resume: bool) -> Vec<String> {
    let mut a: Vec<String> = [
        "train",
        "--model",
        "resnet8",
        "--train-limit",
        "64",
        "--test-limit",
        "32",
        "--batch",
        "32",
        "--epochs",
        epochs,
        "--out",
        dir.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    if resume {
        a.push("--resume".into());
    }
    a
}

fn run_bin(args: &[String]) -> (Option<i32>, String) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::adaresnet_bin(&[], &args)
}

/// `--resume`'s one-line refusals: the cause, then how to go on from there.
fn resume_refused(args: &[String], needles: &[&str]) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let error = common::refused_with(&[], &args, needles[0]);
    for n in needles {
        assert!(error.contains(n), "'{n}' not in {error}");
    }
}

fn learned_w(text: &str) -> &str {
    let line = text.lines().find(|l| l.starts_with("learned w:"));
    line.unwrap_or_else(|| panic!("no learned w line in:\n{text}"))
}

/// Resuming a finished run trains nothing, says so and prints the checkpoint's `w` (which
/// the run itself printed last).
#[test]
fn resuming_a_finished_run_says_it_is_complete() {
    let dir = out("finished");
    let (code, first) = run_bin(&tiny(&dir, "1", false));
    assert_eq!(code, Some(0), "{first}");
    let (code, again) = run_bin(&tiny(&dir, "1", true));
    assert_eq!(code, Some(0), "{again}");
    assert!(again.contains("already complete"), "{again}");
    assert!(!again.contains("NaN"), "{again}");
    assert_eq!(learned_w(&again), learned_w(&first));
}

/// A cosine run's rates follow from its `--epochs`, so resuming with another is refused,
/// naming both; a changed byte in the checkpoint (a tensor's, the header's) is refused
/// naming the part and how to start over; the same resume then still works.
#[test]
fn resume_refuses_another_cosine_length_and_a_damaged_checkpoint() {
    let dir = out("cosine");
    assert_eq!(run_bin(&tiny(&dir, "1", false)).0, Some(0));
    resume_refused(
        &tiny(&dir, "2", true),
        &["cosine", "--epochs 1", "--epochs 2"],
    );
    let path = dir.join("checkpoint.safetensors");
    let good = std::fs::read(&path).unwrap();
    let (header, meta) = safetensors::SafeTensors::read_metadata(&good).unwrap();
    let last = good.len() - 8 - header - 1;
    let (name, _) = meta
        .tensors()
        .into_iter()
        .find(|(_, t)| (t.data_offsets.0..t.data_offsets.1).contains(&last))
        .unwrap();
    for (at, part) in [
        (good.len() - 1, format!("tensor '{name}'")),
        (8 + header / 2, "header".to_string()),
    ] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        resume_refused(
            &tiny(&dir, "1", true),
            &["corrupt", &part, "without --resume"],
        );
    }
    std::fs::write(&path, &good).unwrap();
    assert_eq!(run_bin(&tiny(&dir, "1", true)).0, Some(0));
}

/// A run killed before its first checkpoint leaves a directory without one: `--resume` says
/// so and how to start over; with no directory at all it says that, and makes none.
#[test]
fn resume_without_a_checkpoint_says_none_was_written() {
    let dir = out("early");
    std::fs::create_dir_all(&*dir).unwrap();
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    resume_refused(
        &tiny(&dir, "1", true),
        &["no checkpoint yet", "without --resume"],
    );
    let none = out("none");
    resume_refused(&tiny(&none, "1", true), &["no run directory", "--out"]);
    assert!(!none.exists(), "a refused resume makes no run directory");
}
