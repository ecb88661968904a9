//! [`EksProvider`]: kup's [`UpgradeProvider`] over `aws-sdk-eks`.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eks::types::{
    ClusterVersionStatus, LaunchTemplateSpecification, ResolveConflicts, UpdateStatus,
    VersionStatus,
};
use kup_core::{
    Addon, AddonOptions, AddonUpgrade, AvailableVersion, BackupSupport, Capabilities, ClusterInfo,
    ConflictResolution, ControlPlaneOptions, Finding, KubeVersion, NodePool, NodePoolOptions,
    Operation, OperationStatus, OperationTarget, ProviderErrorDetail, ProviderKind, RollbackOffer,
    RollbackPart, SupportStatus, UpgradeProvider, VersionScope,
};

use crate::error::Error;
use crate::insights;
pub use crate::rollback::CONTROL_PLANE_ROLLBACK_REFUSAL;
use crate::rollback::{
    ClusterVersionRecord, NODE_GROUP_ROLLBACK_REFUSAL, VersionRecord, WayBack, control_plane_offer,
    launch_template_release, offer_for, previous_minor, template_of,
};

/// The label EKS puts on the nodes of a managed node group.
pub const NODEGROUP_LABEL: &str = "eks.amazonaws.com/nodegroup";

/// Timing settings.
#[derive(Clone, Debug)]
pub struct EksSettings {
    /// How long EKS keeps retrying PDB-blocked evictions in a node group update before it
    /// fails with `PodEvictionFailure` (15 minutes); reported in pre-flight guidance.
    pub eviction_limit: Duration,
}

impl Default for EksSettings {
    fn default() -> Self {
        Self {
            eviction_limit: Duration::from_secs(15 * 60),
        }
    }
}

/// Upgrades one EKS cluster: control plane, managed node groups and EKS add-ons.
pub struct EksProvider {
    pub(crate) client: aws_sdk_eks::Client,
    pub(crate) cluster: String,
    region: String,
    pub(crate) kube: Option<kube::Client>,
    pub(crate) settings: EksSettings,
}

impl std::fmt::Debug for EksProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EksProvider")
            .field("cluster", &self.cluster)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

type CoreResult<T> = kup_core::Result<T>;

pub(crate) fn minor_string(v: &KubeVersion) -> String {
    format!("{}.{}", v.major(), v.minor())
}

fn parse_version(
    op: &'static str,
    field: &'static str,
    text: Option<&str>,
) -> CoreResult<KubeVersion> {
    let text = text.ok_or(Error::missing(op, field))?;
    KubeVersion::parse(text)
}

fn date_of(t: Option<&aws_smithy_types::DateTime>) -> Option<jiff::civil::Date> {
    let t = t?;
    let ts = jiff::Timestamp::from_second(t.secs()).ok()?;
    Some(ts.to_zoned(jiff::tz::TimeZone::UTC).date())
}

fn status_of(u: &aws_sdk_eks::types::Update) -> OperationStatus {
    let errors = || {
        u.errors()
            .iter()
            .map(|e| ProviderErrorDetail {
                code: e
                    .error_code()
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_else(|| "Unknown".into()),
                message: e.error_message().unwrap_or_default().to_string(),
                resource_ids: e.resource_ids().to_vec(),
            })
            .collect::<Vec<_>>()
    };
    match u.status() {
        Some(UpdateStatus::Successful) => OperationStatus::Succeeded,
        Some(UpdateStatus::Failed) => OperationStatus::Failed { errors: errors() },
        Some(UpdateStatus::Cancelled) => OperationStatus::Cancelled { errors: errors() },
        _ => OperationStatus::Running {
            progress: None,
            message: u.r#type().map(|t| t.as_str().to_string()),
        },
    }
}

impl EksProvider {
    pub(crate) fn new(
        client: aws_sdk_eks::Client,
        cluster: String,
        region: String,
        kube: Option<kube::Client>,
        settings: EksSettings,
    ) -> Self {
        Self {
            client,
            cluster,
            region,
            kube,
            settings,
        }
    }

