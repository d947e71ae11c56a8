/*
 * models/whisper/ggml.c - loads a whisper.cpp ggml-*.bin model:
 *
 *   u32 magic 0x67676d6c ("ggml")
 *   i32 n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
 *       n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype
 *   i32 n_mel, i32 n_freq (201), f32 filters[n_mel * n_freq]
 *   i32 n_words, then per word: u32 len, bytes (raw, not byte-level encoded)
 *   tensors to EOF: i32 n_dims, i32 name_len, i32 type (0 f32, 1 f16),
 *       i32 ne[n_dims] (innermost first), name, data
 *
 * Tensor names are openai/whisper's state-dict names; the separate q/k/v
 * projections are fused into the canonical QKV layout (key has no bias).
 * Quantized ggml types are refused with a clear message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/whisper/loader_int.h"

static const char *const kiln_ggml_langs_[] = {
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv",
    "it", "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no",
    "th", "ur", "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr",
    "az", "sl", "kn", "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw",
    "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu",
    "am", "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl",
    "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su", "yue"};

typedef struct {
    const uint8_t *p;
    size_t size, off;
} kiln_ggml_rd_t;

static int kiln_ggml_i32_(kiln_ggml_rd_t *r, int32_t *v) {
    if (r->off + 4 > r->size)
        return -1;
    memcpy(v, r->p + r->off, 4);
    r->off += 4;
    return 0;
}

/* Names the special tokens a ggml vocabulary leaves out (whisper.cpp does the same). */
static char *kiln_ggml_special_name_(const kiln_wvocab_t *v, int id) {
    char buf[64];
    if (id == v->eot) snprintf(buf, sizeof(buf), "<|endoftext|>");
    else if (id == v->sot) snprintf(buf, sizeof(buf), "<|startoftranscript|>");
    else if (id >= v->lang_begin && id < v->lang_begin + v->n_langs) {
        int li = id - v->lang_begin;
        int nl = (int)(sizeof(kiln_ggml_langs_) / sizeof(kiln_ggml_langs_[0]));
        if (li < nl) snprintf(buf, sizeof(buf), "<|%s|>", kiln_ggml_langs_[li]);
        else snprintf(buf, sizeof(buf), "<|lang%d|>", li);
    }
    else if (id == v->translate) snprintf(buf, sizeof(buf), "<|translate|>");
    else if (id == v->transcribe) snprintf(buf, sizeof(buf), "<|transcribe|>");
    else if (id == v->sot_lm) snprintf(buf, sizeof(buf), "<|startoflm|>");
    else if (id == v->sot_prev) snprintf(buf, sizeof(buf), "<|startofprev|>");
    else if (id == v->no_speech) snprintf(buf, sizeof(buf), "<|nocaptions|>");
    else if (id == v->no_timestamps) snprintf(buf, sizeof(buf), "<|notimestamps|>");
    else if (id >= v->timestamp_begin) snprintf(buf, sizeof(buf), "<|%.2f|>", (id - v->timestamp_begin) * 0.02);
    else snprintf(buf, sizeof(buf), "[_extra_token_%d]", id);
    return strdup(buf);
}

