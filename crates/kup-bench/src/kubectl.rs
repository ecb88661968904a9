//! Finding and running the real kubectl against a simulator.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kup_mocks::k8s::SimHandle;

use crate::error::BenchError;

/// The kubectl to use: the given path, else `KUP_KUBECTL`, else `kubectl` on PATH.
pub(crate) fn find(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("KUP_KUBECTL").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
}

/// A kubectl bound to one simulator: its own kubeconfig and discovery cache.
pub(crate) struct Kubectl {
    program: PathBuf,
    dir: tempfile::TempDir,
}

impl Kubectl {
    pub(crate) fn new(program: &Path, sim: &SimHandle) -> Result<Self, BenchError> {
        let dir = tempfile::tempdir().map_err(|source| BenchError::Io {
            what: "creating a kubeconfig directory",
            source,
        })?;
        sim.write_kubeconfig(dir.path().join("config"))?;
        Ok(Self {
            program: program.to_path_buf(),
            dir,
        })
    }

    /// Runs `kubectl <args>` and waits for it.
    pub(crate) fn run(&self, args: &[&str]) -> Result<Output, BenchError> {
        Command::new(&self.program)
            .arg("--kubeconfig")
            .arg(self.dir.path().join("config"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .output()
            .map_err(|source| BenchError::Spawn {
                program: self.program.display().to_string(),
                source,
            })
    }
}
