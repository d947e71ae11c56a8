/*
 * models/whisper/ct2.c - loads a CTranslate2 Whisper model directory, the
 * format faster-whisper uses:
 *
 *   model.bin        u32 version (>= 4 supported; 6 seen), string spec name
 *                    ("WhisperSpec"), u32 spec revision, u32 n_variables, then
 *                    per variable: string name, u8 rank, u32 dims[rank],
 *                    u8 dtype (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16),
 *                    u32 n_bytes, data; then u32 n_aliases, (string alias,
 *                    string target) pairs. Strings are u16 length (with the
 *                    NUL) + bytes. All little-endian.
 *   vocabulary.txt   one GPT-2 byte-level token per line (or vocabulary.json)
 *   config.json      suppress_ids / suppress_ids_begin (optional)
 *
 * Hyperparameters are read from the tensor shapes and the num_heads scalars.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/log.h"
#include "models/whisper/loader_int.h"

typedef struct {
    const uint8_t *p;
    size_t size, off;
} kiln_ct2_rd_t;

static int kiln_ct2_need_(kiln_ct2_rd_t *r, size_t n) { return r->off + n <= r->size; }

static int kiln_ct2_u32_(kiln_ct2_rd_t *r, uint32_t *v) {
    if (!kiln_ct2_need_(r, 4))
        return -1;
    memcpy(v, r->p + r->off, 4);
    r->off += 4;
    return 0;
}

static int kiln_ct2_str_(kiln_ct2_rd_t *r, const char **s, size_t *len) {
    uint16_t n;
    if (!kiln_ct2_need_(r, 2))
        return -1;
    memcpy(&n, r->p + r->off, 2);
    r->off += 2;
    if (n == 0 || !kiln_ct2_need_(r, n))
        return -1;
    *s = (const char *)r->p + r->off;
    *len = n - 1; /* drop the NUL */
    r->off += n;
    return 0;
}

static int kiln_ct2_scalar_int_(const kiln_wtab_t *tab, const char *name, int *out) {
    const kiln_wtensor_t *t = kiln_wtab_find(tab, name);
    if (!t || t->rank != 0)
        return -1;
    if (t->dtype == KILN_DT_I16 && t->nbytes == 2) {
        int16_t v;
        memcpy(&v, t->data, 2);
        *out = v;
    } else if (t->dtype == KILN_DT_I32 && t->nbytes == 4) {
        int32_t v;
        memcpy(&v, t->data, 4);
        *out = v;
    } else if (t->dtype == KILN_DT_I8 && t->nbytes == 1) {
        *out = *(const int8_t *)t->data;
    } else {
        return -1;
    }
    return 0;
}

