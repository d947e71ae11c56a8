/*
 * tests/fuzz/fuzz_ggml.c - the whisper.cpp ggml-*.bin loader,
 * kiln_whisper_load_ggml_() (models/whisper/ggml.c), on a file holding the
 * input (an in-memory file: the loader maps a path).
 *
 * The input is the whole file, magic included (the magic is what
 * kiln_whisper_model_load() picks the format by; the loader skips it).
 */
#include "tests/fuzz/fuzz_whisper.h"

static int kiln_fuzz_ggml_load_(kiln_whisper_model_t *m, const char *dir, const char *path,
                                char *errstr, size_t errstr_size) {
    (void)dir;
    return kiln_whisper_load_ggml_(m, path, errstr, errstr_size);
}

static int kiln_fuzz_ggml(const uint8_t *data, size_t size) {
    static int fd = -1;
    char path[64];
    if (!kiln_fuzz_memfd_path(&fd, data, size, path))
        kiln_fuzz_whisper_load("ggml", kiln_fuzz_ggml_load_, NULL, path);
    return 0;
}

KILN_FUZZ_MAIN(kiln_fuzz_ggml)
