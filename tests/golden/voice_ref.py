#!/usr/bin/env python3
"""tests/golden/voice_ref.py - the reference side of the speech-synthesis
parity checks: Piper (piper-tts, onnxruntime) on the same voice and text.

    voice_ref.py VOICE_DIR CORPUS.txt OUT.tsv [--audio DIR] [--audio-lines 1,2,3]

For every line of CORPUS (one text per line) Piper phonemises the text
(its own espeak-ng), maps phonemes to ids, and runs the ONNX model with
noise_scale = 0, noise_w = 0, length_scale = 1 (deterministic), with one
extra graph output: the ceiled durations ("/Ceil_output_0", frames per
phoneme id). OUT.tsv gets one row per sentence:

    line<TAB>sentence<TAB>ids (space-separated)<TAB>durations<TAB>samples

and with --audio, DIR/voice_ref_L<line>_S<sentence>.flac holds the raw model
output (before Piper's peak normalisation; FLAC 24-bit at the voice's rate)
for the lines listed in --audio-lines (all lines when omitted).

Needs ./var/venv with piper-tts and onnx (`make test-ref` installs them).
"""

import argparse
import os
import sys

import numpy as np
import onnx
import onnxruntime
import soundfile as sf
from piper import PiperVoice


def session_with_durations(onnx_path, threads):
    model = onnx.load(onnx_path)
    names = {o for n in model.graph.node for o in n.output}
    if "/Ceil_output_0" not in names:
        sys.exit("voice_ref.py: the model has no /Ceil_output_0 node")
    model.graph.output.append(onnx.helper.make_tensor_value_info("/Ceil_output_0", onnx.TensorProto.FLOAT, None))
    so = onnxruntime.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model.SerializeToString(), sess_options=so,
                                        providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("voice_dir")
    ap.add_argument("corpus")
    ap.add_argument("out")
    ap.add_argument("--audio")
    ap.add_argument("--audio-lines", default="")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    onnx_path = [os.path.join(a.voice_dir, f) for f in os.listdir(a.voice_dir) if f.endswith(".onnx")][0]
    voice = PiperVoice.load(onnx_path, config_path=onnx_path + ".json")
    sess = session_with_durations(onnx_path, a.threads)
    want = {int(x) for x in a.audio_lines.split(",") if x}
    if a.audio:
        os.makedirs(a.audio, exist_ok=True)
    rows = []
    with open(a.corpus, encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f]
    for li, text in enumerate(lines, 1):
        for si, ph in enumerate(p for p in voice.phonemize(text) if p):
            ids = voice.phonemes_to_ids(ph)
            x = np.array([ids], dtype=np.int64)
            audio, dur = sess.run(None, {"input": x, "input_lengths": np.array([len(ids)], dtype=np.int64),
                                         "scales": np.array([0.0, 1.0, 0.0], dtype=np.float32)})
            audio = audio.reshape(-1).astype(np.float32)
            dur = dur.reshape(-1).astype(np.int64)
            rows.append("%d\t%d\t%s\t%s\t%d" % (li, si, " ".join(map(str, ids)), " ".join(map(str, dur)), audio.size))
            if a.audio and (not want or li in want):
                sf.write(os.path.join(a.audio, "voice_ref_L%d_S%d.flac" % (li, si)), audio,
                         voice.config.sample_rate, subtype="PCM_24")
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
