//! Real PostgreSQL and Redis instances for tests, on free loopback ports, in fresh temp dirs.
//! Never a system instance (none is started or even looked at), and never left running:
//!
//! - every server is a direct child of the test process, spawned from one dedicated thread
//!   that lives as long as the process, with `PR_SET_PDEATHSIG(SIGKILL)` (the kernel sends the
//!   signal when the *spawning thread* exits; a test's own thread ends with the test, so
//!   spawning from it would kill a shared instance between tests);
//! - dropping a harness stops its servers and removes their dirs;
//! - a small watcher shell per harness removes the dir if the test process dies without
//!   dropping it (a crash, a `SIGKILL`, or [`shared_postgres`], which lives in a static).
//!
//! PostgreSQL refuses to run as root; when the tests run as root, `initdb` and the postmaster
//! run as the `postgres` user (set directly on the child, so it stays ours), and the temp dir
//! is made traversable for that user.
//!
//! - [`Postgres`]: one postmaster; [`shared_postgres`] is one per test process, and tests take
//!   a [`Postgres::fresh_database`] of it.
//! - [`Redis`]: one standalone server without persistence.
//! - [`RedisCluster`]: six nodes, three primaries with a replica each.
//!
//! Each can be started with TLS (`start_tls`) with the leaf of a [`TestCa`] for
//! `127.0.0.1`/`localhost`, and then speaks only TLS: PostgreSQL accepts `hostssl` connections
//! only (a plain one is refused by `pg_hba.conf`), Redis listens on a TLS port only (and a
//! cluster's bus and replication are TLS too). [`Postgres::ca_file`] and [`Redis::ca_file`]
//! are copies of the CA that live as long as the server.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::push::tls::TestCa;

/// How long a server may take to accept connections, or a cluster to become healthy.
pub const STORE_DEADLINE: Duration = Duration::from_secs(30);

/// Pause between two checks of a condition that has no notification.
const POLL: Duration = Duration::from_millis(25);

// ---------------------------------------------------------------------------------------
// Processes

/// A user's uid and gid, to run a child as.
#[derive(Clone, Copy, Debug)]
struct UserIds {
    uid: u32,
    gid: u32,
}

/// Looks `user` up (when given) and prepares `cmd` to run as that user and to be killed with
/// `SIGKILL` when the thread that spawns it exits.
#[allow(unsafe_code)]
fn prepare_child(cmd: &mut Command, user: Option<&str>) -> Option<UserIds> {
    let ids = user.map(|name| {
        let cname = std::ffi::CString::new(name).expect("user name without NUL");
        // SAFETY: `passwd` is plain old data (integers and pointers); all zeroes is valid.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: `cname` is NUL-terminated, `pwd` and
        // `found` are live locals, and `buf` is a live buffer of the length passed. The
        // reentrant variant writes only into them, so concurrent lookups cannot race.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        assert!(
            rc == 0 && !found.is_null(),
            "no user {name:?} on this machine (getpwnam_r: {rc})"
        );
        UserIds {
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        }
    });
    if let Some(ids) = ids {
        cmd.uid(ids.uid).gid(ids.gid);
    }
    // SAFETY: the closure runs in the forked child before exec (after std has switched the
    // uid, which would otherwise clear the death signal) and calls only the async-signal-safe
    // `prctl`, `getppid` and `_exit`; it allocates nothing and touches no lock.
    let parent = std::process::id() as libc::pid_t;
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the signal was armed.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    ids
}

struct SpawnRequest {
    cmd: Command,
    reply: mpsc::Sender<io::Result<Child>>,
}

/// Spawns `cmd` from the one spawner thread, which lives as long as the process, so that a
/// child's death signal fires when the process dies and not when a test's thread ends.
fn spawn_from_keeper(cmd: Command) -> io::Result<Child> {
    static KEEPER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("store-spawner".into())
            .spawn(move || {
                // Ends only when the sender is dropped, and the sender lives in a static.
                for SpawnRequest { mut cmd, reply } in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawner thread starts");
        tx
    });
    let (reply, answer) = mpsc::channel();
    keeper
        .send(SpawnRequest { cmd, reply })
        .expect("spawner thread alive");
    answer.recv().expect("spawner thread answers")
}