/* Indexes every variable of model.bin into tab. */
static int kiln_ct2_index_(const kiln_wmap_t *mp, kiln_wtab_t *tab, char *errstr,
                           size_t errstr_size) {
    kiln_ct2_rd_t r = {mp->p, mp->size, 0};
    uint32_t version, rev, nv;
    const char *s;
    size_t len;
    if (kiln_ct2_u32_(&r, &version) || version < 4 || version > 6) {
        snprintf(errstr, errstr_size,
                 "could not load \"%s\": not a CTranslate2 model (binary version %u, "
                 "expected 4 to 6)", tab->path, r.off >= 4 ? version : 0);
        return -1;
    }
    if (kiln_ct2_str_(&r, &s, &len) || kiln_ct2_u32_(&r, &rev) || kiln_ct2_u32_(&r, &nv)) {
        snprintf(errstr, errstr_size, "could not load \"%s\": file is truncated in the header",
                 tab->path);
        return -1;
    }
    if (len != 11 || memcmp(s, "WhisperSpec", 11)) {
        snprintf(errstr, errstr_size, "could not load \"%s\": model spec is \"%.*s\", not "
                 "\"WhisperSpec\"", tab->path, (int)(len > 64 ? 64 : len), s);
        return -1;
    }
    for (uint32_t i = 0; i < nv; i++) {
        const char *name;
        size_t name_len;
        uint8_t rank, dt;
        uint32_t nbytes = 0, dim = 0;
        int64_t shape[8] = {0};
        if (kiln_ct2_str_(&r, &name, &name_len) || !kiln_ct2_need_(&r, 1)) {
            snprintf(errstr, errstr_size, "could not load \"%s\": file is truncated at "
                     "variable %u of %u", tab->path, i, nv);
            return -1;
        }
        rank = r.p[r.off++];
        if (rank > 4) {
            snprintf(errstr, errstr_size, "could not load \"%s\": tensor \"%.*s\" has rank %u",
                     tab->path, (int)name_len, name, rank);
            return -1;
        }
        size_t count = 1;
        int bad = 0, huge = 0;
        for (int d = 0; d < rank; d++) {
            bad |= kiln_ct2_u32_(&r, &dim);
            shape[d] = dim;
            if (dim && count > SIZE_MAX / dim)
                huge = 1;
            else
                count *= dim;
        }
        if (bad || !kiln_ct2_need_(&r, 1)) {
            snprintf(errstr, errstr_size, "could not load \"%s\": file is truncated in tensor "
                     "\"%.*s\"", tab->path, (int)name_len, name);
            return -1;
        }
        dt = r.p[r.off++];
        if (kiln_ct2_u32_(&r, &nbytes) || !kiln_ct2_need_(&r, nbytes)) {
            snprintf(errstr, errstr_size, "could not load \"%s\": file is truncated in tensor "
                     "\"%.*s\" (needs %u bytes at offset %zu, file has %zu)", tab->path,
                     (int)name_len, name, nbytes, r.off, r.size);
            return -1;
        }
        static const kiln_dtype_t dts[] = {KILN_DT_F32, KILN_DT_I8, KILN_DT_I16,
                                           KILN_DT_I32, KILN_DT_F16, KILN_DT_BF16};
        static const size_t dsz[] = {4, 1, 2, 4, 2, 2};
        kiln_dtype_t kdt = dt < 6 ? dts[dt] : KILN_DT_OTHER;
        /* a shape may not describe more than the bytes stored: the weights
         * are allocated by the shapes before anything is copied */
        if (dt < 6 && (huge || count > SIZE_MAX / dsz[dt] || count * dsz[dt] > nbytes)) {
            snprintf(errstr, errstr_size, "could not load \"%s\": tensor \"%.*s\" holds %u "
                     "bytes, fewer than its shape needs", tab->path, (int)name_len, name, nbytes);
            return -1;
        }
        if (kiln_wtab_add(tab, name, name_len, kdt, rank, shape, r.p + r.off, nbytes)) {
            snprintf(errstr, errstr_size, "out of memory");
            return -1;
        }
        r.off += nbytes;
    }
    /* aliases (e.g. decoder/projection/weight -> decoder/embeddings/weight): only
     * the tied output projection is expected, and it is implied. */
    return 0;
}

/* GPT-2's bytes_to_unicode(), inverted: code point -> byte (-1 if none). */
static void kiln_ct2_byte_decoder_(int dec[512]) {
    int n = 0;
    for (int i = 0; i < 512; i++)
        dec[i] = -1;
    for (int b = 0; b < 256; b++) {
        int direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        if (direct)
            dec[b] = b;
        else
            dec[256 + n++] = b;
    }
}

/* Decodes one byte-level token (UTF-8 text of mapped code points) to raw bytes. */
static char *kiln_ct2_token_bytes_(const char *s, size_t len, const int dec[512]) {
    char *out = malloc(len + 1);
    size_t j = 0;
    if (!out)
        return NULL;
    /* special tokens like <|endoftext|> are kept as they are */
    if (len >= 4 && s[0] == '<' && s[1] == '|' && s[len - 1] == '>' && s[len - 2] == '|') {
        memcpy(out, s, len);
        out[len] = '\0';
        return out;
    }
    for (size_t i = 0; i < len;) {
        unsigned c = (unsigned char)s[i];
        unsigned cp;
        int n;
        if (c < 0x80) { cp = c; n = 1; }
        else if ((c & 0xE0) == 0xC0 && i + 1 < len) { cp = ((c & 0x1F) << 6) | (s[i + 1] & 0x3F); n = 2; }
        else if ((c & 0xF0) == 0xE0 && i + 2 < len) { cp = ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F); n = 3; }
        else { cp = 0xFFFF; n = 1; }
        i += n;
        if (cp < 512 && dec[cp] >= 0)
            out[j++] = (char)dec[cp];
        else
            out[j++] = '?';
    }
    out[j] = '\0';
    return out;
}

static int kiln_bpe_dec_[512];
static pthread_once_t kiln_bpe_once_ = PTHREAD_ONCE_INIT;
static void kiln_bpe_init_(void) { kiln_ct2_byte_decoder_(kiln_bpe_dec_); }

char *kiln_whisper_bpe_bytes_(const char *s, size_t len) {
    pthread_once(&kiln_bpe_once_, kiln_bpe_init_);
    return kiln_ct2_token_bytes_(s, len, kiln_bpe_dec_);
}

