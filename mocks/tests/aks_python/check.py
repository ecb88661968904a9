"""Drives the ARM mock with Microsoft's Python client (azure-mgmt-containerservice, an
independent implementation of the Microsoft.ContainerService wire format) and prints what it
read as one JSON object. Arguments: endpoint, CA file, subscription, resource group."""

import json
import sys

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerservice import ContainerServiceClient


class FixedToken:
    """A credential that always answers the same bearer token."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken("python-test-token", 4102444800)


def error_of(e):
    body = e.response.json() if e.response is not None else {}
    inner = body.get("error", body)
    return {
        "status": e.status_code,
        "code": e.error.code if e.error else None,
        "subcode": inner.get("subcode"),
    }


def main():
    endpoint, ca, sub, rg = sys.argv[1:5]
    client = ContainerServiceClient(
        FixedToken(),
        sub,
        base_url=endpoint,
        connection_verify=ca,
        retry_total=0,
        polling_interval=0.05,
    )
    out = {}
    mc = client.managed_clusters.get(rg, "demo")
    out["current"] = mc.current_kubernetes_version
    out["state"] = mc.provisioning_state
    out["profiles"] = sorted(p.name for p in mc.agent_pool_profiles)
    profile = client.managed_clusters.get_upgrade_profile(rg, "demo")
    out["upgrades"] = [u.kubernetes_version for u in profile.control_plane_profile.upgrades]
    versions = client.managed_clusters.list_kubernetes_versions(mc.location)
    # The list's field is named `values`, which the client's mapping models keep as a key.
    out["minors"] = [v.version for v in versions["values"]]
    out["preview"] = [v.version for v in versions["values"] if v.is_preview]
    pools = list(client.agent_pools.list(rg, "demo"))
    out["pools"] = {p.name: [p.mode, p.count, p.current_orchestrator_version] for p in pools}
    pool_profile = client.agent_pools.get_upgrade_profile(rg, "demo", "apps")
    out["latest_node_image"] = pool_profile.latest_node_image_version

    mc.kubernetes_version = "1.34.2"
    done = client.managed_clusters.begin_create_or_update(rg, "demo", mc, polling_interval=0.05).result()
    out["after_control_plane"] = [done.current_kubernetes_version, done.provisioning_state]

    apps = client.agent_pools.get(rg, "demo", "apps")
    apps.orchestrator_version = "1.34.2"
    apps.upgrade_settings.max_surge = "33%"
    apps.upgrade_settings.drain_timeout_in_minutes = 5
    apps.upgrade_settings.undrainable_node_behavior = "Cordon"
    moved = client.agent_pools.begin_create_or_update(
        rg, "demo", "apps", apps, polling_interval=0.05
    ).result()
    out["after_pool"] = [
        moved.current_orchestrator_version,
        moved.upgrade_settings.max_surge,
        moved.upgrade_settings.drain_timeout_in_minutes,
        moved.upgrade_settings.undrainable_node_behavior,
    ]

    image = client.agent_pools.begin_upgrade_node_image_version(
        rg, "demo", "system", polling_interval=0.05
    )
    image.result()
    out["node_image"] = client.agent_pools.get(rg, "demo", "system").node_image_version

    try:
        client.agent_pools.get(rg, "demo", "no-such-pool")
    except HttpResponseError as e:
        out["not_found"] = error_of(e)

    # Armed by the test: a 409 on the next pool PUT, the removed-API block on 1.35.
    system = client.agent_pools.get(rg, "demo", "system")
    system.orchestrator_version = "1.34.2"
    try:
        client.agent_pools.begin_create_or_update(rg, "demo", "system", system).result()
    except HttpResponseError as e:
        out["busy"] = error_of(e)
    mc = client.managed_clusters.get(rg, "demo")
    mc.kubernetes_version = "1.35.1"
    try:
        client.managed_clusters.begin_create_or_update(rg, "demo", mc).result()
    except HttpResponseError as e:
        out["blocked"] = error_of(e)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
