#!/usr/bin/env python3
"""
bench/asr_wcpp.py - the whisper.cpp side of `kiln bench asr` (cmd/bench_asr.c
runs it as a subprocess from ./var/venv, like bench/asr_fw.py, with the same
protocol), through pywhispercpp 1.5.1 (PyPI wheel with whisper.cpp built in).

    var/venv/bin/pip install pywhispercpp==1.5.1
    var/venv/bin/python bench/asr_wcpp.py --model DIR --threads N
        [--preset greedy|default] [--beam N] FILE...
    var/venv/bin/python bench/asr_wcpp.py --convert DIR OUT.bin

whisper.cpp reads only its ggml format, so the CTranslate2 directory DIR
(the weights kiln and faster-whisper load) is converted first, once, to
DIR-ggml-f16.bin beside it (--convert writes it anywhere): the layout of
whisper.cpp's models/convert-pt-to-ggml.py with use_f16 (f16 matrices, f32
biases, norms, positional embeddings and conv biases [n, 1]), the
model's fp16 values unchanged; the fused CTranslate2 projections are split
into openai's query/key/value (the key has no bias); the Slaney mel
filters are faster-whisper's; the vocabulary is vocabulary.txt's first
50256 tokens as raw bytes (whisper.cpp names the special tokens itself).
kiln's ggml loader reads the same file (a cross-check of the converter).

Decoding as on the other sides: audio as lib/audio.c decodes it, and the
protocol of bench/asr_proto.py; presets
  greedy   greedy, temperature 0 without fallback (temperature_inc 0), no
           context carried between windows
  default  beam 5, temperature fallback by 0.2, context carried
--beam N selects beam search of that size.
"""
import argparse
import os
import struct
import sys
import time

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from asr_proto import serve  # noqa: E402

CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(path):
    """@returns {name: numpy array} of a CTranslate2 model.bin (see models/whisper/ct2.c)."""
    b = open(path, "rb").read()
    off = 0

    def u32():
        nonlocal off
        v = struct.unpack_from("<I", b, off)[0]
        off += 4
        return v

    def string():
        nonlocal off
        n = struct.unpack_from("<H", b, off)[0]
        s = b[off + 2:off + 2 + n - 1].decode()
        off += 2 + n
        return s

    version = u32()
    if not 4 <= version <= 6:
        raise ValueError("%s: CTranslate2 binary version %d" % (path, version))
    string()
    u32()
    out = {}
    for _ in range(u32()):
        name = string()
        rank = b[off]
        off += 1
        shape = struct.unpack_from("<%dI" % rank, b, off)
        off += 4 * rank
        dt = b[off]
        off += 1
        nbytes = u32()
        if dt in CT2_DTYPES:
            out[name] = np.frombuffer(b, CT2_DTYPES[dt], nbytes // np.dtype(CT2_DTYPES[dt]).itemsize,
                                      off).reshape(shape)
        off += nbytes
    return out