/// Kills (SIGKILL) and reaps a child; nothing if it already exited.
fn kill_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A shell that removes `dir` once the test process dies without dropping its harness: it
/// reads server pids from a pipe whose only writer is this process, and at end of file waits
/// (bounded) for those to be gone, then removes the dir. A harness that is dropped cleans up
/// itself and kills the watcher.
struct Watcher {
    child: Child,
    pipe: ChildStdin,
}

const WATCHER_SCRIPT: &str = r#"trap '' INT HUP TERM
pids=''
while read -r p; do pids="$pids $p"; done
for p in $pids; do
  i=0
  while kill -0 "$p" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.05; i=$((i+1)); done
done
rm -rf -- "$1" 2>/dev/null || { sleep 0.5; rm -rf -- "$1"; }
"#;

impl Watcher {
    fn new(dir: &Path) -> Watcher {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHER_SCRIPT)
            .arg("store-watcher")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the dir watcher (sh)");
        let pipe = child.stdin.take().expect("watcher stdin");
        Watcher { child, pipe }
    }

    fn track(&mut self, pid: u32) {
        let _ = writeln!(self.pipe, "{pid}");
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}

fn run_output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

/// The last lines of a log, for a failure message.
fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn log_file(path: &Path) -> (Stdio, Stdio) {
    let f = File::options()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let g = f.try_clone().expect("dup log fd");
    (Stdio::from(f), Stdio::from(g))
}

/// A loopback port nobody listens on (the listener is dropped before returning).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `n` distinct loopback ports whose cluster bus port (`port + 10000`) is free as well.
fn free_cluster_ports(n: usize) -> Vec<u16> {
    let mut held = Vec::new();
    let deadline = Instant::now() + STORE_DEADLINE;
    while held.len() < n {
        assert!(Instant::now() < deadline, "no free cluster ports");
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        let Some(bus) = port.checked_add(10000) else {
            continue;
        };
        if let Ok(b) = TcpListener::bind(("127.0.0.1", bus)) {
            held.push((port, l, b));
        }
    }
    held.into_iter().map(|(p, _, _)| p).collect()
}

fn temp_root(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("temp dir in /tmp")
}

// ---------------------------------------------------------------------------------------
// PostgreSQL

/// A PostgreSQL server of its own: a fresh cluster (`initdb`) in a temp dir, a postmaster on a
/// free loopback port, trust authentication for the `postgres` superuser.
pub struct Postgres {
    root: Option<tempfile::TempDir>,
    data: PathBuf,
    log: PathBuf,
    bin: PathBuf,
    /// The `postgres` user when the tests run as root; `None` runs as ourselves.
    user: Option<&'static str>,
    port: u16,
    child: Option<Child>,
    watcher: Watcher,
    /// With TLS: the dir of `server.crt`, `server.key`, `ca.pem` and the `pg_hba.conf` that
    /// accepts `hostssl` only.
    tls: Option<PathBuf>,
}

/// Copies a test CA's leaf and key (and the CA) into `dir` as `server.crt`, `server.key` and
/// `ca.pem`, the key `0600` and all of them owned by `ids` if given.
fn copy_tls_files(ca: &TestCa, dir: &Path, ids: Option<UserIds>) {
    fs::create_dir_all(dir).expect("create tls dir");
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod tls dir");
    for (from, to, mode) in [
        (&ca.leaf_cert_path, "server.crt", 0o644),
        (&ca.leaf_key_path, "server.key", 0o600),
        (&ca.pem_path, "ca.pem", 0o644),
    ] {
        let to = dir.join(to);
        fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        fs::set_permissions(&to, fs::Permissions::from_mode(mode)).expect("chmod tls file");
        if let Some(ids) = ids {
            std::os::unix::fs::chown(&to, Some(ids.uid), Some(ids.gid)).expect("chown tls file");
        }
    }
}

