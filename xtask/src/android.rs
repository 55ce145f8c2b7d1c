//! The Android shell: its platform-free layer (`android/app/src/main/kotlin/dev/presence/shell`)
//! compiled with no Android classes and tested on the JVM against the real library and server
//! (`android/app/src/test/kotlin`), and its OS glue (`.../dev/presence/app`) compiled against a
//! real Android framework jar (`org.robolectric:android-all`, fetched with `mvn`).

use crate::bindings;
use crate::kotlin;
use crate::setup::{self, HAMCREST_JAR, JNA_JAR, JUNIT_JAR};
use crate::test::Outcome;
use crate::util::{self, Ctx, Res, RunOpts};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub const SHELL_DIR: &str = "android/app/src/main/kotlin/dev/presence/shell";
pub const GLUE_DIR: &str = "android/app/src/main/kotlin/dev/presence/app";
pub const TESTS_DIR: &str = "android/app/src/test/kotlin";
/// The glue's Robolectric tests (run on Java 21+, which Android 16's classes need).
pub const GLUE_TESTS_DIR: &str = "android/app/src/test/kotlin/dev/presence/app";
pub const GLUE_MAIN_CLASS: &str = "dev.presence.app.GlueMainKt";
pub const ROBOLECTRIC: &str = "org.robolectric:robolectric:4.16";
/// The instrumented Android 16 jar Robolectric 4.16 runs SDK 36 on.
pub const ANDROID_ALL_INSTRUMENTED: &str =
    "org.robolectric:android-all-instrumented:16-robolectric-13921718-i7";
/// Glue that extends classes of SDKs this machine cannot fetch (Firebase, the UnifiedPush
/// connector): built by Gradle only.
pub const SDK_GLUE_DIR: &str = "android/app/src/main/kotlin/dev/presence/app/push";
pub const MAIN_CLASS: &str = "dev.presence.shell.MainKt";
/// Android 16 (API 36), the framework jar Robolectric runs on.
pub const ANDROID_ALL: &str = "org.robolectric:android-all:16-robolectric-13921718";

pub fn present(ctx: &Ctx) -> bool {
    ctx.root.join(SHELL_DIR).is_dir()
}

pub fn run(ctx: &Ctx) -> Outcome {
    match run_inner(ctx) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("    android: {e}");
            Outcome::broken(e)
        }
    }
}

fn kt_files(dir: &Path, except: Option<&Path>) -> Vec<PathBuf> {
    util::files_with_ext(dir, "kt")
        .into_iter()
        .filter(|p| except.is_none_or(|e| !p.starts_with(e)))
        .collect()
}

