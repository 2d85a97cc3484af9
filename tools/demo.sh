#!/bin/sh
# make demo: runs the two examples and a short `airssys-run --procfile`
# session (a few seconds, then SIGTERM). Each must exit 0, and afterwards no
# process of theirs may be left: every process they start inherits
# AIRSSYS_DEMO=<this script's pid> (setsid does not drop it), so the check
# is a scan of /proc for that entry.
set -u
bin=${1:?usage: tools/demo.sh BUILD/bin}
here=$(cd "$(dirname "$0")/.." && pwd)
AIRSSYS_DEMO=$$
export AIRSSYS_DEMO
failed=0

step() {
  printf '\n==== %s\n' "$*"
}

check_status() {
  if [ "$2" -ne 0 ]; then
    echo "demo: $1 exited with status $2" >&2
    failed=1
  fi
}

step "examples/supervised_workers"
"$bin/supervised_workers"
check_status supervised_workers $?

step "examples/process_pool"
"$bin/process_pool"
check_status process_pool $?

step "airssys-run --procfile examples/Procfile.demo --restart always (SIGTERM after 4 s)"
"$bin/airssys-run" --procfile "$here/examples/Procfile.demo" --restart always --max-restarts 10 \
  --kill-timeout 500 &
run=$!
sleep 4
kill -TERM "$run"
wait "$run"
check_status airssys-run $?

step "process table"
# One grep per process, from this shell: a grep never reads its own environ
# (every pid listed existed before it started).
left=""
for f in /proc/[0-9]*/environ; do
  pid=${f#/proc/}
  pid=${pid%/environ}
  [ "$pid" = "$$" ] && continue
  if grep -qsxz "AIRSSYS_DEMO=$$" "$f"; then left="$left $pid"; fi
done
zombies=$(ps -o pid=,stat= --ppid $$ 2>/dev/null | awk '$2 ~ /^Z/' || true)
if [ -n "$left" ] || [ -n "$zombies" ]; then
  echo "demo: processes left behind:" >&2
  echo "$left $zombies" >&2
  failed=1
else
  echo "nothing left: no process carries AIRSSYS_DEMO=$$, and no child of the demo is unreaped"
fi
exit $failed
