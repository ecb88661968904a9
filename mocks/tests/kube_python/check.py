# The official Python client for Kubernetes against the simulator: typed reads of every kind
# it serves, paged lists, a watch, evictions and error Status bodies, as the client reports
# them. Prints one JSON document for the Rust test to check.
import json
import sys
import threading
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=sys.argv[1])
api = client.ApiClient()
core = client.CoreV1Api(api)
apps = client.AppsV1Api(api)
policy = client.PolicyV1Api(api)
NS = "shop"
out = {}


def pod(name, containers=None):
    if containers is None:
        containers = [client.V1Container(name="main", image="busybox:1.37")]
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": "extra"}),
        spec=client.V1PodSpec(containers=containers),
    )


def failure(call):
    """[status, reason, details, message] of the ApiException `call` raises, or None."""
    try:
        call()
    except ApiException as e:
        body = json.loads(e.body)
        return [e.status, body.get("reason"), body.get("details"), body.get("message"),
                body.get("kind"), body.get("status")]
    return None


# Typed reads: the client builds its models from every object, checking required fields.
out["version"] = client.VersionApi(api).get_code().git_version
nodes = core.list_node().items
out["nodes"] = sorted(n.metadata.name for n in nodes)
out["ready"] = sorted(
    n.metadata.name for n in nodes
    if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
)
pods = core.list_pod_for_all_namespaces().items
out["pods"] = sorted(f"{p.metadata.namespace}/{p.metadata.name}" for p in pods)
out["image_ids"] = all(
    s.image_id for p in pods for s in (p.status.container_statuses or [])
)
out["deployments"] = sorted(
    (d.metadata.name, d.status.ready_replicas) for d in apps.list_namespaced_deployment(NS).items
)
out["pdbs"] = sorted(
    (b.metadata.name, b.status.disruptions_allowed)
    for b in policy.list_namespaced_pod_disruption_budget(NS).items
)
out["services"] = sorted(s.metadata.name for s in core.list_namespaced_service("default").items)

# Pages of two, continued from the first page's snapshot: a pod created meanwhile is not in it.
paged, token, pages, versions = [], None, 0, set()
while True:
    page = core.list_pod_for_all_namespaces(limit=2, _continue=token)
    pages += 1
    paged += [f"{p.metadata.namespace}/{p.metadata.name}" for p in page.items]
    versions.add(page.metadata.resource_version)
    token = page.metadata._continue
    if pages == 1:
        core.create_namespaced_pod(NS, pod("late"))
    if not token:
        break
out["paged"] = sorted(paged)
out["pages"] = pages
out["page_versions"] = len(versions)
out["late_listed_now"] = any(
    p.metadata.name == "late" for p in core.list_namespaced_pod(NS).items
)

# A watch from a list's resourceVersion sees a pod come, run and go.
rv = core.list_namespaced_pod(NS).metadata.resource_version


def churn():
    time.sleep(0.3)
    core.create_namespaced_pod(NS, pod("watched"))
    for _ in range(600):
        got = core.read_namespaced_pod("watched", NS)
        if got.status.phase == "Running":
            break
        time.sleep(0.05)
    core.delete_namespaced_pod("watched", NS, grace_period_seconds=0)


events = []
worker = threading.Thread(target=churn)
worker.start()
w = watch.Watch()
for event in w.stream(core.list_namespaced_pod, NS, resource_version=rv, timeout_seconds=60):
    obj = event["object"]
    if obj.metadata.name != "watched":
        continue
    events.append([event["type"], obj.status.phase])
    if event["type"] == "DELETED":
        w.stop()
worker.join()
out["watch"] = events


# Evictions: one pod free to go, one held by its budget, one under two budgets.
def first(app):
    return sorted(
        p.metadata.name for p in core.list_namespaced_pod(NS, label_selector=f"app={app}").items
    )[0]


def evict(name):
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=NS))
    return failure(lambda: core.create_namespaced_pod_eviction(name, NS, body))


free = first("batch")
out["evict_free"] = evict(free)
out["evicted_is_terminating"] = (
    core.read_namespaced_pod(free, NS).metadata.deletion_timestamp is not None
)
out["evict_budget"] = evict(first("web"))
out["evict_two_budgets"] = evict(first("api"))

# Error Status bodies.
out["not_found"] = failure(lambda: core.read_namespaced_pod("nope", NS))
out["exists"] = failure(lambda: core.create_namespaced_pod(NS, pod(first("web"))))
out["invalid"] = failure(lambda: core.create_namespaced_pod(NS, pod("bad", containers=[])))

print(json.dumps(out))
