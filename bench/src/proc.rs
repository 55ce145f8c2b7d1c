//! Child processes (our server, the bare baseline, the peers), their memory, and limits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub type Res<T> = Result<T, String>;

/// A child we started; killed by its pid when stopped or dropped.
pub struct Spawned {
    pub child: Child,
    pub pid: u32,
    pub addr: Option<SocketAddr>,
}

impl Spawned {
    pub fn rss_bytes(&self) -> Res<u64> {
        rss_bytes(self.pid)
    }

    /// SIGTERM, then SIGKILL if it has not gone within `grace`.
    pub async fn stop(mut self, grace: Duration) -> Res<()> {
        signal(self.pid, libc::SIGTERM);
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(_) => Ok(()),
            Err(_) => {
                signal(self.pid, libc::SIGKILL);
                let _ = self.child.wait().await;
                Ok(())
            }
        }
    }
}

/// Sends `sig` to one pid (never a group, never by name).
#[allow(unsafe_code)]
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid we spawned and still own; no memory is shared.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Raises this process's open-file soft limit to its hard limit (children inherit it).
/// Returns the soft limit now in force.
#[allow(unsafe_code)]
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read only the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        // Past the hard limit where the system lets this process (as root, up to
        // `fs.nr_open`): the 20k idle connections need that many on each side; the servers
        // started from here inherit it.
        let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<libc::rlim_t>().ok())
            .unwrap_or(0)
            .min(1 << 20);
        let above = libc::rlimit {
            rlim_cur: ceiling,
            rlim_max: ceiling,
        };
        if ceiling > lim.rlim_max && libc::setrlimit(libc::RLIMIT_NOFILE, &above) == 0 {
            return ceiling as u64;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// VmRSS of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Res<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("no VmRSS for {pid}"))
}

/// CPU time (user + system) a process has used so far, in milliseconds.
pub fn cpu_ms(pid: u32) -> Res<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("cannot read /proc/{pid}/stat: {e}"))?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    let (Some(u), Some(st)) = (ticks(11), ticks(12)) else {
        return Err(format!("unexpected /proc/{pid}/stat"));
    };
    // /proc reports in USER_HZ clock ticks, which the kernel fixes at 100 per second.
    Ok((u + st) * 10.0)
}

/// Starts `cmd` and waits (at most `timeout`) for a stdout line containing `ready`; the
/// text after `http://` on that line, if any, is taken as the address.
pub async fn spawn_until(
    name: &str,
    mut cmd: Command,
    ready: &str,
    timeout: Duration,
    logs: &Path,
) -> Res<Spawned> {
    std::fs::create_dir_all(logs).map_err(|e| e.to_string())?;
    let log = logs.join(format!("{name}.log"));
    let err_file = std::fs::File::create(logs.join(format!("{name}.stderr.log")))
        .map_err(|e| e.to_string())?;
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::from(err_file))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let pid = child.id().ok_or("child has no pid")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = String::new();
    let found = tokio::time::timeout(timeout, async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(ready) {
                return Some(line);
            }
        }
        None
    })
    .await;
    let line = match found {
        Ok(Some(l)) => l,
        other => {
            signal(pid, libc::SIGKILL);
            let _ = child.wait().await;
            let why = if other.is_err() {
                "timed out"
            } else {
                "exited"
            };
            return Err(format!(
                "{name} {why} before printing {ready:?}; stdout so far:\n{seen}(stderr in {})",
                logs.join(format!("{name}.stderr.log")).display()
            ));
        }
    };
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|a| a.split_whitespace().next())
        .and_then(|a| a.parse().ok());
    // Keep draining stdout so the child never blocks on a full pipe.
    let log_path = log.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let Ok(mut f) = tokio::fs::File::create(&log_path).await else {
            return;
        };
        let _ = f.write_all(seen.as_bytes()).await;
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = f.write_all(line.as_bytes()).await;
            let _ = f.write_all(b"\n").await;
        }
    });
    Ok(Spawned { child, pid, addr })
}

/// A free loopback port (bound then released; the peer binds it right after).
pub fn free_port() -> Res<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// A free loopback UDP port.
pub fn free_udp_port() -> Res<u16> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(s.local_addr().map_err(|e| e.to_string())?.port())
}

/// Runs a command to completion, returning its stdout; stderr goes to the log dir.
pub async fn run(mut cmd: Command, what: &str, timeout: Duration) -> Res<String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| format!("{what}: timed out after {} s", timeout.as_secs()))?
        .map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: String = err
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        return Err(format!("{what}: {}\n{tail}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether a program is on PATH.
pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}
