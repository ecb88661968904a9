//! Real processes for the kubeadm provider's harness: an OpenSSH server on loopback whose
//! sessions run the node shims of `providers/kubeadm/tests/shims`, and single-member etcd
//! servers with temporary data directories.
//!
//! How commands reach the shims: sshd does not pass the client's environment, and root's
//! shell start-up files may rewrite `PATH`. The sshd therefore uses `ForceCommand` with the
//! shims' `login`, which fixes `PATH` (shims first, then the system directories) and runs the
//! original command; which node a session plays comes from the client's
//! `SetEnv KUP_SIM_NODE=<node>` (one host alias per node, all pointing at the same sshd) and
//! sshd's `AcceptEnv KUP_SIM_NODE`. Shim state lives under `KUP_SHIM_STATE`.

// Test-support code: a lab that cannot start is a failed test, so it panics with context.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A binary from `env` (set by scripts/test), else `fallback` on PATH. Missing: panics under
/// CI, otherwise prints why the test is skipped and returns `None`.
pub fn binary(env: &str, fallback: &str) -> Option<PathBuf> {
    let from_env = std::env::var_os(env)
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    let found = from_env.or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join(fallback))
            .find(|p| p.is_file())
            .or_else(|| {
                let sbin = Path::new("/usr/sbin").join(fallback);
                sbin.is_file().then_some(sbin)
            })
    });
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(
            !ci,
            "{fallback} is required under CI: set {env} or install it (scripts/test does)"
        );
        eprintln!("skipping: {fallback} not found (set {env} or install it)");
    }
    found
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The node shims (kubeadm, apt-get, apt-mark, systemctl…) of the kubeadm provider's tests.
pub fn shims_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../providers/kubeadm/tests/shims")
}

/// A running sshd on 127.0.0.1 and a client configuration with one alias per node.
pub struct Sshd {
    /// The port it listens on.
    pub port: u16,
    /// Its directory: keys, configuration, SSH control sockets.
    pub dir: tempfile::TempDir,
    /// The client configuration with one host alias per node.
    pub ssh_config: PathBuf,
    /// Where the shims keep each node's state (`<state_dir>/<node>/…`).
    pub state_dir: PathBuf,
    child: Child,
}

impl Sshd {
    /// Starts sshd. `nodes` become host aliases; `extra_path` goes in front of the system
    /// directories on the sessions' PATH (after the shims when `with_shims`).
    pub fn start(sshd: &Path, nodes: &[&str], with_shims: bool, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("kup-sshd")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let keygen = |path: &Path| {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(path)
                .status()
                .expect("ssh-keygen");
            assert!(st.success());
        };
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        let state_dir = d.join("state");
        std::fs::create_dir_all(&state_dir).unwrap();
        let port = free_port();
        let path = if with_shims {
            format!(
                "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                shims_dir().display()
            )
        } else {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()
        };
        let mut set_env = format!(
            "KUP_SHIM_STATE={} KUP_SESSION_PATH={path}",
            state_dir.display()
        );
        for (k, v) in env {
            set_env.push_str(&format!(" {k}={v}"));
        }
        let config = format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nMaxSessions 100\n\
             MaxStartups 100:30:200\nAcceptEnv KUP_SIM_NODE\nSetEnv {set_env}\n\
             ForceCommand {login}\nLogLevel ERROR\n",
            d = d.display(),
            login = shims_dir().join("login").display(),
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let mut child = Command::new(sshd)
            .arg("-f")
            .arg(d.join("sshd_config"))
            .args(["-D", "-e"])
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshd");
        wait_port(port, "sshd", &mut child);
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {}", host_pub.trim()),
        )
        .unwrap();
        let mut client = String::new();
        for node in nodes {
            client.push_str(&format!(
                "Host {node}\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {d}/client_key\n  \
                 IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n  \
                 SetEnv KUP_SIM_NODE={node}\n  LogLevel ERROR\n",
                d = d.display()
            ));
        }
        let ssh_config = d.join("ssh_config");
        std::fs::write(&ssh_config, client).unwrap();
        Sshd {
            port,
            ssh_config,
            state_dir,
            dir,
            child,
        }
    }

    /// The SSH options for `node` (an alias of this sshd's client configuration).
    pub fn options(&self, node: &str) -> kup_kubeadm::exec::SshOptions {
        kup_kubeadm::exec::SshOptions {
            destination: node.to_string(),
            config_file: Some(self.ssh_config.clone()),
            control_dir: Some(self.dir.path().to_path_buf()),
            connect_timeout: Some(Duration::from_secs(30)),
            ..Default::default()
        }
    }

    /// The calls the shims recorded on `node`, one per line.
    pub fn calls(&self, node: &str) -> Vec<String> {
        std::fs::read_to_string(self.state_dir.join(node).join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Writes a shim state file for `node` (`pkg/kubeadm`, `fail/upgrade-node`…).
    pub fn set_state(&self, node: &str, key: &str, value: &str) {
        let path = self.state_dir.join(node).join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, value).unwrap();
    }

    /// Reads a shim state file.
    pub fn state(&self, node: &str, key: &str) -> Option<String> {
        std::fs::read_to_string(self.state_dir.join(node).join(key)).ok()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A single-member etcd on loopback ports.
pub struct Etcd {
    /// The client port.
    pub client_port: u16,
    /// The peer port.
    pub peer_port: u16,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The member's name.
    pub name: String,
    child: Option<Child>,
}

impl Etcd {
    /// Starts etcd on `data_dir` (created when missing).
    pub fn start(
        etcd: &Path,
        etcdctl: &Path,
        data_dir: &Path,
        name: &str,
        ports: Option<(u16, u16)>,
    ) -> Self {
        let (client_port, peer_port) = ports.unwrap_or_else(|| (free_port(), free_port()));
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::File::create(data_dir.with_extension("log")).unwrap();
        let mut child = Command::new(etcd)
            .arg(format!("--name={name}"))
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={name}={peer}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        wait_port(client_port, "etcd", &mut child);
        let e = Etcd {
            client_port,
            peer_port,
            data_dir: data_dir.to_path_buf(),
            name: name.to_string(),
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !e.ctl(etcdctl, &["endpoint", "health"]).status.success() {
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
        e
    }

    /// The client endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Runs etcdctl against this etcd.
    pub fn ctl(&self, etcdctl: &Path, args: &[&str]) -> std::process::Output {
        Command::new(etcdctl)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint()))
            .args(args)
            .output()
            .expect("etcdctl")
    }

    /// Writes a key.
    pub fn put(&self, etcdctl: &Path, key: &str, value: &str) {
        let out = self.ctl(etcdctl, &["put", key, value]);
        assert!(
            out.status.success(),
            "put {key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Reads a key (`None` when absent).
    pub fn get(&self, etcdctl: &Path, key: &str) -> Option<String> {
        let out = self.ctl(etcdctl, &["get", key, "--print-value-only"]);
        assert!(
            out.status.success(),
            "get {key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!text.is_empty()).then_some(text)
    }

    /// Stops it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
