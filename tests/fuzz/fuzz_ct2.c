/*
 * tests/fuzz/fuzz_ct2.c - the CTranslate2 model loader,
 * kiln_whisper_load_ct2_() (models/whisper/ct2.c): model.bin, then
 * vocabulary.txt and config.json from the model's directory.
 *
 * Input: the bytes of model.bin, then optional sections
 * "\n@@vocabulary.txt@@\n..." and "\n@@config.json@@\n..." (fuzz_whisper.h).
 * model.bin goes to an in-memory file. Without sections the directory holds
 * a generated 51864-token English vocabulary (what tiny.en ... medium.en
 * have), so that mutated models reach the vocabulary code without the
 * fuzzer having to write 51864 lines.
 */
#include "tests/fuzz/fuzz_whisper.h"

/* The openai English vocabulary's layout: byte-level tokens, then the
 * special tokens where kiln_whisper_vocab_specials() expects them. */
static int kiln_fuzz_ct2_defaults_(const char *dir) {
    static const char *langs[] = {"en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr"};
    static const char *syms[] = {"\"", "#", "(", ")", "Ġ(", "[", "]", "Ġ", "♪", "--"};
    char p[320];
    snprintf(p, sizeof(p), "%s/vocabulary.txt", dir);
    FILE *fp = fopen(p, "w");
    if (!fp)
        return -1;
    for (int i = 0; i < 50256; i++) {
        if (i < 10)
            fprintf(fp, "%s\n", syms[i]);
        else
            fprintf(fp, "t%d\n", i);
    }
    fprintf(fp, "<|endoftext|>\n<|startoftranscript|>\n");
    for (int l = 0; l < 99; l++)
        fprintf(fp, "<|%s|>\n", l < 10 ? langs[l] : "xx");
    fprintf(fp, "<|translate|>\n<|transcribe|>\n<|startoflm|>\n<|startofprev|>\n"
                "<|nocaptions|>\n<|notimestamps|>\n");
    for (int t = 0; t <= 1500; t++)
        fprintf(fp, "<|%.2f|>\n", t * 0.02);
    return fclose(fp);
}

static const char *const kiln_fuzz_ct2_names_[] = {"vocabulary.txt", "config.json", NULL};
static kiln_fuzz_wdir_t kiln_fuzz_ct2_dir_ = {.names = kiln_fuzz_ct2_names_,
                                             .defaults = kiln_fuzz_ct2_defaults_};

static int kiln_fuzz_ct2(const uint8_t *data, size_t size) {
    static int fd = -1;
    return kiln_fuzz_whisper_dir_load("ct2", &kiln_fuzz_ct2_dir_, &fd, kiln_whisper_load_ct2_,
                                      data, size);
}

KILN_FUZZ_MAIN(kiln_fuzz_ct2)
