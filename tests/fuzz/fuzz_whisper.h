/*
 * tests/fuzz/fuzz_whisper.h - what the two weight-file targets share
 * (fuzz_ggml.c, fuzz_ct2.c).
 *
 * They call the format loaders of models/whisper/ (kiln_whisper_load_ggml_,
 * kiln_whisper_load_ct2_): header, hyperparameters, vocabulary and tensor
 * index, checked copies into fp32. kiln_whisper_model_load() adds only the
 * format pick by magic and kiln_whisper_prepare_() (packing for the kernels),
 * which reads no file bytes; the weak definitions below stand in for the
 * model code so that a target links only the loaders (the real ones win
 * wherever libkiln's whisper.o is linked as well).
 */
#ifndef KILN_FUZZ_WHISPER_H
#define KILN_FUZZ_WHISPER_H

#include <math.h>
#include <stdlib.h>

#include "models/whisper/whisper_int.h"
#include "tests/fuzz/fuzz.h"

__attribute__((weak)) int kiln_whisper_prepare_(kiln_whisper_model_t *m, char *errstr,
                                                size_t errstr_size) {
    (void)m;
    (void)errstr;
    (void)errstr_size;
    return 0;
}

__attribute__((weak)) void kiln_whisper_cache_free_(kiln_whisper_model_t *m) { (void)m; }

/*
 * Checks what a loader promises for a model it accepted: hyperparameters of
 * a Whisper model, every weight buffer present and finite, a vocabulary of
 * n_vocab NUL-terminated tokens with the special ids inside it.
 */
static inline void kiln_fuzz_whisper_check(const kiln_whisper_model_t *m) {
    const kiln_whisper_hparams_t *hp = &m->hp;
    KILN_FUZZ_CHECK(hp->n_mels == 80 || hp->n_mels == 128);
    KILN_FUZZ_CHECK(hp->n_audio_state > 0 && hp->n_text_state > 0);
    KILN_FUZZ_CHECK(hp->n_audio_head > 0 && hp->n_audio_state % hp->n_audio_head == 0);
    KILN_FUZZ_CHECK(hp->n_text_head > 0 && hp->n_text_state % hp->n_text_head == 0);
    KILN_FUZZ_CHECK(hp->n_audio_layer > 0 && hp->n_text_layer > 0);
    KILN_FUZZ_CHECK(m->conv1_w && m->tok_emb && m->enc && m->dec && m->mel_filters);
    for (size_t i = 0; i < (size_t)hp->n_vocab * (size_t)hp->n_text_state; i++)
        KILN_FUZZ_CHECK(isfinite(m->tok_emb[i]));
    const kiln_wvocab_t *v = &m->vocab;
    KILN_FUZZ_CHECK(v->n == hp->n_vocab && v->tok);
    for (int i = 0; i < v->n; i++)
        KILN_FUZZ_CHECK(v->tok[i] != NULL);
    int ids[] = {v->eot, v->sot, v->translate, v->transcribe, v->no_timestamps,
                 v->timestamp_begin};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        KILN_FUZZ_CHECK(ids[i] >= 0 && ids[i] < v->n);
    for (int i = 0; i < v->n_suppress; i++)
        KILN_FUZZ_CHECK(v->suppress[i] >= 0 && v->suppress[i] < v->n);
    for (int i = 0; i < v->n_suppress_begin; i++)
        KILN_FUZZ_CHECK(v->suppress_begin[i] >= 0 && v->suppress_begin[i] < v->n);
}

/*
 * Side files. A weight target's input is the main file (model.bin,
 * model.safetensors), optionally followed by sections "\n@@<name>@@\n" +
 * content, one per side file the loader reads from the model's directory
 * (vocabulary, config). Without any section the loader gets a directory of
 * generated defaults (a valid vocabulary and config), so that mutated main
 * files reach the code after the tensors; with sections it gets a directory
 * holding exactly those.
 */
typedef struct kiln_fuzz_wdir_s {
    const char *const *names; /* side files, NULL-terminated */
    int (*defaults)(const char *dir); /* writes the generated defaults */
    char dirs[2][256];        /* [0] defaults, [1] the input's sections */
    int state;                /* 0 not set up, 1 ready, -1 failed */
} kiln_fuzz_wdir_t;

/* Removes the side files and both directories (at exit). */
static inline void kiln_fuzz_wdir_clean(kiln_fuzz_wdir_t *w) {
    char p[320];
    for (int d = 0; d < 2 && w->state; d++) {
        for (int i = 0; w->names[i]; i++) {
            snprintf(p, sizeof(p), "%s/%s", w->dirs[d], w->names[i]);
            unlink(p);
        }
        rmdir(w->dirs[d]);
    }
}

