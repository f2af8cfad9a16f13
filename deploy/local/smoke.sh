#!/usr/bin/env bash
# Smoke test of Vigil on a real standalone Flink 2.2.1 session cluster and a real Kafka 4.2 broker,
# separate processes on 127.0.0.1, doing what an operator does and checking every step
# (deploy/local/README.md):
#
#   assemble the cluster from Maven Central -> job jar -> test data -> start Kafka, create topics
#   -> start JobManager + TaskManager -> flink run -d (model v1, with model v2 as its shadow)
#   -> produce the first half of test.jsonl -> Prometheus scrapes the cluster's reporter: the
#   job's counts, the shadow's, drift gauges and the two models' score correlation
#   -> anomalies visible to a read_committed consumer -> flink stop --savepointPath
#   -> vigil inspect-savepoint (24 devices) -> vigil promote-shadow -> flink run -d -s PROMOTED
#   (model v2 serving, v1 its shadow and a canary of half the devices) -> produce the second
#   half -> no device reset (warm) -> read_committed, on the anomalies and the shadow topic: OPEN
#   and CLOSE, no duplicate event_id, both model versions, each episode opened and closed on its
#   topic, v2 alerting only for the control devices, counts match (per arm too)
#   -> cancel and resubmit twice on the same TaskManager (ONNX Runtime loaded once, parent-first)
#   -> stop everything.
#
# Environment:
#   VIGIL_JOB_JAR   the shaded job jar to submit; unset: job/target/vigil-job-*-flink.jar, built
#                   with `mvn -B -q -DskipTests package` at the repository root if missing
#   VIGIL_WORK      work dir of the run (deleted and made again), default deploy/local/.work/smoke
#
# Exits 0 when every check passed, non-zero with "SMOKE FAILED at step ...: reason" otherwise.
# Every process it starts is recorded in $VIGIL_WORK/pids and stopped on exit, failure included.
set -Eeuo pipefail

LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="$LOCAL_DIR/bin"
export VIGIL_WORK="${VIGIL_WORK:-$LOCAL_DIR/.work/smoke}"
# shellcheck source=bin/env.sh
. "$BIN/env.sh"

RUN_NAME=SMOKE
# shellcheck source=bin/harness.sh
. "$BIN/harness.sh"

# ------------------------------------------------------------------------------------------------
harness_setup
command -v prometheus >/dev/null ||
    fail "prometheus not found: apt-get install prometheus (the smoke test scrapes the cluster with it)"
V2="${V1/+/-smoke-v2+}"
[[ "$V2" != "$V1" ]] || V2="$V1-smoke-v2"

step "work dir and configuration"
VIGIL_PROMETHEUS=1 "$BIN/prepare.sh" --fresh # with Flink's Prometheus reporter
. "$BIN/env.sh" # the ports of this run
export VIGIL_REST_URL
read -r N1 N2 < <("$BIN/keyed.py" "$TEST_JSONL" "$VIGIL_WORK/half" 2)
TOTAL=$((N1 + N2))
write_job_config
printf '# drift gauges within the first half\nvigil.drift.window-steps: 1000\n' >>"$VIGIL_WORK/vigil.yaml"
ok "work dir $VIGIL_WORK; input split into $N1 + $N2 keyed records"

step "start Kafka (KRaft, single node)"
"$BIN/kafka-start.sh"
ok "Kafka 4.2.0 broker pid $(pid_of kafka) on $VIGIL_KAFKA_BOOTSTRAP"

step "create topics"
topic_pids=()
for spec in telemetry:4 anomalies:2 anomalies-shadow:2 dead-letters:1 anomalies-resubmit:2 dead-letters-resubmit:1; do
    "$BIN/kafka-tool.sh" topics --create --topic "${spec%:*}" --partitions "${spec#*:}" \
        --replication-factor 1 >"$VIGIL_LOG_DIR/topic-${spec%:*}.out" 2>&1 &
    topic_pids+=($!)
done
for p in "${topic_pids[@]}"; do wait "$p" || true; done
for spec in telemetry anomalies anomalies-shadow dead-letters anomalies-resubmit dead-letters-resubmit; do
    grep -q "Created topic $spec" "$VIGIL_LOG_DIR/topic-$spec.out" ||
        fail "topic $spec not created: $(cat "$VIGIL_LOG_DIR/topic-$spec.out")"
done
ok "topics telemetry (4 partitions), anomalies (2), anomalies-shadow (2), dead-letters (1), anomalies-resubmit (2), dead-letters-resubmit (1)"

