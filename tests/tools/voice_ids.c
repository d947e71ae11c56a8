/*
 * tests/tools/voice_ids.c - phonemises a text file with a voice's front end
 * (espeak-ng + the voice's phoneme_id_map, kiln_voice_phonemize(): the ids
 * that `kiln bench tts` and `kiln speak` give the model) and prints one line
 * per sentence: its phoneme ids, space-separated.
 *
 *   voice_ids VOICE_DIR [TEXT_FILE]    (TEXT_FILE: default stdin)
 *
 * bench/tts_ids.txt is its output on tests/golden/voice_corpus.txt, so that
 * bench/tts_gpu_model can run on a machine without espeak-ng:
 *   build/tools/voice_ids var/models/voices/en_US-joe-medium \
 *       tests/golden/voice_corpus.txt > bench/tts_ids.txt
 * Exit: 0, 1 on failure, 2 on a usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/voice.h"

/* Reads all of \p fp. @returns a NUL-terminated buffer, or NULL. */
static char *voice_ids_slurp_(FILE *fp) {
    size_t len = 0, cap = 1 << 16, n;
    char *buf = malloc(cap);
    while (buf && (n = fread(buf + len, 1, cap - len - 1, fp)) > 0) {
        len += n;
        if (len + 1 == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    if (buf)
        buf[len] = '\0';
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: voice_ids VOICE_DIR [TEXT_FILE]\n");
        return 2;
    }
    FILE *fp = argc == 3 ? fopen(argv[2], "rb") : stdin;
    if (!fp) {
        fprintf(stderr, "voice_ids: could not open \"%s\": %s\n", argv[2], strerror(errno));
        return 1;
    }
    char *text = voice_ids_slurp_(fp);
    if (fp != stdin)
        fclose(fp);
    char err[512];
    kiln_voice_t *v = text ? kiln_voice_load(argv[1], err, sizeof(err)) : NULL;
    kiln_voice_text_t tx = {0};
    int rc = 1;
    if (!text)
        fprintf(stderr, "voice_ids: out of memory\n");
    else if (!v)
        fprintf(stderr, "voice_ids: %s\n", err);
    else if (kiln_voice_phonemize(v, text, &tx, err, sizeof(err)) != KILN_OK)
        fprintf(stderr, "voice_ids: could not phonemise the text: %s\n", err);
    else {
        for (int s = 0; s < tx.n; s++)
            for (int i = 0; i < tx.s[s].n_ids; i++)
                printf("%d%c", tx.s[s].ids[i], i + 1 < tx.s[s].n_ids ? ' ' : '\n');
        if (tx.n_unknown)
            fprintf(stderr, "voice_ids: %d phonemes not in the voice's map (skipped)\n",
                    tx.n_unknown);
        rc = fflush(stdout) ? 1 : 0;
    }
    kiln_voice_text_clear(&tx);
    kiln_voice_destroy(v);
    free(text);
    return rc;
}
