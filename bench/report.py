#!/usr/bin/env python3
"""Turns the results directory of bench/compare.sh into a markdown section.

    report.py RESULTS_DIR                      print the section
    report.py --replace DOC.md SECTION.md      put SECTION.md between the
                                               compare.sh markers of DOC.md

Each `sluice bench --json` run is one file BROKER__WORKLOAD.json; a missing
or empty file is a run that failed (its .err file says why).
"""

import json
import os
import sys

BROKERS = [("sluice", "Sluice"), ("tansu-sqlite", "Tansu sqlite://"), ("tansu-memory", "Tansu memory://")]
BEGIN = "<!-- compare.sh:begin -->"
END = "<!-- compare.sh:end -->"
# The load generator is pinned to one core: above this share of it, the
# client, not the broker, was (or may have been) the bottleneck.
CLIENT_BOUND_CORES = 0.9


def load(results, name):
    path = os.path.join(results, name)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def error_of(results, broker, workload):
    try:
        with open(os.path.join(results, f"{broker}__{workload}.err")) as f:
            lines = [line.strip() for line in f if line.startswith("error:")]
        return lines[-1] if lines else None
    except OSError:
        return None


def machine(results):
    limits = {}
    iperf = load(results, "machine__iperf3.json")
    try:
        limits["loopback_mbps"] = iperf["end"]["sum_received"]["bits_per_second"] / 8 / 1e6
    except (TypeError, KeyError):
        pass
    fio = load(results, "machine__fio_write.json")
    try:
        limits["disk_write_mbps"] = fio["jobs"][0]["write"]["bw_bytes"] / 1e6
    except (TypeError, KeyError, IndexError):
        pass
    fio = load(results, "machine__fio_fsync.json")
    try:
        percentiles = fio["jobs"][0]["sync"]["lat_ns"]["percentile"]
        limits["fsync_p50_us"] = percentiles["50.000000"] / 1000
        limits["fsync_p99_us"] = percentiles["99.000000"] / 1000
    except (TypeError, KeyError, IndexError):
        pass
    try:
        with open(os.path.join(results, "machine__pagecache.txt")) as f:
            wall, system = (float(v) for v in f.read().split()[-2:])
        limits["pagecache_mbps"] = 2**30 / wall / 1e6
        limits["pagecache_sys_s_per_gb"] = system / (2**30 / 1e9)
    except (OSError, ValueError):
        pass
    return limits


def ms(micros):
    millis = micros / 1000
    return f"{millis:.2f}" if millis < 10 else f"{millis:.1f}" if millis < 100 else f"{millis:.0f}"


def flags(run):
    """Marks on a cell: † load generator near its core's limit."""
    cores = run.get("client_cores")
    return " †" if cores is not None and cores >= CLIENT_BOUND_CORES else ""


def throughput_cell(run, error):
    if run is None:
        return "failed" + (f" ({error})" if error else "")
    text = f"{run['megabytes_per_second']:.1f} MB/s, {run['records_per_second'] / 1000:.0f}k rec/s"
    latency = run.get("ack_latency")
    if latency:
        text += f", ack p99 {ms(latency['p99_us'])} ms"
    if run.get("complete") is False:
        text += " (incomplete)"
    if error:
        text += " ✗"
    return text + flags(run)


def e2e_cell(run, error):
    if run is None or not run.get("e2e_latency"):
        return "failed" + (f" ({error})" if error else "")
    latency = run["e2e_latency"]
    text = "/".join(ms(latency[k]) for k in ("p50_us", "p99_us", "p999_us", "max_us")) + " ms"
    if run.get("received", 0) < run.get("records", 0):
        text += f" ({run['received']} of {run['records']} received)"
    elif error:
        text += " ✗"
    return text + flags(run)


def ratio(a, b):
    return f"{a / b:.2f}×" if a and b else "—"


