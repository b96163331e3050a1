#!/usr/bin/python3
"""Engine vs PyTorch reference parity (make NO_PGXS=1 parity).

Runs build/ref/parity_dump into a temporary directory, recomputes everything with the
float64 reference (genrec_ref.py / python/genrec_torch), and compares per layout and trunk
(gpt2, and hstu: the HSTU blocks with their relative position and time biases):

  data     the dataset the engine built from the raw rows (dense ids and times exact,
           actions 1e-6)
  win      the training window [start, end) of every user (exact)
  tok      the token batch: items, positions, action slots, the tokens' key and query times,
           rows (exact; actions 1e-6); also every serving case's tokens
  tbkt     hstu: the engine's time-bucket edges equal the reference's ceil(exp(0.301 b)), and
           its bucket of gaps around every edge (both signs, the int64 extremes) the
           reference's (exact)
  loss0    step-0 loss parts (item CE, each action column, total)        rel <= 1e-4
  grad     every gradient tensor of step 0: ||g_c - g_ref|| / ||g_ref||   rel <= 1e-4
  smp      the sampled and in-batch item losses (uniform and popularity negatives, in-batch
           with every row and with 9 drawn): loss and every gradient       rel <= 1e-4
  loss10   the ten training losses                                       rel <= 1e-4
  param    every parameter tensor after ten AdamW steps                  rel <= 1e-4
  eval     gr_evaluate on the validation and test splits (final parameters, batches of 3
           users): HR/NDCG@{1,3,10} and MRR with and without seen items excluded, action
           RMSE and the bias baseline                                     rel <= 1e-4
  score    serving: action predictions per candidate (vector rel)        rel <= 1e-4
           (cases: a long history with times and a request time a day later, a short one
           with times and no request time, one without times, and the empty history of the
           packing layouts with a request time)
  logit    serving: retrieval logits per candidate (vector rel)          rel <= 1e-4
  rec      top-5 recommendations: scores rel <= 1e-4, items equal as sets unless tied
  mem      the engine's host allocations: no overflow past an allocation, no leak

The problem (parity_dump.c): 8 users with 2..14 interactions (time ties and gaps of 1, 45 and
3600 s, shuffled input rows, NaN actions, an out-of-range held-out value, windows that
truncate), ~33 items, d_model 16, 2 layers, 2 heads, max_len 6, 4 buckets, emb_scale 1.5,
lr 1e-2, dropout 0. The engine's init is made harder on purpose (weights x10, random biases
and LayerNorm gains, a non-zero padding row 0, and for HSTU random relative-bias tables) so
that GELU / SiLU form, LayerNorm eps, biases, bias indexing and padding leaks show.

Serving is recomputed with the engine's final parameters (so it is checked apart from
training drift), and the serving token sequences are compared exactly as well. NaN never
passes: a NaN where the reference has a number (or the reverse) is a failure.

One gauge direction of the GPT-2 trunk is treated specially: the key bias (the middle third
of every blocks.L.attn.qkv.bias) has an exactly zero gradient in exact arithmetic (softmax is
invariant to adding q.b_k to every score of a row), so AdamW turns the engine's float32
rounding noise there (~1e-9, below eps = 1e-8) into steps of up to ~lr while the float64
reference stays put. It cannot change any output; the final-parameter check compares qkv.bias
without that slice and instead bounds the slice's drift by steps * lr. HSTU has no softmax,
so its key bias is compared like every other parameter.

    parity.py --bin-dir build/ref [--keep DIR] [--layouts item,int,lac,pc] [--trunks gpt2,hstu] [-v]
"""

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

try:
    import torch  # (also to find an interpreter that has it)
except ImportError:  # make runs "python3", which may be an interpreter without torch
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != \
            os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import genrec_ref  # noqa: E402  (puts python/ on the path)
import genrec_torch as gt  # noqa: E402

TOL = 1e-4
TINY = 1e-30


