//! The website widget and the dashboard in headless Chromium, against the release server: what
//! `widget.js` and everything it loads weighs gzipped, how long a status change takes to reach
//! the element's attribute, and how long the first status takes to show; what the dashboard
//! weighs gzipped, and how long a click in its status menu takes to reach another device's
//! stream.
//!
//! The measuring is the browser suite's own (`web/test/browser.mjs`, its `bundle:` and
//! `status: latency` tests, and `web/test/dashboard.mjs`), so the bench and the tests time the
//! same thing; here it runs against `target/release/presence-server`. It needs what `cargo xtask test` installs for
//! the browser suite (`web/node_modules`, Debian's chromium); without them the step fails
//! with that reason, and quick mode skips it.

use std::path::PathBuf;

use tokio::process::Command;

use crate::Ctx;
use crate::proc::Res;

/// What the widget step needs that the bench does not install.
pub fn installed(root: &std::path::Path) -> bool {
    root.join("web/node_modules/playwright-core").is_dir()
        && std::path::Path::new("/usr/bin/chromium").exists()
        && crate::proc::which("node").is_some()
}

pub async fn widget(ctx: &mut Ctx) -> Res<()> {
    browser_step(
        ctx,
        "widget",
        &["bundle:", "status: latency"],
        &[
            "widget_gzip_bytes",
            "widget_status_to_dom_p50_ms",
            "widget_status_to_dom_p99_ms",
            "widget_first_status_ms",
        ],
    )
    .await
}

/// The dashboard: its gzip weight, and status menu click -> the `status` event on another
/// device's stream (30 clicks).
pub async fn dashboard(ctx: &mut Ctx) -> Res<()> {
    browser_step(
        ctx,
        "dashboard",
        &["dashboard: the page, script", "dashboard: a status click"],
        &[
            "dashboard_gzip_bytes",
            "dashboard_click_to_other_device_p50_ms",
            "dashboard_click_to_other_device_p99_ms",
        ],
    )
    .await
}

/// Runs the browser suite's tests matching each of `filters` against the release server and
/// records the `measure KEY = VALUE` lines named in `keys`.
async fn browser_step(ctx: &mut Ctx, name: &str, filters: &[&str], keys: &[&str]) -> Res<()> {
    if !installed(&ctx.root) {
        return Err("needs web/node_modules and /usr/bin/chromium: run \
                    `cargo xtask test --only browser` once"
            .into());
    }
    let build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "presence-server"])
        .current_dir(&ctx.root)
        .env_remove("CARGO_PRIMARY_PACKAGE")
        .env_remove("CARGO_PKG_NAME")
        .status()
        .await
        .map_err(|e| format!("cargo build: {e}"))?;
    if !build.success() {
        return Err("cargo build --release -p presence-server failed".into());
    }
    let server: PathBuf = ctx.target.join("release/presence-server");
    let out = ctx.work.join("browser");
    let mut measured = Vec::new();
    for &filter in filters {
        let run = Command::new("node")
            .arg("test/browser.mjs")
            .arg(filter)
            .current_dir(ctx.root.join("web"))
            .env("PRESENCE_SERVER_BIN", &server)
            .env("PRESENCE_BROWSER_OUT", &out)
            .output()
            .await
            .map_err(|e| format!("node: {e}"))?;
        let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
        std::fs::create_dir_all(&ctx.logs).ok();
        let _ = std::fs::write(
            ctx.logs.join(format!(
                "{name}-{}.log",
                filter.replace(|c: char| !c.is_ascii_alphanumeric(), "")
            )),
            &stdout,
        );
        if !run.status.success() {
            return Err(format!(
                "browser run `{filter}` failed (see {})",
                ctx.logs.display()
            ));
        }
        for line in stdout.lines() {
            if let Some((k, v)) = line
                .strip_prefix("measure ")
                .and_then(|l| l.split_once(" = "))
                && let Ok(v) = v.trim().parse::<f64>()
            {
                measured.push((k.trim().to_owned(), v));
            }
        }
    }
    for &key in keys {
        let v = measured.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
        if v.is_none() {
            return Err(format!("the browser run reported no {key}"));
        }
        ctx.report.set(key, v);
    }
    Ok(())
}
