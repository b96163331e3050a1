#!/usr/bin/env bash
# test_torch_roundtrip.sh — genrec -> PyTorch -> genrec through SQL: genrec_train,
# genrec_export into a genrec_torch module (python/genrec_torch), the same scores and top-k
# from genrec_score / genrec_score_detail / genrec_recommend and from the module, fine-tuning
# in PyTorch, genrec_import of the saved bytes and the same scores again. The checks are in
# test/torch/test_sql_roundtrip.py. Needs a running cluster with genrec installed (PGHOST etc.
# exported) and Debian's python3-torch; test/run_sql_tests.sh runs it.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
exec /usr/bin/python3 test/torch/test_sql_roundtrip.py
