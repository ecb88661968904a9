//! The cloud mocks served standalone (`kup-mock --provider eks`): each cloud's API mock and the
//! Kubernetes simulator behind it, with the environment a client needs to reach both, so that
//! any client (`aws eks … `, the Python SDKs, Terraform, a user's own tooling, kup itself) can
//! be pointed at them, the way LocalStack or moto's server mode are used.
//!
//! A cloud is one [`Cloud`] entry in [`CLOUDS`]: its name, its default Kubernetes scenario,
//! and how to start its mock on a running simulator.

use std::future::Future;
use std::pin::Pin;

use crate::k8s::{Scenario, SimHandle};
use crate::{Error, Result};

/// What a running cloud mock tells its clients.
pub struct Serving {
    /// The cloud API's endpoint (`http://127.0.0.1:PORT`).
    pub endpoint: String,
    /// The environment a client needs besides the kubeconfig: endpoint overrides, dummy
    /// credentials, region, cluster names; in the order printed.
    pub env: Vec<(String, String)>,
    /// Keeps the mock serving until dropped.
    pub guard: Box<dyn Send>,
}

/// What a cloud mock starts from.
#[derive(Clone, Debug)]
pub struct StartOptions {
    /// The simulator the mock drives (node-group updates replace its nodes).
    pub sim: SimHandle,
    /// Simulated seconds per real second for the cloud's operations.
    pub time_scale: f64,
}

/// The future a [`Cloud`]'s `start` returns.
pub type StartFuture = Pin<Box<dyn Future<Output = Result<Serving>> + Send>>;

/// One cloud whose mock can be served standalone.
pub struct Cloud {
    /// Its `--provider` value.
    pub name: &'static str,
    /// One line for help.
    pub help: &'static str,
    /// The Kubernetes side it serves by default (node labels as the cloud sets them).
    pub scenario: fn() -> Scenario,
    /// Starts the mock on the simulator.
    pub start: fn(StartOptions) -> StartFuture,
}

/// Every cloud `kup-mock --provider` serves.
pub const CLOUDS: &[Cloud] = &[EKS];

/// The accepted `--provider` values, comma-separated.
pub fn accepted() -> String {
    CLOUDS.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
}

/// The cloud named `name`; the error lists the accepted values.
pub fn find(name: &str) -> Result<&'static Cloud> {
    CLOUDS.iter().find(|c| c.name == name).ok_or_else(|| {
        Error::invalid(
            "provider",
            format!("{name:?} is not a cloud mock; accepted: {}", accepted()),
        )
    })
}

/// Dummy credentials: the mocks check no signature, but the clients insist on having some.
const AWS_ACCESS_KEY_ID: &str = "AKIDKUPMOCK";
const AWS_SECRET_ACCESS_KEY: &str = "kup-mock-secret";
const AWS_REGION: &str = "us-west-2";

const EKS: Cloud = Cloud {
    name: "eks",
    help: "the EKS API (cluster `demo`: node groups system and apps, three add-ons, insights)",
    scenario: crate::eks::demo_scenario,
    start: start_eks,
};

fn start_eks(options: StartOptions) -> StartFuture {
    Box::pin(async move {
        let config = crate::eks::EksConfig::demo().time_scale(options.time_scale);
        let mock = crate::eks::EksMock::start(config, Some(options.sim)).await?;
        let endpoint = mock.endpoint();
        let env = [
            // botocore and the AWS SDKs read the service-specific endpoint override.
            ("AWS_ENDPOINT_URL_EKS", endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET_ACCESS_KEY),
            ("AWS_DEFAULT_REGION", AWS_REGION),
            ("AWS_REGION", AWS_REGION),
            // No instance metadata lookups from a machine that is not in AWS.
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("KUP_PROVIDER", "eks"),
            ("KUP_EKS_ENDPOINT", endpoint.as_str()),
            ("KUP_EKS_CLUSTER", "demo"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Ok(Serving {
            endpoint,
            env,
            guard: Box::new(mock),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_clouds_are_refused_listing_the_accepted_ones() {
        assert!(find("eks").is_ok());
        let err = find("openstack")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("provider") && err.contains("accepted: eks"),
            "{err}"
        );
    }
}
