#!/usr/bin/env bash
# Starts the Flink JobManager of the standalone session cluster, as Flink's bin/jobmanager.sh
# does: BashJavaUtils GET_JM_RESOURCE_PARAMS computes the JVM memory flags and -D properties from
# the configuration, then StandaloneSessionClusterEntrypoint --configDir $VIGIL_WORK/conf runs
# with env.java.opts.all (the --add-opens/--add-exports list). REST/web UI on 127.0.0.1:$VIGIL_REST_PORT.
# Log: $VIGIL_WORK/logs/jobmanager.log (and .out); pid: $VIGIL_WORK/pids/jobmanager.pid.
set -euo pipefail
. "$(dirname "$0")/env.sh"
require_cluster
require_work

params=$(run_bash_java_utils GET_JM_RESOURCE_PARAMS)
jvm_params=$(head -n 1 <<<"$params")
dynamic_params=$(tail -n 1 <<<"$params")
# word splitting of the flags and -D properties is intended, as in Flink's scripts
# shellcheck disable=SC2086
start_daemon jobmanager "$JAVA_RUN" $jvm_params $(flink_java_opts_all) \
    -Dlog.file="$VIGIL_LOG_DIR/jobmanager.log" \
    -Dlog4j.configuration="file:$FLINK_CONF_DIR/log4j.properties" \
    -Dlog4j.configurationFile="file:$FLINK_CONF_DIR/log4j.properties" \
    -classpath "$FLINK_LIB_DIR/*" \
    org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint \
    --configDir "$FLINK_CONF_DIR" $dynamic_params
if [[ "${1:-}" == "--wait" ]]; then
    wait_port jobmanager "$VIGIL_REST_PORT" 90
    vlog "JobManager REST/web UI on $VIGIL_REST_URL"
fi
