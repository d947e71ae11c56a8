#!/usr/bin/env python3
"""
bench/asr_wer.py - word error rate of transcripts against a reference set,
after Whisper's English text normalisation (openai-whisper's
EnglishTextNormalizer, loaded from the package files without torch).

    var/venv/bin/python bench/asr_wer.py [--json] DIR HYP [HYP...]

DIR/transcripts.tsv holds "file<TAB>reference text". Each HYP is either
`kiln transcribe --format json` output (one JSON object per line, "file" and
"text") or a TSV whose first column is the file and last column the text,
except a golden file of tests/golden/make_whisper_golden.py
(tests/golden/whisper-tiny.en-dev.tsv, made by faster-whisper: file,
seconds, tokens, text, avg_logprob/no_speech_prob), whose text is its 4th. Prints one
line per HYP: name, files scored, WER in percent (with --json: one JSON
object per HYP, {"hyp", "files", "of", "wer"}; cmd/bench_asr.c reads these).

Setup: var/venv/bin/pip install jiwer; pip install --no-deps openai-whisper
more-itertools regex (only its normalizer files are used).
"""
import json
import os
import sys

import jiwer


def load_normalizer():
    import importlib.util
    spec = importlib.util.find_spec("whisper")
    if spec is None:
        raise SystemExit("asr_wer.py: install openai-whisper (--no-deps) for its normalizer")
    sys.path.insert(0, os.path.dirname(spec.origin))  # import whisper/normalizers alone
    from normalizers import EnglishTextNormalizer
    return EnglishTextNormalizer()


def read_hyp(path):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            if line.startswith("{"):
                o = json.loads(line)
                out[os.path.basename(o["file"])] = o["text"]
            else:
                cols = line.split("\t")
                golden = len(cols) == 5 and "/" in cols[4] and cols[2][:1].isdigit()
                out[os.path.basename(cols[0])] = (cols[3] if golden else cols[-1]) if len(cols) > 1 else ""
    return out


def main():
    args = sys.argv[1:]
    as_json = args and args[0] == "--json"
    if as_json:
        args = args[1:]
    d = args[0]
    norm = load_normalizer()
    ref = {}
    with open(os.path.join(d, "transcripts.tsv"), encoding="utf-8") as f:
        for line in f:
            if "\t" in line:
                k, v = line.rstrip("\n").split("\t", 1)
                ref[k] = v
    for hp in args[1:]:
        hyp = read_hyp(hp)
        keys = sorted(k for k in ref if k in hyp)
        r = [norm(ref[k]) for k in keys]
        h = [norm(hyp[k]) for k in keys]
        wer = jiwer.wer(r, h) * 100.0
        if as_json:
            print(json.dumps({"hyp": hp, "files": len(keys), "of": len(ref), "wer": wer}))
        else:
            print("%-48s files %2d/%d  WER %.2f%%" % (hp, len(keys), len(ref), wer))


if __name__ == "__main__":
    main()
