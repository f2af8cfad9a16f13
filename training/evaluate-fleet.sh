#!/usr/bin/env bash
# Evaluates Vigil on a labelled fleet as a user would: trains on the fleet's train split
# (./vigil train), replays train then test through the job (./vigil demo: embedded Kafka, Flink
# mini cluster, exactly-once), and scores the episodes against the labels at the card's threshold
# (never tuned on the labels). EVALUATION.md gives the results on the fleets in
# ../shared/datasets/ (SMAP, MSL) and the synthetic test fleet.
#   usage: training/evaluate-fleet.sh [--cold | --separate] [--set KEY=VALUE]... DATASET_DIR OUT_DIR
#          [./vigil train options ...]
# DATASET_DIR holds train.jsonl, test.jsonl (either may be gzipped) and labels.csv
# (device_id,start_ts,end_ts[,kind]); OUT_DIR receives the model, the stream, the anomalies, the
# step scores, report.json (everything replayed: an episode in the train part is a false alarm)
# and report-test.json (the test split only). With --cold only the test split is replayed, so that
# every device starts there as a new one (its profile and its level of forecast residual are
# learned inside its test part, as after a model change). With --separate the train and test
# splits are taken for separate recordings of each device (SMAP and MSL's are: a channel's test
# part is a later period, and its first value can be far from its train part's last): the replay
# moves each device's train records a day earlier, so that the job sees a gap before the test part
# (vigil.scoring.gap resets the device's memory; its profiles and levels stay) instead of a jump
# between two consecutive steps. The test records, the labels and the counting are unchanged;
# each device is reported silent over the gap (silences are not episodes). Each --set is a job
# option for the replay (./vigil demo --set), for example --set vigil.alerts.relearn-after=24h.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cold=false
separate=false
job_options=()
while true; do
  case "${1:-}" in
    --cold) cold=true; shift ;;
    --separate) separate=true; shift ;;
    --set) job_options+=(--set "${2:?--set needs KEY=VALUE}"); shift 2 ;;
    *) break ;;
  esac
done
usage="usage: training/evaluate-fleet.sh [--cold | --separate] [--set KEY=VALUE]... DATASET_DIR OUT_DIR [train options]"
if $cold && $separate; then echo "--cold replays the test split alone: --separate has nothing to separate" >&2; exit 2; fi
# The day between the splits must be a gap to the job (vigil.scoring.gap, 10 min) and not an
# expiry (vigil.state.ttl, 30 d): with either changed, say so rather than replay something else.
if $separate; then
  for option in ${job_options[@]+"${job_options[@]}"}; do
    case "$option" in
      vigil.scoring.gap=*|vigil.state.ttl=*)
        echo "--separate leaves a day between the splits, for the job's default" \
          "vigil.scoring.gap and vigil.state.ttl: not with --set $option" >&2
        exit 2 ;;
    esac
  done
fi
data="${1:?$usage}"
out="${2:?$usage}"
shift 2
mkdir -p "$out"
read_any() { if [ -f "$1" ]; then cat "$1"; elif [ -f "$1.gz" ]; then gzip -dc "$1.gz"; else echo "no $1" >&2; exit 2; fi; }
read_any "$data/train.jsonl" > "$out/train.jsonl"
read_any "$data/test.jsonl" > "$out/test.jsonl"
# One continuous history per device, its train records then its test records, and the devices
# interleaved by time as a live feed is: a file grouped by device would be read far behind the
# watermark for all but a few devices, which the job's silence watch reports silent (README,
# "Silence"). Each device's records keep their order. With --separate its train records move a day
# earlier.
replayed=("$out/train.jsonl" "$out/test.jsonl")
if $cold; then replayed=("$out/test.jsonl"); fi
python3 - "$separate" "${replayed[@]}" > "$out/stream.jsonl" <<'PY'
import heapq, re, sys
device_re, ts_re = re.compile(rb'"device_id"\s*:\s*"([^"]*)"'), re.compile(rb'"ts"\s*:\s*(-?\d+)')
iso_re = re.compile(rb'"ts"\s*:\s*"')
DAY_MS = 86_400_000
separate, paths = sys.argv[1] == "true", sys.argv[2:]
devices = {}
for i, path in enumerate(paths):
    shift = DAY_MS if separate and i == 0 else 0  # the train split, a day earlier
    with open(path, "rb") as f:
        for line in f:
            d = device_re.search(line)
            history = devices.setdefault(d.group(1) if d else b"", [])
            t = ts_re.search(line)
            # Only whole epoch milliseconds can be moved here: an ISO or fractional ts is refused
            # rather than replay a history whose seam is not where --separate says. (A record with
            # no ts, or a null one, is malformed: the job dead-letters it wherever it is.)
            if shift and (line[t.end(1):t.end(1) + 1] in (b".", b"e", b"E") if t else iso_re.search(line)):
                sys.exit(f"--separate needs ts in whole epoch milliseconds; device"
                         f" {d.group(1).decode() if d else '?'} has: {line[:120]!r}")
            if shift and t:
                line = line[:t.start(1)] + str(int(t.group(1)) - shift).encode() + line[t.end(1):]
                t = ts_re.search(line)
            # A line with no numeric ts (a malformed record) goes where its device's last one was.
            ts = int(t.group(1)) if t else (history[-1][0] if history else 0)
            history.append((ts, len(history), line))
for _, _, line in heapq.merge(*devices.values(), key=lambda e: e[0]):
    sys.stdout.buffer.write(line)
PY
start=$(date +%s)
if [ -f "$out/model/model.json" ]; then
  echo "using the model already in $out/model (delete it to train again)"
else
  "$root/vigil" train --train "$out/train.jsonl" --out "$out/model" "$@"
fi
trained=$(date +%s)
"$root/vigil" demo --model "$out/model" --input "$out/stream.jsonl" --labels "$data/labels.csv" \
  --anomalies-out "$out/anomalies.jsonl" --scores-out "$out/scores.jsonl" --report "$out/report.json" \
  ${job_options[@]+"${job_options[@]}"}
# The same run judged on the test split alone, as published detectors are.
"$root/vigil" evaluate --anomalies "$out/anomalies.jsonl" --scores "$out/scores.jsonl" \
  --labels "$data/labels.csv" --model "$out/model" --within "$out/test.jsonl" \
  --report "$out/report-test.json"
echo "trained in $((trained - start)) s, replayed and evaluated in $(( $(date +%s) - trained )) s"
echo "reports: $out/report.json (everything replayed), $out/report-test.json (test split only)"
