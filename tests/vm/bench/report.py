#!/usr/bin/env python3
"""Summarises a benchmark run of tests/vm/bench.sh.

    report.py RESULTS.jsonl --meta META.env [--guest-info FILE]
              [--baseline ext4] [--md OUT.md] [--doc Documentation/benchmarks.md]
              [--plot OUT.png]

RESULTS.jsonl holds one fsbench line per measurement (config, round,
workload, threads, ops_per_s, p50_us, p99_us, ...).  Per (config, workload,
threads) the median over the rounds is reported; the ratio of a
configuration to the baseline is the median of the per-round ratios (each
from measurements interleaved in the same round), with their range.  Prints
a text table; --md writes the Markdown results section, --doc replaces the
section between the BEGIN/END markers of that file with it, --plot draws a
PNG with gnuplot (skipped with a note when gnuplot is missing).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

BEGIN = "<!-- BEGIN bench results (written by tests/vm/bench.sh) -->"
END = "<!-- END bench results -->"
WL_NAMES = {
    "create_fsync": "create+fsync",
    "create_fsync_dir": "create+fsync+dir fsync",
    "write_fsync": "4 KiB write+fsync",
    "untar": "untar (no fsync, syncfs)",
}
WL_SHORT = {
    "create_fsync": "create",
    "create_fsync_dir": "create+dir",
    "write_fsync": "4K write",
    "untar": "untar",
}


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def read_meta(path):
    meta = {}
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                k, sep, v = line.rstrip("\n").partition("=")
                if sep:
                    meta[k] = v
    return meta


def ordered(seq):
    seen = []
    for x in seq:
        if x not in seen:
            seen.append(x)
    return seen


def summarise(rows, baseline):
    configs = ordered(r["config"] for r in rows)
    workloads = ordered(r["workload"] for r in rows)
    threads = sorted(set(r["threads"] for r in rows))
    by = {}
    for r in rows:
        by.setdefault((r["config"], r["workload"], r["threads"]), []).append(r)
    med = {}
    for key, rs in by.items():
        med[key] = {
            "ops_per_s": statistics.median(r["ops_per_s"] for r in rs),
            "p50_us": statistics.median(r["p50_us"] for r in rs),
            "p99_us": statistics.median(r["p99_us"] for r in rs),
            "rounds": len(rs),
        }
    # Ratios per round, then their median: A and B of one round ran
    # side by side, so their ratio is the fairest single figure.
    ratio = {}
    for (c, w, t), rs in by.items():
        if baseline not in configs:
            break
        base = {r["round"]: r for r in by.get((baseline, w, t), [])}
        rr = [r["ops_per_s"] / base[r["round"]]["ops_per_s"]
              for r in rs if r["round"] in base and base[r["round"]]["ops_per_s"]]
        if rr:
            ratio[(c, w, t)] = (statistics.median(rr), min(rr), max(rr))
    scaling = {}
    if len(threads) > 1:
        lo, hi = threads[0], threads[-1]
        for c in configs:
            for w in workloads:
                a = {r["round"]: r for r in by.get((c, w, lo), [])}
                rr = [r["ops_per_s"] / a[r["round"]]["ops_per_s"]
                      for r in by.get((c, w, hi), [])
                      if r["round"] in a and a[r["round"]]["ops_per_s"]]
                if rr:
                    scaling[(c, w)] = statistics.median(rr)
    return configs, workloads, threads, med, ratio, scaling


def fmt_n(x):
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_ratio(r):
    m, lo, hi = r
    if abs(hi - lo) < 0.005:
        return f"{m:.2f}"
    return f"{m:.2f} ({lo:.2f}-{hi:.2f})"


def table_rows(configs, workloads, threads, med, ratio, baseline):
    out = []
    for w in workloads:
        for t in threads:
            for c in configs:
                m = med.get((c, w, t))
                if not m:
                    continue
                r = ratio.get((c, w, t))
                out.append([WL_NAMES.get(w, w), str(t), c, fmt_n(m["ops_per_s"]),
                            fmt_n(m["p50_us"]), fmt_n(m["p99_us"]),
                            "1" if c == baseline else (fmt_ratio(r) if r else "-")])
    return out


def text_table(header, rows):
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(header))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(x.rjust(widths[i]) if i >= 3 else x.ljust(widths[i])
                               for i, x in enumerate(r)))
    return "\n".join(lines)


def md_table(header, rows, right_from=3):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if i >= right_from else "---"
                            for i in range(len(header))) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(r) + " |")
    return "\n".join(lines)


def plot(path, configs, workloads, threads, med, meta):
    if not shutil.which("gnuplot"):
        print("report: gnuplot not found, no plot (scripts/install-deps.sh "
              "installs gnuplot-nox)", file=sys.stderr)
        return False
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        with open(data, "w") as f:
            for w in workloads:
                for t in threads:
                    label = f'"{WL_SHORT.get(w, w)}\\n{t} thr"'
                    vals = []
                    for key in ("ops_per_s", "p99_us"):
                        for c in configs:
                            m = med.get((c, w, t))
                            v = m[key] if m else float("nan")
                            vals.append(f"{v / 1000.0 if key == 'p99_us' else v:.4f}")
                    f.write(label + " " + " ".join(vals) + "\n")
        n = len(configs)
        ops_plot = ", ".join(
            f"'{data}' using {2 + i}{':xtic(1)' if i == 0 else ''} title '{c}'"
            for i, c in enumerate(configs))
        p99_plot = ", ".join(
            f"'{data}' using {2 + n + i}{':xtic(1)' if i == 0 else ''} title '{c}'"
            for i, c in enumerate(configs))
        title = (f"twinfs benchmark {meta.get('date', '')[:10]}: medians of "
                 f"{meta.get('rounds', '?')} interleaved rounds, QEMU TCG, "
                 f"{meta.get('guest_cpus', '?')} guest CPU, virtio disks cache=none")
        script = f"""