step "start the Flink session cluster (JobManager + 1 TaskManager)"
"$BIN/jobmanager.sh"
"$BIN/taskmanager.sh"
wait_port jobmanager "$VIGIL_REST_PORT" 90
tm_ready() { [[ "$(rest taskmanagers 2>/dev/null | awk '{print $2}')" == "2" ]]; }
wait_until 90 "one TaskManager with 2 slots registered" tm_ready
TM_ID=$(rest taskmanagers | awk '{print $1}')
TM_PID=$(pid_of taskmanager) || fail "TaskManager process died"
ok "Flink 2.2.1 JobManager pid $(pid_of jobmanager) (REST $VIGIL_REST_URL), TaskManager pid $TM_PID ($TM_ID, 2 slots)"

step "submit the job (model $V1, with $V2 as its shadow)"
# The candidate: the same weights under another version (the shadow's state then equals the
# serving state step for step, which the checks below use)
rm -rf "$VIGIL_WORK/model-v2"
cp -r "$MODEL_DIR" "$VIGIL_WORK/model-v2"
python3 - "$VIGIL_WORK/model-v2/model.json" "$V2" <<'EOF'
import json, sys
path, version = sys.argv[1], sys.argv[2]
card = json.load(open(path))
card["version"] = version
json.dump(card, open(path, "w"), indent=2)
EOF
submit JOB1 "$JOB_JAR" --config "$VIGIL_WORK/vigil.yaml" \
    -Dvigil.model.shadow.dir="$VIGIL_WORK/model-v2"
wait_until 90 "job $JOB1 RUNNING" job_running "$JOB1"
ok "job 1 $JOB1 RUNNING, shadow model $V2"

step "produce the first half ($N1 records) into telemetry"
produce "$VIGIL_WORK/half1.keyed"
wait_until 180 "job 1 to read and account for $N1 records" all_accounted "$JOB1" "$N1"
((C[records_in] == N1)) || fail "job 1 read ${C[records_in]} records, $N1 were produced"
((C[records_in] == C[scored] + C[late] + C[dead_letters])) ||
    fail "job 1: records_in ${C[records_in]} != scored ${C[scored]} + late ${C[late]} + dead letters ${C[dead_letters]}"
((C[shadow_scored] == C[scored])) || fail "job 1: the shadow scored ${C[shadow_scored]} steps, the serving model ${C[scored]}"
ok "job 1 read $N1 records: scored ${C[scored]} + late ${C[late]} + dead letters ${C[dead_letters]}; the shadow scored ${C[shadow_scored]}"

step "Prometheus scrapes the cluster: the job's counts and drift gauges"
PROM_PORT=19290
while port_open "$PROM_PORT"; do PROM_PORT=$((PROM_PORT + 1)); done
cat >"$VIGIL_WORK/conf/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["$LOCAL_DIR/../prometheus/alerts.yaml"] # the fleet's drift index is recorded there
scrape_configs:
  - job_name: flink # the JobManager's and the TaskManager's reporter
    static_configs:
      - targets: ["127.0.0.1:$VIGIL_PROM_PORT", "127.0.0.1:$((VIGIL_PROM_PORT + 1))"]
