#!/usr/bin/env python3
"""Prints the flag table of docs/configuration.md from `dynkv server --help`.

    go build -o /tmp/dynkv ./cmd/dynkv
    /tmp/dynkv server --help | deploy/gen-configuration-md.py

The table is generated so that it cannot drift from the binary: rerun it
after adding a flag and paste the output between the markers.
"""
import re
import sys

rows = []
lines = sys.stdin.read().splitlines()
i = 0
while i < len(lines):
    m = re.match(r"^  --(\S+)(?: (\S+))?$", lines[i])
    if not m:
        i += 1
        continue
    name, typ = m.group(1), m.group(2) or "bool"
    desc = lines[i + 1].strip() if i + 1 < len(lines) else ""
    env = ""
    em = re.search(r" \[\$(\w+)\]$", desc)
    if em:
        env, desc = em.group(1), desc[: em.start()]
    default = ""
    dm = re.search(r" \(default (.*)\)$", desc)
    if dm:
        default, desc = dm.group(1).strip('"'), desc[: dm.start()]
    rows.append((name, typ, env, default, desc))
    i += 2

def cell(s):
    return s.replace("|", "\\|")

print("| Flag | Environment | Default | Meaning |")
print("| --- | --- | --- | --- |")
for name, typ, env, default, desc in rows:
    flag = f"`--{name}`" + (f" *{typ}*" if typ != "bool" else "")
    shown = "the host name" if name == "id" else (f"`{cell(default)}`" if default else "—")
    print(f"| {flag} | `{env}` | {shown} | {cell(desc)} |")
