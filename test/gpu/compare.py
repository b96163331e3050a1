#!/usr/bin/env python3
"""compare.py — checks and the closing table of test/gpu/run.sh (standard library only).

Each subcommand compares JSON outputs of the CLI or the benchmarks, prints one line and
appends a row (name, status, detail) to SUMMARY (a TSV); `table` prints the rows and the
benchmark table last.

    compare.py SUMMARY train  NAME CPU.json GPU.json --tol-loss X --tol-metric Y
    compare.py SUMMARY score  NAME A.json B.json --tol X
    compare.py SUMMARY recommend NAME A.json B.json --min-overlap F
    compare.py SUMMARY eval   NAME A.json B.json --tol-metric Y
    compare.py SUMMARY note   NAME STATUS DETAIL
    compare.py SUMMARY table  [--engine ENGINE.json] [--torch TORCH.json]
"""

import json
import math
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def add(summary, name, ok, detail):
    status = ok if isinstance(ok, str) else ("PASS" if ok else "FAIL")
    print(f"{status:5s} {name}: {detail}", flush=True)
    with open(summary, "a") as f:
        f.write(f"{name}\t{status}\t{detail}\n")
    return status != "FAIL"


def num(x):
    return float("nan") if x is None else float(x)


def rel(a, b):
    """Norm-wise relative difference of two equal-length lists; NaN never passes."""
    if len(a) != len(b) or not a:
        return float("inf")
    num_ = sum((x - y) ** 2 for x, y in zip(a, b))
    den = sum(y * y for y in b)
    if any(not math.isfinite(x) for x in a + b):
        return float("nan")
    return math.sqrt(num_ / den) if den > 0 else math.sqrt(num_)


def metrics_of(split):
    out = {k: num(split.get(k)) for k in ("hr@10", "ndcg@10", "mrr")}
    for a in split.get("actions", []) or []:
        for k in ("rmse", "logloss"):
            if k in a and a[k] is not None:
                out[f"{a.get('name', 'action')}.{k}"] = num(a[k])
    return out


def cmd_train(summary, name, a, b, tol_loss, tol_metric):
    ja, jb = load(a), load(b)
    la = [num(e.get("train_loss")) for e in ja.get("epochs", [])]
    lb = [num(e.get("train_loss")) for e in jb.get("epochs", [])]
    n = min(len(la), len(lb))
    worst = max((abs(x - y) / max(abs(y), 1e-12) for x, y in zip(la[:n], lb[:n])),
                default=float("nan"))
    ok = n > 0 and n == len(la) == len(lb) and math.isfinite(worst) and worst <= tol_loss
    add(summary, f"{name} loss curve", ok,
        f"{n} epochs, max rel diff {worst:.2e} (tol {tol_loss:g}); final {la[-1] if la else 'nan'}"
        f" vs {lb[-1] if lb else 'nan'}")
    ma, mb = metrics_of(ja.get("test", {})), metrics_of(jb.get("test", {}))
    diffs = {k: abs(ma[k] - mb[k]) for k in ma if k in mb and math.isfinite(mb[k])}
    bad = [k for k, v in diffs.items() if not (v <= tol_metric)]
    add(summary, f"{name} test metrics", not bad and bool(diffs),
        ", ".join(f"{k} {ma[k]:.4f}/{mb[k]:.4f}" for k in diffs) + f" (tol {tol_metric:g})")
    ta = num(ja.get("result", {}).get("train_seconds"))
    tb = num(jb.get("result", {}).get("train_seconds"))
    add(summary, f"{name} train seconds", "INFO", f"{ta:.2f} vs {tb:.2f}")


def cmd_score(summary, name, a, b, tol):
    ca, cb = load(a)["candidates"], load(b)["candidates"]
    la = [num(c.get("logit")) for c in ca if c.get("known")]
    lb = [num(c.get("logit")) for c in cb if c.get("known")]
    pairs = [(num(x), num(y)) for c, d in zip(ca, cb)
             for x, y in zip((c.get("actions") or {}).values(), (d.get("actions") or {}).values())]
    # no prediction on both sides (a layout without actions, an unknown item) is agreement
    pairs = [(x, y) for x, y in pairs if not (math.isnan(x) and math.isnan(y))]
    aa, ab = [x for x, _ in pairs], [y for _, y in pairs]
    e1 = rel(la, lb)
    e2 = rel(aa, ab) if aa else 0.0
    add(summary, name, e1 <= tol and e2 <= tol,
        f"{len(la)} candidates: logits {e1:.2e}, actions {e2:.2e} (tol {tol:g})")


def cmd_recommend(summary, name, a, b, min_overlap):
    ia = [r["item"] for r in load(a)["items"]]
    ib = [r["item"] for r in load(b)["items"]]
    ov = len(set(ia) & set(ib)) / max(len(ib), 1)
    same = ia == ib
    add(summary, name, ov >= min_overlap and len(ia) == len(ib),
        f"top-{len(ib)} overlap {ov:.2f}{' (same order)' if same else ''} (min {min_overlap:g})")


