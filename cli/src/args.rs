//! The command line contract (see docs/CLI.md).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use presence_core::AgentStatus;

#[derive(Debug, Parser)]
#[command(
    name = "presence",
    version,
    about = "Presence desktop agent: set your chat availability and watch your chat box",
    propagate_version = true
)]
pub struct Cli {
    /// Where this device keeps its session and unsent changes [default: the per-user data dir]
    #[arg(long, env = "PRESENCE_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Presence server URL, e.g. http://127.0.0.1:8080 [default: the one used at login]
    #[arg(long, env = "PRESENCE_SERVER", global = true, value_name = "URL")]
    pub server: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log this device in
    Login {
        /// Account slug
        #[arg(long)]
        account: String,
        #[arg(long)]
        email: String,
        /// Password (visible in the process list; prefer --password-stdin)
        #[arg(
            long,
            required_unless_present = "password_stdin",
            conflicts_with = "password_stdin"
        )]
        password: Option<String>,
        /// Read the password from the first line of stdin
        #[arg(long)]
        password_stdin: bool,
    },
    /// Show your status, or set it (exits 0 once the change is stored, even if the server is
    /// unreachable; it is then delivered later)
    Status {
        #[arg(value_enum)]
        status: Option<StatusArg>,
    },
    /// Show everything this device knows
    Show {
        /// Print the snapshot as JSON
        #[arg(long)]
        json: bool,
    },
    /// Deliver stored changes; exits 0 when none are left, 3 if some are still pending
    Sync {
        /// Give up after this long
        #[arg(long, default_value_t = 10_000, value_name = "N")]
        timeout_ms: u64,
    },
    /// Live view until Ctrl-C, keeping the session alive
    Watch,
    /// Log this device out
    Logout,
    /// List stored changes; retry or discard one the server refused
    Outbox {
        #[command(subcommand)]
        action: Option<OutboxAction>,
    },
    /// Show a chat box as visitors see it
    Chatbox {
        widget_key: String,
        /// Keep printing every change until Ctrl-C
        #[arg(long)]
        watch: bool,
        /// Print the view as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Put a refused (wedged) change back in the queue
    Retry { op_id: String },
    /// Delete a refused (wedged) change
    Discard { op_id: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Online,
    Busy,
    Offline,
}

impl From<StatusArg> for AgentStatus {
    fn from(s: StatusArg) -> AgentStatus {
        match s {
            StatusArg::Online => AgentStatus::Online,
            StatusArg::Busy => AgentStatus::Busy,
            StatusArg::Offline => AgentStatus::Offline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn login_needs_exactly_one_password_source() {
        let base = ["presence", "login", "--account", "a", "--email", "e"];
        assert!(Cli::try_parse_from(base).is_err());
        assert!(Cli::try_parse_from(base.iter().chain(&["--password", "p"])).is_ok());
        assert!(Cli::try_parse_from(base.iter().chain(&["--password-stdin"])).is_ok());
        assert!(
            Cli::try_parse_from(base.iter().chain(&["--password", "p", "--password-stdin"]))
                .is_err()
        );
    }

    #[test]
    fn global_flags_go_anywhere() {
        let c =
            Cli::try_parse_from(["presence", "status", "busy", "--server", "http://x"]).unwrap();
        assert_eq!(c.server.as_deref(), Some("http://x"));
        assert!(matches!(
            c.command,
            Command::Status {
                status: Some(StatusArg::Busy)
            }
        ));
        assert!(Cli::try_parse_from(["presence", "status", "away"]).is_err());
    }
}
