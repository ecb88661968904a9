# Shared by the node shims: per-node state under $KUP_SHIM_STATE/$KUP_SIM_NODE, a call log,
# failure injection, and the simulator's control endpoint.
NODE="${KUP_SIM_NODE:?KUP_SIM_NODE is not set}"
STATE="${KUP_SHIM_STATE:?KUP_SHIM_STATE is not set}/$NODE"
mkdir -p "$STATE/pkg" "$STATE/hold"

record() {
  printf '%s\n' "$*" >> "$STATE/calls.log"
}

# fail_if NAME: when $STATE/fail/NAME exists, print it to stderr and exit 1.
fail_if() {
  if [ -f "$STATE/fail/$1" ]; then
    cat "$STATE/fail/$1" >&2
    exit 1
  fi
}

# version comparison: vlt A B is true when A < B (dotted numbers).
vlt() {
  [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -t. -k1,1n -k2,2n -k3,3n | head -n1)" = "$1" ]
}

minor_of() {
  echo "$1" | cut -d. -f1,2
}

# sim_post PATH JSON: tells the Kubernetes simulator what happened on this node.
sim_post() {
  if [ -n "${KUP_SIM_URL:-}" ]; then
    curl -fsS -X POST -H 'Content-Type: application/json' --data "$2" "$KUP_SIM_URL$1" >/dev/null
  fi
}

# The repository definition must point at the minor of the version being installed.
repo_has_minor() {
  file="$(cat "$STATE/repo-file" 2>/dev/null)"
  [ -n "$file" ] && grep -q "/v$(minor_of "$1")/" "$file"
}

# wait_while NAME: blocks while $STATE/block/NAME exists (a test holds a node mid-step).
wait_while() {
  while [ -f "$STATE/block/$1" ]; do
    sleep 0.1
  done
}

# set_apiserver VERSION: the kubelet restarted the API server static pod at VERSION; its
# mirror pod shows the image.
set_apiserver() {
  echo "$1" > "$STATE/apiserver"
  if [ -n "${KUP_SIM_URL:-}" ]; then
    curl -fsS -X PATCH -H 'Content-Type: application/strategic-merge-patch+json' \
      --data "{\"spec\":{\"containers\":[{\"name\":\"kube-apiserver\",\"image\":\"registry.k8s.io/kube-apiserver:v$1\"}]}}" \
      "$KUP_SIM_URL/api/v1/namespaces/kube-system/pods/kube-apiserver-$NODE" >/dev/null
  fi
}

# sync_apiserver: the kubelet runs the API server static pod only while its manifest is in the
# manifest directory. With it moved away (a restore in progress) the simulator stops answering
# (connections reset), as a stopped API server would, until the manifest is back. The fault's
# id is kept once for all nodes, which share the lab's manifest directory.
sync_apiserver() {
  dir="$(cat "$STATE/manifest-dir" 2>/dev/null)"
  if [ -z "$dir" ] || [ -z "${KUP_SIM_URL:-}" ]; then
    return 0
  fi
  down="$KUP_SHIM_STATE/apiserver-down"
  if [ -f "$dir/kube-apiserver.yaml" ]; then
    if [ -f "$down" ]; then
      curl -fsS -X DELETE "$KUP_SIM_URL/_sim/faults/$(cat "$down")" >/dev/null
      rm -f "$down"
    fi
  elif [ ! -f "$down" ]; then
    id="$(curl -fsS -X POST -H 'Content-Type: application/json' \
      --data '{"path":"**","action":{"type":"reset"}}' "$KUP_SIM_URL/_sim/faults" \
      | sed -n 's/.*"id":\([0-9][0-9]*\).*/\1/p')"
    if [ -n "$id" ]; then
      echo "$id" > "$down"
    fi
  fi
}
