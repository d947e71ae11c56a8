/*
 * tests/fuzz/fuzz_hf.c - the Hugging Face safetensors loader,
 * kiln_whisper_load_hf_() (models/whisper/hf.c): config.json, then
 * model.safetensors (u64 header length, JSON header, data), then the
 * vocabulary (vocab.json + added_tokens.json, or tokenizer.json) and
 * generation_config.json.
 *
 * Input: the bytes of model.safetensors, then optional sections
 * "\n@@config.json@@\n...", "\n@@vocab.json@@\n...",
 * "\n@@added_tokens.json@@\n...", "\n@@tokenizer.json@@\n...",
 * "\n@@generation_config.json@@\n..." (fuzz_whisper.h). Without sections the
 * directory holds a config of a width-1, one-layer Whisper with the English
 * vocabulary size and a vocabulary that names the special tokens, matching
 * the seed corpus/hf/seed-tiny-f16.safetensors.
 */
#include "tests/fuzz/fuzz_whisper.h"

static int kiln_fuzz_hf_put_(const char *dir, const char *name, const char *text) {
    char p[320];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *fp = fopen(p, "w");
    if (!fp)
        return -1;
    fputs(text, fp);
    return fclose(fp);
}

static int kiln_fuzz_hf_defaults_(const char *dir) {
    return kiln_fuzz_hf_put_(dir, "config.json",
                             "{\"d_model\": 1, \"encoder_layers\": 1, \"decoder_layers\": 1,"
                             " \"encoder_attention_heads\": 1, \"decoder_attention_heads\": 1,"
                             " \"encoder_ffn_dim\": 4, \"decoder_ffn_dim\": 4,"
                             " \"num_mel_bins\": 80, \"max_source_positions\": 1,"
                             " \"max_target_positions\": 1, \"vocab_size\": 51864}\n") ||
           kiln_fuzz_hf_put_(dir, "vocab.json",
                             "{\"\\\"\": 1, \"#\": 2, \"\\u0120(\": 3, \"hello\": 4,"
                             " \"\\u0120world\": 5, \"\\u0120\": 6}\n") ||
           kiln_fuzz_hf_put_(dir, "added_tokens.json",
                             "{\"<|endoftext|>\": 50256, \"<|startoftranscript|>\": 50257,"
                             " \"<|en|>\": 50258, \"<|translate|>\": 50357,"
                             " \"<|transcribe|>\": 50358, \"<|notimestamps|>\": 50362}\n");
}

static const char *const kiln_fuzz_hf_names_[] = {"config.json", "vocab.json",
                                                  "added_tokens.json", "tokenizer.json",
                                                  "generation_config.json", NULL};
static kiln_fuzz_wdir_t kiln_fuzz_hf_dir_ = {.names = kiln_fuzz_hf_names_,
                                            .defaults = kiln_fuzz_hf_defaults_};

static int kiln_fuzz_hf(const uint8_t *data, size_t size) {
    static int fd = -1;
    return kiln_fuzz_whisper_dir_load("hf", &kiln_fuzz_hf_dir_, &fd, kiln_whisper_load_hf_, data,
                                      size);
}

KILN_FUZZ_MAIN(kiln_fuzz_hf)
