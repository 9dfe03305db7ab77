#!/usr/bin/env python3
"""Summarises a run of tests/vm/bench-mirror.sh (the mirroring benchmark).

    report_mirror.py OUTDIR --meta META.env [--md OUT.md]
                     [--doc Documentation/benchmarks.md]
                     [--plot OUT.png] [--plot-link NAME]

OUTDIR holds results.jsonl (one fsbench line per measurement), rtt.jsonl
(the round trips A-B), setup.txt ("config: note"), unavailable.txt
("config: reason") and guest-info.json.  Per (config, workload, threads)
the median over the rounds; a ratio of two configurations is the median
of the per-round ratios (measurements of one round ran seconds apart),
with their range.  Reported: every measurement; each twinfs configuration
over ext4 on DRBD and over local ext4 with the targets of issue 6; the
8-thread/1-thread ratios; (mirrored p50 - local p50) in round trips.
Prints text tables; --md writes the Markdown section, --doc replaces the
section between the mirror markers of that file, --plot draws a PNG with
gnuplot.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import (fmt_n, fmt_ratio, md_table, ordered, read_meta,  # noqa: E402
                    run_gnuplot, text_table, write_section)

BEGIN = "<!-- BEGIN mirror bench results (written by tests/vm/bench-mirror.sh) -->"
END = "<!-- END mirror bench results -->"
DRBD, EXT4, LOCAL = "ext4-drbd", "ext4", "twinfs-local"
ALL_CONFIGS = ["twinfs-local", "twinfs-mirror-tcp", "twinfs-mirror-rdma", DRBD, EXT4]
TRANSPORT = {"twinfs-mirror-tcp": "tcp", "twinfs-mirror-rdma": "rdma"}
WL_NAMES = {"create_fsync_dir": "create+fsync (file+dir)",
            "create_fsync": "create+fsync (file only)",
            "write_fsync": "4 KiB write+fsync"}
WL_SHORT = {"create_fsync_dir": "create", "create_fsync": "create f",
            "write_fsync": "4K write"}
# Issue 6: (config, over, minimum).
TARGETS = [("twinfs-mirror-rdma", DRBD, 10.0), ("twinfs-mirror-tcp", DRBD, 5.0),
           ("twinfs-mirror-rdma", EXT4, 1.0), ("twinfs-mirror-tcp", EXT4, 1.0)]


def load_jsonl(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            rows = [json.loads(x) for x in f if x.strip()]
    return rows


def load_notes(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                c, sep, text = line.rstrip("\n").partition(": ")
                if sep:
                    out.append((c, text))
    return out


def per_round_ratio(by, a, b, w, t):
    ra = {r["round"]: r for r in by.get((a, w, t), [])}
    rb = {r["round"]: r for r in by.get((b, w, t), [])}
    rr = [ra[k]["ops_per_s"] / rb[k]["ops_per_s"] for k in ra
          if k in rb and rb[k]["ops_per_s"]]
    return (statistics.median(rr), min(rr), max(rr)) if rr else None


def scaling(by, c, w, lo, hi):
    a = {r["round"]: r for r in by.get((c, w, lo), [])}
    rr = [r["ops_per_s"] / a[r["round"]]["ops_per_s"] for r in by.get((c, w, hi), [])
          if r["round"] in a and a[r["round"]]["ops_per_s"]]
    return (statistics.median(rr), min(rr), max(rr)) if rr else None


def verdict(r, need):
    m, lo, hi = r
    if m >= need:
        return "met" if lo >= need else f"met (median; {lo:.2f} in the worst round)"
    return "**missed**" if hi < need else f"**missed** (median; {hi:.2f} in the best round)"


def plot(path, configs, workloads, threads, med, ratios, meta, unavail):
    if not shutil.which("gnuplot"):
        print("report: gnuplot not found, no plot", file=sys.stderr)
        return False
    tw = [c for c in configs if c.startswith("twinfs")]
    with tempfile.TemporaryDirectory() as tmp:
        data, rdata = os.path.join(tmp, "data"), os.path.join(tmp, "ratio")
        with open(data, "w") as f, open(rdata, "w") as g:
            for w in workloads:
                for t in threads:
                    label = f'"{WL_SHORT.get(w, w)}\\n{t} thr"'
                    vals = []
                    for key in ("ops_per_s", "p50_us"):
                        for c in configs:
                            m = med.get((c, w, t))
                            v = (m[key] / 1000.0 if key == "p50_us" else m[key]) if m else float("nan")
                            vals.append(f"{v:.4f}")
                    f.write(label + " " + " ".join(vals) + "\n")
                    rv = []
                    for over in (DRBD, EXT4):
                        for c in tw:
                            r = ratios.get((c, over, w, t))
                            rv += [f"{x:.4f}" for x in r] if r else ["nan"] * 3
                    g.write(label + " " + " ".join(rv) + "\n")
        n, k = len(configs), len(tw)

        def bars(col0, count, names):
            return ", ".join(f"'{data}' using {col0 + i}{':xtic(1)' if i == 0 else ''} title '{c}'"
                             for i, c in enumerate(names[:count]))

        def rbars(block):
            return ", ".join(
                f"'{rdata}' using {2 + 3 * (block * k + i)}:{3 + 3 * (block * k + i)}:"
                f"{4 + 3 * (block * k + i)}{':xtic(1)' if i == 0 else ''} title '{c}'"
                for i, c in enumerate(tw))
        title = (f"twinfs mirroring benchmark {meta.get('date', '')[:10]}: medians of "
                 f"{meta.get('rounds', '?')} interleaved rounds, two QEMU TCG guests "
                 "(each pinned to a core), UDP-socket link")
        if unavail:
            title += "\\n" + "; ".join(f"{c}: not available" for c in unavail)
        script = f"""
