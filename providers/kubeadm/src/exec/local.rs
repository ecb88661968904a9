//! Running commands on the machine kup runs on (single-node clusters, kup running on the first
//! control-plane node, and tests).

use std::path::Path;
use std::process::Stdio;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::{CommandOutput, NodeCommand, NodeExecutor};
use crate::error::{Error, Result};

/// Runs commands as local processes, for the node kup itself runs on.
#[derive(Clone, Debug)]
pub struct LocalExecutor {
    node: String,
    sudo: bool,
    path_prefix: Option<String>,
    env: Vec<(String, String)>,
}

impl LocalExecutor {
    /// An executor for the Kubernetes node `node`, which is this machine.
    pub fn new(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            sudo: false,
            path_prefix: None,
            env: Vec::new(),
        }
    }

    /// Sets an environment variable for every command.
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs every command through `sudo -n` (kup not running as root).
    pub fn with_sudo(mut self, sudo: bool) -> Self {
        self.sudo = sudo;
        self
    }

    /// Puts `dir` in front of `PATH` for every command (tools installed outside `PATH`).
    pub fn with_path_prefix(mut self, dir: impl Into<String>) -> Self {
        self.path_prefix = Some(dir.into());
        self
    }

    fn path_env(&self) -> Option<String> {
        let prefix = self.path_prefix.as_ref()?;
        let current = std::env::var("PATH").unwrap_or_default();
        Some(if current.is_empty() {
            prefix.clone()
        } else {
            format!("{prefix}:{current}")
        })
    }
}

#[async_trait]
impl NodeExecutor for LocalExecutor {
    fn node(&self) -> &str {
        &self.node
    }

    async fn run(&self, command: &NodeCommand) -> Result<CommandOutput> {
        let argv = command.argv(self.sudo);
        let line = command.to_string();
        let spawn_err = |message: String| Error::Spawn {
            node: self.node.clone(),
            command: line.clone(),
            message,
        };
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if command.stdin_bytes().is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true);
        if let Some(path) = self.path_env() {
            cmd.env("PATH", path);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd.spawn().map_err(|e| spawn_err(e.to_string()))?;
        if let (Some(bytes), Some(mut stdin)) = (command.stdin_bytes(), child.stdin.take()) {
            stdin
                .write_all(bytes)
                .await
                .map_err(|e| spawn_err(format!("writing standard input: {e}")))?;
            drop(stdin);
        }
        let output = tokio::time::timeout(command.time_limit(), child.wait_with_output())
            .await
            .map_err(|_| Error::CommandTimeout {
                node: self.node.clone(),
                command: line.clone(),
                after: command.time_limit(),
            })?
            .map_err(|e| spawn_err(e.to_string()))?;
        Ok(CommandOutput {
            status: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    async fn copy_from(&self, remote: &str, local: &Path) -> Result<u64> {
        tokio::fs::copy(remote, local)
            .await
            .map_err(|e| Error::Copy {
                node: self.node.clone(),
                remote: remote.to_string(),
                local: local.to_path_buf(),
                message: e.to_string(),
            })
    }

    async fn copy_to(&self, local: &Path, remote: &str) -> Result<u64> {
        tokio::fs::copy(local, remote)
            .await
            .map_err(|e| Error::Copy {
                node: self.node.clone(),
                remote: remote.to_string(),
                local: local.to_path_buf(),
                message: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn runs_with_stdin_status_and_timeout() {
        let exec = LocalExecutor::new("local");
        let out = exec
            .run(
                &NodeCommand::new("sh")
                    .args(["-c", "cat; echo err >&2; exit 3"])
                    .stdin("hi"),
            )
            .await
            .unwrap();
        assert_eq!(out.status, Some(3));
        assert_eq!(out.stdout, "hi");
        assert_eq!(out.stderr, "err\n");
        let err = exec
            .run_checked(&NodeCommand::new("false"))
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            Error::CommandFailed {
                status: Some(1),
                ..
            }
        ));
        let err = exec
            .run(
                &NodeCommand::new("sleep")
                    .arg("30")
                    .timeout(Duration::from_millis(200)),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::CommandTimeout { .. }), "{err}");
        assert!(exec.has_program("sh").await.unwrap());
        assert!(!exec.has_program("no-such-program-kup").await.unwrap());
    }
}