/*
 * Splits the input: writes its sections into dirs[1] (removing side files it
 * has no section for) and sets *main_len to the length of the main file.
 * @returns the directory to load from, or NULL when the directories could
 * not be set up. The directories live under $TMPDIR (run.sh and the replay
 * point it at a scratch directory they remove).
 */
static inline const char *kiln_fuzz_wdir_sections(kiln_fuzz_wdir_t *w, const uint8_t *data,
                                                  size_t size, size_t *main_len) {
    if (w->state == 0) {
        const char *tmp = getenv("TMPDIR");
        w->state = -1;
        for (int d = 0; d < 2; d++) {
            snprintf(w->dirs[d], sizeof(w->dirs[d]), "%s/kiln-fuzz.XXXXXX",
                     tmp && strlen(tmp) < 200 ? tmp : "/tmp");
            if (!mkdtemp(w->dirs[d]))
                return NULL;
        }
        w->state = 1;
        if (w->defaults(w->dirs[0]))
            return NULL;
    }
    if (w->state < 0)
        return NULL;
    size_t at[16], end[16];
    int n = 0, any = 0;
    char mark[96];
    for (; n < 16 && w->names[n]; n++) {
        snprintf(mark, sizeof(mark), "\n@@%s@@\n", w->names[n]);
        at[n] = kiln_fuzz_find(data, size, mark);
        end[n] = at[n] < size ? at[n] + strlen(mark) : size;
        any |= at[n] < size;
    }
    *main_len = size;
    for (int i = 0; i < n; i++)
        if (at[i] < *main_len)
            *main_len = at[i];
    if (!any)
        return w->dirs[0];
    for (int i = 0; i < n; i++) {
        char p[320];
        snprintf(p, sizeof(p), "%s/%s", w->dirs[1], w->names[i]);
        unlink(p);
        if (at[i] == size)
            continue;
        size_t stop = size; /* the section runs to the next marker */
        for (int j = 0; j < n; j++)
            if (at[j] >= end[i] && at[j] < stop)
                stop = at[j];
        FILE *fp = fopen(p, "wb");
        if (fp) {
            fwrite(data + end[i], 1, stop - end[i], fp);
            fclose(fp);
        }
    }
    return w->dirs[1];
}

/*
 * Runs the format loader \p load on the file at \p path (side files in
 * \p dir). Checks the model when it is accepted, a message when it is
 * refused, and frees it.
 */
typedef int (*kiln_fuzz_loader_t)(kiln_whisper_model_t *m, const char *dir, const char *path,
                                  char *errstr, size_t errstr_size);

static inline void kiln_fuzz_whisper_load(const char *target, kiln_fuzz_loader_t load,
                                          const char *dir, const char *path) {
    char err[512] = "";
    kiln_whisper_model_t *m = calloc(1, sizeof(*m));
    if (!m)
        return;
    int rc = load(m, dir, path, err, sizeof(err));
    kiln_fuzz_note(target, rc, err);
    if (rc == 0)
        kiln_fuzz_whisper_check(m);
    else
        KILN_FUZZ_CHECK(err[0] != '\0');
    kiln_whisper_model_destroy(m);
}

/* Every side-file directory set up in this process, removed at exit. */
static kiln_fuzz_wdir_t *kiln_fuzz_wdirs_[8];
static int kiln_fuzz_n_wdirs_;

static inline void kiln_fuzz_wdirs_clean_(void) {
    for (int i = 0; i < kiln_fuzz_n_wdirs_; i++)
        kiln_fuzz_wdir_clean(kiln_fuzz_wdirs_[i]);
}

/*
 * The whole of a target with side files: splits the input (sections into
 * \p w's directory), stores the main file in the in-memory file \p fd and
 * runs \p load on it. @returns 0 (libFuzzer's convention).
 */
static inline int kiln_fuzz_whisper_dir_load(const char *target, kiln_fuzz_wdir_t *w, int *fd,
                                             kiln_fuzz_loader_t load, const uint8_t *data,
                                             size_t size) {
    char path[64];
    size_t main_len;
    if (!w->state && kiln_fuzz_n_wdirs_ < 8) {
        if (!kiln_fuzz_n_wdirs_)
            atexit(kiln_fuzz_wdirs_clean_);
        kiln_fuzz_wdirs_[kiln_fuzz_n_wdirs_++] = w;
    }
    const char *dir = kiln_fuzz_wdir_sections(w, data, size, &main_len);
    if (dir && !kiln_fuzz_memfd_path(fd, data, main_len, path))
        kiln_fuzz_whisper_load(target, load, dir, path);
    return 0;
}

#endif