class Checker:
    def __init__(self, layout, verbose):
        self.layout = layout
        self.verbose = verbose
        self.worst = {}         # category -> max relative error (NaN once any is NaN)
        self.flags = {}         # category -> "ok" / "FAIL" for exact checks
        self.failures = []

    def note(self, cat, err, what):
        """Record a relative error (None or NaN = failure) for a category."""
        bad = err is None or math.isnan(err) or err > TOL
        err = float("nan") if err is None else float(err)
        if bad:
            self.failures.append("%s %s: %s (rel err %.3g)" % (self.layout, cat, what, err))
        prev = self.worst.get(cat, 0.0)
        self.worst[cat] = float("nan") if (math.isnan(err) or math.isnan(prev)) else max(prev, err)
        if self.verbose:
            print("  %-5s %-6s %-50s %.3g" % (self.layout, cat, what[:50], err))

    def exact(self, cat, ok, what):
        if not ok:
            self.failures.append("%s %s: %s" % (self.layout, cat, what))
            self.flags[cat] = "FAIL"
        else:
            self.flags.setdefault(cat, "ok")

    def cell(self, cat):
        """A table cell: the worst relative error, or ok/FAIL; FAIL wins."""
        if self.flags.get(cat) == "FAIL":
            return "FAIL"
        if cat in self.worst:
            return fmt(self.worst[cat])
        return self.flags.get(cat, "-")


def rel(c, r):
    """||c - r|| / max(||r||, tiny) in float64; None when either side has a NaN/Inf."""
    c = np.asarray(c, dtype=np.float64).ravel()
    r = np.asarray(r, dtype=np.float64).ravel()
    if c.shape != r.shape or not np.all(np.isfinite(c)) or not np.all(np.isfinite(r)):
        return None
    return float(np.linalg.norm(c - r) / max(np.linalg.norm(r), TINY))


def nan_equal(a, b, tol=1e-6):
    """Arrays equal up to tol, with NaN (None) exactly where the other has NaN."""
    a = np.array([[np.nan if v is None else v for v in row] if isinstance(row, (list, tuple))
                  else (np.nan if row is None else row) for row in a], dtype=np.float64)
    b = np.array([[np.nan if v is None else v for v in row] if isinstance(row, (list, tuple))
                  else (np.nan if row is None else row) for row in b], dtype=np.float64)
    if a.shape != b.shape:
        return False
    na, nb = np.isnan(a), np.isnan(b)
    return bool(np.array_equal(na, nb) and np.all(np.abs(a[~na] - b[~nb]) <= tol))


def compare_tokens(ck, cat, c, r, K):
    """Compare an engine token dump (flat, JSON) with the reference's flattened sequences."""
    ok = True
    why = []
    for key in ("item", "pos", "has_action", "key_time", "query_time", "seq_off", "n_hist"):
        cv = [int(x) for x in c[key]]      # the times come as decimal strings (int64)
        if cv != [int(x) for x in r[key]]:
            ok = False
            why.append("%s: engine %s, reference %s" % (key, c[key], r[key]))
    # action values of the slots (engine fills NaN in tokens without a slot too)
    ca = [row if h else [None] * K for row, h in zip(c["action"], c["has_action"])]
    ra = r["action"]
    if len(ca) != len(ra) or (K > 0 and not nan_equal(ca, ra)):
        ok = False
        why.append("action slots differ")
    crow_i = sorted(zip(c["item_row_tok"], c["item_row_target"]))
    rrow_i = sorted(r["item_rows"])
    if crow_i != rrow_i:
        ok = False
        why.append("item rows: engine %s, reference %s" % (crow_i, rrow_i))
    crow_a = sorted(zip(c["act_row_tok"], c["act_row_coupler"],
                        [tuple(np.nan if v is None else v for v in t) for t in c["act_row_target"]]),
                    key=lambda x: (x[0], x[1]))
    rrow_a = sorted(r["act_rows"], key=lambda x: (x[0], x[1]))
    if [x[:2] for x in crow_a] != [x[:2] for x in rrow_a] or \
            (K > 0 and len(crow_a) > 0 and not nan_equal([x[2] for x in crow_a], [x[2] for x in rrow_a])):
        ok = False
        why.append("action rows: engine %s, reference %s" % ([x[:2] for x in crow_a],
                                                           [x[:2] for x in rrow_a]))
    ck.exact(cat, ok, "; ".join(why))


def check_time_buckets(ck, d):
    """The engine's HSTU time-bucket table and bucketing against the reference's."""
    tb = d.get("time_buckets")
    if tb is None:
        ck.exact("tbkt", False, "the dump has no time-bucket table")
        return
    edges = [int(x) for x in tb["edges"]]
    ck.exact("tbkt", edges == list(gt.TIME_EDGES),
             "edges differ at %s" % [i for i, (a, b) in enumerate(zip(edges, gt.TIME_EDGES))
                                     if a != b][:5] if len(edges) == len(gt.TIME_EDGES)
             else "%d edges, reference %d" % (len(edges), len(gt.TIME_EDGES)))
    gaps = [int(x) for x in tb["gaps"]]
    # |INT64_MIN| does not fit in int64: the engine takes it as INT64_MAX
    mine = gt.time_bucket(torch.tensor([max(g, -(2 ** 63 - 1)) for g in gaps],
                                       dtype=torch.long)).tolist()
    bad = [(g, e, m) for g, e, m in zip(gaps, tb["buckets"], mine) if e != m]
    ck.exact("tbkt", not bad, "(gap, engine bucket, reference bucket) %s" % bad[:5])


