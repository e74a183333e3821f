#!/usr/bin/env bash
# Debian's Slurm and munge for the cluster stage (`make test-cluster`), installed when missing. Where they
# cannot be (not root, no apt-get, no package index), it says so in one line and the stage's tests skip
# with the same reason; it never fails the stage by itself.
set -u
missing=()
for program in slurmctld slurmd munged sbatch scontrol scancel squeue; do
    command -v "$program" >/dev/null 2>&1 || [ -x "/usr/sbin/$program" ] || missing+=("$program")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "cluster stage: ${missing[*]} missing, and installing slurm-wlm and munge needs root and apt-get: its tests will skip"
    exit 0
fi
log="${TMPDIR:-/tmp}/xai-install-slurm.log"
echo "cluster stage: installing slurm-wlm and munge from Debian (log: $log)"
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurm-wlm munge; } >"$log" 2>&1; then
    echo "cluster stage: apt-get could not install slurm-wlm and munge ($(tail -n 1 "$log")): its tests will skip"
fi
exit 0
