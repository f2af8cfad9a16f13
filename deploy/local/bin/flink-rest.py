#!/usr/bin/env python3
"""Small reader of the local JobManager's REST API (used by smoke.sh; handy by hand).

  flink-rest.py state JOBID            job state (RUNNING, FINISHED, CANCELED, ...), "all" if every
                                       task of it runs: prints e.g. "RUNNING all-running"
  flink-rest.py counters JOBID         the job's vigil counters summed over operators and
                                       subtasks, one "name value" per line (records_in, scored, ...;
                                       a shadow model's as shadow_scored, ...; a canary's per arm
                                       as scored_by_arm_canary, episodes_opened_by_arm_control, ...)
  flink-rest.py checkpoints JOBID      number of completed checkpoints
  flink-rest.py checkpoint-max JOBID   the longest completed checkpoint, end to end, in ms
  flink-rest.py restarts JOBID         how often the job failed and restarted (the entries of its
                                       exception history: the numRestarts metric lags)
  flink-rest.py exceptions JOBID       the job's exception history (root causes), empty if none
  flink-rest.py taskmanagers           one "id slots free" line per TaskManager
The REST URL comes from $VIGIL_REST_URL (default http://127.0.0.1:18081).
"""
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

BASE = os.environ.get("VIGIL_REST_URL", "http://127.0.0.1:18081")
COUNTERS = ["records_in", "scored", "late", "dead_letters", "episodes_opened",
            "episodes_closed", "resets_gap", "resets_model_change"]
ARM_COUNTERS = ["scored_by_arm", "episodes_opened_by_arm"]
ARMS = ["canary", "control"]


def get(path):
    with urllib.request.urlopen(BASE + path, timeout=10) as r:
        return json.load(r)


def state(job):
    d = get(f"/jobs/{job}")
    tasks = [v["status"] for v in d["vertices"]]
    every = "all-running" if tasks and all(t == "RUNNING" for t in tasks) else "not-all-running"
    print(d["state"], every)


def counters(job):
    d = get(f"/jobs/{job}")
    # metric id -> counter name
    names = {f".vigil.{c}": c for c in COUNTERS}
    names.update({f".vigil_shadow.{c}": "shadow_" + c for c in COUNTERS})
    names.update({f".vigil.arm.{a}.{c}": f"{c}_{a}" for c in ARM_COUNTERS for a in ARMS})
    totals = {c: 0 for c in names.values()}
    for v in d["vertices"]:
        base = f"/jobs/{job}/vertices/{v['id']}/subtasks/metrics"
        ids = [m["id"] for m in get(base)]
        wanted = {i: n for i in ids for suffix, n in names.items() if i.endswith(suffix)}
        if not wanted:
            continue
        for m in get(base + "?agg=sum&get=" + urllib.parse.quote(",".join(wanted), safe=",")):
            totals[wanted[m["id"]]] += int(float(m.get("sum", 0)))
    for c in totals:
        print(c, totals[c])


def checkpoints(job):
    print(get(f"/jobs/{job}/checkpoints")["counts"]["completed"])


def checkpoint_max(job):
    print(get(f"/jobs/{job}/checkpoints")["summary"]["end_to_end_duration"]["max"])


def restarts(job):
    print(len(get(f"/jobs/{job}/exceptions").get("exceptionHistory", {}).get("entries", [])))


def exceptions(job):
    d = get(f"/jobs/{job}/exceptions")
    for e in d.get("exceptionHistory", {}).get("entries", []):
        print(e.get("exceptionName"), "-", (e.get("stacktrace") or "").splitlines()[0][:300])


def taskmanagers():
    for tm in get("/taskmanagers")["taskmanagers"]:
        print(tm["id"], tm["slotsNumber"], tm["freeSlots"])


def main(argv):
    cmds = {"state": state, "counters": counters, "checkpoints": checkpoints,
            "checkpoint-max": checkpoint_max, "restarts": restarts, "exceptions": exceptions, "taskmanagers": taskmanagers}
    if len(argv) < 2 or argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        cmds[argv[1]](*argv[2:])
    except (urllib.error.URLError, OSError, KeyError, ValueError) as e:
        print(f"flink-rest: {argv[1]}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
