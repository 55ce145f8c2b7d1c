//! Kotlin binding tests on the JVM: generated bindings + bindings/kotlin wrappers -> one jar,
//! tests/kotlin -> a second jar, run with JNA against target/debug/libpresence_ffi.so.

use crate::bindings;
use crate::parse;
use crate::setup::{self, HAMCREST_JAR, JNA_JAR, JUNIT_JAR, Kotlin};
use crate::test::Outcome;
use crate::util::{self, Ctx, Res, RunOpts};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The test runner's entry point: `fun main()` in `tests/kotlin/Main.kt`, package
/// `dev.presence.tests`. Override with PRESENCE_KOTLIN_MAIN.
pub const MAIN_CLASS: &str = "dev.presence.tests.MainKt";
pub const TESTS_DIR: &str = "tests/kotlin";
pub const WRAPPERS_DIR: &str = "bindings/kotlin";

pub fn present(ctx: &Ctx) -> bool {
    ctx.root.join(TESTS_DIR).is_dir()
}

pub fn run(ctx: &Ctx) -> Outcome {
    match run_inner(ctx) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("    kotlin: {e}");
            Outcome::broken(e)
        }
    }
}

fn run_inner(ctx: &Ctx) -> Res<Outcome> {
    util::info("toolchain: JNA, JUnit, Kotlin compiler");
    let k = setup::ensure_kotlin(ctx)?;
    util::info(&format!(
        "kotlinc: {} ({})",
        k.kotlinc().display(),
        k.version
    ));

    util::info("building presence-ffi, uniffi-bindgen, presence-server and presence (debug)");
    bindings::build(ctx)?;
    let generated = bindings::generate(ctx, "kotlin")?;

    let work = ctx.target.join("kotlin");
    fs::create_dir_all(&work).map_err(|e| format!("create {}: {e}", work.display()))?;

    let coroutines = k.lib("kotlinx-coroutines-core-jvm.jar");
    let bindings_jar = bindings_jar(ctx, &k, &generated)?;

    let tests = util::files_with_ext(&ctx.root.join(TESTS_DIR), "kt");
    if tests.is_empty() {
        return Err(format!("{TESTS_DIR}/ has no .kt files"));
    }
    util::info(&format!(
        "tests jar: {} file(s) from {TESTS_DIR}/",
        tests.len()
    ));
    let mut test_cp = vec![
        bindings_jar.clone(),
        PathBuf::from(JNA_JAR),
        coroutines,
        PathBuf::from(JUNIT_JAR),
        k.lib("kotlin-test.jar"),
        k.lib("kotlin-test-junit.jar"),
    ];
    if Path::new(HAMCREST_JAR).is_file() {
        test_cp.push(PathBuf::from(HAMCREST_JAR));
    }
    let tests_jar = work.join("presence-kotlin-tests.jar");
    compile(&k, &tests, &test_cp, &tests_jar)?;

    let mut run_cp = vec![tests_jar];
    run_cp.extend(test_cp);
    run_cp.push(k.lib("kotlin-stdlib.jar"));
    run_cp.push(k.lib("kotlin-reflect.jar"));
    let main_class = std::env::var("PRESENCE_KOTLIN_MAIN").unwrap_or_else(|_| MAIN_CLASS.into());
    let server = util::path_str(&bindings::server_bin(ctx));
    let cli = util::path_str(&bindings::cli_bin(ctx));
    let mut java = Command::new("java");
    java.current_dir(&ctx.root)
        .arg(format!(
            "-Djna.library.path={}",
            util::path_str(&ctx.debug_dir())
        ))
        .arg(format!("-DPRESENCE_SERVER_BIN={server}"))
        .arg(format!("-DPRESENCE_CLI_BIN={cli}"))
        .arg("-Djava.awt.headless=true")
        .arg("-cp")
        .arg(util::join_classpath(&run_cp))
        .arg(&main_class)
        .env("PRESENCE_SERVER_BIN", &server)
        .env("PRESENCE_CLI_BIN", &cli)
        .env("PRESENCE_LIB_DIR", util::path_str(&ctx.debug_dir()));
    util::info(&format!("running {main_class}"));
    let out = util::run(&mut java, RunOpts::timeout(20));
    Ok(outcome(&out))
}

/// The generated bindings and the bindings/kotlin wrappers, compiled once into
/// target/kotlin/presence-bindings.jar (shared by the binding tests and the Android shell).
pub fn bindings_jar(ctx: &Ctx, k: &Kotlin, generated: &Path) -> Res<PathBuf> {
    let work = ctx.target.join("kotlin");
    fs::create_dir_all(&work).map_err(|e| format!("create {}: {e}", work.display()))?;
    let mut sources = util::files_with_ext(generated, "kt");
    let wrappers = util::files_with_ext(&ctx.root.join(WRAPPERS_DIR), "kt");
    util::info(&format!(
        "bindings jar: {} generated + {} wrapper file(s) from {WRAPPERS_DIR}/",
        sources.len(),
        wrappers.len()
    ));
    sources.extend(wrappers);
    let jar = work.join("presence-bindings.jar");
    compile(
        k,
        &sources,
        &[
            PathBuf::from(JNA_JAR),
            k.lib("kotlinx-coroutines-core-jvm.jar"),
        ],
        &jar,
    )?;
    Ok(jar)
}

fn outcome(out: &util::Output) -> Outcome {
    match parse::kotlin_totals(&out.stdout) {
        Some((p, f)) if f == 0 && !out.ok() => Outcome {
            passed: p,
            failed: 1,
            note: format!(
                "reported 0 failed but the runner ended badly ({})",
                out.why()
            ),
        },
        Some((p, f)) => Outcome {
            passed: p,
            failed: f,
            note: String::new(),
        },
        None => Outcome::broken(format!(
            "no `kotlin: N passed, N failed` line ({})",
            out.why()
        )),
    }
}

/// kotlinc-jvm `sources` into `jar`, skipped when sources, classpath and compiler are unchanged.
pub fn compile(k: &Kotlin, sources: &[PathBuf], classpath: &[PathBuf], jar: &Path) -> Res<()> {
    let cp = util::join_classpath(classpath);
    let mut inputs = sources.to_vec();
    inputs.extend(
        classpath
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "jar"))
            .cloned(),
    );
    let stamp = jar.with_extension("fingerprint");
    let fp = util::fingerprint(&inputs, &[&k.version, &cp]);
    let name = jar.file_name().unwrap_or_default().to_string_lossy();
    if jar.is_file() && fs::read_to_string(&stamp).is_ok_and(|s| s == fp) {
        util::info(&format!("{name} is up to date"));
        return Ok(());
    }
    let _ = fs::remove_file(jar);
    let _ = fs::remove_file(&stamp);
    let mut c = Command::new(k.kotlinc());
    c.args(["-jvm-target", "17", "-cp"])
        .arg(&cp)
        .arg("-d")
        .arg(jar)
        .args(sources);
    util::info(&format!(
        "compiling {name} ({} source files)",
        sources.len()
    ));
    let out = util::run(
        &mut c,
        RunOpts {
            prefix: "    kotlinc: ",
            ..RunOpts::timeout(15)
        },
    );
    if !out.ok() || !jar.is_file() {
        return Err(format!("kotlinc failed for {name} ({})", out.why()));
    }
    fs::write(&stamp, fp).map_err(|e| e.to_string())?;
    util::info(&format!("compiled {name} in {}", util::secs(out.elapsed)));
    Ok(())
}
