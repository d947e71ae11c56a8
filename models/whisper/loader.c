/*
 * models/whisper/loader.c - what both Whisper file formats share: mapping
 * the file, the tensor index, checked copies into fp32, the weight buffers,
 * the mel filter bank, the special tokens, and kiln_whisper_model_load(),
 * which picks the format.
 *
 * Nothing here trusts the file: every size is checked against the mapping
 * before it is read, and every error names the file (and the tensor).
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/log.h"
#include "models/whisper/whisper_int.h"

int kiln_wmap_open(kiln_wmap_t *mp, const char *path, char *errstr, size_t errstr_size) {
    struct stat st;
    memset(mp, 0, sizeof(*mp));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(errstr, errstr_size, "could not open \"%s\": %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || st.st_size == 0) {
        snprintf(errstr, errstr_size, "could not read \"%s\": %s", path,
                 st.st_size == 0 ? "file is empty" : strerror(errno));
        close(fd);
        return -1;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        snprintf(errstr, errstr_size, "could not map \"%s\": %s", path, strerror(errno));
        return -1;
    }
    mp->p = p;
    mp->size = (size_t)st.st_size;
    return 0;
}

void kiln_wmap_close(kiln_wmap_t *mp) {
    if (mp->p)
        munmap((void *)mp->p, mp->size);
    mp->p = NULL;
}

float kiln_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ff;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

int kiln_wtab_add(kiln_wtab_t *tab, const char *name, size_t name_len, kiln_dtype_t dt,
                  int rank, const int64_t *shape, const void *data, size_t nbytes) {
    if (tab->n == tab->cap) {
        int cap = tab->cap ? tab->cap * 2 : 256;
        kiln_wtensor_t *t = realloc(tab->t, (size_t)cap * sizeof(*t));
        if (!t)
            return -1;
        tab->t = t;
        tab->cap = cap;
    }
    kiln_wtensor_t *t = &tab->t[tab->n];
    memset(t, 0, sizeof(*t));
    t->name = strndup(name, name_len);
    if (!t->name)
        return -1;
    t->dtype = dt;
    t->rank = rank;
    for (int i = 0; i < rank && i < 4; i++)
        t->shape[i] = shape[i];
    t->data = data;
    t->nbytes = nbytes;
    tab->n++;
    return 0;
}

const kiln_wtensor_t *kiln_wtab_find(const kiln_wtab_t *tab, const char *name) {
    for (int i = 0; i < tab->n; i++)
        if (!strcmp(tab->t[i].name, name))
            return &tab->t[i];
    return NULL;
}

void kiln_wtab_free(kiln_wtab_t *tab) {
    for (int i = 0; i < tab->n; i++)
        free(tab->t[i].name);
    free(tab->t);
    memset(tab, 0, sizeof(*tab));
}

/* Writes "[a, b, c]" of the shape with 1s dropped into buf; returns the rank left. */
static int kiln_wshape_str_(const int64_t *shape, int rank, char *buf, size_t size,
                            int64_t *sq) {
    int r = 0;
    size_t j = snprintf(buf, size, "[");
    for (int i = 0; i < rank; i++) {
        if (j < size)
            j += snprintf(buf + j, size - j, "%s%lld", i ? ", " : "", (long long)shape[i]);
        if (shape[i] != 1)
            sq[r++] = shape[i];
    }
    if (j < size)
        snprintf(buf + j, size - j, "]");
    return r;
}

static size_t kiln_dtype_size_(kiln_dtype_t dt) {
    switch (dt) {
    case KILN_DT_F32: case KILN_DT_I32: return 4;
    case KILN_DT_F16: case KILN_DT_BF16: case KILN_DT_I16: return 2;
    case KILN_DT_I8: return 1;
    default: return 0;
    }
}

/* One parser for every safetensors file kiln reads (Whisper HF checkpoints,
 * converted Piper voices): u64 little-endian header length N, N bytes of
 * JSON {name: {dtype, shape, data_offsets}}, then the data. */
