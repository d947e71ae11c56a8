#!/usr/bin/env python3
"""models/voice/convert.py - converts a Piper voice (.onnx + .onnx.json) into
the files kiln's speech engine loads: model.safetensors and config.json.

    convert.py VOICE.onnx VOICE.onnx.json OUTDIR

Piper exports VITS with torch.onnx, which keeps most parameter names
("enc_p.encoder.attn_layers.0.conv_q.weight") but renames a few:

  * weight-norm convolutions of the flow's WaveNet layers become anonymous
    initializers ("onnx::Conv_8168"); their name comes back from the Conv
    node that consumes them ("/flow/flows.6/enc/in_layers.0/Conv" ->
    "flow.flows.6.enc.in_layers.0.weight");
  * the phoneme embedding is consumed by "/enc_p/emb/Gather" (the exporter
    may call it "sid"): it becomes "enc_p.emb.weight";
  * the duration predictor's ElementwiseAffine scale was folded into
    exp(-logs) ("/dp/flows.0/Exp_output_0"): it becomes "dp.flows.0.logs"
    again (logs = -ln c).

Scalars and index constants are dropped. The hyper-parameters the C engine
needs (layer counts, widths, window size, decoder rates, kernel sizes and
dilations) are read from tensor shapes and node attributes, so they always
match the weights, and written to config.json together with the voice's own
JSON (phoneme_id_map, espeak voice, inference scales, sample rate).

The output is deterministic (sorted tensor names, no timestamps), so its
sha256 is checked by models/voice/fetch.sh. Only the `onnx` and `numpy`
packages are needed (no onnxruntime, no torch).
"""

import json
import math
import os
import re
import struct
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

FORMAT_VERSION = 1


def die(msg):
    print("convert.py: " + msg, file=sys.stderr)
    sys.exit(1)


def node_param(node_name):
    """'/flow/flows.6/enc/in_layers.0/Conv' -> 'flow.flows.6.enc.in_layers.0'."""
    parts = [p for p in node_name.split("/") if p]
    if len(parts) < 2:
        return None
    return ".".join(parts[:-1])


def collect(model):
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    consumers = {}
    for n in g.node:
        for i, name in enumerate(n.input):
            consumers.setdefault(name, []).append((n, i))
    out = {}
    for name, t in inits.items():
        if t.data_type != onnx.TensorProto.FLOAT:
            continue
        arr = numpy_helper.to_array(t).astype(np.float32)
        uses = consumers.get(name, [])
        if name == "/dp/flows.0/Exp_output_0":
            # (x - m) * exp(-logs): store logs again
            out["dp.flows.0.logs"] = (-np.log(arr.astype(np.float64))).astype(np.float32)
            continue
        if arr.ndim == 0 or arr.size <= 1:
            continue  # scalar constants (sqrt(C), eps, 3.0 of the resblock mean)
        if name.startswith("/"):
            die("unexpected folded constant %s %s" % (name, list(arr.shape)))
        if re.match(r"^[a-z_]+[a-z0-9_]*(\.[A-Za-z0-9_]+)+$", name):
            out[name] = arr
            continue
        # anonymous: name it after its consumer
        new = None
        for n, i in uses:
            base = node_param(n.name)
            if base is None:
                continue
            if n.op_type in ("Conv", "ConvTranspose") and i == 1:
                new = base + ".weight"
            elif n.op_type in ("Conv", "ConvTranspose") and i == 2:
                new = base + ".bias"
            elif n.op_type == "Gather" and i == 0:
                new = base + ".weight"
        if new is None:
            die("cannot name initializer %s %s" % (name, list(arr.shape)))
        if new in out:
            die("two initializers map to %s" % new)
        out[new] = arr
    return out


def conv_attrs(model, prefix):
    for n in model.graph.node:
        if n.name.startswith(prefix) and n.op_type in ("Conv", "ConvTranspose"):
            return {a.name: helper.get_attribute_value(a) for a in n.attribute}
    die("no node %s" % prefix)


