#!/usr/bin/env bash
# --shard K/N as a real Slurm job array on a one-node cluster started here
# from a scratch configuration (shared/recipes/slurm-one-node.md): the array's
# tasks together must write exactly the files of a single run, byte for byte,
# each input dreamed by exactly one task. The daemons are stopped by PID.
#
# usage: test_slurm.sh DEEPDREAM
# Exits 77 (skipped) without Slurm (slurmctld slurmd slurm-client), without
# ImageMagick, or when not root (the daemons run as root with auth/none).
set -u
if [ $# -ne 1 ]; then
  echo "usage: test_slurm.sh DEEPDREAM" >&2
  exit 2
fi
dd=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
top=$(cd "$(dirname "$0")/.." && pwd)
for tool in slurmctld slurmd sbatch sinfo convert; do
  command -v "$tool" >/dev/null || { echo "skip: $tool is not installed"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "skip: the one-node cluster needs root"; exit 77; }
export LC_ALL=C

D=$(mktemp -d)
chmod 755 "$D"
ctld="" slurmd=""
stop_daemons() {
  local i
  [ -n "$slurmd" ] && kill "$slurmd" 2>/dev/null
  [ -n "$ctld" ] && kill "$ctld" 2>/dev/null
  [ -n "$slurmd" ] && wait "$slurmd" 2>/dev/null
  [ -n "$ctld" ] && wait "$ctld" 2>/dev/null
  slurmd="" ctld=""
  # slurmstepd may outlive slurmd by about a second.
  for ((i = 0; i < 100; i++)); do
    ps -eo comm | grep -qx slurmstepd || break
    sleep 0.1
  done
}
trap 'stop_daemons; rm -rf "$D"' EXIT
cd "$D" || exit 1
start=$SECONDS

passed=0 failed=0
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
check() { local what=$1; shift; if "$@"; then pass; else fail "$what"; fi; }
files_of() { (cd "$1" && find . -type f | sed 's|^\./||' | sort); }

# Seven small images in a tree, and the single run to compare with.
s=$top/samples
mkdir -p in/sub
convert "$s/chelsea.png" -resize '64x48!' -strip in/a.png
convert "$s/coffee.png" -resize '96x80!' -strip -quality 90 in/b.jpg
convert "$s/astronaut.png" -resize '80x64!' -strip ppm:in/c.ppm
convert "$s/coffee.png" -resize '72x56!' -strip in/sub/d.png
convert "$s/chelsea.png" -resize '88x72!' -strip -quality 90 in/sub/e.jpg
convert "$s/astronaut.png" -resize '64x64!' -strip in/sub/f.png
convert "$s/chelsea.png" -resize '80x80!' -strip pam:in/sub/g.pam
total=7
opts="--octaves 1 --steps 1"
# shellcheck disable=SC2086
"$dd" $opts -r -o single in 2>single.err
check "the single run (exit $?): $(tail -1 single.err)" test "$(tail -1 single.err)" = "deepdream: $total done, 0 skipped, 0 failed"

# The cluster: the recipe's configuration, in $D only.
mkdir state spool
mem=$(($(free -m | awk '/^Mem:/ {print $2}') - 512))
cat >slurm.conf <<EOF
ClusterName=test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1,sched_min_interval=0
ReturnToService=2
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=localhost CPUs=2 RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$D/slurm.conf
slurmctld -D -i >ctld.out 2>&1 &
ctld=$!
slurmd -D -N localhost >slurmd.out 2>&1 &
slurmd=$!
up=0
for ((i = 0; i < 120; i++)); do # about 1 s; at most 60
  [ "$(sinfo -h -N -o %t 2>/dev/null)" = idle ] && { up=1; break; }
  sleep 0.5
done
if [ "$up" != 1 ]; then
  fail "the node never became idle: $(sinfo -h -N -o %t 2>&1 | head -1); $(tail -3 slurmctld.log 2>/dev/null | tr '\n' ' ')"
  echo "test_slurm: $passed passed, $failed failed"
  exit 1
fi
pass

# The job array, as docs/BATCH.md shows it (with fast options and absolute paths).
n=3
timeout 120 sbatch --array=0-$((n - 1)) --wait -o "$D/%a.log" \
  --wrap "$dd $opts --shard \$SLURM_ARRAY_TASK_ID/\$SLURM_ARRAY_TASK_COUNT -r -o $D/out $D/in" >sbatch.out 2>&1
rc=$?
check "sbatch --array=0-$((n - 1)) --wait: exit $rc ($(tr '\n' ' ' <sbatch.out))" test "$rc" = 0
stop_daemons

logs=()
for ((k = 0; k < n; k++)); do logs+=("$k.log"); done
for log in "${logs[@]}"; do
  check "task log $log: a summary ($(grep -a 'done,' "$log" 2>/dev/null))" grep -qaE '^deepdream: [0-9]+ done, 0 skipped, 0 failed$' "$log"
done
sum=$(cat "${logs[@]}" 2>/dev/null | sed -nE 's/^deepdream: ([0-9]+) done, 0 skipped, 0 failed$/\1/p' | awk '{s += $1} END {print s + 0}')
check "the tasks' 'done' add up to $total (got $sum)" test "$sum" = $total
for ((k = 0; k < n; k++)); do
  want=$(((total - k + n - 1) / n))
  got=$(sed -nE 's/^deepdream: ([0-9]+) done.*/\1/p' "$k.log" 2>/dev/null)
  check "task $k dreamed $want inputs (got '$got')" test "$got" = "$want"
done
if [ "$(files_of out 2>/dev/null)" = "$(files_of single)" ]; then
  pass
  bad=""
  while IFS= read -r f; do cmp -s "out/$f" "single/$f" || bad="$bad $f"; done < <(files_of single)
  check "the array's outputs = the single run's, byte for byte (differ:$bad)" test -z "$bad"
else
  fail "the array wrote other files: $(diff <(files_of out 2>/dev/null) <(files_of single) | grep '^[<>]' | tr '\n' ' ')"
fi
check "no temporary file left" test -z "$(find out -name '*.deepdream-*' 2>/dev/null)"

echo "test_slurm: $passed passed, $failed failed ($((SECONDS - start)) s)"
[ "$failed" = 0 ]
