//! Running commands on nodes: the [`NodeExecutor`] trait, commands built from typed arguments
//! ([`NodeCommand`]), and two executors: [`SshExecutor`] (the system OpenSSH client, so
//! `~/.ssh/config` aliases, keys and `ProxyJump` apply) and [`LocalExecutor`].
//!
//! A command is a program and a list of arguments, never a shell line: each argument is
//! escaped on its own before it crosses SSH (the remote side always runs commands through the
//! login shell), so a path with spaces or a node name with quotes stays one argument.

mod local;
mod ssh;

use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;

pub use local::LocalExecutor;
pub use ssh::{KnownHosts, SshExecutor, SshOptions};

use crate::error::{Error, Result};

/// How long a command may run unless it says otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// A command to run on a node, built from typed arguments.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeCommand {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

impl NodeCommand {
    /// A command running `program` (looked up on the node's `PATH`).
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// Adds one argument, passed verbatim as one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the command (passed through `env`, so it works over
    /// SSH where the server accepts no client environment).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Feeds these bytes to the command's standard input.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Sets the time limit.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The program.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The arguments.
    pub fn arguments(&self) -> &[String] {
        &self.args
    }

    /// The bytes for standard input, if any.
    pub fn stdin_bytes(&self) -> Option<&[u8]> {
        self.stdin.as_deref()
    }

    /// The time limit.
    pub fn time_limit(&self) -> Duration {
        self.timeout
    }

    /// The full argument vector to execute: `env K=V … program args…` when there are
    /// variables, with `sudo -n --` in front when `sudo` is set.
    pub fn argv(&self, sudo: bool) -> Vec<String> {
        let mut argv = Vec::with_capacity(self.args.len() + self.env.len() + 4);
        if sudo {
            argv.extend(["sudo".to_string(), "-n".to_string(), "--".to_string()]);
        }
        if !self.env.is_empty() {
            argv.push("env".to_string());
            argv.extend(self.env.iter().map(|(k, v)| format!("{k}={v}")));
        }
        argv.push(self.program.clone());
        argv.extend(self.args.iter().cloned());
        argv
    }

    /// The command as one shell-escaped line (what the remote shell receives over SSH).
    pub fn shell_line(&self, sudo: bool) -> String {
        self.argv(sudo)
            .iter()
            .map(|a| shell_escape(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Display for NodeCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shell_line(false))
    }
}

impl fmt::Debug for NodeCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // stdin may hold file contents; show only its size.
        f.debug_struct("NodeCommand")
            .field("line", &self.shell_line(false))
            .field("stdin_bytes", &self.stdin.as_ref().map(Vec::len))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Quotes `arg` for a POSIX shell unless it holds only characters that need no quoting.
pub fn shell_escape(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg.bytes().all(|b| {
            matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'=' | b'/'
                | b',' | b'.' | b'+' | b':' | b'@' | b'%')
        });
    if plain {
        return arg.to_string();
    }
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// What a command left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutput {
    /// Its exit status; `None` when a signal ended it.
    pub status: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CommandOutput {
    /// True when it exited with status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// Runs commands on one node and copies files off and onto it.
#[async_trait]
pub trait NodeExecutor: Send + Sync + fmt::Debug {
    /// The Kubernetes node name this executor reaches.
    fn node(&self) -> &str;

    /// Runs a command; a non-zero exit is an `Ok` output (see [`NodeExecutor::run_checked`]).
    /// Fails only when the command cannot be started or does not finish within its limit.
    async fn run(&self, command: &NodeCommand) -> Result<CommandOutput>;

    /// Copies a file from the node to `local` (created or truncated), returning its size.
    async fn copy_from(&self, remote: &str, local: &Path) -> Result<u64>;

    /// Copies `local` onto the node at `remote` (created or truncated), returning its size.
    async fn copy_to(&self, local: &Path, remote: &str) -> Result<u64>;

    /// Runs a command and fails with [`Error::CommandFailed`] unless it exits with status 0.
    async fn run_checked(&self, command: &NodeCommand) -> Result<CommandOutput> {
        let output = self.run(command).await?;
        if output.success() {
            Ok(output)
        } else {
            Err(Error::CommandFailed {
                node: self.node().to_string(),
                command: command.to_string(),
                status: output.status,
                stderr: tail(&output.stderr, 4000),
            })
        }
    }

    /// Whether `program` is on the node's `PATH`.
    async fn has_program(&self, program: &str) -> Result<bool> {
        // The name travels as a positional parameter, never as part of the script.
        let probe = NodeCommand::new("sh")
            .args(["-c", "command -v -- \"$1\" >/dev/null 2>&1", "sh"])
            .arg(program)
            .timeout(Duration::from_secs(60));
        Ok(self.run(&probe).await?.success())
    }
}

/// The last `max` bytes of `text`, cut at a character boundary.
pub(crate) fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_escaped_one_by_one() {
        let cmd = NodeCommand::new("apt-get")
            .args(["install", "-y", "kubeadm=1.31.2-*"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        assert_eq!(
            cmd.shell_line(false),
            "env DEBIAN_FRONTEND=noninteractive apt-get install -y 'kubeadm=1.31.2-*'"
        );
        assert_eq!(
            cmd.shell_line(true),
            "sudo -n -- env DEBIAN_FRONTEND=noninteractive apt-get install -y 'kubeadm=1.31.2-*'"
        );
        let hostile = NodeCommand::new("cat").arg("/tmp/a b'; rm -rf / #");
        assert_eq!(hostile.to_string(), r"cat '/tmp/a b'\''; rm -rf / #'");
        assert_eq!(shell_escape(""), "''");
        assert_eq!(shell_escape("$(id)"), "'$(id)'");
    }

    #[test]
    fn debug_hides_stdin_contents() {
        let cmd = NodeCommand::new("tee").arg("/etc/x").stdin("secret-token");
        let dbg = format!("{cmd:?}");
        assert!(!dbg.contains("secret-token"));
        assert!(dbg.contains("stdin_bytes: Some(12)"));
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("abcdef", 3), "…def");
        assert_eq!(tail("ab", 3), "ab");
    }
}
