//! The web suite: the widget's TypeScript type-checks, the committed bundles in `web/dist/`
//! are what `web/build.mjs` makes from the sources today and within the gzip budget, and the
//! browser tests (`web/test/browser.mjs`, playwright-core driving Debian's chromium against
//! the debug `presence-server`, with the debug `presence` CLI as another device) pass. Installs Node/npm, chromium and the pinned npm packages
//! (`npm ci` from `web/package-lock.json`) when missing.
//!
//! Counts: one each for the type-check and the bundle check, plus every browser test, read
//! from the runner's closing `browser: N passed, N failed` line.

use crate::setup;
use crate::test::Outcome;
use crate::util::{self, Ctx, Res, RunOpts};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const WEB_DIR: &str = "web";
pub const CHROMIUM: &str = "/usr/bin/chromium";
const NPM_STAMP: &str = "node_modules/.presence-lock";

pub fn present(ctx: &Ctx) -> bool {
    ctx.root.join(WEB_DIR).join("package.json").is_file()
}

fn web(ctx: &Ctx) -> PathBuf {
    ctx.root.join(WEB_DIR)
}

pub fn run(ctx: &Ctx) -> Outcome {
    match run_inner(ctx) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("    browser: {e}");
            Outcome::broken(e)
        }
    }
}

/// Node and npm, chromium, and `web/node_modules` as the lock file pins it.
pub fn ensure(ctx: &Ctx) -> Res<()> {
    if !util::on_path("node") || !util::on_path("npm") {
        setup::apt_install(&["nodejs", "npm"])?;
    }
    if !Path::new(CHROMIUM).is_file() {
        setup::apt_install(&["chromium"])?;
    }
    if !Path::new(CHROMIUM).is_file() {
        return Err(format!("{CHROMIUM} is missing after installing chromium"));
    }
    let dir = web(ctx);
    let lock = fs::read(dir.join("package-lock.json"))
        .map_err(|e| format!("read {WEB_DIR}/package-lock.json: {e}"))?;
    let want = util::fingerprint(&[dir.join("package-lock.json")], &[]);
    let stamp = dir.join(NPM_STAMP);
    if fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return Ok(());
    }
    util::info(&format!(
        "npm ci in {WEB_DIR}/ ({} byte lock file)",
        lock.len()
    ));
    let mut c = Command::new("npm");
    c.args(["ci", "--no-audit", "--no-fund", "--loglevel", "warn"])
        .current_dir(&dir);
    let out = util::run(
        &mut c,
        RunOpts {
            prefix: "    npm: ",
            ..RunOpts::timeout(10)
        },
    );
    if !out.ok() {
        return Err(format!("npm ci in {WEB_DIR}/ failed ({})", out.why()));
    }
    fs::write(&stamp, want).map_err(|e| format!("write {}: {e}", stamp.display()))?;
    Ok(())
}

fn run_inner(ctx: &Ctx) -> Res<Outcome> {
    util::info("toolchain: node, npm, chromium, web/node_modules");
    ensure(ctx)?;
    let dir = web(ctx);
    let mut passed = 0;
    let mut failed = 0;
    let mut notes = Vec::new();

    util::info("type-check: tsc --noEmit");
    let mut tsc = Command::new("node");
    tsc.args(["node_modules/typescript/bin/tsc", "--noEmit", "-p", "."])
        .current_dir(&dir);
    if util::run(&mut tsc, RunOpts::timeout(3)).ok() {
        passed += 1;
    } else {
        failed += 1;
        notes.push("tsc found type errors".to_string());
    }

    util::info("bundle check: node build.mjs --check (committed bundles current, gzip budget)");
    let mut check = Command::new("node");
    check.args(["build.mjs", "--check"]).current_dir(&dir);
    if util::run(&mut check, RunOpts::timeout(3)).ok() {
        passed += 1;
    } else {
        failed += 1;
        notes.push("web/dist is stale or over budget: run `npm run build` in web/".to_string());
    }

    // The CLI is the dashboard tests' "other device" in one test.
    util::info("building presence-server and presence (debug)");
    let mut b = ctx.cargo();
    b.args([
        "build",
        "-p",
        "presence-server",
        "--bin",
        "presence-server",
        "-p",
        "presence-cli",
        "--bin",
        "presence",
    ]);
    let out = util::run(&mut b, RunOpts::timeout(30));
    if !out.ok() {
        return Err(format!(
            "cargo build -p presence-server -p presence-cli failed ({})",
            out.why()
        ));
    }

    let server = ctx.debug_dir().join("presence-server");
    let cli = ctx.debug_dir().join("presence");
    let out_dir = ctx.target.join("browser");
    let mut t = Command::new("node");
    t.arg("test/browser.mjs")
        .current_dir(&dir)
        .env("PRESENCE_SERVER_BIN", util::path_str(&server))
        .env("PRESENCE_CLI_BIN", util::path_str(&cli))
        .env("PRESENCE_CHROMIUM", CHROMIUM)
        .env("PRESENCE_BROWSER_OUT", util::path_str(&out_dir));
    util::info("running web/test/browser.mjs (headless chromium)");
    let out = util::run(
        &mut t,
        RunOpts {
            prefix: "    ",
            ..RunOpts::timeout(10)
        },
    );
    match totals(&out.stdout) {
        Some((p, f)) => {
            passed += p;
            failed += f;
            if f == 0 && !out.ok() {
                failed += 1;
                notes.push(format!("the runner ended badly ({})", out.why()));
            }
        }
        None => {
            failed += 1;
            notes.push(format!(
                "no `browser: N passed, N failed` line ({})",
                out.why()
            ));
        }
    }
    notes.push(format!("screenshots in {}", out_dir.display()));
    Ok(Outcome {
        passed,
        failed,
        note: notes.join("; "),
    })
}

/// The last `browser: N passed, N failed` line.
pub fn totals(output: &str) -> Option<(u64, u64)> {
    totals_of("browser", output)
}

/// The last `NAME: N passed, N failed` line.
pub fn totals_of(name: &str, output: &str) -> Option<(u64, u64)> {
    output.lines().rev().find_map(|line| {
        let rest = line.trim().strip_prefix(name)?.strip_prefix(':')?;
        let mut it = rest.split(',').map(str::trim);
        let passed = it.next()?.strip_suffix(" passed")?.trim().parse().ok()?;
        let failed = it.next()?.strip_suffix(" failed")?.trim().parse().ok()?;
        Some((passed, failed))
    })
}

#[cfg(test)]
mod tests {
    use super::totals;

    #[test]
    fn reads_the_closing_line() {
        let out = "ok a\nFAILED b: x\nbrowser: 12 passed, 1 failed\n";
        assert_eq!(totals(out), Some((12, 1)));
        assert_eq!(totals("browser: 0 passed, 0 failed"), Some((0, 0)));
        assert_eq!(totals("nothing here"), None);
        assert_eq!(totals("browser: many passed, 0 failed"), None);
    }
}
