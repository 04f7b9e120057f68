#!/usr/bin/env bash
# Runs a numasim sweep as a Slurm job array: one array task per shard, each
# writing its own directory; a dependent job merges them.
#
#   sbatch --array=0-15 deploy/slurm-sweep.sh scenarios/quickstart-sweep.toml results/qs
#   # when the array is done (or chained: see the README):
#   numasim merge results/qs/shard-* --out results/qs/merged
#
# Every task must see the same numasim binary and the same sweep and scenario
# files (a shared filesystem); results do not depend on the node or its cores.
#SBATCH --job-name=numasim-sweep
#SBATCH --cpus-per-task=4
#SBATCH --mem=4G
#SBATCH --time=02:00:00
#SBATCH --output=numasim-sweep-%A_%a.log
set -euo pipefail

sweep=${1:?usage: sbatch --array=0-N deploy/slurm-sweep.sh SWEEP.toml OUT_DIR}
out=${2:?usage: sbatch --array=0-N deploy/slurm-sweep.sh SWEEP.toml OUT_DIR}
numasim=${NUMASIM:-numasim}

: "${SLURM_ARRAY_TASK_ID:?run this script through sbatch --array}"
# Shard count = array size, whatever range the array was given.
shards=${SLURM_ARRAY_TASK_COUNT:?this Slurm does not export SLURM_ARRAY_TASK_COUNT}
index=$((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0}))

# A task that is requeued or restarted resumes from the runs it recorded.
exec "$numasim" sweep "$sweep" \
  --shard "${index}/${shards}" \
  --threads "${SLURM_CPUS_PER_TASK:-1}" \
  --out "${out}/shard-${index}"
