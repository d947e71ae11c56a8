#!/usr/bin/env python3
"""
tests/golden/make_whisper_golden.py - golden greedy Whisper tokens from an
independent implementation (faster-whisper 1.2.1 on CTranslate2 4.8.5, CPU,
float32), on the same weights kiln loads (var/models/whisper-tiny.en).

Audio is decoded like lib/audio.c does it: libsndfile (python-soundfile),
mono mix-down, libsoxr HQ resampling to 16 kHz (python-soxr).

Decoding options: beam 1 (greedy; --beam N for beam search, CTranslate2's
with patience 1 and length penalty 1), temperature 0 only (no fallback),
timestamps on, no conditioning on previous text, no VAD, language "en".

Output (stdout), one line per file:
    <file>\t<duration_s>\t<space-separated token ids of all segments>\t<text>
    \t<per segment "avg_logprob/no_speech_prob", space-separated>

Made with:
    python3 -m venv var/venv
    var/venv/bin/pip install faster-whisper==1.2.1 soundfile soxr jiwer
    models/whisper/fetch.sh
    var/venv/bin/python tests/golden/make_whisper_golden.py \
        ../shared/data/speech/dev > tests/golden/whisper-tiny.en-dev.tsv
    var/venv/bin/python tests/golden/make_whisper_golden.py --beam 5 \
        ../shared/data/speech/dev > tests/golden/whisper-tiny.en-dev-beam5.tsv
    var/venv/bin/python tests/golden/make_whisper_golden.py --defaults \
        ../shared/data/speech/dev > tests/golden/whisper-tiny.en-dev-defaults.tsv
(--defaults: faster-whisper's transcribe() defaults: beam 5, temperature
fallback with best_of 5, conditioning on previous text; the last column adds
each segment's temperature. Sampling is random, so only windows decoded at
temperature 0 are comparable.)
"""
import os
import sys

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
    args = sys.argv[1:]
    beam = 1
    defaults = False
    if args[:1] == ["--beam"]:
        beam = int(args[1])
        args = args[2:]
    if args[:1] == ["--defaults"]:  # faster-whisper's transcribe() defaults
        defaults = True
        args = args[1:]
    d = args[0]
    model_dir = args[1] if len(args) > 1 else "var/models/whisper-tiny.en"
    model = WhisperModel(model_dir, device="cpu", compute_type="float32", cpu_threads=2)
    files = sorted(f for f in os.listdir(d) if f.endswith((".wav", ".flac", ".ogg")))
    for f in files:
        pcm = load_pcm(os.path.join(d, f))
        if defaults:
            segs, info = model.transcribe(pcm, language="en", vad_filter=False)
        else:
            segs, info = model.transcribe(
                pcm, language="en", beam_size=beam, best_of=1, temperature=0.0,
                condition_on_previous_text=False, vad_filter=False,
                without_timestamps=False)
        segs = list(segs)
        toks = [t for s in segs for t in s.tokens]
        text = "".join(s.text for s in segs).strip()
        if defaults:
            lps = " ".join("%.6f/%.6f/%.1f" % (s.avg_logprob, s.no_speech_prob, s.temperature)
                           for s in segs)
        else:
            lps = " ".join("%.6f/%.6f" % (s.avg_logprob, s.no_speech_prob) for s in segs)
        print("%s\t%.3f\t%s\t%s\t%s" % (f, len(pcm) / 16000.0,
                                        " ".join(map(str, toks)), text, lps), flush=True)


if __name__ == "__main__":
    main()
