//! Checks a webhook's signature with the Standard Webhooks project's own JavaScript library
//! (the `standardwebhooks` npm package, pinned to [`VERSION`]), so the server's signing is
//! held to an implementation it does not share code with.
//!
//! The package is installed with the machine's npm into
//! `${XDG_CACHE_HOME:-$HOME/.cache}/presence/standardwebhooks-VERSION` on first use (into a
//! temporary directory renamed into place, so concurrent test processes never see half an
//! install). Without node and npm the check fails, naming what is missing.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::webhook::Hook;

/// The package version verified against.
pub const VERSION: &str = "1.1.1";

fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME");
    base.join("presence")
        .join(format!("standardwebhooks-{VERSION}"))
}

fn installed(dir: &std::path::Path) -> bool {
    let manifest = dir.join("node_modules/standardwebhooks/package.json");
    std::fs::read_to_string(manifest)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .is_some_and(|v| v["version"] == VERSION)
}

/// The directory holding `node_modules/standardwebhooks`, installing it if missing.
async fn ensure_installed() -> Result<PathBuf, String> {
    let dir = cache_dir();
    if installed(&dir) {
        return Ok(dir);
    }
    let parent = dir.parent().expect("a parent");
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let tmp = tempfile::tempdir_in(parent).map_err(|e| e.to_string())?;
    let manifest = json!({"private": true, "dependencies": {"standardwebhooks": VERSION}});
    std::fs::write(tmp.path().join("package.json"), manifest.to_string())
        .map_err(|e| e.to_string())?;
    let out = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(tmp.path())
        .output()
        .await
        .map_err(|e| format!("npm is needed to install standardwebhooks {VERSION}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "npm install standardwebhooks@{VERSION} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let staged = tmp.keep();
    if std::fs::rename(&staged, &dir).is_err() {
        // Another process installed it first.
        let _ = std::fs::remove_dir_all(&staged);
    }
    if installed(&dir) {
        Ok(dir)
    } else {
        Err(format!(
            "standardwebhooks {VERSION} is not in {}",
            dir.display()
        ))
    }
}

const SCRIPT: &str = r#"
const { Webhook } = require(process.argv[1] + "/node_modules/standardwebhooks");
let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const { secret, headers, body } = JSON.parse(input);
  try {
    new Webhook(secret).verify(body, headers);
    process.stdout.write("verified");
  } catch (e) {
    process.stdout.write(String(e && e.message ? e.message : e));
    process.exit(1);
  }
});
"#;

/// `Ok` when the library verifies the hook's signature with `secret` (`whsec_...`); the
/// library's reason otherwise. Panics when the library cannot be installed or run.
pub async fn verify(secret: &str, hook: &Hook) -> Result<(), String> {
    let dir = ensure_installed().await.unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new("node")
        .arg("-e")
        .arg(SCRIPT)
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("node is needed to verify Standard Webhooks signatures: {e}"));
    let input = json!({"secret": secret, "headers": hook.headers, "body": hook.body});
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(input.to_string().as_bytes())
        .await
        .expect("write to node");
    drop(stdin);
    let out = child.wait_with_output().await.expect("node ran");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() && said == "verified" {
        Ok(())
    } else {
        Err(said)
    }
}
