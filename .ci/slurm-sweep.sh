#!/usr/bin/env bash
# deploy/slurm-sweep.sh on a real Slurm: Debian's slurm-wlm and munge, a
# single-node cluster on this machine (slurmctld and slurmd on localhost,
# a minimal slurm.conf written here, no cgroups), the sweep submitted as a
# job array, its shards merged, and the merge compared byte for byte with
# the same sweep run on one machine. The daemons are stopped by their pids.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${NUMASIM_BIN:-$PWD/target/release/numasim}
SWEEP=scenarios/quickstart-sweep-small.toml
OUT=$PWD/target/ci-slurm
rm -rf "$OUT"; mkdir -p "$OUT"/{state,spool,log}
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null; }
fi
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# munge: a fresh key, the daemon in the foreground of a background job.
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
chmod 400 /etc/munge/munge.key
munged --foreground --force >"$OUT/log/munged.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done

host=$(hostname -s)
cpus=$(nproc)
mkdir -p /etc/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=numasim-ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$OUT/state
SlurmdSpoolDir=$OUT/spool
SlurmctldPidFile=$OUT/slurmctld.pid
SlurmdPidFile=$OUT/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -D -i >"$OUT/log/slurmctld.log" 2>&1 &
PIDS+=($!)
slurmd -D >"$OUT/log/slurmd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
  sinfo -h -o %T 2>/dev/null | grep -qE "^(idle|mixed)" && break
  sleep 0.2
done
state=$(sinfo -h -o %T 2>/dev/null || true)
case "$state" in idle*|mixed*) ;; *)
  echo "slurm did not come up (node state: $state)"
  tail -20 "$OUT/log/slurmctld.log" "$OUT/log/slurmd.log"; exit 1;;
esac

# Three shards as a job array; --wait returns when every task has ended.
sbatch --wait --array=0-2 --cpus-per-task=1 --mem=0 --chdir="$PWD" \
  --output="$OUT/log/task-%A_%a.log" --export=ALL,NUMASIM="$BIN" \
  deploy/slurm-sweep.sh "$SWEEP" "$OUT/shards" >"$OUT/sbatch.txt"
cat "$OUT/sbatch.txt"
"$BIN" merge "$OUT"/shards/shard-* --out "$OUT/merged" >/dev/null
"$BIN" sweep "$SWEEP" --out "$OUT/single" >/dev/null 2>&1
for f in report.html runs.csv aggregate.csv timeseries.csv latency_quantiles.csv \
  rejection_vs_load.svg remote_vs_load.svg latency_vs_load.svg; do
  cmp "$OUT/merged/$f" "$OUT/single/$f" || { echo "$f: the Slurm merge differs"; exit 1; }
done
echo "slurm job array: ok ($(ls -d "$OUT"/shards/shard-* | wc -l) shards merged, identical to one machine)"
