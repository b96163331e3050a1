#!/usr/bin/python3
"""cpu_table.py — print bench/cpu_bench.sh's results (JSON in a directory) as tables."""

import json
import os
import sys


def load(d, name):
    path = os.path.join(d, name)
    return json.load(open(path)) if os.path.exists(path) else None


def rmse(test):
    if "actions" in test and test["actions"]:
        return test["actions"][0].get("rmse")
    r = test.get("rmse")
    if isinstance(r, list):
        r = r[0] if r else None
    return r


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def main():
    d = sys.argv[1]
    rows = []
    for layout in ("item", "int", "lac", "pc"):
        e, t = load(d, f"engine_{layout}.json"), load(d, f"torch_{layout}.json")
        el, tl = load(d, f"engine_latency_{layout}.json"), load(d, f"torch_latency_{layout}.json")
        if e is None or t is None:
            continue
        rows.append((layout, e, t, el, tl))
    print()
    print("training (MovieLens-100K; test metrics at the best epoch, seen items excluded)")
    print(f"{'layout':6} {'impl':7} {'inter/s':>9} {'tokens/s':>9} {'s/epoch':>8} "
          f"{'speedup':>7} {'HR@10':>7} {'NDCG@10':>8} {'RMSE':>7}")
    for layout, e, t, _, _ in rows:
        for impl, r in (("engine", e), ("pytorch", t)):
            res = r["result"]
            sp = t["result"]["seconds_per_epoch"] / res["seconds_per_epoch"]
            print(f"{layout:6} {impl:7} {res['interactions_per_second']:9.0f} "
                  f"{res['tokens_per_second']:9.0f} {res['seconds_per_epoch']:8.3f} "
                  f"{sp:7.2f} {r['test']['hr@10']:7.4f} {r['test']['ndcg@10']:8.4f} "
                  f"{fmt(rmse(r['test']), '7.4f')}")
    lac = next((r for r in rows if r[0] == "lac"), None)
    itl = next((r for r in rows if r[0] == "int"), None)
    if lac and itl:
        for impl, k in (("engine", 1), ("pytorch", 2)):
            ratio = lac[k]["result"]["seconds_per_epoch"] / itl[k]["result"]["seconds_per_epoch"]
            print(f"LAC / INT seconds per epoch ({impl}): {ratio:.3f} (target <= 0.55)")
    print()
    print("serving, 1 thread (score: 100 candidates after a history of 50; top-10 retrieval over "
          "the catalogue, seen excluded)")
    print(f"{'layout':6} {'impl':7} {'score p50':>10} {'score p99':>10} {'top10 p50':>10} "
          f"{'top10 p99':>10}  (microseconds)")
    for layout, _, _, el, tl in rows:
        for impl, r in (("engine", el), ("pytorch", tl)):
            if r is None:
                continue
            print(f"{layout:6} {impl:7} {r['score_p50_us']:10.1f} {r['score_p99_us']:10.1f} "
                  f"{r['recommend_p50_us']:10.1f} {r['recommend_p99_us']:10.1f}")


if __name__ == "__main__":
    main()
