/*
 * models/voice/frontend.c - text to phoneme ids, as Piper does it, on the
 * espeak-ng library (libespeak-ng).
 *
 * Piper (piper-tts 1.8, espeakbridge.c + phonemize_espeak.py) asks espeak-ng
 * for the IPA of one clause at a time together with the clause's terminator,
 * and then:
 *   - removes language-switch flags "(en)" from the IPA,
 *   - appends the terminator (. ? ! , : ;) and, after , : ; a space,
 *   - splits the result into Unicode code points after NFD normalisation,
 *   - closes a sentence after . ? ! (and at the end of the text),
 *   - maps each code point through phoneme_id_map (unknown ones are skipped
 *     with a warning), with PAD after each and BOS, PAD ... EOS around.
 *
 * espeak-ng 1.51 (Debian bookworm) has espeak_TextToPhonemes() but not the
 * ...WithTerminator() variant of 1.52 and Piper's fork (used when the
 * library has it), so the terminator is read
 * back from the text espeak consumed for the clause: espeak reads one
 * character past the clause (the first letter of the next word), which is
 * dropped; trailing spaces, quotes and brackets are skipped; then the first
 * mark of the trailing run of punctuation is the terminator (as espeak's
 * "?!" gives "?"), "..." and "…" give none (espeak's ellipsis continues the
 * sentence), and en/em dashes give ";" (espeak's CLAUSE_SEMICOLON). The
 * corpus of tests/golden/voice_corpus.txt checks this against Piper.
 *
 * Raw phonemes in [[ ]] are copied as Piper copies them.
 */
#include <dlfcn.h>
#include <espeak-ng/speak_lib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/log.h"
#include "models/voice/nfd_table.h"
#include "models/voice/voice_int.h"

static pthread_mutex_t kiln_espeak_lock = PTHREAD_MUTEX_INITIALIZER;
static int kiln_espeak_ready; /* 1 ok, -1 failed */
static char kiln_espeak_cur_voice[64];

/*
 * libespeak-ng is opened at run time (dlopen), so that kiln links and runs
 * without it and only speech synthesis needs it; the types and constants
 * come from its header (libespeak-ng-dev). With espeak-ng >= 1.52 the
 * clause terminator comes from espeak_TextToPhonemesWithTerminator(), as in
 * Piper; with 1.51 it is read back from the text (see below).
 */
static struct {
    int (*initialize)(espeak_AUDIO_OUTPUT, int, const char *, int);
    espeak_ERROR (*set_voice)(const char *);
    const char *(*to_phonemes)(const void **, int, int);
    const char *(*to_phonemes_term)(const void **, int, int, int *);
    const char *(*info)(const char **);
} kiln_es;

static int kiln_espeak_open_(char *errstr, size_t errstr_size) {
    static const char *names[] = {"libespeak-ng.so.1", "libespeak-ng.so"};
    void *h = NULL;
    for (size_t i = 0; !h && i < sizeof(names) / sizeof(names[0]); i++)
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(errstr, errstr_size, "could not load libespeak-ng (apt-get install libespeak-ng1): %s",
                 dlerror());
        return -1;
    }
    *(void **)&kiln_es.initialize = dlsym(h, "espeak_Initialize");
    *(void **)&kiln_es.set_voice = dlsym(h, "espeak_SetVoiceByName");
    *(void **)&kiln_es.to_phonemes = dlsym(h, "espeak_TextToPhonemes");
    *(void **)&kiln_es.to_phonemes_term = dlsym(h, "espeak_TextToPhonemesWithTerminator");
    *(void **)&kiln_es.info = dlsym(h, "espeak_Info");
    if (!kiln_es.initialize || !kiln_es.set_voice || !kiln_es.to_phonemes || !kiln_es.info) {
        snprintf(errstr, errstr_size, "could not load libespeak-ng: a function is missing");
        return -1;
    }
    if (kiln_es.initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, NULL, espeakINITIALIZE_DONT_EXIT) <= 0) {
        snprintf(errstr, errstr_size, "could not initialise espeak-ng (espeak-ng-data missing?)");
        return -1;
    }
    return 0;
}

int kiln_voice_map_id_(const kiln_voice_t *v, uint32_t cp) {
    for (int i = 0; i < v->n_map; i++)
        if (v->map_cp[i] == cp)
            return v->map_id[i];
    return -1;
}

/* ---- UTF-8 */

