//! Command-line flags and subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Upgrade Kubernetes clusters safely: one plan across providers, pre-flight checks, PDB-aware
/// drains, resumable execution.
#[derive(Debug, Parser)]
#[command(name = "kup", version, about, long_about = None)]
pub struct Cli {
    /// Where the cluster is and how to reach it.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table, env = "KUP_OUTPUT")]
    pub output: Format,
    /// Stream events as JSON lines on stderr (`json`).
    #[arg(long, global = true, value_enum)]
    pub events: Option<EventsFormat>,
    /// POST every event as JSON to this URL (a webhook).
    #[arg(long, global = true, env = "KUP_NOTIFY_URL")]
    pub notify_url: Option<String>,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Tables for people.
    Table,
    /// JSON (schema in docs/cli-output.md).
    Json,
    /// YAML (same schema as JSON).
    Yaml,
    /// The change-review document in Markdown (`kup plan`, `kup report`).
    Markdown,
    /// The change-review document as one self-contained HTML file (`kup plan`, `kup report`).
    Html,
}

/// Event stream formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EventsFormat {
    /// One JSON object per line.
    Json,
}

/// Cluster selection, shared by every subcommand.
#[derive(Debug, Args, Default, Clone)]
pub struct ClusterArgs {
    /// Provider (the accepted values come from the registry; see `kup --help`).
    #[arg(long, global = true, env = "KUP_PROVIDER")]
    pub provider: Option<String>,
    /// A cluster named in the config file (`kup.yaml`).
    #[arg(long = "name", global = true, env = "KUP_CLUSTER_NAME")]
    pub name: Option<String>,
    /// The config file listing clusters by name.
    #[arg(long, global = true, env = "KUP_CONFIG")]
    pub config: Option<PathBuf>,
    /// The kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: the current one).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The provider settings given as flags (declared by the provider registry).
    #[arg(skip)]
    pub settings: crate::registry::Settings,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The versions the provider offers, with support status and end dates.
    Versions,
    /// The upgrade plan to a version, for review (changes nothing).
    Plan(PlanArgs),
    /// Pre-flight checks for an upgrade (changes nothing).
    Preflight(PreflightArgs),
    /// Upgrade the cluster.
    Upgrade(UpgradeArgs),
    /// Continue an interrupted upgrade from its journal.
    Resume(RunArgs),
    /// The state of the last upgrade, from its journal.
    Status,
    /// The last upgrade as the change-review document, from its journal: every step and node
    /// ticked and timed, PDB waits, findings, backups, validation rounds (Markdown; `-o html`
    /// for one self-contained file with a timeline, `-o json` for the data).
    Report(ReportArgs),
    /// Cordon and drain a node, respecting PodDisruptionBudgets.
    Drain(DrainArgs),
    /// Uncordon a node.
    Uncordon {
        /// The node.
        node: String,
    },
    /// Check the cluster's health now (nodes, system pods, workloads, /readyz).
    Validate(ValidateArgs),
    /// Roll back the last upgrade as far as the provider allows, from its journal: pools back
    /// to their earlier versions, then the control plane (kubeadm: the run's verified etcd
    /// snapshot restored). Planned and shown first; journaled, locked and resumable (run it
    /// again to continue); refused, with the provider's reason, for what cannot go back.
    Rollback(RollbackArgs),
    /// kubeadm: restore a verified etcd snapshot on every control-plane node, with the
    /// packages and manifests of its version; everything written since it is lost.
    Restore(RestoreArgs),
    /// kubeadm: take and verify an etcd snapshot.
    Backup {
        /// Where to keep it on the first control-plane node.
        #[arg(long)]
        destination: Option<PathBuf>,
    },
    /// Upgrade a fleet of clusters (any providers) in stages: plan, run, status, approve,
    /// halt, resume.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Run the whole job against a built-in simulated EKS cluster, or with `--provider
    /// kubeadm` a simulated kubeadm cluster (no cloud account or nodes; needs a kup built with
    /// the default `demo` feature).
    Demo(DemoArgs),
}