set terminal pngcairo size 1500,1060 font "sans,10"
set output '{path}'
set multiplot layout 2,2 title "{title}"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key below
set xtics font ",8"
set bmargin 5
set logscale y
set ylabel "operations/s (higher is better)"
set title "Throughput"
plot {bars(2, n, configs)}
set ylabel "p50 latency, ms (lower is better)"
set title "p50 latency per operation"
plot {bars(2 + n, n, configs)}
set style histogram errorbars gap 1 lw 1
set yrange [0.1<*:12<*]
set ylabel "ops/s ÷ ext4-drbd ops/s, log scale (higher is better)"
set title "twinfs ÷ ext4 on DRBD protocol C, median of per-round ratios (bars: range)"
set arrow 1 from graph 0, first 5 to graph 1, first 5 nohead dt 2 lw 2 lc rgb "red"
set label 1 "target TCP: 5x" at graph 0.99, first 5 right front offset 0,0.8 tc rgb "red"
set arrow 2 from graph 0, first 10 to graph 1, first 10 nohead dt 2 lw 2 lc rgb "dark-red"
set label 2 "target RDMA: 10x" at graph 0.99, first 10 right front offset 0,0.8 tc rgb "dark-red"
plot {rbars(0)}
unset arrow 1
unset label 1
unset arrow 2
unset label 2
set yrange [0.1<*:2<*]
set ylabel "ops/s ÷ local ext4 ops/s, log scale (higher is better)"
set title "twinfs ÷ local ext4 (unmirrored), median of per-round ratios (bars: range)"
set arrow 3 from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 2 lc rgb "red"
set label 3 "target mirrored: 1x" at graph 0.99, first 1 right front offset 0,0.8 tc rgb "red"
plot {rbars(1)}
unset multiplot
"""
        return run_gnuplot(tmp, script)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--meta")
    ap.add_argument("--md")
    ap.add_argument("--doc")
    ap.add_argument("--plot")
    ap.add_argument("--plot-link")
    a = ap.parse_args()
    d = a.outdir
    rows = load_jsonl(os.path.join(d, "results.jsonl"))
    if not rows:
        sys.exit("report: no results in " + d)
    rtts = load_jsonl(os.path.join(d, "rtt.jsonl"))
    notes = load_notes(os.path.join(d, "setup.txt"))
    unavail = dict(load_notes(os.path.join(d, "unavailable.txt")))
    meta = read_meta(a.meta)
    gi = os.path.join(d, "guest-info.json")
    if os.path.exists(gi):
        with open(gi) as f:
            meta.update({k: str(v) for k, v in json.load(f).items()})
    meta["rounds"] = str(max(r["round"] for r in rows))
    wanted = meta.get("configs", "").split() or ALL_CONFIGS

    measured = ordered(r["config"] for r in rows)
    configs = [c for c in ALL_CONFIGS if c in measured] + [c for c in measured if c not in ALL_CONFIGS]
    workloads = ordered(r["workload"] for r in rows)
    threads = sorted(set(r["threads"] for r in rows))
    by = {}
    for r in rows:
        by.setdefault((r["config"], r["workload"], r["threads"]), []).append(r)
    med = {}
    for key, rs in by.items():
        med[key] = {k: statistics.median(r[k] for r in rs)
                    for k in ("ops_per_s", "p50_us", "p99_us")}
        mw = [r["mirror_writes"] / r["ops"] for r in rs if "mirror_writes" in r and r["ops"]]
        if mw:
            med[key]["mirror_writes_per_op"] = statistics.median(mw)
    ratios = {}
    for c in configs:
        for over in (DRBD, EXT4):
            for w in workloads:
                for t in threads:
                    r = per_round_ratio(by, c, over, w, t)
                    if r:
                        ratios[(c, over, w, t)] = r
    scal = {}
    if len(threads) > 1:
        for c in configs:
            for w in workloads:
                r = scaling(by, c, w, threads[0], threads[-1])
                if r:
                    scal[(c, w)] = r
    rtt = {}
    for kind in ("tcp", "rdma"):
        v = [x["p50_us"] for x in rtts if x.get("kind") == kind]
        if v:
            rtt[kind] = (statistics.mean(v), v)

    # --- tables ---------------------------------------------------------
    header = ["workload", "threads", "config", "ops/s", "p50 µs", "p99 µs",
              f"÷ {DRBD}", f"÷ {EXT4}", "mirror writes/op"]
    trows = []
    for w in workloads:
        for t in threads:
            for c in configs:
                m = med.get((c, w, t))
                if not m:
                    continue
                rd, re_ = ratios.get((c, DRBD, w, t)), ratios.get((c, EXT4, w, t))
                trows.append([WL_NAMES.get(w, w), str(t), c, fmt_n(m["ops_per_s"]),
                              fmt_n(m["p50_us"]), fmt_n(m["p99_us"]),
                              "1" if c == DRBD else (fmt_ratio(rd) if rd else "-"),
                              "1" if c == EXT4 else (fmt_ratio(re_) if re_ else "-"),
                              f"{m['mirror_writes_per_op']:.2f}" if "mirror_writes_per_op" in m else ""])
            for c in wanted:
                if c not in measured:
                    trows.append([WL_NAMES.get(w, w), str(t), c, "not available",
                                  "", "", "", "", ""])
    theader = ["target", "workload", "threads", "measured (range over rounds)", "verdict"]
    tgt = []
    for c, over, need in TARGETS:
        text = f"{c} ≥ {need:g}x {over}"
        if c not in measured:
            if c in wanted or c in unavail:
                tgt.append([text, "all", "1, 8", "-",
                            f"not available: {unavail.get(c, 'not measured')}"])
            continue
        for w in workloads:
            for t in threads:
                r = ratios.get((c, over, w, t))
                if r:
                    tgt.append([text, WL_NAMES.get(w, w), str(t), fmt_ratio(r), verdict(r, need)])
    sheader = ["workload"] + [f"{c}" for c in configs]
    srows = [[WL_NAMES.get(w, w)] + [fmt_ratio(scal[(c, w)]) if (c, w) in scal else "-"
                                     for c in configs] for w in workloads]
    lheader = ["config", "workload", "threads", "mirrored p50 µs", f"{LOCAL} p50 µs",
               "difference µs", "round trip p50 µs", "difference ÷ round trip"]
    lrows = []
    for c in configs:
        kind = TRANSPORT.get(c)
        if not kind:
            continue
        rk = rtt.get(kind)
        how = kind
        if not rk and kind == "rdma":
            rk, how = rtt.get("tcp"), "tcp (no RDMA round trip measured)"
        for w in workloads:
            for t in threads:
                m, l_ = med.get((c, w, t)), med.get((LOCAL, w, t))
                if not m or not l_ or not rk:
                    continue
                diff = m["p50_us"] - l_["p50_us"]
                lrows.append([c, WL_NAMES.get(w, w), str(t), fmt_n(m["p50_us"]),
                              fmt_n(l_["p50_us"]), fmt_n(diff), f"{rk[0]:,.0f} ({how})",
                              f"{diff / rk[0]:.2f}"])
    rtt_text = []
    for kind, (mean, v) in rtt.items():
        xs = [x for x in rtts if x.get("kind") == kind]
        rtt_text.append(
            f"{kind.upper()} 64-byte ping-pong A→B→A: p50 "
            + " / ".join(f"{x['p50_us']:,.0f} µs ({x.get('phase', '?')})" for x in xs)
            + f", p99 {max(x['p99_us'] for x in xs):,.0f} µs"
            + (f" ({xs[0]['how']})" if xs[0].get("how") else
               " (netrtt, TCP_NODELAY, 1000 round trips after 20)"))

    print("mirroring benchmark: all measurements (medians; ratios: median of per-round ratios)")
    print(text_table(header, trows))
    print()
    print("targets (issue 6)")
    print(text_table(theader, [[x.replace("**", "") for x in r] for r in tgt]))
    print()
    if len(threads) > 1:
        print(f"scaling {threads[-1]} threads / {threads[0]} thread (ops/s)")
        print(text_table(sheader, srows))
        print()
    print("round trips: " + ("; ".join(rtt_text) or "none measured"))
    if lrows:
        print(text_table(lheader, lrows))
    for c, why in unavail.items():
        print(f"not available: {c}: {why}")

    plotted = False
    if a.plot:
        plotted = plot(a.plot, configs, workloads, threads, med, ratios, meta, unavail)
        if plotted:
            print(f"\nplot: {a.plot}")

    # --- Markdown -------------------------------------------------------
    md = [BEGIN, "", f"Run of {meta.get('date', '?')}.", ""]
    if meta.get("quick") == "1":
        md += ["> Development run (`BENCH_QUICK=1`): short measurements, not for conclusions.", ""]
    md.append(f"- Module and tools: {meta.get('module', '?')}.")
    md.append(f"- Guests: two, Linux {meta.get('guest_kernel', '?')}, "
              f"{meta.get('guest_cpus', '?')} vCPU and {meta.get('guest_mem_mb', '?')} MiB each, "
              f"QEMU {meta.get('qemu', '?')} TCG (no KVM); {meta.get('pin', '?')} "
              f"({meta.get('host_cpu', '?')}, {meta.get('host_cpus', '?')} cores); "
              "network: one virtio-net each on a QEMU UDP-socket link (10.0.0.1 ↔ 10.0.0.2).")
    md.append(f"- Disks: {meta.get('disk_size', '?')} raw images, virtio-blk, `cache=none`, "
              f"host file system {meta.get('host_fs', '?')}; NVDIMMs of "
              f"{int(meta.get('nvram_bytes') or 0) >> 20} MiB (file-backed, zero-filled): "
              "A's `/dev/pmem0` (twinfs-local) and `/dev/pmem1` (twinfs mirrored), "
              f"B's `/dev/pmem0` (the mirror target's copy); drbd-utils {meta.get('drbd_utils', '?')}.")
    setup = [(c, t) for c, t in notes if "kernel during the run: " not in t]
    during = [t.split("kernel during the run: ", 1)[1] for c, t in notes
              if "kernel during the run: " in t]
    if setup:
        md.append("- Set-up as the guests saw it: " + "; ".join(f"{c}: {t}" for c, t in setup) + ".")
    if during:
        md.append("- **twinfs logged during the run** (besides mount messages): "
                  + "; ".join(f"`{x}`" for x in during) + ".")
    for c, why in unavail.items():
        md.append(f"- **{c}: not available** — {why}.")
    md.append(f"- {meta.get('rounds', '?')} rounds, configurations interleaved "
              f"({', '.join(configs)} for each workload and thread count, every round); "
              f"{meta.get('secs', '?')} s per measurement; write file "
              f"{meta.get('file_mb', '?')} MiB. Whole run: {meta.get('wall_secs', '?')} s.")
    md.append(f"- Other load: {meta.get('other_load', 'not recorded')}.")
    md.append("- Round trips measured in the same run: " + ("; ".join(rtt_text) or "none") + ".")
    md.append("")
    md.append(f"**Targets** (issue 6; ratios of ops/s, median of the per-round ratios, "
              "range in brackets):")
    md.append("")
    md.append(md_table(theader, tgt, right_from=3, right_to=4))
    md.append("")
    md.append(f"**All measurements** (medians over the rounds; \"÷ {DRBD}\" and \"÷ {EXT4}\": "
              "ops/s ratio, median of the per-round ratios; \"mirror writes/op\": the "
              "mirror link's WRITEs per counted operation, from `/sys/fs/twinfs/<dev>/mirror`):")
    md.append("")
    md.append(md_table(header, trows))
    md.append("")
    if len(threads) > 1:
        md.append(f"**Scaling**, ops/s with {threads[-1]} threads ÷ with {threads[0]} "
                  "(median of per-round ratios, range in brackets):")
        md.append("")
        md.append(md_table(sheader, srows, right_from=1))
        md.append("")
    if lrows:
        md.append(f"**What mirroring adds to an operation**, in network round trips: "
                  f"(mirrored p50 − {LOCAL} p50) ÷ the round trip's p50 (mean of the "
                  "measurements before and after):")
        md.append("")
        md.append(md_table(lheader, lrows, right_from=3))
        md.append("")
    if plotted and a.plot_link:
        md.append(f"![mirroring: throughput, p50 latency, ratios to DRBD and to ext4]({a.plot_link})")
        md.append("")
    md.append(END)
    write_section("\n".join(md) + "\n", a.md, a.doc, BEGIN, END, "mirror result")


if __name__ == "__main__":
    main()
