#!/usr/bin/env bash
# Prepares the run's work dir ($VIGIL_WORK, default deploy/local/.work/run): picks the ports
# (the preferred ones, or the next free ones), writes them to ports.env, and renders the
# configuration templates of deploy/local/conf into $VIGIL_WORK/conf with the work dir and ports.
# VIGIL_PROMETHEUS=1 turns on Flink's Prometheus reporter (see conf/config.yaml).
#   --fresh   first delete a previous work dir (refused while its processes run)
set -euo pipefail
. "$(dirname "$0")/env.sh"

if [[ "${1:-}" == "--fresh" && -d "$VIGIL_WORK" ]]; then
    for f in "$VIGIL_PID_DIR"/*.pid; do
        [[ -f "$f" ]] || continue
        name=$(basename "$f" .pid)
        if pid_of "$name" >/dev/null; then
            vdie "$name (pid $(pid_of "$name")) of $VIGIL_WORK still runs: bin/stop-all.sh first"
        fi
    done
    [[ -f "$VIGIL_WORK/.vigil-local-work" ]] ||
        vdie "$VIGIL_WORK exists but was not made by prepare.sh: not deleting it"
    rm -rf "$VIGIL_WORK"
    # again without the old run's ports.env: a fresh run chooses its ports again
    exec "$0"
fi

mkdir -p "$VIGIL_WORK"/{conf/kafka,logs,pids,tmp/io,tmp/web,web-upload,checkpoints,savepoints,kafka/data}
touch "$VIGIL_WORK/.vigil-local-work"

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q . || port_open "$1"; }
taken=" "
pick() { # preferred port -> it, or the next port that is free and not taken by this run
    local p=$1
    while port_busy "$p" || [[ "$taken" == *" $p "* ]]; do p=$((p + 1)); done
    taken+="$p "
    echo "$p"
}
if [[ ! -f "$VIGIL_WORK/ports.env" ]]; then
    kafka=$(pick "$VIGIL_KAFKA_PORT")
    controller=$(pick "$VIGIL_KAFKA_CONTROLLER_PORT")
    jm=$(pick "$VIGIL_JM_RPC_PORT")
    blob=$(pick "$VIGIL_BLOB_PORT")
    tm=$(pick "$VIGIL_TM_RPC_PORT")
    rest=$(pick "$VIGIL_REST_PORT")
    prom=$VIGIL_PROM_PORT
    while port_busy "$prom" || port_busy $((prom + 1)); do prom=$((prom + 2)); done
    cat >"$VIGIL_WORK/ports.env" <<PORTS
VIGIL_KAFKA_PORT=$kafka
VIGIL_KAFKA_CONTROLLER_PORT=$controller
VIGIL_JM_RPC_PORT=$jm
VIGIL_BLOB_PORT=$blob
VIGIL_TM_RPC_PORT=$tm
VIGIL_REST_PORT=$rest
VIGIL_PROM_PORT=$prom
PORTS
fi
. "$VIGIL_WORK/ports.env"

render() { # template -> target, @TOKENS@ replaced
    sed -e "s|@WORK@|$VIGIL_WORK|g" \
        -e "s|@KAFKA_PORT@|$VIGIL_KAFKA_PORT|g" \
        -e "s|@KAFKA_CONTROLLER_PORT@|$VIGIL_KAFKA_CONTROLLER_PORT|g" \
        -e "s|@JM_RPC_PORT@|$VIGIL_JM_RPC_PORT|g" \
        -e "s|@BLOB_PORT@|$VIGIL_BLOB_PORT|g" \
        -e "s|@TM_RPC_PORT@|$VIGIL_TM_RPC_PORT|g" \
        -e "s|@REST_PORT@|$VIGIL_REST_PORT|g" \
        -e "s|@PROM_PORTS@|$VIGIL_PROM_PORT-$((VIGIL_PROM_PORT + 1))|g" \
        "$1" >"$2"
}
render "$VIGIL_LOCAL_DIR/conf/config.yaml" "$FLINK_CONF_DIR/config.yaml"
if [[ "${VIGIL_PROMETHEUS:-0}" == 1 ]]; then
    sed -i 's/^#prom# //' "$FLINK_CONF_DIR/config.yaml"
fi
render "$VIGIL_LOCAL_DIR/conf/log4j.properties" "$FLINK_CONF_DIR/log4j.properties"
render "$VIGIL_LOCAL_DIR/conf/log4j-cli.properties" "$FLINK_CONF_DIR/log4j-cli.properties"
render "$VIGIL_LOCAL_DIR/conf/kafka/server.properties" "$FLINK_CONF_DIR/kafka/server.properties"
render "$VIGIL_LOCAL_DIR/conf/kafka/log4j2.properties" "$FLINK_CONF_DIR/kafka/log4j2.properties"
if grep -q '@[A-Z_]*@' "$FLINK_CONF_DIR/config.yaml" "$FLINK_CONF_DIR/kafka/server.properties"; then
    vdie "unrendered tokens left in $FLINK_CONF_DIR"
fi
vlog "work dir $VIGIL_WORK: Kafka 127.0.0.1:$VIGIL_KAFKA_PORT (controller $VIGIL_KAFKA_CONTROLLER_PORT), JobManager RPC $VIGIL_JM_RPC_PORT, blob $VIGIL_BLOB_PORT, TaskManager RPC $VIGIL_TM_RPC_PORT, REST/web UI $VIGIL_REST_URL, Prometheus $VIGIL_PROM_PORT-$((VIGIL_PROM_PORT + 1))"
