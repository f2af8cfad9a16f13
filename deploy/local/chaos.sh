#!/usr/bin/env bash
# Fault campaign of Vigil on the real standalone Flink 2.2.1 session cluster and Kafka 4.2 broker
# of deploy/local (separate processes on 127.0.0.1): the same live stream (the test fleet with
# every poison pill the job must survive inserted at 40 %) is fed at a steady rate into a fresh
# topic once per case, with one fault injected mid-stream:
#
#   reference                  no fault: what every other case must write
#   tm-kill-in-checkpoint      TaskManager SIGKILLed the moment a checkpoint is triggered
#   tm-kill-after-checkpoint   TaskManager SIGKILLed the moment a checkpoint completes, before
#                              (or while) the sinks commit its Kafka transactions
#   tm-kill-batch-buffered     batches held up to 1 min (4096 records): TaskManager SIGKILLed 1 s
#                              after a checkpoint, with records buffered in the scoring operator
#   broker-restart             the Kafka broker stopped (SIGTERM) 0.5 s after a checkpoint, with
#                              the sinks' transactions open, and started again 10 s later
#
# A killed TaskManager is replaced by a new one; the job recovers with its own default restart
# strategy (the cluster's is removed from this run's configuration). Each case reads its committed
# output with read_committed and counts, against the reference: records in, scored, late, dead
# letters, events out, duplicates and losses of events, scored steps and dead letters, and devices
# silenced (whose last record was not scored). The table goes to $VIGIL_WORK/chaos-report.md.
#
#   deploy/local/chaos.sh [--cases a,b,...] [--rate RECORDS_PER_S]
#
# Environment: VIGIL_JOB_JAR, VIGIL_WORK (default deploy/local/.work/chaos) as for smoke.sh.
# Exits 0 when every case accounted for every record with 0 duplicates, 0 lost and no device
# silenced; non-zero with "CHAOS FAILED at step ...: reason" otherwise. Stops every process it
# started on exit.
set -Eeuo pipefail

LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="$LOCAL_DIR/bin"
export VIGIL_WORK="${VIGIL_WORK:-$LOCAL_DIR/.work/chaos}"
# shellcheck source=bin/env.sh
. "$BIN/env.sh"

RUN_NAME=CHAOS
# shellcheck source=bin/harness.sh
. "$BIN/harness.sh"

ALL_CASES="tm-kill-in-checkpoint,tm-kill-after-checkpoint,tm-kill-batch-buffered,broker-restart"
CASES="$ALL_CASES"
RATE=2000
while (($#)); do
    case "$1" in
        --cases) CASES="$2"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        *) echo "usage: chaos.sh [--cases $ALL_CASES] [--rate RECORDS_PER_S]" >&2; exit 2 ;;
    esac
