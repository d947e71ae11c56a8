#!/usr/bin/env python3
"""bench/tts_ort.py - the onnxruntime side of bench/tts.sh: Piper (piper-tts)
synthesising TEXT_FILE with the voice's default scales, one sentence after
another as Piper does, on THREADS intra-op threads; prints one JSON line per
run like `kiln speak --repeat`.

    tts_ort.py VOICE.onnx TEXT_FILE THREADS RUNS
"""
import json
import sys
import time

import onnxruntime
from piper import PiperVoice


def main():
    onnx_path, text_file, threads, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    voice = PiperVoice.load(onnx_path, config_path=onnx_path + ".json")
    so = onnxruntime.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    voice.session = onnxruntime.InferenceSession(onnx_path, sess_options=so, providers=["CPUExecutionProvider"])
    text = open(text_file, encoding="utf-8").read()
    for r in range(runs):
        t = time.perf_counter()
        chunks = list(voice.synthesize(text))
        el = time.perf_counter() - t
        audio = sum(c.audio_float_array.size for c in chunks) / voice.config.sample_rate
        print(json.dumps({"engine": "onnxruntime", "run": r, "audio_s": round(audio, 3),
                          "synth_s": round(el, 4), "rtf": round(el / audio, 5), "threads": threads,
                          "sentences": len(chunks)}), flush=True)


if __name__ == "__main__":
    main()