def byte_decoder():
    """GPT-2's bytes_to_unicode(), inverted."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for c in range(256):
        if c not in bs:
            bs.append(c)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def convert(ct2_dir, out_path):
    """Writes CTranslate2 Whisper directory ct2_dir as a whisper.cpp ggml f16 file."""
    from faster_whisper.feature_extractor import FeatureExtractor
    w = read_ct2(os.path.join(ct2_dir, "model.bin"))
    n_vocab, n_text_state = w["decoder/embeddings/weight"].shape
    n_audio_state, n_mels, _ = w["encoder/conv1/weight"].shape
    n_audio_layer = sum(1 for k in w if k.startswith("encoder/layer_") and
                        k.endswith("ffn/linear_0/weight"))
    n_text_layer = sum(1 for k in w if k.startswith("decoder/layer_") and
                       k.endswith("ffn/linear_0/weight"))
    hp = [n_vocab, w["encoder/position_encodings/encodings"].shape[0], n_audio_state,
          int(w["encoder/num_heads"]), n_audio_layer,
          w["decoder/position_encodings/encodings"].shape[0], n_text_state,
          int(w["decoder/num_heads"]), n_text_layer, n_mels, 1]
    t = {}  # openai name -> array
    t["encoder.conv1.weight"] = w["encoder/conv1/weight"]
    t["encoder.conv1.bias"] = w["encoder/conv1/bias"].reshape(-1, 1)
    t["encoder.conv2.weight"] = w["encoder/conv2/weight"]
    t["encoder.conv2.bias"] = w["encoder/conv2/bias"].reshape(-1, 1)
    t["encoder.positional_embedding"] = w["encoder/position_encodings/encodings"]
    t["encoder.ln_post.weight"] = w["encoder/layer_norm/gamma"]
    t["encoder.ln_post.bias"] = w["encoder/layer_norm/beta"]
    t["decoder.token_embedding.weight"] = w["decoder/embeddings/weight"]
    t["decoder.positional_embedding"] = w["decoder/position_encodings/encodings"]
    t["decoder.ln.weight"] = w["decoder/layer_norm/gamma"]
    t["decoder.ln.bias"] = w["decoder/layer_norm/beta"]

    def attn(dst, src, fused_kv):
        C = w[src + "/linear_0/weight"].shape[1]
        if fused_kv:  # cross-attention: q = linear_0, kv = linear_1, out = linear_2
            q_w, q_b = w[src + "/linear_0/weight"], w[src + "/linear_0/bias"]
            kv_w, kv_b = w[src + "/linear_1/weight"], w[src + "/linear_1/bias"]
            k_w, v_w, v_b = kv_w[:C], kv_w[C:], kv_b[C:]
            o = "/linear_2"
        else:  # self-attention: qkv = linear_0, out = linear_1
            qkv_w, qkv_b = w[src + "/linear_0/weight"], w[src + "/linear_0/bias"]
            q_w, k_w, v_w = qkv_w[:C], qkv_w[C:2 * C], qkv_w[2 * C:]
            q_b, v_b = qkv_b[:C], qkv_b[2 * C:]
            o = "/linear_1"
        t[dst + ".query.weight"], t[dst + ".query.bias"] = q_w, q_b
        t[dst + ".key.weight"] = k_w
        t[dst + ".value.weight"], t[dst + ".value.bias"] = v_w, v_b
        t[dst + ".out.weight"], t[dst + ".out.bias"] = w[src + o + "/weight"], w[src + o + "/bias"]
        t[dst + "_ln.weight"] = w[src + "/layer_norm/gamma"]
        t[dst + "_ln.bias"] = w[src + "/layer_norm/beta"]

    for side, nl in (("encoder", n_audio_layer), ("decoder", n_text_layer)):
        for l in range(nl):
            src, dst = "%s/layer_%d" % (side, l), "%s.blocks.%d" % (side, l)
            attn(dst + ".attn", src + "/self_attention", False)
            if side == "decoder":
                attn(dst + ".cross_attn", src + "/attention", True)
            t[dst + ".mlp_ln.weight"] = w[src + "/ffn/layer_norm/gamma"]
            t[dst + ".mlp_ln.bias"] = w[src + "/ffn/layer_norm/beta"]
            t[dst + ".mlp.0.weight"] = w[src + "/ffn/linear_0/weight"]
            t[dst + ".mlp.0.bias"] = w[src + "/ffn/linear_0/bias"]
            t[dst + ".mlp.2.weight"] = w[src + "/ffn/linear_1/weight"]
            t[dst + ".mlp.2.bias"] = w[src + "/ffn/linear_1/bias"]

    dec = byte_decoder()
    with open(os.path.join(ct2_dir, "vocabulary.txt"), encoding="utf-8") as fp:
        words = [line.rstrip("\n") for line in fp][:50256]
    filters = FeatureExtractor(feature_size=n_mels).mel_filters.astype(np.float32)
    tmp = out_path + ".tmp"
    with open(tmp, "wb") as fo:
        fo.write(struct.pack("<I", 0x67676D6C))
        fo.write(struct.pack("<11i", *hp))
        fo.write(struct.pack("<ii", *filters.shape))
        fo.write(filters.tobytes())
        fo.write(struct.pack("<i", len(words)))
        for word in words:
            raw = bytes(dec[c] for c in word)
            fo.write(struct.pack("<i", len(raw)) + raw)
        for name, a in t.items():
            a = np.asarray(a)
            small = a.ndim < 2 or name in ("encoder.conv1.bias", "encoder.conv2.bias",
                                           "encoder.positional_embedding",
                                           "decoder.positional_embedding")
            a = np.ascontiguousarray(a.astype(np.float32 if small else np.float16))
            key = name.encode()
            fo.write(struct.pack("<iii", a.ndim, len(key), 0 if small else 1))
            fo.write(struct.pack("<%di" % a.ndim, *reversed(a.shape)))
            fo.write(key)
            fo.write(a.tobytes())
    os.replace(tmp, out_path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--preset", default="greedy", choices=["greedy", "default"])
    ap.add_argument("--beam", type=int, default=0)
    ap.add_argument("--convert", nargs=2, metavar=("CT2_DIR", "OUT"))
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    if a.convert:
        convert(*a.convert)
        return 0

    t0 = time.time()
    ggml = a.model if a.model.endswith(".bin") else a.model.rstrip("/") + "-ggml-f16.bin"
    if not os.path.exists(ggml):
        convert(a.model, ggml)
    from pywhispercpp.model import Model
    beam = a.beam if a.beam > 0 else (5 if a.preset == "default" else 0)
    opts = dict(n_threads=a.threads or os.cpu_count(), language="en", print_progress=False,
                print_realtime=False, no_context=a.preset == "greedy",
                temperature_inc=0.2 if a.preset == "default" else 0.0)
    if beam > 1:
        opts["beam_search"] = {"beam_size": beam, "patience": -1.0}
    model = Model(ggml, params_sampling_strategy=1 if beam > 1 else 0,
                  redirect_whispercpp_logs_to=None, **opts)

    def transcribe(pcm):  # pywhispercpp strips each segment's text: join with spaces
        return " ".join(s.text for s in model.transcribe(pcm) if s.text).strip()

    serve(a.files, transcribe, {"load_s": time.time() - t0, "model": ggml, "options": opts})
    return 0


if __name__ == "__main__":
    sys.exit(main())
