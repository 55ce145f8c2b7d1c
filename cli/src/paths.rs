//! Where the CLI keeps its data, and what it calls this machine.

use std::path::PathBuf;

/// The per-user data dir: `$XDG_DATA_HOME/presence`, else `~/.local/share/presence` (on macOS
/// `~/Library/Application Support/presence`, on Windows `%APPDATA%\presence`).
pub fn default_data_dir() -> Option<PathBuf> {
    let env_dir = |k: &str| {
        std::env::var_os(k)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if cfg!(windows) {
        return env_dir("APPDATA").map(|d| d.join("presence"));
    }
    if let Some(d) = env_dir("XDG_DATA_HOME") {
        return Some(d.join("presence"));
    }
    let home = env_dir("HOME")?;
    if cfg!(target_os = "macos") {
        Some(home.join("Library/Application Support/presence"))
    } else {
        Some(home.join(".local/share/presence"))
    }
}

/// The name shown in session lists: the host name, or "desktop".
pub fn device_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "desktop".to_owned())
}