/// The directory of `initdb`, `postgres`, `pg_ctl`, `pg_isready`, `createdb` and `psql`:
/// `PRESENCE_PG_BIN`, else the newest `/usr/lib/postgresql/N/bin` (Debian), else `PATH`.
fn pg_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PRESENCE_PG_BIN") {
        return PathBuf::from(dir);
    }
    let newest = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((v, bin))
        })
        .max_by_key(|(v, _)| *v);
    newest.map(|(_, b)| b).unwrap_or_default()
}

impl Postgres {
    /// `initdb` into a fresh temp dir and a running postmaster, ready for connections.
    pub fn start() -> Postgres {
        Postgres::start_with(None)
    }

    /// [`Postgres::start`] with TLS on, serving `ca`'s leaf; only TLS connections are
    /// accepted.
    pub fn start_tls(ca: &TestCa) -> Postgres {
        Postgres::start_with(Some(ca))
    }

    fn start_with(ca: Option<&TestCa>) -> Postgres {
        let root = temp_root("presence-pg-");
        let as_root = fs::metadata(root.path()).expect("stat temp dir").uid() == 0;
        let user = as_root.then_some("postgres");
        // The postgres user must reach the data dir inside.
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let data = root.path().join("data");
        fs::create_dir(&data).expect("create data dir");
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).expect("chmod data");
        let bin = pg_bin_dir();
        // Before initdb: a test process killed during it leaves a half-made dir otherwise.
        let mut watcher = Watcher::new(root.path());
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["--auth=trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .args(["--locale=C", "--no-instructions"])
            .current_dir(root.path());
        let ids = prepare_child(&mut initdb, user);
        if let Some(ids) = ids {
            std::os::unix::fs::chown(&data, Some(ids.uid), Some(ids.gid)).expect("chown data");
        }
        let tls = ca.map(|ca| {
            let dir = root.path().join("tls");
            copy_tls_files(ca, &dir, ids);
            let hba = dir.join("pg_hba.conf");
            fs::write(
                &hba,
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n\
                 hostssl all all ::1/128 trust\n",
            )
            .expect("write pg_hba.conf");
            if let Some(ids) = ids {
                std::os::unix::fs::chown(&hba, Some(ids.uid), Some(ids.gid)).expect("chown hba");
            }
            dir
        });
        let child = initdb
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn initdb from {}: {e}", bin.display()));
        watcher.track(child.id());
        let out = child.wait_with_output().expect("wait for initdb");
        assert!(
            out.status.success(),
            "initdb failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Postgres {
            log: root.path().join("postgres.log"),
            root: Some(root),
            data,
            bin,
            user,
            port: free_port(),
            child: None,
            watcher,
            tls,
        };
        pg.launch();
        pg
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// With TLS: the CA the server's certificate chains to (a copy that lives as long as the
    /// server).
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|d| d.join("ca.pem"))
    }

    /// Creates database `name` (`createdb`) and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        let out = run_output(
            Command::new(self.bin.join("createdb"))
                .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
                .arg(self.port.to_string())
                .arg(name),
        );
        assert!(
            out.status.success(),
            "createdb {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(name)
    }

    /// A new database with a name unique in this process; returns its URL.
    pub fn fresh_database(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.create_database(&format!("test_{}_{n}", std::process::id()))
    }

    /// Runs `sql` in `db` with `psql -tAc` and returns its output, trimmed; panics if it fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.try_psql(db, sql);
        match out {
            Ok(s) => s,
            Err(e) => panic!("psql {sql:?} on {db} failed: {e}"),
        }
    }

    /// [`Postgres::psql`] that returns the error text instead of panicking.
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = run_output(
            Command::new(self.bin.join("psql"))
                .args(["-X", "-h", "127.0.0.1", "-U", "postgres", "-p"])
                .arg(self.port.to_string())
                .args(["-d", db, "-v", "ON_ERROR_STOP=1", "-tAc", sql]),
        );
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// A crash: `SIGKILL` to the postmaster (its backends notice and exit on their own).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_child(&mut c);
        }
    }

    /// A clean (fast) shutdown, waited for.
    pub fn stop(&mut self) {
        self.shutdown("fast");
    }

    /// Starts the postmaster again on the same dir and port (stopping it first if it runs)
    /// and waits until it accepts connections; after [`Postgres::kill`] that includes crash
    /// recovery.
    pub fn start_again(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.launch();
    }

    fn pg_ctl_stop(&self, mode: &str) -> bool {
        let mut c = Command::new(self.bin.join("pg_ctl"));
        c.arg("-D")
            .arg(&self.data)
            .args(["stop", "-w", "-t", "30", "-m", mode]);
        c.current_dir(&self.data).stdout(Stdio::null());
        prepare_child(&mut c, self.user);
        run_output(&mut c).status.success()
    }

    fn shutdown(&mut self, mode: &str) {
        if let Some(mut c) = self.child.take() {
            if matches!(c.try_wait(), Ok(None)) && !self.pg_ctl_stop(mode) {
                eprintln!("pg_ctl stop -m {mode} failed; killing the postmaster");
            }
            kill_child(&mut c);
        }
    }

    fn postmaster(&self) -> Command {
        let mut c = Command::new(self.bin.join("postgres"));
        c.arg("-D")
            .arg(&self.data)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.data)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "max_connections=300"])
            .current_dir(&self.data)
            .stdin(Stdio::null());
        if let Some(dir) = &self.tls {
            let set = |name: &str, file: &str| format!("{name}={}", dir.join(file).display());
            c.args(["-c", "ssl=on", "-c"])
                .arg(set("ssl_cert_file", "server.crt"))
                .arg("-c")
                .arg(set("ssl_key_file", "server.key"))
                .arg("-c")
                .arg(set("hba_file", "pg_hba.conf"));
        }
        let (out, err) = log_file(&self.log);
        c.stdout(out).stderr(err);
        prepare_child(&mut c, self.user);
        c
    }

    fn ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Spawns the postmaster and waits until it is ready. A postmaster that exits while it
    /// starts is spawned again until the deadline: after a crash, the old one's backends may
    /// still hold the shared memory for a moment.
    fn launch(&mut self) {
        let deadline = Instant::now() + STORE_DEADLINE;
        loop {
            let mut child = spawn_from_keeper(self.postmaster())
                .unwrap_or_else(|e| panic!("spawn postgres from {}: {e}", self.bin.display()));
            self.watcher.track(child.id());
            loop {
                if self.ready() {
                    self.child = Some(child);
                    return;
                }
                if let Ok(Some(status)) = child.try_wait() {
                    assert!(
                        Instant::now() < deadline,
                        "postgres keeps exiting ({status}):\n{}",
                        log_tail(&self.log)
                    );
                    break;
                }
                if Instant::now() > deadline {
                    kill_child(&mut child);
                    panic!(
                        "postgres not ready on port {} after {STORE_DEADLINE:?}:\n{}",
                        self.port,
                        log_tail(&self.log)
                    );
                }
                thread::sleep(POLL);
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Immediate: the postmaster takes its backends with it, then the dir can go.
        self.shutdown("immediate");
        if let Some(root) = self.root.take() {
            let _ = root.close();
        }
    }
}

/// One PostgreSQL for the whole test process, started on first use (`initdb` takes a second
/// or two); tests take a [`Postgres::fresh_database`] of it. It is spawned from the process's
/// spawner thread, so it dies with the process, and its watcher removes its dir then.
pub fn shared_postgres() -> &'static Postgres {
    static SHARED: OnceLock<Postgres> = OnceLock::new();
    SHARED.get_or_init(Postgres::start)
}