EOF
start_daemon prometheus prometheus --config.file="$VIGIL_WORK/conf/prometheus.yml" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --storage.tsdb.path="$VIGIL_WORK/prometheus"
wait_port prometheus "$PROM_PORT" 30
prom() { # PROMQL -> the value of its one series, or nothing
    curl -sf --get "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
        python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if len(r) == 1 else "")'
}
M="flink_taskmanager_job_task_operator_vigil"
J="job_id=\"$JOB1\""
FEATURES=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["features"]))' "$MODEL_DIR/model.json")
BINS=$(python3 -c 'import json, sys; print(sum(len((f.get("bins") or {}).get("shares", [])) for f in json.load(open(sys.argv[1]))["features"]))' "$MODEL_DIR/model.json")
counters "$JOB1"
scraped() {
    [[ "$(prom "sum(${M}_records_in{$J})")" == "${C[records_in]}" &&
        "$(prom "sum(${M}_scored{$J})")" == "${C[scored]}" &&
        "$(prom "sum(${M}_shadow_scored{$J})")" == "${C[shadow_scored]}" &&
        "$(prom "count(${M}_shadow_score_correlation{$J} > 0.999)")" == 2 &&
        "$(prom "count(${M}_feature_drift_psi{$J} >= 0)")" == "$((2 * FEATURES))" &&
        "$(prom "count(${M}_feature_bin_drift_bin_steps{$J} >= 0)")" == "$((2 * BINS))" &&
        "$(prom "count(${M}_feature_bin_drift_bin_expected_share{$J} >= 0)")" == "$((2 * BINS))" &&
        "$(prom "count(vigil:feature_drift_psi:fleet)")" == "$FEATURES" &&
        "$(prom "count(${M}_feature_drift_mean_shift_std{$J} > -1e9)")" == "$((2 * FEATURES))" &&
        "$(prom "count(${M}_drift_score_share_above_q99{$J} >= 0)")" == 2 &&
        "$(prom "count(${M}_silence_watch_lag_ms{$J} >= 0)")" == 2 &&
        "$(prom "count(${M}_episode_open_longest_ms{$J} >= 0)")" == 2 ]]
}
wait_until 60 "Prometheus to hold job 1's counts, drift gauges, score correlation, silence-watch lag and open-episode age" scraped
ok "Prometheus 127.0.0.1:$PROM_PORT scraped the reporters: records_in ${C[records_in]}, scored ${C[scored]} and shadow_scored ${C[shadow_scored]}, as the job counted; the two models' score correlation $(prom "min(${M}_shadow_score_correlation{$J})") (the same weights); drift_psi and drift_mean_shift_std for $FEATURES features x 2 subtasks (largest PSI $(prom "max(${M}_feature_drift_psi{$J})"); the fleet's recorded for $FEATURES features from $BINS bins' step counters, NaN until steps are counted within its 30 minutes: $(prom "max(vigil:feature_drift_psi:fleet)")), drift_score_share_above_q99 $(prom "avg(${M}_drift_score_share_above_q99{$J})") (mean of 2 subtasks), silence_watch_lag_ms $(prom "max(${M}_silence_watch_lag_ms{$J})") (the later of 2 subtasks), episode_open_longest_ms $(prom "max(${M}_episode_open_longest_ms{$J})") (the older of 2 subtasks)"

step "wait for anomalies visible to a read_committed consumer"
anomalies_visible() {
    consume anomalies "$VIGIL_WORK/anomalies-1.tsv" 2000
    (($(lines "$VIGIL_WORK/anomalies-1.tsv") > 0))
}
wait_until 90 "anomaly events committed to 'anomalies'" anomalies_visible
ok "$(lines "$VIGIL_WORK/anomalies-1.tsv") anomaly events committed while job 1 runs"

step "stop job 1 with a savepoint"
counters "$JOB1"
declare -A J1
for k in "${!C[@]}"; do J1[$k]=${C[$k]}; done
out=$("$BIN/flink" stop --savepointPath "$VIGIL_WORK/savepoints" "$JOB1" 2>&1) ||
    fail "flink stop failed: $out"