/* Copies every weight; names are openai/whisper's state-dict names. */
static int kiln_ggml_bind_(kiln_whisper_model_t *m, const kiln_wtab_t *tab, char *errstr,
                           size_t errstr_size) {
    const kiln_whisper_hparams_t *hp = &m->hp;
    const int64_t Ca = hp->n_audio_state, Ct = hp->n_text_state;
    KILN_WCOPY(m->conv1_w, KILN_WSHAPE(Ca, hp->n_mels, 3), "encoder.conv1.weight");
    KILN_WCOPY(m->conv1_b, KILN_WSHAPE(Ca), "encoder.conv1.bias");
    KILN_WCOPY(m->conv2_w, KILN_WSHAPE(Ca, Ca, 3), "encoder.conv2.weight");
    KILN_WCOPY(m->conv2_b, KILN_WSHAPE(Ca), "encoder.conv2.bias");
    KILN_WCOPY(m->enc_pos, KILN_WSHAPE(hp->n_audio_ctx, Ca), "encoder.positional_embedding");
    KILN_WCOPY(m->enc_ln_g, KILN_WSHAPE(Ca), "encoder.ln_post.weight");
    KILN_WCOPY(m->enc_ln_b, KILN_WSHAPE(Ca), "encoder.ln_post.bias");
    KILN_WCOPY(m->tok_emb, KILN_WSHAPE(hp->n_vocab, Ct), "decoder.token_embedding.weight");
    KILN_WCOPY(m->dec_pos, KILN_WSHAPE(hp->n_text_ctx, Ct), "decoder.positional_embedding");
    KILN_WCOPY(m->dec_ln_g, KILN_WSHAPE(Ct), "decoder.ln.weight");
    KILN_WCOPY(m->dec_ln_b, KILN_WSHAPE(Ct), "decoder.ln.bias");
    for (int side = 0; side < 2; side++) {
        const char *s = side ? "decoder" : "encoder";
        const int64_t C = side ? Ct : Ca;
        for (int l = 0; l < (side ? hp->n_text_layer : hp->n_audio_layer); l++) {
            /* q, k, v into the fused QKV layout; the key has no bias */
            kiln_wlayer_view_t L = kiln_wlayer_view_(m, side, l);
            KILN_WCOPY(L.ln1_g, KILN_WSHAPE(C), "%s.blocks.%d.attn_ln.weight", s, l);
            KILN_WCOPY(L.ln1_b, KILN_WSHAPE(C), "%s.blocks.%d.attn_ln.bias", s, l);
            KILN_WCOPY(L.w_qkv, KILN_WSHAPE(C, C), "%s.blocks.%d.attn.query.weight", s, l);
            KILN_WCOPY(L.b_qkv, KILN_WSHAPE(C), "%s.blocks.%d.attn.query.bias", s, l);
            KILN_WCOPY(L.w_qkv + C * C, KILN_WSHAPE(C, C), "%s.blocks.%d.attn.key.weight", s, l);
            KILN_WCOPY(L.w_qkv + 2 * C * C, KILN_WSHAPE(C, C), "%s.blocks.%d.attn.value.weight",
                       s, l);
            KILN_WCOPY(L.b_qkv + 2 * C, KILN_WSHAPE(C), "%s.blocks.%d.attn.value.bias", s, l);
            KILN_WCOPY(L.w_o, KILN_WSHAPE(C, C), "%s.blocks.%d.attn.out.weight", s, l);
            KILN_WCOPY(L.b_o, KILN_WSHAPE(C), "%s.blocks.%d.attn.out.bias", s, l);
            KILN_WCOPY(L.ln2_g, KILN_WSHAPE(C), "%s.blocks.%d.mlp_ln.weight", s, l);
            KILN_WCOPY(L.ln2_b, KILN_WSHAPE(C), "%s.blocks.%d.mlp_ln.bias", s, l);
            KILN_WCOPY(L.w_fc1, KILN_WSHAPE(4 * C, C), "%s.blocks.%d.mlp.0.weight", s, l);
            KILN_WCOPY(L.b_fc1, KILN_WSHAPE(4 * C), "%s.blocks.%d.mlp.0.bias", s, l);
            KILN_WCOPY(L.w_fc2, KILN_WSHAPE(C, 4 * C), "%s.blocks.%d.mlp.2.weight", s, l);
            KILN_WCOPY(L.b_fc2, KILN_WSHAPE(C), "%s.blocks.%d.mlp.2.bias", s, l);
            if (!side)
                continue;
            kiln_wdec_layer_t *D = &m->dec[l];
            KILN_WCOPY(D->lnx_g, KILN_WSHAPE(C), "decoder.blocks.%d.cross_attn_ln.weight", l);
            KILN_WCOPY(D->lnx_b, KILN_WSHAPE(C), "decoder.blocks.%d.cross_attn_ln.bias", l);
            KILN_WCOPY(D->wx_q, KILN_WSHAPE(C, C), "decoder.blocks.%d.cross_attn.query.weight", l);
            KILN_WCOPY(D->bx_q, KILN_WSHAPE(C), "decoder.blocks.%d.cross_attn.query.bias", l);
            KILN_WCOPY(D->wx_kv, KILN_WSHAPE(C, C), "decoder.blocks.%d.cross_attn.key.weight", l);
            KILN_WCOPY(D->wx_kv + C * C, KILN_WSHAPE(C, C),
                       "decoder.blocks.%d.cross_attn.value.weight", l);
            KILN_WCOPY(D->bx_kv + C, KILN_WSHAPE(C), "decoder.blocks.%d.cross_attn.value.bias", l);
            KILN_WCOPY(D->wx_o, KILN_WSHAPE(C, C), "decoder.blocks.%d.cross_attn.out.weight", l);
            KILN_WCOPY(D->bx_o, KILN_WSHAPE(C), "decoder.blocks.%d.cross_attn.out.bias", l);
        }
    }
    return 0;
}

