//! Swift binding tests: the SwiftPM package in tests/swift, completed with the generated
//! bindings, the bindings/swift wrappers, the library and the server, built and run with XCTest
//! inside the Debian trixie chroot.

use crate::bindings;
use crate::parse;
use crate::setup;
use crate::test::Outcome;
use crate::util::{self, Ctx, Res, RunOpts};
use std::fs;
use std::path::{Path, PathBuf};

pub const PACKAGE_DIR: &str = "tests/swift";
pub const WRAPPERS_DIR: &str = "bindings/swift";
/// The Swift target that receives the generated Swift file and the wrappers.
pub const SWIFT_TARGET: &str = "Presence";
/// Where the package is assembled, as seen from inside the chroot.
pub const WORK_IN_CHROOT: &str = "/work/presence";

/// Where `assemble` put things, relative to the package root.
pub struct Layout {
    /// The C module the generated Swift imports (from uniffi's own .modulemap).
    pub c_module: String,
    /// Package.swift's `.systemLibrary` target and its folder.
    pub c_target: String,
    pub c_dir: String,
    /// Package.swift's `.target(name: "Presence")` and its folder.
    pub swift_target: String,
    pub swift_dir: String,
}

pub fn present(ctx: &Ctx) -> bool {
    ctx.root.join(PACKAGE_DIR).join("Package.swift").is_file()
}

pub fn run(ctx: &Ctx) -> Outcome {
    match run_inner(ctx) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("    swift: {e}");
            Outcome::broken(e)
        }
    }
}

fn chroot_env() -> Vec<(&'static str, String)> {
    vec![
        ("LD_LIBRARY_PATH", format!("{WORK_IN_CHROOT}/lib")),
        ("PRESENCE_LIB_DIR", format!("{WORK_IN_CHROOT}/lib")),
        (
            "PRESENCE_SERVER_BIN",
            format!("{WORK_IN_CHROOT}/bin/{}", bindings::SERVER_BIN),
        ),
        (
            "PRESENCE_CLI_BIN",
            format!("{WORK_IN_CHROOT}/bin/{}", bindings::CLI_BIN),
        ),
    ]
}

fn run_inner(ctx: &Ctx) -> Res<Outcome> {
    util::info("toolchain: Swift in the Debian trixie chroot");
    let chroot = setup::ensure_swift(ctx)?;
    util::info(&format!("chroot: {}", chroot.display()));

    util::info("building presence-ffi, uniffi-bindgen, presence-server and presence (debug)");
    bindings::build(ctx)?;
    let generated = bindings::generate(ctx, "swift")?;

    let work = chroot.join(WORK_IN_CHROOT.trim_start_matches('/'));
    let l = assemble(ctx, &generated, &work)?;
    util::info(&format!(
        "assembled the package in {}: C module {} in {}/ (target {}), Swift target {} in {}/",
        work.display(),
        l.c_module,
        l.c_dir,
        l.c_target,
        l.swift_target,
        l.swift_dir
    ));
    util::info(&format!(
        "(in compiler messages, {WORK_IN_CHROOT}/X is {PACKAGE_DIR}/X, except {dir}/Generated/ \
         (generated) and the rest of {dir}/ ({WRAPPERS_DIR}/))",
        dir = l.swift_dir
    ));
    let env = chroot_env();
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
    let out = util::run(&mut c, RunOpts::timeout(20));
    Ok(match parse::xctest_totals(&out.all()) {
        Some((p, f, _)) if f == 0 && !out.ok() => Outcome {
            passed: p,
            failed: 1,
            note: format!(
                "XCTest reported 0 failures but swift test ended badly ({})",
                out.why()
            ),
        },
        Some((p, f, skipped)) => Outcome {
            passed: p,
            failed: f,
            note: if skipped > 0 {
                format!("{skipped} skipped")
            } else {
                String::new()
            },
        },
        None => Outcome::broken(format!(
            "no XCTest `Executed N tests, with M failures` line ({})",
            out.why()
        )),
    })
}

/// Lays out the SwiftPM package in `work`:
///
/// ```text
/// <work>/Package.swift, Tests/...            copied from tests/swift/
/// <work>/<C dir>/<header>.h                   generated header
/// <work>/<C dir>/module.modulemap             module <CModule> { header ..; link "presence_ffi" }
/// <work>/<Swift dir>/Generated/*.swift        generated Swift
/// <work>/<Swift dir>/**/*.swift               bindings/swift/**/*.swift wrappers
/// <work>/lib/libpresence_ffi.so
/// <work>/bin/presence-server, bin/presence
/// ```
///
/// `<C dir>` is the folder of Package.swift's `.systemLibrary` target (its `path:`, else
/// `Sources/<name>`), `<Swift dir>` the folder of its `.target(name: "Presence")`. The module map
/// declares the C module under the name the generated Swift imports; SwiftPM accepts a system
/// library target whose name differs from its module's.
pub fn assemble(ctx: &Ctx, generated: &Path, work: &Path) -> Res<Layout> {
    assemble_package(ctx, PACKAGE_DIR, generated, work)
}

