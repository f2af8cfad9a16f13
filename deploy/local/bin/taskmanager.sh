#!/usr/bin/env bash
# Starts one Flink TaskManager (2 slots), as Flink's bin/taskmanager.sh does: BashJavaUtils
# GET_TM_RESOURCE_PARAMS computes the JVM memory flags and the -D memory properties from the
# configuration, then TaskManagerRunner --configDir $VIGIL_WORK/conf -D ... runs with
# env.java.opts.all and ORT_DISABLE_TELEMETRY=1 in its environment.
# Log: $VIGIL_WORK/logs/taskmanager.log (and .out); pid: $VIGIL_WORK/pids/taskmanager.pid.
set -euo pipefail
. "$(dirname "$0")/env.sh"
require_cluster
require_work

params=$(run_bash_java_utils GET_TM_RESOURCE_PARAMS)
jvm_params=$(head -n 1 <<<"$params")
dynamic_params=$(tail -n 1 <<<"$params")
# shellcheck disable=SC2086
start_daemon taskmanager "$JAVA_RUN" $jvm_params -XX:+UseG1GC $(flink_java_opts_all) \
    -Dlog.file="$VIGIL_LOG_DIR/taskmanager.log" \
    -Dlog4j.configuration="file:$FLINK_CONF_DIR/log4j.properties" \
    -Dlog4j.configurationFile="file:$FLINK_CONF_DIR/log4j.properties" \
    -classpath "$FLINK_LIB_DIR/*" \
    org.apache.flink.runtime.taskexecutor.TaskManagerRunner \
    --configDir "$FLINK_CONF_DIR" $dynamic_params
