//! Verifying a snapshot file on this machine.
//!
//! Three independent checks, each catching something the others may not:
//! 1. size and SHA-256 against what the node reported for the file it wrote (a copy that was
//!    cut short or altered on the way);
//! 2. the checksum etcd appends to every snapshot it streams (`snapshot save` writes the
//!    bolt database followed by the SHA-256 of it; `snapshot restore` refuses a file whose
//!    trailer does not match) — so a file damaged on the node before it was hashed there is
//!    caught too;
//! 3. when an etcdctl or etcdutl exists here, `snapshot status` run locally must report the
//!    node's hash, revision and key count.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::SnapshotStatus;
use crate::error::{Error, Result};

/// bolt pages are a multiple of 512 bytes; etcd appends a 32-byte SHA-256.
const SHA_LEN: u64 = 32;

/// What the local checks found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalVerification {
    /// The file's size.
    pub size: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// `snapshot status` run here, when a tool was available.
    pub local_status: Option<SnapshotStatus>,
    /// The tool used for it.
    pub local_tool: Option<PathBuf>,
}

/// What the file must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// etcd's view of it on the node, when known.
    pub status: Option<SnapshotStatus>,
}

struct Digests {
    size: u64,
    sha256: String,
    embedded_ok: Option<bool>,
}

fn digest_file(path: &Path) -> Result<Digests> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let has_trailer = size > SHA_LEN && size % 512 == SHA_LEN;
    let prefix_len = if has_trailer { size - SHA_LEN } else { size };
    let mut whole = Sha256::new();
    let mut prefix = Sha256::new();
    let mut trailer = Vec::with_capacity(SHA_LEN as usize);
    let mut offset = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        whole.update(chunk);
        let in_prefix = prefix_len.saturating_sub(offset).min(n as u64) as usize;
        prefix.update(&chunk[..in_prefix]);
        trailer.extend_from_slice(&chunk[in_prefix..]);
        offset += n as u64;
    }
    let embedded_ok = has_trailer.then(|| prefix.finalize().as_slice() == trailer.as_slice());
    Ok(Digests {
        size: offset,
        sha256: hex::encode(whole.finalize()),
        embedded_ok,
    })
}

/// The local etcd tool to use: the configured one, else `etcdutl`, else `etcdctl` on `PATH`.
pub fn find_local_tool(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = configured {
        return Some(p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    for tool in ["etcdutl", "etcdctl"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(tool);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Runs `snapshot status` on this machine.
pub async fn local_status(tool: &Path, snapshot: &Path) -> Result<SnapshotStatus> {
    let output = tokio::process::Command::new(tool)
        .env("ETCDCTL_API", "3")
        .arg("snapshot")
        .arg("status")
        .arg(snapshot)
        .args(["-w", "json"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Error::io(tool, e))?;
    if !output.status.success() {
        return Err(Error::SnapshotVerification {
            path: snapshot.to_path_buf(),
            message: format!(
                "`{} snapshot status` refused it here: {}",
                tool.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    SnapshotStatus::parse(&String::from_utf8_lossy(&output.stdout)).map_err(|message| {
        Error::SnapshotVerification {
            path: snapshot.to_path_buf(),
            message: format!("cannot read local snapshot status: {message}"),
        }
    })
}

/// Verifies the snapshot at `path` against `expected` (see the module docs).
pub async fn verify_local(
    path: &Path,
    expected: &Expected,
    tool: Option<&Path>,
) -> Result<LocalVerification> {
    let fail = |message: String| Error::SnapshotVerification {
        path: path.to_path_buf(),
        message,
    };
    let owned = path.to_path_buf();
    let digests = tokio::task::spawn_blocking(move || digest_file(&owned))
        .await
        .map_err(|e| fail(format!("checksum task failed: {e}")))??;
    if digests.size != expected.size {
        return Err(fail(format!(
            "size is {} bytes here but {} bytes on the node (truncated or incomplete copy)",
            digests.size, expected.size
        )));
    }
    if digests.sha256 != expected.sha256 {
        return Err(fail(format!(
            "SHA-256 is {} here but {} on the node (altered in transit or on disk)",
            digests.sha256, expected.sha256
        )));
    }
    match digests.embedded_ok {
        Some(true) => {}
        Some(false) => {
            return Err(fail(
                "etcd's own checksum at the end of the file does not match its contents \
                 (corrupted); `etcdctl snapshot restore` would refuse it"
                    .into(),
            ));
        }
        None => {
            return Err(fail(format!(
                "its size ({} bytes) is not a database plus etcd's 32-byte checksum; every \
                 snapshot etcd streams ends with one, so the file is truncated or not a snapshot",
                digests.size
            )));
        }
    }
    let mut local = None;
    if let Some(tool) = tool {
        let status = local_status(tool, path).await?;
        if let Some(node) = &expected.status
            && (status.hash != node.hash
                || status.revision != node.revision
                || status.total_keys != node.total_keys)
        {
            return Err(fail(format!(
                "local snapshot status (hash {}, revision {}, {} keys) differs from the node's \
                 (hash {}, revision {}, {} keys)",
                status.hash,
                status.revision,
                status.total_keys,
                node.hash,
                node.revision,
                node.total_keys
            )));
        }
        local = Some(status);
    }
    Ok(LocalVerification {
        size: digests.size,
        sha256: digests.sha256,
        local_status: local,
        local_tool: tool.map(Path::to_path_buf),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::Write;

    use super::*;

    fn fake_snapshot(dir: &Path, pages: usize) -> (PathBuf, Expected) {
        let mut body: Vec<u8> = (0..pages * 4096).map(|i| (i % 251) as u8).collect();
        let sum = Sha256::digest(&body);
        body.extend_from_slice(&sum);
        let path = dir.join("snap.db");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&body)
            .unwrap();
        let expected = Expected {
            size: body.len() as u64,
            sha256: hex::encode(Sha256::digest(&body)),
            status: None,
        };
        (path, expected)
    }

    #[tokio::test]
    async fn accepts_an_intact_file_and_names_each_kind_of_damage() {
        let dir = tempfile::tempdir().unwrap();
        let (path, expected) = fake_snapshot(dir.path(), 3);
        let ok = verify_local(&path, &expected, None).await.unwrap();
        assert_eq!(ok.size, expected.size);

        // Truncated copy: size differs from the node's.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        let e = verify_local(&path, &expected, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated or incomplete copy"), "{e}");

        // A flipped byte: same size, different checksum.
        let mut flipped = bytes.clone();
        flipped[10] ^= 0xff;
        std::fs::write(&path, &flipped).unwrap();
        let e = verify_local(&path, &expected, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("SHA-256"), "{e}");

        // Damaged before the node hashed it: the node's checksum matches, etcd's does not.
        let node_view = Expected {
            sha256: hex::encode(Sha256::digest(&flipped)),
            ..expected.clone()
        };
        let e = verify_local(&path, &node_view, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("etcd's own checksum"), "{e}");

        // Cut short on the node too: no trailer at all.
        let short = &bytes[..4096 * 2];
        std::fs::write(&path, short).unwrap();
        let short_view = Expected {
            size: short.len() as u64,
            sha256: hex::encode(Sha256::digest(short)),
            status: None,
        };
        let e = verify_local(&path, &short_view, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a database plus etcd's 32-byte checksum"),
            "{e}"
        );
    }
}
