# Sourced by smoke.sh and chaos.sh: the steps, checks and cleanup of a scripted run on the local
# cluster, and the set-up steps both share. Not meant to be run.
#
# The sourcing script sets RUN_NAME (SMOKE, CHAOS: how failures and the summary are labelled) and
# BIN, and has sourced bin/env.sh. After `harness_setup`, JOB_JAR, TEST_JSONL and MODEL_DIR are set.

RUN_LOG=$(tr '[:upper:]' '[:lower:]' <<<"$RUN_NAME")
T0=$(date +%s)
STEP="start"
SUMMARY=()
elapsed() {
    local s=$(($(date +%s) - T0))
    printf '%d:%02d' $((s / 60)) $((s % 60))
}
step() {
    STEP="$*"
    echo "[$(elapsed)] == $*"
}
ok() {
    echo "[$(elapsed)]    ok: $*"
    SUMMARY+=("$*")
}
fail() {
    echo "[$(elapsed)] $RUN_NAME FAILED at step '$STEP': $*" >&2
    exit 1
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if ((rc != 0)); then
        echo "---- errors in the logs ($VIGIL_LOG_DIR) ----" >&2
        for f in jobmanager.log taskmanager.log kafka.log flink-client.log; do
            [[ -f "$VIGIL_LOG_DIR/$f" ]] || continue
            grep -E ' (ERROR|FATAL) ' "$VIGIL_LOG_DIR/$f" | tail -n 5 | sed "s|^|$f: |" | cut -c1-300 >&2
        done
    fi
    echo "[$(elapsed)] == stopping every process of the run"
    "$BIN/stop-all.sh"
    local left=()
    for f in "$VIGIL_PID_DIR"/*.pid; do
        [[ -f "$f" ]] && alive "$(<"$f")" && left+=("$(basename "$f" .pid)")
    done
    if ((${#left[@]})); then
        echo "$RUN_NAME: still running after cleanup: ${left[*]}" >&2
        rc=1
    fi
    if ((rc == 0)); then
        echo
        echo "$RUN_NAME PASSED in $(elapsed) (work dir $VIGIL_WORK, logs in $VIGIL_LOG_DIR)"
        local s
        for s in "${SUMMARY[@]}"; do echo "  - $s"; done
    else
        echo "$RUN_NAME FAILED after $(elapsed) (exit $rc); logs in $VIGIL_LOG_DIR" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_until TIMEOUT_S WHAT COMMAND...: runs COMMAND every second until it succeeds.
wait_until() {
    local timeout=$1 what=$2 end
    shift 2
    end=$(($(date +%s) + timeout))
    until "$@"; do
        (($(date +%s) < end)) || fail "timed out after ${timeout}s waiting for $what"
        sleep 1
    done
}

rest() { "$BIN/flink-rest.py" "$@"; }

# counters JOB: fills the associative array C with the job's vigil counters (REST metrics).
declare -A C
counters() {
    local out name value
    out=$(rest counters "$1") || return 1
    C=()
    while read -r name value; do C[$name]=$value; done <<<"$out"
}
# all_accounted JOB N: the job has read N records (or more) and every record it read has ended in
# one place: scored, late/duplicate or dead letter (the scoring operator may lag the parser).
all_accounted() {
    counters "$1" && ((C[records_in] >= $2 && C[scored] + C[late] + C[dead_letters] >= C[records_in]))
}

job_state() { rest state "$1" 2>/dev/null || echo "UNKNOWN"; }
job_running() { # JOB: RUNNING with every task running; fails the run if the job ended
    local s
    s=$(job_state "$1")
    case "$s" in
        "RUNNING all-running") return 0 ;;
        FAILED* | FAILING* | CANCELED* | FINISHED* | SUSPENDED*)
            fail "job $1 is ${s%% *} instead of RUNNING: $(rest exceptions "$1" | head -n 3)" ;;
    esac
    return 1
}
job_in_state() { [[ "$(job_state "$1")" == "$2 "* ]]; }

# submit VAR ARGS...: flink run -d ARGS; puts the job id into VAR.
submit() {
    local var=$1 out id
    shift
    out=$("$BIN/flink" run -d "$@" 2>&1) || fail "flink run -d $* failed: $out"
    id=$(sed -n 's/.*JobID \([0-9a-f]\{32\}\).*/\1/p' <<<"$out" | tail -n 1)
    [[ -n "$id" ]] || fail "no JobID in the output of flink run: $out"
    printf -v "$var" '%s' "$id"
}

# consume TOPIC FILE [TIMEOUT_MS]: every committed record of TOPIC (read_committed), as
# "key<TAB>value" lines; the consumer ends after TIMEOUT_MS without a new record.
consume() {
    "$BIN/kafka-tool.sh" consume --topic "$1" --from-beginning --isolation-level read_committed \
        --timeout-ms "${3:-3000}" --formatter-property print.key=true \
        --formatter-property key.separator=$'\t' >"$2" 2>>"$VIGIL_LOG_DIR/${RUN_LOG}-consumers.err" ||
        fail "console consumer of $1 failed: see $VIGIL_LOG_DIR/${RUN_LOG}-consumers.err"
}
lines() { grep -c . "$1" || true; }