// ---------------------------------------------------------------------------------------
// Redis

/// One `redis-server` process: its dir, port, extra arguments and log.
struct RedisNode {
    dir: PathBuf,
    port: u16,
    extra: Vec<String>,
    child: Option<Child>,
    /// With TLS: the dir of `server.crt`, `server.key` and `ca.pem`; `port` is then the TLS
    /// port and there is no plain one.
    tls: Option<PathBuf>,
}

impl RedisNode {
    fn new(dir: PathBuf, port: u16, extra: Vec<String>, tls: Option<PathBuf>) -> RedisNode {
        fs::create_dir_all(&dir).expect("create redis dir");
        RedisNode {
            dir,
            port,
            extra,
            child: None,
            tls,
        }
    }

    /// `redis://` or, with TLS, `rediss://127.0.0.1:PORT/`.
    fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// What `redis-cli` needs to reach this node (`--tls --cacert` with TLS).
    fn cli_tls_args(&self) -> Vec<String> {
        match &self.tls {
            None => Vec::new(),
            Some(dir) => vec![
                "--tls".into(),
                "--cacert".into(),
                dir.join("ca.pem").display().to_string(),
            ],
        }
    }

    /// The server's own arguments for its port (and TLS).
    fn port_args(&self) -> Vec<String> {
        let port = self.port.to_string();
        let Some(dir) = &self.tls else {
            return vec!["--port".into(), port];
        };
        let file = |name: &str| dir.join(name).display().to_string();
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port,
            "--tls-cert-file".into(),
            file("server.crt"),
            "--tls-key-file".into(),
            file("server.key"),
            "--tls-ca-cert-file".into(),
            file("ca.pem"),
            "--tls-auth-clients".into(),
            "no".into(),
        ]
    }

    fn log(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    fn spawn(&mut self, watcher: &mut Watcher) {
        // Starts empty: nothing to load even if something was written.
        let _ = fs::remove_file(self.dir.join("dump.rdb"));
        let mut c = Command::new("redis-server");
        c.args(self.port_args())
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        let (out, err) = log_file(&self.log());
        c.stdout(out).stderr(err);
        prepare_child(&mut c, None);
        let child = spawn_from_keeper(c).expect("spawn redis-server");
        watcher.track(child.id());
        self.child = Some(child);
    }

    /// Waits until the server answers a raw RESP `PING` with `+PONG` (with TLS, `redis-cli`'s
    /// `PING`).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + STORE_DEADLINE;
        loop {
            if self.answers_ping() {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!(
                    "redis-server on port {} exited ({status}):\n{}",
                    self.port,
                    log_tail(&self.log())
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "redis-server not ready on port {} after {STORE_DEADLINE:?}:\n{}",
                    self.port,
                    log_tail(&self.log())
                );
            }
            thread::sleep(POLL);
        }
    }

    fn start(&mut self, watcher: &mut Watcher) {
        self.spawn(watcher);
        self.wait_ready();
    }

    fn answers_ping(&self) -> bool {
        if self.tls.is_none() {
            return ping(self.port);
        }
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(self.cli_tls_args())
            .arg("PING")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"PONG"))
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_child(&mut c);
        }
    }

    fn alive(&self) -> bool {
        self.child.is_some()
    }

    fn command(&self, args: &[&str]) -> String {
        let out = run_output(
            Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(self.cli_tls_args())
                .args(args),
        );
        assert!(
            out.status.success(),
            "redis-cli -p {} {args:?} failed: {}",
            self.port,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// Sends `PING` in RESP and reads the reply; true on `+PONG`.
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let mut buf = [0u8; 64];
    while !reply.ends_with(b"\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
    }
    reply == b"+PONG\r\n"
}

/// A standalone Redis of its own on a free loopback port, without persistence.
pub struct Redis {
    node: RedisNode,
    watcher: Watcher,
    root: Option<tempfile::TempDir>,
}

impl Redis {
    /// A running server in a fresh temp dir, answering `PING`.
    pub fn start() -> Redis {
        Redis::start_with(None)
    }

    /// [`Redis::start`] with TLS only, serving `ca`'s leaf.
    pub fn start_tls(ca: &TestCa) -> Redis {
        Redis::start_with(Some(ca))
    }

    fn start_with(ca: Option<&TestCa>) -> Redis {
        let root = temp_root("presence-redis-");
        let mut watcher = Watcher::new(root.path());
        let tls = ca.map(|ca| {
            let dir = root.path().join("tls");
            copy_tls_files(ca, &dir, None);
            dir
        });
        let mut node = RedisNode::new(root.path().to_path_buf(), free_port(), Vec::new(), tls);
        node.start(&mut watcher);
        Redis {
            node,
            watcher,
            root: Some(root),
        }
    }

    pub fn port(&self) -> u16 {
        self.node.port
    }

    /// `redis://127.0.0.1:PORT/` (`rediss://` with TLS).
    pub fn url(&self) -> String {
        self.node.url()
    }

    /// With TLS: the CA the server's certificate chains to (a copy that lives as long as the
    /// server).
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.node.tls.as_ref().map(|d| d.join("ca.pem"))
    }

    /// A crash: `SIGKILL`.
    pub fn kill(&mut self) {
        self.node.kill();
    }

    /// Starts again on the same port (killing it first if it runs), empty.
    pub fn start_again(&mut self) {
        self.node.kill();
        self.node.start(&mut self.watcher);
    }

    /// `redis-cli -p PORT args...`; its stdout, trimmed. Panics if redis-cli fails (a Redis
    /// error reply is output, not a failure).
    pub fn command(&self, args: &[&str]) -> String {
        self.node.command(args)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.node.kill();
        if let Some(root) = self.root.take() {
            let _ = root.close();
        }
    }
}