int kiln_wtab_index_safetensors(kiln_wtab_t *tab, const kiln_wmap_t *mp, int check_sizes,
                                char *errstr, size_t errstr_size) {
    uint64_t hlen = 0;
    if (mp->size < 8) {
        snprintf(errstr, errstr_size, "could not load \"%s\": file is too short for a "
                 "safetensors header", tab->path);
        return -1;
    }
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | mp->p[i];
    if (hlen < 2 || hlen > mp->size - 8 || hlen > (64u << 20)) {
        snprintf(errstr, errstr_size, "could not load \"%s\": safetensors header length %llu "
                 "does not fit the file (%zu bytes)", tab->path, (unsigned long long)hlen,
                 mp->size);
        return -1;
    }
    json_error_t je;
    json_t *h = json_loadb((const char *)mp->p + 8, (size_t)hlen, 0, &je);
    if (!json_is_object(h)) {
        snprintf(errstr, errstr_size, "could not load \"%s\": safetensors header is not a JSON "
                 "object (%s)", tab->path, je.text);
        json_decref(h);
        return -1;
    }
    const uint8_t *data = mp->p + 8 + hlen;
    const size_t data_size = mp->size - 8 - (size_t)hlen;
    const char *name;
    json_t *t;
    int rc = 0;
    json_object_foreach(h, name, t) {
        if (!strcmp(name, "__metadata__"))
            continue;
        const char *dt = json_string_value(json_object_get(t, "dtype"));
        json_t *shape = json_object_get(t, "shape"), *offs = json_object_get(t, "data_offsets");
        if (!dt || !json_is_array(shape) || json_array_size(shape) > 4 ||
            !json_is_array(offs) || json_array_size(offs) != 2) {
            snprintf(errstr, errstr_size, "could not load \"%s\": tensor \"%s\" has an invalid "
                     "header entry", tab->path, name);
            rc = -1;
            break;
        }
        kiln_dtype_t kdt = !strcmp(dt, "F32")    ? KILN_DT_F32
                           : !strcmp(dt, "F16")  ? KILN_DT_F16
                           : !strcmp(dt, "BF16") ? KILN_DT_BF16
                           : !strcmp(dt, "I32")  ? KILN_DT_I32
                           : !strcmp(dt, "I8")   ? KILN_DT_I8
                                                 : KILN_DT_OTHER;
        int64_t sh[4] = {0};
        int rank = (int)json_array_size(shape);
        size_t n = 1;
        for (int d = 0; d < rank; d++) {
            json_int_t v = json_integer_value(json_array_get(shape, d));
            sh[d] = v;
            if (v < 0 || v > (1 << 24)) {
                snprintf(errstr, errstr_size, "could not load \"%s\": tensor \"%s\" has an "
                         "invalid shape", tab->path, name);
                rc = -1;
                break;
            }
            n *= (size_t)v;
        }
        if (rc)
            break;
        json_int_t b = json_integer_value(json_array_get(offs, 0));
        json_int_t e = json_integer_value(json_array_get(offs, 1));
        if (b < 0 || e < b || (uint64_t)e > data_size) {
            snprintf(errstr, errstr_size, "could not load \"%s\": file is truncated in tensor "
                     "\"%s\" (data ends at %lld, the file holds %zu)", tab->path, name,
                     (long long)e, data_size);
            rc = -1;
            break;
        }
        size_t es = kiln_dtype_size_(kdt);
        if (check_sizes && es && (size_t)(e - b) != n * es) {
            snprintf(errstr, errstr_size, "could not load \"%s\": tensor \"%s\" holds %lld "
                     "bytes, its shape and dtype need %zu", tab->path, name, (long long)(e - b),
                     n * es);
            rc = -1;
            break;
        }
        if (kiln_wtab_add(tab, name, strlen(name), kdt, rank, sh, data + b, (size_t)(e - b))) {
            snprintf(errstr, errstr_size, "out of memory");
            rc = -1;
            break;
        }
    }
    json_decref(h);
    return rc;
}

