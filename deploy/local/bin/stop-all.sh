#!/usr/bin/env bash
# Stops every process recorded in $VIGIL_WORK/pids (TaskManager, JobManager, then Kafka): SIGTERM,
# up to 20 s to exit, then SIGKILL. Only those pids, never by name.
set -uo pipefail
. "$(dirname "$0")/env.sh"

stop_one() {
    local name=$1 pid i
    pid=$(pid_of "$name") || { rm -f "$VIGIL_PID_DIR/$name.pid"; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 40; i++)); do
        alive "$pid" || break
        sleep 0.5
    done
    if alive "$pid"; then
        vlog "$name (pid $pid) still runs after 20 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null
        sleep 0.5
    fi
    alive "$pid" && { vlog "cannot stop $name (pid $pid)"; return 1; }
    rm -f "$VIGIL_PID_DIR/$name.pid"
    vlog "stopped $name (pid $pid)"
}

rc=0
ordered=(taskmanager jobmanager kafka)
for f in "$VIGIL_PID_DIR"/*.pid; do # anything else recorded, first
    [[ -f "$f" ]] || continue
    name=$(basename "$f" .pid)
    [[ " ${ordered[*]} " == *" $name "* ]] || ordered=("$name" "${ordered[@]}")
done
for name in "${ordered[@]}"; do
    stop_one "$name" || rc=1
done
exit $rc
