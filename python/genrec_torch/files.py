"""genrec model files <-> GenRec modules.

A genrec model file (`genrec train --save`, `genrec_export`) is safetensors: every parameter
as F32 under its engine name, the item id map as I64 "item_ids" [V], and the metadata
"genrec.format" ("1"), "genrec.layout", "genrec.config" (the engine configuration as JSON)
and optionally "genrec.extra" (the training summary, and the source mapping in an export).
load() builds the module and checks that the file's tensors are exactly the module's
parameters; save() writes the module back in the form genrec_import and `genrec --model`
read, keeping the configuration and summary texts (when unchanged) and the other metadata it
was loaded with, so that an unchanged model saves to the bytes it was loaded from.
"""

import json
import math
import os

import numpy as np
import torch

from . import safetensors
from .model import GenRec

FORMAT = "1"
ITEM_IDS = "item_ids"
# configuration keys of the engine (gr_config_json.c) and the constructor argument of each
CONFIG_ARGS = {
    "layout": "layout", "n_items": "n_items", "d_model": "d_model", "n_layer": "n_layer",
    "n_head": "n_head", "max_len": "max_len", "n_actions": "n_actions",
    "action_binary": "action_binary", "action_min": "action_min", "action_max": "action_max",
    "n_buckets": "n_buckets", "emb_scale": "emb_scale", "head_hidden": "head_hidden",
    "trunk": "trunk", "action_bias": "action_bias",
}
# absent action_bias: a file written before the action head's bias path
CONFIG_DEFAULTS = {"trunk": "gpt2", "action_bias": False}


class ModelFileError(ValueError):
    """A file that is not a genrec model this package can read."""


def from_config(config, dtype=torch.float32, dropout=0.0):
    """A module (parameters zero) for an engine configuration (a dict, as in the file)."""
    unknown = sorted(set(config) - set(CONFIG_ARGS))
    if unknown:
        raise ModelFileError("configuration keys %s are not known to genrec_torch (a newer "
                             "genrec wrote this file)" % ", ".join(unknown))
    missing = sorted(set(CONFIG_ARGS) - set(config) - set(CONFIG_DEFAULTS))
    if missing:
        raise ModelFileError("configuration lacks %s" % ", ".join(missing))
    args = {CONFIG_ARGS[k]: v for k, v in config.items()}
    try:
        model = GenRec(dropout=dropout, **args)
    except (TypeError, ValueError) as e:
        raise ModelFileError("bad configuration: %s" % e) from None
    return model.to(dtype)


def config_of(model):
    """The engine configuration of a module, as a dict in the engine's key order."""
    cfg = {"layout": model.layout, "n_items": model.n_items, "d_model": model.d,
           "n_layer": len(model.blocks), "n_head": model.n_head, "max_len": model.max_len,
           "n_actions": model.K, "action_binary": list(model.binary),
           "action_min": [float(x) for x in model.action_min],
           "action_max": [float(x) for x in model.action_max],
           "n_buckets": model.n_buckets, "emb_scale": float(model.emb_scale),
           "head_hidden": model.head_hidden}
    if model.trunk != CONFIG_DEFAULTS["trunk"]:
        cfg["trunk"] = model.trunk
    if model.action_bias:
        cfg["action_bias"] = True
    return cfg


def _read_bytes(source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if hasattr(source, "read"):
        return source.read()
    with open(os.fspath(source), "rb") as f:
        return f.read()


def load(source, dtype=torch.float32, dropout=0.0):
    """Load a genrec model file (a path, bytes or a binary file object) into a GenRec module
    in eval mode; dtype float64 computes in double precision."""
    try:
        tensors, meta = safetensors.read(_read_bytes(source))
    except safetensors.FormatError as e:
        raise ModelFileError("not a safetensors file: %s" % e) from None
    if meta.get("genrec.format") != FORMAT:
        raise ModelFileError("not a genrec model file of format %s (genrec.format %r)"
                             % (FORMAT, meta.get("genrec.format")))
    try:
        config = json.loads(meta["genrec.config"])
        extra = json.loads(meta["genrec.extra"]) if "genrec.extra" in meta else None
    except (KeyError, json.JSONDecodeError) as e:
        raise ModelFileError("bad genrec metadata: %s" % e) from None
    if not isinstance(config, dict) or meta.get("genrec.layout") != config.get("layout"):
        raise ModelFileError("genrec.layout %r does not match the configuration"
                             % meta.get("genrec.layout"))
    model = from_config(config, dtype, dropout)
    params = dict(model.named_parameters())
    names = set(tensors) - {ITEM_IDS}
    if names != set(params) or ITEM_IDS not in tensors:
        raise ModelFileError("tensors differ from the %s model's parameters: file only %s, "
                             "model only %s" % (model.layout, sorted(names - set(params)),
                                                sorted(set(params) - names)))
    with torch.no_grad():
        for name, p in params.items():
            t = tensors[name]
            if tuple(t.shape) != tuple(p.shape) or t.dtype != np.float32:
                raise ModelFileError("tensor %s: %s %s, expected F32 %s"
                                     % (name, t.dtype, tuple(t.shape), tuple(p.shape)))
            p.copy_(torch.from_numpy(t))
    ids = tensors[ITEM_IDS]
    if ids.dtype != np.int64 or ids.shape != (model.n_items,) or np.any(np.diff(ids) <= 0):
        raise ModelFileError("item_ids must be %d strictly ascending I64 ids" % model.n_items)
    model.item_ids = ids
    model.config_json = meta["genrec.config"]
    model.extra = extra
    model.extra_json = meta.get("genrec.extra")
    model.metadata = {k: v for k, v in meta.items() if not k.startswith("genrec.")}
    return model.eval()


def save(model, path=None):
    """Serialise a module as a genrec model file (F32 parameters, item ids, metadata); writes
    it to path (atomically, through a temporary file) when given and returns the bytes."""
    cfg_text = model.config_json
    if cfg_text is None or json.loads(cfg_text) != config_of(model):
        cfg_text = json.dumps(config_of(model), separators=(",", ":"))
    tensors = {}
    for name, p in model.file_parameters():
        a = p.detach().cpu().to(torch.float32).numpy()
        if not np.all(np.isfinite(a)):
            raise ValueError("parameter %s holds a non-finite value" % name)
        tensors[name] = a
    ids = (np.arange(1, model.n_items + 1, dtype=np.int64) if model.item_ids is None
           else np.asarray(model.item_ids, dtype=np.int64))
    tensors[ITEM_IDS] = ids
    meta = dict(model.metadata)
    meta.update({"genrec.format": FORMAT, "genrec.layout": model.layout,
                 "genrec.config": cfg_text})
    if model.extra is not None:
        text = getattr(model, "extra_json", None)
        if text is None or json.loads(text) != model.extra:
            text = json.dumps(model.extra, separators=(",", ":"), allow_nan=False,
                              default=_json_default)
        meta["genrec.extra"] = text
    data = safetensors.write(tensors, meta)
    if path is not None:
        path = os.fspath(path)
        tmp = "%s.tmp.%d" % (path, os.getpid())
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return data


def _json_default(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)) and math.isfinite(float(x)):
        return float(x)
    raise TypeError("%r is not JSON serialisable" % (x,))
