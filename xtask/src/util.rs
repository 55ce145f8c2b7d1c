//! Shared helpers: the workspace context, running commands with live output, files.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub type Res<T> = Result<T, String>;

/// What every subcommand needs to know about the checkout and the machine.
pub struct Ctx {
    pub root: PathBuf,
    pub target: PathBuf,
    pub cache: PathBuf,
    pub cargo: String,
    packages: BTreeSet<String>,
    /// Outcomes of work done once per run (native build, binding generation), by key.
    pub memo: RefCell<BTreeMap<String, Res<()>>>,
}

impl Ctx {
    pub fn discover() -> Res<Ctx> {
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        let root = manifest_dir
            .parent()
            .ok_or("xtask is not inside a workspace")?
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        // Package names and the target dir come from `cargo metadata`. If the manifest is
        // broken, carry on with defaults: the suites then fail and are counted, and `test`
        // still ends with its summary line.
        let out = Command::new(&cargo)
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--offline",
            ])
            .current_dir(&root)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run `{cargo} metadata`: {e}"))?;
        let json = if out.status.success() {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            eprintln!("warning: `cargo metadata` failed (is the workspace manifest valid?)");
            String::new()
        };
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .or_else(|| json_string_field(&json, "target_directory").map(PathBuf::from))
            .unwrap_or_else(|| root.join("target"));
        let packages = workspace_package_names(&json);
        Ok(Ctx {
            root,
            target,
            cache: cache_dir(),
            cargo,
            packages,
            memo: RefCell::new(BTreeMap::new()),
        })
    }

    pub fn packages(&self) -> Vec<String> {
        self.packages.iter().cloned().collect()
    }

    pub fn has_package(&self, name: &str) -> bool {
        self.packages.contains(name)
    }

    /// A `cargo` command run from the workspace root.
    pub fn cargo(&self) -> Command {
        let mut c = Command::new(&self.cargo);
        c.current_dir(&self.root);
        // `cargo run` sets these for xtask itself; passed on, they change what build scripts
        // that watch them (ring's) see, and every later plain `cargo` build redoes them.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_BIN_")
                || matches!(
                    k.as_str(),
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                )
            {
                c.env_remove(&k);
            }
        }
        c
    }

    pub fn debug_dir(&self) -> PathBuf {
        self.target.join("debug")
    }

    /// Runs `work` once per xtask run for `key`; later calls get the first outcome.
    pub fn once(&self, key: &str, work: impl FnOnce() -> Res<()>) -> Res<()> {
        if let Some(r) = self.memo.borrow().get(key) {
            return r.clone();
        }
        let r = work();
        self.memo.borrow_mut().insert(key.to_string(), r.clone());
        r
    }
}

/// `${XDG_CACHE_HOME:-$HOME/.cache}/presence`: downloaded toolchains live here, outside the clone.
pub fn cache_dir() -> PathBuf {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(x) if Path::new(&x).is_absolute() => PathBuf::from(x),
        _ => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".cache")
        }
    };
    base.join("presence")
}

/// The first `"key":"value"` string in a JSON document (enough for cargo metadata).
pub fn json_string_field(json: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":\"");
    let start = json.find(&pat)? + pat.len();
    let mut out = String::new();
    let mut chars = json[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// Names of the workspace's packages in `cargo metadata --no-deps` output. Package objects start
/// with `"name":..,"version":..`; dependency objects never have a version field after the name.
pub fn workspace_package_names(json: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let pat = "\"name\":\"";
    let mut rest = json;
    while let Some(i) = rest.find(pat) {
        rest = &rest[i + pat.len()..];
        if let Some(end) = rest.find('"') {
            let name = &rest[..end];
            if rest[end..].starts_with("\",\"version\":") {
                names.insert(name.to_string());
            }
            rest = &rest[end..];
        }
    }
    names
}

// ---------------------------------------------------------------------------------------------
// Progress output

pub fn header(text: &str) {
    println!();
    println!("==> {text}");
    flush();
}

pub fn info(text: &str) {
    println!("    {text}");
    flush();
}

pub fn flush() {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}

pub fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        format!("{}m{:02.0}s", (s / 60.0).floor(), s % 60.0)
    }
}

/// Shell-like rendering of a command, for progress lines.
pub fn show_cmd(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            parts.push(format!("'{}'", a.replace('\'', "'\\''")));
        } else {
            parts.push(a.into_owned());
        }
    }
    parts.join(" ")
}

// ---------------------------------------------------------------------------------------------
// Running commands

