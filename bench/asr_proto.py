"""
bench/asr_proto.py - the line protocol that `kiln bench asr` / `kiln bench
wer` (cmd/bench_asr.c) speak with their baseline child processes
(bench/asr_fw.py: faster-whisper, bench/asr_wcpp.py: whisper.cpp), and the
audio decoding they share with tests/golden/ (lib/audio.c's: libsndfile,
mono mix-down, libsoxr HQ to 16 kHz).

serve(files, transcribe, info) decodes every file, prints one JSON line
{"ready": true, "audio_s": ..., **info}; then each line "run" on stdin
transcribes all files once, one after the other, and prints one JSON line
    {"elapsed": seconds, "audio_s": seconds, "maxrss_kb": n,
     "texts": {"<file>": "<text>", ...}}
"quit" or end of input ends it. Timing covers transcription only.
"""
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "golden"))
from make_whisper_golden import load_pcm  # noqa: E402,F401  (lib/audio.c's decoding)


def serve(files, transcribe, info):
    """transcribe(pcm) -> text; info: extra fields of the ready line."""
    t0 = time.time()
    pcms = [load_pcm(f) for f in files]
    audio_s = sum(len(p) for p in pcms) / 16000.0
    print(json.dumps(dict({"ready": True, "audio_s": audio_s, "decode_s": time.time() - t0},
                          **info)), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        if cmd != "run":
            continue
        texts = {}
        t = time.perf_counter()
        for f, pcm in zip(files, pcms):
            texts[os.path.basename(f)] = transcribe(pcm)
        elapsed = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"elapsed": elapsed, "audio_s": audio_s, "maxrss_kb": rss,
                          "texts": texts}), flush=True)