/// A Redis Cluster of six nodes on free loopback ports: three primaries, each with a replica,
/// node timeout 1 s so that a replica takes over quickly.
pub struct RedisCluster {
    nodes: Vec<RedisNode>,
    /// Held for its drop (and for the dir, should this process die first).
    _watcher: Watcher,
    root: Option<tempfile::TempDir>,
}

/// One line of `CLUSTER NODES`.
struct NodeLine {
    port: u16,
    primary: bool,
    failed: bool,
    slots: Vec<(u16, u16)>,
}

fn parse_cluster_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            // ip:port@cport
            let addr = f[1].split('@').next()?;
            let port = addr.rsplit(':').next()?.parse().ok()?;
            let flags = f[2];
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => {
                        let n = s.parse().ok()?;
                        Some((n, n))
                    }
                })
                .collect();
            Some(NodeLine {
                port,
                primary: flags.contains("master"),
                failed: flags.contains("fail"),
                slots,
            })
        })
        .collect()
}

impl RedisCluster {
    /// Six nodes, joined with `redis-cli --cluster create ... --cluster-replicas 1`, healthy.
    pub fn start() -> RedisCluster {
        RedisCluster::start_with(None)
    }

    /// [`RedisCluster::start`] with TLS only (clients, cluster bus and replication), every
    /// node serving `ca`'s leaf.
    pub fn start_tls(ca: &TestCa) -> RedisCluster {
        RedisCluster::start_with(Some(ca))
    }