SAVEPOINT=$(sed -n 's/.*Savepoint completed\. Path: \(.*\)$/\1/p' <<<"$out" | tail -n 1)
[[ -n "$SAVEPOINT" ]] || fail "no savepoint path in the output of flink stop: $out"
[[ -f "${SAVEPOINT#file:}/_metadata" ]] || fail "savepoint $SAVEPOINT has no _metadata"
wait_until 30 "job 1 FINISHED" job_in_state "$JOB1" FINISHED
ok "job 1 stopped (FINISHED) with savepoint ${SAVEPOINT#file:} ($(du -sh "${SAVEPOINT#file:}" | cut -f1))"

step "inspect the savepoint"
inspect=$("$VIGIL_REPO_DIR/vigil" inspect-savepoint "${SAVEPOINT#file:}" 2>&1 >"$VIGIL_WORK/inspect.csv") ||
  fail "vigil inspect-savepoint failed: $inspect"
devices=$(($(wc -l <"$VIGIL_WORK/inspect.csv") - 1))
[[ "$devices" -eq 24 ]] || fail "inspect-savepoint found $devices devices, the fleet has 24: $inspect"
ok "inspect-savepoint: $(grep -o "[0-9]* devices in .*" <<<"$inspect")"

step "promote the shadow"
promote=$("$VIGIL_REPO_DIR/vigil" promote-shadow "${SAVEPOINT#file:}" --out "$VIGIL_WORK/promoted" 2>&1) ||
  fail "vigil promote-shadow failed: $promote"
grep -q "the shadow's state of 24 devices" <<<"$promote" || fail "promote-shadow did not promote 24 devices: $promote"
ok "promote-shadow: $(head -n 1 <<<"$promote" | sed 's/^wrote [^ ]* from [^ ]*: //')"

step "second build: model $V2 serving, $V1 its shadow and serving a canary, from the promoted savepoint"
CANARY=0.5
submit JOB2 -s "$VIGIL_WORK/promoted" "$JOB_JAR" --config "$VIGIL_WORK/vigil.yaml" \
    -Dvigil.model.dir="$VIGIL_WORK/model-v2" -Dvigil.model.shadow.dir="$MODEL_DIR" \
    -Dvigil.model.canary.fraction=$CANARY
wait_until 90 "job $JOB2 RUNNING" job_running "$JOB2"
ok "job 2 $JOB2 RUNNING from the promoted savepoint: model $V2 serving, $V1 its shadow, which serves a canary of $CANARY of the devices"

step "produce the second half ($N2 records) into telemetry"
produce "$VIGIL_WORK/half2.keyed"
wait_until 180 "job 2 to read and account for $N2 records" all_accounted "$JOB2" "$N2"
((C[records_in] == N2)) ||
    fail "job 2 read ${C[records_in]} records, $N2 were produced after the savepoint (offsets not restored?)"
((C[records_in] == C[scored] + C[late] + C[dead_letters])) ||
    fail "job 2: records_in ${C[records_in]} != scored ${C[scored]} + late ${C[late]} + dead letters ${C[dead_letters]}"
((C[scored_by_arm_canary] > 0 && C[scored_by_arm_control] > 0 &&
    C[scored_by_arm_canary] + C[scored_by_arm_control] == C[scored])) ||
    fail "job 2: steps per arm canary ${C[scored_by_arm_canary]} + control ${C[scored_by_arm_control]} != scored ${C[scored]}"
((C[resets_model_change] == 0 && C[shadow_resets_model_change] == 0)) ||
    fail "job 2 reset devices for a model change (serving ${C[resets_model_change]}, shadow ${C[shadow_resets_model_change]}): the promoted state should have been each model's own"
declare -A J2
for k in "${!C[@]}"; do J2[$k]=${C[$k]}; done
ok "job 2 read exactly the $N2 new records (1 + 2 = $TOTAL, no loss, no re-read): scored ${C[scored]} + late ${C[late]} + dead letters ${C[dead_letters]} (canary ${C[scored_by_arm_canary]}, control ${C[scored_by_arm_control]}); no device reset: each model kept the memory it built (resets_model_change 0, shadow 0)"

step "Prometheus records the fleet's drift index from the steps job 2 counted while it scored"
fleet_drift() { [[ "$(prom "count(vigil:feature_drift_psi:fleet >= 0)")" == "$FEATURES" ]]; }
wait_until 60 "the fleet's drift index of every feature recorded" fleet_drift
ok "vigil:feature_drift_psi:fleet for $FEATURES features, largest $(prom "max(vigil:feature_drift_psi:fleet)") (the subtasks' own last windows: largest $(prom "max(${M}_feature_drift_psi{job_id=\"$JOB2\"})"))"

step "check the committed output (read_committed)"
cp0=$(rest checkpoints "$JOB2")
checkpoints_after() { (($(rest checkpoints "$JOB2") >= cp0 + 2)); }
wait_until 60 "two more completed checkpoints of job 2" checkpoints_after
consume anomalies "$VIGIL_WORK/anomalies.tsv" 4000
consume anomalies-shadow "$VIGIL_WORK/anomalies-shadow.tsv" 4000
# The OPENs of the model serving a device go to anomalies, the other's to anomalies-shadow: job 1's
# serving model's and job 2's per arm. At the promotion an episode open on one topic is closed
# there (handed over), so CLOSEs are no counter's sum. In job 2, $V2 serves the control devices
# only: its OPENs on anomalies, and $V1's on anomalies-shadow, are of control devices.
OPENED=$((J1[episodes_opened] + J2[episodes_opened_by_arm_canary] + J2[episodes_opened_by_arm_control]))
if ! check=$("$BIN/check-anomalies.py" "$VIGIL_WORK/anomalies.tsv" "$V1" "$V2" "$OPENED" - \
    --control-only "$V2" "$CANARY"); then
    fail "anomalies topic: $check"
fi
ok "anomalies: $check"
OPENED=$((J1[shadow_episodes_opened] + J2[episodes_opened] + J2[shadow_episodes_opened] - J2[episodes_opened_by_arm_canary] - J2[episodes_opened_by_arm_control]))
if ! check=$("$BIN/check-anomalies.py" "$VIGIL_WORK/anomalies-shadow.tsv" "$V2" "$V1" "$OPENED" - \
    --control-only "$V1" "$CANARY"); then
    fail "anomalies-shadow topic: $check"
fi
ok "anomalies-shadow: $check"
consume dead-letters "$VIGIL_WORK/dead-letters.tsv" 2000
DL=$(lines "$VIGIL_WORK/dead-letters.tsv")
# The parser's dead letters and the scorer's late and duplicate records share the topic.
DLC=$((J1[dead_letters] + J1[late] + J2[dead_letters] + J2[late]))
((DL == DLC)) || fail "dead-letters holds $DL records, the jobs counted $DLC (dead letters + late)"
ok "dead-letters: $DL records, as counted"

step "cancel job 2"
"$BIN/flink" cancel "$JOB2" >>"$VIGIL_LOG_DIR/smoke-cli.out" 2>&1 || fail "flink cancel $JOB2 failed"
wait_until 30 "job 2 CANCELED" job_in_state "$JOB2" CANCELED
ok "job 2 CANCELED"

RESUBMITTED=()
for i in 1 2; do
    step "resubmit #$i on the same session cluster (fresh state, replay from earliest)"
    submit JOB "$JOB_JAR" --config "$VIGIL_WORK/vigil.yaml" \
        -Dvigil.kafka.group-id="vigil-resubmit-$i" -Dvigil.kafka.start-from=earliest \
        -Dvigil.kafka.topic.anomalies=anomalies-resubmit \
        -Dvigil.kafka.topic.dead-letters=dead-letters-resubmit \
        -Dvigil.kafka.transactional-id-prefix="vigil-resubmit-$i"
    wait_until 90 "resubmitted job $JOB RUNNING" job_running "$JOB"
    wait_until 180 "resubmitted job $JOB to read and account for the whole stream" all_accounted "$JOB" "$TOTAL"
    ((C[records_in] == TOTAL)) || fail "resubmitted job $JOB read ${C[records_in]} records, the topic holds $TOTAL"
    ((C[scored] > 0)) || fail "resubmitted job $JOB scored nothing"
    job_running "$JOB" || fail "resubmitted job $JOB is not RUNNING after reading"
    exc=$(rest exceptions "$JOB")
    [[ -z "$exc" ]] || fail "resubmitted job $JOB had failures: $exc"
    [[ "$(rest taskmanagers | awk '{print $1}')" == "$TM_ID" ]] || fail "the TaskManager changed: $(rest taskmanagers)"
    alive "$TM_PID" || fail "TaskManager pid $TM_PID died"
    ok "resubmit #$i: job $JOB RUNNING on TaskManager $TM_ID (pid $TM_PID), read ${C[records_in]}, scored ${C[scored]} through ONNX Runtime, no failures"
    "$BIN/flink" cancel "$JOB" >>"$VIGIL_LOG_DIR/smoke-cli.out" 2>&1 || fail "flink cancel $JOB failed"
    wait_until 30 "job $JOB CANCELED" job_in_state "$JOB" CANCELED
    RESUBMITTED+=("$JOB")
done

step "ONNX Runtime's native library in the TaskManager"
if grep -E 'already loaded in another classloader|UnsatisfiedLinkError' "$VIGIL_LOG_DIR"/taskmanager.log* >/dev/null 2>&1; then
    fail "native library clash in the TaskManager log: $(grep -m1 -E 'already loaded in another classloader|UnsatisfiedLinkError' "$VIGIL_LOG_DIR"/taskmanager.log*)"
fi
if [[ -r "/proc/$TM_PID/maps" ]]; then
    ORT_COPIES=$(awk '$6 ~ /libonnxruntime\.so$/ {print $6}' "/proc/$TM_PID/maps" | sort -u | wc -l)
    ((ORT_COPIES == 1)) || fail "the TaskManager maps $ORT_COPIES copies of libonnxruntime.so (expected 1, parent-first)"
    ok "4 jobs ran on one TaskManager; libonnxruntime.so mapped once (parent-first ai.onnxruntime from lib/); no UnsatisfiedLinkError"
else
    ok "4 jobs ran on one TaskManager; no UnsatisfiedLinkError in its log"
fi

step "done"
SUMMARY+=("jobs: 1 $JOB1 (model v1 with v2 as shadow, stopped with savepoint), 2 $JOB2 (v2 promoted, v1 its shadow serving a canary of $CANARY, from the promoted savepoint, cancelled), resubmits ${RESUBMITTED[*]} (cancelled)")