static int kiln_ct2_vocab_(kiln_whisper_model_t *m, const char *dir, char *errstr,
                           size_t errstr_size) {
    char path[1100];
    int dec[512];
    kiln_ct2_byte_decoder_(dec);
    kiln_wvocab_t *v = &m->vocab;
    v->tok = calloc((size_t)m->hp.n_vocab, sizeof(char *));
    if (!v->tok)
        goto oom;
    v->n = m->hp.n_vocab;
    snprintf(path, sizeof(path), "%s/vocabulary.txt", dir);
    FILE *fp = fopen(path, "r");
    if (fp) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        int id = 0;
        while (id < v->n && (len = getline(&line, &cap, fp)) >= 0) {
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                len--;
            if (!(v->tok[id++] = kiln_ct2_token_bytes_(line, (size_t)len, dec))) {
                free(line);
                fclose(fp);
                goto oom;
            }
        }
        free(line);
        fclose(fp);
        if (id != v->n) {
            snprintf(errstr, errstr_size, "could not load \"%s\": %d tokens, the model has %d",
                     path, id, v->n);
            return -1;
        }
    } else {
        snprintf(path, sizeof(path), "%s/vocabulary.json", dir);
        json_error_t je;
        json_t *arr = json_load_file(path, 0, &je);
        if (!arr || !json_is_array(arr) || (int)json_array_size(arr) != v->n) {
            snprintf(errstr, errstr_size,
                     "could not load the vocabulary of \"%s\": no vocabulary.txt, and "
                     "vocabulary.json is missing or does not hold %d tokens", dir, v->n);
            json_decref(arr);
            return -1;
        }
        for (int id = 0; id < v->n; id++) {
            const char *s = json_string_value(json_array_get(arr, id));
            if (!(v->tok[id] = kiln_ct2_token_bytes_(s ? s : "", s ? strlen(s) : 0, dec))) {
                json_decref(arr);
                goto oom;
            }
        }
        json_decref(arr);
    }
    kiln_whisper_vocab_specials(v, v->n);
    if (strcmp(v->tok[v->sot], "<|startoftranscript|>") ||
        strcmp(v->tok[v->no_timestamps], "<|notimestamps|>") ||
        strcmp(v->tok[v->timestamp_begin], "<|0.00|>")) {
        snprintf(errstr, errstr_size, "could not load the vocabulary of \"%s\": special tokens "
                 "are not where a Whisper vocabulary of %d has them", dir, v->n);
        return -1;
    }
    /* suppress lists from config.json, else Whisper's defaults */
    snprintf(path, sizeof(path), "%s/config.json", dir);
    json_error_t je;
    json_t *cfg = json_load_file(path, 0, &je);
    json_t *sup = cfg ? json_object_get(cfg, "suppress_ids") : NULL;
    json_t *supb = cfg ? json_object_get(cfg, "suppress_ids_begin") : NULL;
    if (json_is_array(sup) && json_is_array(supb) && json_array_size(supb) <= 4) {
        v->n_suppress = (int)json_array_size(sup);
        v->suppress = calloc((size_t)v->n_suppress + 1, sizeof(int));
        if (!v->suppress) {
            json_decref(cfg);
            goto oom;
        }
        for (int i = 0; i < v->n_suppress; i++)
            v->suppress[i] = (int)json_integer_value(json_array_get(sup, i));
        v->n_suppress_begin = (int)json_array_size(supb);
        for (int i = 0; i < v->n_suppress_begin; i++)
            v->suppress_begin[i] = (int)json_integer_value(json_array_get(supb, i));
    } else if (kiln_whisper_vocab_default_suppress(v)) {
        json_decref(cfg);
        goto oom;
    }
    json_decref(cfg);
    for (int i = 0; i < v->n_suppress; i++)
        if (v->suppress[i] < 0 || v->suppress[i] >= v->n)
            v->suppress[i] = v->sot; /* harmless duplicate */
    return 0;
oom:
    snprintf(errstr, errstr_size, "out of memory");
    return -1;
}

