#!/usr/bin/env python3
"""
bench/asr_fw.py - the faster-whisper side of `kiln bench asr` and `kiln bench
wer` (cmd/bench_asr.c runs it as a subprocess from ./var/venv).

    var/venv/bin/python bench/asr_fw.py --model DIR --threads N
        [--preset greedy|default] [--beam N] FILE...

Loads the model (CTranslate2 directory, float32, CPU), then speaks
bench/asr_proto.py's protocol: decodes every FILE as lib/audio.c does,
prints {"ready": true, ...}, and transcribes all files once, one after the
other (faster-whisper has no cross-file batching), per "run" line. Timing
covers transcription only (model load and audio decoding are outside, as on
the kiln side).

Presets (same meaning as kiln's):
  greedy   beam 1, temperature 0 only, no conditioning on previous text
           (tests/golden/ settings)
  default  faster-whisper transcribe() defaults (beam 5, best_of 5,
           temperatures 0..1 by 0.2, conditioning on previous text)
--beam overrides the preset's beam size.
"""
import argparse
import sys
import time

from faster_whisper import WhisperModel

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from asr_proto import serve  # noqa: E402


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
    if a.preset == "greedy":
        opts = dict(beam_size=1, best_of=1, temperature=0.0,
                    condition_on_previous_text=False)
    else:
        opts = dict(beam_size=5)
    if a.beam > 0:
        opts["beam_size"] = a.beam
    lang = None if model.model.is_multilingual else "en"

    def transcribe(pcm):
        segs, _ = model.transcribe(pcm, language=lang, vad_filter=False, **opts)
        return "".join(s.text for s in segs).strip()

    serve(a.files, transcribe, {"load_s": time.time() - t0, "options": opts})


if __name__ == "__main__":
    main()
