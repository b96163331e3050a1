#!/usr/bin/python3
"""test_sql_roundtrip.py — genrec -> PyTorch -> genrec through SQL.

In a running cluster with genrec installed (PGHOST etc. in the environment), in a database of
its own: for every layout, genrec_train trains a small model on genrec_synthetic rows with a
continuous (action) and, for the action layouts, a boolean (liked) action column; then

  1. genrec_export's bytes load into a genrec_torch module;
  2. genrec_score_detail (logits and every action), genrec_score and genrec_recommend (top
     10) by user id for five users, equal the module's scores on the same histories, as do a
     genrec_history value (first action column only) and, for lac/int, a cold start (empty
     history): |a - b| <= 1e-5 * max(1, |b|);
  3. the module is fine-tuned in PyTorch on the table's rows, saved, and genrec_import
     accepts the bytes without a source argument (the export's source mapping travels in
     the summary; the stale metrics do not), and genrec_score / genrec_recommend on it
     equal the fine-tuned module's scores; and they differ from the original's.

    test/torch/test_sql_roundtrip.py      (test/pg/test_torch_roundtrip.sh runs it)
"""

import base64
import math
import os
import subprocess
import sys

try:
    import torch
except ImportError:
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != \
            os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise
import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
import genrec_torch as gt  # noqa: E402

TOL = 1e-5
DB = "genrec_torch_rt"
USERS = (1, 2, 3, 4, 5)
CANDS = list(range(1, 26)) + [99999]
PSQL = os.path.join(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                   check=True).stdout.strip(), "psql")


def psql(sql, db=DB):
    """Rows (lists of text fields, None for NULL) of a script fed on stdin."""
    p = subprocess.run([PSQL, "-X", "-q", "-At", "-F", "\t", "-P", "null=\\N", "-v",
                        "ON_ERROR_STOP=1", "-d", db],
                       input="SET client_min_messages = warning;\n" + sql, capture_output=True,
                       text=True, env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))
    if p.returncode != 0:
        raise SystemExit("psql failed: %s\n%s" % (p.stderr.strip(), sql[:300]))
    return [[None if f == "\\N" else f for f in line.split("\t")]
            for line in p.stdout.splitlines() if line]


def real_array(text):
    """A real[] printed by psql -> list of floats (NaN for NULL)."""
    if text is None:
        return None
    return [math.nan if x == "NULL" else float(x) for x in text.strip("{}").split(",") if x]


def close(a, b):
    na, nb = a is None or math.isnan(a), b is None or math.isnan(b)
    if na or nb:
        return na and nb
    return abs(a - b) <= TOL * max(1.0, abs(b))


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


def load_rows():
    rows = psql("SELECT user_id, item_id, action, liked::int, "
                "extract(epoch FROM ts)::bigint FROM public.syn ORDER BY user_id, ts")
    a = np.array([[float(x) for x in r] for r in rows])
    return (a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 4].astype(np.int64),
            a[:, 2:4])


def history(user, item, ts, acts, u, K):
    sel = np.flatnonzero(user == u)
    sel = sel[np.argsort(ts[sel], kind="stable")]
    if len(np.unique(ts[sel])) != len(sel):
        raise SystemExit("user %d has equal times: the test needs a strict order" % u)
    return item[sel], acts[sel, :K]


def compare_user(model, name, u, it, a):
    """Mismatches between SQL serving of model `name` for user u and the module."""
    res = model.score(it, CANDS, a)
    bad = []
    rows = psql("SELECT known, retrieval_logit, actions FROM genrec.genrec_score_detail("
                "'%s', %d, ARRAY%s::bigint[])" % (name, u, CANDS))
    for j, (known, logit, actions) in enumerate(rows):
        if (known == "t") != bool(res["known"][j]):
            bad.append("candidate %d known" % CANDS[j])
            continue
        if not known == "t":
            continue            # SQL gives NULL predictions for unknown items
        if not close(float(res["logit"][j]), float(logit)):
            bad.append("candidate %d logit: torch %r SQL %s" % (CANDS[j], res["logit"][j], logit))
        for k, v in enumerate(real_array(actions) or []):
            if not close(float(res["action"][j, k]), v):
                bad.append("candidate %d action %d: torch %r SQL %r"
                           % (CANDS[j], k, res["action"][j, k], v))
    first = real_array(psql("SELECT genrec.genrec_score('%s', %d, ARRAY%s::bigint[])"
                            % (name, u, CANDS))[0][0])
    want = res["action"][:, 0] if model.K else res["logit"]
    for j, v in enumerate(first):
        if res["known"][j] and not close(float(want[j]), v):
            bad.append("genrec_score candidate %d: torch %r SQL %r" % (CANDS[j], want[j], v))
    rec = psql("SELECT item_id, score FROM genrec.genrec_recommend('%s', %d, 10) ORDER BY rank"
               % (name, u))
    ids, scores = model.recommend(it, 10, a)
    sql_items = [int(r[0]) for r in rec]
    torch_of_sql = model.score(it, sql_items, a)["logit"]
    for r, (item, s) in enumerate(rec):
        if not close(float(scores[r]), float(s)):
            bad.append("recommend rank %d: torch %r SQL %s" % (r + 1, scores[r], s))
        elif int(item) != int(ids[r]) and not close(float(torch_of_sql[r]), float(scores[r])):
            bad.append("recommend rank %d: torch item %d SQL item %s" % (r + 1, ids[r], item))
    return bad