produce() { # FILE [TOPIC]: key<TAB>value lines (FILE - : standard input) -> TOPIC (telemetry)
    local in=$1
    [[ "$in" != - ]] || in=/dev/stdin
    "$BIN/kafka-tool.sh" produce --topic "${2:-telemetry}" --reader-property parse.key=true \
        --reader-property $'key.separator=\t' --request-required-acks all <"$in" \
        >>"$VIGIL_LOG_DIR/${RUN_LOG}-producers.out" 2>&1 ||
        fail "console producer failed: see $VIGIL_LOG_DIR/${RUN_LOG}-producers.out"
}

# The job's configuration of the run, $VIGIL_WORK/vigil.yaml: this cluster's broker, the test
# model, checkpoints every 2 s into the work dir, parallelism 2.
write_job_config() {
    cat >"$VIGIL_WORK/vigil.yaml" <<EOF
# Vigil job configuration of the $RUN_LOG run (flat YAML, README's configuration table)
vigil.kafka.bootstrap-servers: $VIGIL_KAFKA_BOOTSTRAP
vigil.model.dir: $MODEL_DIR
vigil.kafka.start-from: earliest
vigil.checkpoint.interval: 2 s
vigil.checkpoint.dir: file://$VIGIL_WORK/checkpoints
parallelism.default: 2
EOF
}

# Preflight, the cluster's jars, the job jar and the test data with its model.
harness_setup() {
    step "preflight"
    command -v "$JAVA_RUN" >/dev/null || fail "java not found"
    java_major=$("$JAVA_RUN" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
    ((${java_major:-0} >= 17)) || fail "Java 17 or newer needed, found ${java_major:-none}"
    command -v python3 >/dev/null || fail "python3 not found (used for the keyed input and the checks)"
    ok "Java $java_major, $(python3 --version 2>&1)"

    step "assemble the cluster from Maven artifacts (deploy/local/cluster/pom.xml)"
    "$BIN/assemble.sh"
    for jar in lib/flink-runtime-2.2.1.jar lib/flink-clients-2.2.1.jar lib/flink-streaming-java-2.2.1.jar \
        lib/flink-statebackend-rocksdb-2.2.1.jar lib/flink-runtime-web-2.2.1.jar lib/log4j-core-2.*.jar \
        lib/log4j-api-2.*.jar lib/log4j-slf4j-impl-2.*.jar lib/onnxruntime-1.28.0.jar \
        plugins/metrics-prometheus/flink-metrics-prometheus-2.2.1.jar \
        kafka-lib/kafka_2.13-4.2.0.jar kafka-lib/kafka-tools-4.2.0.jar kafka-lib/kafka-clients-4.2.0.jar; do
        compgen -G "$VIGIL_CLUSTER_DIR/$jar" >/dev/null || fail "missing $VIGIL_CLUSTER_DIR/$jar"
    done
    ok "cluster assembled: lib/ $(ls "$FLINK_LIB_DIR" | wc -l) jars (Flink 2.2.1, ONNX Runtime 1.28.0), kafka-lib/ $(ls "$KAFKA_LIB_DIR" | wc -l) jars (Kafka 4.2.0)"

    step "job jar"
    if [[ -n "${VIGIL_JOB_JAR:-}" ]]; then
        JOB_JAR="$VIGIL_JOB_JAR"
        [[ -f "$JOB_JAR" ]] || fail "VIGIL_JOB_JAR=$JOB_JAR does not exist"
    else
        JOB_JAR="$VIGIL_REPO_DIR/job/target/vigil-job-0.1.0-SNAPSHOT-flink.jar"
        if [[ ! -f "$JOB_JAR" ]]; then
            echo "building the job jar (mvn -B -q -DskipTests package)"
            (cd "$VIGIL_REPO_DIR" && mvn -B -q -DskipTests package) || fail "mvn package failed"
            [[ -f "$JOB_JAR" ]] || fail "mvn package did not produce $JOB_JAR"
        fi
    fi
    python3 -c 'import sys, zipfile; sys.exit("dev/vigil/job/VigilJob.class" not in zipfile.ZipFile(sys.argv[1]).namelist())' "$JOB_JAR" ||
        fail "$JOB_JAR does not contain dev.vigil.job.VigilJob"
    ok "job jar $JOB_JAR ($(($(stat -c %s "$JOB_JAR") / 1048576)) MB)"

    step "test data and model"
    TEST_JSONL="$VIGIL_REPO_DIR/testdata/generated/test.jsonl"
    MODEL_DIR="$VIGIL_REPO_DIR/testdata/model"
    if [[ ! -f "$TEST_JSONL" ]]; then
        echo "generating test data (./vigil testdata)"
        (cd "$VIGIL_REPO_DIR" && ./vigil testdata) || fail "./vigil testdata failed"
    fi
    [[ -s "$TEST_JSONL" ]] || fail "no $TEST_JSONL"
    [[ -f "$MODEL_DIR/model.onnx" && -f "$MODEL_DIR/model.json" ]] || fail "no model in $MODEL_DIR"
    V1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$MODEL_DIR/model.json")
    ok "test stream $(lines "$TEST_JSONL") records, model $V1"
}
