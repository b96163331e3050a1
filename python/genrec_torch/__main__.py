"""python3 -m genrec_torch — the package from the command line, mirroring the engine program:

  info MODEL                                       layout, configuration, parameters
  score MODEL --history I[:A...],... --candidates I,...   one JSON document, as `genrec score --json`
  recommend MODEL --history ... [--k N] [--include-seen]  as `genrec recommend --json`
  finetune MODEL --data FILE --out FILE [--cols U,I,A,T] [--epochs N] [--lr X] ...

--data reads plain or gzip text: tab, comma, "::" or blank separated; a first line whose user
or item is not an integer is a header. --cols gives 0-based columns (default 0,1,2,3 for a
model with one action column, 0,1,-,2 without): A is "-" for none or several joined by "+",
T is "-" for input order.
"""

import argparse
import gzip
import json
import math
import re
import sys

import numpy as np
import torch

from . import files
from .finetune import fit


def parse_history(text, K):
    """ITEM[:ACTION[:ACTION...]],... (empty action = missing) -> (items, raw actions [N, K])."""
    items, acts = [], []
    for entry in [e for e in text.split(",") if e] if text else []:
        parts = entry.split(":")
        if len(parts) - 1 > K:
            raise SystemExit("history entry %r has more than %d action(s)" % (entry, K))
        items.append(int(parts[0]))
        acts.append([float(p) if p else math.nan for p in parts[1:]] +
                    [math.nan] * (K - len(parts) + 1))
    return np.array(items, np.int64), np.array(acts, np.float64).reshape(len(items), K)


def _num(x):
    return None if x is None or not math.isfinite(x) else float(x)


def read_interactions(path, cols):
    """Columns user, item, actions and time of a text file -> arrays."""
    u_col, i_col, a_cols, t_col = cols
    opener = gzip.open if path.endswith(".gz") else open
    user, item, acts, tm = [], [], [], []
    with opener(path, "rt") as f:
        for n, line in enumerate(f):
            line = line.strip()
            if not line:
                continue
            fields = re.split(r"::|\t|,|\s+", line)
            try:
                u, i = int(fields[u_col]), int(fields[i_col])
            except ValueError:
                if n == 0:
                    continue        # a header
                raise SystemExit("%s:%d: user and item must be integers" % (path, n + 1))
            user.append(u)
            item.append(i)
            acts.append([float(fields[c]) if fields[c] else math.nan for c in a_cols])
            tm.append(int(float(fields[t_col])) if t_col is not None else len(tm))
    return (np.array(user, np.int64), np.array(item, np.int64), np.array(tm, np.int64),
            np.array(acts, np.float64).reshape(len(user), len(a_cols)))


def parse_cols(text, K):
    if text is None:
        text = "0,1,2,3" if K == 1 else "0,1,-,2" if K == 0 else None
        if text is None:
            raise SystemExit("--cols is required for a model with %d action columns" % K)
    parts = text.split(",")
    if len(parts) != 4:
        raise SystemExit("--cols needs U,I,A,T")
    acts = [] if parts[2] == "-" else [int(c) for c in parts[2].split("+")]
    if len(acts) != K:
        raise SystemExit("--cols names %d action column(s), the model reads %d" % (len(acts), K))
    return int(parts[0]), int(parts[1]), acts, None if parts[3] == "-" else int(parts[3])


def action_names(model):
    names = (model.extra or {}).get("action_names")
    if isinstance(names, list) and len(names) == model.K:
        return [str(n) for n in names]
    return ["action%d" % k for k in range(model.K)]


def cmd_info(model, args):
    print("layout %s, trunk %s, d %d, layers %d, heads %d, max_len %d, %d items, %d actions, "
          "%d parameters" % (model.layout, model.trunk, model.d, len(model.blocks), model.n_head,
                             model.max_len, model.n_items, model.K,
                             sum(p.numel() for p in model.parameters())))
    for name, p in model.named_parameters():
        print("  %-32s %s" % (name, list(p.shape)))


def cmd_score(model, args):
    items, acts = parse_history(args.history, model.K)
    cands = [int(c) for c in args.candidates.split(",") if c]
    res = model.score(items, cands, acts)
    names = action_names(model)
    doc = {"command": "score", "history_length": len(items), "candidates": [
        {"item": c, "known": bool(res["known"][j]), "logit": _num(res["logit"][j]),
         "actions": {names[k]: _num(res["action"][j, k]) for k in range(model.K)}}
        for j, c in enumerate(cands)]}
    json.dump(doc, sys.stdout, indent=1)
    print()


def cmd_recommend(model, args):
    items, acts = parse_history(args.history, model.K)
    ids, scores = model.recommend(items, args.k, acts, exclude_seen=not args.include_seen)
    doc = {"command": "recommend", "history_length": len(items),
           "exclude_seen": not args.include_seen,
           "items": [{"rank": r + 1, "item": int(i), "logit": float(s)}
                     for r, (i, s) in enumerate(zip(ids, scores))]}
    json.dump(doc, sys.stdout, indent=1)
    print()


def cmd_finetune(model, args):
    user, item, tm, acts = read_interactions(args.data, parse_cols(args.cols, model.K))
    torch.set_num_threads(args.threads)
    fit(model, user, item, tm, acts if model.K else None, epochs=args.epochs, lr=args.lr,
        batch_size=args.batch, dropout=args.dropout, weight_decay=args.weight_decay,
        holdout=not args.all, seed=args.seed,
        log=None if args.quiet else lambda m: print(m, file=sys.stderr))
    files.save(model, args.out)
    if not args.quiet:
        print("wrote %s" % args.out, file=sys.stderr)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m genrec_torch", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info")
    p.add_argument("model")
    p = sub.add_parser("score")
    p.add_argument("model")
    p.add_argument("--history", default="")
    p.add_argument("--candidates", required=True)
    p = sub.add_parser("recommend")
    p.add_argument("model")
    p.add_argument("--history", default="")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--include-seen", action="store_true")
    p = sub.add_parser("finetune")
    p.add_argument("model")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--cols")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--all", action="store_true", help="train on every interaction (no hold-out)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quiet", action="store_true")
    for p in sub.choices.values():
        p.add_argument("--double", action="store_true", help="compute in float64")
    args = ap.parse_args(argv)
    try:
        model = files.load(args.model, dtype=torch.float64 if args.double else torch.float32)
    except (OSError, files.ModelFileError) as e:
        raise SystemExit("genrec_torch: %s" % e)
    {"info": cmd_info, "score": cmd_score, "recommend": cmd_recommend,
     "finetune": cmd_finetune}[args.command](model, args)


if __name__ == "__main__":
    main()
