//! Toolchains the binding tests need, installed on demand and cached outside the clone:
//! Debian's JNA and JUnit, the Kotlin compiler (npm package), and a Debian trixie chroot with
//! Swift.

use crate::parse;
use crate::util::{self, Ctx, Res, RunOpts};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const KOTLIN_VERSION: &str = "2.4.20";
pub const SWIFT_SUITE: &str = "trixie";
const READY_MARKER: &str = ".presence-ready";

/// Debian packages for the Kotlin tests: JNA (jar + native dispatch library) and JUnit 4.
pub const JVM_PACKAGES: &[&str] = &["libjna-java", "libjna-jni", "junit4"];
pub const JNA_JAR: &str = "/usr/share/java/jna.jar";
pub const JUNIT_JAR: &str = "/usr/share/java/junit4.jar";
pub const HAMCREST_JAR: &str = "/usr/share/java/hamcrest-core.jar";

fn dpkg_installed(pkg: &str) -> bool {
    util::capture(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_some_and(|s| s.ends_with("installed") && !s.contains("not-installed"))
}

/// Installs missing Debian packages; runs `apt-get update` only if the first attempt fails.
pub fn apt_install(pkgs: &[&str]) -> Res<()> {
    let missing: Vec<&str> = pkgs
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    util::info(&format!(
        "installing Debian packages: {}",
        missing.join(" ")
    ));
    let start = Instant::now();
    let install = || {
        let mut c = util::privileged("apt-get");
        c.env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing);
        util::run(
            &mut c,
            RunOpts {
                prefix: "    apt: ",
                ..RunOpts::timeout(20)
            },
        )
    };
    if !install().ok() {
        util::info("install failed; running apt-get update and trying again");
        let mut up = util::privileged("apt-get");
        up.env("DEBIAN_FRONTEND", "noninteractive").arg("update");
        util::run(
            &mut up,
            RunOpts {
                prefix: "    apt: ",
                ..RunOpts::timeout(10)
            },
        );
        let second = install();
        if !second.ok() {
            return Err(format!(
                "apt-get install {} failed ({})",
                missing.join(" "),
                second.why()
            ));
        }
    }
    util::info(&format!(
        "installed {} in {}",
        missing.join(" "),
        util::secs(start.elapsed())
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// JVM + Kotlin

pub struct Kotlin {
    pub home: PathBuf,
    pub version: String,
}

impl Kotlin {
    pub fn kotlinc(&self) -> PathBuf {
        self.home.join("bin").join("kotlinc-jvm")
    }
    pub fn lib(&self, jar: &str) -> PathBuf {
        self.home.join("lib").join(jar)
    }
}

/// Java, JNA and JUnit from Debian.
pub fn ensure_jvm() -> Res<()> {
    if !util::on_path("java") {
        apt_install(&["default-jre-headless"])?;
    }
    apt_install(JVM_PACKAGES)?;
    for jar in [JNA_JAR, JUNIT_JAR] {
        if !Path::new(jar).is_file() {
            return Err(format!(
                "{jar} is missing after installing {JVM_PACKAGES:?}"
            ));
        }
    }
    Ok(())
}

pub fn kotlin_dir(ctx: &Ctx) -> PathBuf {
    ctx.cache.join(format!("kotlin-compiler-{KOTLIN_VERSION}"))
}

/// The Kotlin compiler, from the npm package `kotlin-compiler`, unpacked into the cache.
pub fn ensure_kotlin(ctx: &Ctx) -> Res<Kotlin> {
    ensure_jvm()?;
    let dir = kotlin_dir(ctx);
    let marker = dir.join(READY_MARKER);
    if !marker.is_file() || !dir.join("bin/kotlinc-jvm").is_file() {
        fetch_kotlin(&dir)?;
    }
    let version = fs::read_to_string(&marker)
        .unwrap_or_default()
        .trim()
        .to_string();
    Ok(Kotlin { home: dir, version })
}

fn fetch_kotlin(dir: &Path) -> Res<()> {
    if !util::on_path("npm") {
        return Err("npm is needed to fetch the Kotlin compiler (install Node.js and npm)".into());
    }
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let partial = dir.with_file_name(format!("{name}.partial"));
    util::remove_dir(dir)?;
    util::remove_dir(&partial)?;
    fs::create_dir_all(&partial).map_err(|e| format!("create {}: {e}", partial.display()))?;
    let spec = format!("kotlin-compiler@{KOTLIN_VERSION}");
    util::info(&format!(
        "fetching {spec} (about 90 MB) with `npm pack` into {}",
        dir.display()
    ));
    let start = Instant::now();
    let mut pack = Command::new("npm");
    pack.args(["pack", &spec, "--loglevel", "warn"])
        .current_dir(&partial);
    let out = util::run(
        &mut pack,
        RunOpts {
            prefix: "    npm: ",
            idle_note: Some(Duration::from_secs(15)),
            ..RunOpts::timeout(20)
        },
    );
    if !out.ok() {
        return Err(format!("npm pack {spec} failed ({})", out.why()));
    }
    let tarball = fs::read_dir(&partial)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tgz"))
        .ok_or("npm pack produced no .tgz")?;
    let size = fs::metadata(&tarball).map(|m| m.len()).unwrap_or(0);
    util::info(&format!(
        "fetched {} ({:.1} MB) in {}; unpacking",
        tarball.file_name().unwrap_or_default().to_string_lossy(),
        size as f64 / 1e6,
        util::secs(start.elapsed())
    ));
    let mut untar = Command::new("tar");
    untar
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&partial)
        .arg("--strip-components=1");
    let out = util::run(&mut untar, RunOpts::timeout(5));
    if !out.ok() {
        return Err(format!(
            "unpacking {} failed ({})",
            tarball.display(),
            out.why()
        ));
    }
    let _ = fs::remove_file(&tarball);
    let kotlinc = partial.join("bin/kotlinc-jvm");
    if !kotlinc.is_file() {
        return Err(format!(
            "{} has no bin/kotlinc-jvm",
            tarball.file_name().unwrap_or_default().to_string_lossy()
        ));
    }
    let mut v = Command::new(&kotlinc);
    v.arg("-version");
    let out = util::run(&mut v, RunOpts::quiet());
    let version = out
        .all()
        .lines()
        .find(|l| l.contains("kotlinc-jvm"))
        .map(|l| l.trim().trim_start_matches("info:").trim().to_string())
        .ok_or_else(|| format!("kotlinc-jvm -version failed: {}", out.all().trim()))?;
    fs::write(partial.join(READY_MARKER), format!("{version}\n")).map_err(|e| e.to_string())?;
    fs::rename(&partial, dir).map_err(|e| format!("rename into {}: {e}", dir.display()))?;
    util::info(&format!(
        "Kotlin compiler ready: {version} (took {})",
        util::secs(start.elapsed())
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Swift in a Debian trixie chroot

pub fn swift_dir(ctx: &Ctx) -> PathBuf {
    ctx.cache.join(format!("swift-{SWIFT_SUITE}"))
}

/// A command run inside the chroot: private mount and pid namespaces with a fresh /proc, so
/// nothing stays mounted and no process outlives the command. The environment is replaced by
/// `env` (plus a sane PATH, HOME and locale).
pub fn in_chroot(dir: &Path, env: &[(&str, String)], argv: &[&str]) -> Command {
    let mut c = util::privileged("unshare");
    c.arg("--mount")
        .arg("--pid")
        .arg("--fork")
        .arg(format!("--mount-proc={}", dir.join("proc").display()))
        .arg("chroot")
        .arg(dir)
        .arg("/usr/bin/env")
        .arg("-i")
        .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .arg("HOME=/root")
        .arg("LANG=C.UTF-8")
        .arg("DEBIAN_FRONTEND=noninteractive");
    for (k, v) in env {
        c.arg(format!("{k}={v}"));
    }
    c.args(argv);
    c
}

/// The Debian mirror this machine's apt uses, read from its sources at run time.
pub fn debian_mirror() -> Res<String> {
    if let Some(m) = std::env::var("PRESENCE_DEBIAN_MIRROR")
        .ok()
        .filter(|m| !m.trim().is_empty())
    {
        return Ok(m.trim().to_string());
    }
    let codename = fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VERSION_CODENAME=")
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_default();
    let mut sources = Vec::new();
    if let Ok(t) = fs::read_to_string("/etc/apt/sources.list") {
        sources.extend(parse::apt_one_line_sources(&t));
    }
    let mut files: Vec<PathBuf> = fs::read_dir("/etc/apt/sources.list.d")
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        let Ok(t) = fs::read_to_string(&f) else {
            continue;
        };
        match f.extension().and_then(|e| e.to_str()) {
            Some("sources") => sources.extend(parse::apt_deb822_sources(&t)),
            Some("list") => sources.extend(parse::apt_one_line_sources(&t)),
            _ => {}
        }
    }
    parse::pick_debian_mirror(&sources, &codename).ok_or_else(|| {
        "no Debian mirror found in /etc/apt/sources.list{,.d}; set PRESENCE_DEBIAN_MIRROR".into()
    })
}

/// A Debian trixie chroot with `swiftlang`, in the cache. A chroot without the ready marker is
/// half made (interrupted) and is rebuilt from scratch.
pub fn ensure_swift(ctx: &Ctx) -> Res<PathBuf> {
    let dir = swift_dir(ctx);
    if dir.join(READY_MARKER).is_file() {
        return Ok(dir);
    }
    let start = Instant::now();
    apt_install(&["debootstrap"])?;
    if dir.exists() {
        util::info(&format!(
            "removing an incomplete chroot at {}",
            dir.display()
        ));
        remove_chroot(&dir)?;
    }
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    let mirror = debian_mirror()?;
    util::info(&format!(
        "debootstrap --variant=minbase {SWIFT_SUITE} into {} from the machine's Debian mirror \
         (a few minutes)",
        dir.display()
    ));
    let mut boot = util::privileged("debootstrap");
    boot.arg("--variant=minbase")
        .arg(SWIFT_SUITE)
        .arg(&dir)
        .arg(&mirror);
    let out = util::run(
        &mut boot,
        RunOpts {
            prefix: "    debootstrap: ",
            ..RunOpts::timeout(40)
        },
    );
    if !out.ok() {
        return Err(format!("debootstrap failed ({})", out.why()));
    }
    util::info(&format!(
        "base system ready after {}",
        util::secs(start.elapsed())
    ));
    // Name resolution inside the chroot uses the host's resolver settings.
    if let Ok(resolv) = fs::read("/etc/resolv.conf") {
        let dest = dir.join("etc/resolv.conf");
        let _ = fs::remove_file(&dest);
        let _ = fs::write(&dest, resolv);
    }
    util::info("installing swiftlang and libc6-dev inside the chroot (about 500 MB of packages)");
    let t = Instant::now();
    let install = || {
        let mut c = in_chroot(
            &dir,
            &[],
            &[
                "apt-get",
                "install",
                "-y",
                "--no-install-recommends",
                "swiftlang",
                "libc6-dev",
            ],
        );
        util::run(
            &mut c,
            RunOpts {
                prefix: "    chroot apt: ",
                ..RunOpts::timeout(40)
            },
        )
    };
    if !install().ok() {
        util::info("install failed; running apt-get update in the chroot and trying again");
        let mut up = in_chroot(&dir, &[], &["apt-get", "update"]);
        util::run(
            &mut up,
            RunOpts {
                prefix: "    chroot apt: ",
                ..RunOpts::timeout(10)
            },
        );
        let second = install();
        if !second.ok() {
            return Err(format!(
                "installing swiftlang in the chroot failed ({})",
                second.why()
            ));
        }
    }
    let mut clean = in_chroot(&dir, &[], &["apt-get", "clean"]);
    util::run(&mut clean, RunOpts::quiet());
    util::info(&format!(
        "swiftlang installed in {}",
        util::secs(t.elapsed())
    ));
    let version = swift_version(&dir)?;
    fs::write(dir.join(READY_MARKER), format!("{version}\n")).map_err(|e| e.to_string())?;
    util::info(&format!(
        "Swift chroot ready: {version} (took {})",
        util::secs(start.elapsed())
    ));
    Ok(dir)
}

pub fn swift_version(dir: &Path) -> Res<String> {
    let mut c = in_chroot(dir, &[], &["swift", "--version"]);
    let out = util::run(&mut c, RunOpts::quiet());
    if !out.ok() {
        return Err(format!(
            "`swift --version` in the chroot failed ({}): {}",
            out.why(),
            out.all().trim()
        ));
    }
    Ok(out
        .all()
        .lines()
        .find(|l| l.contains("Swift version"))
        .unwrap_or("swift")
        .trim()
        .to_string())
}

/// Removes a chroot, first unmounting anything left mounted below it (an interrupted
/// debootstrap can leave /proc or /sys mounted), and never crossing into another file system.
fn remove_chroot(dir: &Path) -> Res<()> {
    let prefix = format!("{}/", dir.display());
    let mut mounts: Vec<String> = fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(String::from))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let mut u = util::privileged("umount");
        u.arg("-l").arg(&m);
        util::run(&mut u, RunOpts::quiet());
    }
    let mut rm = util::privileged("rm");
    rm.arg("-rf").arg("--one-file-system").arg(dir);
    let out = util::run(&mut rm, RunOpts::quiet());
    if !out.ok() || dir.exists() {
        return Err(format!(
            "could not remove {}: {}",
            dir.display(),
            out.all().trim()
        ));
    }
    Ok(())
}

/// `cargo xtask setup [kotlin|swift|all]`.
pub fn setup(ctx: &Ctx, what: &str) -> Res<()> {
    let all = what == "all";
    let mut failures = Vec::new();
    if all || what == "kotlin" {
        util::header("setup: JVM (JNA, JUnit) and Kotlin compiler");
        let t = Instant::now();
        match ensure_kotlin(ctx) {
            Ok(k) => {
                let mut v = Command::new(k.kotlinc());
                v.arg("-version");
                let out = util::run(&mut v, RunOpts::quiet());
                let line = out
                    .all()
                    .lines()
                    .find(|l| l.contains("kotlinc-jvm"))
                    .unwrap_or("")
                    .trim()
                    .to_string();
                if out.ok() && !line.is_empty() {
                    util::info(&format!("kotlinc-jvm -version: {line}"));
                    util::info(&format!("compiler: {}", k.kotlinc().display()));
                    util::info(&format!("JNA: {JNA_JAR}, JUnit: {JUNIT_JAR}"));
                    util::info(&format!("ok ({})", util::secs(t.elapsed())));
                } else {
                    failures.push(format!("kotlinc-jvm -version failed: {}", out.all().trim()));
                }
            }
            Err(e) => failures.push(format!("kotlin: {e}")),
        }
    }
    if all || what == "swift" {
        util::header("setup: Swift (Debian trixie chroot with swiftlang)");
        let t = Instant::now();
        match ensure_swift(ctx).and_then(|d| swift_version(&d).map(|v| (d, v))) {
            Ok((d, v)) => {
                util::info(&format!("swift --version (in chroot): {v}"));
                util::info(&format!("chroot: {}", d.display()));
                util::info(&format!("ok ({})", util::secs(t.elapsed())));
            }
            Err(e) => failures.push(format!("swift: {e}")),
        }
    }
    if all || what == "browser" {
        util::header("setup: node, npm, chromium and web/node_modules");
        if let Err(e) = crate::browser::ensure(ctx) {
            failures.push(format!("browser: {e}"));
        }
    }
    if !all && !matches!(what, "kotlin" | "swift" | "browser") {
        return Err(format!(
            "unknown setup target `{what}` (kotlin, swift, browser or all)"
        ));
    }
    if failures.is_empty() {
        println!();
        println!(
            "setup complete; toolchains are cached in {}",
            ctx.cache.display()
        );
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}
