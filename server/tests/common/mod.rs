//! The real `presence-server` binary as a child process: started on a data dir, its
//! `listening on` line awaited, killed with SIGKILL when dropped.

#![allow(dead_code)] // each test file uses its own subset

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub const ADMIN: &str = "t0ken-for-the-tests";

pub struct Proc {
    pub child: Child,
    pub url: String,
}

impl Proc {
    /// `127.0.0.1:PORT`, to start a successor on the same address.
    pub fn listen(&self) -> String {
        self.url.trim_start_matches("http://").to_owned()
    }

    /// SIGKILL, and reaped.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn command(dir: &std::path::Path, listen: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_presence-server"));
    cmd.args(["--listen", listen, "--admin-token", ADMIN, "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("PRESENCE_LOG", "warn");
    cmd
}

/// Starts the binary and waits for its `listening on http://ADDR` line.
pub fn spawn(dir: &std::path::Path, listen: &str) -> Proc {
    spawn_with(dir, listen, &[])
}

pub fn spawn_with(dir: &std::path::Path, listen: &str, extra: &[&str]) -> Proc {
    spawn_command(command(dir, listen, extra))
}

/// Starts a [`command`] the caller adjusted (environment, arguments).
pub fn spawn_command(mut cmd: Command) -> Proc {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn presence-server");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    Proc { child, url }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A request that must succeed; its JSON body (or null).
pub async fn call(
    c: &reqwest::Client,
    m: reqwest::Method,
    url: String,
    tok: &str,
    b: Value,
) -> Value {
    let r = c
        .request(m, url)
        .bearer_auth(tok)
        .json(&b)
        .send()
        .await
        .expect("request");
    assert!(r.status().is_success(), "status {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}
