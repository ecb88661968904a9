//! Commands over the system OpenSSH client (through the `openssh` crate), so everything in the
//! user's SSH configuration applies: host aliases, `IdentityFile`, `ProxyJump`, agents,
//! `known_hosts`. One master connection per node is opened on first use and shared by every
//! command after it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openssh::{Session, SessionBuilder, Stdio};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

use super::{CommandOutput, NodeCommand, NodeExecutor, tail};
use crate::error::{Error, Result};

/// How the node's host key is checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KnownHosts {
    /// The key must already be in `known_hosts` (`StrictHostKeyChecking=yes`).
    #[default]
    Strict,
    /// Unknown hosts are added on first contact; changed keys are refused
    /// (`StrictHostKeyChecking=accept-new`).
    AcceptNew,
}

impl KnownHosts {
    /// The names accepted in inventories.
    pub const ACCEPTED: &'static str = "strict, accept-new";
}

/// How to reach one node over SSH. Unset fields come from the SSH configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SshOptions {
    /// The destination: a host, an alias from the SSH configuration, or `user@host`.
    pub destination: String,
    /// The remote user.
    pub user: Option<String>,
    /// The port.
    pub port: Option<u16>,
    /// A private key to use (and only that key).
    pub identity_file: Option<PathBuf>,
    /// An SSH configuration file to read instead of `~/.ssh/config` (`ssh -F`).
    pub config_file: Option<PathBuf>,
    /// A known-hosts file to use in addition to the configured ones.
    pub known_hosts_file: Option<PathBuf>,
    /// Host key checking.
    pub known_hosts: KnownHosts,
    /// Connection timeout.
    pub connect_timeout: Option<Duration>,
    /// Run every command through `sudo -n` (a non-root login with password-less sudo).
    pub sudo: bool,
    /// Where the master connection's control socket lives (default: the user's state
    /// directory). Keep it short: Unix socket paths are limited to about 100 bytes.
    pub control_dir: Option<PathBuf>,
}

/// Runs commands on a node over SSH.
#[derive(Debug)]
pub struct SshExecutor {
    node: String,
    options: SshOptions,
    session: Mutex<Option<Arc<Session>>>,
}

impl SshExecutor {
    /// An executor for the Kubernetes node `node`. Nothing connects until the first command.
    pub fn new(node: impl Into<String>, options: SshOptions) -> Self {
        Self {
            node: node.into(),
            options,
            session: Mutex::new(None),
        }
    }

    /// The options it connects with.
    pub fn options(&self) -> &SshOptions {
        &self.options
    }

    fn connect_error(&self, err: &openssh::Error) -> Error {
        Error::Connect {
            node: self.node.clone(),
            destination: self.options.destination.clone(),
            message: chain(err),
        }
    }

    async fn session(&self) -> Result<Arc<Session>> {
        let mut slot = self.session.lock().await;
        if let Some(session) = slot.as_ref() {
            // A master that died (node rebooted, network blip) is replaced once.
            if session.check().await.is_ok() {
                return Ok(session.clone());
            }
            *slot = None;
        }
        let opts = &self.options;
        let mut builder = SessionBuilder::default();
        builder.known_hosts_check(match opts.known_hosts {
            KnownHosts::Strict => openssh::KnownHosts::Strict,
            KnownHosts::AcceptNew => openssh::KnownHosts::Add,
        });
        if let Some(user) = &opts.user {
            builder.user(user.clone());
        }
        if let Some(port) = opts.port {
            builder.port(port);
        }
        if let Some(key) = &opts.identity_file {
            builder.keyfile(key);
        }
        if let Some(config) = &opts.config_file {
            builder.config_file(config);
        }
        if let Some(file) = &opts.known_hosts_file {
            builder.user_known_hosts_file(file);
        }
        if let Some(timeout) = opts.connect_timeout {
            builder.connect_timeout(timeout);
        }
        if let Some(dir) = &opts.control_dir {
            builder.control_directory(dir);
        }
        builder.server_alive_interval(Duration::from_secs(15));
        let session = builder
            .connect(&opts.destination)
            .await
            .map_err(|e| self.connect_error(&e))?;
        let session = Arc::new(session);
        *slot = Some(session.clone());
        Ok(session)
    }

    fn command(
        &self,
        session: Arc<Session>,
        argv: &[String],
    ) -> openssh::OwningCommand<Arc<Session>> {
        let mut cmd = Session::to_command(session, argv[0].clone());
        // `arg` shell-escapes each argument for the remote login shell.
        cmd.args(argv[1..].iter());
        cmd
    }

    fn remote_error(&self, command: &str, err: &openssh::Error) -> Error {
        Error::Spawn {
            node: self.node.clone(),
            command: command.to_string(),
            message: chain(err),
        }
    }
}