/* Copies every weight; names are CTranslate2's WhisperSpec names. */
static int kiln_ct2_bind_(kiln_whisper_model_t *m, const kiln_wtab_t *tab, char *errstr,
                          size_t errstr_size) {
    const kiln_whisper_hparams_t *hp = &m->hp;
    const int64_t Ca = hp->n_audio_state, Ct = hp->n_text_state;
    KILN_WCOPY(m->conv1_w, KILN_WSHAPE(Ca, hp->n_mels, 3), "encoder/conv1/weight");
    KILN_WCOPY(m->conv1_b, KILN_WSHAPE(Ca), "encoder/conv1/bias");
    KILN_WCOPY(m->conv2_w, KILN_WSHAPE(Ca, Ca, 3), "encoder/conv2/weight");
    KILN_WCOPY(m->conv2_b, KILN_WSHAPE(Ca), "encoder/conv2/bias");
    KILN_WCOPY(m->enc_pos, KILN_WSHAPE(hp->n_audio_ctx, Ca),
               "encoder/position_encodings/encodings");
    KILN_WCOPY(m->enc_ln_g, KILN_WSHAPE(Ca), "encoder/layer_norm/gamma");
    KILN_WCOPY(m->enc_ln_b, KILN_WSHAPE(Ca), "encoder/layer_norm/beta");
    KILN_WCOPY(m->tok_emb, KILN_WSHAPE(hp->n_vocab, Ct), "decoder/embeddings/weight");
    KILN_WCOPY(m->dec_pos, KILN_WSHAPE(hp->n_text_ctx, Ct),
               "decoder/position_encodings/encodings");
    KILN_WCOPY(m->dec_ln_g, KILN_WSHAPE(Ct), "decoder/layer_norm/gamma");
    KILN_WCOPY(m->dec_ln_b, KILN_WSHAPE(Ct), "decoder/layer_norm/beta");
    for (int side = 0; side < 2; side++) {
        const char *s = side ? "decoder" : "encoder";
        const int64_t C = side ? Ct : Ca;
        for (int l = 0; l < (side ? hp->n_text_layer : hp->n_audio_layer); l++) {
            kiln_wlayer_view_t L = kiln_wlayer_view_(m, side, l);
            KILN_WCOPY(L.ln1_g, KILN_WSHAPE(C), "%s/layer_%d/self_attention/layer_norm/gamma", s,
                       l);
            KILN_WCOPY(L.ln1_b, KILN_WSHAPE(C), "%s/layer_%d/self_attention/layer_norm/beta", s, l);
            KILN_WCOPY(L.w_qkv, KILN_WSHAPE(3 * C, C), "%s/layer_%d/self_attention/linear_0/weight",
                       s, l);
            KILN_WCOPY(L.b_qkv, KILN_WSHAPE(3 * C), "%s/layer_%d/self_attention/linear_0/bias", s,
                       l);
            KILN_WCOPY(L.w_o, KILN_WSHAPE(C, C), "%s/layer_%d/self_attention/linear_1/weight", s,
                       l);
            KILN_WCOPY(L.b_o, KILN_WSHAPE(C), "%s/layer_%d/self_attention/linear_1/bias", s, l);
            KILN_WCOPY(L.ln2_g, KILN_WSHAPE(C), "%s/layer_%d/ffn/layer_norm/gamma", s, l);
            KILN_WCOPY(L.ln2_b, KILN_WSHAPE(C), "%s/layer_%d/ffn/layer_norm/beta", s, l);
            KILN_WCOPY(L.w_fc1, KILN_WSHAPE(4 * C, C), "%s/layer_%d/ffn/linear_0/weight", s, l);
            KILN_WCOPY(L.b_fc1, KILN_WSHAPE(4 * C), "%s/layer_%d/ffn/linear_0/bias", s, l);
            KILN_WCOPY(L.w_fc2, KILN_WSHAPE(C, 4 * C), "%s/layer_%d/ffn/linear_1/weight", s, l);
            KILN_WCOPY(L.b_fc2, KILN_WSHAPE(C), "%s/layer_%d/ffn/linear_1/bias", s, l);
            if (!side)
                continue;
            /* cross-attention: query, fused key/value, output */
            kiln_wdec_layer_t *D = &m->dec[l];
            KILN_WCOPY(D->lnx_g, KILN_WSHAPE(C), "decoder/layer_%d/attention/layer_norm/gamma", l);
            KILN_WCOPY(D->lnx_b, KILN_WSHAPE(C), "decoder/layer_%d/attention/layer_norm/beta", l);
            KILN_WCOPY(D->wx_q, KILN_WSHAPE(C, C), "decoder/layer_%d/attention/linear_0/weight", l);
            KILN_WCOPY(D->bx_q, KILN_WSHAPE(C), "decoder/layer_%d/attention/linear_0/bias", l);
            KILN_WCOPY(D->wx_kv, KILN_WSHAPE(2 * C, C),
                       "decoder/layer_%d/attention/linear_1/weight", l);
            KILN_WCOPY(D->bx_kv, KILN_WSHAPE(2 * C), "decoder/layer_%d/attention/linear_1/bias", l);
            KILN_WCOPY(D->wx_o, KILN_WSHAPE(C, C), "decoder/layer_%d/attention/linear_2/weight", l);
            KILN_WCOPY(D->bx_o, KILN_WSHAPE(C), "decoder/layer_%d/attention/linear_2/bias", l);
        }
    }
    return 0;
}