set terminal pngcairo size 1400,560 font "sans,10"
set output '{path}'
set multiplot layout 1,2 title "{title}"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set grid ytics
set key below
set xtics font ",9"
set bmargin 5
set ylabel "operations/s (higher is better)"
set title "Throughput"
plot {ops_plot}
set ylabel "p99 latency, ms (lower is better)"
set title "p99 latency per operation"
plot {p99_plot}
unset multiplot
"""
        sp = os.path.join(tmp, "plot.gp")
        with open(sp, "w") as f:
            f.write(script)
        r = subprocess.run(["gnuplot", sp], capture_output=True, text=True)
        if r.returncode:
            print("report: gnuplot failed:\n" + r.stderr, file=sys.stderr)
            return False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--meta")
    ap.add_argument("--guest-info")
    ap.add_argument("--baseline", default="ext4")
    ap.add_argument("--md")
    ap.add_argument("--doc")
    ap.add_argument("--plot")
    ap.add_argument("--plot-link", help="the plot's path relative to the doc")
    a = ap.parse_args()

    rows = load(a.results)
    if not rows:
        sys.exit("report: no results in " + a.results)
    meta = read_meta(a.meta)
    if a.guest_info and os.path.exists(a.guest_info):
        with open(a.guest_info) as f:
            meta.update({k: str(v) for k, v in json.load(f).items()})
    meta["rounds"] = str(max(r["round"] for r in rows))
    configs, workloads, threads, med, ratio, scaling = summarise(rows, a.baseline)

    header = ["workload", "threads", "config", "ops/s", "p50 µs", "p99 µs",
              f"ops/s ÷ {a.baseline}"]
    trows = table_rows(configs, workloads, threads, med, ratio, a.baseline)
    sheader = ["workload"] + [f"{c} {threads[-1]}t/{threads[0]}t" for c in configs]
    srows = [[WL_NAMES.get(w, w)] + [f"{scaling[(c, w)]:.2f}" if (c, w) in scaling else "-"
                                     for c in configs] for w in workloads]
    print(text_table(header, trows))
    if len(threads) > 1:
        print()
        print(text_table(sheader, srows))

    plotted = False
    if a.plot:
        plotted = plot(a.plot, configs, workloads, threads, med, meta)
        if plotted:
            print(f"\nplot: {a.plot}")

    md = []
    md.append(BEGIN)
    md.append("")
    md.append(f"Run of {meta.get('date', '?')}.")
    md.append("")
    md.append(f"- Module and tools: {meta.get('module', '?')}.")
    md.append(f"- Guest: Linux {meta.get('guest_kernel', '?')}, "
              f"{meta.get('guest_cpus', '?')} vCPU, {meta.get('guest_mem_mb', '?')} MiB, "
              f"QEMU {meta.get('qemu', '?')} TCG (no KVM), pinned to host CPU "
              f"{meta.get('pin_cpu', '?')} ({meta.get('host_cpu', '?')}, "
              f"{meta.get('host_cpus', '?')} cores).")
    md.append(f"- Disks: one {meta.get('disk_size', '?')} raw image per configuration, "
              f"virtio-blk, `cache=none`, same host file system ({meta.get('host_fs', '?')}).")
    md.append(f"- {meta.get('rounds', '?')} rounds, configurations interleaved "
              f"({', '.join(configs)} for each workload and thread count, every round); "
              f"{meta.get('secs', '?')} s per fsync measurement; untar: "
              f"{meta.get('reps', '?')} x {meta.get('files', '?')} files in "
              f"{meta.get('dirs', '?')} directories, a syncfs after each; "
              f"write file {meta.get('file_mb', '?')} MiB. Whole run: "
              f"{meta.get('wall_secs', '?')} s.")
    md.append(f"- Other load: {meta.get('other_load', 'not recorded')}.")
    md.append("")
    md.append(f"Medians over the rounds; \"ops/s ÷ {a.baseline}\" is the median of "
              "the per-round ratios (range over the rounds in brackets).")
    md.append("")
    md.append(md_table(header, trows))
    md.append("")
    if len(threads) > 1:
        md.append(f"Scaling, {threads[-1]} threads over {threads[0]} thread "
                  "(ops/s, median of per-round ratios):")
        md.append("")
        md.append(md_table(sheader, srows, right_from=1))
        md.append("")
    if plotted and a.plot_link:
        md.append(f"![throughput and p99 latency]({a.plot_link})")
        md.append("")
    md.append(END)
    section = "\n".join(md) + "\n"
    if a.md:
        with open(a.md, "w") as f:
            f.write(section)
    if a.doc:
        with open(a.doc) as f:
            doc = f.read()
        i, j = doc.find(BEGIN), doc.find(END)
        if i < 0 or j < i:
            print(f"report: no result markers in {a.doc}, not updated", file=sys.stderr)
        else:
            rest = doc[j + len(END):].lstrip("\n")
            doc = doc[:i] + section + ("\n" + rest if rest else "")
            with open(a.doc, "w") as f:
                f.write(doc)
            print(f"updated {a.doc}")


if __name__ == "__main__":
    main()
