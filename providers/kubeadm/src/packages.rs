//! Kubernetes packages on a node: apt (Debian, Ubuntu) and dnf/yum (RHEL, Fedora, Rocky…).
//!
//! pkgs.k8s.io has one repository per minor (`…/core:/stable:/v1.31/deb/`), so moving a node
//! to a new minor first rewrites the node's repository definition to the new minor, then
//! installs the pinned build. apt holds the packages (`apt-mark hold`) so routine upgrades
//! leave them alone; the yum/dnf repository excludes them, so installs pass
//! `--disableexcludes=kubernetes`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use kup_core::KubeVersion;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::exec::{NodeCommand, NodeExecutor};

/// A node's package manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageManager {
    /// apt (Debian, Ubuntu).
    Apt,
    /// dnf (RHEL 8+, Fedora, Rocky, Alma).
    Dnf,
    /// yum (older RHEL and CentOS).
    Yum,
}

impl PackageManager {
    /// The names accepted in inventories.
    pub const ACCEPTED: &'static str = "apt, dnf, yum";

    /// The name as written in inventories.
    pub fn name(self) -> &'static str {
        match self {
            Self::Apt => "apt",
            Self::Dnf => "dnf",
            Self::Yum => "yum",
        }
    }

    /// The package manager found on the node (`apt-get`, then `dnf`, then `yum` on its
    /// `PATH`).
    pub async fn detect(exec: &dyn NodeExecutor) -> Result<Self> {
        for (program, pm) in [
            ("apt-get", Self::Apt),
            ("dnf", Self::Dnf),
            ("yum", Self::Yum),
        ] {
            if exec.has_program(program).await? {
                return Ok(pm);
            }
        }
        Err(Error::Precondition(format!(
            "node {} has none of apt-get, dnf or yum on its PATH; set `package_manager` ({}) for \
             it in the inventory",
            exec.node(),
            Self::ACCEPTED
        )))
    }
}

impl fmt::Display for PackageManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PackageManager {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "apt" => Ok(Self::Apt),
            "dnf" => Ok(Self::Dnf),
            "yum" => Ok(Self::Yum),
            other => Err(format!(
                "unknown package manager {other:?}; accepted values: {}",
                Self::ACCEPTED
            )),
        }
    }
}

/// Where the Kubernetes repository definitions live on nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageSettings {
    /// The apt source file (one-line or deb822 format).
    pub apt_source: String,
    /// The yum/dnf repository file.
    pub rpm_repo: String,
    /// The repository id in the yum/dnf file (for `--disableexcludes`).
    pub rpm_repo_id: String,
    /// Also move kubectl with the kubelet (the kubeadm upgrade guide does).
    pub upgrade_kubectl: bool,
    /// Time limit for one package-manager command.
    #[serde(with = "secs")]
    pub command_timeout: Duration,
}

impl Default for PackageSettings {
    fn default() -> Self {
        Self {
            apt_source: "/etc/apt/sources.list.d/kubernetes.list".into(),
            rpm_repo: "/etc/yum.repos.d/kubernetes.repo".into(),
            rpm_repo_id: "kubernetes".into(),
            upgrade_kubectl: true,
            command_timeout: Duration::from_secs(900),
        }
    }
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// Rewrites the `/v1.X/` segment of the repository URLs in a repository definition to
/// `minor`. Only repository lines change: apt `deb …` lines and deb822 `URIs:` fields, yum
/// `baseurl=` and `gpgkey=`. Returns `None` when no line names a per-minor repository (the
/// legacy apt.kubernetes.io and packages.cloud.google.com repositories, which are frozen).
pub fn switch_repository_minor(definition: &str, minor: &KubeVersion) -> Option<String> {
    let wanted = format!("/v{}.{}/", minor.major(), minor.minor());
    let mut found = false;
    let mut out = String::with_capacity(definition.len() + 8);
    for line in definition.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let lower = trimmed.to_ascii_lowercase();
        let repo_line = lower.starts_with("deb ")
            || lower.starts_with("deb\t")
            || lower.starts_with("uris:")
            || lower.starts_with("baseurl")
            || lower.starts_with("gpgkey");
        if repo_line && let Some(rewritten) = replace_minor_segment(line, &wanted) {
            found = true;
            out.push_str(&rewritten);
        } else {
            out.push_str(line);
        }
    }
    found.then_some(out)
}

/// Replaces every `/vMAJOR.MINOR/` path segment of `line` with `wanted`.
fn replace_minor_segment(line: &str, wanted: &str) -> Option<String> {
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    let mut replaced = false;
    while i < bytes.len() {
        if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'v') {
            // `/v` digits `.` digits `/`
            let mut j = i + 2;
            let start_major = j;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            if j > start_major && bytes.get(j) == Some(&b'.') {
                let start_minor = j + 1;
                let mut k = start_minor;
                while k < bytes.len() && bytes[k].is_ascii_digit() {
                    k += 1;
                }
                if k > start_minor && bytes.get(k) == Some(&b'/') {
                    out.push_str(wanted);
                    i = k + 1;
                    replaced = true;
                    continue;
                }
            }
        }
        let ch_len = line[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&line[i..i + ch_len]);
        i += ch_len;
    }
    replaced.then_some(out)
}