static int kiln_ct2_dim_(const kiln_wtab_t *tab, const char *name, int rank, int d, int *out,
                         char *errstr, size_t errstr_size) {
    const kiln_wtensor_t *t = kiln_wtab_find(tab, name);
    if (!t || t->rank != rank || t->shape[d] <= 0 || t->shape[d] > (1 << 20)) {
        snprintf(errstr, errstr_size, "could not load \"%s\": tensor \"%s\" is %s", tab->path,
                 name, t ? "not shaped as a Whisper model's" : "missing");
        return -1;
    }
    *out = (int)t->shape[d];
    return 0;
}

int kiln_whisper_load_ct2_(kiln_whisper_model_t *m, const char *dir, const char *bin,
                           char *errstr, size_t errstr_size) {
    kiln_wmap_t mp;
    kiln_wtab_t tab = {.path = bin};
    kiln_whisper_hparams_t *hp = &m->hp;
    int rc = -1;
    snprintf(m->format, sizeof(m->format), "ct2");
    if (kiln_wmap_open(&mp, bin, errstr, errstr_size))
        return -1;
    if (kiln_ct2_index_(&mp, &tab, errstr, errstr_size))
        goto done;
    if (kiln_ct2_dim_(&tab, "decoder/embeddings/weight", 2, 0, &hp->n_vocab, errstr, errstr_size) ||
        kiln_ct2_dim_(&tab, "decoder/embeddings/weight", 2, 1, &hp->n_text_state, errstr, errstr_size) ||
        kiln_ct2_dim_(&tab, "decoder/position_encodings/encodings", 2, 0, &hp->n_text_ctx, errstr, errstr_size) ||
        kiln_ct2_dim_(&tab, "encoder/conv1/weight", 3, 0, &hp->n_audio_state, errstr, errstr_size) ||
        kiln_ct2_dim_(&tab, "encoder/conv1/weight", 3, 1, &hp->n_mels, errstr, errstr_size) ||
        kiln_ct2_dim_(&tab, "encoder/position_encodings/encodings", 2, 0, &hp->n_audio_ctx, errstr, errstr_size))
        goto done;
    if (kiln_ct2_scalar_int_(&tab, "encoder/num_heads", &hp->n_audio_head) ||
        kiln_ct2_scalar_int_(&tab, "decoder/num_heads", &hp->n_text_head) ||
        hp->n_audio_head <= 0 || hp->n_text_head <= 0 ||
        hp->n_audio_state % hp->n_audio_head || hp->n_text_state % hp->n_text_head) {
        snprintf(errstr, errstr_size, "could not load \"%s\": encoder/num_heads or "
                 "decoder/num_heads is missing or invalid", bin);
        goto done;
    }
    char name[128];
    for (hp->n_audio_layer = 0;; hp->n_audio_layer++) {
        snprintf(name, sizeof(name), "encoder/layer_%d/ffn/linear_0/weight", hp->n_audio_layer);
        if (!kiln_wtab_find(&tab, name))
            break;
    }
    for (hp->n_text_layer = 0;; hp->n_text_layer++) {
        snprintf(name, sizeof(name), "decoder/layer_%d/ffn/linear_0/weight", hp->n_text_layer);
        if (!kiln_wtab_find(&tab, name))
            break;
    }
    if (hp->n_audio_layer == 0 || hp->n_text_layer == 0 ||
        (hp->n_mels != 80 && hp->n_mels != 128) || hp->n_vocab < 51864) {
        snprintf(errstr, errstr_size, "could not load \"%s\": not a Whisper model (%d encoder "
                 "layers, %d decoder layers, %d mel bins, %d tokens)", bin, hp->n_audio_layer,
                 hp->n_text_layer, hp->n_mels, hp->n_vocab);
        goto done;
    }
    /* int8 weights: one byte each at least */
    if (kiln_whisper_alloc_weights_(m, mp.size, errstr, errstr_size) ||
        kiln_ct2_bind_(m, &tab, errstr, errstr_size))
        goto done;
    kiln_whisper_mel_filters(m->mel_filters, hp->n_mels, 400, 16000);
    if (kiln_ct2_vocab_(m, dir, errstr, errstr_size))
        goto done;
    rc = 0;
done:
    kiln_wtab_free(&tab);
    kiln_wmap_close(&mp);
    return rc;
}
