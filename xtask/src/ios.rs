//! The iOS shell: the SwiftPM package in ios/ (the platform-free `PresenceShell` layer, its
//! XCTest suite, and the app glue behind `canImport(UIKit)`, which Linux parses but does not
//! type-check), completed with the generated bindings and the library, built and run inside
//! the Debian trixie chroot the Swift binding tests use.

use crate::bindings;
use crate::parse;
use crate::setup;
use crate::swift;
use crate::test::Outcome;
use crate::util::{self, Ctx, Res, RunOpts};

pub const PACKAGE_DIR: &str = "ios";
/// Where the package is assembled, as seen from inside the chroot (its own SwiftPM .build).
pub const WORK_IN_CHROOT: &str = "/work/presence-ios";

pub fn present(ctx: &Ctx) -> bool {
    ctx.root.join(PACKAGE_DIR).join("Package.swift").is_file()
}

pub fn run(ctx: &Ctx) -> Outcome {
    match run_inner(ctx) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("    ios: {e}");
            Outcome::broken(e)
        }
    }
}

fn run_inner(ctx: &Ctx) -> Res<Outcome> {
    let chroot = setup::ensure_swift(ctx)?;
    bindings::build(ctx)?;
    let generated = bindings::generate(ctx, "swift")?;
    let work = chroot.join(WORK_IN_CHROOT.trim_start_matches('/'));
    let l = swift::assemble_package(ctx, PACKAGE_DIR, &generated, &work)?;
    util::info(&format!(
        "assembled {PACKAGE_DIR}/ in {}: C module {} in {}/, bindings in {}/",
        work.display(),
        l.c_module,
        l.c_dir,
        l.swift_dir
    ));
    let env = vec![
        ("LD_LIBRARY_PATH", format!("{WORK_IN_CHROOT}/lib")),
        (
            "PRESENCE_SERVER_BIN",
            format!("{WORK_IN_CHROOT}/bin/{}", bindings::SERVER_BIN),
        ),
    ];
    let build =
        format!("cd {WORK_IN_CHROOT} && swift build --build-tests -Xlinker -L{WORK_IN_CHROOT}/lib");
    util::info(&format!("(chroot) $ {build}"));
    let mut c = setup::in_chroot(&chroot, &env, &["/bin/sh", "-c", &build]);
    let out = util::run(
        &mut c,
        RunOpts {
            prefix: "    ",
            ..RunOpts::timeout(30)
        },
    );
    if !out.ok() {
        return Err(format!("swift build failed ({})", out.why()));
    }
    let test = format!("cd {WORK_IN_CHROOT} && swift test --skip-build --disable-swift-testing");
    util::info(&format!("(chroot) $ {test}"));
    let mut c = setup::in_chroot(&chroot, &env, &["/bin/sh", "-c", &test]);
    let out = util::run(&mut c, RunOpts::timeout(15));
    Ok(match parse::xctest_totals(&out.all()) {
        Some((p, f, _)) if f == 0 && !out.ok() => Outcome {
            passed: p,
            failed: 1,
            note: format!(
                "XCTest reported 0 failures but swift test ended badly ({})",
                out.why()
            ),
        },
        Some((p, f, skipped)) => {
            println!("ios: {p} passed, {f} failed");
            Outcome {
                passed: p,
                failed: f,
                note: if skipped > 0 {
                    format!("{skipped} skipped")
                } else {
                    String::new()
                },
            }
        }
        None => Outcome::broken(format!(
            "no XCTest `Executed N tests, with M failures` line ({})",
            out.why()
        )),
    })
}
