//! Building presence-ffi and generating the Kotlin and Swift bindings with uniffi-bindgen.

use crate::util::{self, Ctx, Res, RunOpts};
use std::fs;
use std::path::PathBuf;
use std::process::Command;

pub const FFI_PACKAGE: &str = "presence-ffi";
pub const BINDGEN_PACKAGE: &str = "uniffi-bindgen";
pub const LIB_FILE: &str = "libpresence_ffi.so";
/// The native library name the generated code loads and the Swift module map links.
pub const LIB_NAME: &str = "presence_ffi";
pub const SERVER_PACKAGE: &str = "presence-server";
pub const SERVER_BIN: &str = "presence-server";
pub const CLI_PACKAGE: &str = "presence-cli";
pub const CLI_BIN: &str = "presence";

/// The unstripped debug cdylib (bindings are generated from its metadata).
pub fn lib_path(ctx: &Ctx) -> PathBuf {
    ctx.debug_dir().join(LIB_FILE)
}

pub fn server_bin(ctx: &Ctx) -> PathBuf {
    ctx.debug_dir().join(SERVER_BIN)
}

pub fn cli_bin(ctx: &Ctx) -> PathBuf {
    ctx.debug_dir().join(CLI_BIN)
}

pub fn out_dir(ctx: &Ctx, lang: &str) -> PathBuf {
    ctx.target.join("bindings").join(lang)
}

fn require_ffi(ctx: &Ctx) -> Res<()> {
    if ctx.has_package(FFI_PACKAGE) {
        Ok(())
    } else {
        Err(format!(
            "the workspace has no `{FFI_PACKAGE}` package yet (bindings/ is not a member)"
        ))
    }
}

/// One `cargo build` (debug) of presence-ffi, the uniffi-bindgen binary, the server and the CLI.
///
/// Always the same package set in one invocation: cargo unifies features over the packages it
/// builds together, so a different set (or `cargo run -p uniffi-bindgen` on its own) would
/// compile uniffi and tokio a second time with other features.
pub fn build(ctx: &Ctx) -> Res<()> {
    require_ffi(ctx)?;
    ctx.once("build", || {
        let mut c = ctx.cargo();
        c.arg("build");
        for p in [FFI_PACKAGE, BINDGEN_PACKAGE, SERVER_PACKAGE, CLI_PACKAGE] {
            if ctx.has_package(p) {
                c.args(["-p", p]);
            }
        }
        util::info(&format!("$ {}", util::show_cmd(&c)));
        let out = util::run(&mut c, RunOpts::timeout(60));
        if !out.ok() {
            return Err(format!("cargo build failed ({})", out.why()));
        }
        if !lib_path(ctx).is_file() {
            return Err(format!(
                "{} was not produced (is presence-ffi a cdylib?)",
                lib_path(ctx).display()
            ));
        }
        Ok(())
    })
}

/// Generates `lang` (kotlin or swift) bindings into target/bindings/<lang>, from a fresh folder:
/// `uniffi-bindgen generate --no-format target/debug/libpresence_ffi.so --language <lang>
/// --out-dir target/bindings/<lang>`, with the binary `build` just made (what
/// `cargo run -p uniffi-bindgen -- ...` runs, without a build of its own).
pub fn generate(ctx: &Ctx, lang: &str) -> Res<PathBuf> {
    let out = out_dir(ctx, lang);
    ctx.once(&format!("generate {lang}"), || {
        if !ctx.has_package(BINDGEN_PACKAGE) {
            return Err(format!(
                "the workspace has no `{BINDGEN_PACKAGE}` bin package yet"
            ));
        }
        build(ctx)?;
        let bindgen = ctx.debug_dir().join(BINDGEN_PACKAGE);
        if !bindgen.is_file() {
            return Err(format!("{} was not built", bindgen.display()));
        }
        util::remove_dir(&out)?;
        fs::create_dir_all(&out).map_err(|e| format!("create {}: {e}", out.display()))?;
        let mut c = Command::new(&bindgen);
        c.current_dir(&ctx.root)
            .args(["generate", "--no-format"])
            .arg(lib_path(ctx))
            .args(["--language", lang, "--out-dir"])
            .arg(&out);
        util::info(&format!("$ {}", util::show_cmd(&c)));
        let run = util::run(&mut c, RunOpts::timeout(10));
        if !run.ok() {
            return Err(format!(
                "uniffi-bindgen generate --language {lang} failed ({})",
                run.why()
            ));
        }
        let ext = if lang == "kotlin" { "kt" } else { lang };
        if util::files_with_ext(&out, ext).is_empty() {
            return Err(format!(
                "uniffi-bindgen wrote no .{ext} file into {}",
                out.display()
            ));
        }
        for f in util::files_with_ext(&out, ext)
            .iter()
            .chain(util::files_with_ext(&out, "h").iter())
            .chain(util::files_with_ext(&out, "modulemap").iter())
        {
            util::info(&format!(
                "generated {}",
                f.strip_prefix(&ctx.root).unwrap_or(f).display()
            ));
        }
        Ok(())
    })?;
    Ok(out)
}

/// `cargo xtask bindings`.
pub fn bindings(ctx: &Ctx) -> Res<()> {
    util::header("bindings: build presence-ffi and generate Kotlin + Swift");
    let k = generate(ctx, "kotlin")?;
    let s = generate(ctx, "swift")?;
    println!();
    println!("Kotlin: {}", k.display());
    println!("Swift:  {}", s.display());
    Ok(())
}

/// `cargo xtask size`: the release-small cdylib's size in bytes.
pub fn size(ctx: &Ctx) -> Res<()> {
    require_ffi(ctx)?;
    util::header("size: cargo build -p presence-ffi --profile release-small");
    let mut c = ctx.cargo();
    c.args(["build", "-p", FFI_PACKAGE, "--profile", "release-small"]);
    let out = util::run(&mut c, RunOpts::timeout(60));
    if !out.ok() {
        return Err(format!("release-small build failed ({})", out.why()));
    }
    let lib = ctx.target.join("release-small").join(LIB_FILE);
    let bytes = fs::metadata(&lib)
        .map_err(|e| format!("{}: {e}", lib.display()))?
        .len();
    println!();
    println!(
        "{}: {bytes} bytes ({:.2} MB)",
        lib.strip_prefix(&ctx.root).unwrap_or(&lib).display(),
        bytes as f64 / 1e6
    );
    Ok(())
}
