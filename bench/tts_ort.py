#!/usr/bin/env python3
"""bench/tts_ort.py - the onnxruntime side of `kiln bench tts` and
bench/tts_wer.sh: Piper (piper-tts) on onnxruntime, same voice, the voice's
default scales.

    tts_ort.py --serve VOICE.onnx TEXT_FILE THREADS
        phonemises TEXT_FILE with Piper's own front end (sentences, ids),
        prints {"ready": true, "sentences": N, "ids": [[...], ...]} and then
        answers one JSON line per command read from stdin:
          single  every sentence alone, one after another, on a session of
                  THREADS intra-op threads (what Piper's synthesize() does)
          pad B   the sentences in padded batches of B ids sequences per
                  session.run (input_lengths masks the padding), THREADS
                  intra-op threads
          conc    THREADS sentences at a time: THREADS Python threads share
                  one session of 1 intra-op thread (run() releases the GIL)
          warm    a few runs, outside the timings
          quit
        {"mode", "elapsed" (s), "cpu" (s of CPU time, all threads), "audio_s" (s of audio, 0 for pad: its
        outputs are padded), "sentences"}
    tts_ort.py --write DIR VOICE.onnx TSV
        speaks the text of every "file<TAB>text" line of TSV into DIR/file
        (16-bit wav, Piper's synthesize_wav).
"""
import concurrent.futures
import json
import sys
import time
import wave

import numpy as np
import onnxruntime
from piper import PiperVoice


def session(onnx_path, threads):
    so = onnxruntime.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(onnx_path, sess_options=so,
                                        providers=["CPUExecutionProvider"])


def run(sess, voice, batch):
    """One session.run on a list of id sequences (padded); returns [B, samples]."""
    n = max(len(b) for b in batch)
    ids = np.zeros((len(batch), n), dtype=np.int64)
    for i, b in enumerate(batch):
        ids[i, :len(b)] = b
    c = voice.config
    scales = np.array([c.noise_scale, c.length_scale, c.noise_w_scale], dtype=np.float32)
    out = sess.run(None, {"input": ids, "input_lengths": np.array([len(b) for b in batch], dtype=np.int64),
                          "scales": scales})
    return out[0].reshape(len(batch), -1)


def serve(onnx_path, text_file, threads):
    voice = PiperVoice.load(onnx_path, config_path=onnx_path + ".json")
    text = open(text_file, encoding="utf-8").read()
    sents = [voice.phonemes_to_ids(p) for p in voice.phonemize(text) if p]
    multi = session(onnx_path, threads)
    one = session(onnx_path, 1)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads)
    sr = voice.config.sample_rate
    print(json.dumps({"ready": True, "sentences": len(sents), "ids": sents}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        t, cpu = time.perf_counter(), time.process_time()
        samples = 0
        if cmd[0] == "single":
            for s in sents:
                samples += run(multi, voice, [s]).shape[1]
        elif cmd[0] == "pad":
            B = max(1, int(cmd[1]))
            for i in range(0, len(sents), B):
                run(multi, voice, sents[i:i + B])
        elif cmd[0] == "warm":
            run(multi, voice, sents[:1])
            run(one, voice, sents[:1])
            run(multi, voice, sents[:2])
        elif cmd[0] == "conc":
            samples = sum(pool.map(lambda s: run(one, voice, [s]).shape[1], sents))
        el, cpu = time.perf_counter() - t, time.process_time() - cpu
        print(json.dumps({"mode": cmd[0], "elapsed": round(el, 5), "cpu": round(cpu, 5),
                          "audio_s": samples / sr,
                          "sentences": len(sents)}), flush=True)


def write(out_dir, onnx_path, tsv):
    voice = PiperVoice.load(onnx_path, config_path=onnx_path + ".json")
    for line in open(tsv, encoding="utf-8"):
        f, text = line.rstrip("\n").split("\t", 1)
        with wave.open(out_dir + "/" + f, "wb") as w:
            voice.synthesize_wav(text, w)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) == 5 and sys.argv[1] == "--write":
        write(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
