#!/usr/bin/env bash
# Submit a sharded whatif run to Slurm: phase 1 as a job array, the plan
# after it (afterok), phase 2 as a second job array, and the merge.
#
# Usage: deploy/slurm/submit.sh SCENARIO.toml WORKDIR [SHARDS]
# WORKDIR must be on a file system every node sees. Set WHATIF to the
# binary's path if it is not on PATH.
set -euo pipefail

scenario=$(realpath "${1:?usage: submit.sh SCENARIO.toml WORKDIR [SHARDS]}")
workdir=$(realpath -m "${2:?usage: submit.sh SCENARIO.toml WORKDIR [SHARDS]}")
shards=${3:-16}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$workdir/parts"
rm -f "$workdir"/parts/*.json "$workdir/plan.json" "$workdir/report.json"

export SCENARIO=$scenario WORKDIR=$workdir WHATIF=${WHATIF:-whatif}
last=$((shards - 1))
p1=$(sbatch --parsable --export=ALL --array="0-$last" "$here/phase1.sbatch")
plan=$(sbatch --parsable --export=ALL --dependency="afterok:$p1" "$here/plan.sbatch")
p2=$(sbatch --parsable --export=ALL --array="0-$last" --dependency="afterok:$plan" "$here/phase2.sbatch")
merge=$(sbatch --parsable --export=ALL --dependency="afterok:$p2" "$here/merge.sbatch")
echo "submitted: phase 1 $p1, plan $plan, phase 2 $p2, merge $merge"
echo "report: $workdir/report.json"