fn run_inner(ctx: &Ctx) -> Res<Outcome> {
    util::info("toolchain: JNA, JUnit, Kotlin compiler, android-all");
    let k = setup::ensure_kotlin(ctx)?;
    let android_all = ensure_android_all(ctx)?;
    util::info(&format!("android-all: {}", android_all.display()));

    bindings::build(ctx)?;
    let generated = bindings::generate(ctx, "kotlin")?;
    let coroutines = k.lib("kotlinx-coroutines-core-jvm.jar");
    let bindings_jar = kotlin::bindings_jar(ctx, &k, &generated)?;

    let work = ctx.target.join("android");
    fs::create_dir_all(&work).map_err(|e| format!("create {}: {e}", work.display()))?;

    // The platform-free layer: no Android jar on the classpath, so an Android import fails here.
    let shell_jar = work.join("presence-shell.jar");
    let shell_cp = vec![
        bindings_jar.clone(),
        PathBuf::from(JNA_JAR),
        coroutines.clone(),
    ];
    kotlin::compile(
        &k,
        &kt_files(&ctx.root.join(SHELL_DIR), None),
        &shell_cp,
        &shell_jar,
    )?;

    // The glue, type-checked against the real Android 16 framework (compile-only).
    let glue = kt_files(&ctx.root.join(GLUE_DIR), Some(&ctx.root.join(SDK_GLUE_DIR)));
    let sdk_glue = kt_files(&ctx.root.join(SDK_GLUE_DIR), None);
    util::info(&format!(
        "glue: {} file(s) against {ANDROID_ALL}; {} file(s) in {SDK_GLUE_DIR}/ need Firebase or \
         the UnifiedPush connector and are built by Gradle only",
        glue.len(),
        sdk_glue.len()
    ));
    let mut glue_cp = vec![android_all, shell_jar.clone()];
    glue_cp.extend(shell_cp.iter().cloned());
    let glue_ok = kotlin::compile(&k, &glue, &glue_cp, &work.join("presence-glue.jar"));
    if let Err(e) = &glue_ok {
        eprintln!("    android glue: {e}");
    }

    let tests = kt_files(
        &ctx.root.join(TESTS_DIR),
        Some(&ctx.root.join(GLUE_TESTS_DIR)),
    );
    let mut test_cp = vec![shell_jar];
    test_cp.extend(shell_cp);
    test_cp.extend([
        PathBuf::from(JUNIT_JAR),
        k.lib("kotlin-test.jar"),
        k.lib("kotlin-test-junit.jar"),
    ]);
    if Path::new(HAMCREST_JAR).is_file() {
        test_cp.push(PathBuf::from(HAMCREST_JAR));
    }
    let tests_jar = work.join("presence-shell-tests.jar");
    kotlin::compile(&k, &tests, &test_cp, &tests_jar)?;

    let mut run_cp = vec![tests_jar];
    run_cp.extend(test_cp);
    run_cp.push(k.lib("kotlin-stdlib.jar"));
    run_cp.push(k.lib("kotlin-reflect.jar"));
    let server = util::path_str(&bindings::server_bin(ctx));
    let mut java = Command::new("java");
    java.current_dir(&ctx.root)
        .arg(format!(
            "-Djna.library.path={}",
            util::path_str(&ctx.debug_dir())
        ))
        .arg(format!("-DPRESENCE_SERVER_BIN={server}"))
        .arg("-Djava.awt.headless=true")
        .arg("-cp")
        .arg(util::join_classpath(&run_cp))
        .arg(MAIN_CLASS)
        .env("PRESENCE_SERVER_BIN", &server);
    util::info(&format!("running {MAIN_CLASS}"));
    let out = util::run(&mut java, RunOpts::timeout(15));
    let mut o = match totals(&out.stdout, "android:") {
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
            "no `android: N passed, N failed` line ({})",
            out.why()
        )),
    };
    // The glue compile counts as one test.
    match &glue_ok {
        Ok(()) => {
            o.passed += 1;
            o.note = join_note(&o.note, "glue compiled against android-all 36");
        }
        Err(_) => {
            o.failed += 1;
            o.note = join_note(&o.note, "FAILED: glue did not compile against android-all");
        }
    }
    if glue_ok.is_ok() {
        let glue_cp = [
            work.join("presence-glue.jar"),
            work.join("presence-shell.jar"),
            bindings_jar,
            PathBuf::from(JNA_JAR),
            coroutines,
        ];
        match robolectric(ctx, &k, &glue_cp) {
            Ok(Some((p, f))) => {
                o.passed += p;
                o.failed += f;
                o.note = join_note(
                    &o.note,
                    &format!("glue on Robolectric: {p} passed, {f} failed"),
                );
            }
            Ok(None) => {
                o.note = join_note(&o.note, "glue Robolectric tests skipped: no Java 21+ found");
            }
            Err(e) => {
                eprintln!("    robolectric: {e}");
                o.failed += 1;
                o.note = join_note(&o.note, &format!("FAILED: glue on Robolectric: {e}"));
            }
        }
    }
    Ok(o)
}

/// Compiles and runs the glue's Robolectric tests; `None` when no Java 21+ is installed.
fn robolectric(ctx: &Ctx, k: &setup::Kotlin, app_cp: &[PathBuf]) -> Res<Option<(u64, u64)>> {
    let tests = kt_files(&ctx.root.join(GLUE_TESTS_DIR), None);
    if tests.is_empty() {
        return Ok(Some((0, 0)));
    }
    let Some(java) = java_21() else {
        return Ok(None);
    };
    let (robo_cp, deps) = ensure_robolectric(ctx)?;
    let android_all = ensure_android_all(ctx)?;
    let junit = [PathBuf::from(JUNIT_JAR), PathBuf::from(HAMCREST_JAR)];
    let mut cp = vec![android_all];
    cp.extend(robo_cp);
    cp.extend(app_cp.iter().cloned());
    cp.extend(junit);
    let jar = ctx.target.join("android").join("presence-glue-tests.jar");
    kotlin::compile(k, &tests, &cp, &jar)?;
    let mut run_cp = vec![jar];
    run_cp.extend(cp);
    run_cp.push(k.lib("kotlin-stdlib.jar"));
    let mut c = Command::new(&java);
    c.current_dir(&ctx.root)
        .arg("-Drobolectric.offline=true")
        .arg(format!("-Drobolectric.dependency.dir={}", deps.display()))
        .arg(format!(
            "-Djna.library.path={}",
            util::path_str(&ctx.debug_dir())
        ))
        .arg("--enable-native-access=ALL-UNNAMED")
        .arg("-cp")
        .arg(util::join_classpath(&run_cp))
        .arg(GLUE_MAIN_CLASS);
    util::info(&format!("running {GLUE_MAIN_CLASS} on {}", java.display()));
    let out = util::run(&mut c, RunOpts::timeout(10));
    match totals(&out.stdout, "robolectric:") {
        Some((p, f)) if f == 0 && !out.ok() => Err(format!(
            "reported {p} passed but the runner ended badly ({})",
            out.why()
        )),
        Some(t) => Ok(Some(t)),
        None => Err(format!(
            "no `robolectric: N passed, N failed` line ({})",
            out.why()
        )),
    }
}