    /// The underlying SDK client.
    pub fn sdk(&self) -> &aws_sdk_eks::Client {
        &self.client
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    pub(crate) async fn nodegroup_names(&self) -> Result<Vec<String>, Error> {
        self.client
            .list_nodegroups()
            .cluster_name(&self.cluster)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(Error::sdk("ListNodegroups"))
    }

    async fn describe_nodegroup(&self, name: &str) -> Result<aws_sdk_eks::types::Nodegroup, Error> {
        self.client
            .describe_nodegroup()
            .cluster_name(&self.cluster)
            .nodegroup_name(name)
            .send()
            .await
            .map_err(Error::sdk("DescribeNodegroup"))?
            .nodegroup
            .ok_or(Error::missing("DescribeNodegroup", "nodegroup"))
    }

    async fn addon_names(&self) -> Result<Vec<String>, Error> {
        self.client
            .list_addons()
            .cluster_name(&self.cluster)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(Error::sdk("ListAddons"))
    }

    async fn installed_addons(&self) -> Result<Vec<Addon>, Error> {
        let mut out = Vec::new();
        for name in self.addon_names().await? {
            let a = self
                .client
                .describe_addon()
                .cluster_name(&self.cluster)
                .addon_name(&name)
                .send()
                .await
                .map_err(Error::sdk("DescribeAddon"))?
                .addon
                .ok_or(Error::missing("DescribeAddon", "addon"))?;
            out.push(Addon {
                name,
                version: a.addon_version().unwrap_or_default().to_string(),
                managed: true,
            });
        }
        Ok(out)
    }

    /// Update ids EKS lists for the cluster, a node group or an add-on.
    async fn update_ids(
        &self,
        nodegroup: Option<&str>,
        addon: Option<&str>,
    ) -> Result<Vec<String>, Error> {
        self.client
            .list_updates()
            .name(&self.cluster)
            .set_nodegroup_name(nodegroup.map(String::from))
            .set_addon_name(addon.map(String::from))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(Error::sdk("ListUpdates"))
    }

    async fn running(
        &self,
        target: OperationTarget,
        nodegroup: Option<&str>,
        addon: Option<&str>,
    ) -> Result<Vec<Operation>, Error> {
        let mut out = Vec::new();
        for id in self.update_ids(nodegroup, addon).await? {
            let u = self
                .client
                .describe_update()
                .name(&self.cluster)
                .update_id(&id)
                .set_nodegroup_name(nodegroup.map(String::from))
                .set_addon_name(addon.map(String::from))
                .send()
                .await
                .map_err(Error::sdk("DescribeUpdate"))?
                .update
                .ok_or(Error::missing("DescribeUpdate", "update"))?;
            if u.status() == Some(&UpdateStatus::InProgress) {
                let version = u
                    .params()
                    .iter()
                    .find(|p| {
                        p.r#type().map(|t| t.as_str()) == Some("Version")
                            || p.r#type().map(|t| t.as_str()) == Some("AddonVersion")
                    })
                    .and_then(|p| p.value())
                    .map(String::from);
                let mut op = self.operation(&id, target.clone(), nodegroup, addon);
                op.to_version = version;
                op.started_at = u
                    .created_at()
                    .and_then(|t| jiff::Timestamp::from_second(t.secs()).ok());
                out.push(op);
            }
        }
        Ok(out)
    }

    /// The node group's successful version updates, as EKS records them.
    async fn version_history(&self, nodegroup: &str) -> Result<Vec<VersionRecord>, Error> {
        let mut out = Vec::new();
        for id in self.update_ids(Some(nodegroup), None).await? {
            let u = self
                .client
                .describe_update()
                .name(&self.cluster)
                .update_id(&id)
                .nodegroup_name(nodegroup)
                .send()
                .await
                .map_err(Error::sdk("DescribeUpdate"))?
                .update
                .ok_or(Error::missing("DescribeUpdate", "update"))?;
            out.extend(VersionRecord::of(&u));
        }
        Ok(out)
    }

    /// The control plane's successful version changes, as EKS records them.
    async fn cluster_version_history(&self) -> Result<Vec<ClusterVersionRecord>, Error> {
        let mut out = Vec::new();
        for id in self.update_ids(None, None).await? {
            let u = self
                .client
                .describe_update()
                .name(&self.cluster)
                .update_id(&id)
                .send()
                .await
                .map_err(Error::sdk("DescribeUpdate"))?
                .update
                .ok_or(Error::missing("DescribeUpdate", "update"))?;
            out.extend(ClusterVersionRecord::of(&u));
        }
        Ok(out)
    }

    /// The way back EKS allows for the control plane (at `live`, its node groups at
    /// `groups`) now, or EKS's reason there is none.
    async fn control_plane_rollback(
        &self,
        live: &KubeVersion,
        groups: &[(String, KubeVersion)],
    ) -> CoreResult<Result<kup_core::RollbackOption, String>> {
        let history = self.cluster_version_history().await?;
        let option = match control_plane_offer(
            &self.cluster,
            live,
            &history,
            jiff::Timestamp::now().as_second(),
        ) {
            Ok(option) => option,
            Err(reason) => return Ok(Err(reason)),
        };
        // EKS refuses a rollback that would leave a kubelet newer than the control plane;
        // managed node groups go back separately, and not across minors.
        let newer: Vec<String> = groups
            .iter()
            .filter(|(_, v)| option.to.minor_distance(v) > 0)
            .map(|(name, v)| format!("node group {name} runs {v}"))
            .collect();
        if !newer.is_empty() {
            return Ok(Err(format!(
                "{}, newer than {}, the version the control plane would go back to; EKS \
                 rolls the control plane back only while no node is newer than that version, \
                 and {NODE_GROUP_ROLLBACK_REFUSAL}",
                newer.join(", "),
                option.to
            )));
        }
        let blockers = insights::rollback_blockers(self, &option.to).await?;
        if !blockers.is_empty() {
            return Ok(Err(format!(
                "EKS's rollback readiness insights report errors for {}: {}; EKS refuses the \
                 rollback until they pass (kup does not force it past them)",
                option.to,
                blockers.join("; ")
            )));
        }
        Ok(Ok(option))
    }

    /// The way back EKS allows for a node group now, or EKS's reason there is none.
    async fn nodegroup_rollback(
        &self,
        ng: &aws_sdk_eks::types::Nodegroup,
    ) -> CoreResult<Result<WayBack, String>> {
        let name = ng.nodegroup_name().ok_or(Error::missing(
            "DescribeNodegroup",
            "nodegroup.nodegroupName",
        ))?;
        let current = parse_version("DescribeNodegroup", "nodegroup.version", ng.version())?;
        let history = self.version_history(name).await?;
        Ok(offer_for(ng, &current, &history))
    }

    fn operation(
        &self,
        id: &str,
        target: OperationTarget,
        nodegroup: Option<&str>,
        addon: Option<&str>,
    ) -> Operation {
        let mut op = Operation::new(ProviderKind::Eks, id, target)
            .with_handle("cluster", self.cluster.clone())
            .with_handle("update_id", id);
        if let Some(ng) = nodegroup {
            op = op.with_handle("nodegroup", ng);
        }
        if let Some(a) = addon {
            op = op.with_handle("addon", a);
        }
        op.started_at = Some(jiff::Timestamp::now());
        op
    }

    /// The cluster as DescribeCluster reports it.
    async fn describe(&self) -> CoreResult<aws_sdk_eks::types::Cluster> {
        Ok(self
            .client
            .describe_cluster()
            .name(&self.cluster)
            .send()
            .await
            .map_err(Error::sdk("DescribeCluster"))?
            .cluster
            .ok_or(Error::missing("DescribeCluster", "cluster"))?)
    }

    /// Sends a node-group version update (an upgrade or a rollback) and returns the
    /// operation that follows it.
    async fn send_nodegroup_update(
        &self,
        request: aws_sdk_eks::operation::update_nodegroup_version::builders::UpdateNodegroupVersionFluentBuilder,
        pool: &str,
        version: &str,
    ) -> CoreResult<Operation> {
        let out = request
            .send()
            .await
            .map_err(Error::sdk("UpdateNodegroupVersion"))?;
        let u = out
            .update
            .ok_or(Error::missing("UpdateNodegroupVersion", "update"))?;
        let id = u
            .id()
            .ok_or(Error::missing("UpdateNodegroupVersion", "update.id"))?;
        Ok(self
            .operation(
                id,
                OperationTarget::NodePool {
                    pool: pool.to_string(),
                },
                Some(pool),
                None,
            )
            .with_version(version))
    }

    /// Compatible versions of `addon` for a cluster minor, newest first, and EKS's default.
    async fn addon_versions(
        &self,
        addon: &str,
        minor: &str,
    ) -> Result<(Vec<String>, Option<String>), Error> {
        let infos: Vec<aws_sdk_eks::types::AddonInfo> = self
            .client
            .describe_addon_versions()
            .kubernetes_version(minor)
            .addon_name(addon)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(Error::sdk("DescribeAddonVersions"))?;
        let mut versions = Vec::new();
        let mut default = None;
        for info in infos.iter().filter(|i| i.addon_name() == Some(addon)) {
            for v in info.addon_versions() {
                let Some(name) = v.addon_version() else {
                    continue;
                };
                let compat = v
                    .compatibilities()
                    .iter()
                    .filter(|c| c.cluster_version() == Some(minor))
                    .collect::<Vec<_>>();
                if compat.is_empty() {
                    continue;
                }
                if compat.iter().any(|c| c.default_version()) {
                    default = Some(name.to_string());
                }
                versions.push(name.to_string());
            }
        }
        versions.sort_by_key(|v| std::cmp::Reverse(addon_version_key(v)));
        Ok((versions, default))
    }
}

/// Orders `v1.19.6-eksbuild.2` by (1, 19, 6, 2).
fn addon_version_key(v: &str) -> Vec<u64> {
    v.trim_start_matches('v')
        .split(['.', '-'])
        .filter_map(|p| p.trim_start_matches("eksbuild").parse().ok())
        .collect()
}

#[async_trait]
impl UpgradeProvider for EksProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Eks
    }

    fn cluster_name(&self) -> &str {
        &self.cluster
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new().with(|c| {
            // EKS supports kubelets up to three minors behind the control plane (upstream).
            c.max_kubelet_skew = 3;
            // A managed node group may skip minors up to the control plane's.
            c.max_node_pool_minor_jump = None;
            // EKS takes a minor for the control plane and picks the patch itself.
            c.control_plane_patch_selectable = false;
            c.node_pool_upgrade = true;
            // Managed node groups cordon and drain their nodes through the eviction API
            // (`force` lets them evict past budgets).
            c.provider_drains_nodes = true;
            c.managed_addons = true;
            c.backup = BackupSupport::ProviderManaged;
            // UpdateNodegroupVersion takes neither a surge nor an unavailability setting
            // (the node group's own updateConfig applies), nor a blue-green strategy.
            c.surge_upgrades = false;
            c.pool_max_unavailable = false;
            c.blue_green_upgrades = false;
            // A node group goes back to an earlier launch template version (never to an
            // earlier Kubernetes version or AMI release); the control plane one minor, within
            // 7 days of an in-place upgrade (EKS version rollback).
            c.node_pool_rollback = true;
            c.control_plane_rollback = kup_core::ControlPlaneRollback::DuringSoak;
        })
    }

    async fn cluster(&self) -> CoreResult<ClusterInfo> {
        let c = self.describe().await?;
        let control_plane = parse_version("DescribeCluster", "cluster.version", c.version())?;
        let mut pools = Vec::new();
        let mut in_progress = self
            .running(OperationTarget::ControlPlane, None, None)
            .await?;
        for name in self.nodegroup_names().await? {
            let ng = self.describe_nodegroup(&name).await?;
            let version = parse_version("DescribeNodegroup", "nodegroup.version", ng.version())?;
            let mut pool = NodePool::managed(name.clone(), version)
                .with_node_selector(format!("{NODEGROUP_LABEL}={name}"));
            pool.node_count = ng
                .scaling_config()
                .and_then(|s| s.desired_size())
                .and_then(|n| u32::try_from(n).ok());
            pool.status = ng.status().map(|s| s.as_str().to_string());
            pool.release = template_of(&ng).map(|(t, v)| launch_template_release(t, v));
            pools.push(pool);
            in_progress.extend(
                self.running(
                    OperationTarget::NodePool { pool: name.clone() },
                    Some(&name),
                    None,
                )
                .await?,
            );
        }
        let addons = self.installed_addons().await?;
        for a in &addons {
            in_progress.extend(
                self.running(
                    OperationTarget::Addon {
                        addon: a.name.clone(),
                    },
                    None,
                    Some(&a.name),
                )
                .await?,
            );
        }
        Ok(ClusterInfo {
            provider: ProviderKind::Eks,
            name: self.cluster.clone(),
            control_plane,
            api_servers: Vec::new(),
            node_pools: pools,
            addons,
            in_progress,
            status: c.status().map(|s| s.as_str().to_string()),
        })
    }

    async fn available_versions(&self) -> CoreResult<Vec<AvailableVersion>> {
        let versions: Vec<aws_sdk_eks::types::ClusterVersionInformation> = self
            .client
            .describe_cluster_versions()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(Error::sdk("DescribeClusterVersions"))?;
        let mut out = Vec::new();
        for v in versions {
            let version = parse_version(
                "DescribeClusterVersions",
                "clusterVersion",
                v.cluster_version(),
            )?;
            // `versionStatus` replaced the deprecated `status`; read either.
            #[allow(deprecated)]
            let legacy = v.status();
            let support = match (v.version_status(), legacy) {
                (Some(VersionStatus::StandardSupport), _)
                | (None, Some(ClusterVersionStatus::StandardSupport)) => SupportStatus::Standard,
                (Some(VersionStatus::ExtendedSupport), _)
                | (None, Some(ClusterVersionStatus::ExtendedSupport)) => SupportStatus::Extended,
                (Some(VersionStatus::Unsupported), _)
                | (None, Some(ClusterVersionStatus::Unsupported)) => SupportStatus::Unsupported,
                _ => SupportStatus::Unknown,
            };
            out.push(AvailableVersion {
                version,
                support,
                end_of_standard_support: date_of(v.end_of_standard_support_date()),
                end_of_extended_support: date_of(v.end_of_extended_support_date()),
                default: v.default_version(),
                scope: VersionScope::Both,
                channels: Vec::new(),
            });
        }
        out.sort_by(|a, b| a.version.cmp(&b.version));
        Ok(out)
    }

    async fn upgrade_control_plane(
        &self,
        to: &KubeVersion,
        opts: &ControlPlaneOptions,
    ) -> CoreResult<Operation> {
        // Refused here, before anything is sent, the way every provider refuses them: a hop
        // that is not the next minor, and a start while another update runs (EKS would refuse
        // both too, but only after kup had asked it to change the cluster).
        let live = self.cluster().await?;
        let distance = live.control_plane.minor_distance(to);
        if distance != 1 {
            return Err(kup_core::Error::precondition(format!(
                "the EKS control plane is at {}; it moves one minor at a time, to {}, so {to} \
                 is not a hop it can make",
                live.control_plane,
                live.control_plane.next_minor()
            )));
        }
        if let Some(op) = live.in_progress.first() {
            return Err(kup_core::Error::Busy {
                message: format!(
                    "{op} is in progress; EKS takes no control-plane update until it ends"
                ),
                operation: Some(op.id.clone()),
            });
        }
        let version = minor_string(to);
        let out = self
            .client
            .update_cluster_version()
            .name(&self.cluster)
            .version(&version)
            .force(opts.force)
            .send()
            .await
            .map_err(Error::sdk("UpdateClusterVersion"))?;
        let u = out
            .update
            .ok_or(Error::missing("UpdateClusterVersion", "update"))?;
        let id = u
            .id()
            .ok_or(Error::missing("UpdateClusterVersion", "update.id"))?;
        Ok(self
            .operation(id, OperationTarget::ControlPlane, None, None)
            .with_version(version))
    }

    async fn upgrade_node_pool(
        &self,
        pool: &str,
        to: &KubeVersion,
        opts: &NodePoolOptions,
    ) -> CoreResult<Operation> {
        let ng = self.describe_nodegroup(pool).await?;
        let version = minor_string(to);
        let custom_ami = ng.ami_type().map(|t| t.as_str()) == Some("CUSTOM");
        let mut request = self
            .client
            .update_nodegroup_version()
            .cluster_name(&self.cluster)
            .nodegroup_name(pool)
            .force(opts.force);
        if custom_ami {
            // EKS refuses a version for groups whose launch template pins an AMI: the new AMI
            // comes with a new launch template version.
            return Err(kup_core::Error::precondition(format!(
                "node group {pool} runs a custom AMI from launch template {}: create a launch \
                 template version with an AMI for Kubernetes {version}, then update the node \
                 group to it (kup cannot choose an AMI for you)",
                ng.launch_template()
                    .and_then(|l| l.name().or(l.id()))
                    .unwrap_or("(unnamed)")
            )));
        }
        request = request.version(&version);
        if let Some(release) = &opts.release_version {
            if !release.starts_with(&format!("{version}.")) {
                return Err(kup_core::Error::invalid_input(
                    "release_version",
                    format!(
                        "{release:?} is not an AMI release of Kubernetes {version} \
                         (expected e.g. {version}.0-20251120)"
                    ),
                ));
            }
            request = request.release_version(release);
        }
        if let Some(lt) = ng.launch_template() {
            // Keep the group on its launch template version; EKS would otherwise use the one it
            // last recorded, which may not be what the operator expects.
            request = request.launch_template(
                LaunchTemplateSpecification::builder()
                    .set_name(lt.name().map(String::from))
                    .set_id(if lt.name().is_none() {
                        lt.id().map(String::from)
                    } else {
                        None
                    })
                    .set_version(lt.version().map(String::from))
                    .build(),
            );
        }
        self.send_nodegroup_update(request, pool, &version).await
    }

    async fn addon_upgrades(&self, control_plane: &KubeVersion) -> CoreResult<Vec<AddonUpgrade>> {
        let minor = minor_string(control_plane);
        let mut out = Vec::new();
        for addon in self.installed_addons().await? {
            let (versions, default) = self.addon_versions(&addon.name, &minor).await?;
            let Some(to) = default.or_else(|| versions.first().cloned()) else {
                return Err(kup_core::Error::precondition(format!(
                    "EKS publishes no version of add-on {} for Kubernetes {minor}",
                    addon.name
                )));
            };
            if to == addon.version {
                continue;
            }
            let current_compatible = versions.contains(&addon.version);
            // A newer installed version that still works is never moved backwards.
            if current_compatible && addon_version_key(&addon.version) > addon_version_key(&to) {
                continue;
            }
            out.push(AddonUpgrade {
                name: addon.name,
                from: addon.version,
                to,
                control_plane: control_plane.clone(),
                current_compatible,
            });
        }
        Ok(out)
    }

    async fn upgrade_addon(
        &self,
        upgrade: &AddonUpgrade,
        opts: &AddonOptions,
    ) -> CoreResult<Operation> {
        let resolve = match opts.resolve_conflicts {
            ConflictResolution::Preserve => ResolveConflicts::Preserve,
            ConflictResolution::Overwrite => ResolveConflicts::Overwrite,
            ConflictResolution::None => ResolveConflicts::None,
        };
        let out = self
            .client
            .update_addon()
            .cluster_name(&self.cluster)
            .addon_name(&upgrade.name)
            .addon_version(&upgrade.to)
            .resolve_conflicts(resolve)
            .send()
            .await
            .map_err(Error::sdk("UpdateAddon"))?;
        let u = out.update.ok_or(Error::missing("UpdateAddon", "update"))?;
        let id = u.id().ok_or(Error::missing("UpdateAddon", "update.id"))?;
        Ok(self
            .operation(
                id,
                OperationTarget::Addon {
                    addon: upgrade.name.clone(),
                },
                None,
                Some(&upgrade.name),
            )
            .with_version(&upgrade.to))
    }

    async fn rollback_offer(&self) -> CoreResult<RollbackOffer> {
        let live = self.describe().await?;
        let live = parse_version("DescribeCluster", "cluster.version", live.version())?;
        let mut offer = RollbackOffer::default();
        let mut groups = Vec::new();
        for name in self.nodegroup_names().await? {
            let ng = self.describe_nodegroup(&name).await?;
            groups.push((
                name.clone(),
                parse_version("DescribeNodegroup", "nodegroup.version", ng.version())?,
            ));
            offer = match self.nodegroup_rollback(&ng).await? {
                Ok(way) => offer.offer(way.option),
                Err(reason) => offer.refuse(RollbackPart::pool(name), reason),
            };
        }
        offer = match self.control_plane_rollback(&live, &groups).await? {
            Ok(option) => offer.offer(option),
            Err(reason) => offer.refuse(RollbackPart::ControlPlane, reason),
        };
        Ok(offer)
    }

    async fn rollback_node_pool(
        &self,
        pool: &str,
        to: &kup_core::RollbackOption,
        opts: &NodePoolOptions,
    ) -> CoreResult<Operation> {
        let field = || format!("pools.{pool}.rollback");
        if to.part != RollbackPart::pool(pool) {
            return Err(kup_core::Error::invalid_input(
                field(),
                format!("the option moves {}, not node group {pool}", to.part),
            ));
        }
        let Some(release) = to.release.as_deref() else {
            return Err(kup_core::Error::invalid_input(
                field(),
                format!(
                    "EKS takes a node group back only to an earlier launch template version, \
                     and the option names none (expected e.g. \"{}\")",
                    launch_template_release("my-template", "3")
                ),
            ));
        };
        let ng = self.describe_nodegroup(pool).await?;
        let current = parse_version("DescribeNodegroup", "nodegroup.version", ng.version())?;
        if !to.to.same_minor(&current) {
            return Err(kup_core::Error::precondition(format!(
                "node group {pool} runs Kubernetes {current}, and the rollback asks for {}: \
                 {NODE_GROUP_ROLLBACK_REFUSAL}",
                to.to
            )));
        }
        // Only what the history allows now: a later update may have moved the group on.
        let way = match self.nodegroup_rollback(&ng).await? {
            Ok(way) if way.option.release.as_deref() == Some(release) => way,
            Ok(way) => {
                return Err(kup_core::Error::precondition(format!(
                    "node group {pool} can go back to {} now, not to {release}; plan the \
                     rollback again",
                    way.option.release.as_deref().unwrap_or("?")
                )));
            }
            Err(reason) => return Err(kup_core::Error::precondition(reason)),
        };
        let previous = way.launch_template_version.as_str();
        let Some(lt) = ng.launch_template() else {
            return Err(Error::missing("DescribeNodegroup", "nodegroup.launchTemplate").into());
        };
        let version = minor_string(&current);
        let mut request = self
            .client
            .update_nodegroup_version()
            .cluster_name(&self.cluster)
            .nodegroup_name(pool)
            .force(opts.force)
            .launch_template(
                // EKS takes the template by name or by id, never both.
                LaunchTemplateSpecification::builder()
                    .set_name(lt.name().map(String::from))
                    .set_id(if lt.name().is_none() {
                        lt.id().map(String::from)
                    } else {
                        None
                    })
                    .version(previous)
                    .build(),
            );
        // A template with its own AMI takes neither a version nor a release; otherwise the
        // group keeps both (EKS would move an unnamed release to the newest one).
        if ng.ami_type().map(|t| t.as_str()) != Some("CUSTOM") {
            request = request
                .version(&version)
                .set_release_version(ng.release_version().map(String::from));
        }
        Ok(self
            .send_nodegroup_update(request, pool, &version)
            .await?
            .with_handle("kind", "rollback")
            .with_handle("launch_template_version", previous))
    }

    async fn rollback_control_plane(&self, to: &kup_core::RollbackOption) -> CoreResult<Operation> {
        let field = "control_plane.rollback";
        if to.part != RollbackPart::ControlPlane {
            return Err(kup_core::Error::invalid_input(
                field,
                format!("the option moves {}, not the control plane", to.part),
            ));
        }
        if to.release.is_some() {
            return Err(kup_core::Error::invalid_input(
                field,
                "EKS takes a control plane back to a minor version only, and the option names a \
                 release",
            ));
        }
        let live = self.cluster().await?;
        let previous = previous_minor(&live.control_plane);
        if !previous.as_ref().is_some_and(|p| to.to.same_minor(p)) {
            return Err(kup_core::Error::precondition(format!(
                "the EKS control plane is at {}, and the rollback asks for {}; \
                 {CONTROL_PLANE_ROLLBACK_REFUSAL}",
                live.control_plane, to.to
            )));
        }
        if let Some(op) = live.in_progress.first() {
            return Err(kup_core::Error::Busy {
                message: format!(
                    "{op} is in progress; EKS takes no control-plane update until it ends"
                ),
                operation: Some(op.id.clone()),
            });
        }
        // Only what the history allows now: the window may have closed since the plan.
        let groups: Vec<(String, KubeVersion)> = live
            .node_pools
            .iter()
            .map(|p| (p.name.clone(), p.version.clone()))
            .collect();
        if let Err(reason) = self
            .control_plane_rollback(&live.control_plane, &groups)
            .await?
        {
            return Err(kup_core::Error::precondition(reason));
        }
        let version = minor_string(&to.to);
        let out = self
            .client
            .update_cluster_version()
            .name(&self.cluster)
            .version(&version)
            // EKS's default timeout (12 hours) applies; kup's own timeout bounds the wait.
            .rollback_config(aws_sdk_eks::types::RollbackConfig::builder().build())
            .send()
            .await
            .map_err(Error::sdk("UpdateClusterVersion"))?;
        let u = out
            .update
            .ok_or(Error::missing("UpdateClusterVersion", "update"))?;
        let id = u
            .id()
            .ok_or(Error::missing("UpdateClusterVersion", "update.id"))?;
        Ok(self
            .operation(id, OperationTarget::ControlPlane, None, None)
            .with_version(version)
            .with_handle("kind", "rollback"))
    }

    async fn poll(&self, op: &Operation) -> CoreResult<OperationStatus> {
        let id = op
            .handle
            .get("update_id")
            .cloned()
            .unwrap_or_else(|| op.id.clone());
        let u = self
            .client
            .describe_update()
            .name(&self.cluster)
            .update_id(&id)
            .set_nodegroup_name(op.handle.get("nodegroup").cloned())
            .set_addon_name(op.handle.get("addon").cloned())
            .send()
            .await
            .map_err(Error::sdk("DescribeUpdate"))?
            .update
            .ok_or(Error::missing("DescribeUpdate", "update"))?;
        Ok(status_of(&u))
    }

    async fn preflight(&self, to: &KubeVersion) -> CoreResult<Vec<Finding>> {
        let mut findings = insights::upgrade_readiness(self, to).await?;
        findings.extend(insights::unmanaged_nodes(self).await?);
        Ok(findings)
    }
}

#[cfg(test)]
mod tests {
    use super::addon_version_key;

    #[test]
    fn addon_versions_order_by_numbers_and_build() {
        let mut v = vec![
            "v1.19.6-eksbuild.1",
            "v1.20.4-eksbuild.1",
            "v1.19.6-eksbuild.2",
            "v1.9.3-eksbuild.7",
        ];
        v.sort_by_key(|s| addon_version_key(s));
        assert_eq!(
            v,
            [
                "v1.9.3-eksbuild.7",
                "v1.19.6-eksbuild.1",
                "v1.19.6-eksbuild.2",
                "v1.20.4-eksbuild.1"
            ]
        );
    }
}
