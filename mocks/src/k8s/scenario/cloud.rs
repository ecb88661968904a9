//! Where nodes run in a cloud, as its cloud provider labels them: the `topology.kubernetes.io`
//! and instance-type labels and `spec.providerID`.

use serde::{Deserialize, Serialize};

use super::Node;

/// Nodes in AWS EC2, as the AWS cloud provider registers them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsPlacement {
    /// Region, e.g. `us-west-2`.
    pub region: String,
    /// EC2 instance type, e.g. `m5.large`.
    pub instance_type: String,
}

impl AwsPlacement {
    /// Nodes of `instance_type` in `region`, spread over its zones `a`, `b` and `c`.
    pub fn new(region: impl Into<String>, instance_type: impl Into<String>) -> Self {
        AwsPlacement {
            region: region.into(),
            instance_type: instance_type.into(),
        }
    }

    /// The zone of the `index`-th node.
    pub fn zone(&self, index: usize) -> String {
        let letter = ["a", "b", "c"][index % 3];
        format!("{}{letter}", self.region)
    }

    /// Labels and provider ID of the `index`-th node (the instance ID derives from its name).
    pub fn place(&self, mut node: Node, index: usize) -> Node {
        let zone = self.zone(index);
        // FNV-1a of the name: a stable, distinct instance ID per node.
        let hash = node.name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        for (key, value) in [
            ("topology.kubernetes.io/region", self.region.clone()),
            ("topology.kubernetes.io/zone", zone.clone()),
            (
                "failure-domain.beta.kubernetes.io/region",
                self.region.clone(),
            ),
            ("failure-domain.beta.kubernetes.io/zone", zone.clone()),
            (
                "node.kubernetes.io/instance-type",
                self.instance_type.clone(),
            ),
            (
                "beta.kubernetes.io/instance-type",
                self.instance_type.clone(),
            ),
        ] {
            node.labels.insert(key.to_string(), value);
        }
        node.provider_id = Some(format!("aws:///{zone}/i-0{:016x}", hash));
        node
    }
}