int kiln_whisper_load_ggml_(kiln_whisper_model_t *m, const char *path, char *errstr,
                            size_t errstr_size) {
    kiln_wmap_t mp;
    kiln_wtab_t tab = {.path = path};
    kiln_whisper_hparams_t *hp = &m->hp;
    int32_t h[11], n_mel, n_freq, n_words, ftype;
    int rc = -1;
    snprintf(m->format, sizeof(m->format), "ggml");
    if (kiln_wmap_open(&mp, path, errstr, errstr_size))
        return -1;
    kiln_ggml_rd_t r = {mp.p, mp.size, 4};
    for (int i = 0; i < 11; i++)
        if (kiln_ggml_i32_(&r, &h[i])) {
            snprintf(errstr, errstr_size, "could not load \"%s\": file is truncated in the "
                     "hyperparameters", path);
            goto done;
        }
    hp->n_vocab = h[0]; hp->n_audio_ctx = h[1]; hp->n_audio_state = h[2];
    hp->n_audio_head = h[3]; hp->n_audio_layer = h[4]; hp->n_text_ctx = h[5];
    hp->n_text_state = h[6]; hp->n_text_head = h[7]; hp->n_text_layer = h[8];
    hp->n_mels = h[9];
    ftype = h[10];
    (void)ftype;
    if (hp->n_vocab < 51864 || hp->n_vocab > 52000 || hp->n_audio_ctx <= 0 ||
        hp->n_audio_ctx > 4096 || hp->n_audio_state <= 0 || hp->n_audio_state > 8192 ||
        hp->n_audio_head <= 0 || hp->n_audio_state % hp->n_audio_head ||
        hp->n_audio_layer <= 0 || hp->n_audio_layer > 128 || hp->n_text_ctx <= 0 ||
        hp->n_text_ctx > 4096 || hp->n_text_state != hp->n_audio_state ||
        hp->n_text_head <= 0 || hp->n_text_state % hp->n_text_head ||
        hp->n_text_layer <= 0 || hp->n_text_layer > 128 ||
        (hp->n_mels != 80 && hp->n_mels != 128)) {
        snprintf(errstr, errstr_size, "could not load \"%s\": hyperparameters are not those "
                 "of a Whisper model", path);
        goto done;
    }
    if (kiln_ggml_i32_(&r, &n_mel) || kiln_ggml_i32_(&r, &n_freq) || n_mel != hp->n_mels ||
        n_freq != 201 || r.off + (size_t)n_mel * n_freq * 4 > r.size) {
        snprintf(errstr, errstr_size, "could not load \"%s\": mel filter section is invalid or "
                 "truncated", path);
        goto done;
    }
    /* f16 weights: two bytes each at least */
    if (kiln_whisper_alloc_weights_(m, SIZE_MAX /* every tensor is checked against the file first */, errstr, errstr_size))
        goto done;
    memcpy(m->mel_filters, r.p + r.off, (size_t)n_mel * n_freq * 4);
    r.off += (size_t)n_mel * n_freq * 4;
    /* vocabulary */
    kiln_wvocab_t *v = &m->vocab;
    if (kiln_ggml_i32_(&r, &n_words) || n_words < 0 || n_words > hp->n_vocab) {
        snprintf(errstr, errstr_size, "could not load \"%s\": vocabulary section is invalid",
                 path);
        goto done;
    }
    v->n = hp->n_vocab;
    if (!(v->tok = calloc((size_t)v->n, sizeof(char *))))
        goto oom;
    kiln_whisper_vocab_specials(v, v->n);
    for (int i = 0; i < n_words; i++) {
        int32_t len;
        if (kiln_ggml_i32_(&r, &len) || len < 0 || r.off + (size_t)len > r.size) {
            snprintf(errstr, errstr_size, "could not load \"%s\": vocabulary is truncated at "
                     "token %d of %d", path, i, n_words);
            goto done;
        }
        if (!(v->tok[i] = strndup((const char *)r.p + r.off, (size_t)len)))
            goto oom;
        r.off += (size_t)len;
    }
    for (int i = n_words; i < v->n; i++)
        if (!(v->tok[i] = kiln_ggml_special_name_(v, i)))
            goto oom;
    if (kiln_whisper_vocab_default_suppress(v))
        goto oom;
    /* tensors */
    while (r.off < r.size) {
        int32_t n_dims, name_len, type, ne[4] = {1, 1, 1, 1};
        int64_t shape[4];
        if (kiln_ggml_i32_(&r, &n_dims) || kiln_ggml_i32_(&r, &name_len) ||
            kiln_ggml_i32_(&r, &type) || n_dims < 1 || n_dims > 4 || name_len <= 0 ||
            name_len > 255) {
            snprintf(errstr, errstr_size, "could not load \"%s\": tensor header %d is invalid "
                     "or truncated (offset %zu)", path, tab.n, r.off);
            goto done;
        }
        size_t count = 1;
        for (int d = 0; d < n_dims; d++) {
            if (kiln_ggml_i32_(&r, &ne[d]) || ne[d] <= 0) {
                snprintf(errstr, errstr_size, "could not load \"%s\": tensor header %d is "
                         "invalid or truncated", path, tab.n);
                goto done;
            }
            count *= (size_t)ne[d];
            shape[n_dims - 1 - d] = ne[d];
        }
        if (r.off + (size_t)name_len > r.size) {
            snprintf(errstr, errstr_size, "could not load \"%s\": file is truncated in a tensor "
                     "name", path);
            goto done;
        }
        const char *name = (const char *)r.p + r.off;
        r.off += (size_t)name_len;
        if (type != 0 && type != 1) {
            snprintf(errstr, errstr_size, "could not load \"%s\": tensor \"%.*s\" has ggml type "
                     "%d (only f32 and f16 are supported, not quantized files)", path,
                     name_len, name, type);
            goto done;
        }
        size_t nbytes = count * (type == 0 ? 4 : 2);
        if (r.off + nbytes > r.size) {
            snprintf(errstr, errstr_size, "could not load \"%s\": file is truncated in tensor "
                     "\"%.*s\" (needs %zu bytes at offset %zu, file has %zu)", path, name_len,
                     name, nbytes, r.off, r.size);
            goto done;
        }
        if (kiln_wtab_add(&tab, name, (size_t)name_len, type == 0 ? KILN_DT_F32 : KILN_DT_F16,
                          n_dims, shape, r.p + r.off, nbytes))
            goto oom;
        r.off += nbytes;
    }
    if (kiln_ggml_bind_(m, &tab, errstr, errstr_size))
        goto done;
    rc = 0;
    goto done;
oom:
    snprintf(errstr, errstr_size, "could not load \"%s\": out of memory", path);
done:
    kiln_wtab_free(&tab);
    kiln_wmap_close(&mp);
    return rc;
}
