//! The fleet file: a `kup.dev` `Fleet` manifest (so the same file serves `kubectl apply` for
//! the controller) or the bare spec with a `name`, and where the wave keeps its state.

use std::path::{Path, PathBuf};

use kup_fleet::{Fleet, FleetSpec};
use serde::Deserialize;

use crate::args::FleetFileArgs;
use crate::error::{CliError, Result};

/// The API group and version a `Fleet` manifest carries.
pub const API_VERSION: &str = "kup.dev/v1alpha1";

/// A loaded fleet file.
pub struct FleetFile {
    /// The fleet's name (`metadata.name`, or `name`).
    pub name: String,
    /// Its members and strategy, validated.
    pub fleet: Fleet,
    /// Where relative paths in member entries resolve (the file's directory).
    pub base: PathBuf,
    /// The wave's journal and controls.
    pub state_dir: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Manifest {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: FleetSpec,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
}

/// Reads, parses and validates the fleet file `args` names.
pub fn load(args: &FleetFileArgs) -> Result<FleetFile> {
    let path = &args.fleet;
    let text = std::fs::read_to_string(path).map_err(|source| CliError::InputFile {
        field: "--fleet".into(),
        path: path.display().to_string(),
        source,
    })?;
    let at = format!("fleet {}", path.display());
    let (name, spec) = parse(&text, &at)?;
    let fleet = spec
        .validate()
        .map_err(|e| CliError::usage(at.clone(), e.to_string()))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| base.join(format!(".kup-fleet-{name}")));
    Ok(FleetFile {
        name,
        fleet,
        base,
        state_dir,
    })
}

/// The name and spec in `text`, a manifest or the bare form.
fn parse(text: &str, at: &str) -> Result<(String, FleetSpec)> {
    let doc: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|e| CliError::usage(at.to_string(), e.to_string()))?;
    if doc.get("kind").is_some() || doc.get("apiVersion").is_some() {
        let m: Manifest = serde_json::from_value(doc)
            .map_err(|e| CliError::usage(at.to_string(), e.to_string()))?;
        if m.kind != "Fleet" || m.api_version != API_VERSION {
            return Err(CliError::usage(
                format!("{at}: kind"),
                format!(
                    "{} {} is not a fleet; accepted: apiVersion {API_VERSION}, kind Fleet",
                    m.api_version, m.kind
                ),
            ));
        }
        return Ok((m.metadata.name, m.spec));
    }
    let mut doc = doc;
    let name = match doc.as_object_mut().and_then(|o| o.remove("name")) {
        Some(serde_json::Value::String(n)) => n,
        _ => {
            return Err(CliError::usage(
                format!("{at}: name"),
                "is required (a fleet file holds `name`, `members` and `strategy`, or is a \
                 Fleet manifest with apiVersion kup.dev/v1alpha1)",
            ));
        }
    };
    let spec: FleetSpec =
        serde_json::from_value(doc).map_err(|e| CliError::usage(at.to_string(), e.to_string()))?;
    Ok((name, spec))
}