/// A `java` of version 21 or newer: `$JAVA_HOME`, then each JVM under /usr/lib/jvm.
fn java_21() -> Option<PathBuf> {
    let mut homes: Vec<PathBuf> = std::env::var_os("JAVA_HOME")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Ok(rd) = fs::read_dir("/usr/lib/jvm") {
        let mut more: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        more.sort();
        homes.extend(more);
    }
    homes
        .into_iter()
        .map(|h| h.join("bin/java"))
        .filter(|j| j.is_file())
        .find(|j| {
            let out = Command::new(j).arg("-version").output();
            let text = out
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .unwrap_or_default();
            java_major(&text).is_some_and(|v| v >= 21)
        })
}

/// The major version in `java -version` output (`openjdk version "25.0.1" ...`).
fn java_major(text: &str) -> Option<u32> {
    let v = text.split('"').nth(1)?;
    v.split('.').next()?.parse().ok()
}

/// Robolectric's runtime classpath (resolved by `mvn dependency:build-classpath`, its AARs'
/// classes unpacked) and the folder holding the instrumented Android jar, in the cache.
fn ensure_robolectric(ctx: &Ctx) -> Res<(Vec<PathBuf>, PathBuf)> {
    let version = ROBOLECTRIC.rsplit(':').next().unwrap_or_default();
    let dir = ctx.cache.join(format!("robolectric-{version}"));
    let deps = dir.join("deps");
    let cp_file = dir.join("classpath.txt");
    let marker = dir.join(".presence-ready");
    if !marker.is_file() {
        if !util::on_path("mvn") {
            setup::apt_install(&["maven"])?;
        }
        if !util::on_path("unzip") {
            setup::apt_install(&["unzip"])?;
        }
        util::remove_dir(&dir)?;
        fs::create_dir_all(dir.join("aar")).map_err(|e| e.to_string())?;
        let (group, rest) = ROBOLECTRIC.split_once(':').unwrap_or_default();
        let artifact = rest.split(':').next().unwrap_or_default();
        let pom = format!(
            "<project><modelVersion>4.0.0</modelVersion>\
             <groupId>dev.presence</groupId><artifactId>robolectric-classpath</artifactId>\
             <version>1</version><dependencies><dependency><groupId>{group}</groupId>\
             <artifactId>{artifact}</artifactId><version>{version}</version></dependency>\
             </dependencies></project>\n"
        );
        fs::write(dir.join("pom.xml"), pom).map_err(|e| e.to_string())?;
        util::info(&format!(
            "resolving {ROBOLECTRIC} and {ANDROID_ALL_INSTRUMENTED} (about 400 MB) with mvn into {}",
            dir.display()
        ));
        let mut mvn = Command::new("mvn");
        mvn.args(["-B", "-q", "dependency:build-classpath"])
            .arg(format!("-Dmdep.outputFile={}", cp_file.display()))
            .current_dir(&dir);
        let out = util::run(
            &mut mvn,
            RunOpts {
                prefix: "    mvn: ",
                ..RunOpts::timeout(20)
            },
        );
        if !out.ok() {
            return Err(format!(
                "mvn dependency:build-classpath failed ({})",
                out.why()
            ));
        }
        let mut mvn = Command::new("mvn");
        mvn.args(["-B", "-q", "dependency:copy"])
            .arg(format!("-Dartifact={ANDROID_ALL_INSTRUMENTED}"))
            .arg(format!("-DoutputDirectory={}", deps.display()))
            .current_dir(&dir);
        let out = util::run(
            &mut mvn,
            RunOpts {
                prefix: "    mvn: ",
                ..RunOpts::timeout(20)
            },
        );
        if !out.ok() {
            return Err(format!(
                "mvn dependency:copy {ANDROID_ALL_INSTRUMENTED} failed ({})",
                out.why()
            ));
        }
        fs::write(&marker, format!("{ROBOLECTRIC}\n")).map_err(|e| e.to_string())?;
    }
    let listed = fs::read_to_string(&cp_file).map_err(|e| format!("{}: {e}", cp_file.display()))?;
    let mut cp = Vec::new();
    for entry in listed.trim().split(':').filter(|e| !e.is_empty()) {
        let p = PathBuf::from(entry);
        if p.extension().is_some_and(|e| e == "aar") {
            // An AAR's code is its classes.jar.
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let jar = dir.join("aar").join(format!("{name}.jar"));
            if !jar.is_file() {
                let out = Command::new("unzip")
                    .arg("-p")
                    .arg(&p)
                    .arg("classes.jar")
                    .output()
                    .map_err(|e| format!("unzip {}: {e}", p.display()))?;
                if !out.status.success() {
                    return Err(format!("no classes.jar in {}", p.display()));
                }
                fs::write(&jar, out.stdout).map_err(|e| e.to_string())?;
            }
            cp.push(jar);
        } else {
            cp.push(p);
        }
    }
    Ok((cp, deps))
}