def compare_history_value(model, name, it, a):
    """genrec_score_detail with a genrec_history value (first action column only)."""
    acts = np.full((len(it), model.K), np.nan)
    sql_acts = "NULL"
    if model.K:
        acts[:, 0] = a[:, 0]
        sql_acts = "ARRAY[%s]::real[]" % ",".join(repr(float(x)) for x in a[:, 0])
    sql_items = "ARRAY[%s]::bigint[]" % ",".join(str(int(x)) for x in it)
    res = model.score(it, CANDS, acts)
    rows = psql("SELECT known, retrieval_logit, actions FROM genrec.genrec_score_detail('%s', "
                "genrec.genrec_history(%s, %s), ARRAY%s::bigint[])"
                % (name, sql_items, sql_acts, CANDS))
    bad = []
    for j, (known, logit, actions) in enumerate(rows):
        if known != "t":
            continue
        vals = [float(logit) if logit is not None else math.nan] + (real_array(actions) or [])
        mine = [float(res["logit"][j])] + [float(x) for x in res["action"][j]]
        for t, v in zip(mine, vals):
            if not close(t, v):
                bad.append("candidate %d: torch %r SQL %r" % (CANDS[j], t, v))
    return bad


def main():
    torch.set_num_threads(1)
    ck = Checks()
    psql("DROP DATABASE IF EXISTS %s" % DB, db="postgres")
    psql("CREATE DATABASE %s" % DB, db="postgres")
    psql("CREATE EXTENSION genrec;\n"
         "CREATE TABLE public.syn AS SELECT user_id, item_id, action, action >= 4 AS liked, ts "
         "FROM genrec.genrec_synthetic(160, 120, 16, 13);\n"
         "CREATE INDEX ON public.syn (user_id);")
    user, item, ts, acts = load_rows()
    for layout in ("lac", "int", "pc", "item"):
        K = 0 if layout == "item" else 2
        cols = "'{}'" if K == 0 else "'{action,liked}'"
        name = "rt_" + layout
        psql("SET genrec.threads = 1;\nSELECT version FROM genrec.genrec_train('%s', "
             "'public.syn', layout => '%s', action_cols => %s, d_model => 16, n_layer => 2, "
             "max_len => 10, epochs => 3, batch_size => 32)" % (name, layout, cols))
        raw = base64.b64decode(psql("SELECT translate(encode(genrec.genrec_export('%s'), "
                                    "'base64'), E'\\n', '')" % name)[0][0])
        model = gt.load(raw)
        ck.check("%s: genrec_export's bytes load into a module (%d action columns)"
                 % (layout, model.K), model.layout == layout and model.K == K)
        hists = {u: history(user, item, ts, acts, u, K) for u in USERS}
        for u in USERS:
            bad = compare_user(model, name, u, *hists[u])
            ck.check("%s: SQL scores and top-10 of user %d (%d interactions) equal the module's"
                     % (layout, u, len(hists[u][0])), not bad, "; ".join(bad[:3]))
        bad = compare_history_value(model, name, *hists[1])
        ck.check("%s: genrec_score_detail of a genrec_history equals the module's" % layout,
                 not bad, "; ".join(bad[:3]))
        if model.spec.cold_start:
            bad = compare_history_value(model, name, item[:0], acts[:0, :K])
            ck.check("%s: a cold start (empty history) equals the module's" % layout, not bad,
                     "; ".join(bad[:3]))

        it1, a1 = hists[1]
        before = model.score(it1, CANDS, a1)
        gt.fit(model, user, item, ts, acts[:, :K] if K else None, epochs=2, lr=3e-3,
               batch_size=32, seed=2)
        after = model.score(it1, CANDS, a1)
        tuned = name + "_tuned"
        b64 = base64.b64encode(gt.save(model)).decode()
        # a file's own source mapping is never trusted: the importer names the source
        v = psql("SELECT genrec.genrec_import('%s', decode('%s', 'base64'), true, "
                 "(SELECT source FROM genrec.models WHERE name = '%s'))" % (tuned, b64, name))
        ck.check("%s: genrec_import accepts the fine-tuned bytes (version %s)"
                 % (layout, v[0][0]), v == [["1"]])
        meta = psql("SELECT t.metrics IS NULL, t.config->'model' = o.config->'model', "
                    "t.source = o.source, t.source->>'relation' FROM genrec.models t, "
                    "genrec.models o WHERE t.name = '%s' AND o.name = '%s'" % (tuned, name))
        ck.check("%s: the imported version has the original's configuration and source (%s) "
                 "and no metrics (the original's no longer hold)" % (layout, meta[0][3]),
                 meta == [["t", "t", "t", "public.syn"]])
        for u in USERS[:3]:
            bad = compare_user(model, tuned, u, *hists[u])
            ck.check("%s: after fine-tuning, SQL scores and top-10 of user %d equal the "
                     "module's" % (layout, u), not bad, "; ".join(bad[:3]))
        old = real_array(psql("SELECT genrec.genrec_score('%s', 1, ARRAY%s::bigint[])"
                              % (name, CANDS))[0][0])
        new = real_array(psql("SELECT genrec.genrec_score('%s', 1, ARRAY%s::bigint[])"
                              % (tuned, CANDS))[0][0])
        change = np.nanmax(np.abs(np.array(old) - np.array(new)))
        moved = np.nanmax(np.abs(np.concatenate([after["logit"] - before["logit"],
                                                 (after["action"] - before["action"]).ravel()])))
        ck.check("%s: the fine-tuned version serves different scores (max change %.3g)"
                 % (layout, change), change > 1e-3 and moved > 1e-3)
    psql("DROP DATABASE %s" % DB, db="postgres")
    print("test_sql_roundtrip: %d passed, %d failed" % (ck.passed, ck.failed))
    return 1 if ck.failed else 0


if __name__ == "__main__":
    sys.exit(main())
