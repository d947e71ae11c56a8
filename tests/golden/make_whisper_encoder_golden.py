#!/usr/bin/env python3
"""
tests/golden/make_whisper_encoder_golden.py - golden Whisper log-mel and
encoder outputs from an independent implementation (faster-whisper 1.2.1's
FeatureExtractor + CTranslate2 4.8.5's WhisperModel.encode, CPU, float32), on
the same weights kiln loads (var/models/whisper-tiny.en).

compute_type="float32" makes CTranslate2 convert the file's float16 weights
to float32 at load, which is what kiln's CTranslate2 loader does
(kiln_wtab_copy: f16 -> f32), so both sides run the same fp32 weights.

Audio is decoded like lib/audio.c does it (and make_whisper_golden.py):
libsndfile, mono mix-down, libsoxr HQ resampling to 16 kHz. The window is
the first 30 s: FeatureExtractor(audio) (160 zero samples appended, global
max normalisation over the whole file), frames [0, 3000), zero-padded
(pad_or_trim), as faster-whisper's transcribe() feeds its first window.

Golden mode (stdout), two lines per file:
    <file>\tmel\t80 3000\t<mean>\t<std>\t<sampled "index:value" pairs>
    <file>\tenc\t1500 384\t<mean>\t<std>\t<sampled "index:value" pairs>
index is the flat row-major index into [n_mels, 3000] / [n_audio_ctx,
n_audio_state]; the sample is --samples (512) distinct indices drawn by
numpy.random.default_rng(0), sorted. tests/0154-whisper_encoder.c checks
kiln's values there (NMSE <= 1e-6 for the encoder).

Made with:
    var/venv/bin/python tests/golden/make_whisper_encoder_golden.py \
        ../shared/data/speech/dev LJ001-0002.flac LJ001-0033.wav \
        fleurs-en-000.ogg longform-dev-01.wav \
        > tests/golden/whisper-tiny.en-dev-encoder.tsv

Live mode (make test-ref): compare the FULL outputs kiln wrote with
KILN_WHISPER_ENC_DUMP=DIR build/tests/0154-whisper_encoder (raw float32,
DIR/<file>.mel.f32 [80, 3000] and DIR/<file>.enc.f32 [1500, 384]):
    var/venv/bin/python tests/golden/make_whisper_encoder_golden.py \
        --compare DIR ../shared/data/speech/dev
prints each file's NMSE (sum((kiln-ref)^2) / sum(ref^2), as ggml's
test-backend-ops) and max abs error; exits 1 when an encoder NMSE is above
1e-6 or the log-mel NMSE above 1e-6.
"""
import os
import sys

import ctranslate2
import numpy as np
from faster_whisper.audio import pad_or_trim
from faster_whisper.feature_extractor import FeatureExtractor

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_whisper_golden import load_pcm  # noqa: E402  (lib/audio.c's decoding)

NMSE_MAX = 1e-6


def reference(model, fe, path):
    """@returns (mel [n_mels, 3000], enc [n_audio_ctx, n_audio_state]), float32."""
    mel = pad_or_trim(fe(load_pcm(path)))[:, :3000].astype(np.float32)
    sv = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None]))
    enc = np.array(model.encode(sv, to_cpu=True))[0].astype(np.float32)
    return mel, enc


def nmse(got, ref):
    d = got.astype(np.float64) - ref.astype(np.float64)
    return float((d * d).sum() / max((ref.astype(np.float64) ** 2).sum(), 1e-30))


def open_model(model_dir):
    model = ctranslate2.models.Whisper(model_dir, device="cpu", compute_type="float32",
                                       intra_threads=2)
    return model, FeatureExtractor(feature_size=model.n_mels)


def golden(d, files, model_dir, n_samples):
    model, fe = open_model(model_dir)
    for f in files:
        mel, enc = reference(model, fe, os.path.join(d, f))
        for kind, a in (("mel", mel), ("enc", enc)):
            flat = a.reshape(-1)
            rng = np.random.default_rng(0)
            idx = np.sort(rng.choice(flat.size, size=n_samples, replace=False))
            pairs = " ".join("%d:%.9g" % (i, flat[i]) for i in idx)
            print("%s\t%s\t%d %d\t%.9g\t%.9g\t%s" % (f, kind, a.shape[0], a.shape[1],
                                                     flat.astype(np.float64).mean(),
                                                     flat.astype(np.float64).std(), pairs))


def compare(dump, d, model_dir):
    model, fe = open_model(model_dir)
    files = sorted(f[:-8] for f in os.listdir(dump) if f.endswith(".enc.f32"))
    if not files:
        print("no *.enc.f32 in %s" % dump)
        return 1
    bad = 0
    for f in files:
        mel, enc = reference(model, fe, os.path.join(d, f))
        kmel = np.fromfile(os.path.join(dump, f + ".mel.f32"), dtype=np.float32)
        kenc = np.fromfile(os.path.join(dump, f + ".enc.f32"), dtype=np.float32)
        if kmel.size != mel.size or kenc.size != enc.size:
            print("%s: sizes %d/%d, reference %d/%d" % (f, kmel.size, kenc.size, mel.size,
                                                         enc.size))
            bad += 1
            continue
        kmel = kmel.reshape(mel.shape)
        kenc = kenc.reshape(enc.shape)
        nm, ne = nmse(kmel, mel), nmse(kenc, enc)
        ok = nm <= NMSE_MAX and ne <= NMSE_MAX
        bad += not ok
        print("%s %s: log-mel NMSE %.3g (max abs %.3g), encoder NMSE %.3g (max abs %.3g)"
              % ("ok  " if ok else "FAIL", f, nm, np.abs(kmel - mel).max(), ne,
                 np.abs(kenc - enc).max()))
    return 1 if bad else 0


def main():
    args = sys.argv[1:]
    n_samples = 512
    model_dir = os.environ.get("KILN_WHISPER_MODEL", "var/models/whisper-tiny.en")
    if args[:1] == ["--samples"]:
        n_samples = int(args[1])
        args = args[2:]
    if args[:1] == ["--compare"] and len(args) >= 3:
        return compare(args[1], args[2], model_dir)
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    golden(args[0], args[1:], model_dir, n_samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
