#!/usr/bin/python3
"""Turn the raw results of one bench/compare run into its markdown table.

    report.py RAW_DIR

RAW_DIR holds what bench/compare wrote: meta.json, time-PHASE-rN.json (hyperfine
--export-json, one file per interleaved round, command names = tool keys),
rss-PHASE-TOOL.txt (peak RSS in KiB from /usr/bin/time -f %M, one per line) and
disk.tsv (tool, KiB). Prints markdown on stdout.
"""

import glob
import json
import os
import re
import statistics
import sys

PHASES = [
    ("pull-busybox", "cold pull + unpack, busybox (1 layer)"),
    ("pull-debian", "cold pull + unpack, debian bookworm (2 layers)"),
    ("pull-plus", "pull debian-plus, debian already in the store (1 new layer)"),
    ("warm", "warm start of `true` in debian"),
]

TOOLS = {
    "devbox": "devbox pull",
    "podman": "podman pull",
    "umoci": "skopeo copy + umoci unpack --rootless",
    "ch-image": "ch-image pull",
    "devbox-run": "devbox run -- true",
    "ref-sandbox": "devbox's sandbox in C: bench/refsandbox.c (reference)",
    "ch-run": "ch-run ROOTFS -- true",
    "bwrap": "bwrap --bind ROOTFS / … /bin/true",
    "podman-run": "podman run --rm --network=none",
    "unshare": "unshare -Urm chroot ROOTFS (floor)",
    "host": "host /bin/true",
}
DEVBOX = {"devbox", "devbox-run"}
STORES = {
    "devbox": "devbox (its dirs under $XDG_CACHE_HOME, $XDG_DATA_HOME, $XDG_STATE_HOME)",
    "podman": "podman (graphroot)",
    "umoci": "skopeo + umoci (OCI layout + 2 bundles)",
    "ch-image": "ch-image ($CH_IMAGE_STORAGE)",
}


def order(keys):
    known = list(TOOLS)
    return sorted(keys, key=lambda k: known.index(k) if k in known else len(known))


def times(raw, phase):
    out = {}
    for path in sorted(glob.glob(os.path.join(raw, f"time-{phase}-r*.json"))):
        try:
            with open(path) as f:
                results = json.load(f)["results"]
        except (ValueError, KeyError):
            continue  # a round that hyperfine aborted: its failure is in meta.json
        for r in results:
            out.setdefault(r["command"], []).extend(r.get("times") or [])
    return out


def rss(raw, phase):
    out = {}
    for path in glob.glob(os.path.join(raw, f"rss-{phase}-*.txt")):
        tool = re.match(rf"rss-{re.escape(phase)}-(.+)\.txt$", os.path.basename(path)).group(1)
        with open(path) as f:
            vals = [int(l) for l in f.read().split("\n") if l.strip().isdigit()]
        if vals:
            out[tool] = [v / 1024 for v in vals]  # KiB -> MiB
    return out


def fmt(v, unit):
    if unit == "s":
        return f"{v:.2f} s" if v >= 1 else f"{v * 1000:.0f} ms"
    if unit == "ms":
        return f"{v * 1000:.1f} ms"
    return f"{v:.1f} MiB"


def ratio_fmt(r):
    return f"{r:.2f}×" if r >= 0.1 else f"{r:.2g}×"


def rows(label, data, unit, n_expected=None):
    """data: tool -> list of values. Yields markdown rows with the devbox/peer ratio."""
    dev = [k for k in data if k in DEVBOX and data[k]]
    dmed = statistics.median(data[dev[0]]) if dev else None
    for tool in order(data):
        vals = data[tool]
        if not vals:
            continue
        med = statistics.median(vals)
        if tool in DEVBOX:
            ratio = "1"
        elif dmed is None:
            ratio = "n/a"
        elif med > 0:
            ratio = ratio_fmt(dmed / med)
        else:
            ratio = "—"
        name = TOOLS.get(tool, tool)
        n = f" (n={len(vals)})"
        yield (f"| {label} | {name}{n} | {fmt(med, unit)} | {fmt(min(vals), unit)} | "
               f"{fmt(max(vals), unit)} | {ratio} |")


def main():
    raw = sys.argv[1]
    with open(os.path.join(raw, "meta.json")) as f:
        meta = json.load(f)
    out = []
    out.append(f"### bench/compare, {meta['date']}")
    out.append("")
    out.append(f"- machine: {meta['nproc']} cores, {meta['cpu']}, {meta['mem']} RAM, kernel "
               f"{meta['kernel']}, {meta['os']}")
    out.append(f"- load average: {meta['load_start']} at the start, {meta['load_end']} at the end "
               "(shared machine: figures move ±20–40 % between runs; compare ratios, not absolutes)")
    out.append(f"- devbox {meta['devbox_rev']}; " + "; ".join(meta["versions"]))
    out.append(f"- runs: {meta['runs']}; interleaved round by round (the order of the tools rotates "
               "every round); cold = every tool's store emptied before each run, `sync` after")
    out.append(f"- images (local registry on 127.0.0.1, gzip layers): {meta['images']}")
    for fail in meta.get("failures", []):
        out.append(f"- **failed**: {fail}")
    out.append("")
    out.append("| measure | tool | median | min | max | devbox/peer |")
    out.append("| --- | --- | ---: | ---: | ---: | ---: |")
    for phase, label in PHASES:
        out.extend(rows(label, times(raw, phase), "ms" if phase == "warm" else "s"))
    for phase, label in PHASES:
        out.extend(rows("peak RSS: " + label, rss(raw, phase), "MiB"))
    disk = {}
    path = os.path.join(raw, "disk.tsv")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                tool, kib = line.split()
                disk[tool] = [int(kib) / 1024]
    dev = disk.get("devbox", [None])[0]
    for tool in order(disk):
        v = disk[tool][0]
        ratio = "1" if tool == "devbox" else (ratio_fmt(dev / v) if dev is not None and v else "n/a")
        out.append(f"| disk (`du -sx`) after debian + debian-plus | {STORES.get(tool, tool)} | "
                   f"{v:.1f} MiB | — | — | {ratio} |")
    out.append("")
    out.append("devbox/peer = devbox's median ÷ the peer's median (below 1: devbox is faster or "
               "smaller). Peak RSS is GNU time's %M: the largest single process among the command and "
               "the children it waited for (daemonized helpers such as podman's conmon and pause "
               "process are not counted).")
    print("\n".join(out))


if __name__ == "__main__":
    main()