/// Flags of `kup plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Target version (`1.35`, `v1.35.1`).
    #[arg(long)]
    pub to: String,
    /// Upgrade the control plane only, leaving node pools (within skew).
    #[arg(long)]
    pub control_plane_only: bool,
    /// Only these pools (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub pools: Vec<String>,
    /// Write the plan as JSON to this file (for `kup upgrade --plan`).
    #[arg(long)]
    pub save: Option<PathBuf>,
}

/// Flags of `kup report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run's journal file (default: the in-cluster ConfigMap).
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// The plan file (default: the plan stored with the journal by the run).
    #[arg(long)]
    pub plan: Option<PathBuf>,
}

/// Flags of `kup preflight`.
#[derive(Debug, Args)]
pub struct PreflightArgs {
    /// Target version (default: the next minor).
    #[arg(long)]
    pub to: Option<String>,
    /// Manifest files or directories to scan for removed APIs.
    #[arg(long)]
    pub manifests: Vec<PathBuf>,
    /// Don't scan Helm release records.
    #[arg(long)]
    pub no_helm: bool,
}

/// Flags shared by upgrade and resume.
#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    /// Proceed past these pre-flight blocker codes (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub override_findings: Vec<String>,
    /// Nodes kup takes down at once in pools it rolls (a number or a percentage).
    #[arg(long)]
    pub max_unavailable: Option<String>,
    /// Per-node drain timeout (`10m`, `90s`).
    #[arg(long)]
    pub drain_timeout: Option<String>,
    /// What to do with a node whose drain is stuck: fail or cordon-and-continue.
    #[arg(long)]
    pub on_stuck_drain: Option<String>,
    /// Journal file instead of the in-cluster ConfigMap; the run's plan is then kept beside
    /// it (`NAME.plan.json`) instead of in ConfigMap kube-system/kup-plan-<cluster>.
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// The plan file (default for resume: the plan stored with the journal by the run).
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// This run's identity on the cluster's lock (default: unique per process). Give the same
    /// one to `kup resume` so a restarted kup takes its own lock back before it expires.
    #[arg(long, env = "KUP_HOLDER")]
    pub holder: Option<String>,
}

/// Flags of `kup upgrade`.
#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Target version.
    #[arg(long)]
    pub to: Option<String>,
    /// Don't ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Check every step against the live cluster and report; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Upgrade the control plane only.
    #[arg(long)]
    pub control_plane_only: bool,
    /// Only these pools (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub pools: Vec<String>,
    /// Run options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Flags of `kup rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The upgrade's journal file (default: the in-cluster ConfigMap); its plan says where the
    /// upgrade started.
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// The upgrade's plan file (default: the plan stored with its journal).
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// The backup to restore (kubeadm; default: the upgrade's first verified backup).
    #[arg(long)]
    pub backup: Option<String>,
    /// The rollback's own journal file (default: `kup-rollback-<cluster>.json` beside the
    /// backup for kubeadm, else the in-cluster ConfigMap of the rollback). Its plan is kept
    /// beside it; running `kup rollback` again resumes an unfinished rollback.
    #[arg(long)]
    pub rollback_journal: Option<PathBuf>,
    /// Show the rollback plan (`-o json|markdown` too) and check it; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Don't ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// This run's identity on the cluster's lock (give the same to a rerun).
    #[arg(long)]
    pub holder: Option<String>,
}

/// Flags of `kup restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup's id (`kup backup` and `kup status` show it).
    #[arg(long)]
    pub backup: String,
    /// Where the backup files are (default: the provider's backup directory).
    #[arg(long)]
    pub backup_dir: Option<PathBuf>,
    /// The restore's journal file (default: `kup-restore-<cluster>.json` beside the backup).
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// Show the plan and check it; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Don't ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Flags of `kup drain`, like kubectl's.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The node.
    pub node: String,
    /// Skip DaemonSet-managed pods.
    #[arg(long)]
    pub ignore_daemonsets: bool,
    /// Evict pods with emptyDir volumes (their data is lost).
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// Evict pods no controller manages (they are not recreated).
    #[arg(long)]
    pub force: bool,
    /// Grace period in seconds (default: each pod's own).
    #[arg(long)]
    pub grace_period: Option<i64>,
    /// Give up after this long (`5m`); the node stays cordoned.
    #[arg(long)]
    pub timeout: Option<String>,
    /// Only pods matching this label selector.
    #[arg(long)]
    pub pod_selector: Option<String>,
    /// Delete pods instead of evicting them (ignores PodDisruptionBudgets).
    #[arg(long)]
    pub disable_eviction: bool,
    /// Report what would be evicted and refused; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Flags of `kup validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Consecutive passing rounds required.
    #[arg(long, default_value_t = 1)]
    pub passes: u32,
    /// Give up after this long (`5m`).
    #[arg(long, default_value = "2m")]
    pub timeout: String,
}

