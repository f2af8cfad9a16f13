#!/usr/bin/env python3
"""Split a JFR recording of a Vigil job into per-event costs by pipeline stage.

Usage: jfr print --json --events jdk.ExecutionSample,jdk.NativeMethodSample REC.jfr > rec.json
       python3 bench/profile_split.py rec.json EVENTS_PER_SECOND CORES

Samples of threads waiting (epoll, park, sleep, socket accept) are left out. Every other sample (a
thread running Java code, or native code: RocksDB, ONNX Runtime, sockets) is put in a stage in two
steps. First by its thread: the Kafka consumer's fetcher thread, the in-process broker's threads,
the producers' network threads, and the task threads. Then, for the two task threads that do the
work, by the innermost frame of its stack that names a stage (the top frame down): the source task
(the Kafka source reader, the chained parse operator, the keyBy serialization) and the scoring task
(the keyBy deserialization, state, inference, scoring, the chained sinks). A stage's share of the
busy samples times the machine's CPU time per event (cores / events per second) is its cost per
event.
"""
import collections
import json
import sys

# (stage, thread name markers): the first whose marker is in the thread's name
THREADS = [
    ("Kafka consumer: fetcher thread (fetch, record batches)", ["Source Data Fetcher"]),
    ("Kafka producers: network threads (sinks, load generator)", ["kafka-producer-network-thread"]),
    ("Kafka broker (in-process, same machine)", ["data-plane", "kafka-request-handler", "broker-",
                                                "controller-", "raft", "kafka-scheduler",
                                                "ExpirationReaper", "LogCleaner", "group-coordinator",
                                                "transaction-", "kafka-network"]),
    ("source task", ["Source: "]),
    ("scoring task", ["GRU scoring"]),
    ("checkpointing (async snapshot threads)", ["AsyncOperations", "asyncOperations", "snapshot"]),
]
# (stage, frame markers) inside the source task and the scoring task, innermost frame first
SOURCE_TASK = [
    ("source: parser (JSON: TelemetryParser, its fast path, Jackson; Avro: AvroTelemetry)",
     ["dev.vigil.serde.TelemetryParser", "dev.vigil.serde.JsonFastPath", "com.fasterxml.jackson",
      "dev.vigil.serde.AvroTelemetry"]),
    ("source: copy of each record between chained operators", ["Serializer.copy"]),
    ("source: keyBy serialization and partitioning",
     ["RecordWriter", "Serializer.serialize", "KeyGroupStreamPartitioner", "StreamElementSerializer",
      "BufferBuilder", "runtime.io.network"]),
    ("source: parse operator (events, dead letters, metrics)", ["dev.vigil."]),
    ("source: reader hand-over (queue, emitter, RawRecord)",
     ["connector.base.source", "connector.kafka.source", "SourceOperator", "RawRecord"]),
]
SCORING_TASK = [
    ("scoring: inference (ONNX Runtime)", ["ai.onnxruntime."]),
    ("scoring: state get/put (RocksDB JNI, serializers, keys)",
     ["org.rocksdb.", "state.rocksdb", "contrib.streaming.state", "dev.vigil.state.", "TtlValueState",
      "TtlStateFactory", "SerializedCompositeKey", "CompositeKeySerializationUtils"]),
    ("scoring: sinks (Kafka producer send, JSON out)",
     ["clients.producer", "connector.kafka.sink", "WireFormat", "SinkWriterOperator", "CommitterOperator"]),
    ("scoring: keyBy deserialization", ["Serializer.deserialize", "RecordDeserializer", "NonSpanningWrapper",
                                        "SpanningWrapper", "runtime.io.network"]),
    ("scoring: batching, normalise, score, episodes", ["dev.vigil."]),
]
OTHER = "JVM, GC, Flink runtime other"
WAITING = ["EPoll.wait", "Unsafe.park", "Object.wait", "Thread.sleep", "accept", "epollWait",
           "LockSupport.park", "poll0", "SocketDispatcher.read", "Net.poll", "waitForReferencePendingList",
           "FileDispatcherImpl.read0"]


def frames(event):
    st = event["values"].get("stackTrace") or {}
    out = []
    for f in st.get("frames", []):
        m = f.get("method", {})
        t = m.get("type", {}).get("name", "").replace("/", ".")
        out.append(t + "." + m.get("name", ""))
    return out


def thread(event):
    t = event["values"].get("sampledThread") or {}
    return t.get("javaName") or t.get("osName") or ""


def innermost(fs, stages, rest):
    for f in fs:  # top frame first
        for name, markers in stages:
            if any(mk in f for mk in markers):
                return name
    return rest


def stage(event, fs):
    name = thread(event)
    for stage_name, markers in THREADS:
        if any(mk in name for mk in markers):
            if stage_name == "source task":
                return innermost(fs, SOURCE_TASK, "source: Flink task runtime other")
            if stage_name == "scoring task":
                return innermost(fs, SCORING_TASK, "scoring: Flink task runtime other")
            return stage_name
    return OTHER


def main():
    data = json.load(open(sys.argv[1]))
    eps = float(sys.argv[2])
    cores = float(sys.argv[3])
    counts = collections.Counter()
    waiting = 0
    for e in data["recording"]["events"]:
        fs = frames(e)
        if not fs:
            continue
        if any(w in fs[0] for w in WAITING):
            waiting += 1
            continue
        counts[stage(e, fs)] += 1
    busy = sum(counts.values())
    per_event_us = cores / eps * 1e6
    print(f"busy samples {busy}, waiting samples left out {waiting}; "
          f"{per_event_us:.1f} us of CPU per event at {eps:.0f} events/s on {cores:.0f} cores")
    print("| stage | share of busy samples | us per event |")
    print("| --- | ---: | ---: |")
    for name, n in counts.most_common():
        share = n / busy if busy else 0
        print(f"| {name} | {100 * share:.1f} % | {share * per_event_us:.2f} |")


if __name__ == "__main__":
    main()
