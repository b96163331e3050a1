"""genrec_torch — genrec's model in PyTorch: load a genrec model file into a torch.nn.Module,
score and recommend with it as the engine does, fine-tune it, and save a file that
`genrec_import` and `genrec --model` accept.

    import genrec_torch
    model = genrec_torch.load("movies.safetensors")        # a torch.nn.Module (GenRec)
    model.score([50, 172, 133], [1, 2, 3], actions=[5, 4, 1])
    genrec_torch.fit(model, user, item, time, rating, epochs=2, lr=1e-4)
    genrec_torch.save(model, "tuned.safetensors")

Needs only python3-torch and python3-numpy. The same code is the float64 reference of the
engine's parity test (test/ref/genrec_ref.py). Layouts live in layouts.py and trunks in
model.py, each a registry: a new one is one class.
"""

from .data import Dataset, dense_lookup
from .files import ModelFileError, config_of, from_config, load, save
from .finetune import dataset_for, fit, training_windows
from .layouts import (LAYOUT, LAYOUTS, Layout, history_cap, layout_of, n_positions, register,
                      serving_seq, window_len, window_seq)
from .model import (CANDIDATE_TOKENS, COUPLER, TIME_EDGES, TRUNKS, USES_ACTIONS, HAS_ACTION_HEAD,
                    GenRec, make_adamw, register_trunk, time_bucket)
from .serve import EmptyHistory, recommend, score
from .tokens import Seq, attention_mask, buckets, collate, seq_time

__version__ = "0.2.0"

__all__ = [
    "CANDIDATE_TOKENS", "COUPLER", "Dataset", "EmptyHistory", "GenRec", "LAYOUT", "LAYOUTS",
    "Layout", "ModelFileError", "Seq", "TIME_EDGES", "TRUNKS", "USES_ACTIONS", "HAS_ACTION_HEAD",
    "attention_mask", "buckets",
    "collate", "config_of", "dataset_for", "dense_lookup", "fit", "from_config",
    "history_cap", "layout_of", "load", "make_adamw", "n_positions", "recommend", "register",
    "register_trunk", "save", "score", "seq_time", "serving_seq", "time_bucket",
    "training_windows", "window_len", "window_seq",
]
