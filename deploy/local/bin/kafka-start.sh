#!/usr/bin/env bash
# Starts the single-node Kafka broker (KRaft, broker + controller in one process) on
# 127.0.0.1:$VIGIL_KAFKA_PORT: formats its storage first if needed (kafka.tools.StorageTool, what
# `kafka-storage.sh format` runs), then runs kafka.Kafka with $VIGIL_WORK/conf/kafka/server.properties.
# Log: $VIGIL_WORK/logs/kafka.log (and kafka.out); pid: $VIGIL_WORK/pids/kafka.pid.
set -euo pipefail
. "$(dirname "$0")/env.sh"
require_cluster
require_work

props="$FLINK_CONF_DIR/kafka/server.properties"
tool_opts=($VIGIL_TOOL_JVM_OPTS -Dkafka.log.file="$VIGIL_LOG_DIR/kafka-tools.log"
    -Dlog4j2.configurationFile="file:$FLINK_CONF_DIR/kafka/log4j2.properties"
    -Djava.io.tmpdir="$VIGIL_WORK/tmp")

if [[ ! -f "$VIGIL_WORK/kafka/data/meta.properties" ]]; then
    cluster_id=$("$JAVA_RUN" "${tool_opts[@]}" -cp "$KAFKA_LIB_DIR/*" kafka.tools.StorageTool random-uuid)
    "$JAVA_RUN" "${tool_opts[@]}" -cp "$KAFKA_LIB_DIR/*" kafka.tools.StorageTool format \
        --cluster-id "$cluster_id" --config "$props" >>"$VIGIL_LOG_DIR/kafka-tools.log" 2>&1 ||
        vdie "formatting Kafka's storage failed: see $VIGIL_LOG_DIR/kafka-tools.log"
    vlog "formatted Kafka storage in $VIGIL_WORK/kafka/data (cluster id $cluster_id)"
fi

start_daemon kafka "$JAVA_RUN" -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true -Djava.io.tmpdir="$VIGIL_WORK/tmp" \
    -Dkafka.log.file="$VIGIL_LOG_DIR/kafka.log" -Dkafka.logs.dir="$VIGIL_LOG_DIR" \
    -Dlog4j2.configurationFile="file:$FLINK_CONF_DIR/kafka/log4j2.properties" \
    -cp "$KAFKA_LIB_DIR/*" kafka.Kafka "$props"
wait_port kafka "$VIGIL_KAFKA_PORT" 90
vlog "Kafka broker listens on $VIGIL_KAFKA_BOOTSTRAP"