def check_layout(dump_dir, tag, verbose):
    ck = Checker(tag, verbose)
    d, blobs, ref = genrec_ref.run_reference(dump_dir, tag)
    layout = d["layout"]
    c = d["config"]
    trunk = c.get("trunk", "gpt2")
    K = c["n_actions"]
    steps = d["train"]["steps"]
    lr = d["train"]["lr"]

    # memory
    mem = d.get("memory", {})
    ck.exact("mem", mem.get("overflows", 0) == 0 and mem.get("leaked_allocations", 0) == 0,
             "engine host memory: %s" % mem)

    # dataset
    ds = ref["dataset"]
    cd = d["dataset"]
    ok = (list(cd["user_ids"]) == [int(x) for x in ds.users]
          and list(cd["item_ids"]) == [int(x) for x in ds.item_ids]
          and np.allclose(cd["action_min"], ds.action_min, rtol=0, atol=1e-12)
          and np.allclose(cd["action_max"], ds.action_max, rtol=0, atol=1e-12))
    why = [] if ok else ["ids or action ranges differ: engine %s %s, reference %s %s" % (
        cd["action_min"], cd["action_max"], ds.action_min, ds.action_max)]
    for u, (cu, (items, acts), times) in enumerate(zip(cd["users"], ds.seqs, ds.times)):
        if list(cu["items"]) != [int(x) for x in items] or not nan_equal(cu["actions"], acts.tolist()):
            ok = False
            why.append("user %d: engine %s %s, reference %s %s" % (
                u, cu["items"], cu["actions"], items.tolist(), acts.tolist()))
        if cu.get("times") is None or [int(x) for x in cu["times"]] != [int(x) for x in times]:
            ok = False
            why.append("user %d times: engine %s, reference %s" % (u, cu.get("times"),
                                                                    times.tolist()))
    ck.exact("data", ok, "; ".join(why))
    if trunk == "hstu":
        check_time_buckets(ck, d)

    # windows and tokens
    ck.exact("win", d["windows"] == ref["windows"],
             "engine %s, reference %s" % (d["windows"], ref["windows"]))
    compare_tokens(ck, "tok", d["batch"], ref["batch"], K)

    # step 0
    s0c, s0r = d["step0"], ref["step0"]
    ck.exact("loss0", s0c["n_item_targets"] == s0r["n_item_targets"]
             and list(s0c["n_action_targets"]) == s0r["n_action_targets"],
             "target counts: engine %s %s, reference %s %s" % (
                 s0c["n_item_targets"], s0c["n_action_targets"], s0r["n_item_targets"],
                 s0r["n_action_targets"]))
    ck.note("loss0", rel(s0c["item"] if s0c["item"] is not None else np.nan, s0r["item"]),
            "item CE %.8g vs %.8g" % (_f(s0c["item"]), s0r["item"]))
    for k in range(len(s0r["action"])):
        ck.note("loss0", rel(_f(s0c["action"][k]), s0r["action"][k]),
                "action[%d] %.8g vs %.8g" % (k, _f(s0c["action"][k]), s0r["action"][k]))
    ck.note("loss0", rel(_f(s0c["total"]), s0r["total"]),
            "total %.8g vs %.8g" % (_f(s0c["total"]), s0r["total"]))

    # gradients of step 0
    g_c = genrec_ref.blob_to_tensors(d, blobs["grads0"])
    for name, gr in ref["grads0"].items():
        ck.note("grad", rel(g_c[name].numpy(), gr.numpy()), name)

    # the sampled item losses: loss and gradients from the initial parameters
    for case, r in zip(d.get("sampled", []), ref["sampled"]):
        tag = case["tag"]
        ck.note("smp", rel(_f(case["item"]), r["item"]),
                "%s item %.8g vs %.8g" % (tag, _f(case["item"]), r["item"]))
        ck.note("smp", rel(_f(case["total"]), r["total"]),
                "%s total %.8g vs %.8g" % (tag, _f(case["total"]), r["total"]))
        g_s = genrec_ref.blob_to_tensors(d, np.fromfile(os.path.join(dump_dir, case["file"]),
                                                        dtype="<f4"))
        for name, gr in r["grads"].items():
            ck.note("smp", rel(g_s[name].numpy(), gr.numpy()), "%s grad %s" % (tag, name))
    ck.exact("smp", len(d.get("sampled", [])) == 7 == len(ref["sampled"]), "sampled cases")

    # the ten losses
    for i, (lc, lr_) in enumerate(zip(d["losses"], ref["losses"])):
        ck.note("loss10", rel(_f(lc), lr_), "loss[%d] %.8g vs %.8g" % (i, _f(lc), lr_))
    ck.exact("loss10", len(d["losses"]) == len(ref["losses"]) == steps, "step count")

    # final parameters
    p_c = genrec_ref.blob_to_tensors(d, blobs["final"])
    p_0 = genrec_ref.blob_to_tensors(d, blobs["init"])
    dm = c["d_model"]
    for name, pr in ref["final"].items():
        pc, prn = p_c[name].numpy(), pr.numpy()
        if trunk == "gpt2" and name.endswith("attn.qkv.bias"):
            keep = np.r_[0:dm, 2 * dm:3 * dm]
            ck.note("param", rel(pc[keep], prn[keep]), name + " (q, v)")
            drift = np.abs(pc[dm:2 * dm] - p_0[name].numpy()[dm:2 * dm]).max()
            ck.exact("param", np.isfinite(drift) and drift <= steps * lr * 1.01,
                     "%s key-bias slice drifted %.3g > steps*lr" % (name, drift))
            if verbose:
                print("  %-5s param  %s key-bias drift %.3g (reference %.3g)" % (
                    layout, name, drift,
                    np.abs(prn[dm:2 * dm] - p_0[name].numpy()[dm:2 * dm]).max()))
        else:
            ck.note("param", rel(pc, prn), name)

    # evaluation (gr_evaluate) with the engine's final parameters
    for split in ("valid", "test"):
        ce, re_ = d["eval"][split], ref["eval"][split]
        ck.exact("eval", ce["status"] == "ok" and ce["n_users"] == re_["n_users"]
                 and list(ce["n_action_targets"]) == re_["n_action_targets"],
                 "%s: status %s, users %s vs %s, action targets %s vs %s" % (
                     split, ce["status"], ce.get("n_users"), re_["n_users"],
                     ce.get("n_action_targets"), re_["n_action_targets"]))
        if ce["status"] != "ok":
            continue
        near_tie = re_["min_gap"] < 1e-5
        if re_["mrr"] is None:  # no item head: the engine must rank nothing either
            ck.exact("eval", all(v is None or _f(v) != _f(v) for key in
                                 ("hr", "ndcg", "hr_all", "ndcg_all") for v in ce[key]) and
                     (ce["mrr"] is None or _f(ce["mrr"]) != _f(ce["mrr"])),
                     "%s: the engine ranked targets of a layout without an item head" % split)
        for key in (("hr", "ndcg", "hr_all", "ndcg_all") if re_["mrr"] is not None else ()):
            for kk, vc, vr in zip(ce["ks"], ce[key], re_[key]):
                err = abs(_f(vc) - vr) / max(abs(vr), 1e-3)
                if near_tie and err > TOL:
                    print("note: %s %s %s@%d differs at a float32 near-tie (gap %.2g)" % (
                        layout, split, key, kk, re_["min_gap"]))
                    continue
                ck.note("eval", err, "%s %s@%d %.6g vs %.6g" % (split, key, kk, _f(vc), vr))
        for key in (("mrr", "mrr_all") if re_["mrr"] is not None else ()):
            ck.note("eval", abs(_f(ce[key]) - re_[key]) / max(abs(re_[key]), 1e-3),
                    "%s %s %.6g vs %.6g" % (split, key, _f(ce[key]), re_[key]))
        for key in ("rmse", "baseline_rmse"):
            for k, (vc, vr) in enumerate(zip(ce[key], re_[key])):
                if vr is None:
                    ck.exact("eval", vc is None, "%s %s[%d]: engine %s, reference none" % (split, key, k, vc))
                else:
                    ck.note("eval", rel(_f(vc), vr), "%s %s[%d] %.8g vs %.8g" % (split, key, k, _f(vc), vr))

    # serving
    for case, r in zip(d["serving"], ref["serving"]):
        nm = case["name"]
        sc = case["score"]
        ck.exact("score", sc["status"] == r["score_status"],
                 "%s: score status engine %s, reference %s" % (nm, sc["status"], r["score_status"]))
        if sc["status"] != "ok" or r["score_status"] != "ok":
            continue
        ck.exact("score", list(sc["known"]) == r["known"], "%s: known flags" % nm)
        compare_tokens(ck, "tok", sc["tokens"], r["tokens"], K)
        # action predictions (null where the layout predicts none)
        ca, ra = sc["action"], r["action"]
        nulls_c = [[v is None for v in row] for row in ca]
        nulls_r = [[v is None for v in row] for row in ra]
        if nulls_c != nulls_r:
            ck.exact("score", False, "%s: action nulls engine %s, reference %s" % (nm, ca, ra))
        elif any(v is not None for row in ra for v in row):
            flat_c = [v for row in ca for v in row if v is not None]
            flat_r = [v for row in ra for v in row if v is not None]
            ck.note("score", rel(flat_c, flat_r), "%s: %s vs %s" % (nm, flat_c, flat_r))
        cl, rl = sc["logit"], r["logit"]
        if [v is None for v in cl] != [v is None for v in rl]:
            ck.exact("logit", False, "%s: logit nulls engine %s, reference %s" % (nm, cl, rl))
        elif any(v is not None for v in rl):
            ck.note("logit", rel([v for v in cl if v is not None], [v for v in rl if v is not None]),
                    "%s: %s vs %s" % (nm, cl, rl))
        for key in ("recommend", "recommend_all"):
            rc, rr = case[key], r[key]
            ck.exact("rec", rc["status"] == rr["status"],
                     "%s %s: status engine %s, reference %s" % (nm, key, rc["status"], rr["status"]))
            if rc["status"] != "ok" or rr["status"] != "ok":
                continue
            ck.note("rec", rel(rc["scores"], rr["scores"]),
                    "%s %s scores %s vs %s" % (nm, key, rc["scores"], rr["scores"]))
            allsc = np.sort(rr["all_scores"][np.isfinite(rr["all_scores"])])[::-1]
            k = rr["k"]
            tied = len(allsc) > k and abs(allsc[k - 1] - allsc[k]) <= TOL * max(1.0, abs(allsc[k - 1]))
            if not tied:
                ck.exact("rec", set(rc["items"]) == set(rr["items"]),
                         "%s %s: items engine %s, reference %s" % (nm, key, rc["items"], rr["items"]))
    return ck