int kiln_wtab_copy(const kiln_wtab_t *tab, const char *name, int rank, const int64_t *shape,
                   float *dst, char *errstr, size_t errstr_size) {
    const kiln_wtensor_t *t = kiln_wtab_find(tab, name);
    if (!t) {
        snprintf(errstr, errstr_size, "could not load \"%s\": tensor \"%s\" is missing",
                 tab->path, name);
        return -1;
    }
    char want[96], got[96];
    int64_t sq_want[4], sq_got[4];
    int rw = kiln_wshape_str_(shape, rank, want, sizeof(want), sq_want);
    int rg = kiln_wshape_str_(t->shape, t->rank, got, sizeof(got), sq_got);
    if (rw != rg || memcmp(sq_want, sq_got, (size_t)rw * sizeof(int64_t))) {
        snprintf(errstr, errstr_size,
                 "could not load \"%s\": tensor \"%s\" has shape %s, expected %s", tab->path,
                 name, got, want);
        return -1;
    }
    size_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= (size_t)shape[i];
    size_t es = kiln_dtype_size_(t->dtype);
    if (t->dtype == KILN_DT_I16 || t->dtype == KILN_DT_I32 || es == 0) {
        snprintf(errstr, errstr_size,
                 "could not load \"%s\": tensor \"%s\" has an unsupported data type",
                 tab->path, name);
        return -1;
    }
    if (t->nbytes != n * es) {
        snprintf(errstr, errstr_size,
                 "could not load \"%s\": tensor \"%s\" holds %zu bytes, expected %zu",
                 tab->path, name, t->nbytes, n * es);
        return -1;
    }
    if (!dst) /* check only */
        return 0;
    const uint8_t *src = t->data;
    switch (t->dtype) {
    case KILN_DT_F32:
        memcpy(dst, src, n * 4);
        break;
    case KILN_DT_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = kiln_half_to_float(h);
        }
        break;
    case KILN_DT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            uint32_t b;
            memcpy(&h, src + 2 * i, 2);
            b = (uint32_t)h << 16;
            memcpy(&dst[i], &b, 4);
        }
        break;
    case KILN_DT_I8: {
        /* CTranslate2: w = q / scale, one scale per output row */
        char sname[512];
        snprintf(sname, sizeof(sname), "%s_scale", name);
        const kiln_wtensor_t *s = kiln_wtab_find(tab, sname);
        size_t rows = (size_t)shape[0], cols = n / rows;
        if (!s || s->dtype != KILN_DT_F32 || s->nbytes != rows * 4) {
            snprintf(errstr, errstr_size,
                     "could not load \"%s\": int8 tensor \"%s\" lacks a valid \"%s\"",
                     tab->path, name, sname);
            return -1;
        }
        for (size_t r = 0; r < rows; r++) {
            float sc;
            memcpy(&sc, (const uint8_t *)s->data + 4 * r, 4);
            for (size_t c = 0; c < cols; c++)
                dst[r * cols + c] = (float)((const int8_t *)src)[r * cols + c] / sc;
        }
        break;
    }
    default:
        break;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(dst[i])) {
            snprintf(errstr, errstr_size,
                     "could not load \"%s\": tensor \"%s\" holds a non-finite value at %zu",
                     tab->path, name, i);
            return -1;
        }
    }
    return 0;
}

float *kiln_whisper_take_(kiln_whisper_model_t *m, size_t n) {
    if (m->n_bufs == m->cap_bufs) {
        int cap = m->cap_bufs ? m->cap_bufs * 2 : 512;
        void **b = realloc(m->bufs, (size_t)cap * sizeof(*b));
        if (!b)
            return NULL;
        m->bufs = b;
        size_t *bn = realloc(m->buf_n, (size_t)cap * sizeof(*bn));
        if (!bn)
            return NULL;
        m->buf_n = bn;
        m->cap_bufs = cap;
    }
    float *p = calloc(n ? n : 1, sizeof(float));
    if (p) {
        m->buf_n[m->n_bufs] = n;
        m->bufs[m->n_bufs++] = p;
    }
    return p;
}

