#!/usr/bin/env python3
"""The parts of deploy/local/chaos.sh that are easier in Python than in bash.

  chaos.py pills IN.keyed OUT.keyed            IN with hostile records (every poison pill the job
                                               must survive) inserted at 40 % of the stream; prints
                                               the number of records written
  chaos.py feed RATE FILE                      FILE's lines to stdout at RATE lines per second
                                               (piped into the console producer: a live stream)
  chaos.py kill-on REGEX LOG PID [DELAY_MS [SIGNAL]]
                                               waits for the next line of LOG matching REGEX
                                               (lines already there do not count), waits DELAY_MS,
                                               sends SIGNAL (KILL) to PID; prints what it matched
  chaos.py tally CASE_DIR INPUT.keyed [REF_DIR]
                                               the figures of one case from its committed output
                                               (anomalies.tsv, scores.tsv, dead-letters.tsv:
                                               key<TAB>value lines read with read_committed),
                                               against the failure-free reference run REF_DIR;
                                               writes CASE_DIR/tally.json, prints a summary;
                                               exits 1 unless every record is accounted for,
                                               nothing is duplicated or lost and no device
                                               was silenced
  chaos.py report OUT.md CASE_DIR...           the campaign's table (Markdown) from the tallies
"""
import collections
import json
import os
import re
import signal
import sys
import time

DEVICE_ID = re.compile(rb'"device_id"\s*:\s*"([^"\t\\]*)"')


def pills(src, dst):
    """Inserts the hostile records at 40 % of the stream. Each is built from the last real record
    of a device before that point, so it hits a device that has state and keeps sending."""
    lines = open(src, "rb").read().splitlines()
    at = len(lines) * 2 // 5
    last = {}  # device -> its last parsed record before `at`
    for line in lines[:at]:
        try:
            r = json.loads(line.split(b"\t", 1)[1])
            if (isinstance(r, dict) and isinstance(r.get("values"), dict)
                    and isinstance(r.get("seq"), int) and isinstance(r.get("ts"), int)
                    and re.fullmatch(r"[\w.-]{1,64}", str(r.get("device_id")))):
                last[r["device_id"]] = r
        except (ValueError, IndexError, KeyError, TypeError):
            pass
    devices = sorted(last)
    if len(devices) < 6:
        raise SystemExit(f"need at least 6 devices before 40 % of {src}, found {len(devices)}")

    def rec(device, **changes):
        r = json.loads(json.dumps(last[device]))
        for k, v in changes.items():
            if v is None:
                r.pop(k, None)
            else:
                r[k] = v
        return r

    def line(key, text):
        return key.encode() + b"\t" + (text if isinstance(text, bytes) else text.encode())

    d = devices
    ten_years = 10 * 365 * 86_400_000
    now = int(time.time() * 1000)
    feature = next(iter(last[d[0]]["values"]))
    huge = rec(d[3], ts=last[d[3]]["ts"] + 1, seq=None)
    huge["values"][feature] = 3e38
    missing = rec(d[4], ts=last[d[4]]["ts"] + 1)
    missing["values"].pop(feature)
    bad_feature = rec(d[5], ts=last[d[5]]["ts"] + 1, seq=None)
    bad_feature["values"][feature] = "abc"
    not_a_number = rec(d[1], ts=last[d[1]]["ts"] + 2, seq=None)
    not_a_number["values"][feature] = float("nan")
    hostile = [
        # FUTURE_TS: a device clock ten years ahead; must not make the device's later steps late
        line(d[0], json.dumps(rec(d[0], ts=now + ten_years, seq=last[d[0]]["seq"] + 1))),
        # a seq of Long.MAX_VALUE: scored; the device's next record (seq back, ts on) is a restart
        line(d[1], json.dumps(rec(d[1], ts=last[d[1]]["ts"] + 1, seq=2**63 - 1))),
        # a clock stepped back two hours: a restart of the device, scored
        line(d[2], json.dumps(rec(d[2], ts=last[d[2]]["ts"] - 7_200_001, seq=None))),
        # a finite but absurd reading: clamped, scored, the memory stays finite
        line(d[3], json.dumps(huge)),
        # a key that is not the device id: KEY_MISMATCH
        line("someone-else", json.dumps(rec(d[4], ts=last[d[4]]["ts"] + 2, seq=None))),
        # MISSING_FEATURE
        line(d[4], json.dumps(missing)),
        # BAD_FEATURE (a string), BAD_SEQ (beyond a long)
        line(d[5], json.dumps(bad_feature)),
        line(d[5], json.dumps(rec(d[5], ts=last[d[5]]["ts"] + 2, seq=1e30))),
        # a device id longer than 256 characters: BAD_DEVICE_ID
        line("x" * 300, json.dumps(rec(d[0], device_id="x" * 300))),
        # 200 KiB that are not JSON: MALFORMED_JSON, raw cut at 128 KiB in the dead letter
        line(d[0], b"{" + b"a" * 200 * 1024),
        # 5000 nested arrays, NaN, an empty object, a JSON array
        line("", b"[" * 5000),
        line(d[1], json.dumps(not_a_number)),
        line("", "{}"),
        line("", "[1, 2, 3]"),
    ]
    with open(dst, "wb") as f:
        for l in lines[:at] + hostile + lines[at:]:
            f.write(l + b"\n")
    print(len(lines) + len(hostile))


