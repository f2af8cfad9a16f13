#!/usr/bin/env python3
"""Writes a JSONL stream as the console producer's keyed input: "key<TAB>line" per record, the key
being the record's device_id (a record without a readable one, a dead letter to be, gets an empty
key), split into consecutive parts of (nearly) equal size.

  keyed.py IN.jsonl OUT_PREFIX [PARTS]   writes OUT_PREFIX1.keyed .. OUT_PREFIX<PARTS>.keyed and
                                         prints the number of records in each part
"""
import re
import sys

DEVICE_ID = re.compile(rb'"device_id"\s*:\s*"([^"\t\\]*)"')


def keyed(line):
    m = DEVICE_ID.search(line)
    return (m.group(1) if m else b"") + b"\t" + line.replace(b"\r", b"") + b"\n"


def main(argv):
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    lines = open(argv[1], "rb").read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    parts = int(argv[3]) if len(argv) == 4 else 1
    bounds = [len(lines) * i // parts for i in range(parts + 1)]
    for i in range(parts):
        with open(f"{argv[2]}{i + 1}.keyed", "wb") as f:
            f.writelines(keyed(line) for line in lines[bounds[i]:bounds[i + 1]])
    print(*(bounds[i + 1] - bounds[i] for i in range(parts)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
