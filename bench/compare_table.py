#!/usr/bin/env python3
"""Table and plot script from the runs bench/compare.sh recorded in OUTDIR/raw.jsonl.

usage: python3 bench/compare_table.py OUTDIR

Writes OUTDIR/table.md (also printed on stdout) and OUTDIR/step_time.gp, a gnuplot script
with its data inline that draws OUTDIR/step_time.png when run from OUTDIR. Standard library
only. Running it again on a kept OUTDIR redraws both without measuring anything.

Each line of raw.jsonl is {"round": R, "tool": T, "data": D}: T "compare" for the facts the
driver recorded (CPU, arguments, load), "dd_bench" for one line of dd_bench's stdout (its
header, or one size in one mode), "peer" for the PyTorch peer's line.
"""
import json
import math
import os
import statistics
import sys


def load_records(path):
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"compare_table.py: {path}:{number}: not JSON ({e.msg})")
    return records


class Runs:
    """The recorded lines, sorted by kind: facts, dd_bench's header, and per size and round
    the exact and fast dd_bench lines and the peer's line."""

    def __init__(self, records):
        self.facts = {}
        self.dd_header = None
        self.by_size = {}  # size -> round -> {"exact": D, "fast": D, "peer": D}
        for rec in records:
            tool, data, rnd = rec.get("tool"), rec.get("data", {}), rec.get("round", 0)
            if tool == "compare":
                self.facts.update(data)
            elif tool == "dd_bench" and "bench" in data:
                self.dd_header = self.dd_header or data
            elif tool == "dd_bench" and "step_s" in data:
                # dd_bench before --mode existed printed no "mode": exact was all it ran.
                self.slot(data["size"], rnd)[data.get("mode", "exact")] = data
            elif tool == "peer" and "median_s" in data:
                self.slot(data["size"], rnd)["peer"] = data

    def slot(self, size, rnd):
        return self.by_size.setdefault(size, {}).setdefault(rnd, {})

    def sizes(self):
        return sorted(self.by_size)

    def values(self, size, kind, field):
        """The field of every round's `kind` line at this size that has it, in round order."""
        rounds = self.by_size[size]
        return [rounds[r][kind][field] for r in sorted(rounds) if field in rounds[r].get(kind, {})]

    def ratios(self, size, kind):
        """deepdream step / PyTorch step, pair by pair: only same-round pairs are compared, so a
        slow phase of the machine that hit both cancels out."""
        rounds = self.by_size[size]
        return [rounds[r][kind]["step_s"] / rounds[r]["peer"]["median_s"]
                for r in sorted(rounds) if kind in rounds[r] and "peer" in rounds[r]]

    def first(self, kind, field):
        for size in self.sizes():
            found = self.values(size, kind, field)
            if found:
                return found[0]
        return None


def median_or_none(xs):
    return statistics.median(xs) if xs else None


def cell(x, fmt):
    return "n/a" if x is None else format(x, fmt)


def fast_fell_back(kernel):
    """dd_bench names the fast kernel, or says there is none on this CPU ("none", or a name
    starting with "float32"): fast mode then ran the float32 kernels."""
    return kernel == "none" or str(kernel).startswith("float32")


def fast_note(runs):
    if not runs.facts.get("fast_mode"):
        return "n/a (this dd_bench has no --mode)"
    kernel = runs.first("fast", "fast_kernel")
    if kernel is None:
        return "no fast lines recorded"
    if fast_fell_back(kernel):
        return f"kernel {kernel} (this CPU has no fast kernel: fast ran the float32 kernels)"
    return f"kernel {kernel}"


