#!/usr/bin/env bash
# Assembles the local cluster's jars from Maven Central (reusing ~/.m2):
#   deploy/local/.cluster/lib                         Flink 2.2.1 lib/ (+ ONNX Runtime 1.28.0)
#   deploy/local/.cluster/plugins/metrics-prometheus  Flink's Prometheus reporter plugin
#   deploy/local/.cluster/kafka-lib                   Kafka 4.2.0 broker and command line tools
# with `mvn dependency:copy-dependencies` on deploy/local/cluster/pom.xml (not part of the main
# build). Does nothing when they are there already, unless --force.
set -euo pipefail
. "$(dirname "$0")/env.sh"

if [[ "${1:-}" != "--force" ]] && (require_cluster) 2>/dev/null; then
    vlog "cluster jars already in $VIGIL_CLUSTER_DIR (--force to copy again)"
    exit 0
fi
command -v mvn >/dev/null || vdie "mvn not found: Maven 3.8+ is needed to assemble the cluster"
if [[ "${1:-}" == "--force" ]]; then
    rm -rf "$VIGIL_CLUSTER_DIR/lib" "$VIGIL_CLUSTER_DIR/plugins" "$VIGIL_CLUSTER_DIR/kafka-lib"
fi
vlog "assembling cluster jars into $VIGIL_CLUSTER_DIR"
mvn -B -q -f "$VIGIL_LOCAL_DIR/cluster/pom.xml" dependency:copy-dependencies \
    -Dcluster.dir="$VIGIL_CLUSTER_DIR"
require_cluster
vlog "lib: $(ls "$FLINK_LIB_DIR" | wc -l) jars, plugins: $(ls "$FLINK_PLUGINS_DIR"/*/ | wc -l), kafka-lib: $(ls "$KAFKA_LIB_DIR" | wc -l) jars"
