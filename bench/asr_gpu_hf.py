#!/usr/bin/env python3
"""
bench/asr_gpu_hf.py - the Hugging Face transformers side of bench/gpu.sh:
the same large-v3-shaped Whisper (random weights of the real shapes), the
same work per 30 s window (encoder, then 100 decoder steps with a KV cache
and the full logits each step, greedy argmax), on the same GPU.

    python3 bench/asr_gpu_hf.py [--batch 1,16,64] [--tokens 100]
        [--dtype float16|bfloat16|float32] [--reps 3] [--json FILE]

Uses WhisperForConditionalGeneration's forward with encoder_outputs and
past_key_values (no generate(): a random-weight config has no generation
config, and the plain loop is HF's fastest path: no logits processors).
Attention is transformers' default (SDPA). x real time = B * 30 s / wall
time, median of --reps passes after one warm-up pass per batch size.
Exits 77 when torch, transformers or a GPU is missing.
"""
import argparse
import json
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", default="1,16,64")
    ap.add_argument("--tokens", type=int, default=100)
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    try:
        import torch
        import transformers
        from transformers import WhisperConfig, WhisperForConditionalGeneration
    except Exception as e:  # noqa: BLE001
        print("asr_gpu_hf: transformers/torch not available: %s" % e, file=sys.stderr)
        sys.exit(77)
    if not torch.cuda.is_available():
        print("asr_gpu_hf: no GPU", file=sys.stderr)
        sys.exit(77)
    dtype = getattr(torch, a.dtype)
    cfg = WhisperConfig(vocab_size=51866, num_mel_bins=128, d_model=1280, encoder_layers=32,
                        decoder_layers=32, encoder_attention_heads=20,
                        decoder_attention_heads=20, encoder_ffn_dim=5120,
                        decoder_ffn_dim=5120, max_source_positions=1500,
                        max_target_positions=448)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(cfg).to("cuda", dtype).eval()
    results = []
    print("HF transformers %s, torch %s, %s, %s" % (transformers.__version__, torch.__version__,
                                                   torch.cuda.get_device_name(), a.dtype))
    for B in [int(x) for x in a.batch.split(",")]:
        feats = torch.randn(B, 128, 3000, device="cuda", dtype=dtype)
        start = torch.full((B, 1), 50258, device="cuda", dtype=torch.long)

        def one_pass():
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.inference_mode():
                enc = model.model.encoder(feats)
                torch.cuda.synchronize()
                t1 = time.perf_counter()
                tok, pkv = start, None
                for _ in range(a.tokens):
                    out = model(encoder_outputs=enc, decoder_input_ids=tok,
                                past_key_values=pkv, use_cache=True)
                    pkv = out.past_key_values
                    tok = out.logits[:, -1].argmax(-1, keepdim=True)
                torch.cuda.synchronize()
            t2 = time.perf_counter()
            return t1 - t0, t2 - t1, t2 - t0

        try:
            one_pass()
            passes = sorted((one_pass() for _ in range(max(1, a.reps))), key=lambda x: x[2])
        except torch.cuda.OutOfMemoryError:
            print("  batch %d: out of GPU memory" % B)
            torch.cuda.empty_cache()
            continue
        enc_s, dec_s, tot = passes[len(passes) // 2]
        r = {"batch": B, "encoder_s": enc_s, "decoder_s": dec_s, "total_s": tot,
             "x_realtime": B * 30.0 / tot,
             "gpu_mem_gb": torch.cuda.max_memory_allocated() / 1e9}
        results.append(r)
        print("  batch %3d: encoder %.3f s, decoder %.3f s, total %.3f s, %.1f x real time"
              % (B, enc_s, dec_s, tot, r["x_realtime"]), flush=True)
        del feats
        torch.cuda.empty_cache()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"bench": "asr-gpu-hf", "params": {
                "transformers": transformers.__version__, "torch": torch.__version__,
                "gpu": torch.cuda.get_device_name(), "dtype": a.dtype,
                "tokens_per_window": a.tokens, "reps": a.reps,
                "model": "large-v3 shape, random weights"}, "results": results}, f)
            f.write("\n")


if __name__ == "__main__":
    main()
