#!/usr/bin/env python3
"""Summarises a benchmark run of tests/vm/bench.sh.

    report.py RESULTS.jsonl --meta META.env [--guest-info FILE]
              [--setup SETUP.txt] [--baseline ext4] [--subject twinfs-nvram]
              [--md OUT.md] [--doc Documentation/benchmarks.md]
              [--plot OUT.png] [--plot-link NAME]

RESULTS.jsonl holds one fsbench line per measurement (config, round,
workload, threads, ops_per_s, p50_us, p99_us, ...).  Per (config, workload,
threads) the median over the rounds is reported; the ratio of a
configuration to the baseline is the median of the per-round ratios (each
from measurements interleaved in the same round), with their range; so is
the scaling of each configuration from 1 to 8 threads.  The headline is the
subject (twinfs-nvram) against the baseline, with the project's targets
(TARGETS below) marked met or missed.  Prints text tables; --md writes the
Markdown results section, --doc replaces the section between the BEGIN/END
markers of that file with it, --plot draws a PNG with gnuplot (skipped with
a note when gnuplot is missing).
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
    "create_fsync": "create+fsync (file only)",
    "create_fsync_dir": "create+fsync (file+dir)",
    "write_fsync": "4 KiB write+fsync",
    "untar": "untar (small files, syncfs)",
}
WL_SHORT = {
    "create_fsync": "create f",
    "create_fsync_dir": "create",
    "write_fsync": "4K write",
    "untar": "untar",
}
# The project's targets for the subject (issue 5), checked when measured:
# (kind, workload, threads, minimum, text).  "base": subject ops/s over the
# baseline's in the same round; "scale": subject's 8-thread ops/s over its
# 1-thread ops/s.  create+fsync is the durable create (file and directory
# fsynced) when it was measured, else the file-only one.
TARGETS = [
    ("base", "create", 1, 5.0, "create+fsync, 1 thread: ≥ 5x {base}"),
    ("base", "create", 8, 5.0, "create+fsync, 8 threads: ≥ 5x {base}"),
    ("scale", "create", None, 6.0, "create+fsync, 8 threads ≥ 6x 1 thread (group commit)"),
]


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
                    scaling[(c, w)] = (statistics.median(rr), min(rr), max(rr))
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
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(header))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(x.rjust(widths[i]) if i >= 3 else x.ljust(widths[i])
                               for i, x in enumerate(r)))
    return "\n".join(lines)


def md_table(header, rows, right_from=3, right_to=None):
    right_to = len(header) if right_to is None else right_to
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if right_from <= i < right_to else "---"
                            for i in range(len(header))) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(r) + " |")
    return "\n".join(lines)


def create_workload(workloads):
    """The workload the create+fsync targets are about."""
    for w in ("create_fsync_dir", "create_fsync"):
        if w in workloads:
            return w
    return None


def headline(subject, baseline, workloads, threads, med, ratio):
    """subject against baseline: ops/s, ratio, p50/p99 of both."""
    header = ["workload", "threads", f"{subject} ops/s", f"{baseline} ops/s",
              f"{subject} ÷ {baseline}", f"{subject} p50 / p99 µs",
              f"{baseline} p50 / p99 µs"]
    rows = []
    for w in workloads:
        for t in threads:
            s, b = med.get((subject, w, t)), med.get((baseline, w, t))
            if not s or not b:
                continue
            r = ratio.get((subject, w, t))
            rows.append([WL_NAMES.get(w, w), str(t), fmt_n(s["ops_per_s"]),
                         fmt_n(b["ops_per_s"]), fmt_ratio(r) if r else "-",
                         f"{fmt_n(s['p50_us'])} / {fmt_n(s['p99_us'])}",
                         f"{fmt_n(b['p50_us'])} / {fmt_n(b['p99_us'])}"])
    return header, rows


def check_targets(subject, baseline, workloads, threads, ratio, scaling):
    """Rows [target, measured, verdict] for the targets that were measured."""
    cw = create_workload(workloads)
    rows = []
    for kind, w, t, need, text in TARGETS:
        w = cw if w == "create" else w
        if w is None:
            continue
        if kind == "base":
            r = ratio.get((subject, w, t))
        elif threads and threads[0] == 1 and threads[-1] == 8:
            r = scaling.get((subject, w))
        else:
            r = None
        if r is None:
            continue
        m, lo, hi = r
        if m >= need:
            verdict = "met" if lo >= need else f"met (median; {lo:.2f} in the worst round)"
        else:
            verdict = ("**missed**" if hi < need else
                       f"**missed** (median; {hi:.2f} in the best round)")
        rows.append([text.format(base=baseline), fmt_ratio(r), verdict])
    return rows


def plot(path, configs, workloads, threads, med, ratio, scaling, meta, subject,
         baseline):
    if not shutil.which("gnuplot"):
        print("report: gnuplot not found, no plot (scripts/install-deps.sh "
              "installs gnuplot-nox)", file=sys.stderr)
        return False
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        rdata = os.path.join(tmp, "ratio")
        sdata = os.path.join(tmp, "scaling")
        with open(sdata, "w") as f:
            for w in workloads:
                vals = []
                for c in configs:
                    r = scaling.get((c, w))
                    vals += [f"{x:.4f}" for x in r] if r else ["nan"] * 3
                if any(v != "nan" for v in vals):
                    f.write(f'"{WL_SHORT.get(w, w)}" ' + " ".join(vals) + "\n")
        with open(data, "w") as f, open(rdata, "w") as g:
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
                    r = ratio.get((subject, w, t))
                    if r:
                        g.write(f"{label} {r[0]:.4f} {r[1]:.4f} {r[2]:.4f}\n")
        n = len(configs)
        ops_plot = ", ".join(
            f"'{data}' using {2 + i}{':xtic(1)' if i == 0 else ''} title '{c}'"
            for i, c in enumerate(configs))
        p99_plot = ", ".join(
            f"'{data}' using {2 + n + i}{':xtic(1)' if i == 0 else ''} title '{c}'"
            for i, c in enumerate(configs))
        have_ratio = os.path.getsize(rdata) > 0
        have_scaling = os.path.getsize(sdata) > 0 and len(threads) > 1
        nvram = (f", {subject}: {int(meta['nvram_bytes']) >> 20} MiB NVDIMM"
                 if meta.get("nvram_bytes") else "")
        title = (f"twinfs benchmark {meta.get('date', '')[:10]}: medians of "
                 f"{meta.get('rounds', '?')} interleaved rounds, QEMU TCG, "
                 f"{meta.get('guest_cpus', '?')} guest CPU, virtio disks cache=none{nvram}")
        if meta.get("nvram_mount", "1") != "1":
            title += " -- NOT MOUNTED WITH nvram= (plumbing test)"
        ratio_part = ""
        if have_ratio:
            ratio_part = f"""
