//! `cargo xtask test`: every suite, each counted, then a summary and `N passed, N failed`.

use crate::util::{self, Ctx, RunOpts};
use crate::{android, bindings, browser, header_check, ios, kotlin, parse, setup, swift};
use std::time::{Duration, Instant};

/// Debian packages the Rust tests and the benchmarks start real instances of (PostgreSQL
/// and Redis, through `presence_test_support::stores`).
pub const STORE_PACKAGES: &[&str] = &["postgresql", "redis-server"];

/// Installs [`STORE_PACKAGES`] if missing; `Err` is the outcome to report instead of running.
fn ensure_stores() -> Result<(), Outcome> {
    setup::apt_install(STORE_PACKAGES).map_err(|e| {
        Outcome::broken(format!(
            "could not install {} for the store tests: {e}",
            STORE_PACKAGES.join(" ")
        ))
    })
}

/// The result of one suite.
pub struct Outcome {
    pub passed: u64,
    pub failed: u64,
    pub note: String,
}

impl Outcome {
    /// A suite that could not run to its end counts as one failure.
    pub fn broken(note: impl Into<String>) -> Outcome {
        Outcome {
            passed: 0,
            failed: 1,
            note: note.into(),
        }
    }

    fn single(ok: bool, note: &str) -> Outcome {
        Outcome {
            passed: ok as u64,
            failed: !ok as u64,
            note: if ok { String::new() } else { note.to_string() },
        }
    }
}

pub const STEPS: &[&str] = &[
    "fmt", "clippy", "rust", "cluster", "kotlin", "android", "swift", "ios", "header", "browser",
    "api", "bench",
];

struct Row {
    name: &'static str,
    outcome: Option<Outcome>,
    skipped: String,
    elapsed: Duration,
}

fn title(name: &str) -> &'static str {
    match name {
        "fmt" => "format: cargo fmt --all -- --check",
        "clippy" => "lint: cargo clippy --workspace --all-targets -- -D warnings",
        "rust" => "Rust tests: cargo test --workspace --no-fail-fast",
        "cluster" => "end-to-end tests again, every server a cluster node on PostgreSQL + Redis",
        "kotlin" => "Kotlin binding tests (JVM, JUnit 4, JNA)",
        "android" => "Android shell tests (JVM) + glue type-checked against android-all",
        "swift" => "Swift binding tests (XCTest in the Debian trixie chroot)",
        "ios" => "iOS shell tests (PresenceShell, XCTest in the Debian trixie chroot)",
        "header" => "C header check: every declared function links against libpresence_ffi.so",
        "browser" => "web: type-check, bundle current, browser tests (headless chromium)",
        "api" => "API: OpenAPI document validated, schemathesis with every credential",
        "bench" => "bench smoke: cargo run -p presence-bench -- --quick (the test build's profile)",
        _ => "",
    }
}

/// Why a step does not apply to this checkout yet, if it does not.
fn not_applicable(ctx: &Ctx, name: &str) -> Option<String> {
    match name {
        "kotlin" if !kotlin::present(ctx) => Some(format!("no {}/", kotlin::TESTS_DIR)),
        "swift" if !swift::present(ctx) => Some(format!("no {}/Package.swift", swift::PACKAGE_DIR)),
        "android" if !android::present(ctx) => Some(format!("no {}/", android::SHELL_DIR)),
        "ios" if !ios::present(ctx) => Some(format!("no {}/Package.swift", ios::PACKAGE_DIR)),
        "header" if !ctx.has_package(bindings::FFI_PACKAGE) => {
            Some(format!("no {} package", bindings::FFI_PACKAGE))
        }
        "browser" if !browser::present(ctx) => {
            Some(format!("no {}/package.json", browser::WEB_DIR))
        }
        "bench" if !ctx.root.join("bench/Cargo.toml").is_file() => Some("no bench/ crate".into()),
        _ => None,
    }
}

