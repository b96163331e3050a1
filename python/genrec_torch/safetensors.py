"""The safetensors format, read and written with the standard library and NumPy (the
`safetensors` package is not in Debian 12).

A file is an unsigned 64-bit little-endian header length N, N bytes of JSON (an object: one
entry per tensor {"dtype", "shape", "data_offsets": [begin, end]} relative to the data
section, and an optional "__metadata__" object of strings), padded with spaces, then the
data section: row-major little-endian tensors. The reader checks what the engine checks
(lengths, offsets inside the data, no overlap and no gap, shapes against sizes) and raises
FormatError; the writer pads the header to a multiple of 8 bytes and stores the tensors back
to back in the order given.
"""

import json
import struct

import numpy as np

DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
NAMES = {dt: name for name, dt in DTYPES.items()}
MAX_HEADER = 100_000_000


class FormatError(ValueError):
    """Bytes that are not a well-formed safetensors file."""


def read(data):
    """Parse safetensors bytes: returns (tensors, metadata), tensors a dict name -> NumPy
    array in file order (native byte order, a copy), metadata a dict of strings."""
    data = memoryview(data).cast("B")
    if len(data) < 8:
        raise FormatError("file too short: %d bytes, need at least 8" % len(data))
    (n,) = struct.unpack("<Q", data[:8])
    if n == 0 or n > MAX_HEADER or n > len(data) - 8:
        raise FormatError("header length %d does not fit the %d bytes that follow it"
                          % (n, len(data) - 8))
    try:
        header = json.loads(bytes(data[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError("header is not valid JSON: %s" % e) from None
    if not isinstance(header, dict):
        raise FormatError("header is not a JSON object")
    body = data[8 + n:]
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise FormatError("__metadata__ is not an object of strings")
    spans, tensors = [], {}
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise FormatError("tensor %r: entry needs exactly dtype, shape, data_offsets" % name)
        dt = DTYPES.get(entry["dtype"])
        if dt is None:
            raise FormatError("tensor %r: unsupported dtype %r" % (name, entry["dtype"]))
        shape, offs = entry["shape"], entry["data_offsets"]
        if (not isinstance(shape, list) or not all(type(x) is int and x >= 0 for x in shape)
                or not isinstance(offs, list) or len(offs) != 2
                or not all(type(x) is int for x in offs)):
            raise FormatError("tensor %r: bad shape or data_offsets" % name)
        begin, end = offs
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not 0 <= begin <= end <= len(body) or end - begin != count * dt.itemsize:
            raise FormatError("tensor %r: data_offsets [%d, %d] do not fit its shape %s and "
                              "the %d-byte data section" % (name, begin, end, shape, len(body)))
        spans.append((begin, end, name))
        arr = np.frombuffer(body[begin:end], dtype=dt).reshape(shape)
        tensors[name] = arr.astype(dt.newbyteorder("="), copy=True)
    covered = 0
    for begin, end, name in sorted(spans):
        if begin != covered:
            raise FormatError("tensor %r: %s before it" % (
                name, "overlap" if begin < covered else "%d unused bytes" % (begin - covered)))
        covered = end
    if covered != len(body):
        raise FormatError("%d trailing bytes not covered by any tensor" % (len(body) - covered))
    return tensors, metadata


def write(tensors, metadata=None):
    """Serialise tensors (a dict name -> NumPy array or torch tensor, stored in that order)
    and string metadata to safetensors bytes."""
    header, chunks, offset = {}, [], 0
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("metadata keys and values must be strings")
        header["__metadata__"] = dict(metadata)
    for name, t in tensors.items():
        if name == "__metadata__":
            raise ValueError("a tensor cannot be called __metadata__")
        a = t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
        if a.dtype.newbyteorder("<") not in NAMES:
            raise TypeError("tensor %r: dtype %s has no safetensors name" % (name, a.dtype))
        le = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
        raw = le.tobytes()
        header[name] = {"dtype": NAMES[le.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return b"".join([struct.pack("<Q", len(text)), text] + chunks)