def feed(rate, path):
    rate = float(rate)
    out = sys.stdout.buffer
    start = time.monotonic()
    with open(path, "rb") as f:
        for i, l in enumerate(f):
            ahead = i / rate - (time.monotonic() - start)
            if ahead > 0.005:
                out.flush()
                time.sleep(ahead)
            out.write(l)
    out.flush()


def kill_on(regex, log, pid, delay_ms="0", sig="KILL"):
    pattern = re.compile(regex)
    with open(log, "r", errors="replace") as f:
        f.seek(0, os.SEEK_END)
        partial = ""
        while True:
            chunk = f.readline()
            if not chunk:
                time.sleep(0.002)
                continue
            partial += chunk
            if not partial.endswith("\n"):
                continue
            l, partial = partial, ""
            if pattern.search(l):
                seen = time.monotonic()
                time.sleep(int(delay_ms) / 1000)
                os.kill(int(pid), getattr(signal, "SIG" + sig))
                took = (time.monotonic() - seen) * 1000
                what = re.sub(r" (\(type=|for job ).*$", "", l.strip().split("] - ", 1)[-1])
                print(f"SIG{sig} to pid {pid} {took:.0f} ms after the JobManager logged '{what}'")
                return


def read_tsv(path):
    out = []
    if not os.path.exists(path):
        return out
    with open(path, "rb") as f:
        for l in f:
            l = l.rstrip(b"\n")
            if not l:
                continue
            key, _, value = l.partition(b"\t")
            out.append((key.decode("utf-8", "replace"), json.loads(value)))
    return out


def identities(case_dir):
    """Multisets of what a case wrote: anomaly events by event_id, scored steps by device and ts,
    dead letters by reason and where they were read (the scorer's, which it cannot place, by raw)."""
    events = collections.Counter(v["event_id"] for _, v in read_tsv(f"{case_dir}/anomalies.tsv"))
    scored = collections.Counter((v["device_id"], v["ts"]) for _, v in read_tsv(f"{case_dir}/scores.tsv"))
    letters = collections.Counter()
    by_reason = collections.Counter()
    for _, v in read_tsv(f"{case_dir}/dead-letters.tsv"):
        where = (v["partition"], v["offset"]) if v.get("offset", -1) >= 0 else v.get("raw")
        letters[(v["reason"], json.dumps(where))] += 1
        by_reason[v["reason"]] += 1
    return events, scored, letters, by_reason