int kiln_whisper_alloc_weights_(kiln_whisper_model_t *m, size_t max_weights, char *errstr,
                                size_t errstr_size) {
    const kiln_whisper_hparams_t *hp = &m->hp;
    size_t Ca = hp->n_audio_state, Ct = hp->n_text_state, M = hp->n_mels;
    int ok = 1;
    /* the matrices and embeddings the file must hold (in double: no overflow) */
    double a = Ca, t = Ct, need = a * (double)M * 3 + a * a * 3 + (double)hp->n_audio_ctx * a +
                                  (double)hp->n_vocab * t + (double)hp->n_text_ctx * t +
                                  (double)hp->n_audio_layer * 12 * a * a +
                                  (double)hp->n_text_layer * 16 * t * t;
    if (need > (double)max_weights) {
        snprintf(errstr, errstr_size, "could not load \"%s\": its hyperparameters describe %.0f "
                 "weights, more than the file can hold", m->path, need);
        return -1;
    }
#define TAKE(dst, n) ok &= ((dst) = kiln_whisper_take_(m, (n))) != NULL
    TAKE(m->conv1_w, Ca * M * 3);
    TAKE(m->conv1_b, Ca);
    TAKE(m->conv2_w, Ca * Ca * 3);
    TAKE(m->conv2_b, Ca);
    TAKE(m->enc_pos, (size_t)hp->n_audio_ctx * Ca);
    TAKE(m->enc_ln_g, Ca);
    TAKE(m->enc_ln_b, Ca);
    TAKE(m->tok_emb, (size_t)hp->n_vocab * Ct);
    TAKE(m->dec_pos, (size_t)hp->n_text_ctx * Ct);
    TAKE(m->dec_ln_g, Ct);
    TAKE(m->dec_ln_b, Ct);
    TAKE(m->mel_filters, M * 201);
    m->enc = calloc((size_t)hp->n_audio_layer, sizeof(*m->enc));
    m->dec = calloc((size_t)hp->n_text_layer, sizeof(*m->dec));
    ok &= m->enc && m->dec;
    for (int l = 0; ok && l < hp->n_audio_layer; l++) {
        kiln_wenc_layer_t *L = &m->enc[l];
        TAKE(L->ln1_g, Ca); TAKE(L->ln1_b, Ca);
        TAKE(L->w_qkv, 3 * Ca * Ca); TAKE(L->b_qkv, 3 * Ca);
        TAKE(L->w_o, Ca * Ca); TAKE(L->b_o, Ca);
        TAKE(L->ln2_g, Ca); TAKE(L->ln2_b, Ca);
        TAKE(L->w_fc1, 4 * Ca * Ca); TAKE(L->b_fc1, 4 * Ca);
        TAKE(L->w_fc2, 4 * Ca * Ca); TAKE(L->b_fc2, Ca);
    }
    for (int l = 0; ok && l < hp->n_text_layer; l++) {
        kiln_wdec_layer_t *L = &m->dec[l];
        TAKE(L->ln1_g, Ct); TAKE(L->ln1_b, Ct);
        TAKE(L->w_qkv, 3 * Ct * Ct); TAKE(L->b_qkv, 3 * Ct);
        TAKE(L->w_o, Ct * Ct); TAKE(L->b_o, Ct);
        TAKE(L->lnx_g, Ct); TAKE(L->lnx_b, Ct);
        TAKE(L->wx_q, Ct * Ct); TAKE(L->bx_q, Ct);
        TAKE(L->wx_kv, 2 * Ct * Ct); TAKE(L->bx_kv, 2 * Ct);
        TAKE(L->wx_o, Ct * Ct); TAKE(L->bx_o, Ct);
        TAKE(L->ln2_g, Ct); TAKE(L->ln2_b, Ct);
        TAKE(L->w_fc1, 4 * Ct * Ct); TAKE(L->b_fc1, 4 * Ct);
        TAKE(L->w_fc2, 4 * Ct * Ct); TAKE(L->b_fc2, Ct);
    }
#undef TAKE
    if (!ok) {
        snprintf(errstr, errstr_size, "could not load \"%s\": out of memory", m->path);
        return -1;
    }
    return 0;
}

/*
 * Slaney-style mel filters exactly as librosa.filters.mel(htk=False,
 * norm="slaney") and faster-whisper's FeatureExtractor compute them (in
 * double, rounded to float at the end).
 */
void kiln_whisper_mel_filters(float *out, int n_mels, int n_fft, int sr) {
    int n_freq = n_fft / 2 + 1;
    double *mels = malloc(sizeof(double) * (n_mels + 2) * 2);
    double *freqs = mels + n_mels + 2;
    const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
    const double logstep = log(6.4) / 27.0, max_mel = 45.245640471924965;
    for (int i = 0; i < n_mels + 2; i++) {
        mels[i] = max_mel * i / (n_mels + 1);
        freqs[i] = f_sp * mels[i];
        if (mels[i] >= min_log_mel)
            freqs[i] = min_log_hz * exp(logstep * (mels[i] - min_log_mel));
    }
    for (int m = 0; m < n_mels; m++) {
        double enorm = 2.0 / (freqs[m + 2] - freqs[m]);
        for (int f = 0; f < n_freq; f++) {
            double fft_f = (double)f * sr / n_fft;
            double lower = -(freqs[m] - fft_f) / (freqs[m + 1] - freqs[m]);
            double upper = (freqs[m + 2] - fft_f) / (freqs[m + 2] - freqs[m + 1]);
            double w = lower < upper ? lower : upper;
            out[(size_t)m * n_freq + f] = (float)((w > 0 ? w : 0) * enorm);
        }
    }
    free(mels);
}

