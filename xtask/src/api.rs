//! The API step: the OpenAPI document (`GET /v1/openapi.json`) of the debug `presence-server`
//! is validated by openapi-spec-validator, and schemathesis fuzzes the live server from it
//! with every kind of credential (`xtask/api/fuzz.py` says how), each run bounded in time:
//! no 5xx, no answer that contradicts the document.
//!
//! Both tools are pinned ([`PINS`]) and installed with pip into a venv under the cache
//! (pip reads its index from the machine's configuration). Counts: the document check and
//! one per credential, read from the driver's closing `api: N passed, N failed` line.

use crate::test::Outcome;
use crate::util::{self, Ctx, Res, RunOpts};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The pinned tools.
pub const PINS: &[&str] = &["schemathesis==4.32.5", "openapi-spec-validator==0.9.0"];
/// How long each credential's fuzzing run may take, in seconds.
const SECONDS_PER_RUN: &str = "30";
const ADMIN_TOKEN: &str = "api-step-operator-token";

pub fn run(ctx: &Ctx) -> Outcome {
    match run_inner(ctx) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("    api: {e}");
            Outcome::broken(e)
        }
    }
}

/// The venv with the pinned tools, created when missing.
fn ensure() -> Res<PathBuf> {
    let venv = util::cache_dir().join(format!("api-fuzz-{}", PINS.join("-").replace("==", "-")));
    let python = venv.join("bin/python");
    if venv.join("bin/schemathesis").is_file() && venv.join("bin/openapi-spec-validator").is_file()
    {
        return Ok(python);
    }
    util::info(&format!(
        "pip install {} into {}",
        PINS.join(" "),
        venv.display()
    ));
    let mut mk = Command::new("python3");
    mk.args(["-m", "venv"]).arg(&venv);
    let out = util::run(&mut mk, RunOpts::timeout(2));
    if !out.ok() {
        return Err(format!("python3 -m venv failed ({})", out.why()));
    }
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args(["install", "--quiet", "--disable-pip-version-check"])
        .args(PINS);
    let out = util::run(
        &mut pip,
        RunOpts {
            prefix: "    pip: ",
            ..RunOpts::timeout(10)
        },
    );
    if !out.ok() {
        let _ = util::remove_dir(&venv);
        return Err(format!("pip install failed ({})", out.why()));
    }
    Ok(python)
}

fn run_inner(ctx: &Ctx) -> Res<Outcome> {
    let python = ensure()?;
    util::info("building presence-server (debug)");
    let mut b = ctx.cargo();
    b.args(["build", "-p", "presence-server", "--bin", "presence-server"]);
    let out = util::run(&mut b, RunOpts::timeout(30));
    if !out.ok() {
        return Err(format!(
            "cargo build -p presence-server failed ({})",
            out.why()
        ));
    }
    let work = ctx.target.join("api");
    let _ = util::remove_dir(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("create {}: {e}", work.display()))?;
    // Long leases: the sessions the runs use must outlive them without heartbeats.
    let mut server = Command::new(ctx.debug_dir().join("presence-server"))
        .args(["--listen", "127.0.0.1:0", "--admin-token", ADMIN_TOKEN])
        .args([
            "--active-interval-ms",
            "600000",
            "--active-ttl-ms",
            "3600000",
        ])
        .arg("--data-dir")
        .arg(work.join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start presence-server: {e}"))?;
    let stdout = server.stdout.take().expect("piped");
    let url = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("listening on ").map(str::to_owned));
    let result = match url {
        None => Err("presence-server did not say where it listens".to_string()),
        Some(url) => {
            util::info(&format!("fuzzing {url} from its OpenAPI document"));
            let mut t = Command::new(&python);
            // Run from the work directory: schemathesis keeps its run cache (`.schemathesis/`)
            // in the current directory, and it belongs with this run's output, not the clone.
            t.arg(ctx.root.join("xtask/api/fuzz.py"))
                .args([url.as_str(), ADMIN_TOKEN, SECONDS_PER_RUN])
                .arg(&work)
                .current_dir(&work);
            Ok(util::run(
                &mut t,
                RunOpts {
                    prefix: "    ",
                    ..RunOpts::timeout(8)
                },
            ))
        }
    };
    util::kill_tree(server.id());
    let _ = server.wait();
    let out = result?;
    Ok(match crate::browser::totals_of("api", &out.stdout) {
        Some((passed, failed)) => Outcome {
            passed,
            failed: if failed == 0 && !out.ok() { 1 } else { failed },
            note: format!("document and schemathesis output in {}", work.display()),
        },
        None => Outcome {
            passed: 0,
            failed: 1,
            note: format!("no `api: N passed, N failed` line ({})", out.why()),
        },
    })
}