def section(results):
    run_info = load(results, "run.json") or {}
    limits = machine(results)
    runs = {}
    for broker, _ in BROKERS:
        for name in os.listdir(results):
            if name.startswith(broker + "__") and name.endswith(".json"):
                workload = name[len(broker) + 2 : -5]
                runs[(broker, workload)] = load(results, name)

    def get(broker, workload):
        return runs.get((broker, workload)), error_of(results, broker, workload)

    def mbps(broker, workload):
        run = runs.get((broker, workload))
        return run["megabytes_per_second"] if run else None

    def p99(broker, workload, key="e2e_latency"):
        run = runs.get((broker, workload))
        return run[key]["p99_us"] if run and run.get(key) else None

    out = []
    quick = " (QUICK=1: short runs, small sizes)" if run_info.get("quick") else ""
    out.append(f"## Side by side: Sluice, Tansu {run_info.get('tansu_version', '')}, machine limits{quick}")
    out.append("")
    out.append(f"- Date: {run_info.get('date', '?')}. Machine: {run_info.get('cores', '?')} cores "
               f"({run_info.get('cpu_model', '?')}), {int(run_info.get('mem_kib', 0)) / 1048576:.0f} GiB RAM, "
               f"Linux {run_info.get('kernel', '?')}; load average before the run: {run_info.get('load_before', '?')} "
               "(other work on the machine was not stopped).")
    dirty = " plus uncommitted changes" if run_info.get("dirty") not in ("0", 0, None) else ""
    out.append(f"- Commit: `{run_info.get('commit', '?')}`{dirty}; sluice from `{run_info.get('sluice_bin', '')}`.")
    out.append(f"- Pinning: every broker runs on core {run_info.get('broker_cpu')} and the load generator "
               f"(`sluice bench`, librdkafka) on core {run_info.get('client_cpu')} (`taskset -c`); iperf3 is "
               "pinned the same way. † marks a run whose load generator used ≥ 90% of its core: there the "
               "client, not the broker, may have been the bottleneck.")
    out.append(f"- Sizes: saturated produce runs send {run_info.get('produce_bytes', 0) / 2**20:.0f} MiB or run "
               f"{run_info.get('run_seconds')} s, whichever ends first; e2e runs last {run_info.get('e2e_seconds')} s; "
               f"the consume backlog is {run_info.get('backlog_bytes', 0) / 2**20:.0f} MiB of 1 KiB records in 1 partition. "
               "Each produce and e2e workload gets a fresh broker and data dir. MB = 10^6 bytes.")
    if run_info.get("tansu_status", "ok") != "ok":
        out.append(f"- **Tansu was not measured: {run_info['tansu_status']}.**")
    out.append("")

    loop = limits.get("loopback_mbps")
    disk = limits.get("disk_write_mbps")
    header = ["Workload"] + [label for _, label in BROKERS] + ["Machine limit", "Sluice / Tansu sqlite", "Sluice / Tansu memory"]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" * len(header))
    for size in (1024, 100):
        for partitions in (1, 16):
            for acks in ("1", "all"):
                workload = f"produce_{size}B_{partitions}p_acks{acks}"
                label = f"produce {'1 KiB' if size == 1024 else '100 B'}, {partitions} p, acks={acks}"
                cells = [throughput_cell(*get(b, workload)) for b, _ in BROKERS]
                limit = (f"{disk:.0f} MB/s disk (fio)" if acks == "all" and disk else
                         f"{loop:.0f} MB/s loopback (iperf3)" if acks == "1" and loop else "—")
                ours = mbps("sluice", workload)
                out.append("| " + " | ".join([label] + cells + [limit, ratio(ours, mbps("tansu-sqlite", workload)),
                                                               ratio(ours, mbps("tansu-memory", workload))]) + " |")
    def words(name):
        try:
            with open(os.path.join(results, name)) as f:
                return f.read().split()
        except OSError:
            return None

    rates = words("e2e_rates")
    for index, percent in enumerate((50, 80)):
        workload = f"e2e_{percent}pct"
        rate = f" = {int(rates[index]):,} rec/s" if rates else ""
        label = f"e2e 1 KiB, 1 p, acks=1 at {percent}% of Sluice's saturated rate{rate}: p50/p99/p99.9/max"
        cells = [e2e_cell(*get(b, workload)) for b, _ in BROKERS]
        ours = p99("sluice", workload)
        out.append("| " + " | ".join([label] + cells + ["—", ratio(ours, p99("tansu-sqlite", workload)) + " (p99)",
                                                          ratio(ours, p99("tansu-memory", workload)) + " (p99)"]) + " |")
    acks_all = words("acks_all_rate")
    workload = "produce_1024B_1p_acksall_50pct"
    rate = f" = {int(acks_all[0]):,} rec/s" if acks_all else ""
    label = f"produce 1 KiB, 1 p, acks=all at 50% of Sluice's saturated acks=all rate{rate}"
    cells = [throughput_cell(*get(b, workload)) for b, _ in BROKERS]
    ours = p99("sluice", workload, "ack_latency")
    fsync_limit = (f"fsync p50 {ms(limits['fsync_p50_us'])} ms (fio)" if "fsync_p50_us" in limits else "—")
    out.append("| " + " | ".join([label] + cells + [fsync_limit,
                                                      ratio(ours, p99("tansu-sqlite", workload, "ack_latency")) + " (ack p99)",
                                                      ratio(ours, p99("tansu-memory", workload, "ack_latency")) + " (ack p99)"]) + " |")
    workload = "consume_backlog"
    cells = [throughput_cell(*get(b, workload)) for b, _ in BROKERS]
    ours = mbps("sluice", workload)
    out.append("| " + " | ".join(["consume the backlog from the start"] + cells +
                                 [f"{loop:.0f} MB/s loopback" if loop else "—",
                                  ratio(ours, mbps("tansu-sqlite", workload)),
                                  ratio(ours, mbps("tansu-memory", workload))]) + " |")
    # Resources over the whole run.
    rss_cells = []
    for broker, _ in BROKERS:
        peaks = [r.get("broker_peak_rss_bytes") for (b, _), r in runs.items() if b == broker and r]
        peaks = [p for p in peaks if p]
        rss_cells.append(f"{max(peaks) / 2**20:.0f} MiB" if peaks else "—")
    out.append("| " + " | ".join(["broker peak RSS, worst workload"] + rss_cells + ["—", "", ""]) + " |")
    cpu_cells = []
    for broker, _ in BROKERS:
        run = runs.get((broker, "produce_1024B_1p_acks1"))
        if run and run.get("broker_cpu_seconds") is not None and run.get("bytes"):
            cpu_cells.append(f"{run['broker_cpu_seconds'] / (run['bytes'] / 1e9):.2f} CPU s/GB")
        else:
            cpu_cells.append("—")
    out.append("| " + " | ".join(["broker CPU per GB produced (1 KiB, 1 p, acks=1)"] + cpu_cells + ["—", "", ""]) + " |")
    out.append("")
    out.append("Ratios are Sluice ÷ peer: above 1 Sluice is faster for MB/s; for p99 latency below 1 is better. "
               "✗: the run reported an error (its report was still printed); “failed”: no report.")
    if "fsync_p50_us" in limits:
        out.append(f"Disk fsync latency (fio, 4 KiB write + fsync): p50 {ms(limits['fsync_p50_us'])} ms, "
                   f"p99 {ms(limits['fsync_p99_us'])} ms.")
    if "pagecache_mbps" in limits:
        out.append(f"Page-cache write on the broker's core (dd, 1 GiB, no fsync): {limits['pagecache_mbps']:.0f} MB/s, "
                   f"{limits['pagecache_sys_s_per_gb']:.2f} CPU s/GB of system time.")
    linger = acks_all[1] if acks_all and len(acks_all) > 1 else None
    if linger is not None:
        out.append(f"Fixed-rate runs (e2e, acks=all at 50%) use linger.ms={linger}; saturated runs use librdkafka's defaults.")
    if run_info.get("warm_memory"):
        out.append("The page cache was warmed before the machine limits and before every broker start "
                   "(see `warm_memory` in bench/compare.sh).")
    out.append("")
    out.extend(targets(runs, limits))
    out.append("")
    out.append("Commands (PORT, PID and DATA_DIR are filled in by the script; the same commands run against each broker):")
    out.append("")
    out.append("```")
    out.append("QUICK=%s bench/compare.sh" % (1 if run_info.get("quick") else 0))
    try:
        with open(os.path.join(results, "commands.log")) as f:
            seen = []
            for line in f:
                line = line.rstrip()
                if line and line not in seen:
                    seen.append(line)
        out.extend(seen)
    except OSError:
        pass
    out.append("```")
    return "\n".join(out) + "\n"