done
for c in ${CASES//,/ }; do
    [[ ",$ALL_CASES," == *",$c,"* ]] || fail "unknown case '$c' (known: $ALL_CASES)"
done

# ------------------------------------------------------------------------------------------------
harness_setup

step "work dir and configuration"
"$BIN/prepare.sh" --fresh
. "$BIN/env.sh" # the ports of this run
export VIGIL_REST_URL
# The job's own restart strategy (exponential delay, README), not the cluster's 3 attempts; a
# killed TaskManager noticed within seconds rather than after the default 50 s heartbeat timeout.
sed -i '/^restart-strategy/d' "$FLINK_CONF_DIR/config.yaml"
printf 'heartbeat.interval: 1000\nheartbeat.timeout: 8000\n' >>"$FLINK_CONF_DIR/config.yaml"
"$BIN/keyed.py" "$TEST_JSONL" "$VIGIL_WORK/stream" >/dev/null
N=$("$BIN/chaos.py" pills "$VIGIL_WORK/stream1.keyed" "$VIGIL_WORK/input.keyed")
write_job_config
ok "work dir $VIGIL_WORK; $N records (the test fleet and 14 poison pills) fed at $RATE records/s per case"

step "start Kafka, the JobManager and a TaskManager"
"$BIN/kafka-start.sh"
"$BIN/jobmanager.sh"
"$BIN/taskmanager.sh"
wait_port jobmanager "$VIGIL_REST_PORT" 90
tm_ready() { [[ "$(rest taskmanagers 2>/dev/null | awk '{s += $2} END {print s + 0}')" -ge 2 ]]; }
wait_until 90 "a TaskManager with 2 slots registered" tm_ready
ok "Kafka pid $(pid_of kafka), JobManager pid $(pid_of jobmanager), TaskManager pid $(pid_of taskmanager)"

# ---------------------------------------------------------------------------------- the faults
# Each runs while the stream is fed, starting a third of the way in, and prints what it did.
FEED_S=$(((N + RATE - 1) / RATE))
JM_LOG="$VIGIL_LOG_DIR/jobmanager.log"

kill_tm_on() { # REGEX DELAY_MS: SIGKILL on that JobManager log line, then a new TaskManager
    sleep $((FEED_S / 3))
    local r0 t0
    r0=$(rest restarts "$JOB")
    "$BIN/chaos.py" kill-on "$1" "$JM_LOG" "$(pid_of taskmanager)" "$2" ||
        fail "could not kill the TaskManager"
    t0=$SECONDS
    "$BIN/taskmanager.sh" 2>>"$VIGIL_LOG_DIR/chaos-cli.out"
    failed_over() { (($(rest restarts "$JOB") > r0)); }
    wait_until 120 "job $JOB to fail over from the lost TaskManager" failed_over
    echo "the job failed over $((SECONDS - t0)) s after the kill"
    wait_until 180 "job $JOB RUNNING again on the new TaskManager" job_running "$JOB"
    echo "and was RUNNING again on a new TaskManager $((SECONDS - t0)) s after it"
}
fault_tm_kill_in_checkpoint() { kill_tm_on "Triggering checkpoint [0-9]+ .* for job $JOB" 0; }
fault_tm_kill_after_checkpoint() { kill_tm_on "Completed checkpoint [0-9]+ for job $JOB" 0; }
fault_tm_kill_batch_buffered() { kill_tm_on "Completed checkpoint [0-9]+ for job $JOB" 1000; }
fault_broker_restart() {
    sleep $((FEED_S / 3))
    local pid
    pid=$(pid_of kafka) || fail "Kafka is not running"
    "$BIN/chaos.py" kill-on "Completed checkpoint [0-9]+ for job $JOB" "$JM_LOG" "$pid" 500 TERM ||
        fail "could not stop Kafka"
    local i
    for ((i = 0; i < 60; i++)); do alive "$pid" || break; sleep 0.5; done
    alive "$pid" && fail "Kafka still runs 30 s after SIGTERM"
    echo "broker down at $(date +%T.%3N)"
    sleep 10
    "$BIN/kafka-start.sh" 2>>"$VIGIL_LOG_DIR/chaos-cli.out"
    echo "broker up again at $(date +%T.%3N)"
}

# ------------------------------------------------------------------------------------ the cases
TOPICS=(telemetry:4 anomalies:2 dead-letters:1 scores:2)
committed_all() { # DIR NAME: every record produced is in the committed output
    consume "scores-$2" "$1/scores.tsv" 3000
    consume "dead-letters-$2" "$1/dead-letters.tsv" 2000
    (($(lines "$1/scores.tsv") + $(lines "$1/dead-letters.tsv") >= N))
}

run_case() { # NAME FAULT WHAT [flink run args...]
    local name=$1 fault=$2 what=$3 dir="$VIGIL_WORK/cases/$1" spec feeder note="" cp0
    shift 3
    mkdir -p "$dir"
    step "case $name: $what"
    for spec in "${TOPICS[@]}"; do
        "$BIN/kafka-tool.sh" topics --create --topic "${spec%:*}-$name" --partitions "${spec#*:}" \
            --replication-factor 1 >>"$VIGIL_LOG_DIR/chaos-topics.out" 2>&1 ||
            fail "topic ${spec%:*}-$name not created: see $VIGIL_LOG_DIR/chaos-topics.out"
    done
    submit JOB "$JOB_JAR" --config "$VIGIL_WORK/vigil.yaml" \
        -Dvigil.kafka.group-id="vigil-$name" -Dvigil.kafka.transactional-id-prefix="vigil-$name" \
        -Dvigil.kafka.topic.telemetry="telemetry-$name" -Dvigil.kafka.topic.anomalies="anomalies-$name" \
        -Dvigil.kafka.topic.dead-letters="dead-letters-$name" -Dvigil.kafka.topic.scores="scores-$name" "$@"
    wait_until 90 "job $JOB RUNNING" job_running "$JOB"
    "$BIN/chaos.py" feed "$RATE" "$VIGIL_WORK/input.keyed" | produce - "telemetry-$name" &
    feeder=$!
    if [[ "$fault" != none ]]; then
        note=$("fault_${fault//-/_}")
        echo "    $note"
    fi
    wait "$feeder" || fail "the producer of telemetry-$name failed: see $VIGIL_LOG_DIR/chaos-producers.out"
    wait_until 300 "the committed output of job $JOB to account for all $N records" committed_all "$dir" "$name"
    cp0=$(rest checkpoints "$JOB")
    checkpoints_after() { (($(rest checkpoints "$JOB") >= cp0 + 2)); }
    wait_until 60 "two more completed checkpoints of job $JOB" checkpoints_after
    consume "anomalies-$name" "$dir/anomalies.tsv" 2000
    committed_all "$dir" "$name" || true
    local restarts checkpoint_max
    restarts=$(rest restarts "$JOB")
    checkpoint_max=$(rest checkpoint-max "$JOB")
    "$BIN/flink" cancel "$JOB" >>"$VIGIL_LOG_DIR/chaos-cli.out" 2>&1 || fail "flink cancel $JOB failed"
    wait_until 60 "job $JOB CANCELED" job_in_state "$JOB" CANCELED
    python3 -c 'import json, sys; print(json.dumps({"fault": sys.argv[1], "restarts": int(sys.argv[2]), "longest_checkpoint_ms": int(sys.argv[3]), "note": sys.argv[4], "job": sys.argv[5]}))' \
        "$what" "$restarts" "$checkpoint_max" "$note" "$JOB" >"$dir/case.json"
    local ref=()
    [[ "$name" == reference ]] || ref=("$VIGIL_WORK/cases/reference")
    local summary
    summary=$("$BIN/chaos.py" tally "$dir" "$VIGIL_WORK/input.keyed" "${ref[@]}") ||
        fail "case $name: $summary"
    ok "case $name ($restarts restarts, longest checkpoint $checkpoint_max ms): $summary"
    CASE_DIRS+=("$dir")
}

CASE_DIRS=()
run_case reference none "none"
for c in ${CASES//,/ }; do
    case "$c" in
        tm-kill-in-checkpoint) run_case "$c" "$c" "TaskManager SIGKILL when a checkpoint is triggered" ;;
        tm-kill-after-checkpoint) run_case "$c" "$c" "TaskManager SIGKILL when a checkpoint completes" ;;
        tm-kill-batch-buffered)
            run_case "$c" "$c" "TaskManager SIGKILL 1 s after a checkpoint, batches of 4096 held up to 1 min" \
                -Dvigil.scoring.batch-size=4096 -Dvigil.scoring.batch-timeout="1 min" ;;
        broker-restart) run_case "$c" "$c" "Kafka broker stopped 0.5 s after a checkpoint, started 10 s later" ;;
    esac
done

step "report"
"$BIN/chaos.py" report "$VIGIL_WORK/chaos-report.md" "${CASE_DIRS[@]}"
ok "table in $VIGIL_WORK/chaos-report.md"
