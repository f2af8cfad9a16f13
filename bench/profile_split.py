#!/usr/bin/env python3
"""Split a JFR recording of a Vigil job into per-event costs by pipeline stage.

Usage: jfr print --json --events jdk.ExecutionSample,jdk.NativeMethodSample REC.jfr > rec.json
       python3 bench/profile_split.py rec.json EVENTS_PER_SECOND CORES

Every sample (a thread running Java code, or running native code: RocksDB, ONNX Runtime, sockets)
is put in the first stage whose marker appears in its stack, from the top frame down; samples of
threads waiting (epoll, park, sleep, socket accept) are left out. A stage's share of the busy
samples times the machine's CPU time per event (cores / events per second) is its cost per event.
"""
import collections
import json
import sys

STAGES = [
    ("inference (ONNX Runtime)", ["ai.onnxruntime."]),
    ("state get/put (RocksDB + serializer)", ["org.rocksdb.", "contrib.streaming.state", "state.rocksdb",
                                              "PojoSerializer", "TtlValueState", "TtlStateFactory",
                                              "SerializedCompositeKey", "CompositeKeySerializationUtils",
                                              "FloatPrimitiveArraySerializer", "dev.vigil.state."]),
    ("sink (Kafka producer, JSON out)", ["connector.kafka.sink", "clients.producer", "WireFormat",
                                         "sink2", "SinkWriterOperator", "CommitterOperator"]),
    ("Kafka source + parsing", ["connector.kafka.source", "clients.consumer", "connector.base.source",
                                "TelemetryParser", "jackson", "ParseTelemetry", "RawRecord"]),
    ("network shuffle (serialize, buffers)", ["runtime.io.network", "runtime.io.", "RecordWriter",
                                             "CopyingChainingOutput",
                                             "StreamElementSerializer", "SpanningRecordSerializer",
                                             "NonSpanningWrapper", "typeutils.runtime", "DataOutputSerializer"]),
    ("scoring logic (batching, math, episodes)", ["dev.vigil.scoring", "dev.vigil.alerts", "dev.vigil.model"]),
    ("checkpointing", ["runtime.checkpoint", "SubtaskCheckpointCoordinator", "AsyncCheckpointRunnable"]),
    ("Kafka broker (in-process, same machine)", ["kafka.server", "kafka.log", "org.apache.kafka.storage",
                                                "kafka.network", "org.apache.kafka.server", "org.apache.kafka.raft",
                                                "kafka.raft", "org.apache.kafka.coordinator"]),
    ("JVM, GC, Flink runtime other", [""]),
]
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
        for name, markers in STAGES:
            if any(any(mk in f for mk in markers) for f in fs):
                counts[name] += 1
                break
    busy = sum(counts.values())
    per_event_us = cores / eps * 1e6
    print(f"busy samples {busy}, waiting samples left out {waiting}; "
          f"{per_event_us:.1f} us of CPU per event at {eps:.0f} events/s on {cores:.0f} cores")
    print(f"| stage | share of busy samples | us per event |")
    print(f"| --- | ---: | ---: |")
    for name, _ in STAGES:
        share = counts[name] / busy if busy else 0
        print(f"| {name} | {100 * share:.1f} % | {share * per_event_us:.2f} |")


if __name__ == "__main__":
    main()
