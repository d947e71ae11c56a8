#!/usr/bin/env python3
"""
bench/asr_fw.py - the faster-whisper side of `kiln bench asr` and `kiln bench
wer` (cmd/bench_asr.c runs it as a subprocess from ./var/venv).

    var/venv/bin/python bench/asr_fw.py --model DIR --threads N
        [--preset greedy|default] [--beam N] FILE...

Loads the model (CTranslate2 directory, float32, CPU) and decodes every FILE
to 16 kHz mono float PCM the way lib/audio.c does (libsndfile through
python-soundfile, mono mix-down, libsoxr HQ resampling), then prints one JSON
line {"ready": true, "load_s": ...}. After that, each line "run" on stdin
transcribes all files once, one after the other (faster-whisper has no
cross-file batching), and prints one JSON line
    {"elapsed": seconds, "audio_s": seconds, "maxrss_kb": n,
     "texts": {"<file>": "<text>", ...}}
"quit" or end of input ends the process. Timing covers transcription only
(model load and audio decoding are outside, as on the kiln side).

Presets (same meaning as kiln's):
  greedy   beam 1, temperature 0 only, no conditioning on previous text
           (tests/golden/ settings)
  default  faster-whisper transcribe() defaults (beam 5, best_of 5,
           temperatures 0..1 by 0.2, conditioning on previous text)
--beam overrides the preset's beam size.
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import soundfile
import soxr
from faster_whisper import WhisperModel


def load_pcm(path):
    x, sr = soundfile.read(path, dtype="float32", always_2d=True)
    x = x.mean(axis=1).astype(np.float32)
    if sr != 16000:
        x = soxr.resample(x, sr, 16000, quality="HQ").astype(np.float32)
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--preset", default="greedy", choices=["greedy", "default"])
    ap.add_argument("--beam", type=int, default=0)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()

    t0 = time.time()
    model = WhisperModel(a.model, device="cpu", compute_type="float32",
                         cpu_threads=a.threads, num_workers=1)
    pcms = [load_pcm(f) for f in a.files]
    audio_s = sum(len(p) for p in pcms) / 16000.0
    if a.preset == "greedy":
        opts = dict(beam_size=1, best_of=1, temperature=0.0,
                    condition_on_previous_text=False)
    else:
        opts = dict(beam_size=5)
    if a.beam > 0:
        opts["beam_size"] = a.beam
    lang = None if model.model.is_multilingual else "en"
    print(json.dumps({"ready": True, "load_s": time.time() - t0, "audio_s": audio_s,
                      "options": opts}), flush=True)

    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        if cmd != "run":
            continue
        texts = {}
        t = time.perf_counter()
        for f, pcm in zip(a.files, pcms):
            segs, _ = model.transcribe(pcm, language=lang, vad_filter=False, **opts)
            texts[os.path.basename(f)] = "".join(s.text for s in segs).strip()
        elapsed = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"elapsed": elapsed, "audio_s": audio_s, "maxrss_kb": rss,
                          "texts": texts}), flush=True)


if __name__ == "__main__":
    main()