fn join_note(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}; {b}")
    }
}

/// The last `<prefix> N passed, N failed` line.
pub fn totals(output: &str, prefix: &str) -> Option<(u64, u64)> {
    output.lines().rev().find_map(|line| {
        let rest = line.trim().strip_prefix(prefix)?;
        let toks: Vec<&str> = rest
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|t| !t.is_empty())
            .collect();
        let before = |word: &str| {
            toks.windows(2)
                .find(|w| w[1] == word)
                .and_then(|w| w[0].parse::<u64>().ok())
        };
        Some((before("passed")?, before("failed")?))
    })
}

/// `android-all` from Maven Central through the machine's `mvn` (its own mirror settings), into
/// the cache: `~/.cache/presence/android-all-<version>/android-all-<version>.jar`.
pub fn ensure_android_all(ctx: &Ctx) -> Res<PathBuf> {
    let version = ANDROID_ALL.rsplit(':').next().unwrap_or_default();
    let dir = ctx.cache.join(format!("android-all-{version}"));
    let jar = dir.join(format!("android-all-{version}.jar"));
    if dir.join(".presence-ready").is_file() && jar.is_file() {
        return Ok(jar);
    }
    if !util::on_path("mvn") {
        setup::apt_install(&["maven"])?;
    }
    util::remove_dir(&dir)?;
    fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    util::info(&format!(
        "fetching {ANDROID_ALL} (about 190 MB) with mvn into {}",
        dir.display()
    ));
    let start = Instant::now();
    let mut mvn = Command::new("mvn");
    mvn.args(["-B", "-q", "dependency:copy"])
        .arg(format!("-Dartifact={ANDROID_ALL}"))
        .arg(format!("-DoutputDirectory={}", dir.display()))
        .current_dir(&dir);
    let out = util::run(
        &mut mvn,
        RunOpts {
            prefix: "    mvn: ",
            ..RunOpts::timeout(20)
        },
    );
    if !out.ok() || !jar.is_file() {
        return Err(format!(
            "mvn dependency:copy {ANDROID_ALL} failed ({})",
            out.why()
        ));
    }
    fs::write(dir.join(".presence-ready"), format!("{ANDROID_ALL}\n"))
        .map_err(|e| e.to_string())?;
    util::info(&format!(
        "android-all ready in {}",
        util::secs(start.elapsed())
    ));
    Ok(jar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_java_major_version() {
        assert_eq!(
            java_major("openjdk version \"25.0.1\" 2025-10-21 LTS"),
            Some(25)
        );
        assert_eq!(
            java_major("openjdk version \"17.0.13\" 2024-10-15"),
            Some(17)
        );
        assert_eq!(java_major("nothing"), None);
    }

    #[test]
    fn reads_the_last_prefixed_summary_line() {
        let out = "android: 1 passed, 0 failed\nnoise\nandroid: 17 passed, 2 failed\n";
        assert_eq!(totals(out, "android:"), Some((17, 2)));
        assert_eq!(totals(out, "ios:"), None);
    }
}