static int kiln_utf8_dec_(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0)
        return 0;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    int len = (u[0] & 0xe0) == 0xc0 ? 2 : (u[0] & 0xf0) == 0xe0 ? 3 : (u[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (!len || (size_t)len > n)
        return 0;
    uint32_t c = u[0] & (0x7f >> len);
    for (int i = 1; i < len; i++) {
        if ((u[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (u[i] & 0x3f);
    }
    *cp = c;
    return len;
}

static int kiln_utf8_enc_(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* @returns the start of the code point that ends at s + n (n > 0). */
static size_t kiln_utf8_prev_(const char *s, size_t n) {
    size_t i = n - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80)
        i--;
    return i;
}

/* ---- NFD (tables generated by models/voice/gen_nfd.py) */

static const unsigned short *kiln_nfd_lookup_(uint32_t cp) {
    int lo = 0, hi = (int)(sizeof(kiln_nfd_table) / sizeof(kiln_nfd_table[0])) - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (kiln_nfd_table[mid].cp == cp)
            return kiln_nfd_table[mid].d;
        if (kiln_nfd_table[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

static int kiln_ccc_(uint32_t cp) {
    int lo = 0, hi = (int)(sizeof(kiln_ccc_table) / sizeof(kiln_ccc_table[0])) - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (kiln_ccc_table[mid].cp == cp)
            return kiln_ccc_table[mid].ccc;
        if (kiln_ccc_table[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return 0;
}

/* a growable list of code points */
typedef struct kiln_cps_s {
    uint32_t *v;
    int n, cap;
} kiln_cps_t;

static int kiln_cps_push_(kiln_cps_t *c, uint32_t cp) {
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        uint32_t *p = realloc(c->v, (size_t)cap * sizeof(*p));
        if (!p)
            return -1;
        c->v = p;
        c->cap = cap;
    }
    c->v[c->n++] = cp;
    return 0;
}

/* Appends the NFD of UTF-8 s[0, n) to c (decomposition, then canonical order). */
static int kiln_cps_push_nfd_(kiln_cps_t *c, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int len = kiln_utf8_dec_(s + i, n - i, &cp);
        if (!len)
            return -2;
        i += (size_t)len;
        const unsigned short *d = cp < 0x3000 ? kiln_nfd_lookup_(cp) : NULL;
        int start = c->n;
        if (d) {
            for (int k = 0; k < KILN_NFD_MAXLEN && d[k]; k++)
                if (kiln_cps_push_(c, d[k]))
                    return -1;
        } else if (kiln_cps_push_(c, cp)) {
            return -1;
        }
        /* canonical ordering: bubble combining marks back past higher classes */
        for (int k = start; k < c->n; k++) {
            int j = k, cc = kiln_ccc_(c->v[k]);
            if (!cc)
                continue;
            while (j > 0) {
                int pc = kiln_ccc_(c->v[j - 1]);
                if (pc <= cc)
                    break;
                uint32_t t = c->v[j - 1];
                c->v[j - 1] = c->v[j];
                c->v[j] = t;
                j--;
            }
        }
    }
    return 0;
}

/* ---- espeak-ng 1.52 compatibility (English) */

static int kiln_is_vowel_(uint32_t c) {
    static const uint32_t v[] = {'a', 0xe6, 0x250, 0x251, 0x252, 0x254, 0x259, 0x25a, 0x25b,
                                 0x25c, 0x25d, 'e', 'i', 0x26a, 'o', 0x28a, 'u', 0x28c, 0x1d7b};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        if (v[i] == c)
            return 1;
    return 0;
}

/*
 * Rewrites the IPA of one clause (code points c[from, n)) as espeak-ng 1.52
 * writes it for English, the version Piper ships and its voices were
 * trained with; Debian bookworm has 1.51. Two differences show on
 * tests/golden/voice_corpus.txt, both in the data of en / en-us:
 *   - [o@] is written "ɔːɹ" where 1.51 wrote "oːɹ" (four, floor, store);
 *   - a linking "ʲ" follows i, iː and ɪ (not the ɪ of eɪ aɪ ɔɪ oɪ) before a
 *     vowel: "ðɪʲ ˈɛnd", "biːʲ ɐ", "sˈɛlsɪʲəs"; after short i only across a
 *     word boundary ("vˈɛɹiʲ ˈiːzi", but "mˈɪliən").
 * @returns 0, -1 when memory runs out.
 */
static int kiln_espeak152_en_(kiln_cps_t *c, int from) {
    for (int i = from; i + 2 < c->n; i++)
        if (c->v[i] == 'o' && c->v[i + 1] == 0x2d0 && c->v[i + 2] == 0x279)
            c->v[i] = 0x254;
    for (int i = from; i < c->n; i++) {
        uint32_t x = c->v[i];
        if (x != 'i' && x != 0x26a)
            continue;
        if (x == 0x26a && i > from &&
            (c->v[i - 1] == 'e' || c->v[i - 1] == 'a' || c->v[i - 1] == 0x254 || c->v[i - 1] == 'o'))
            continue;
        int j = i + 1, lng = 0;
        if (j < c->n && c->v[j] == 0x2d0) {
            lng = 1;
            j++;
        }
        int at = j, boundary = 0;
        while (j < c->n && (c->v[j] == ' ' || c->v[j] == 0x2c8 || c->v[j] == 0x2cc)) {
            boundary |= c->v[j] == ' ';
            j++;
        }
        if (j >= c->n || !kiln_is_vowel_(c->v[j]))
            continue;
        if (x == 'i' && !lng && !boundary)
            continue;
        if (kiln_cps_push_(c, 0)) /* grow by one, then shift the tail */
            return -1;
        memmove(c->v + at + 1, c->v + at, (size_t)(c->n - 1 - at) * sizeof(uint32_t));
        c->v[at] = 0x2b2;
        i = at;
    }
    return 0;
}

/* ---- clause terminator from the consumed text */

static int kiln_is_space_(uint32_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0xa0; }

static int kiln_is_wrap_(uint32_t c) {
    return c == '"' || c == '\'' || c == 0x201c || c == 0x201d || c == 0x2018 || c == 0x2019 ||
           c == 0xab || c == 0xbb || c == '(' || c == ')' || c == '[' || c == ']' || c == '{' ||
           c == '}';
}

static int kiln_is_punct_(uint32_t c) {
    return c == '.' || c == '?' || c == '!' || c == ',' || c == ':' || c == ';' || c == 0x2013 ||
           c == 0x2014 || c == 0x2026;
}

/*
 * Reads the terminator of the clause espeak consumed as seg[0, n);
 * \p more: espeak has text left (it read one character past the clause).
 * Sets *term to the terminator code point (0: none) and returns 1 when the
 * clause ends a sentence.
 */
/* @returns the length of the clause's own text in seg[0, n): without the
 * first character of the next word that espeak read ahead when \p more */
static size_t kiln_clause_len_(const char *seg, size_t n, int more) {
    uint32_t c, pc;
    if (more && n > 0) {
        size_t i = kiln_utf8_prev_(seg, n);
        kiln_utf8_dec_(seg + i, n - i, &c);
        if (!kiln_is_space_(c) && !kiln_is_wrap_(c) && !kiln_is_punct_(c) && i > 0) {
            size_t j = kiln_utf8_prev_(seg, i);
            kiln_utf8_dec_(seg + j, i - j, &pc);
            if (kiln_is_space_(pc) || kiln_is_wrap_(pc))
                n = i;
        }
    }
    return n;
}

static int kiln_clause_terminator_(const char *seg, size_t n, int more, uint32_t *term) {
    uint32_t c;
    *term = 0;
    n = kiln_clause_len_(seg, n, more);
    while (n > 0) {
        size_t i = kiln_utf8_prev_(seg, n);
        if (!kiln_utf8_dec_(seg + i, n - i, &c) || !(kiln_is_space_(c) || kiln_is_wrap_(c)))
            break;
        n = i;
    }
    /* the trailing run of punctuation; its first mark decides */
    size_t end = n;
    uint32_t first = 0;
    int dots = 0;
    while (n > 0) {
        size_t i = kiln_utf8_prev_(seg, n);
        if (!kiln_utf8_dec_(seg + i, n - i, &c) || !kiln_is_punct_(c))
            break;
        first = c;
        dots = c == '.' ? dots + 1 : 0;
        n = i;
    }
    (void)end;
    if (!first)
        return !more;
    /* an ellipsis ("..." or "…") ending the run continues the sentence */
    if (dots >= 3 || first == 0x2026)
        return 0;
    if (first == 0x2013 || first == 0x2014) {
        *term = ';';
        return 0;
    }
    *term = first;
    return first == '.' || first == '?' || first == '!';
}

/* The terminator from espeak-ng 1.52's clause flags, as Piper maps them. */
static int kiln_clause_flags_(int flags, uint32_t *term) {
    const int type_sentence = 0x00080000, type_clause = 0x00040000;
    const int in_comma = 0x00001000, in_question = 0x00002000, in_excl = 0x00003000;
    int t = flags & 0x000fffff;
    *term = t == (40 | type_sentence)                 ? '.'
          : t == (40 | in_question | type_sentence)   ? '?'
          : t == (45 | in_excl | type_sentence)       ? '!'
          : t == (20 | in_comma | type_clause)        ? ','
          : t == (30 | type_clause)                   ? ':'
          : t == (30 | in_comma | type_clause)        ? ';'
                                                      : 0;
    return (t & type_sentence) == type_sentence;
}

/* ---- sentences */

typedef struct kiln_fe_s {
    const kiln_voice_t *v;
    kiln_voice_text_t *out;
    kiln_cps_t cur;        /* code points of the open sentence */
    int compat152;         /* rewrite 1.51's English IPA as 1.52 writes it */
    const char *src;       /* source text span of the open sentence */
    size_t src_len;
    int n_unknown;
} kiln_fe_t;

static int kiln_fe_close_(kiln_fe_t *fe) {
    kiln_cps_t *c = &fe->cur;
    if (c->n == 0)
        return 0;
    kiln_voice_text_t *o = fe->out;
    kiln_voice_sentence_t *ns = realloc(o->s, (size_t)(o->n + 1) * sizeof(*ns));
    if (!ns)
        return -1;
    o->s = ns;
    kiln_voice_sentence_t *s = &o->s[o->n];
    memset(s, 0, sizeof(*s));
    s->ids = malloc((size_t)(2 * c->n + 3) * sizeof(int));
    s->phonemes = malloc((size_t)c->n * 4 + 1);
    s->word_start = malloc((size_t)(c->n + 2) * sizeof(int));
    s->word_end = malloc((size_t)(c->n + 2) * sizeof(int));
    while (fe->src_len > 0 && kiln_is_space_((unsigned char)fe->src[fe->src_len - 1]))
        fe->src_len--;
    s->text = strndup(fe->src ? fe->src : "", fe->src_len);
    if (!s->ids || !s->phonemes || !s->word_start || !s->word_end || !s->text) {
        free(s->word_end);
        free(s->ids);
        free(s->phonemes);
        free(s->word_start);
        free(s->text);
        return -1;
    }
    const kiln_voice_t *v = fe->v;
    int k = 0, p = 0, in_word = 0;
    s->ids[k++] = v->id_bos;
    s->ids[k++] = v->id_pad;
    for (int i = 0; i < c->n; i++) {
        p += kiln_utf8_enc_(c->v[i], s->phonemes + p);
        int id = kiln_voice_map_id_(v, c->v[i]);
        if (id < 0) {
            fe->n_unknown++;
            continue;
        }
        /* words: runs of ids between spaces (punctuation belongs to its word) */
        int space = c->v[i] == ' ';
        if (!space && !in_word)
            s->word_start[s->n_words++] = k;
        if (space && in_word)
            s->word_end[s->n_words - 1] = k;
        in_word = !space;
        s->ids[k++] = id;
        s->ids[k++] = v->id_pad;
    }
    if (in_word)
        s->word_end[s->n_words - 1] = k;
    s->word_start[s->n_words] = k;
    s->ids[k++] = v->id_eos;
    s->phonemes[p] = 0;
    s->n_ids = k;
    o->n++;
    c->n = 0;
    fe->src = NULL;
    fe->src_len = 0;
    return 0;
}

/*
 * Closes the open sentence at code point \p cut: [0, cut) becomes a sentence
 * and [cut + skip, n) stays open (with no source text of its own).
 */
static int kiln_fe_split_(kiln_fe_t *fe, int cut, int skip) {
    kiln_cps_t *c = &fe->cur;
    int n = c->n, rest = n - cut - skip;
    c->n = cut;
    if (kiln_fe_close_(fe))
        return -1;
    memmove(c->v, c->v + cut + skip, (size_t)(rest > 0 ? rest : 0) * sizeof(uint32_t));
    c->n = rest > 0 ? rest : 0;
    return 0;
}

/*
 * A clause longer than KILN_VOICE_MAX_SENTENCE_PHONEMES (no punctuation
 * for that long) is cut at its last space within the limit (mid-word only
 * where a word is longer than that), as often as it takes.
 */
static int kiln_fe_cut_long_(kiln_fe_t *fe) {
    kiln_cps_t *c = &fe->cur;
    while (c->n > KILN_VOICE_MAX_SENTENCE_PHONEMES) {
        int cut = KILN_VOICE_MAX_SENTENCE_PHONEMES;
        while (cut > 0 && c->v[cut] != ' ')
            cut--;
        if (kiln_fe_split_(fe, cut > 0 ? cut : KILN_VOICE_MAX_SENTENCE_PHONEMES, cut > 0))
            return -1;
    }
    return 0;
}

/* Extends the open sentence's source text to s[0, n). */
static void kiln_fe_span_(kiln_fe_t *fe, const char *s, size_t n) {
    if (!fe->src) {
        while (n > 0 && kiln_is_space_((unsigned char)*s)) {
            s++;
            n--;
        }
        fe->src = s;
        fe->src_len = n;
    } else {
        fe->src_len = (size_t)(s + n - fe->src);
    }
}

/*
 * Phonemises plain text s[0, n) (no [[ ]]) with espeak; the lock is held.
 * \p before_raw: a [[ raw ]] block follows, and Piper appends it to the
 * sentence of the last clause, so that clause does not close its sentence.
 */
static int kiln_fe_espeak_(kiln_fe_t *fe, const char *s, size_t n, int before_raw) {
    char *buf = strndup(s, n);
    if (!buf)
        return -1;
    const char *p = buf, *own = buf; /* own: where the clause's own text starts */
    int rc = 0;
    while (p && *p) {
        const char *start = p;
        int tflags = 0;
        const char *ph = kiln_es.to_phonemes_term
                             ? kiln_es.to_phonemes_term((const void **)&p, espeakCHARS_UTF8,
                                                        espeakPHONEMES_IPA, &tflags)
                             : kiln_es.to_phonemes((const void **)&p, espeakCHARS_UTF8,
                                                   espeakPHONEMES_IPA);
        size_t consumed = p ? (size_t)(p - start) : strlen(start);
        uint32_t term;
        int eos = kiln_es.to_phonemes_term ? kiln_clause_flags_(tflags, &term)
                                           : kiln_clause_terminator_(start, consumed,
                                                                     p != NULL && *p, &term);
        const char *own_end = start + kiln_clause_len_(start, consumed, p != NULL && *p);
        /* a sentence that this clause would take past the limit ends before it
         * (the clause's IPA bytes: an upper bound on its phonemes) */
        if (fe->cur.n > 0 && ph && fe->cur.n + (int)strlen(ph) > KILN_VOICE_MAX_SENTENCE_PHONEMES &&
            kiln_fe_close_(fe)) {
            rc = -1;
            break;
        }
        if (own_end > own) {
            kiln_fe_span_(fe, s + (own - buf), (size_t)(own_end - own));
            own = own_end;
        }
        /* IPA without "(lang)" flags, then the terminator (and a space after , : ;) */
        size_t pl = ph ? strlen(ph) : 0;
        char *clean = malloc(pl + 8);
        if (!clean) {
            rc = -1;
            break;
        }
        size_t j = 0;
        for (size_t i = 0; i < pl; i++) {
            if (ph[i] == '(') {
                const char *close = strchr(ph + i + 1, ')');
                if (close && close > ph + i + 1) {
                    i = (size_t)(close - ph);
                    continue;
                }
            }
            clean[j++] = ph[i];
        }
        if (term) {
            j += (size_t)kiln_utf8_enc_(term, clean + j);
            if (term == ',' || term == ':' || term == ';')
                clean[j++] = ' ';
        }
        int from = fe->cur.n;
        int e = kiln_cps_push_nfd_(&fe->cur, clean, j);
        free(clean);
        if (!e && fe->compat152)
            e = kiln_espeak152_en_(&fe->cur, from);
        if (!e && kiln_fe_cut_long_(fe))
            e = -1;
        if (e) {
            rc = e;
            break;
        }
        if (before_raw && !(p && *p))
            eos = 0;
        if (eos && kiln_fe_close_(fe)) {
            rc = -1;
            break;
        }
    }
    free(buf);
    return rc;
}

kiln_err_t kiln_voice_phonemize(const kiln_voice_t *v, const char *text, kiln_voice_text_t *out,
                                char *errstr, size_t errstr_size) {
    memset(out, 0, sizeof(*out));
    size_t len = strlen(text);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int l = kiln_utf8_dec_(text + i, len - i, &cp);
        if (!l) {
            snprintf(errstr, errstr_size, "text is not valid UTF-8 (byte %zu)", i);
            return KILN_ERR_BAD_INPUT;
        }
        i += (size_t)l;
    }
    kiln_fe_t fe = {.v = v, .out = out};
    kiln_err_t err = KILN_OK;
    if (errstr_size)
        errstr[0] = 0;
    pthread_mutex_lock(&kiln_espeak_lock);
    if (!kiln_espeak_ready)
        kiln_espeak_ready = kiln_espeak_open_(errstr, errstr_size) ? -1 : 1;
    if (kiln_espeak_ready < 0) {
        if (!errstr[0])
            snprintf(errstr, errstr_size, "espeak-ng is not available");
        err = KILN_ERR_ENGINE;
        goto out;
    }
    if (strcmp(kiln_espeak_cur_voice, v->espeak_voice)) {
        if (kiln_es.set_voice(v->espeak_voice) != EE_OK) {
            snprintf(errstr, errstr_size, "espeak-ng has no voice \"%s\"", v->espeak_voice);
            err = KILN_ERR_BAD_INPUT;
            goto out;
        }
        snprintf(kiln_espeak_cur_voice, sizeof(kiln_espeak_cur_voice), "%s", v->espeak_voice);
    }
    {
        const char *ver = kiln_es.info(NULL);
        int major = 0, minor = 0;
        if (ver && sscanf(ver, "%d.%d", &major, &minor) == 2)
            fe.compat152 = (major == 1 && minor < 52) && !strncmp(v->espeak_voice, "en", 2);
    }
    /* text and [[ raw phoneme ]] blocks, as Piper splits them */
    const char *p = text;
    int prev_raw = 0;
    while (*p) {
        const char *open = strstr(p, "[["), *close = open ? strstr(open + 2, "]]") : NULL;
        size_t n = close ? (size_t)(open - p) : strlen(p);
        if (n > 0) {
            /* after a raw block the first sentence of the text continues it
             * (the block left its sentence open) */
            (void)prev_raw;
            int rc = kiln_fe_espeak_(&fe, p, n, close != NULL);
            if (rc) {
                err = rc == -2 ? KILN_ERR_BAD_INPUT : KILN_ERR__NOMEM;
                snprintf(errstr, errstr_size, "%s",
                         rc == -2 ? "espeak-ng returned invalid UTF-8" : "out of memory");
                goto out;
            }
        }
        if (!close)
            break;
        /* raw block: its code points (trimmed) as phonemes, with the spaces around it */
        const char *r = open + 2, *re = close;
        while (r < re && kiln_is_space_((unsigned char)*r))
            r++;
        while (re > r && kiln_is_space_((unsigned char)re[-1]))
            re--;
        int bad = 0;
        if (open > text && open[-1] == ' ')
            bad |= kiln_cps_push_(&fe.cur, ' ');
        for (const char *q = r; q < re;) {
            uint32_t cp;
            int l = kiln_utf8_dec_(q, (size_t)(re - q), &cp);
            q += l;
            bad |= kiln_cps_push_(&fe.cur, cp);
        }
        if (close[2] == ' ')
            bad |= kiln_cps_push_(&fe.cur, ' ');
        kiln_fe_span_(&fe, open, (size_t)(close + 2 - open));
        if (bad) {
            err = KILN_ERR__NOMEM;
            snprintf(errstr, errstr_size, "out of memory");
            goto out;
        }
        prev_raw = 1;
        p = close + 2;
    }
    if (kiln_fe_close_(&fe)) {
        err = KILN_ERR__NOMEM;
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    out->n_unknown = fe.n_unknown;
    if (fe.n_unknown)
        KILN_LOG_DEBUG("voice: %d phoneme(s) not in the voice's map were skipped", fe.n_unknown);
    if (out->n == 0) {
        snprintf(errstr, errstr_size, "the text has nothing to say");
        err = KILN_ERR_BAD_INPUT;
    }
out:
    pthread_mutex_unlock(&kiln_espeak_lock);
    free(fe.cur.v);
    if (err)
        kiln_voice_text_clear(out);
    return err;
}

void kiln_voice_text_clear(kiln_voice_text_t *t) {
    if (!t)
        return;
    for (int i = 0; i < t->n; i++) {
        free(t->s[i].ids);
        free(t->s[i].phonemes);
        free(t->s[i].text);
        free(t->s[i].word_start);
        free(t->s[i].word_end);
    }
    free(t->s);
    memset(t, 0, sizeof(*t));
}