fn run_step(ctx: &Ctx, name: &str) -> Outcome {
    match name {
        "fmt" => {
            let mut c = ctx.cargo();
            c.args(["fmt", "--all", "--", "--check"]);
            let out = util::run(&mut c, RunOpts::timeout(10));
            Outcome::single(out.ok(), "formatting differs: run `cargo fmt --all`")
        }
        "clippy" => {
            let mut c = ctx.cargo();
            c.args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]);
            let out = util::run(&mut c, RunOpts::timeout(45));
            Outcome::single(out.ok(), &format!("clippy failed ({})", out.why()))
        }
        "rust" => rust_tests(ctx),
        "cluster" => cluster_tests(ctx),
        "kotlin" => kotlin::run(ctx),
        "swift" => swift::run(ctx),
        "android" => android::run(ctx),
        "ios" => ios::run(ctx),
        "header" => header_check::run(ctx),
        "browser" => browser::run(ctx),
        "api" => crate::api::run(ctx),
        "bench" => {
            if let Err(o) = ensure_stores() {
                return o;
            }
            let mut c = ctx.cargo();
            // The test build's profile: no release build just to check that the harness
            // runs (a quick run checks no figures).
            c.args(["run", "-p", "presence-bench", "--", "--quick"]);
            let out = util::run(&mut c, RunOpts::timeout(15));
            Outcome::single(out.ok(), &format!("bench --quick failed ({})", out.why()))
        }
        other => Outcome::broken(format!("unknown step {other}")),
    }
}

/// `cargo test --workspace`. If the workspace does not build, no test runs at all; then each
/// package is tested on its own, so one broken crate does not hide the others' results.
fn rust_tests(ctx: &Ctx) -> Outcome {
    if let Err(o) = ensure_stores() {
        return o;
    }
    let mut c = ctx.cargo();
    c.args(["test", "--workspace", "--no-fail-fast"]);
    let out = util::run(&mut c, RunOpts::timeout(50));
    let (mut passed, mut failed, seen) = parse::cargo_test_totals(&out.stdout);
    if out.ok() {
        return Outcome {
            passed,
            failed,
            note: format!("{seen} test targets"),
        };
    }
    if seen > 0 || out.timed_out {
        let mut note = String::new();
        if failed == 0 {
            // A crashed or hung test binary.
            failed = 1;
            note = format!(
                "cargo test ended badly ({}) with no failing test reported",
                out.why()
            );
        }
        return Outcome {
            passed,
            failed,
            note,
        };
    }
    util::info("the workspace did not build; testing each package on its own");
    let mut broken = Vec::new();
    for pkg in ctx.packages() {
        util::header(&format!("rust: cargo test -p {pkg} --no-fail-fast"));
        let mut c = ctx.cargo();
        c.args(["test", "-p", &pkg, "--no-fail-fast"]);
        let out = util::run(&mut c, RunOpts::timeout(30));
        let (p, f, _) = parse::cargo_test_totals(&out.stdout);
        passed += p;
        failed += f;
        if !out.ok() && f == 0 {
            failed += 1;
            broken.push(pkg);
        }
    }
    Outcome {
        passed,
        failed,
        note: if broken.is_empty() {
            "tested package by package".into()
        } else {
            format!("did not build or ended badly: {}", broken.join(", "))
        },
    }
}

/// The end-to-end suite (`presence-e2e`) once more with `PRESENCE_TEST_BACKEND=cluster`:
/// every test server is then a cluster node on a real PostgreSQL and Redis, so each route and
/// rule is pinned on both backends.
fn cluster_tests(ctx: &Ctx) -> Outcome {
    if let Err(o) = ensure_stores() {
        return o;
    }
    let mut c = ctx.cargo();
    c.args(["test", "-p", "presence-e2e", "--no-fail-fast"])
        .env("PRESENCE_TEST_BACKEND", "cluster");
    let out = util::run(&mut c, RunOpts::timeout(20));
    let (passed, mut failed, seen) = parse::cargo_test_totals(&out.stdout);
    let mut note = format!("{seen} test targets in cluster mode");
    if !out.ok() && failed == 0 {
        failed = 1;
        note = format!(
            "cargo test ended badly ({}) with no failing test reported",
            out.why()
        );
    }
    Outcome {
        passed,
        failed,
        note,
    }
}