unset logscale y
set yrange [0:5.8<*]
set ylabel "{subject} ops/s ÷ {baseline} ops/s (higher is better)"
set title "{subject} ÷ {baseline}, median of per-round ratios (bars: range)"
set style histogram errorbars gap 1 lw 1
set arrow 1 from graph 0, first 5 to graph 1, first 5 nohead dt 2 lw 2 lc rgb "red"
set label 1 "target for create+fsync: 5x" at graph 0.99, first 5 right front offset 0,0.8 tc rgb "red"
set arrow 2 from graph 0, first 1 to graph 1, first 1 nohead lc rgb "gray40"
plot '{rdata}' using 2:3:4:xtic(1) title '{subject} ÷ {baseline}' lc rgb "#4477aa"
unset arrow 1
unset label 1
"""
        scaling_part = ""
        if have_scaling:
            sc_plot = ", ".join(
                f"'{sdata}' using {2 + 3 * i}:{3 + 3 * i}:{4 + 3 * i}"
                f"{':xtic(1)' if i == 0 else ''} title '{c}'"
                for i, c in enumerate(configs))
            scaling_part = f"""
unset logscale y
set yrange [0:6.8<*]
set ylabel "ops/s with {threads[-1]} threads ÷ with {threads[0]} (higher is better)"
set title "Scaling, {threads[-1]} threads over {threads[0]}, median of per-round ratios (bars: range)"
set style histogram errorbars gap 1 lw 1
set arrow 3 from graph 0, first 6 to graph 1, first 6 nohead dt 2 lw 2 lc rgb "red"
set label 3 "target for {subject} create+fsync: 6x" at graph 0.99, first 6 right front offset 0,0.8 tc rgb "red"
set arrow 2 from graph 0, first 1 to graph 1, first 1 nohead lc rgb "gray40"
plot {sc_plot}
"""
        script = f"""
