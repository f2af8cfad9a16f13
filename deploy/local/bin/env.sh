# Sourced by every script in deploy/local/bin: paths, ports, JVM options and small helpers.
# Not meant to be run.
#
# Overridable from the environment:
#   VIGIL_WORK           the run's work dir (config, logs, pids, Kafka data, checkpoints, savepoints)
#                        default deploy/local/.work/run
#   VIGIL_CLUSTER_DIR    the assembled jars (bin/assemble.sh), default deploy/local/.cluster
#   VIGIL_KAFKA_PORT, VIGIL_KAFKA_CONTROLLER_PORT, VIGIL_JM_RPC_PORT, VIGIL_BLOB_PORT,
#   VIGIL_TM_RPC_PORT, VIGIL_REST_PORT, VIGIL_PROM_PORT (first of two)
#                        preferred ports; bin/prepare.sh moves a busy one up to the next free port
#                        and records the ports of the run in $VIGIL_WORK/ports.env

VIGIL_LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VIGIL_REPO_DIR="$(cd "$VIGIL_LOCAL_DIR/../.." && pwd)"
VIGIL_CLUSTER_DIR="${VIGIL_CLUSTER_DIR:-$VIGIL_LOCAL_DIR/.cluster}"
VIGIL_WORK="${VIGIL_WORK:-$VIGIL_LOCAL_DIR/.work/run}"
export VIGIL_WORK VIGIL_CLUSTER_DIR

FLINK_LIB_DIR="$VIGIL_CLUSTER_DIR/lib"
KAFKA_LIB_DIR="$VIGIL_CLUSTER_DIR/kafka-lib"
# Flink finds its plugins (the Prometheus reporter) and its configuration through these.
export FLINK_PLUGINS_DIR="$VIGIL_CLUSTER_DIR/plugins"
export FLINK_CONF_DIR="$VIGIL_WORK/conf"
VIGIL_LOG_DIR="$VIGIL_WORK/logs"
VIGIL_PID_DIR="$VIGIL_WORK/pids"

# ONNX Runtime's telemetry can crash JVMs with long command lines (DESIGN.md): off in every JVM
# started from here, the TaskManager's above all.
export ORT_DISABLE_TELEMETRY=1

if [[ -f "$VIGIL_WORK/ports.env" ]]; then
    # shellcheck disable=SC1091
    . "$VIGIL_WORK/ports.env"
fi
: "${VIGIL_KAFKA_PORT:=19092}"
: "${VIGIL_KAFKA_CONTROLLER_PORT:=19093}"
: "${VIGIL_JM_RPC_PORT:=16123}"
: "${VIGIL_BLOB_PORT:=16124}"
: "${VIGIL_TM_RPC_PORT:=16125}"
: "${VIGIL_REST_PORT:=18081}"
: "${VIGIL_PROM_PORT:=19249}"
VIGIL_KAFKA_BOOTSTRAP="127.0.0.1:$VIGIL_KAFKA_PORT"
VIGIL_REST_URL="http://127.0.0.1:$VIGIL_REST_PORT"

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    JAVA_RUN="$JAVA_HOME/bin/java"
else
    JAVA_RUN=java
fi

# JVM options of short-lived command line JVMs (flink CLI, Kafka tools): quick start, small heap.
: "${VIGIL_TOOL_JVM_OPTS:=-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss1m}"

vlog() { echo "[vigil-local] $*" >&2; }
vdie() { echo "[vigil-local] ERROR: $*" >&2; exit 1; }

require_cluster() {
    local missing=()
    local jar
    for jar in "$FLINK_LIB_DIR"/flink-runtime-2.*.jar "$FLINK_LIB_DIR"/flink-clients-2.*.jar \
        "$FLINK_LIB_DIR"/onnxruntime-*.jar "$KAFKA_LIB_DIR"/kafka_2.13-*.jar \
        "$KAFKA_LIB_DIR"/kafka-tools-[0-9]*.jar; do
        [[ -f "$jar" ]] || missing+=("$jar")
    done
    ((${#missing[@]} == 0)) || vdie "cluster jars missing (${missing[*]}): run deploy/local/bin/assemble.sh"
}

require_work() {
    [[ -f "$FLINK_CONF_DIR/config.yaml" ]] || vdie "no rendered configuration in $FLINK_CONF_DIR: run deploy/local/bin/prepare.sh"
}

# The value of env.java.opts.all in the run's config.yaml, as Flink's bin/config.sh reads it.
flink_java_opts_all() {
    sed -n 's/^[ ]*env\.java\.opts\.all[ ]*:[ ]*\(.*\)$/\1/p' "$FLINK_CONF_DIR/config.yaml" | tail -n 1
}

alive() { # PID: the process runs (a killed one that nobody has reaped yet, a zombie, does not)
    kill -0 "$1" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]]
}

pid_of() { # NAME -> pid recorded for it, if its process is alive
    local f="$VIGIL_PID_DIR/$1.pid" pid
    [[ -f "$f" ]] || return 1
    pid=$(<"$f")
    alive "$pid" || return 1
    echo "$pid"
}

# start_daemon NAME COMMAND...: runs COMMAND in the background, stdout+stderr to logs/NAME.out,
# and records its pid in pids/NAME.pid (bin/stop-all.sh kills what is recorded there).
start_daemon() {
    local name=$1
    shift
    mkdir -p "$VIGIL_PID_DIR" "$VIGIL_LOG_DIR"
    if pid_of "$name" >/dev/null; then
        vdie "$name is already running (pid $(pid_of "$name"))"
    fi
    nohup "$@" >>"$VIGIL_LOG_DIR/$name.out" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$VIGIL_PID_DIR/$name.pid"
    vlog "started $name (pid $pid), log in $VIGIL_LOG_DIR"
}

port_open() { # PORT: something listens on 127.0.0.1:PORT
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_port NAME PORT TIMEOUT_S: until PORT accepts connections; fails early if NAME's process died.
wait_port() {
    local name=$1 port=$2 timeout=$3 i
    for ((i = 0; i < timeout * 2; i++)); do
        port_open "$port" && return 0
        pid_of "$name" >/dev/null || vdie "$name exited before listening on $port: see $VIGIL_LOG_DIR/$name.out and $VIGIL_LOG_DIR/$name.log"
        sleep 0.5
    done
    vdie "$name does not listen on 127.0.0.1:$port after ${timeout}s: see $VIGIL_LOG_DIR/$name.log"
}

# run_bash_java_utils COMMAND: Flink's BashJavaUtils (what Flink's bin/config.sh runs) on the run's
# configuration; prints its two result lines, JVM parameters then dynamic -D properties.
run_bash_java_utils() {
    local cmd=$1 output results
    output=$("$JAVA_RUN" $VIGIL_TOOL_JVM_OPTS \
        -Dlog.file="$VIGIL_LOG_DIR/bash-java-utils.log" \
        -Dlog4j.configurationFile="file:$FLINK_CONF_DIR/log4j-cli.properties" \
        -classpath "$FLINK_LIB_DIR/*" org.apache.flink.runtime.util.bash.BashJavaUtils \
        "$cmd" --configDir "$FLINK_CONF_DIR" 2>&1) ||
        vdie "BashJavaUtils $cmd failed: $output"
    results=$(grep '^BASH_JAVA_UTILS_EXEC_RESULT:' <<<"$output" | sed 's/^BASH_JAVA_UTILS_EXEC_RESULT://')
    [[ $(grep -c . <<<"$results") -eq 2 ]] ||
        vdie "BashJavaUtils $cmd: expected 2 result lines, got: $output"
    echo "$results"
}