void kiln_whisper_vocab_specials(kiln_wvocab_t *v, int n_vocab) {
    int multi = n_vocab >= 51865;
    int n_langs = n_vocab - 51765 - (multi ? 1 : 0);
    v->eot = 50256 + multi;
    v->sot = 50257 + multi;
    v->lang_begin = v->sot + 1;
    v->n_langs = n_langs;
    v->translate = v->lang_begin + n_langs;
    v->transcribe = v->translate + 1;
    v->sot_lm = v->translate + 2;
    v->sot_prev = v->translate + 3;
    v->no_speech = v->translate + 4;
    v->no_timestamps = v->translate + 5;
    v->timestamp_begin = v->translate + 6;
}

/*
 * Whisper's default suppress list ("-1"): the non-speech symbols of
 * openai/whisper tokenizer.non_speech_tokens, as token ids of the GPT-2
 * byte-level vocabulary, found by text, plus the task/special tokens.
 */
int kiln_whisper_vocab_default_suppress(kiln_wvocab_t *v) {
    static const char *syms[] = {
        "\"", "#", "(", ")", "*", "+", "/", ":", ";", "<", "=", ">", "@", "[", "\\", "]",
        "^", "_", "`", "{", "|", "}", "~", "「", "」", "『", "』", "<<", ">>", "<<<",
        ">>>", "--", "---", "-(", "-[", "('", "(\"", "((", "))", "(((", ")))", "[[", "]]",
        "{{", "}}", "♪♪", "♪♪♪", "♩", "♪", "♫", "♬", "♭", "♮", "♯"};
    int cap = 2 * (int)(sizeof(syms) / sizeof(syms[0])) + 16;
    v->suppress = calloc((size_t)cap, sizeof(int));
    if (!v->suppress)
        return -1;
    v->n_suppress = 0;
    for (size_t s = 0; s < sizeof(syms) / sizeof(syms[0]); s++) {
        char spaced[32];
        snprintf(spaced, sizeof(spaced), " %s", syms[s]);
        for (int id = 0; id < v->eot && id < v->n; id++) {
            if (!strcmp(v->tok[id], syms[s]) || !strcmp(v->tok[id], spaced))
                v->suppress[v->n_suppress++] = id;
            if (v->n_suppress >= cap - 8)
                break;
        }
    }
    v->suppress[v->n_suppress++] = v->translate;
    v->suppress[v->n_suppress++] = v->transcribe;
    v->suppress[v->n_suppress++] = v->sot_lm;
    v->suppress[v->n_suppress++] = v->sot_prev;
    v->suppress[v->n_suppress++] = v->sot;
    v->suppress[v->n_suppress++] = v->no_speech;
    v->n_suppress_begin = 0;
    for (int id = 0; id < v->eot && id < v->n; id++)
        if (!strcmp(v->tok[id], " ")) {
            v->suppress_begin[v->n_suppress_begin++] = id;
            break;
        }
    v->suppress_begin[v->n_suppress_begin++] = v->eot;
    return 0;
}

void kiln_whisper_vocab_free(kiln_wvocab_t *v) {
    if (v->tok)
        for (int i = 0; i < v->n; i++)
            free(v->tok[i]);
    free(v->tok);
    free(v->suppress);
    memset(v, 0, sizeof(*v));
}

