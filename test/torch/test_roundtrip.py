#!/usr/bin/python3
"""test_roundtrip.py — genrec -> PyTorch -> genrec through the engine program.

For every layout on the GPT-2 trunk, and one on the HSTU trunk (int@hstu), a small model
trained by `genrec train --save` on synthetic data (two action columns for the action
layouts: the rating, continuous, and liked = rating >= 4, binary) is loaded with
genrec_torch, and:

  1. load + save without changes gives back the file's bytes exactly;
  2. scores (retrieval logits and every action column) of 31 candidates (one unknown, one
     duplicate) after six histories (whole user histories longer than the history cap, a
     one-item history, unknown items and missing actions) equal `genrec score --json`, in float32 and float64, and top-10 lists (seen items
     excluded and not) equal `genrec recommend --json`: |a - b| <= 1e-5 * max(1, |b|), the
     same items in the same order unless two scores tie within that tolerance; item/pc
     refuse an empty history as the engine does (cold-start scoring of lac/int is compared
     through SQL, test/pg/test_torch_roundtrip.sh: the program needs a non-empty history);
  3. `python3 -m genrec_torch score` prints what `genrec score` prints;
  4. two epochs of fine-tuning in PyTorch change the scores (by more than 1e-3), the saved
     file is read by `genrec info` and `genrec eval`, and `genrec score` / `recommend` on it
     equal the fine-tuned module's scores within the same tolerance;
  5. a model built and initialised in PyTorch (never seen by the engine, with the action
     head's bias path drawn) saves to a file the engine serves with the module's scores (lac
     on GPT-2, attnmvp on HSTU with random relative-bias tables);
  6. malformed input is refused: truncated bytes, a renamed tensor, an unknown configuration
     key, a non-finite parameter on save; the safetensors reader round-trips every dtype and
     refuses gaps and overlaps.

    test/torch/test_roundtrip.py [--bin build/genrec]
Prints one "ok"/"not ok" line per check; exits non-zero on any failure.
"""

import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:  # run by an interpreter without torch: use Debian's
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != \
            os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise
import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
import genrec_torch as gt  # noqa: E402
from genrec_torch import safetensors  # noqa: E402

TOL = 1e-5
UNKNOWN = 99999
LAYOUTS = ("lac", "int", "pc", "item", "attnlfa", "attnmvp", "int@hstu")    # layout[@trunk]


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("ok - %s" % name)
        else:
            self.failed += 1
            print("not ok - %s%s" % (name, (": " + detail) if detail else ""))
        return ok


def close(a, b):
    """a == b within TOL * max(1, |b|), NaN/None equal to NaN/None."""
    na = a is None or (isinstance(a, float) and math.isnan(a))
    nb = b is None or (isinstance(b, float) and math.isnan(b))
    if na or nb:
        return na and nb
    return abs(a - b) <= TOL * max(1.0, abs(b))


