#!/usr/bin/env bash
# Run a sharded whatif scenario on Kubernetes: phase 1 (Indexed Job), plan,
# phase 2 (Indexed Job), merge. Kubernetes Jobs have no dependencies, so
# this script applies each step when the previous one completed.
#
# Usage: deploy/kubernetes/run.sh SCENARIO.toml [NAMESPACE]
# Needs kubectl with access to the cluster, and the image in the Job files
# (build it with whatif on PATH).
set -euo pipefail

scenario=${1:?usage: run.sh SCENARIO.toml [NAMESPACE]}
ns=${2:-default}
here=$(cd "$(dirname "$0")" && pwd)
k=(kubectl --namespace "$ns")

step() {
    local job=$1 file=$2 state
    "${k[@]}" delete job "$job" --ignore-not-found
    "${k[@]}" apply -f "$here/$file"
    # Poll the Job's conditions: Complete goes on, Failed stops here.
    while :; do
        state=$("${k[@]}" get job "$job" \
            -o jsonpath='{.status.conditions[?(@.status=="True")].type}')
        case "$state" in
            *Complete*) return 0 ;;
            *Failed*)
                echo "error: job $job failed; see: kubectl logs job/$job" >&2
                exit 1
                ;;
        esac
        sleep 10
    done
}

"${k[@]}" apply -f "$here/pvc.yaml"
# Copy the scenario onto the shared volume through a short-lived pod.
"${k[@]}" run whatif-copy --image=busybox --restart=Never \
    --overrides='{"spec":{"volumes":[{"name":"work","persistentVolumeClaim":{"claimName":"whatif-work"}}],"containers":[{"name":"copy","image":"busybox","command":["sleep","600"],"volumeMounts":[{"name":"work","mountPath":"/work"}]}]}}'
"${k[@]}" wait --for=condition=ready pod/whatif-copy --timeout=10m
"${k[@]}" exec whatif-copy -- rm -rf /work/parts /work/plan.json /work/report.json
"${k[@]}" cp "$scenario" whatif-copy:/work/scenario.toml
"${k[@]}" delete pod whatif-copy --wait=false

step whatif-phase1 phase1-job.yaml
step whatif-plan plan-job.yaml
step whatif-phase2 phase2-job.yaml
step whatif-merge merge-job.yaml
echo "report: /work/report.json on volume whatif-work"