def hparams(model, w):
    """Reads the VITS hyper-parameters from shapes and node attributes."""
    hp = {}
    hp["n_vocab"], hp["hidden_channels"] = map(int, w["enc_p.emb.weight"].shape)
    n_layers = 0
    while "enc_p.encoder.attn_layers.%d.conv_q.weight" % n_layers in w:
        n_layers += 1
    hp["n_layers"] = n_layers
    rel = w["enc_p.encoder.attn_layers.0.emb_rel_k"]
    hp["window_size"] = (rel.shape[1] - 1) // 2
    hp["n_heads"] = hp["hidden_channels"] // rel.shape[2]
    f1 = w["enc_p.encoder.ffn_layers.0.conv_1.weight"]
    hp["filter_channels"], hp["kernel_size"] = int(f1.shape[0]), int(f1.shape[2])
    hp["inter_channels"] = int(w["enc_p.proj.weight"].shape[0]) // 2
    # flow: coupling layers at even indices, Flip between them
    flows = sorted({int(m.group(1)) for k in w for m in [re.match(r"flow\.flows\.(\d+)\.pre", k)] if m})
    hp["flow_layers"] = flows
    wn = 0
    while "flow.flows.%d.enc.in_layers.%d.weight" % (flows[0], wn) in w:
        wn += 1
    hp["flow_wn_layers"] = wn
    hp["flow_kernel_size"] = int(w["flow.flows.%d.enc.in_layers.0.weight" % flows[0]].shape[2])
    a = conv_attrs(model, "/flow/flows.%d/enc/in_layers.1/" % flows[0])
    hp["flow_dilation_rate"] = int(a["dilations"][0])
    # stochastic duration predictor
    dpf = sorted({int(m.group(1)) for k in w for m in [re.match(r"dp\.flows\.(\d+)\.pre", k)] if m})
    hp["dp_conv_flows"] = dpf
    hp["dp_filter_channels"] = int(w["dp.pre.weight"].shape[0])
    nd = 0
    while "dp.convs.convs_sep.%d.weight" % nd in w:
        nd += 1
    hp["dp_n_layers"] = nd
    hp["dp_kernel_size"] = int(w["dp.convs.convs_sep.0.weight"].shape[2])
    nbins3 = int(w["dp.flows.%d.proj.weight" % dpf[0]].shape[0])  # half * (3 * bins - 1)
    hp["dp_num_bins"] = (nbins3 + 1) // 3
    hp["dp_tail_bound"] = 5.0
    # decoder
    rates, kernels = [], []
    i = 0
    while "dec.ups.%d.weight" % i in w:
        a = conv_attrs(model, "/dec/ups.%d/" % i)
        rates.append(int(a["strides"][0]))
        kernels.append(int(a["kernel_shape"][0]))
        i += 1
    hp["upsample_rates"], hp["upsample_kernel_sizes"] = rates, kernels
    hp["upsample_initial_channel"] = int(w["dec.conv_pre.weight"].shape[0])
    nres = 0
    while "dec.resblocks.%d.convs.0.weight" % nres in w:
        nres += 1
    nk = nres // len(rates)
    ks, dil = [], []
    for j in range(nk):
        ks.append(int(w["dec.resblocks.%d.convs.0.weight" % j].shape[2]))
        d, c = [], 0
        while "dec.resblocks.%d.convs.%d.weight" % (j, c) in w:
            d.append(int(conv_attrs(model, "/dec/resblocks.%d/convs.%d/" % (j, c))["dilations"][0]))
            c += 1
        dil.append(d)
    hp["resblock"] = "2" if "dec.resblocks.0.convs2.0.weight" not in w else "1"
    if hp["resblock"] != "2":
        die("only resblock type 2 voices are supported (this one has convs2)")
    hp["resblock_kernel_sizes"], hp["resblock_dilation_sizes"] = ks, dil
    hp["gin_channels"] = int(w["emb_g.weight"].shape[1]) if "emb_g.weight" in w else 0
    return hp


def write_safetensors(path, tensors, meta):
    names = sorted(tensors)
    header, off = {}, 0
    for k in names:
        a = np.ascontiguousarray(tensors[k], dtype="<f4")
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    header["__metadata__"] = meta
    hb = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for k in names:
            f.write(np.ascontiguousarray(tensors[k], dtype="<f4").tobytes())
    os.replace(tmp, path)


def main(argv):
    if len(argv) != 4:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    onnx_path, json_path, outdir = argv[1:]
    model = onnx.load(onnx_path)
    with open(json_path, encoding="utf-8") as f:
        voice = json.load(f)
    w = collect(model)
    hp = hparams(model, w)
    if hp["n_vocab"] != voice.get("num_symbols", hp["n_vocab"]):
        die("num_symbols %s does not match the embedding (%d)" % (voice.get("num_symbols"), hp["n_vocab"]))
    os.makedirs(outdir, exist_ok=True)
    write_safetensors(os.path.join(outdir, "model.safetensors"), w,
                      {"format": "kiln-vits", "version": str(FORMAT_VERSION)})
    cfg = {"kiln_format": "kiln-vits", "kiln_version": FORMAT_VERSION, "model": hp, "voice": voice}
    tmp = os.path.join(outdir, "config.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, os.path.join(outdir, "config.json"))
    n = sum(int(np.prod(a.shape)) for a in w.values())
    print("convert.py: %d tensors, %d parameters -> %s" % (len(w), n, outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