set terminal pngcairo size 1500,{1060 if have_ratio or have_scaling else 560} font "sans,10"
set output '{path}'
set multiplot layout {2 if have_ratio or have_scaling else 1},2 title "{title}"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set grid ytics
set key below
set xtics font ",8"
set bmargin 5
set ylabel "operations/s (higher is better)"
set title "Throughput"
plot {ops_plot}
set ylabel "p99 latency, ms (lower is better)"
set title "p99 latency per operation"
plot {p99_plot}
{ratio_part}
{scaling_part}
unset multiplot
"""
        return run_gnuplot(tmp, script)


def run_gnuplot(tmp, script):
    """Runs gnuplot on SCRIPT (written to TMP/plot.gp); False if it failed."""
    sp = os.path.join(tmp, "plot.gp")
    with open(sp, "w") as f:
        f.write(script)
    r = subprocess.run(["gnuplot", sp], capture_output=True, text=True)
    if r.returncode:
        print("report: gnuplot failed:\n" + r.stderr, file=sys.stderr)
        return False
    return True


def write_section(section, md_path, doc_path, begin, end, what):
    """Writes SECTION (BEGIN ... END) to MD_PATH and in place of the one
    between those markers in DOC_PATH (each if given); WHAT names the
    markers in the message when DOC_PATH has none."""
    if md_path:
        with open(md_path, "w") as f:
            f.write(section)
    if doc_path:
        with open(doc_path) as f:
            doc = f.read()
        i, j = doc.find(begin), doc.find(end)
        if i < 0 or j < i:
            print(f"report: no {what} markers in {doc_path}, not updated", file=sys.stderr)
        else:
            rest = doc[j + len(end):].lstrip("\n")
            doc = doc[:i] + section + ("\n" + rest if rest else "")
            with open(doc_path, "w") as f:
                f.write(doc)
            print(f"updated {doc_path}")


def read_setup(path):
    lines = []
    if path and os.path.exists(path):
        with open(path) as f:
            lines = [line.rstrip("\n") for line in f if line.strip()]
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--meta")
    ap.add_argument("--guest-info")
    ap.add_argument("--setup", help="the guest's setup.txt (mounts, NVDIMM)")
    ap.add_argument("--baseline", default="ext4")
    ap.add_argument("--subject", default="twinfs-nvram",
                    help="the configuration of the headline and the targets "
                    "(default twinfs-nvram; else the first one not the baseline)")
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
    setup = read_setup(a.setup)
    configs, workloads, threads, med, ratio, scaling = summarise(rows, a.baseline)
    subject = a.subject
    if subject not in configs:
        others = [c for c in configs if c != a.baseline]
        subject = others[0] if others else None
    no_nvram = meta.get("nvram_mount", "1") != "1"

    header = ["workload", "threads", "config", "ops/s", "p50 µs", "p99 µs",
              f"ops/s ÷ {a.baseline}"]
    trows = table_rows(configs, workloads, threads, med, ratio, a.baseline)
    sheader = ["workload"] + [f"{c} {threads[-1]}t/{threads[0]}t" for c in configs]
    srows = [[WL_NAMES.get(w, w)] + [fmt_ratio(scaling[(c, w)]) if (c, w) in scaling else "-"
                                     for c in configs] for w in workloads]
    hheader, hrows = ([], [])
    tgt = []
    if subject and a.baseline in configs:
        hheader, hrows = headline(subject, a.baseline, workloads, threads, med, ratio)
        tgt = check_targets(subject, a.baseline, workloads, threads, ratio, scaling)
    theader = ["target", "measured (range over rounds)", "verdict"]

    if no_nvram:
        print(f"WARNING: {subject} was mounted WITHOUT nvram= "
              "(BENCH_NVRAM_MOUNT=0): these are not NVRAM numbers\n")
    if hrows:
        print(f"{subject} against {a.baseline} (medians; ratios: median of "
              "per-round ratios, range in brackets)")
        print(text_table(hheader, hrows))
        print()
    if len(threads) > 1:
        print(f"scaling {threads[-1]} threads / {threads[0]} thread")
        print(text_table(sheader, srows))
        print()
    if tgt:
        print(text_table(theader, [[x.replace("**", "") for x in r] for r in tgt]))
        print()
    for line in read_setup(a.setup):
        if "kernel during the run: " in line:
            print("twinfs logged: " + line.split("kernel during the run: ", 1)[1])
    print("all measurements")
    print(text_table(header, trows))

    plotted = False
    if a.plot:
        plotted = plot(a.plot, configs, workloads, threads, med, ratio, scaling,
                       meta, subject, a.baseline)
        if plotted:
            print(f"\nplot: {a.plot}")

    md = []
    md.append(BEGIN)
    md.append("")
    md.append(f"Run of {meta.get('date', '?')}.")
    md.append("")
    if no_nvram:
        md.append(f"> **Not the NVRAM configuration:** {subject} was mounted "
                  "without `nvram=` (`BENCH_NVRAM_MOUNT=0`, a plumbing test).")
        md.append("")
    if meta.get("quick") == "1":
        md.append("> Smoke run (`BENCH_QUICK=1`): short measurements, not "
                  "for conclusions.")
        md.append("")
    md.append(f"- Module and tools: {meta.get('module', '?')}.")
    md.append(f"- Guest: Linux {meta.get('guest_kernel', '?')}, "
              f"{meta.get('guest_cpus', '?')} vCPU, {meta.get('guest_mem_mb', '?')} MiB, "
              f"QEMU {meta.get('qemu', '?')} TCG (no KVM), pinned to host CPU "
              f"{meta.get('pin_cpu', '?')} ({meta.get('host_cpu', '?')}, "
              f"{meta.get('host_cpus', '?')} cores).")
    nv = ""
    if meta.get("nvram_bytes"):
        nv = (f"; {subject} also gets a {int(meta['nvram_bytes']) >> 20} MiB "
              "file-backed NVDIMM (`-device nvdimm`, `memory-backend-file,share=on`, "
              "zero-filled before the run) as `/dev/pmem0`")
    md.append(f"- Disks: one {meta.get('disk_size', '?')} raw image per configuration, "
              f"virtio-blk, `cache=none`, same host file system ({meta.get('host_fs', '?')})"
              f"{nv}.")
    during = [line.split("kernel during the run: ", 1)[1] for line in setup
              if "kernel during the run: " in line]
    setup = [line for line in setup if "kernel during the run: " not in line]
    if setup:
        md.append("- Set-up as the guest saw it: " + "; ".join(
            f"`{line}`" if any(k in line for k in ("mounted:", "kernel:", "after the run:"))
            else line
            for line in setup) + ".")
    if during:
        md.append("- **twinfs logged during the run** (besides its mount messages; "
                  "count in brackets): " + "; ".join(f"`{x}`" for x in during) + ".")
    md.append(f"- {meta.get('rounds', '?')} rounds, configurations interleaved "
              f"({', '.join(configs)} for each workload and thread count, every round); "
              f"{meta.get('secs', '?')} s per fsync measurement; untar: "
              f"{meta.get('reps', '?')} x {meta.get('files', '?')} files in "
              f"{meta.get('dirs', '?')} directories, a syncfs after each; "
              f"write file {meta.get('file_mb', '?')} MiB. Whole run: "
              f"{meta.get('wall_secs', '?')} s.")
    md.append(f"- Other load: {meta.get('other_load', 'not recorded')}.")
    md.append("")
    if hrows:
        md.append(f"**{subject} against {a.baseline}.** Medians over the rounds; "
                  f"\"{subject} ÷ {a.baseline}\" is the median of the per-round "
                  "ratios (range over the rounds in brackets).")
        md.append("")
        md.append(md_table(hheader, hrows, right_from=2))
        md.append("")
    if len(threads) > 1:
        md.append(f"**Scaling**, {threads[-1]} threads over {threads[0]} thread "
                  "(ops/s, median of per-round ratios, range in brackets):")
        md.append("")
        md.append(md_table(sheader, srows, right_from=1))
        md.append("")
    if tgt:
        md.append("**Targets** (issue 5):")
        md.append("")
        md.append(md_table(theader, tgt, right_from=1, right_to=2))
        md.append("")
    if not hrows or set(configs) != {subject, a.baseline}:
        # With only the subject and the baseline the headline has it all.
        md.append(f"All measurements (medians; \"ops/s ÷ {a.baseline}\" as above):")
        md.append("")
        md.append(md_table(header, trows))
        md.append("")
    if plotted and a.plot_link:
        md.append(f"![throughput, p99 latency and ratios]({a.plot_link})")
        md.append("")
    md.append(END)
    write_section("\n".join(md) + "\n", a.md, a.doc, BEGIN, END, "result")


if __name__ == "__main__":
    main()
