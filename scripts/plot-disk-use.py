#!/usr/bin/env python3
"""Draws results/node-disk-use.svg from the disk-use table in
results/node-lifecycle.md (blocks, archive MB, pruned MB).

    scripts/plot-disk-use.py results/node-lifecycle.md results/node-disk-use.svg
"""
import re
import sys

source, out = sys.argv[1], sys.argv[2]
text = open(source).read()
section = text.split("## Disk use", 1)[1].split("\n## ", 1)[0]
rows = [
    tuple(float(x) for x in m.groups())
    for m in re.finditer(r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \|$", section, re.M)
]
if not rows:
    sys.exit("no disk-use rows found")
width, height, left, bottom, top, right = 640, 360, 60, 40, 20, 150
max_x = max(r[0] for r in rows)
max_y = max(max(r[1], r[2]) for r in rows) * 1.1
x = lambda v: left + (width - left - right) * v / max_x
y = lambda v: height - bottom - (height - bottom - top) * v / max_y
parts = [
    f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
    'font-family="sans-serif" font-size="12">',
    f'<rect width="{width}" height="{height}" fill="white"/>',
    f'<line x1="{left}" y1="{y(0)}" x2="{x(max_x)}" y2="{y(0)}" stroke="black"/>',
    f'<line x1="{left}" y1="{y(0)}" x2="{left}" y2="{top}" stroke="black"/>',
    f'<text x="{(left + x(max_x)) / 2}" y="{height - 8}" text-anchor="middle">finalized blocks</text>',
    f'<text x="14" y="{(top + y(0)) / 2}" transform="rotate(-90 14 {(top + y(0)) / 2})" '
    'text-anchor="middle">database on disk, MB</text>',
]
for tick in range(0, int(max_x) + 1, 10000):
    parts.append(f'<text x="{x(tick)}" y="{y(0) + 16}" text-anchor="middle">{tick // 1000}k</text>')
step = 50 if max_y > 150 else 20
for tick in range(0, int(max_y) + 1, step):
    parts.append(f'<text x="{left - 6}" y="{y(tick) + 4}" text-anchor="end">{tick}</text>')
    parts.append(f'<line x1="{left}" y1="{y(tick)}" x2="{x(max_x)}" y2="{y(tick)}" stroke="#eee"/>')
for column, colour, label in [(1, "#c0392b", "archive node"), (2, "#2471a3", "retain_blocks = 1000")]:
    points = " ".join(f"{x(r[0]):.1f},{y(r[column]):.1f}" for r in rows)
    parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
    last = rows[-1]
    parts.append(f'<text x="{x(last[0]) + 6}" y="{y(last[column]) + 4}" fill="{colour}">{label}</text>')
parts.append("</svg>")
open(out, "w").write("\n".join(parts) + "\n")
print(f"wrote {out}: {len(rows)} points")
