//! `cargo xtask cluster`: a three-node cluster on this machine, to try cluster mode.
//!
//! Starts a PostgreSQL and a Redis of its own (Debian's packages, installed if missing) on
//! free loopback ports with their data under `target/cluster/`, then three `presence-server`
//! nodes (release build) on ports `--port`, `--port`+1 and `--port`+2, all with `--demo`, and
//! prints their URLs. Ctrl-C stops everything; the data is made anew at each start.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, Ctx, Res, RunOpts};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const NODES: u16 = 3;

/// Children killed when this is dropped (Ctrl-C reaches them as well: they share the
/// terminal's process group).
struct Children(Vec<(String, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> Res<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn wait_until(what: &str, deadline: Duration, mut ok: impl FnMut() -> bool) -> Res<()> {
    let end = Instant::now() + deadline;
    while !ok() {
        if Instant::now() > end {
            return Err(format!("{what}: not within {deadline:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn as_postgres(program: &str) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--", &format!("{PG_BIN}/{program}")]);
    c
}

fn start_postgres(dir: &Path, kids: &mut Children) -> Res<u16> {
    let data = dir.join("pg");
    std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
    let ok = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err("cannot give the PostgreSQL data dir to user postgres".into());
    }
    let out = util::run(
        as_postgres("initdb")
            .arg("-D")
            .arg(&data)
            .args(["--auth=trust", "-U", "postgres"]),
        RunOpts::quiet(),
    );
    if !out.ok() {
        return Err(format!("initdb failed: {}", out.all()));
    }
    let port = free_port()?;
    let child = as_postgres("postgres")
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(&data)
        .args(["-c", "listen_addresses=127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start postgres: {e}"))?;
    kids.0.push(("postgres".into(), child));
    wait_until(
        "PostgreSQL accepts connections",
        Duration::from_secs(30),
        || {
            Command::new(format!("{PG_BIN}/pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        },
    )?;
    let out = util::run(
        Command::new(format!("{PG_BIN}/createdb")).args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "presence",
        ]),
        RunOpts::quiet(),
    );
    if !out.ok() {
        return Err(format!("createdb failed: {}", out.all()));
    }
    Ok(port)
}

fn start_redis(dir: &Path, kids: &mut Children) -> Res<u16> {
    let port = free_port()?;
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start redis-server: {e}"))?;
    kids.0.push(("redis".into(), child));
    wait_until("Redis answers", Duration::from_secs(30), || {
        Command::new("redis-cli")
            .args(["-p", &port.to_string(), "ping"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
    })?;
    Ok(port)
}

fn admin_token() -> String {
    let mut b = [0u8; 16];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Starts one node and waits for its `listening on` line and the demo account's
/// description on stderr, which it returns.
fn start_node(bin: &Path, args: &[String], port: u16, kids: &mut Children) -> Res<Vec<String>> {
    let mut child = Command::new(bin)
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("PRESENCE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    kids.0.push((format!("node on {port}"), child));
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    if !line.starts_with("listening on ") {
        return Err(format!(
            "node on port {port} did not start (see its errors above)"
        ));
    }
    let mut err = BufReader::new(stderr);
    let mut demo = Vec::new();
    {
        let mut l = String::new();
        loop {
            l.clear();
            if err.read_line(&mut l).map_err(|e| e.to_string())? == 0 {
                return Err(format!(
                    "node on port {port} ended before its demo was ready"
                ));
            }
            if l.starts_with("demo account") || l.starts_with("  ") {
                demo.push(l.trim_end().to_owned());
            }
            if l.trim_start().starts_with("widget events") {
                break;
            }
        }
    }
    // Keep reading its log so it never blocks on a full pipe.
    std::thread::spawn(move || {
        for l in err.lines().map_while(Result::ok) {
            eprintln!("    node {port}: {l}");
        }
    });
    Ok(demo)
}

pub fn cluster(ctx: &Ctx, args: &[String]) -> Res<()> {
    let mut base: u16 = 8081;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => {
                base = it
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or("--port needs a port number")?
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}` (usage: cargo xtask cluster [--port PORT])"
                ));
            }
        }
    }
    for p in base..base + NODES {
        if TcpListener::bind(("127.0.0.1", p)).is_err() {
            return Err(format!("port {p} is taken; pick others with --port"));
        }
    }
    crate::setup::apt_install(crate::test::STORE_PACKAGES)?;
    util::header("building presence-server (release)");
    let mut build = ctx.cargo();
    build.args(["build", "--release", "-p", "presence-server"]);
    if !util::run(&mut build, RunOpts::timeout(30)).ok() {
        return Err("the release build failed".into());
    }
    let bin: PathBuf = ctx.root.join("target/release/presence-server");
    let dir = ctx.root.join("target/cluster");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;

    let mut kids = Children(Vec::new());
    util::header("starting PostgreSQL, Redis and three nodes");
    let pg = start_postgres(&dir, &mut kids)?;
    let redis = start_redis(&dir, &mut kids)?;
    let token = admin_token();
    let node_args: Vec<String> = [
        "--postgres-url",
        &format!("postgres://postgres@127.0.0.1:{pg}/presence"),
        "--redis-url",
        &format!("redis://127.0.0.1:{redis}/"),
        "--admin-token",
        &token,
        "--demo",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // The first node creates the demo account; the others find it.
    let demo = start_node(&bin, &node_args, base, &mut kids)?;
    for p in base + 1..base + NODES {
        start_node(&bin, &node_args, p, &mut kids)?;
    }
    println!();
    println!("a three-node Presence cluster is running:");
    for p in base..base + NODES {
        println!("  node            http://127.0.0.1:{p}/app/   (dashboard)");
    }
    println!("  PostgreSQL      postgres://postgres@127.0.0.1:{pg}/presence");
    println!("  Redis           redis://127.0.0.1:{redis}/");
    println!("  admin token     {token}");
    for l in demo {
        println!("{l}");
    }
    println!(
        "log in on one node's dashboard and open another node's demo page: a change made \
         through any node shows on every node. Ctrl-C stops everything."
    );
    util::flush();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        for (name, c) in &mut kids.0 {
            if let Ok(Some(status)) = c.try_wait() {
                return Err(format!("{name} stopped ({status}); stopping the rest"));
            }
        }
    }
}