/// An error and its sources on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[async_trait]
impl NodeExecutor for SshExecutor {
    fn node(&self) -> &str {
        &self.node
    }

    async fn run(&self, command: &NodeCommand) -> Result<CommandOutput> {
        let session = self.session().await?;
        let line = command.to_string();
        let argv = command.argv(self.options.sudo);
        let mut cmd = self.command(session, &argv);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if command.stdin_bytes().is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let run = async {
            let mut child = cmd
                .spawn()
                .await
                .map_err(|e| self.remote_error(&line, &e))?;
            if let (Some(bytes), Some(mut stdin)) = (command.stdin_bytes(), child.stdin().take()) {
                stdin.write_all(bytes).await.map_err(|e| Error::Spawn {
                    node: self.node.clone(),
                    command: line.clone(),
                    message: format!("writing standard input: {e}"),
                })?;
                stdin.shutdown().await.ok();
                drop(stdin);
            }
            // Read both pipes while the command runs, then its status: openssh reports exit
            // statuses 127 and 255 as errors, and the output must survive those.
            let mut out_pipe = child.stdout().take();
            let mut err_pipe = child.stderr().take();
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            let read_out = async {
                if let Some(p) = out_pipe.as_mut() {
                    p.read_to_end(&mut stdout).await.ok();
                }
            };
            let read_err = async {
                if let Some(p) = err_pipe.as_mut() {
                    p.read_to_end(&mut stderr).await.ok();
                }
            };
            tokio::join!(read_out, read_err);
            let status = match child.wait().await {
                Ok(status) => status.code(),
                Err(openssh::Error::Remote(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    Some(127)
                }
                Err(openssh::Error::Disconnected) => {
                    // 255 is also what a dropped connection looks like; tell them apart.
                    match self.session.lock().await.as_ref() {
                        Some(s) if s.check().await.is_ok() => Some(255),
                        _ => return Err(self.remote_error(&line, &openssh::Error::Disconnected)),
                    }
                }
                Err(e) => return Err(self.remote_error(&line, &e)),
            };
            Ok::<_, Error>((status, stdout, stderr))
        };
        let (status, stdout, stderr) = tokio::time::timeout(command.time_limit(), run)
            .await
            .map_err(|_| Error::CommandTimeout {
                node: self.node.clone(),
                command: line.clone(),
                after: command.time_limit(),
            })??;
        Ok(CommandOutput {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    async fn copy_from(&self, remote: &str, local: &Path) -> Result<u64> {
        let copy_err = |message: String| Error::Copy {
            node: self.node.clone(),
            remote: remote.to_string(),
            local: local.to_path_buf(),
            message,
        };
        let session = self.session().await?;
        let file = std::fs::File::create(local).map_err(|e| Error::io(local, e))?;
        let argv = NodeCommand::new("cat").arg(remote).argv(self.options.sudo);
        let mut cmd = self.command(session, &argv);
        // The remote file streams straight into the local one.
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().await.map_err(|e| copy_err(chain(&e)))?;
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr().take() {
            err.read_to_string(&mut stderr).await.ok();
        }
        let status = child.wait().await.map_err(|e| copy_err(chain(&e)))?;
        if !status.success() {
            return Err(copy_err(format!(
                "cat exited with {}: {}",
                status.code().map_or("a signal".into(), |c| c.to_string()),
                tail(stderr.trim(), 2000)
            )));
        }
        let size = tokio::fs::metadata(local)
            .await
            .map_err(|e| Error::io(local, e))?
            .len();
        Ok(size)
    }

    async fn copy_to(&self, local: &Path, remote: &str) -> Result<u64> {
        let copy_err = |message: String| Error::Copy {
            node: self.node.clone(),
            remote: remote.to_string(),
            local: local.to_path_buf(),
            message,
        };
        let session = self.session().await?;
        let file = std::fs::File::open(local).map_err(|e| Error::io(local, e))?;
        let size = file.metadata().map_err(|e| Error::io(local, e))?.len();
        // `tee` writes its standard input to the path given as an argument; no redirection in
        // a shell line is needed.
        let argv = NodeCommand::new("tee").arg(remote).argv(self.options.sudo);
        let mut cmd = self.command(session, &argv);
        cmd.stdin(Stdio::from(file))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().await.map_err(|e| copy_err(chain(&e)))?;
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr().take() {
            err.read_to_string(&mut stderr).await.ok();
        }
        let status = child.wait().await.map_err(|e| copy_err(chain(&e)))?;
        if !status.success() {
            return Err(copy_err(format!(
                "tee exited with {}: {}",
                status.code().map_or("a signal".into(), |c| c.to_string()),
                tail(stderr.trim(), 2000)
            )));
        }
        Ok(size)
    }
}
