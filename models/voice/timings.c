/*
 * models/voice/timings.c - word and sentence timings of synthesised speech,
 * read off the predicted durations (frames of hop_length samples per
 * phoneme id), written as JSON or WebVTT.
 *
 * They are exact for the audio the model made: a word starts at the first
 * frame of its first phoneme id and ends after the frames of its last one
 * (the space after it belongs to the gap). Words are espeak-ng's phoneme
 * words, labelled with their IPA: a number such as "1990" is two of them.
 * The pieces of an overlong sentence cut inside a clause (no source text of
 * their own, KILN_VOICE_MAX_SENTENCE_PHONEMES) are sentences of the JSON
 * with an empty text; in WebVTT the cue of the text runs on over them.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "models/voice/voice_int.h"

static double kiln_vt_sec_(const kiln_voice_t *v, size_t samples) {
    return (double)samples / (double)v->sample_rate;
}

/* samples from the start of the sentence to id k (exclusive) */
static size_t kiln_vt_at_(const int *dur, int k, int hop) {
    size_t s = 0;
    for (int i = 0; i < k; i++)
        s += (size_t)dur[i] * (size_t)hop;
    return s;
}

static void kiln_vt_vtt_time_(FILE *fp, double t) {
    long ms = (long)(t * 1000.0 + 0.5);
    fprintf(fp, "%02ld:%02ld:%02ld.%03ld", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60, ms % 1000);
}

int kiln_voice_write_timings(const kiln_voice_t *v, const kiln_voice_text_t *tx,
                             const kiln_voice_audio_t *a, int vtt, FILE *fp) {
    int hop = kiln_voice_hop_length(v);
    if (vtt)
        fprintf(fp, "WEBVTT\n\n");
    json_t *root = vtt ? NULL : json_object(), *sents = vtt ? NULL : json_array();
    int k0 = 0, cue = 0;
    for (int b = 0; b < tx->n && b < a->n_sent; b++) {
        const kiln_voice_sentence_t *s = &tx->s[b];
        const int *dur = a->durations + k0;
        size_t base = a->sent_start[b];
        size_t len = kiln_vt_at_(dur, s->n_ids, hop);
        double t0 = kiln_vt_sec_(v, base), t1 = kiln_vt_sec_(v, base + len);
        if (vtt && !s->text[0] && b > 0) { /* a continuation (an overlong sentence's
                                              * cut): its time went to the cue before */
            k0 += s->n_ids;
            continue;
        }
        if (vtt) {
            /* the cue runs on over the continuations that follow it */
            for (int c = b + 1, kc = k0 + s->n_ids; c < tx->n && c < a->n_sent && !tx->s[c].text[0];
                 kc += tx->s[c].n_ids, c++)
                t1 = kiln_vt_sec_(v, a->sent_start[c] +
                                         kiln_vt_at_(a->durations + kc, tx->s[c].n_ids, hop));
            fprintf(fp, "%d\n", ++cue);
            kiln_vt_vtt_time_(fp, t0);
            fprintf(fp, " --> ");
            kiln_vt_vtt_time_(fp, t1);
            fprintf(fp, "\n%s\n\n", s->text);
        } else {
            json_t *js = json_pack("{s:f,s:f,s:s,s:s}", "start", t0, "end", t1, "text", s->text,
                                   "phonemes", s->phonemes);
            json_t *words = json_array();
            const char *ph = s->phonemes;
            for (int w = 0; w < s->n_words; w++) {
                size_t ws = kiln_vt_at_(dur, s->word_start[w], hop);
                size_t we = kiln_vt_at_(dur, s->word_end[w], hop);
                /* the w-th space-separated word of the sentence's IPA */
                while (*ph == ' ')
                    ph++;
                size_t pl = strcspn(ph, " ");
                json_t *jw = json_pack("{s:f,s:f,s:s%}", "start", kiln_vt_sec_(v, base + ws),
                                       "end", kiln_vt_sec_(v, base + we), "phonemes", ph, pl);
                ph += pl;
                json_array_append_new(words, jw);
            }
            json_object_set_new(js, "words", words);
            json_array_append_new(sents, js);
        }
        k0 += s->n_ids;
    }
    if (!vtt) {
        json_object_set_new(root, "sample_rate", json_integer(v->sample_rate));
        json_object_set_new(root, "duration", json_real(kiln_vt_sec_(v, a->n_samples)));
        json_object_set_new(root, "sentences", sents);
        int rc = json_dumpf(root, fp, JSON_COMPACT | JSON_REAL_PRECISION(6));
        fputc('\n', fp);
        json_decref(root);
        if (rc)
            return -1;
    }
    return ferror(fp) ? -1 : 0;
}