def cmd_eval(summary, name, a, b, tol_metric):
    ma, mb = metrics_of(load(a)["metrics"]), metrics_of(load(b)["metrics"])
    diffs = {k: abs(ma[k] - mb[k]) for k in ma if k in mb and math.isfinite(mb[k])}
    bad = [k for k, v in diffs.items() if not (v <= tol_metric)]
    add(summary, name, not bad and bool(diffs),
        ", ".join(f"{k} {ma[k]:.4f}/{mb[k]:.4f}" for k in diffs) + f" (tol {tol_metric:g})")


def bench_rows(engine, torch_):
    """Rows of the benchmark table and the target checks."""
    rows, checks = [], []
    e = load(engine) if engine else None
    t = load(torch_) if torch_ else None
    tr = {(r["size"], r["layout"]): r for r in (t or {}).get("train", [])}
    step = {}
    for r in (e or {}).get("train", []):
        key = (r["size"], r["layout"])
        step[key] = r["step_ms"]
        tt = tr.get(key, {})
        eager, comp = tt.get("eager_tokens_per_s"), tt.get("compile_tokens_per_s")
        se = r["tokens_per_s"] / eager if eager else float("nan")
        sc = r["tokens_per_s"] / comp if comp else float("nan")
        rows.append((r["size"], r["layout"], r["tokens_per_s"], eager or float("nan"),
                     comp or float("nan"), se, sc, r["tflops"], r["frac_peak"]))
        if eager:
            checks.append((f"bench {key[0]} {key[1]}: >= 2x PyTorch eager", se >= 2.0, f"{se:.2f}x"))
        if comp:
            checks.append((f"bench {key[0]} {key[1]}: >= 1.2x torch.compile", sc >= 1.2,
                           f"{sc:.2f}x"))
        if r["size"] == "large":
            checks.append((f"bench large {key[1]}: >= 40% of peak", r["frac_peak"] >= 0.4,
                           f"{100 * r['frac_peak']:.0f}%"))
    for size in ("small", "large"):
        if (size, "lac") in step and (size, "int") in step:
            ratio = step[(size, "lac")] / step[(size, "int")]
            checks.append((f"bench {size}: LAC epoch <= 0.55 of INT's", ratio <= 0.55,
                           f"{ratio:.2f}"))
    return e, t, rows, checks


def cmd_table(summary, engine, torch_):
    try:
        with open(summary) as f:
            lines = [l.rstrip("\n").split("\t") for l in f if l.strip()]
    except FileNotFoundError:
        lines = []
    e, t, rows, checks = bench_rows(engine, torch_)
    for name, ok, detail in checks:
        lines.append([name, "PASS" if ok else "MISS", detail])
    print()
    if e:
        print(f"engine: {e['device']}, peak {e['peak_tflops']:.0f} TFLOP/s; "
              f"score 1000 cands/hist 1024: {e['score_ms']} ms; top-100 of 1M: {e['topk_1m_ms']} ms;"
              f" recommend over 1M: {e['recommend_1m_ms']} ms")
    if t:
        print(f"torch:  {t['device']}, torch {t['torch']}, peak tf32 {t['peak_tf32_tflops']:.0f} "
              f"bf16 {t['peak_bf16_tflops']:.0f} TFLOP/s")
    if rows:
        print(f"{'size':6s} {'layout':6s} {'engine tok/s':>13s} {'torch eager':>12s} "
              f"{'torch comp':>11s} {'x eager':>8s} {'x comp':>7s} {'TFLOP/s':>8s} {'peak':>5s}")
        for s, l, et, te, tc, se, sc, tf, fp in rows:
            print(f"{s:6s} {l:6s} {et:13.0f} {te:12.0f} {tc:11.0f} {se:8.2f} {sc:7.2f} {tf:8.2f} "
                  f"{100 * fp:4.0f}%")
    print()
    width = max([len(l[0]) for l in lines] + [10])
    for l in lines:
        print(f"{l[0]:{width}s}  {l[1]:5s} {l[2] if len(l) > 2 else ''}")
    n_fail = sum(1 for l in lines if l[1] == "FAIL")
    n_pass = sum(1 for l in lines if l[1] == "PASS")
    print(f"{n_pass} passed, {n_fail} failed")
    return 1 if n_fail else 0


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    summary, cmd, rest = argv[1], argv[2], argv[3:]

    def opt(name, default=None):
        return float(rest[rest.index(name) + 1]) if name in rest else default

    if cmd == "train":
        cmd_train(summary, rest[0], rest[1], rest[2], opt("--tol-loss"), opt("--tol-metric"))
    elif cmd == "score":
        cmd_score(summary, rest[0], rest[1], rest[2], opt("--tol"))
    elif cmd == "recommend":
        cmd_recommend(summary, rest[0], rest[1], rest[2], opt("--min-overlap"))
    elif cmd == "eval":
        cmd_eval(summary, rest[0], rest[1], rest[2], opt("--tol-metric"))
    elif cmd == "note":
        add(summary, rest[0], rest[1], " ".join(rest[2:]))
    elif cmd == "table":
        eng = rest[rest.index("--engine") + 1] if "--engine" in rest else None
        tor = rest[rest.index("--torch") + 1] if "--torch" in rest else None
        import os
        eng = eng if eng and os.path.exists(eng) else None
        tor = tor if tor and os.path.exists(tor) else None
        return cmd_table(summary, eng, tor)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
