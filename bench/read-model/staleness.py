#!/usr/bin/env python3
"""How stale the order read model gets under load, and what its topics cost on disk.

Runs checkout-load at a rate against the native stack (`deploy/native/stack.sh
start`), and meanwhile asks `GET /orders?limit=1` four times a second for the
staleness the answer states (`staleness.staleness_seconds`, and the
`Read-Model-Lag-Records` header). Afterwards it prints:

- the stated staleness over the run (p50, p99, max) and the lag in records;
- the projection's own delay per record (event time -> applied), as the
  order service's `checkout_read_model_delay_seconds` summary reports it;
- the bytes the two topics the read model replays (order.events,
  orchestrator.events) hold on the broker's disk per order placed, from the
  partitions' segment files before and after the run.

    bench/read-model/staleness.py --rate 20 --duration 30
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ORDER = "http://127.0.0.1:8080"
TOPICS = ("order.events", "orchestrator.events")


def segment_bytes(data_dir):
    """Bytes of the replayed topics' segment files (not their preallocated indexes)."""
    total = 0
    for topic in TOPICS:
        for path in glob.glob(os.path.join(data_dir, f"{topic}-*", "*.log")):
            total += os.path.getsize(path)
    return total


def orders_placed():
    """Orders in the order service's database (this is a bench on the local stack)."""
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "checkout_order", "-tAc",
                          "SELECT COUNT(*) FROM orders"], check=True, capture_output=True, text=True)
    return int(out.stdout.strip())


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def poll(stop, samples):
    while not stop.is_set():
        try:
            with urllib.request.urlopen(f"{ORDER}/orders?limit=1", timeout=2) as response:
                body = json.load(response)
                lag = int(response.headers.get("Read-Model-Lag-Records", "-1"))
            stated = body.get("staleness", {}).get("staleness_seconds")
            if stated is not None:
                samples.append((stated, lag))
        except (OSError, ValueError) as error:
            print(f"poll: {error}", file=sys.stderr)
        stop.wait(0.25)


def delay_quantiles():
    """p50/p99 of the projection's delay, from the histogram's buckets
    (the upper bound of the bucket each quantile falls in, as Prometheus'
    histogram_quantile would interpolate within it)."""
    with urllib.request.urlopen(f"{ORDER}/metrics", timeout=5) as response:
        text = response.read().decode()
    buckets = []
    for line in text.splitlines():
        if line.startswith("checkout_read_model_delay_seconds_bucket{"):
            bound = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if bound == "+Inf" else float(bound), float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    result = {}
    for q in (0.5, 0.99):
        previous_bound, previous_count = 0.0, 0.0
        for bound, count in buckets:
            if total and count >= q * total:
                if bound == float("inf"):
                    result[f"p{int(q * 100)}"] = f"> {previous_bound} s"
                else:
                    share = (q * total - previous_count) / max(count - previous_count, 1)
                    result[f"p{int(q * 100)}"] = f"{previous_bound + share * (bound - previous_bound):.4f} s"
                break
            previous_bound, previous_count = bound, count
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--data-dir", default=os.path.join(ROOT, ".stack", "kafka", "data"))
    parser.add_argument("--load", default=os.path.join(ROOT, "target", "release", "checkout-load"))
    args = parser.parse_args()

    before, orders_before = segment_bytes(args.data_dir), orders_placed()
    stop, samples = threading.Event(), []
    poller = threading.Thread(target=poll, args=(stop, samples), daemon=True)
    poller.start()
    out = os.path.join(ROOT, "target", "read-model-staleness.json")
    command = [args.load, "--rate", str(args.rate), "--duration", str(args.duration),
               "--warmup", str(args.warmup), "--json", out]
    subprocess.run(command, check=True)
    # Let the projection catch up, then stop sampling.
    time.sleep(2)
    stop.set()
    poller.join()
    after = segment_bytes(args.data_dir)
    placed = orders_placed() - orders_before

    stated = [s for s, _ in samples]
    lags = [lag for _, lag in samples if lag >= 0]
    print(f"\nread model under {args.rate}/s for {args.duration} s ({len(samples)} answers sampled)")
    print(f"stated staleness: p50 {percentile(stated, 50):.3f} s, p99 {percentile(stated, 99):.3f} s, "
          f"max {max(stated, default=float('nan')):.3f} s")
    print(f"lag: p50 {percentile(lags, 50)} records, p99 {percentile(lags, 99)}, max {max(lags, default=-1)}")
    print(f"projection delay per record (event time -> applied): {delay_quantiles()}")
    if placed:
        per_order = (after - before) / placed
        print(f"disk: {after - before} bytes for {placed} orders on {', '.join(TOPICS)}: "
              f"{per_order:.0f} B per order, {per_order * 1e6 / 2**30:.2f} GiB per million orders")


if __name__ == "__main__":
    main()
