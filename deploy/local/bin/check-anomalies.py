#!/usr/bin/env python3
"""Checks the anomaly events a read_committed consumer saw (used by smoke.sh).

  check-anomalies.py FILE V1 V2 OPENED CLOSED [--control-only VERSION FRACTION]

FILE holds one "key<TAB>value" line per record of the anomalies topic (ConsoleConsumer with
print.key=true and a tab as key.separator). Checks: every value is an anomaly event whose key is
its device_id; there are OPEN and CLOSE events; no event_id appears twice (exactly once through a
stop-with-savepoint and a restore); the events come from both model versions V1 and V2 and no
other; each device's episodes open and close on the topic (an UPDATE or CLOSE belongs to the
episode its device's last OPEN began, same episode_start and model version; no OPEN while one is
open; the last may stay open); and the OPEN and CLOSE counts equal the jobs' counters (OPENED,
CLOSED; CLOSED may be - when closes handed over between topics make it no counter's sum). Prints a
one-line summary; exits 1 with the reasons on any failed check. With --control-only, every OPEN of
model VERSION must be of a device outside a canary of FRACTION (the job's Canary.bucket, below).
"""
import collections
import json
import sys


def java_hash(text):
    """Java's String.hashCode: over UTF-16 code units, as a signed 32-bit int."""
    data = text.encode("utf-16-be")
    h = 0
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def canary_bucket(device):
    """dev.vigil.scoring.Canary.bucket: SplitMix64's finaliser over the hash (CanaryTest pins it)."""
    mask = (1 << 64) - 1
    z = (java_hash(device) + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    z ^= z >> 31
    return (z >> 11) * 2.0 ** -53


def main(path, v1, v2, opened, closed, control_only=None):
    problems = []
    events = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            key, sep, value = line.partition("\t")
            if not sep:
                problems.append(f"line {n}: no key separator: {line[:120]}")
                continue
            try:
                e = json.loads(value)
            except ValueError as ex:
                problems.append(f"line {n}: not JSON ({ex}): {value[:120]}")
                continue
            missing = [k for k in ("event_id", "type", "device_id", "ts", "model_version") if k not in e]
            if missing:
                problems.append(f"line {n}: missing {missing}: {value[:120]}")
                continue
            if key != e["device_id"]:
                problems.append(f"line {n}: key '{key}' is not the device_id '{e['device_id']}'")
            events.append(e)
    types = collections.Counter(e["type"] for e in events)
    versions = collections.Counter(e["model_version"] for e in events)
    ids = collections.Counter(e["event_id"] for e in events)
    dups = sorted(i for i, c in ids.items() if c > 1)
    if not events:
        problems.append("no anomaly events at all")
    if types["OPEN"] == 0:
        problems.append("no OPEN event")
    if types["CLOSE"] == 0:
        problems.append("no CLOSE event")
    if dups:
        problems.append(f"{len(dups)} duplicate event_id(s), e.g. {dups[:3]}")
    for v in (v1, v2):
        if versions[v] == 0:
            problems.append(f"no event from model version {v}")
    others = sorted(set(versions) - {v1, v2})
    if others:
        problems.append(f"events from unexpected model versions {others}")
    if types["OPEN"] != opened:
        problems.append(f"{types['OPEN']} OPEN events but the jobs counted episodes_opened={opened}")
    open_by_device = {}
    for e in events:
        device, o = e["device_id"], open_by_device.get(e["device_id"])
        if e["type"] == "OPEN":
            if o is not None:
                problems.append(f"{device}: OPEN {e['event_id']} while {o['event_id']} is open")
            open_by_device[device] = e
        elif o is None:
            problems.append(f"{device}: {e['type']} {e['event_id']} outside an episode")
        elif (e.get("episode_start"), e["model_version"]) != (o.get("episode_start"), o["model_version"]):
            problems.append(f"{device}: {e['event_id']} does not belong to the open {o['event_id']}")
        elif e["type"] == "CLOSE":
            open_by_device[device] = None
    if control_only is not None:
        version, fraction = control_only
        wrong = sorted({e["device_id"] for e in events if e["type"] == "OPEN"
                        and e["model_version"] == version and canary_bucket(e["device_id"]) < fraction})
        if wrong:
            problems.append(f"model {version} opened episodes here for canary devices {wrong}")
    if closed is not None and types["CLOSE"] != closed:
        problems.append(f"{types['CLOSE']} CLOSE events but the jobs counted episodes_closed={closed}")
    by_version = ", ".join(
        f"{v}: " + "/".join(f"{t} {c}" for (vv, t), c in sorted(
            collections.Counter((e['model_version'], e['type']) for e in events).items()) if vv == v)
        for v in (v1, v2))
    print(f"{len(events)} events ({', '.join(f'{t} {c}' for t, c in sorted(types.items()))}), "
          f"{len(ids)} distinct event_ids, {len(dups)} duplicates; by model version: {by_version}")
    for p in problems:
        print("  FAILED: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) not in (6, 9) or (len(sys.argv) == 9 and sys.argv[6] != "--control-only"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]),
                  None if sys.argv[5] == "-" else int(sys.argv[5]),
                  (sys.argv[7], float(sys.argv[8])) if len(sys.argv) == 9 else None))