kiln_whisper_model_t *kiln_whisper_model_load(const char *path, char *errstr,
                                              size_t errstr_size) {
    struct stat st;
    if (stat(path, &st) < 0) {
        snprintf(errstr, errstr_size, "could not open \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    kiln_whisper_model_t *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    snprintf(m->path, sizeof(m->path), "%s", path);
    int rc;
    if (S_ISDIR(st.st_mode)) {
        /* CTranslate2 (model.bin) or Hugging Face (model.safetensors) */
        char bin[1024], sft[1024];
        struct stat bs;
        snprintf(bin, sizeof(bin), "%s/model.bin", path);
        snprintf(sft, sizeof(sft), "%s/model.safetensors", path);
        if (stat(bin, &bs) != 0 && stat(sft, &bs) == 0)
            rc = kiln_whisper_load_hf_(m, path, sft, errstr, errstr_size);
        else
            rc = kiln_whisper_load_ct2_(m, path, bin, errstr, errstr_size);
    } else if (strlen(path) > 12 && !strcmp(path + strlen(path) - 12, ".safetensors")) {
        char dir[1024];
        snprintf(dir, sizeof(dir), "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof(dir), ".");
        rc = kiln_whisper_load_hf_(m, dir, path, errstr, errstr_size);
    } else {
        /* a file: ggml by magic, else a CTranslate2 model.bin in its directory */
        uint32_t magic = 0;
        FILE *fp = fopen(path, "rb");
        if (!fp || fread(&magic, 4, 1, fp) != 1) {
            snprintf(errstr, errstr_size, "could not read \"%s\": %s", path,
                     fp ? "file is too short" : strerror(errno));
            if (fp)
                fclose(fp);
            kiln_whisper_model_destroy(m);
            return NULL;
        }
        fclose(fp);
        if (magic == 0x67676d6c) {
            rc = kiln_whisper_load_ggml_(m, path, errstr, errstr_size);
        } else {
            char dir[1024];
            snprintf(dir, sizeof(dir), "%s", path);
            char *slash = strrchr(dir, '/');
            if (slash)
                *slash = '\0';
            else
                snprintf(dir, sizeof(dir), ".");
            rc = kiln_whisper_load_ct2_(m, dir, path, errstr, errstr_size);
        }
    }
    if (rc || kiln_whisper_prepare_(m, errstr, errstr_size)) {
        kiln_whisper_model_destroy(m);
        return NULL;
    }
    KILN_LOG_DEBUG("whisper: loaded %s (%s): %d/%d layers, width %d/%d, %d mels, vocab %d",
                   path, m->format, m->hp.n_audio_layer, m->hp.n_text_layer,
                   m->hp.n_audio_state, m->hp.n_text_state, m->hp.n_mels, m->hp.n_vocab);
    return m;
}

/* xorshift64: uniform in [-1, 1) */
static float kiln_wrand_(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* p[i] = offset + scale * U[-1, 1) for n values */
static void kiln_wfill_(float *p, size_t n, float scale, float offset, uint64_t *s) {
    for (size_t i = 0; i < n; i++)
        p[i] = offset + scale * kiln_wrand_(s);
}

kiln_whisper_model_t *kiln_whisper_model_random_(const kiln_whisper_hparams_t *hp,
                                                 uint64_t seed, char *errstr,
                                                 size_t errstr_size) {
    kiln_whisper_model_t *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    m->hp = *hp;
    snprintf(m->path, sizeof(m->path), "random-%d-%d-%d", hp->n_audio_state, hp->n_audio_layer,
             hp->n_text_layer);
    snprintf(m->format, sizeof(m->format), "random");
    if (kiln_whisper_alloc_weights_(m, SIZE_MAX, errstr, errstr_size))
        goto fail;
    uint64_t s = seed ? seed : 0x9E3779B97F4A7C15ull;
    const size_t Ca = hp->n_audio_state, Ct = hp->n_text_state, M = hp->n_mels;
    /* matrices U * sqrt(3 / fan_in) (variance 1 / fan_in), small biases, gains near 1 */
#define MAT(p, n, fan_in) kiln_wfill_((p), (n), sqrtf(3.0f / (float)(fan_in)), 0.0f, &s)
#define VEC(p, n) kiln_wfill_((p), (n), 0.02f, 0.0f, &s)
#define GAIN(p, n) kiln_wfill_((p), (n), 0.1f, 1.0f, &s)
    MAT(m->conv1_w, Ca * M * 3, M * 3);
    VEC(m->conv1_b, Ca);
    MAT(m->conv2_w, Ca * Ca * 3, Ca * 3);
    VEC(m->conv2_b, Ca);
    kiln_wfill_(m->enc_pos, (size_t)hp->n_audio_ctx * Ca, 0.5f, 0.0f, &s);
    GAIN(m->enc_ln_g, Ca);
    VEC(m->enc_ln_b, Ca);
    kiln_wfill_(m->tok_emb, (size_t)hp->n_vocab * Ct, 0.5f, 0.0f, &s);
    kiln_wfill_(m->dec_pos, (size_t)hp->n_text_ctx * Ct, 0.1f, 0.0f, &s);
    GAIN(m->dec_ln_g, Ct);
    VEC(m->dec_ln_b, Ct);
    for (int l = 0; l < hp->n_audio_layer; l++) {
        kiln_wenc_layer_t *L = &m->enc[l];
        GAIN(L->ln1_g, Ca), VEC(L->ln1_b, Ca), MAT(L->w_qkv, 3 * Ca * Ca, Ca);
        VEC(L->b_qkv, 3 * Ca), MAT(L->w_o, Ca * Ca, Ca), VEC(L->b_o, Ca);
        GAIN(L->ln2_g, Ca), VEC(L->ln2_b, Ca), MAT(L->w_fc1, 4 * Ca * Ca, Ca);
        VEC(L->b_fc1, 4 * Ca), MAT(L->w_fc2, 4 * Ca * Ca, 4 * Ca), VEC(L->b_fc2, Ca);
    }
    for (int l = 0; l < hp->n_text_layer; l++) {
        kiln_wdec_layer_t *L = &m->dec[l];
        GAIN(L->ln1_g, Ct), VEC(L->ln1_b, Ct), MAT(L->w_qkv, 3 * Ct * Ct, Ct);
        VEC(L->b_qkv, 3 * Ct), MAT(L->w_o, Ct * Ct, Ct), VEC(L->b_o, Ct);
        GAIN(L->lnx_g, Ct), VEC(L->lnx_b, Ct), MAT(L->wx_q, Ct * Ct, Ct), VEC(L->bx_q, Ct);
        MAT(L->wx_kv, 2 * Ct * Ct, Ct), VEC(L->bx_kv, 2 * Ct), MAT(L->wx_o, Ct * Ct, Ct);
        VEC(L->bx_o, Ct), GAIN(L->ln2_g, Ct), VEC(L->ln2_b, Ct);
        MAT(L->w_fc1, 4 * Ct * Ct, Ct), VEC(L->b_fc1, 4 * Ct);
        MAT(L->w_fc2, 4 * Ct * Ct, 4 * Ct), VEC(L->b_fc2, Ct);
    }
#undef MAT
#undef VEC
#undef GAIN
    kiln_whisper_mel_filters(m->mel_filters, (int)M, 400, 16000);
    /* a vocabulary of the model's size: " w<id>" text tokens, "<|..|>" specials */
    kiln_wvocab_t *v = &m->vocab;
    kiln_whisper_vocab_specials(v, hp->n_vocab);
    v->n = hp->n_vocab;
    if (!(v->tok = calloc((size_t)v->n, sizeof(char *))))
        goto oom;
    for (int i = 0; i < v->n; i++) {
        char b[32];
        if (i < v->eot)
            snprintf(b, sizeof(b), " w%d", i);
        else if (i >= v->lang_begin && i < v->lang_begin + v->n_langs)
            snprintf(b, sizeof(b), "<|l%d|>", i - v->lang_begin);
        else
            snprintf(b, sizeof(b), "<|s%d|>", i);
        if (!(v->tok[i] = strdup(b)))
            goto oom;
    }
    if (kiln_whisper_vocab_default_suppress(v) ||
        kiln_whisper_prepare_(m, errstr, errstr_size))
        goto oom;
    return m;
oom:
    snprintf(errstr, errstr_size, "could not make a random model: out of memory");
fail:
    kiln_whisper_model_destroy(m);
    return NULL;
}

void kiln_whisper_model_destroy(kiln_whisper_model_t *m) {
    if (!m)
        return;
    kiln_whisper_cache_free_(m);
    kiln_whisper_backend_free_(m);
    for (int i = 0; i < m->n_bufs; i++)
        free(m->bufs[i]);
    free(m->bufs);
    free(m->buf_n);
    free(m->enc);
    free(m->dec);
    kiln_whisper_vocab_free(&m->vocab);
    free(m);
}

const kiln_whisper_hparams_t *kiln_whisper_model_hparams(const kiln_whisper_model_t *m) {
    return &m->hp;
}

const char *kiln_whisper_model_format(const kiln_whisper_model_t *m) { return m->format; }

const char *kiln_whisper_token_text(const kiln_whisper_model_t *m, int id) {
    if (id < 0 || id >= m->vocab.n || !m->vocab.tok[id])
        return "";
    return m->vocab.tok[id];
}