/// [`assemble`] for the SwiftPM package in `package_dir` (tests/swift, or ios/).
pub fn assemble_package(
    ctx: &Ctx,
    package_dir: &str,
    generated: &Path,
    work: &Path,
) -> Res<Layout> {
    fs::create_dir_all(work).map_err(|e| format!("create {}: {e}", work.display()))?;
    // Keep SwiftPM's .build between runs (incremental builds), replace everything else.
    for e in fs::read_dir(work).map_err(|e| e.to_string())?.flatten() {
        if e.file_name() == ".build" {
            continue;
        }
        let p = e.path();
        let r = if p.is_dir() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        r.map_err(|err| format!("remove {}: {err}", p.display()))?;
    }
    util::copy_tree(&ctx.root.join(package_dir), work)?;

    let manifest = fs::read_to_string(work.join("Package.swift"))
        .map_err(|e| format!("{package_dir}/Package.swift: {e}"))?;
    let (c_target, c_dir) = parse::swiftpm_targets(&manifest, "systemLibrary")
        .into_iter()
        .next()
        .map(|(n, p)| {
            let dir = p.unwrap_or_else(|| format!("Sources/{n}"));
            (n, dir)
        })
        .ok_or_else(|| {
            format!(
                "{package_dir}/Package.swift declares no .systemLibrary target for the C header; \
                 see docs/BINDINGS-TESTING.md"
            )
        })?;
    let targets = parse::swiftpm_targets(&manifest, "target");
    let (swift_target, swift_dir) = targets
        .iter()
        .find(|(n, _)| n == SWIFT_TARGET)
        .or_else(|| targets.first())
        .map(|(n, p)| {
            (
                n.clone(),
                p.clone().unwrap_or_else(|| format!("Sources/{n}")),
            )
        })
        .ok_or_else(|| {
            format!(
                "{package_dir}/Package.swift declares no .target(name: \"{SWIFT_TARGET}\") for the \
                 Swift API; see docs/BINDINGS-TESTING.md"
            )
        })?;
    for dir in [&c_dir, &swift_dir] {
        if Path::new(dir).is_absolute() || dir.split('/').any(|c| c == "..") {
            return Err(format!(
                "target path `{dir}` in Package.swift must stay inside the package"
            ));
        }
    }

    let headers = util::files_with_ext(generated, "h");
    let swift_files = util::files_with_ext(generated, "swift");
    if headers.is_empty() || swift_files.is_empty() {
        return Err(format!(
            "{} lacks the generated .h or .swift file",
            generated.display()
        ));
    }
    let c_module = util::files_with_ext(generated, "modulemap")
        .first()
        .and_then(|m| fs::read_to_string(m).ok())
        .and_then(|t| parse::modulemap_module_name(&t))
        .or_else(|| {
            headers[0]
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .ok_or("cannot tell the C module's name")?;

    let c_path = work.join(&c_dir);
    let mut map = format!("module {c_module} {{\n");
    for h in &headers {
        let name = h.file_name().unwrap_or_default().to_string_lossy();
        util::copy_file(h, &c_path.join(&*name))?;
        map.push_str(&format!("    header \"{name}\"\n"));
    }
    map.push_str(&format!(
        "    link \"{}\"\n    export *\n}}\n",
        bindings::LIB_NAME
    ));
    fs::write(c_path.join("module.modulemap"), map).map_err(|e| e.to_string())?;

    let swift_path = work.join(&swift_dir);
    for f in &swift_files {
        util::copy_file(
            f,
            &swift_path
                .join("Generated")
                .join(f.file_name().unwrap_or_default()),
        )?;
    }
    let wrappers_root = ctx.root.join(WRAPPERS_DIR);
    let wrappers: Vec<PathBuf> = util::files_with_ext(&wrappers_root, "swift")
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "Package.swift"))
        .collect();
    for w in &wrappers {
        let rel = w.strip_prefix(&wrappers_root).unwrap_or(w);
        util::copy_file(w, &swift_path.join(rel))?;
    }
    util::info(&format!(
        "{swift_dir}/ (target {swift_target}): {} generated + {} wrapper file(s); \
         {c_dir}/ (target {c_target}): {} header(s) + module.modulemap for module {c_module}",
        swift_files.len(),
        wrappers.len(),
        headers.len()
    ));

    util::copy_file(
        &bindings::lib_path(ctx),
        &work.join("lib").join(bindings::LIB_FILE),
    )?;
    for bin in [bindings::server_bin(ctx), bindings::cli_bin(ctx)] {
        if bin.is_file() {
            let name = bin.file_name().unwrap_or_default().to_owned();
            util::copy_file(&bin, &work.join("bin").join(name))?;
        }
    }
    Ok(Layout {
        c_module,
        c_target,
        c_dir,
        swift_target,
        swift_dir,
    })
}
