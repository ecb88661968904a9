//! The cloud mocks served standalone (`kup-mock --provider eks|aks|gke`): each cloud's API mock and the
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
pub const CLOUDS: &[Cloud] = &[EKS, AKS, GKE];

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

const GKE: Cloud = Cloud {
    name: "gke",
    help: "the GKE API (project demo-project, location us-central1, cluster `demo`: node pools \
           default-pool and apps)",
    scenario: crate::gke::demo_scenario,
    start: start_gke,
};

fn start_gke(options: StartOptions) -> StartFuture {
    Box::pin(async move {
        let config = crate::gke::GkeConfig::demo().time_scale(options.time_scale);
        let mock = crate::gke::GkeMock::start(config, Some(options.sim)).await?;
        let endpoint = mock.endpoint();
        let gcloud_override = format!("{endpoint}/");
        let env = [
            // Google's client libraries take the endpoint as an option (`api_endpoint`), not
            // from the environment; these say what to pass, and configure kup.
            (
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_CONTAINER",
                gcloud_override.as_str(),
            ),
            ("GOOGLE_CLOUD_PROJECT", "demo-project"),
            ("KUP_PROVIDER", "gke"),
            ("KUP_GKE_PROJECT", "demo-project"),
            ("KUP_GKE_LOCATION", "us-central1"),
            ("KUP_EKS_CLUSTER", "demo"),
            ("KUP_EKS_ENDPOINT", endpoint.as_str()),
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

const AKS: Cloud = Cloud {
    name: "aks",
    help: "Azure Resource Manager for AKS over HTTPS with its own CA (subscription \
           3f2c9a1e-…, resource group rg-demo, cluster `demo`: agent pools system and apps)",
    scenario: crate::aks::demo_scenario,
    start: start_aks,
};

/// The ARM mock's CA certificate in a file clients can be given, removed when serving ends.
struct CaFile(std::path::PathBuf);

impl Drop for CaFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn start_aks(options: StartOptions) -> StartFuture {
    Box::pin(async move {
        let config = crate::aks::AksConfig::demo().time_scale(options.time_scale);
        let mock = crate::aks::AksMock::start(config, Some(options.sim)).await?;
        let endpoint = mock.endpoint().to_string();
        let ca = CaFile(
            std::env::temp_dir().join(format!("kup-mock-arm-ca-{}.pem", std::process::id())),
        );
        std::fs::write(&ca.0, mock.ca_pem()).map_err(|source| Error::Io {
            context: format!("writing the ARM mock's CA to {}", ca.0.display()),
            source,
        })?;
        let ca_path = ca.0.display().to_string();
        let env = [
            ("AZURE_SUBSCRIPTION_ID", crate::aks::DEMO_SUBSCRIPTION),
            // Python's requests and most TLS clients trust the mock's CA through these.
            ("REQUESTS_CA_BUNDLE", ca_path.as_str()),
            ("SSL_CERT_FILE", ca_path.as_str()),
            // A token for kup (the mock checks that one is sent, not what it says).
            ("KUP_AKS_ACCESS_TOKEN", "kup-mock-token"),
            ("KUP_PROVIDER", "aks"),
            ("KUP_AKS_RESOURCE_GROUP", crate::aks::DEMO_RESOURCE_GROUP),
            ("KUP_AKS_ARM_ENDPOINT", endpoint.as_str()),
            ("KUP_AKS_ARM_CA_FILE", ca_path.as_str()),
            ("KUP_EKS_CLUSTER", "demo"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Ok(Serving {
            endpoint,
            env,
            guard: Box::new((mock, ca)),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_clouds_are_refused_listing_the_accepted_ones() {
        assert!(find("eks").is_ok() && find("aks").is_ok() && find("gke").is_ok());
        let err = find("openstack")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("provider") && err.contains("accepted: eks, aks, gke"),
            "{err}"
        );
    }
}