pub struct RunOpts {
    /// Print the child's output as it arrives (it is captured either way).
    pub echo: bool,
    /// Kill the child and its descendants after this long.
    pub timeout: Option<Duration>,
    /// Print a "still running" line when the child has been silent this long.
    pub idle_note: Option<Duration>,
    /// Indent echoed lines with this prefix.
    pub prefix: &'static str,
}

impl Default for RunOpts {
    fn default() -> Self {
        RunOpts {
            echo: true,
            timeout: None,
            idle_note: Some(Duration::from_secs(30)),
            prefix: "",
        }
    }
}

impl RunOpts {
    pub fn timeout(mins: u64) -> Self {
        RunOpts {
            timeout: Some(Duration::from_secs(mins * 60)),
            ..RunOpts::default()
        }
    }
    pub fn quiet() -> Self {
        RunOpts {
            echo: false,
            idle_note: None,
            ..RunOpts::default()
        }
    }
}

pub struct Output {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub spawn_error: Option<String>,
    pub elapsed: Duration,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success()) && !self.timed_out
    }

    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// One line saying why it failed, for summaries.
    pub fn why(&self) -> String {
        if let Some(e) = &self.spawn_error {
            return e.clone();
        }
        if self.timed_out {
            return format!("timed out after {}", secs(self.elapsed));
        }
        match self.status {
            Some(s) => match s.code() {
                Some(c) => format!("exit code {c}"),
                None => format!("{s}"),
            },
            None => "did not finish".into(),
        }
    }
}

/// Runs a command with captured, optionally echoed output, a timeout and idle progress notes.
pub fn run(cmd: &mut Command, opts: RunOpts) -> Output {
    let start = Instant::now();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("cannot start `{}`: {e}", show_cmd(cmd));
            eprintln!("    {msg}");
            return Output {
                status: None,
                stdout: String::new(),
                stderr: msg.clone(),
                timed_out: false,
                spawn_error: Some(msg),
                elapsed: start.elapsed(),
            };
        }
    };
    let last_output = Arc::new(Mutex::new(Instant::now()));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let out_handle = pump(
        child.stdout.take().expect("piped"),
        false,
        &opts,
        last_output.clone(),
        done_tx.clone(),
    );
    let err_handle = pump(
        child.stderr.take().expect("piped"),
        true,
        &opts,
        last_output.clone(),
        done_tx,
    );

    let mut timed_out = false;
    let mut last_note = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) => {}
            Err(_) => break None,
        }
        if let Some(t) = opts.timeout.filter(|t| start.elapsed() > *t) {
            eprintln!(
                "    timed out after {}: killing `{}`",
                secs(t),
                show_cmd(cmd)
            );
            kill_tree(child.id());
            timed_out = true;
            break child.wait().ok();
        }
        if let Some(idle) = opts.idle_note {
            let quiet_for = last_output.lock().map(|t| t.elapsed()).unwrap_or_default();
            if quiet_for >= idle && last_note.elapsed() >= idle {
                println!("    ... still running ({} so far)", secs(start.elapsed()));
                flush();
                last_note = Instant::now();
            }
        }
        thread::sleep(Duration::from_millis(100));
    };
    // Descendants that outlive the child may hold the pipes open; do not wait on them forever.
    let deadline = Instant::now() + Duration::from_secs(if timed_out { 2 } else { 10 });
    let mut finished = 0;
    while finished < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok(()) => finished += 1,
            Err(_) => break,
        }
    }
    let stdout = collect(out_handle, finished == 2);
    let stderr = collect(err_handle, finished == 2);
    flush();
    Output {
        status,
        stdout,
        stderr,
        timed_out,
        spawn_error: None,
        elapsed: start.elapsed(),
    }
}

type Pump = (Arc<Mutex<String>>, thread::JoinHandle<()>);

fn pump(
    src: impl Read + Send + 'static,
    is_err: bool,
    opts: &RunOpts,
    last: Arc<Mutex<Instant>>,
    done: mpsc::Sender<()>,
) -> Pump {
    let buf = Arc::new(Mutex::new(String::new()));
    let sink = buf.clone();
    let echo = opts.echo;
    let prefix = opts.prefix;
    let handle = thread::spawn(move || {
        let mut reader = BufReader::new(src);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&raw);
                    if echo {
                        let text = line.trim_end_matches('\n');
                        if is_err {
                            let mut e = std::io::stderr().lock();
                            let _ = writeln!(e, "{prefix}{text}");
                        } else {
                            let mut o = std::io::stdout().lock();
                            let _ = writeln!(o, "{prefix}{text}");
                            let _ = o.flush();
                        }
                    }
                    if let Ok(mut s) = sink.lock() {
                        s.push_str(&line);
                    }
                    if let Ok(mut t) = last.lock() {
                        *t = Instant::now();
                    }
                }
            }
        }
        let _ = done.send(());
    });
    (buf, handle)
}