def _f(v):
    return float("nan") if v is None else float(v)


CATS = ("data", "win", "tok", "tbkt", "loss0", "grad", "smp", "loss10", "param", "eval", "score",
        "logit", "rec", "mem")


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if math.isnan(v):
        return "NaN"
    return "%.1e" % v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default="build/ref")
    ap.add_argument("--keep", help="write the dump here and keep it")
    ap.add_argument("--layouts", default=",".join(gt.LAYOUTS))
    ap.add_argument("--trunks", default=",".join(gt.TRUNKS))
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    t0 = time.time()
    trunks = [x for x in args.trunks.split(",") if x]
    # one run per layout and trunk, named as parity_dump names them (lac, lac@hstu)
    runs = [(l, t) for t in trunks for l in args.layouts.split(",") if l]
    layouts = [l if t == "gpt2" else "%s@%s" % (l, t) for l, t in runs]
    dump_dir = args.keep or tempfile.mkdtemp(prefix="genrec-parity-")
    try:
        exe = os.path.join(args.bin_dir, "parity_dump")
        if not os.path.exists(exe):
            print("parity: %s not found; build it with make NO_PGXS=1 %s" % (exe, exe))
            return 1
        p = subprocess.run([exe, dump_dir] + layouts, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True)
        sys.stderr.write(p.stderr)
        dumped = [l for l in layouts if os.path.exists(os.path.join(dump_dir, l + ".json"))]
        failures = []
        if p.returncode != 0:
            failures.append("parity_dump exited with status %d" % p.returncode)
        for l in layouts:
            if l not in dumped:
                failures.append("%s: no dump written" % l)
        print("engine vs float64 PyTorch reference: max relative error per category "
              "(tolerance %.0e)" % TOL)
        print("%-8s %-5s" % ("layout", "trunk") + "".join("%9s" % c for c in CATS))
        for (l, t), tag in zip(runs, layouts):
            if tag not in dumped:
                continue
            ck = check_layout(dump_dir, tag, args.verbose)
            print("%-8s %-5s" % (l, t) + "".join("%9s" % ck.cell(c) for c in CATS))
            failures += ck.failures
        print("%.1f s" % (time.time() - t0))
        if failures:
            print("\nFAILED (%d):" % len(failures))
            for f in failures:
                print("  " + f)
            return 1
        print("parity: all layouts pass on %s" % ", ".join(trunks))
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(dump_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