def run(cmd, **kw):
    """stdout of a command; its stderr is shown when it fails."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit("%s failed (%d): %s" % (" ".join(cmd[:2]), p.returncode, p.stderr))
    return p.stdout


def history_arg(items, acts):
    """--history ITEM:A1:A2,... (empty field = missing)."""
    out = []
    for i, row in zip(items, acts):
        out.append(":".join([str(int(i))] + ["" if math.isnan(v) else repr(float(v))
                                             for v in row]))
    return ",".join(out)


def engine_score(gbin, path, items, acts, cands):
    doc = json.loads(run([gbin, "score", "--model", path, "--history", history_arg(items, acts),
                          "--candidates", ",".join(map(str, cands)), "--threads", "1",
                          "--quiet", "--json", "-"]))
    return doc["candidates"]


def engine_recommend(gbin, path, items, acts, k, include_seen):
    cmd = [gbin, "recommend", "--model", path, "--history", history_arg(items, acts),
           "--k", str(k), "--threads", "1", "--quiet", "--json", "-"]
    if include_seen:
        cmd.append("--include-seen")
    return json.loads(run(cmd))["items"]


def compare_scores(model, eng, items, acts, cands):
    """Max error and a description of the first mismatch (None if all close)."""
    res = model.score(items, cands, acts)
    worst, bad = 0.0, None
    for j, e in enumerate(eng):
        if bool(res["known"][j]) != e["known"]:
            return math.inf, "candidate %d: known %s vs engine %s" % (cands[j], res["known"][j],
                                                                      e["known"])
        pairs = [("logit", float(res["logit"][j]), e["logit"])]
        pairs += [("action %d" % k, float(res["action"][j, k]), v)
                  for k, v in enumerate(e["actions"].values())]
        if len(e["actions"]) != model.K:
            return math.inf, "engine gives %d action columns" % len(e["actions"])
        for what, t, v in pairs:
            if not close(t, v):
                bad = bad or "candidate %d %s: torch %r engine %r" % (cands[j], what, t, v)
            elif v is not None and not math.isnan(t):
                worst = max(worst, abs(t - v))
    return worst, bad


def compare_topk(model, eng, items, acts, k, include_seen):
    ids, scores = model.recommend(items, k, acts, exclude_seen=not include_seen)
    if len(ids) != len(eng):
        return "torch returns %d items, engine %d" % (len(ids), len(eng))
    eng_items = [e["item"] for e in eng]
    torch_logit_of_eng = model.score(items, eng_items, acts)["logit"]
    for r, e in enumerate(eng):
        if not close(float(scores[r]), e["logit"]):
            return "rank %d: torch score %r engine %r" % (r + 1, float(scores[r]), e["logit"])
        if int(ids[r]) != e["item"] and not close(float(torch_logit_of_eng[r]), float(scores[r])):
            return "rank %d: torch item %d engine item %d (no tie)" % (r + 1, ids[r], e["item"])
    return None


def make_data(gbin, tmp):
    """Synthetic interactions with a binary column: user, item, rating, ts, liked."""
    syn = run([gbin, "synth", "--users", "160", "--items", "120", "--per-user", "18",
               "--seed", "11"])
    rows = [line.split("\t") for line in syn.splitlines() if line]
    path = os.path.join(tmp, "events.tsv")
    with open(path, "w") as f:
        for u, i, r, t in rows:
            f.write("%s\t%s\t%s\t%s\t%d\n" % (u, i, r, t, float(r) >= 4.0))
    a = np.array([[float(x) for x in r] for r in rows])
    liked = (a[:, 2] >= 4.0).astype(np.float64)
    return path, a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 3].astype(np.int64), \
        np.stack([a[:, 2], liked], axis=1)


def user_history(user, item, ts, acts, u):
    sel = np.flatnonzero(user == u)
    sel = sel[np.argsort(ts[sel], kind="stable")]
    return item[sel], acts[sel]


def cases(user, item, ts, acts, K):
    """(name, items, raw actions [N, K]) histories for scoring."""
    out = []
    for u in (1, 2, 3, 7):
        it, a = user_history(user, item, ts, acts, u)
        out.append(("user %d (%d interactions)" % (u, len(it)), it, a[:, :K]))
    it, a = user_history(user, item, ts, acts, 5)
    a = a[:, :K].copy()
    if K:
        a[::3, 0] = np.nan
        a[1::4, K - 1] = np.nan
    it = it.copy()
    it[2] = UNKNOWN
    out.append(("unknown item, missing actions", it, a))
    out.append(("one interaction", item[:1], acts[:1, :K]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "genrec"))
    args = ap.parse_args()
    gbin = os.path.abspath(args.bin)
    torch.set_num_threads(1)
    ck = Checks()
    tmp = tempfile.mkdtemp(prefix="genrec_torch_test.")
    try:
        data, user, item, ts, acts = make_data(gbin, tmp)
        cands = list(range(1, 30)) + [UNKNOWN, 5]
        for tag in LAYOUTS:
            layout, _, trunk = tag.partition("@")
            K = 0 if layout == "item" else 2
            path = os.path.join(tmp, tag + ".safetensors")
            cols = "0,1,-,3" if K == 0 else "0,1,2+4,3"
            cmd = [gbin, "train", "--data", data, "--cols", cols, "--layout", layout,
                   "--d", "16", "--layers", "2", "--heads", "2", "--max-len", "10",
                   "--head-hidden", "16", "--epochs", "3", "--batch", "32", "--threads", "1",
                   "--seed", "5", "--quiet", "--save", path]
            if K:
                cmd += ["--binary", "4"]
            if trunk:
                cmd += ["--trunk", trunk]
            run(cmd)
            check_layout(ck, gbin, tag, path, data, user, item, ts, acts, K, cands, tmp)
        check_from_scratch(ck, gbin, tmp, cands, "lac", "gpt2")
        check_from_scratch(ck, gbin, tmp, cands, "attnmvp", "hstu")
        check_malformed(ck, os.path.join(tmp, "lac.safetensors"))
    finally:
        subprocess.run(["rm", "-rf", tmp])
    print("test_roundtrip: %d passed, %d failed" % (ck.passed, ck.failed))
    return 1 if ck.failed else 0


def check_serving(ck, gbin, label, model, path, hist, cands, models=None):
    """Scores and top-k of model against the engine serving path, for every history."""
    for name, it, a in hist:
        if len(it) == 0 and not model.spec.cold_start:
            continue
        eng = engine_score(gbin, path, it, a, cands)
        for m in models or [model]:
            worst, bad = compare_scores(m, eng, it, a, cands)
            dt = str(m.item_emb.dtype).replace("torch.", "")
            ck.check("%s: scores after %s equal genrec score (%s, max error %.1e)"
                     % (label, name, dt, worst), bad is None, bad or "")
        if len(it) == 0:
            continue
        for include_seen in (False, True):
            eng = engine_recommend(gbin, path, it, a, 10, include_seen)
            bad = compare_topk(model, eng, it, a, 10, include_seen)
            ck.check("%s: top-10 after %s%s equals genrec recommend"
                     % (label, name, " (seen included)" if include_seen else ""),
                     bad is None, bad or "")


def check_layout(ck, gbin, layout, path, data, user, item, ts, acts, K, cands, tmp):
    """The checks of one trained model; layout is its tag, layout[@trunk]."""
    raw = open(path, "rb").read()
    model = gt.load(path)
    model64 = gt.load(path, dtype=torch.float64)
    name, _, trunk = layout.partition("@")
    ck.check("%s: loads as a torch.nn.Module (%s, %s blocks, %d parameters)"
             % (layout, type(model).__name__, type(model.blocks[0]).__name__,
                sum(p.numel() for p in model.parameters())),
             isinstance(model, torch.nn.Module) and model.layout == name
             and model.trunk == (trunk or "gpt2"))
    ck.check("%s: load + save gives back the file's bytes" % layout, gt.save(model) == raw)
    hist = cases(user, item, ts, acts, K)
    check_serving(ck, gbin, layout, model, path, hist, cands, [model, model64])
    if not model.spec.cold_start:
        try:
            model.score(item[:0], cands, acts[:0, :K])
            refused = False
        except gt.EmptyHistory:
            refused = True
        ck.check("%s: an empty history is refused (EmptyHistory)" % layout, refused)

    # the package's command line prints the engine's numbers
    name, it, a = hist[0]
    out = run([sys.executable, "-m", "genrec_torch", "score", path, "--history",
               history_arg(it, a), "--candidates", ",".join(map(str, cands))],
              env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python")))
    mine = json.loads(out)["candidates"]
    eng = engine_score(gbin, path, it, a, cands)
    ok = len(mine) == len(eng) and all(
        m["known"] == e["known"] and close(m["logit"], e["logit"]) and
        all(close(x, y) for x, y in zip(m["actions"].values(), e["actions"].values()))
        for m, e in zip(mine, eng))
    ck.check("%s: python3 -m genrec_torch score prints genrec score's numbers" % layout, ok)

    # fine-tune in PyTorch, serve with the engine
    before = model.score(hist[0][1], cands, hist[0][2])
    losses = gt.fit(model, user, item, ts, acts[:, :K] if K else None, epochs=2, lr=3e-3,
                    batch_size=32, seed=1)
    after = model.score(hist[0][1], cands, hist[0][2])
    change = np.nanmax(np.abs(np.concatenate([after["logit"] - before["logit"],
                                              (after["action"] - before["action"]).ravel()])))
    ck.check("%s: fine-tuning changes the scores (max change %.3g, losses %s)"
             % (layout, change, ", ".join("%.4f" % x for x in losses)),
             change > 1e-3 and all(math.isfinite(x) for x in losses))
    tuned = os.path.join(tmp, layout + "_tuned.safetensors")
    gt.save(model, tuned)
    info = subprocess.run([gbin, "info", "--model", tuned], capture_output=True, text=True)
    ck.check("%s: genrec info reads the fine-tuned file" % layout,
             info.returncode == 0 and "finetune" in info.stdout, info.stderr.strip())
    cols = "0,1,-,3" if K == 0 else "0,1,2+4,3"
    ev = subprocess.run([gbin, "eval", "--model", tuned, "--data", data, "--cols", cols]
                        + (["--binary", "4"] if K else []) + ["--threads", "1", "--quiet"],
                        capture_output=True, text=True)
    ck.check("%s: genrec eval evaluates the fine-tuned file" % layout, ev.returncode == 0,
             ev.stderr.strip())
    check_serving(ck, gbin, layout + " fine-tuned", model, tuned, hist[:3] + hist[4:5], cands)


def check_from_scratch(ck, gbin, tmp, cands, layout, trunk):
    g = torch.Generator().manual_seed(3)
    model = gt.GenRec(layout, 40, d_model=8, n_layer=1, n_head=2, max_len=6, n_actions=1,
                      n_buckets=4, head_hidden=8, emb_scale=1.5, action_min=[1.0],
                      action_max=[5.0], item_ids=np.arange(10, 410, 10, dtype=np.int64),
                      trunk=trunk, action_bias=True)
    model.init_gpt2(g)
    with torch.no_grad():       # HSTU's bias tables and the action head's bias path start
        for name, p in model.named_parameters():     # at 0: make them matter
            if ".rab_" in name:
                p.normal_(0.0, 0.5, generator=g)
        model.action_head.item_bias.weight.normal_(0.0, 0.1, generator=g)
        model.action_head.user_offset.weight.normal_(0.0, 0.3, generator=g)
    path = os.path.join(tmp, "scratch_%s_%s.safetensors" % (layout, trunk))
    gt.save(model, path)
    items = np.array([10, 20, 30, 70, 90, 130, 400])
    acts = np.array([[4.0], [3.0], [5.0], [1.0], [2.0], [4.5], [3.5]])
    eng = engine_score(gbin, path, items, acts, [c * 10 for c in cands])
    worst, bad = compare_scores(model.eval(), eng, items, acts, [c * 10 for c in cands])
    ck.check("a model made in PyTorch (%s on %s) is served by the engine with its scores (max "
             "error %.1e)" % (layout, trunk, worst), bad is None, bad or "")


def expect_error(ck, name, fn, exc):
    try:
        fn()
        ck.check(name, False, "no error")
    except exc as e:
        ck.check("%s (%s)" % (name, str(e).splitlines()[0][:70]), True)


def rewrite_header(raw, edit):
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + raw[8 + n:]


def check_malformed(ck, path):
    raw = open(path, "rb").read()
    expect_error(ck, "truncated bytes are refused", lambda: gt.load(raw[:len(raw) - 4]),
                 gt.ModelFileError)

    def rename(h):
        h["ln_f.gain"] = h.pop("ln_f.weight")
    expect_error(ck, "a renamed tensor is refused", lambda: gt.load(rewrite_header(raw, rename)),
                 gt.ModelFileError)

    def unknown_key(h):
        cfg = json.loads(h["__metadata__"]["genrec.config"])
        cfg["rope"] = 1
        h["__metadata__"]["genrec.config"] = json.dumps(cfg)
    expect_error(ck, "an unknown configuration key is refused",
                 lambda: gt.load(rewrite_header(raw, unknown_key)), gt.ModelFileError)
    model = gt.load(raw)
    with torch.no_grad():
        model.pos_emb[0, 0] = float("nan")
    expect_error(ck, "a non-finite parameter is not saved", lambda: gt.save(model), ValueError)

    tensors = {"f64": np.arange(6, dtype=np.float64).reshape(2, 3) / 7,
               "f16": np.array([1.5, -2.25], dtype=np.float16),
               "i32": np.array([[-1, 2**31 - 1]], dtype=np.int32), "u8": np.arange(5, dtype=np.uint8),
               "b": np.array([True, False]), "scalar": np.array(3.5, dtype=np.float32),
               "empty": np.zeros((0, 4), dtype=np.float32)}
    back, meta = safetensors.read(safetensors.write(tensors, {"k": "v"}))
    ok = meta == {"k": "v"} and list(back) == list(tensors) and all(
        back[k].dtype == v.dtype and back[k].shape == v.shape and np.array_equal(back[k], v)
        for k, v in tensors.items())
    ck.check("safetensors round-trips F64, F16, I32, U8, BOOL, scalars and empty tensors", ok)
    two = safetensors.write({"a": np.zeros(2, np.float32), "b": np.ones(2, np.float32)})

    def gap(h):
        h["b"]["data_offsets"] = [12, 20]
        h["a"]["data_offsets"] = [0, 8]
    expect_error(ck, "safetensors refuses a gap between tensors",
                 lambda: safetensors.read(rewrite_header(two, gap) + b"\0" * 4),
                 safetensors.FormatError)

    def overlap(h):
        h["b"]["data_offsets"] = [4, 12]
    expect_error(ck, "safetensors refuses overlapping tensors",
                 lambda: safetensors.read(rewrite_header(two, overlap)), safetensors.FormatError)


if __name__ == "__main__":
    sys.exit(main())
