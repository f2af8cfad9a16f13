#!/usr/bin/env bash
# Writes the golden savepoint of this Vigil release into testdata/savepoints/VERSION: the job run
# by `vigil demo` on the first 13,500 records of the test fleet's stream and stopped with a
# savepoint, plus the model it ran. GoldenSavepointsITCase restores every such directory.
# A released golden savepoint is never rewritten: make a new one for each release.
#   usage: testdata/savepoints/make.sh VERSION [MODEL_DIR [SHADOW_MODEL_DIR]]    (e.g. 0.1.0;
#          MODEL_DIR defaults to the committed test model, testdata/model: pass another to exercise
#          card options; SHADOW_MODEL_DIR runs a shadow model beside it, copied to shadow-model/)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
version="${1:?usage: testdata/savepoints/make.sh VERSION [MODEL_DIR [SHADOW_MODEL_DIR]]}"
model="$(cd "${2:-$root/testdata/model}" && pwd)"
shadow=()
if [ -n "${3:-}" ]; then
  shadow=(--shadow-model "$(cd "$3" && pwd)")
fi
out="$root/testdata/savepoints/$version"
if [ -e "$out" ]; then
  echo "$out exists: a released golden savepoint is never rewritten" >&2
  exit 1
fi
records=13500
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$root/vigil" testdata "$tmp/fleet" >/dev/null
head -n "$records" "$tmp/fleet/test.jsonl" > "$tmp/first.jsonl"
"$root/vigil" demo --model "$model" --input "$tmp/first.jsonl" "${shadow[@]}" \
  --savepoint-out "$tmp/savepoint"
mkdir -p "$out/model"
cp "$tmp"/savepoint/savepoint-*/* "$out/"
cp "$model/model.onnx" "$model/model.json" "$out/model/"
if [ -n "${3:-}" ]; then
  mkdir -p "$out/shadow-model"
  cp "$3/model.onnx" "$3/model.json" "$out/shadow-model/"
fi
echo "golden savepoint written to $out:"
ls -la "$out" "$out/model"