    fn start_with(ca: Option<&TestCa>) -> RedisCluster {
        let root = temp_root("presence-redis-cluster-");
        let mut watcher = Watcher::new(root.path());
        let tls = ca.map(|ca| {
            let dir = root.path().join("tls");
            copy_tls_files(ca, &dir, None);
            dir
        });
        let mut nodes: Vec<RedisNode> = free_cluster_ports(6)
            .into_iter()
            .map(|port| {
                let mut extra: Vec<String> = vec![
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-node-timeout".into(),
                    "1000".into(),
                    "--cluster-config-file".into(),
                    format!("nodes-{port}.conf"),
                ];
                if tls.is_some() {
                    extra.extend(
                        ["--tls-cluster", "yes", "--tls-replication", "yes"].map(Into::into),
                    );
                }
                RedisNode::new(root.path().join(port.to_string()), port, extra, tls.clone())
            })
            .collect();
        for n in &mut nodes {
            n.spawn(&mut watcher);
        }
        for n in &mut nodes {
            n.wait_ready();
        }
        let out = run_output(
            Command::new("redis-cli")
                .arg("--cluster")
                .arg("create")
                .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
                .args(["--cluster-replicas", "1", "--cluster-yes"])
                .args(nodes[0].cli_tls_args()),
        );
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster {
            nodes,
            _watcher: watcher,
            root: Some(root),
        };
        cluster.wait_healthy();
        cluster
    }

