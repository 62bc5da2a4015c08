#!/usr/bin/env python3
"""plot.py - the benchmark as pictures: latency percentile curves per
server, and connections/s, CPU per connection and messages/s as bars.

    stress/plot.py [--out DIR] [--scenario rr] FILE...

Each FILE is either bench.py's results (bench-results.json: every server of
it, histograms merged over its runs, rates and CPU its medians) or an
echo-stress --json report (or an `echo-stress merge` of several), shown as
LABEL=FILE or under its file name. Writes DIR/latency.png (round-trip
latency against percentile, 50 % to 99.99 %, both axes logarithmic, one
curve per server; from the histogram buckets in the reports, so every
point is exact to the histogram's resolution, never interpolated between
printed percentiles) and DIR/rates.png (bars). Needs matplotlib (Debian:
python3-matplotlib); --data prints the figures as JSON instead and needs
nothing.
"""
import argparse
import json
import math
import os
import sys

# Percentiles drawn: dense in 1/(1-q), from 50 % to 99.99 %.
TICKS = [50, 90, 99, 99.9, 99.99]
STEPS = 200


def percentile(buckets, total, mx, p):
    """Value at percentile p: the top of the bucket holding the
    ceil(p% x total)-th sample, never above the exact max (HdrHistogram's
    and echo-stress's definition)."""
    want = max(1, math.ceil(p / 100.0 * total))
    acc = 0
    for lo, hi, n in buckets:
        acc += n
        if acc >= want:
            return min(hi, mx)
    return mx


def curve(hist):
    """[(percentile, latency in ms)] from a histogram {buckets, max}."""
    b = sorted(hist["buckets"])
    total = sum(n for _, _, n in b)
    if not total:
        return []
    pts = []
    for i in range(STEPS + 1):
        # evenly spaced in log10(1 / (1 - q)), q from 0.5 to 0.9999
        x = math.log10(2) + (4 - math.log10(2)) * i / STEPS
        p = 100.0 * (1 - 10 ** -x)
        pts.append((p, percentile(b, total, hist["max"], p) / 1000.0))
    return pts


def add_buckets(into, buckets):
    for lo, hi, n in buckets:
        into[(lo, hi)] = into.get((lo, hi), 0) + n


def from_bench(doc, scenario):
    """Series per server from bench.py's results."""
    out = []
    for s in doc["servers"]:
        acc, mx = {}, 0
        for r in doc["runs"]:
            x = (r["servers"].get(s) or {}).get(scenario) or {}
            add_buckets(acc, x.get("rt_buckets") or [])
            mx = max(mx, x.get("rt_max_us") or 0)
        m = doc["median"].get(s, {})
        out.append({
            "label": s,
            "latency": {"buckets": [[lo, hi, n] for (lo, hi), n in
                                    acc.items()], "max": mx} if acc else None,
            "conn_per_s": m.get("churn.conn_per_s"),
            "cpu_us_per_conn": m.get("churn.cpu_us_per_conn"),
            "msgs_per_s": m.get("rr.msgs_per_s"),
            "cpu_us_per_msg": m.get("rr.cpu_us_per_msg"),
        })
    return out


def from_report(label, rep):
    rt = rep["latency_us"]["round_trip"]
    c = rep["connections"]
    return [{
        "label": label,
        "latency": rt if "buckets" in rt else None,
        "conn_per_s": c["per_s_measure_phase"] or None,
        "cpu_us_per_conn": None,
        "msgs_per_s": rep["messages_per_s"] or None,
        "cpu_us_per_msg": None,
    }]


def load(args):
    series = []
    for spec in args.files:
        label, _, path = spec.rpartition("=")
        with open(path) as f:
            doc = json.load(f)
        if "runs" in doc and "servers" in doc:
            series += from_bench(doc, args.scenario)
        elif "latency_us" in doc:
            series += from_report(label or os.path.splitext(
                os.path.basename(path))[0], doc)
        else:
            raise SystemExit("plot.py: %s: neither bench.py results nor an "
                             "echo-stress report" % path)
    return series


def draw(series, out, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("plot.py: needs matplotlib (Debian: apt-get "
                         "install python3-matplotlib); --data prints the "
                         "figures without it")
    os.makedirs(out, exist_ok=True)
    files = []

    lat = [s for s in series if s["latency"]]
    if lat:
        fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
        for s in lat:
            pts = curve(s["latency"])
            xs = [1 / (1 - p / 100.0) for p, _ in pts]
            ax.step(xs, [v for _, v in pts], where="post", label=s["label"],
                    linewidth=1.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks([1 / (1 - t / 100.0) for t in TICKS])
        ax.set_xticklabels(["%g%%" % t for t in TICKS])
        ax.set_xlim(2, 1e4)
        ax.set_xlabel("percentile")
        ax.set_ylabel("round-trip latency (ms)")
        ax.set_title(title or "round-trip latency by percentile")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        files.append(os.path.join(out, "latency.png"))
        fig.savefig(files[-1])
        plt.close(fig)

    panels = [(k, t) for k, t in (
        ("conn_per_s", "connections/s"),
        ("cpu_us_per_conn", "server CPU µs per connection"),
        ("msgs_per_s", "messages/s"),
        ("cpu_us_per_msg", "server CPU µs per message"))
        if any(s[k] for s in series)]
    if panels:
        fig, axes = plt.subplots(1, len(panels),
                                 figsize=(3.6 * len(panels), 4.2), dpi=110,
                                 squeeze=False)
        labels = [s["label"] for s in series]
        for ax, (k, t) in zip(axes[0], panels):
            vals = [s[k] or 0 for s in series]
            bars = ax.bar(range(len(vals)), vals,
                          color=["C%d" % i for i in range(len(vals))])
            for b, v in zip(bars, vals):
                if not v:
                    ax.annotate("n/a", (b.get_x() + b.get_width() / 2, 0),
                                ha="center", va="bottom", fontsize=8)
                else:
                    ax.annotate("{:,.0f}".format(v) if v >= 100 else
                                "{:.1f}".format(v),
                                (b.get_x() + b.get_width() / 2, v),
                                ha="center", va="bottom", fontsize=8)
            ax.set_xticks(range(len(vals)))
            ax.set_xticklabels(labels, rotation=30, ha="right")
            ax.set_title(t, fontsize=10)
            ax.grid(True, axis="y", alpha=0.3)
        fig.tight_layout()
        files.append(os.path.join(out, "rates.png"))
        fig.savefig(files[-1])
        plt.close(fig)
    return files


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", metavar="[LABEL=]FILE")
    ap.add_argument("--out", default=".", help="directory for the PNGs")
    ap.add_argument("--scenario", default="rr",
                    help="bench.py scenario whose latency is drawn")
    ap.add_argument("--title")
    ap.add_argument("--data", action="store_true",
                    help="print the figures as JSON, draw nothing")
    args = ap.parse_args(argv)
    series = load(args)
    if args.data:
        for s in series:
            s["curve"] = curve(s["latency"]) if s["latency"] else []
            s["at"] = {"%g" % t: (percentile(sorted(s["latency"]["buckets"]),
                                             sum(n for _, _, n in
                                                 s["latency"]["buckets"]),
                                             s["latency"]["max"], t) / 1000.0
                                  if s["latency"] else None) for t in TICKS}
            del s["latency"]
        try:
            json.dump(series, sys.stdout, indent=1)
            print()
        except BrokenPipeError:
            pass
        return 0
    for f in draw(series, args.out, args.title):
        print(f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