/// The pinned package argument for `package` at `version` (`kubeadm=1.31.2-*` for apt,
/// `kubeadm-1.31.2-*` for dnf/yum); pkgs.k8s.io builds carry a revision such as `-1.1`.
pub fn pinned(pm: PackageManager, package: &str, version: &KubeVersion) -> String {
    let v = format!(
        "{}.{}.{}",
        version.major(),
        version.minor(),
        version.patch().unwrap_or(0)
    );
    match pm {
        PackageManager::Apt => format!("{package}={v}-*"),
        PackageManager::Dnf | PackageManager::Yum => format!("{package}-{v}-*"),
    }
}

/// Drives one node's Kubernetes packages.
#[derive(Debug)]
pub struct NodePackages<'a> {
    exec: &'a dyn NodeExecutor,
    pm: PackageManager,
    settings: &'a PackageSettings,
    repo_file: Option<&'a str>,
}

impl<'a> NodePackages<'a> {
    /// Packages on the node `exec` reaches, managed by `pm`.
    pub fn new(
        exec: &'a dyn NodeExecutor,
        pm: PackageManager,
        settings: &'a PackageSettings,
    ) -> Self {
        Self {
            exec,
            pm,
            settings,
            repo_file: None,
        }
    }

    /// Uses `path` as this node's repository definition instead of the settings' default
    /// (inventory `repo_file`).
    pub fn with_repo_file(mut self, path: Option<&'a str>) -> Self {
        self.repo_file = path;
        self
    }

    /// The package manager.
    pub fn manager(&self) -> PackageManager {
        self.pm
    }

    fn repo_file(&self) -> &str {
        if let Some(path) = self.repo_file {
            return path;
        }
        match self.pm {
            PackageManager::Apt => &self.settings.apt_source,
            PackageManager::Dnf | PackageManager::Yum => &self.settings.rpm_repo,
        }
    }

    fn cmd(&self, program: &str) -> NodeCommand {
        let cmd = NodeCommand::new(program).timeout(self.settings.command_timeout);
        match self.pm {
            PackageManager::Apt => cmd.env("DEBIAN_FRONTEND", "noninteractive"),
            _ => cmd,
        }
    }

    /// Points the node's Kubernetes repository at `version`'s minor. Returns whether the file
    /// changed (an unchanged file is not written).
    pub async fn switch_repository(&self, version: &KubeVersion) -> Result<bool> {
        let path = self.repo_file();
        let current = self
            .exec
            .run_checked(&NodeCommand::new("cat").arg(path))
            .await?
            .stdout;
        let Some(updated) = switch_repository_minor(&current, version) else {
            return Err(Error::Precondition(format!(
                "the Kubernetes repository definition {path} on {} names no per-minor \
                 pkgs.k8s.io repository (…/v1.X/…); the legacy apt.kubernetes.io and \
                 packages.cloud.google.com repositories are frozen. Point it at \
                 pkgs.k8s.io as described in \
                 https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/change-package-repository/",
                self.exec.node()
            )));
        };
        if updated == current {
            return Ok(false);
        }
        self.exec
            .run_checked(&NodeCommand::new("tee").arg(path).stdin(updated))
            .await?;
        Ok(true)
    }