def env_note(header):
    names = ["DD_CPU", "OPENBLAS_CORETYPE", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"]
    return ", ".join(f"{n}={header.get(n) if header.get(n) is not None else 'unset'}" for n in names)


def header_lines(runs):
    f, h = runs.facts, runs.dd_header or {}
    torch_version = runs.first("peer", "torch")
    peer_steps = runs.first("peer", "steps")
    peer_warmup = runs.first("peer", "warmup")
    lines = [
        f"- CPU: {f.get('cpu_model', 'unknown')}, {h.get('cpus_online', '?')} online; "
        f"threads {h.get('threads', f.get('threads', '?'))} for both programs",
        f"- deepdream's kernels: {h.get('kernels', '?')}; OpenBLAS: {h.get('openblas_config', '?')}; "
        f"core {h.get('openblas_corename', '?')} (the sgemm yardstick; deepdream uses OpenBLAS only at the plain level)",
        f"- environment: {env_note(h)}; peer: {f.get('peer_env') or 'as is'}",
        f"- deepdream {h.get('version', '?')} at {f.get('git', '?')}: dd_bench --reps {h.get('reps', '?')}, "
        f"objective {h.get('objective', '?')}; fast mode: {fast_note(runs)}",
        f"- PyTorch {torch_version or '?'} (peer: float32 NCHW, BN folded; median of {peer_steps or '?'} "
        f"steps after {peer_warmup if peer_warmup is not None else '?'} warm-up)",
        f"- rounds: {f.get('rounds', '?')}, each size deepdream then PyTorch; the table gives medians "
        f"over rounds, ratios are medians of same-round pairs",
        f"- {f.get('date', '?')}; load average {f.get('loadavg_start', '?')} before, "
        f"{f.get('loadavg_end', '?')} after; wall time {f.get('wall_s', '?')} s",
    ]
    return lines


def summary_table(runs):
    rows = [
        "| size | deepdream exact step s | fast step s | PyTorch step s | exact / PyTorch | fast / PyTorch "
        "| deepdream exact GFLOP/s | OpenBLAS sgemm GFLOP/s (same shapes, same run) | step / sgemm | arena MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in runs.sizes():
        arena = median_or_none(runs.values(s, "exact", "arena_bytes"))
        rows.append("| " + " | ".join([
            str(s),
            cell(median_or_none(runs.values(s, "exact", "step_s")), ".3f"),
            cell(median_or_none(runs.values(s, "fast", "step_s")), ".3f"),
            cell(median_or_none(runs.values(s, "peer", "median_s")), ".3f"),
            cell(median_or_none(runs.ratios(s, "exact")), ".2f"),
            cell(median_or_none(runs.ratios(s, "fast")), ".2f"),
            cell(median_or_none(runs.values(s, "exact", "step_gflops")), ".0f"),
            cell(median_or_none(runs.values(s, "exact", "sgemm_gflops")), ".0f"),
            cell(median_or_none(runs.values(s, "exact", "step_frac_of_sgemm")), ".2f"),
            cell(None if arena is None else arena / 2**20, ".1f"),
        ]) + " |")
    return rows


def round_table(runs):
    """Every round on its own line: the sgemm rate and the peer's spread tell a round in which
    the machine was slowed (docs/PERFORMANCE.md) from a clean one."""
    rows = [
        "| size | round | exact step s | fast step s | PyTorch step s | exact / PyTorch | fast / PyTorch "
        "| sgemm GFLOP/s | PyTorch max / min |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in runs.sizes():
        for r, kinds in sorted(runs.by_size[s].items()):
            exact, fast, peer = kinds.get("exact"), kinds.get("fast"), kinds.get("peer")
            sgemm = exact.get("sgemm_gflops") if exact else None
            rows.append("| " + " | ".join([
                str(s), str(r),
                cell(exact and exact["step_s"], ".3f"),
                cell(fast and fast["step_s"], ".3f"),
                cell(peer and peer["median_s"], ".3f"),
                cell(exact and peer and exact["step_s"] / peer["median_s"], ".2f"),
                cell(fast and peer and fast["step_s"] / peer["median_s"], ".2f"),
                cell(sgemm, ".0f"),
                cell(peer and peer["max_s"] / peer["min_s"], ".2f"),
            ]) + " |")
    return rows


def ticks_125(low, high):
    """1, 2, 5 times the powers of ten between low and high: labelled steps a reader can
    interpolate between on a log axis that may span less than a decade."""
    ticks, decade = [], 10.0 ** math.floor(math.log10(low))
    while decade <= high:
        ticks += [m * decade for m in (1, 2, 5) if low <= m * decade <= high]
        decade *= 10
    return ticks


def gnuplot_script(runs):
    """A self-contained gnuplot script: the data sits in a here-document, so the plot can be
    redrawn or restyled from OUTDIR alone. Points are medians over rounds, bars min..max."""
    series = [("exact", "step_s", "deepdream, exact (float32)")]
    if runs.facts.get("fast_mode") and any(runs.values(s, "fast", "step_s") for s in runs.sizes()):
        kernel = runs.first("fast", "fast_kernel")
        shown = "float32 fallback" if fast_fell_back(kernel) else kernel
        series.append(("fast", "step_s", f"deepdream, fast ({shown})"))
    series.append(("peer", "median_s", f"PyTorch {runs.first('peer', 'torch') or ''} (oneDNN, float32)"))

    f, h = runs.facts, runs.dd_header or {}
    threads = h.get("threads", f.get("threads", "?"))
    title = (f"One DeepDream step (forward to mixed5 + gradient to the input), {threads} threads\\n"
             f"{f.get('cpu_model', 'unknown CPU')}; median of {f.get('rounds', '?')} round(s), bars min-max")
    out = [
        "# Drawn by bench/compare_table.py from raw.jsonl; run from this directory: gnuplot step_time.gp",
        'set terminal pngcairo size 1000,680 font "sans,11"',
        'set output "step_time.png"',
        f'set title "{title}"',
        'set xlabel "image side, pixels (square input; log scale)"',
        'set ylabel "seconds per step (log scale)"',
        "set logscale xy",
        "set grid xtics ytics mxtics mytics",
        "set key top left box opaque",
        "set xtics (" + ", ".join(f'"{s}" {s}' for s in runs.sizes()) + ")",
    ]
    # Ranges hug the data: gnuplot's log autoscale would round out to whole decades and
    # squeeze a 256..1024 sweep into a corner.
    sizes = runs.sizes()
    out.append(f"set xrange [{sizes[0] / 1.15:g}:{sizes[-1] * 1.15:g}]")
    times = [t for kind, field, _ in series for s in sizes for t in runs.values(s, kind, field)]
    low, high = min(times) / 1.3, max(times) * 1.3
    out.append(f"set yrange [{low:.4g}:{high:.4g}]")
    out.append("set ytics (" + ", ".join(f'"{t:g}" {t:g}' for t in ticks_125(low, high)) + ")")
    plots = []
    for index, (kind, field, label) in enumerate(series):
        out.append(f"$s{index} << EOD")
        out.append("# side median_s min_s max_s")
        for s in sizes:
            xs = runs.values(s, kind, field)
            if xs:
                out.append(f"{s} {statistics.median(xs):.6f} {min(xs):.6f} {max(xs):.6f}")
        out.append("EOD")
        plots.append(f'$s{index} using 1:2:3:4 with yerrorlines lw 2 pt 7 ps 1.2 title "{label}"')
    out.append("plot " + ", \\\n     ".join(plots))
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) == 2 and sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return
    if len(sys.argv) != 2:
        print("usage: python3 bench/compare_table.py OUTDIR", file=sys.stderr)
        sys.exit(2)
    outdir = sys.argv[1]
    raw = os.path.join(outdir, "raw.jsonl")
    if not os.path.isfile(raw):
        sys.exit(f"compare_table.py: {raw}: no such file (run bench/compare.sh first)")
    runs = Runs(load_records(raw))
    if not runs.sizes():
        sys.exit(f"compare_table.py: {raw}: no size was measured")

    text = "\n".join(["# deepdream vs PyTorch: one DeepDream step", ""] + header_lines(runs) + [""]
                     + summary_table(runs) + ["", "Per round:", ""] + round_table(runs)) + "\n"
    with open(os.path.join(outdir, "table.md"), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(outdir, "step_time.gp"), "w", encoding="utf-8") as f:
        f.write(gnuplot_script(runs))
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