fn parse_list(v: Option<&String>) -> Result<Vec<String>, String> {
    let v = v.ok_or("expected a comma-separated list of steps")?;
    let list: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
    for s in &list {
        if !STEPS.contains(&s.as_str()) {
            return Err(format!("unknown step `{s}` (steps: {})", STEPS.join(", ")));
        }
    }
    Ok(list)
}

/// Runs the selected steps; returns the process exit code.
pub fn test(ctx: &Ctx, args: &[String]) -> i32 {
    let mut only: Option<Vec<String>> = None;
    let mut skip: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let r = match a.as_str() {
            "--only" => parse_list(it.next()).map(|l| only = Some(l)),
            "--skip" => parse_list(it.next()).map(|l| skip.extend(l)),
            other => Err(format!("unknown option `{other}` for `cargo xtask test`")),
        };
        if let Err(e) = r {
            eprintln!("error: {e}");
            return 2;
        }
    }
    let selected = |s: &str| {
        only.as_ref().is_none_or(|o| o.iter().any(|x| x == s)) && !skip.iter().any(|x| x == s)
    };

    let start = Instant::now();
    let total_steps = STEPS.len();
    let mut rows = Vec::new();
    for (i, &name) in STEPS.iter().enumerate() {
        let skipped = if !selected(name) {
            Some("not selected".to_string())
        } else {
            not_applicable(ctx, name)
        };
        if let Some(reason) = skipped {
            util::header(&format!(
                "[{}/{total_steps}] {name}: skipped ({reason})",
                i + 1
            ));
            rows.push(Row {
                name,
                outcome: None,
                skipped: reason,
                elapsed: Duration::ZERO,
            });
            continue;
        }
        util::header(&format!("[{}/{total_steps}] {}", i + 1, title(name)));
        let t = Instant::now();
        let outcome = run_step(ctx, name);
        let elapsed = t.elapsed();
        println!(
            "<== {name}: {} passed, {} failed ({}){}",
            outcome.passed,
            outcome.failed,
            util::secs(elapsed),
            if outcome.note.is_empty() {
                String::new()
            } else {
                format!(" - {}", outcome.note)
            }
        );
        util::flush();
        rows.push(Row {
            name,
            outcome: Some(outcome),
            skipped: String::new(),
            elapsed,
        });
    }

    let passed: u64 = rows
        .iter()
        .filter_map(|r| r.outcome.as_ref())
        .map(|o| o.passed)
        .sum();
    let failed: u64 = rows
        .iter()
        .filter_map(|r| r.outcome.as_ref())
        .map(|o| o.failed)
        .sum();
    println!();
    println!("==> summary");
    println!(
        "    {:<8} {:>7} {:>7} {:>9}  note",
        "suite", "passed", "failed", "time"
    );
    for r in &rows {
        match &r.outcome {
            Some(o) => println!(
                "    {:<8} {:>7} {:>7} {:>9}  {}{}",
                r.name,
                o.passed,
                o.failed,
                util::secs(r.elapsed),
                if o.failed > 0 { "FAILED " } else { "" },
                o.note
            ),
            None => println!(
                "    {:<8} {:>7} {:>7} {:>9}  skipped: {}",
                r.name, "-", "-", "-", r.skipped
            ),
        }
    }
    println!(
        "    {:<8} {:>7} {:>7} {:>9}",
        "total",
        passed,
        failed,
        util::secs(start.elapsed())
    );
    println!("{passed} passed, {failed} failed");
    util::flush();
    if failed > 0 { 1 } else { 0 }
}