def tally(case_dir, input_keyed, ref_dir=None):
    produced = 0
    last_ts = {}  # device -> ts of its last record with a well-formed id and a numeric ts
    with open(input_keyed, "rb") as f:
        for l in f:
            produced += 1
            try:
                r = json.loads(l.split(b"\t", 1)[1])
                if re.fullmatch(r"[\w.-]{1,64}", r["device_id"]) and isinstance(r["ts"], int):
                    last_ts[r["device_id"]] = r["ts"]
            except (ValueError, IndexError, KeyError, TypeError, RecursionError):
                pass
    events, scored, letters, by_reason = identities(case_dir)
    last_scored = {}
    for d, ts in scored:
        last_scored[d] = max(ts, last_scored.get(d, ts))
    late = by_reason["DUPLICATE"] + by_reason["OUT_OF_ORDER"]
    dead = sum(by_reason.values()) - late
    t = {
        "case": os.path.basename(case_dir.rstrip("/")),
        "records_in": produced,
        "scored": sum(scored.values()),
        "late": late,
        "dead_letters": dead,
        "accounted": sum(scored.values()) + late + dead == produced,
        "dead_letter_reasons": dict(sorted(by_reason.items())),
        "events_out": sum(events.values()),
        "episodes_opened": sum(1 for e in events if e.endswith(":OPEN")),
        # Every device scored up to its last record: no record before it silenced the device.
        "devices_checked": len(last_ts),
        "devices_silenced": sorted(d for d, ts in last_ts.items() if last_scored.get(d, -1) < ts),
    }
    meta = f"{case_dir}/case.json"
    if os.path.exists(meta):
        t.update(json.load(open(meta)))
    if ref_dir:
        ref = identities(ref_dir)
        for name, run, want in (("events", events, ref[0]), ("scores", scored, ref[1]),
                                ("dead_letters", letters, ref[2])):
            t[f"duplicates_{name}"] = sum(max(0, n - want[k]) for k, n in run.items())
            t[f"lost_{name}"] = sum(max(0, n - run[k]) for k, n in want.items())
    else:  # the reference itself: nothing may repeat
        t["duplicates_events"] = sum(n - 1 for n in events.values())
        t["lost_events"] = 0
    json.dump(t, open(f"{case_dir}/tally.json", "w"), indent=2)
    problems = [] if t["accounted"] else ["records in != scored + late + dead letters"]
    problems += [f"{k} {v}" for k, v in t.items()
                 if (k.startswith("duplicates_") or k.startswith("lost_")) and v]
    if t["devices_silenced"]:
        problems.append(f"devices silenced: {' '.join(t['devices_silenced'])}")
    print(f"in {t['records_in']} = scored {t['scored']} + late {t['late']} + dead letters "
          f"{t['dead_letters']}; events {t['events_out']}; duplicates "
          f"{sum(v for k, v in t.items() if k.startswith('duplicates_'))}, lost "
          f"{sum(v for k, v in t.items() if k.startswith('lost_'))}, devices silenced "
          f"{len(t['devices_silenced'])} of {t['devices_checked']}"
          + (f": FAILED: {'; '.join(problems)}" if problems else ""))
    return 1 if problems else 0


def report(out, *case_dirs):
    rows = [json.load(open(f"{d}/tally.json")) for d in case_dirs]
    head = ("| case | fault | restarts | longest checkpoint | records in | scored | late | dead letters | events out "
            "| duplicates (events, scores, letters) | lost vs. reference (events, scores, letters) "
            "| devices silenced |")
    lines = [head, "|" + " --- |" * 12]
    for r in rows:
        dup = ", ".join(str(r.get(f"duplicates_{k}", 0)) for k in ("events", "scores", "dead_letters"))
        lost = ", ".join(str(r.get(f"lost_{k}", 0)) for k in ("events", "scores", "dead_letters"))
        lines.append(f"| {r['case']} | {r.get('fault', '')} | {r.get('restarts', '')} "
                     f"| {r.get('longest_checkpoint_ms', '')} ms "
                     f"| {r['records_in']} | {r['scored']} | {r['late']} | {r['dead_letters']} "
                     f"| {r['events_out']} | {dup} | {lost} | {len(r['devices_silenced'])} |")
    reasons = rows[0]["dead_letter_reasons"] if rows else {}
    lines += ["", "Dead letters by reason (reference): "
              + ", ".join(f"{k} {v}" for k, v in reasons.items()), ""]
    lines += [f"- {r['case']}: {r['note']}".replace("\n", "; ") for r in rows if r.get("note")]
    open(out, "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv):
    cmds = {"pills": pills, "feed": feed, "kill-on": kill_on, "tally": tally, "report": report}
    if len(argv) < 2 or argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        return 2
    return cmds[argv[1]](*argv[2:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