    /// Installs `packages` pinned at `version` (which may be older: downgrades are allowed
    /// when `downgrade` is set), holding them again afterwards on apt.
    pub async fn install(
        &self,
        packages: &[&str],
        version: &KubeVersion,
        downgrade: bool,
    ) -> Result<()> {
        let pinned: Vec<String> = packages
            .iter()
            .map(|p| pinned(self.pm, p, version))
            .collect();
        match self.pm {
            PackageManager::Apt => {
                self.exec
                    .run_checked(
                        &self
                            .cmd("apt-mark")
                            .arg("unhold")
                            .args(packages.iter().copied()),
                    )
                    .await?;
                self.exec
                    .run_checked(&self.cmd("apt-get").arg("update"))
                    .await?;
                let mut install = self.cmd("apt-get").args(["install", "-y"]);
                if downgrade {
                    install = install.arg("--allow-downgrades");
                }
                self.exec.run_checked(&install.args(pinned)).await?;
                self.exec
                    .run_checked(
                        &self
                            .cmd("apt-mark")
                            .arg("hold")
                            .args(packages.iter().copied()),
                    )
                    .await?;
            }
            PackageManager::Dnf | PackageManager::Yum => {
                let verb = if downgrade { "downgrade" } else { "install" };
                self.exec
                    .run_checked(
                        &self
                            .cmd(self.pm.name())
                            .args([verb, "-y"])
                            .args(pinned)
                            .arg(format!("--disableexcludes={}", self.settings.rpm_repo_id)),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// The node's kubeadm version (`kubeadm version -o short`).
    pub async fn kubeadm_version(&self) -> Result<KubeVersion> {
        let out = self
            .exec
            .run_checked(&NodeCommand::new("kubeadm").args(["version", "-o", "short"]))
            .await?;
        KubeVersion::parse(out.stdout.trim()).map_err(|e| Error::UnexpectedOutput {
            node: self.exec.node().to_string(),
            what: "kubeadm version -o short".into(),
            message: e.to_string(),
        })
    }

    /// Moves kubeadm to `version` (switching the repository when the minor changes) and
    /// checks that the installed binary reports it.
    pub async fn upgrade_kubeadm(&self, version: &KubeVersion, downgrade: bool) -> Result<()> {
        self.switch_repository(version).await?;
        self.install(&["kubeadm"], version, downgrade).await?;
        let installed = self.kubeadm_version().await?;
        if !installed.matches(&version.without_suffix()) {
            return Err(Error::Precondition(format!(
                "after installing kubeadm {version} on {}, `kubeadm version` reports {installed}",
                self.exec.node()
            )));
        }
        Ok(())
    }

    /// Moves the kubelet (and kubectl, when set) to `version`, then reloads systemd and
    /// restarts the kubelet.
    pub async fn upgrade_kubelet(&self, version: &KubeVersion, downgrade: bool) -> Result<()> {
        self.install_kubelet(version, downgrade).await?;
        self.restart_kubelet().await
    }

    /// Installs the kubelet (and kubectl, when set) at `version` without restarting it.
    pub async fn install_kubelet(&self, version: &KubeVersion, downgrade: bool) -> Result<()> {
        self.switch_repository(version).await?;
        let mut packages = vec!["kubelet"];
        if self.settings.upgrade_kubectl {
            packages.push("kubectl");
        }
        self.install(&packages, version, downgrade).await
    }

    /// `systemctl daemon-reload` then `systemctl restart kubelet`.
    pub async fn restart_kubelet(&self) -> Result<()> {
        self.exec
            .run_checked(&NodeCommand::new("systemctl").arg("daemon-reload"))
            .await?;
        self.exec
            .run_checked(&NodeCommand::new("systemctl").args(["restart", "kubelet"]))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn v(s: &str) -> KubeVersion {
        s.parse().unwrap()
    }

    #[test]
    fn switches_apt_one_line_and_deb822_sources() {
        let line = "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n";
        assert_eq!(
            switch_repository_minor(line, &v("1.31.2")).unwrap(),
            "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /\n"
        );
        let deb822 = "Types: deb\nURIs: https://mirror.example/k8s/core:/stable:/v1.30/deb/\nSuites: /\n# old: /v1.29/ stays\n";
        let out = switch_repository_minor(deb822, &v("1.31")).unwrap();
        assert!(out.contains("URIs: https://mirror.example/k8s/core:/stable:/v1.31/deb/\n"));
        assert!(out.contains("# old: /v1.29/ stays"));
        // Already there: the same text comes back.
        assert_eq!(switch_repository_minor(line, &v("1.30.9")).unwrap(), line);
    }

    #[test]
    fn switches_rpm_baseurl_and_gpgkey_only() {
        let repo = "[kubernetes]\nname=Kubernetes v1.30/ repo\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/\nenabled=1\ngpgcheck=1\ngpgkey=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/repodata/repomd.xml.key\nexclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n";
        let out = switch_repository_minor(repo, &v("1.31.0")).unwrap();
        assert!(out.contains("baseurl=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/\n"));
        assert!(out.contains(
            "gpgkey=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/repodata/repomd.xml.key\n"
        ));
        assert!(out.contains("name=Kubernetes v1.30/ repo"));
    }

    #[test]
    fn legacy_repositories_are_refused() {
        let legacy = "deb https://apt.kubernetes.io/ kubernetes-xenial main\n";
        assert_eq!(switch_repository_minor(legacy, &v("1.31")), None);
    }

    #[test]
    fn pins_builds_per_manager() {
        assert_eq!(
            pinned(PackageManager::Apt, "kubeadm", &v("1.31.2")),
            "kubeadm=1.31.2-*"
        );
        assert_eq!(
            pinned(PackageManager::Dnf, "kubelet", &v("v1.31.2")),
            "kubelet-1.31.2-*"
        );
        assert_eq!(
            "zypper".parse::<PackageManager>().unwrap_err(),
            "unknown package manager \"zypper\"; accepted values: apt, dnf, yum"
        );
    }
}
