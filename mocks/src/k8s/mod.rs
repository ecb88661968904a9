//! A stateful Kubernetes API simulator that real clients (kube-rs, kubectl) drive over loopback.
//!
//! It serves discovery, `/version`, health and metrics, CRUD with label/field selectors,
//! pagination, resourceVersion conflicts, watches, the three patch types, Table output, and the
//! eviction subresource with upstream's PodDisruptionBudget rules; simulated controllers
//! (Deployment/ReplicaSet/StatefulSet/DaemonSet, disruption, scheduler, kubelets, garbage
//! collection) keep the cluster moving on a clock that can run faster than real time.
//!
//! ```no_run
//! use std::time::Duration;
//! use kup_mocks::k8s::{Fault, Scenario, SimConfig, Simulator};
//!
//! # async fn demo() -> kup_mocks::Result<()> {
//! let sim = Simulator::start(Scenario::small(), SimConfig::fast()).await?;
//! let client = sim.client()?; // a kube::Client; or sim.write_kubeconfig(path) for kubectl
//! # let _ = client;
//! sim.faults().add(Fault::status(503).path("/api/v1/nodes").nth(1));
//! sim.set_kubelet_version("pool-a-1", "v1.34.1")?; // NotReady, then Ready at v1.34.1
//! sim.wait_for(Duration::from_secs(30), "pool-a-1 Ready", |s| {
//!     s.get("nodes", None, "pool-a-1").is_some_and(|n| n["status"]["nodeInfo"]["kubeletVersion"] == "v1.34.1")
//! })
//! .await?;
//! assert!(sim.pod_deletions().iter().all(|d| d.via == kup_mocks::k8s::DeletedVia::Eviction));
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Simulated time: every delay in [`SimConfig`] and every timestamp written into objects is
//! simulated; `time_scale` is simulated seconds per real second, and
//! [`SimHandle::advance_clock`] jumps ahead (e.g. past the two-minute `disruptedPods` expiry).
//!
//! Out-of-process control: the same server answers JSON under `/_sim/` (see the `control`
//! table in [`SimHandle`]'s crate docs below), e.g.
//! `curl -X POST $URL/_sim/nodes/w1/kubelet-version -d '{"version":"v1.34.1"}'`.
//!
//! Authentication and authorization: client certificates of the simulator's CA in HTTPS mode
//! (CN the user, O its groups; [`SimHandle::client_certificate_as`]) and bearer tokens name
//! users (the built-in `admin` in
//! `system:masters`, whose token [`SimHandle::client_config`] and
//! [`SimHandle::kubeconfig_yaml`] carry, and the [`Scenario::user`]s); RBAC objects
//! (Roles, ClusterRoles and their bindings, stored like any other object, plus the defaults
//! every API server creates such as `cluster-admin` and `system:discovery`) decide every
//! request, with upstream's 401 and 403 `Status` bodies; `SelfSubjectAccessReview`,
//! `SubjectAccessReview` and `LocalSubjectAccessReview` answer `kubectl auth can-i`, and
//! `Impersonate-User` (`--as`) is honoured for callers allowed to impersonate. A request
//! without credentials is the admin unless [`Scenario::anonymous`] says otherwise.
//!
//! ```no_run
//! use kup_mocks::k8s::{Scenario, SimConfig, Simulator, User};
//! use serde_json::json;
//!
//! # async fn demo() -> kup_mocks::Result<()> {
//! let scenario = Scenario::small().user(User::new("kup")).object(json!({
//!     "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
//!     "metadata": {"name": "kup"},
//!     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:discovery"},
//!     "subjects": [{"kind": "User", "name": "kup"}]}));
//! let sim = Simulator::start(scenario, SimConfig::fast()).await?;
//! let as_kup = sim.client_as("kup")?; // 403 for anything its roles do not grant
//! # let _ = as_kup;
//! # Ok(()) }
//! ```
//!
//! Lists: a continued list reads the state at its first page's resourceVersion (410 Expired
//! once the retained history, [`SimConfig::watch_history`], no longer reaches it), and
//! `resourceVersion`/`resourceVersionMatch` give upstream's Exact, NotOlderThan, 410, 504 and
//! 422 answers. The node lifecycle controller keeps the `node.kubernetes.io/*` taints of
//! cordoned, NotReady and pressured nodes in `spec.taints`; the scheduler (`Scheduled`), the
//! kubelets (`Killing`, `NodeNotSchedulable`, `NodeReady`…) and the node controller
//! (`NodeNotReady`) record Events.
//!
//! Custom resources: a CustomResourceDefinition created through the API or a scenario is
//! accepted and Established at once (with `status.acceptedNames` and the cleanup finalizer);
//! its served versions then appear in discovery and its kind gets CRUD, selectors,
//! pagination, watches, `/status` (and `/scale` on `.spec.replicas`) subresources, RBAC by
//! group and plural, Table output with its printer columns, and its `openAPIV3Schema` for
//! pruning, types, `required` and `enum` (422 causes name the field). Strategic merge patches
//! answer 415; `metadata.generation` counts everything but metadata and status. Deleting the
//! CRD deletes its objects (finalizers honoured) and refuses new ones (405) meanwhile. Each
//! simulator keeps its own definitions.
//!
//! Known differences from a real API server: custom resources have no conversion webhooks,
//! defaulting, CEL rules, or version-specific validation (the storage version's schema
//! checks every write); no OpenAPI documents are served (so `kubectl apply` needs
//! `--validate=false`); version conversion only rewrites `apiVersion`
//! (plus the PDB empty-selector rule between policy/v1 and v1beta1); server-side apply is a
//! strategic merge without field ownership; Jobs and CronJobs have no controller; RBAC has no
//! ClusterRole aggregation; protobuf request bodies are decoded only for access reviews;
//! DaemonSets ignore the lifecycle controller's taints; Events never expire.

mod api;
mod auth;
mod clock;
mod cluster;
mod control;
mod controllers;
mod convert;
mod custom;
mod discovery;
mod disruption;
mod events;
mod eviction;
mod faults;
mod handle;
mod health;
mod http;
mod node_lifecycle;
mod nodes;
mod objects;
mod patch;
mod protobuf;
mod requests;
mod resources;
mod rng;
mod rollout;
pub mod scenario;
mod scheduling;
mod selector;
mod server;
mod shared;
mod status;
mod store;
mod table;
pub(crate) mod tls;
mod version;
mod watch;
mod workloads;

pub use clock::SimClock;
pub use cluster::{DeletedVia, PodDeletion};
pub use faults::{Fault, FaultAction, FaultId, FaultTrigger, Faults};
pub use handle::{SimConfig, SimHandle, Simulator};
pub use requests::{RequestLog, RequestRecord};
pub use scenario::{
    ADMIN_TOKEN, ADMIN_USER, Anonymous, AwsPlacement, IntOrPercent, Node, Pdb, PdbSelector, Pod,
    Pool, Pvc, Scenario, Taint, User, Workload, WorkloadKind,
};
pub use tls::ClientCertificate;
pub use version::KubeVersion;
