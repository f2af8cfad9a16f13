#!/usr/bin/env bash
# Runs one of Kafka's command line tools from the assembled kafka-lib against the local broker
# (--bootstrap-server is added unless given). Log: $VIGIL_WORK/logs/kafka-tools.log.
#   kafka-tool.sh topics   ARGS   org.apache.kafka.tools.TopicCommand            (kafka-topics.sh)
#   kafka-tool.sh produce  ARGS   org.apache.kafka.tools.ConsoleProducer         (kafka-console-producer.sh)
#   kafka-tool.sh consume  ARGS   org.apache.kafka.tools.consumer.ConsoleConsumer (kafka-console-consumer.sh)
#   kafka-tool.sh offsets  ARGS   org.apache.kafka.tools.GetOffsetShell          (kafka-get-offsets.sh)
set -euo pipefail
. "$(dirname "$0")/env.sh"
require_cluster

case "${1:-}" in
    topics) main=org.apache.kafka.tools.TopicCommand ;;
    produce) main=org.apache.kafka.tools.ConsoleProducer ;;
    consume) main=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
    offsets) main=org.apache.kafka.tools.GetOffsetShell ;;
    *) vdie "usage: kafka-tool.sh topics|produce|consume|offsets ARGS..." ;;
esac
shift
args=("$@")
[[ " $* " == *" --bootstrap-server "* ]] || args=(--bootstrap-server "$VIGIL_KAFKA_BOOTSTRAP" "${args[@]}")
mkdir -p "$VIGIL_LOG_DIR"
exec "$JAVA_RUN" $VIGIL_TOOL_JVM_OPTS -Xmx256m \
    -Dkafka.log.file="$VIGIL_LOG_DIR/kafka-tools.log" \
    -Dlog4j2.configurationFile="file:${FLINK_CONF_DIR}/kafka/log4j2.properties" \
    -cp "$KAFKA_LIB_DIR/*" "$main" "${args[@]}"