/// Flags of `kup demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Target version.
    #[arg(long, default_value = "1.35")]
    pub to: String,
    /// Simulated seconds per real second (higher is faster).
    #[arg(long, default_value_t = 20.0)]
    pub speed: f64,
    /// Where to write the simulated cluster's kubeconfig.
    #[arg(long)]
    pub kubeconfig_out: Option<PathBuf>,
}

/// `kup fleet` subcommands.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Every member's plan side by side, with the blockers pre-flight finds in each (changes
    /// nothing).
    Plan(FleetPlanArgs),
    /// Run the fleet's upgrade stage by stage; a rerun resumes the wave from its journal.
    Run(FleetRunArgs),
    /// The wave's state from its journal: stages, clusters, gates.
    Status(FleetStateArgs),
    /// Approve a stage whose gate waits for a person.
    Approve(FleetApproveArgs),
    /// Stop starting clusters; running ones stop at their next safe point.
    Halt(FleetHaltArgs),
    /// Clear a halt and continue the wave (as `run`).
    Resume(FleetRunArgs),
}

/// The fleet file and the wave's state directory.
#[derive(Debug, Args, Clone)]
pub struct FleetFileArgs {
    /// The fleet file: members, stages and gates (YAML or JSON; a `kup.dev` `Fleet`
    /// manifest is accepted as is).
    #[arg(long, short = 'f', env = "KUP_FLEET")]
    pub fleet: PathBuf,
    /// The wave's journal and controls (default: `.kup-fleet-<fleet name>` beside the fleet
    /// file).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

/// Flags of `kup fleet plan`.
#[derive(Debug, Args)]
pub struct FleetPlanArgs {
    /// The fleet.
    #[command(flatten)]
    pub file: FleetFileArgs,
    /// Target version for every member.
    #[arg(long)]
    pub to: String,
    /// Members planned and pre-flighted at once.
    #[arg(long, default_value_t = 16)]
    pub parallel: usize,
}

/// Flags of `kup fleet run` and `kup fleet resume`.
#[derive(Debug, Args)]
pub struct FleetRunArgs {
    /// The fleet.
    #[command(flatten)]
    pub file: FleetFileArgs,
    /// Target version for every member (default for a rerun: the journal's).
    #[arg(long)]
    pub to: Option<String>,
    /// Don't ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Return when a gate waits for approval instead of waiting for it.
    #[arg(long)]
    pub no_wait: bool,
    /// Run options applied to every member.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Flags of `kup fleet status`.
#[derive(Debug, Args)]
pub struct FleetStateArgs {
    /// The fleet.
    #[command(flatten)]
    pub file: FleetFileArgs,
}

/// Flags of `kup fleet approve`.
#[derive(Debug, Args)]
pub struct FleetApproveArgs {
    /// The stage to approve.
    pub stage: String,
    /// The fleet.
    #[command(flatten)]
    pub file: FleetFileArgs,
    /// Who approves (default: $USER).
    #[arg(long)]
    pub by: Option<String>,
}

/// Flags of `kup fleet halt`.
#[derive(Debug, Args)]
pub struct FleetHaltArgs {
    /// The fleet.
    #[command(flatten)]
    pub file: FleetFileArgs,
    /// Why (kept in the journal and shown by `status`).
    #[arg(long, default_value = "halted by an operator")]
    pub reason: String,
}
