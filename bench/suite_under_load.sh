#!/usr/bin/env bash
# The whole test suite with every core busy (two spinning processes per core), as users'
# machines are: the run the fault and timing tests must pass. Keeps the full output.
#   bench/suite_under_load.sh [OUT.txt] [pytest args...]
set -u
cd "$(dirname "$0")/.."
out=${1:-suite_under_load.txt}; shift || true
n=$(( 2 * $(nproc) )); pids=()
for _ in $(seq "$n"); do python3 -c "while True: pass" & pids+=($!); done
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
echo "$(date -u '+%F %T UTC'), $n busy processes, load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out"
TRITON_INTERPRET=1 .venv/bin/pytest -q -p no:cacheprovider -rf "$@" >> "$out" 2>&1
rc=$?
echo "$(date -u '+%F %T UTC'), load: $(cut -d' ' -f1-3 /proc/loadavg), pytest exit $rc" | tee -a "$out"
tail -3 "$out"
exit $rc
