//! `cargo xtask`: the project's build and test tasks (std only, so it compiles in seconds).

mod android;
mod api;
mod bindings;
mod browser;
mod cluster;
mod header_check;
mod ios;
mod kotlin;
mod parse;
mod setup;
mod swift;
mod test;
mod util;

use std::process::{Command, ExitCode};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [--only STEPS] [--skip STEPS]
                   run every suite and end with `N passed, N failed` (what CI runs);
                   STEPS is a comma-separated list of: fmt, clippy, rust, cluster, kotlin,
                   android, swift, ios, header, browser, api, bench
  setup [kotlin|swift|browser|all]
                   install the binding-test toolchains without running tests (JNA, JUnit,
                   the Kotlin compiler, the Debian trixie chroot with Swift, node, chromium
                   and web/node_modules); default: all
  bindings         build presence-ffi and generate Kotlin + Swift into target/bindings/
  size             build presence-ffi with the release-small profile and print its size
  bench [ARGS..]   cargo run -p presence-bench --release -- ARGS..
  cluster [--port PORT]
                   run a three-node cluster on this machine: its own PostgreSQL and Redis,
                   nodes on PORT, PORT+1, PORT+2 (default 8081) with the demo account

Toolchains are cached in ${XDG_CACHE_HOME:-$HOME/.cache}/presence/.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first().map(String::as_str) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if matches!(cmd, "help" | "-h" | "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let ctx = match util::Ctx::discover() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rest = &args[1..];
    let result = match cmd {
        "test" => return ExitCode::from(test::test(&ctx, rest) as u8),
        "setup" => setup::setup(&ctx, rest.first().map(String::as_str).unwrap_or("all")),
        "bindings" => bindings::bindings(&ctx),
        "size" => bindings::size(&ctx),
        "cluster" => cluster::cluster(&ctx, rest),
        "bench" => {
            let mut c: Command = ctx.cargo();
            c.args(["run", "-p", "presence-bench", "--release", "--"])
                .args(rest);
            return match c.status() {
                Ok(s) => ExitCode::from(s.code().unwrap_or(1).clamp(0, 255) as u8),
                Err(e) => {
                    eprintln!("error: cannot run cargo: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        other => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