def targets(runs, limits):
    """The issue's targets, met or missed, from this run alone."""
    def run(broker, workload):
        return runs.get((broker, workload)) or {}

    lines = ["Targets of issue 4 in this run:", ""]

    def check(text, value, goal, met):
        if value is None or goal is None:
            lines.append(f"- {text}: not measured")
        else:
            lines.append(f"- {text}: {'met' if met else '**missed**'} ({value} vs {goal})")

    base = "produce_1024B_1p_acks1"
    ours = run("sluice", base).get("megabytes_per_second")
    memory = run("tansu-memory", base).get("megabytes_per_second")
    sqlite = run("tansu-sqlite", base).get("megabytes_per_second")
    loop = limits.get("loopback_mbps")
    fmt = lambda v: None if v is None else f"{v:.0f} MB/s"
    check("1 KiB, 1 p, acks=1 ≥ 1.25× Tansu memory://", fmt(ours), fmt(memory and 1.25 * memory),
          ours and memory and ours >= 1.25 * memory)
    check("1 KiB, 1 p, acks=1 ≥ 10× Tansu sqlite://", fmt(ours), fmt(sqlite and 10 * sqlite),
          ours and sqlite and ours >= 10 * sqlite)
    check("1 KiB, 1 p, acks=1 ≥ 45% of loopback TCP", fmt(ours), fmt(loop and 0.45 * loop),
          ours and loop and ours >= 0.45 * loop)
    durable = run("sluice", "produce_1024B_1p_acksall")
    disk = limits.get("disk_write_mbps")
    value = durable.get("megabytes_per_second")
    check("acks=all (1 KiB, 1 p) ≥ 70% of fio sequential write", fmt(value), fmt(disk and 0.7 * disk),
          value and disk and value >= 0.7 * disk)
    p99 = (durable.get("ack_latency") or {}).get("p99_us")
    fsync = limits.get("fsync_p50_us")
    check("acks=all p99 ack latency ≤ 3× median fsync, saturated run", p99 and f"{ms(p99)} ms",
          fsync and f"{ms(3 * fsync)} ms", p99 and fsync and p99 <= 3 * fsync)
    fixed = run("sluice", "produce_1024B_1p_acksall_50pct")
    p99 = (fixed.get("ack_latency") or {}).get("p99_us")
    check("acks=all p99 ack latency ≤ 3× median fsync, at 50% of the saturated rate", p99 and f"{ms(p99)} ms",
          fsync and f"{ms(3 * fsync)} ms", p99 and fsync and p99 <= 3 * fsync)
    e2e = run("sluice", "e2e_50pct").get("e2e_latency") or {}
    check("e2e at 50%: p99 ≤ 5 ms", e2e.get("p99_us") and f"{ms(e2e['p99_us'])} ms", "5 ms",
          e2e.get("p99_us") is not None and e2e["p99_us"] <= 5000)
    check("e2e at 50%: p99.9 ≤ 20 ms", e2e.get("p999_us") and f"{ms(e2e['p999_us'])} ms", "20 ms",
          e2e.get("p999_us") is not None and e2e["p999_us"] <= 20000)
    drain = run("sluice", "consume_backlog").get("megabytes_per_second")
    check("consume from backlog ≥ 1.5× Sluice's produce", fmt(drain), fmt(ours and 1.5 * ours),
          drain and ours and drain >= 1.5 * ours)
    peaks = [r.get("broker_peak_rss_bytes") for (b, _), r in runs.items() if b == "sluice" and r]
    peaks = [p for p in peaks if p]
    peak = max(peaks) if peaks else None
    check("Sluice peak RSS ≤ 256 MiB", peak and f"{peak / 2**20:.0f} MiB", "256 MiB",
          peak is not None and peak <= 256 * 2**20)
    return lines


def replace(doc_path, section_path):
    with open(section_path) as f:
        body = f.read()
    try:
        with open(doc_path) as f:
            doc = f.read()
    except OSError:
        doc = "# Benchmarks\n"
    block = f"{BEGIN}\n{body}{END}\n"
    if BEGIN in doc and END in doc:
        start = doc.index(BEGIN)
        end = doc.index(END) + len(END)
        if doc[end:end + 1] == "\n":
            end += 1
        doc = doc[:start] + block + doc[end:]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block
    with open(doc_path, "w") as f:
        f.write(doc)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--replace":
        replace(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 2:
        sys.stdout.write(section(sys.argv[1]))
    else:
        sys.exit(__doc__)
