#!/usr/bin/env python3
"""bench/voice_f16.py - copies a voice (config.json + model.safetensors) with
its F32 tensors stored as F16, half the bytes, for a machine that gets only
what travels with a device command (64 MiB): bench/gpu.sh --pack uses it.

    var/venv/bin/python bench/voice_f16.py SRC_DIR DST_DIR

kiln's safetensors loader (models/whisper/loader.c, kiln_wtab_copy) widens
F16 to fp32 on load, so the voice runs in fp32 as before, from weights
rounded to 11 significant bits. Kept as F32: tensors that are not F32, small
ones (< 4096 values: biases, norms; a few kB in all), and any whose values
do not fit F16 (|x| > 65504). The format is safetensors: an 8-byte
little-endian header length, a JSON header ("__metadata__" kept, tensors
with dtype, shape and data_offsets into the data that follows), the data.
Exit: 0, 1 on failure, 2 on a usage error.
"""
import json
import os
import shutil
import struct
import sys

import numpy as np

SMALL = 4096
F16_MAX = 65504.0


def read_safetensors(path):
    """Returns (header dict, data bytes)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    return header, data


def convert(header, data):
    """Returns (new header, list of byte chunks), F32 tensors as F16 where they fit."""
    out = {}
    if "__metadata__" in header:
        out["__metadata__"] = header["__metadata__"]
    chunks, off, n16 = [], 0, 0
    names = sorted((k for k in header if k != "__metadata__"),
                   key=lambda k: header[k]["data_offsets"][0])
    for name in names:
        t = header[name]
        a, b = t["data_offsets"]
        raw = data[a:b]
        dtype = t["dtype"]
        if dtype == "F32" and (b - a) // 4 >= SMALL:
            x = np.frombuffer(raw, dtype="<f4")
            if np.all(np.isfinite(x)) and float(np.max(np.abs(x))) <= F16_MAX:
                raw = x.astype("<f2").tobytes()
                dtype = "F16"
                n16 += 1
        out[name] = {"dtype": dtype, "shape": t["shape"], "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    return out, chunks, n16


def main(argv):
    if len(argv) != 3:
        print("usage: voice_f16.py SRC_DIR DST_DIR", file=sys.stderr)
        return 2
    src, dst = argv[1], argv[2]
    try:
        header, data = read_safetensors(os.path.join(src, "model.safetensors"))
        new, chunks, n16 = convert(header, data)
        os.makedirs(dst, exist_ok=True)
        shutil.copyfile(os.path.join(src, "config.json"), os.path.join(dst, "config.json"))
        hj = json.dumps(new, separators=(",", ":")).encode()
        hj += b" " * (-len(hj) % 8)  # keep the data 8-byte aligned
        tmp = os.path.join(dst, "model.safetensors.tmp")
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(hj)))
            f.write(hj)
            for c in chunks:
                f.write(c)
        os.replace(tmp, os.path.join(dst, "model.safetensors"))
    except (OSError, ValueError, KeyError) as e:
        print("voice_f16.py: could not convert \"%s\": %s" % (src, e), file=sys.stderr)
        return 1
    n = len(new) - ("__metadata__" in new)
    print("voice_f16.py: %s -> %s: %d of %d tensors as F16, %.1f MB -> %.1f MB"
          % (src, dst, n16, n, (8 + len(data)) / 1e6,
             os.path.getsize(os.path.join(dst, "model.safetensors")) / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