    /// `redis://127.0.0.1:PORT/` (`rediss://` with TLS) of every node that runs.
    pub fn seed_urls(&self) -> Vec<String> {
        self.live().map(RedisNode::url).collect()
    }

    /// With TLS: the CA every node's certificate chains to (a copy that lives as long as the
    /// cluster).
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.nodes[0].tls.as_ref().map(|d| d.join("ca.pem"))
    }

    /// The ports of the nodes that run.
    pub fn ports(&self) -> Vec<u16> {
        self.live().map(|n| n.port).collect()
    }

    /// `redis-cli -p PORT args...` against the node on `port`; its stdout, trimmed.
    pub fn command(&self, port: u16, args: &[&str]) -> String {
        self.node(port).command(args)
    }

    fn live(&self) -> impl Iterator<Item = &RedisNode> {
        self.nodes.iter().filter(|n| n.alive())
    }

    fn node(&self, port: u16) -> &RedisNode {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no cluster node on port {port}"))
    }

    /// The port of the primary serving `slot`, as the first running node sees it.
    pub fn primary_of_slot(&self, slot: u16) -> u16 {
        let any = self.live().next().expect("a cluster node runs");
        parse_cluster_nodes(&any.command(&["CLUSTER", "NODES"]))
            .into_iter()
            .find(|l| {
                l.primary && !l.failed && l.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
            })
            .map(|l| l.port)
            .unwrap_or_else(|| panic!("no primary serves slot {slot}"))
    }

    /// Kills (`SIGKILL`) the primary serving `slot` and returns its port. Its replica takes
    /// over after the node timeout; [`RedisCluster::wait_healthy`] waits for that.
    pub fn kill_primary_of_slot(&mut self, slot: u16) -> u16 {
        let port = self.primary_of_slot(slot);
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("the primary is one of ours")
            .kill();
        port
    }

    /// True when every running node reports `cluster_state:ok`, sees every slot served by a
    /// running primary, and every running replica's link to its primary is up.
    fn healthy(&self) -> Result<(), String> {
        let live: Vec<u16> = self.ports();
        for n in self.live() {
            let info = n.command(&["CLUSTER", "INFO"]);
            if !info.lines().any(|l| l.trim() == "cluster_state:ok") {
                return Err(format!("{}: {}", n.port, info.lines().next().unwrap_or("")));
            }
            let mut covered = 0u32;
            for l in parse_cluster_nodes(&n.command(&["CLUSTER", "NODES"])) {
                if l.slots.is_empty() {
                    continue;
                }
                if !l.primary || l.failed || !live.contains(&l.port) {
                    return Err(format!("{} sees slots on {} (down)", n.port, l.port));
                }
                covered += l
                    .slots
                    .iter()
                    .map(|&(a, b)| u32::from(b) - u32::from(a) + 1)
                    .sum::<u32>();
            }
            if covered != 16384 {
                return Err(format!("{} sees {covered} slots served", n.port));
            }
            let repl = n.command(&["INFO", "replication"]);
            if repl.lines().any(|l| l.trim() == "role:slave")
                && !repl.lines().any(|l| l.trim() == "master_link_status:up")
            {
                return Err(format!("{}: replica link down", n.port));
            }
        }
        Ok(())
    }

    /// Waits (up to [`STORE_DEADLINE`]) until the cluster is healthy: every running node
    /// reports `cluster_state:ok` and sees all slots on running primaries, and replicas are
    /// linked. After [`RedisCluster::kill_primary_of_slot`] that means a replica took over.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + STORE_DEADLINE;
        loop {
            match self.healthy() {
                Ok(()) => return,
                Err(why) if Instant::now() > deadline => {
                    panic!("redis cluster not healthy after {STORE_DEADLINE:?}: {why}")
                }
                Err(_) => thread::sleep(POLL * 4),
            }
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
        if let Some(root) = self.root.take() {
            let _ = root.close();
        }
    }
}