fn collect((buf, handle): Pump, join: bool) -> String {
    if join {
        let _ = handle.join();
    }
    buf.lock().map(|s| s.clone()).unwrap_or_default()
}

/// Kills a process we started and every process below it, found through /proc, by pid.
pub fn kill_tree(pid: u32) {
    let mut victims = vec![pid];
    let mut i = 0;
    let parents = process_parents();
    while i < victims.len() {
        let p = victims[i];
        for (child, parent) in &parents {
            if *parent == p && !victims.contains(child) {
                victims.push(*child);
            }
        }
        i += 1;
    }
    let mut kill = Command::new("kill");
    kill.arg("-KILL");
    for v in &victims {
        kill.arg(v.to_string());
    }
    let _ = kill.stdout(Stdio::null()).stderr(Stdio::null()).status();
}

fn process_parents() -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may contain spaces, so split after the last ')'.
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            out.push((pid, ppid));
        }
    }
    out
}

/// Runs a command quietly and returns its trimmed stdout if it succeeded.
pub fn capture(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// True if `prog` is found on PATH.
pub fn on_path(prog: &str) -> bool {
    find_on_path(prog).is_some()
}

pub fn find_on_path(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A command that needs root: run directly as root, otherwise through `sudo -n`.
pub fn privileged<S: AsRef<OsStr>>(program: S) -> Command {
    if is_root() || !on_path("sudo") {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.arg("-n").arg(program);
        c
    }
}

// ---------------------------------------------------------------------------------------------
// Files

/// Every file under `dir` (recursively) whose name ends with `.{ext}`, sorted.
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(dir, &mut |p| {
        if p.extension().is_some_and(|e| e == ext) {
            out.push(p.to_path_buf());
        }
    });
    out.sort();
    out
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == ".build" || name == ".swiftpm" {
            continue;
        }
        if p.is_dir() {
            walk(&p, f);
        } else {
            f(&p);
        }
    }
}

/// Copies a directory tree, skipping build output folders.
pub fn copy_tree(from: &Path, to: &Path) -> Res<()> {
    fs::create_dir_all(to).map_err(|e| format!("create {}: {e}", to.display()))?;
    let entries = fs::read_dir(from).map_err(|e| format!("read {}: {e}", from.display()))?;
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == ".build" || name == ".swiftpm" {
            continue;
        }
        let dest = to.join(&name);
        if p.is_dir() {
            copy_tree(&p, &dest)?;
        } else {
            copy_file(&p, &dest)?;
        }
    }
    Ok(())
}

pub fn copy_file(from: &Path, to: &Path) -> Res<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("copy {} -> {}: {e}", from.display(), to.display()))
}

pub fn remove_dir(dir: &Path) -> Res<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(|e| format!("remove {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// A fingerprint of file paths and contents plus extra strings, to skip work that is up to date.
pub fn fingerprint(files: &[PathBuf], extra: &[&str]) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    for e in extra {
        e.hash(&mut h);
    }
    for f in files {
        f.hash(&mut h);
        fs::read(f).unwrap_or_default().hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

pub fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

pub fn join_classpath(parts: &[PathBuf]) -> String {
    parts
        .iter()
        .map(|p| path_str(p))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_target_dir_and_packages_from_metadata() {
        let json = r#"{"packages":[{"name":"presence-ffi","version":"0.1.0","id":"x","dependencies":[{"name":"uniffi","source":"registry","req":"^0.32"}]},{"name":"xtask","version":"0.1.0"}],"target_directory":"/repo/tar\"get","version":1}"#;
        assert_eq!(
            json_string_field(json, "target_directory").as_deref(),
            Some("/repo/tar\"get")
        );
        let names = workspace_package_names(json);
        assert!(names.contains("presence-ffi"));
        assert!(names.contains("xtask"));
        assert!(!names.contains("uniffi"));
    }

    #[test]
    fn captures_output_and_exit_status() {
        let out = run(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            RunOpts::quiet(),
        );
        assert_eq!(out.stdout.trim(), "out");
        assert_eq!(out.stderr.trim(), "err");
        assert_eq!(out.status.and_then(|s| s.code()), Some(3));
        assert!(!out.ok());
    }

    #[test]
    fn timeout_kills_the_whole_tree() {
        let out = run(
            Command::new("sh").args(["-c", "sleep 30 & sleep 30; echo never"]),
            RunOpts {
                timeout: Some(Duration::from_millis(300)),
                ..RunOpts::quiet()
            },
        );
        assert!(out.timed_out);
        assert!(out.elapsed < Duration::from_secs(10));
        assert!(!out.stdout.contains("never"));
    }
}
