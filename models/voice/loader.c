/*
 * models/voice/loader.c - loads a converted Piper voice: config.json (the
 * VITS hyper-parameters read from the ONNX graph by convert.py, and Piper's
 * own voice JSON) and model.safetensors (fp32 tensors under their PyTorch
 * names).
 *
 * The safetensors file is mapped and indexed into the tensor table the
 * Whisper loaders use (models/whisper/loader.c: kiln_wmap_open,
 * kiln_wtab_add, kiln_wtab_copy), so every tensor is checked for presence,
 * dtype, shape and size against the mapping before it is copied.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "models/voice/voice_int.h"
#include "models/whisper/whisper_int.h"

float *kiln_voice_take_(kiln_voice_t *v, size_t n) {
    if (v->n_bufs == v->cap_bufs) {
        int cap = v->cap_bufs ? v->cap_bufs * 2 : 512;
        void **b = realloc(v->bufs, (size_t)cap * sizeof(*b));
        if (!b)
            return NULL;
        v->bufs = b;
        v->cap_bufs = cap;
    }
    float *p = calloc(n ? n : 1, sizeof(float));
    if (p)
        v->bufs[v->n_bufs++] = p;
    return p;
}

/* ---- config */

static int kiln_voice_ji_(json_t *o, const char *key, int def) {
    json_t *j = json_object_get(o, key);
    return json_is_integer(j) ? (int)json_integer_value(j) : def;
}

static float kiln_voice_jf_(json_t *o, const char *key, float def) {
    json_t *j = json_object_get(o, key);
    return json_is_number(j) ? (float)json_number_value(j) : def;
}

static int kiln_voice_int_array_(json_t *a, int *dst, int max) {
    int n = (int)json_array_size(a);
    if (n > max)
        return -1;
    for (int i = 0; i < n; i++)
        dst[i] = (int)json_integer_value(json_array_get(a, i));
    return n;
}

/* Decodes one UTF-8 code point of s; @returns its length, 0 when invalid. */
static int kiln_voice_utf8_one_(const char *s, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    int n = (u[0] & 0xe0) == 0xc0 ? 2 : (u[0] & 0xf0) == 0xe0 ? 3 : (u[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (!n)
        return 0;
    uint32_t c = u[0] & (0x7f >> n);
    for (int i = 1; i < n; i++) {
        if ((u[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (u[i] & 0x3f);
    }
    *cp = c;
    return n;
}

static int kiln_voice_config_(kiln_voice_t *v, const char *cfg_path, char *errstr,
                              size_t errstr_size) {
    json_error_t jerr;
    json_t *root = json_load_file(cfg_path, 0, &jerr);
    if (!root) {
        snprintf(errstr, errstr_size, "could not load \"%s\": %s", cfg_path, jerr.text);
        return -1;
    }
    int rc = -1;
    json_t *m = json_object_get(root, "model"), *vo = json_object_get(root, "voice");
    if (!json_is_object(m) || !json_is_object(vo)) {
        snprintf(errstr, errstr_size,
                 "could not load \"%s\": not a kiln voice config (no \"model\"/\"voice\"; "
                 "convert the Piper voice with models/voice/convert.py)", cfg_path);
        goto out;
    }
    kiln_vhparams_t *hp = &v->hp;
    hp->n_vocab = kiln_voice_ji_(m, "n_vocab", 0);
    hp->hidden = kiln_voice_ji_(m, "hidden_channels", 0);
    hp->inter = kiln_voice_ji_(m, "inter_channels", 0);
    hp->filter = kiln_voice_ji_(m, "filter_channels", 0);
    hp->n_heads = kiln_voice_ji_(m, "n_heads", 0);
    hp->n_layers = kiln_voice_ji_(m, "n_layers", 0);
    hp->kernel = kiln_voice_ji_(m, "kernel_size", 0);
    hp->window = kiln_voice_ji_(m, "window_size", 0);
    hp->n_flows = (int)json_array_size(json_object_get(m, "flow_layers"));
    hp->wn_layers = kiln_voice_ji_(m, "flow_wn_layers", 0);
    hp->flow_kernel = kiln_voice_ji_(m, "flow_kernel_size", 0);
    hp->flow_dilation = kiln_voice_ji_(m, "flow_dilation_rate", 1);
    hp->dp_filter = kiln_voice_ji_(m, "dp_filter_channels", 0);
    hp->dp_layers = kiln_voice_ji_(m, "dp_n_layers", 0);
    hp->dp_kernel = kiln_voice_ji_(m, "dp_kernel_size", 0);
    hp->dp_n_flows = (int)json_array_size(json_object_get(m, "dp_conv_flows"));
    hp->dp_bins = kiln_voice_ji_(m, "dp_num_bins", 0);
    hp->dp_tail_bound = kiln_voice_jf_(m, "dp_tail_bound", 5.0f);
    hp->n_ups = kiln_voice_int_array_(json_object_get(m, "upsample_rates"), hp->ups_rate,
                                      KILN_VOICE_MAX_UPS);
    int nk = kiln_voice_int_array_(json_object_get(m, "upsample_kernel_sizes"), hp->ups_kernel,
                                   KILN_VOICE_MAX_UPS);
    hp->ups_ch0 = kiln_voice_ji_(m, "upsample_initial_channel", 0);
    hp->n_res = kiln_voice_int_array_(json_object_get(m, "resblock_kernel_sizes"),
                                      hp->res_kernel, KILN_VOICE_MAX_RES);
    json_t *dil = json_object_get(m, "resblock_dilation_sizes");
    hp->n_dil = -1;
    for (int j = 0; j < hp->n_res && j < (int)json_array_size(dil); j++) {
        int n = kiln_voice_int_array_(json_array_get(dil, j), hp->res_dil[j], KILN_VOICE_MAX_DIL);
        if (hp->n_dil >= 0 && n != hp->n_dil)
            n = -1;
        hp->n_dil = n;
    }
    hp->gin = kiln_voice_ji_(m, "gin_channels", 0);
    const char *rb = json_string_value(json_object_get(m, "resblock"));
    if (hp->n_vocab <= 0 || hp->hidden <= 0 || hp->n_heads <= 0 || hp->hidden % hp->n_heads ||
        hp->n_layers <= 0 || hp->n_layers > KILN_VOICE_MAX_LAYERS || hp->filter <= 0 ||
        hp->kernel <= 0 || hp->window <= 0 || hp->inter <= 0 || hp->inter % 2 ||
        hp->n_flows <= 0 || hp->n_flows > KILN_VOICE_MAX_FLOWS || hp->wn_layers <= 0 ||
        hp->wn_layers > KILN_VOICE_MAX_WN || hp->flow_kernel <= 0 || hp->dp_filter <= 0 ||
        hp->dp_layers <= 0 || hp->dp_layers > KILN_VOICE_MAX_DDS || hp->dp_kernel <= 0 ||
        hp->dp_n_flows <= 0 || hp->dp_n_flows > KILN_VOICE_MAX_FLOWS || hp->dp_bins < 2 ||
        hp->n_ups <= 0 || nk != hp->n_ups || hp->ups_ch0 <= 0 || hp->n_res <= 0 ||
        hp->n_dil <= 0 || !rb || strcmp(rb, "2") || hp->gin != 0) {
        snprintf(errstr, errstr_size,
                 "could not load \"%s\": missing or unsupported model hyper-parameters "
                 "(supported: VITS with resblock 2, one speaker)", cfg_path);
        goto out;
    }
    /* the voice */
    json_t *esp = json_object_get(vo, "espeak");
    const char *ev = json_string_value(json_object_get(esp, "voice"));
    snprintf(v->espeak_voice, sizeof(v->espeak_voice), "%s", ev ? ev : "en-us");
    v->sample_rate = kiln_voice_ji_(json_object_get(vo, "audio"), "sample_rate", 22050);
    json_t *inf = json_object_get(vo, "inference");
    v->noise_scale = kiln_voice_jf_(inf, "noise_scale", 0.667f);
    v->length_scale = kiln_voice_jf_(inf, "length_scale", 1.0f);
    v->noise_w = kiln_voice_jf_(inf, "noise_w", 0.8f);
    hp->n_speakers = kiln_voice_ji_(vo, "num_speakers", 1);
    const char *pt = json_string_value(json_object_get(vo, "phoneme_type"));
    if (pt && strcmp(pt, "espeak")) {
        snprintf(errstr, errstr_size,
                 "could not load \"%s\": phoneme_type \"%s\" is not supported (espeak only)",
                 cfg_path, pt);
        goto out;
    }
    json_t *map = json_object_get(vo, "phoneme_id_map");
    size_t nm = json_object_size(map);
    v->map_cp = calloc(nm ? nm : 1, sizeof(*v->map_cp));
    v->map_id = calloc(nm ? nm : 1, sizeof(*v->map_id));
    if (!v->map_cp || !v->map_id) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    v->id_bos = v->id_eos = v->id_pad = -1;
    const char *key;
    json_t *val;
    json_object_foreach(map, key, val) {
        uint32_t cp;
        int len = kiln_voice_utf8_one_(key, &cp);
        /* keys of more than one code point (vowel clusters) are not produced
         * by an espeak voice without "vowel_clusters"; skip them */
        if (!len || key[len] || !json_is_array(val) || json_array_size(val) != 1)
            continue;
        int id = (int)json_integer_value(json_array_get(val, 0));
        if (id < 0 || id >= hp->n_vocab) {
            snprintf(errstr, errstr_size,
                     "could not load \"%s\": phoneme id %d is outside the vocabulary (%d)",
                     cfg_path, id, hp->n_vocab);
            goto out;
        }
        v->map_cp[v->n_map] = cp;
        v->map_id[v->n_map++] = id;
        if (cp == '^')
            v->id_bos = id;
        else if (cp == '$')
            v->id_eos = id;
        else if (cp == '_')
            v->id_pad = id;
    }
    if (v->id_bos < 0 || v->id_eos < 0 || v->id_pad < 0) {
        snprintf(errstr, errstr_size,
                 "could not load \"%s\": phoneme_id_map lacks \"^\", \"$\" or \"_\"", cfg_path);
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* ---- weights */

typedef struct kiln_vload_s {
    kiln_voice_t *v;
    const kiln_wtab_t *tab;
    char *errstr;
    size_t errstr_size;
    int failed;
} kiln_vload_t;

/* Copies "<prefix>.weight" [oc, ic, k] and, when has_bias, "<prefix>.bias". */
static void kiln_vload_conv_(kiln_vload_t *L, kiln_vconv_t *cv, const char *prefix, int oc,
                             int ic, int k, int has_bias) {
    if (L->failed)
        return;
    char name[160];
    int64_t sh[3] = {oc, ic, k};
    cv->oc = oc;
    cv->ic = ic;
    cv->k = k;
    cv->w = kiln_voice_take_(L->v, (size_t)oc * ic * k);
    cv->b = has_bias ? kiln_voice_take_(L->v, (size_t)oc) : NULL;
    if (!cv->w || (has_bias && !cv->b)) {
        snprintf(L->errstr, L->errstr_size, "out of memory");
        L->failed = 1;
        return;
    }
    snprintf(name, sizeof(name), "%s.weight", prefix);
    if (kiln_wtab_copy(L->tab, name, 3, sh, cv->w, L->errstr, L->errstr_size)) {
        L->failed = 1;
        return;
    }
    if (has_bias) {
        snprintf(name, sizeof(name), "%s.bias", prefix);
        if (kiln_wtab_copy(L->tab, name, 1, sh, cv->b, L->errstr, L->errstr_size))
            L->failed = 1;
    }
}

static float *kiln_vload_vec_(kiln_vload_t *L, const char *name, int rank, const int64_t *sh) {
    if (L->failed)
        return NULL;
    size_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= (size_t)sh[i];
    float *p = kiln_voice_take_(L->v, n);
    if (!p) {
        snprintf(L->errstr, L->errstr_size, "out of memory");
        L->failed = 1;
        return NULL;
    }
    if (kiln_wtab_copy(L->tab, name, rank, sh, p, L->errstr, L->errstr_size)) {
        L->failed = 1;
        return NULL;
    }
    return p;
}

static void kiln_vload_ln_(kiln_vload_t *L, kiln_vln_t *ln, const char *prefix, int C) {
    char name[160];
    int64_t sh[1] = {C};
    snprintf(name, sizeof(name), "%s.gamma", prefix);
    ln->g = kiln_vload_vec_(L, name, 1, sh);
    snprintf(name, sizeof(name), "%s.beta", prefix);
    ln->b = kiln_vload_vec_(L, name, 1, sh);
}

static void kiln_vload_dds_(kiln_vload_t *L, kiln_vdds_t *d, const char *prefix, int C, int n,
                            int K) {
    char name[160];
    d->n = n;
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "%s.convs_sep.%d", prefix, i);
        kiln_vload_conv_(L, &d->sep[i], name, C, 1, K, 1);
        snprintf(name, sizeof(name), "%s.convs_1x1.%d", prefix, i);
        kiln_vload_conv_(L, &d->pw[i], name, C, C, 1, 1);
        snprintf(name, sizeof(name), "%s.norms_1.%d", prefix, i);
        kiln_vload_ln_(L, &d->n1[i], name, C);
        snprintf(name, sizeof(name), "%s.norms_2.%d", prefix, i);
        kiln_vload_ln_(L, &d->n2[i], name, C);
    }
}

static void kiln_vload_weights_(kiln_vload_t *L) {
    kiln_voice_t *v = L->v;
    const kiln_vhparams_t *hp = &v->hp;
    int C = hp->hidden, D = C / hp->n_heads, W = 2 * hp->window + 1;
    char name[160];
    int64_t sh[3];

    sh[0] = hp->n_vocab;
    sh[1] = C;
    v->emb = kiln_vload_vec_(L, "enc_p.emb.weight", 2, sh);
    for (int l = 0; l < hp->n_layers && !L->failed; l++) {
        kiln_venc_layer_t *e = &v->enc[l];
        kiln_vconv_t q, k, vv;
        /* q, k, v are loaded apart and fused into one [3C, C] projection */
        snprintf(name, sizeof(name), "enc_p.encoder.attn_layers.%d.conv_q", l);
        kiln_vload_conv_(L, &q, name, C, C, 1, 1);
        snprintf(name, sizeof(name), "enc_p.encoder.attn_layers.%d.conv_k", l);
        kiln_vload_conv_(L, &k, name, C, C, 1, 1);
        snprintf(name, sizeof(name), "enc_p.encoder.attn_layers.%d.conv_v", l);
        kiln_vload_conv_(L, &vv, name, C, C, 1, 1);
        if (L->failed)
            break;
        e->qkv.oc = 3 * C;
        e->qkv.ic = C;
        e->qkv.k = 1;
        e->qkv.w = kiln_voice_take_(v, (size_t)3 * C * C);
        e->qkv.b = kiln_voice_take_(v, (size_t)3 * C);
        if (!e->qkv.w || !e->qkv.b) {
            snprintf(L->errstr, L->errstr_size, "out of memory");
            L->failed = 1;
            break;
        }
        const kiln_vconv_t *parts[3] = {&q, &k, &vv};
        for (int i = 0; i < 3; i++) {
            memcpy(e->qkv.w + (size_t)i * C * C, parts[i]->w, (size_t)C * C * sizeof(float));
            memcpy(e->qkv.b + (size_t)i * C, parts[i]->b, (size_t)C * sizeof(float));
        }
        snprintf(name, sizeof(name), "enc_p.encoder.attn_layers.%d.conv_o", l);
        kiln_vload_conv_(L, &e->o, name, C, C, 1, 1);
        sh[0] = 1;
        sh[1] = W;
        sh[2] = D;
        snprintf(name, sizeof(name), "enc_p.encoder.attn_layers.%d.emb_rel_k", l);
        e->rel_k = kiln_vload_vec_(L, name, 3, sh);
        snprintf(name, sizeof(name), "enc_p.encoder.attn_layers.%d.emb_rel_v", l);
        e->rel_v = kiln_vload_vec_(L, name, 3, sh);
        snprintf(name, sizeof(name), "enc_p.encoder.norm_layers_1.%d", l);
        kiln_vload_ln_(L, &e->n1, name, C);
        snprintf(name, sizeof(name), "enc_p.encoder.norm_layers_2.%d", l);
        kiln_vload_ln_(L, &e->n2, name, C);
        snprintf(name, sizeof(name), "enc_p.encoder.ffn_layers.%d.conv_1", l);
        kiln_vload_conv_(L, &e->ffn1, name, hp->filter, C, hp->kernel, 1);
        snprintf(name, sizeof(name), "enc_p.encoder.ffn_layers.%d.conv_2", l);
        kiln_vload_conv_(L, &e->ffn2, name, C, hp->filter, hp->kernel, 1);
    }
    kiln_vload_conv_(L, &v->enc_proj, "enc_p.proj", 2 * hp->inter, C, 1, 1);

    /* stochastic duration predictor: ElementwiseAffine at 0, ConvFlows at
     * 3, 5, 7 (the flow at 1 is unused in reverse and not exported) */
    kiln_vload_conv_(L, &v->dp_pre, "dp.pre", hp->dp_filter, C, 1, 1);
    kiln_vload_conv_(L, &v->dp_proj, "dp.proj", hp->dp_filter, hp->dp_filter, 1, 1);
    kiln_vload_dds_(L, &v->dp_dds, "dp.convs", hp->dp_filter, hp->dp_layers, hp->dp_kernel);
    sh[0] = 2;
    sh[1] = 1;
    float *m = kiln_vload_vec_(L, "dp.flows.0.m", 2, sh);
    float *lg = kiln_vload_vec_(L, "dp.flows.0.logs", 2, sh);
    if (m && lg) {
        memcpy(v->dp_m, m, sizeof(v->dp_m));
        memcpy(v->dp_logs, lg, sizeof(v->dp_logs));
    }
    for (int f = 0; f < hp->dp_n_flows && !L->failed; f++) {
        int idx = 3 + 2 * f;
        kiln_vconvflow_t *cf = &v->dp_flow[f];
        snprintf(name, sizeof(name), "dp.flows.%d.pre", idx);
        kiln_vload_conv_(L, &cf->pre, name, hp->dp_filter, 1, 1, 1);
        snprintf(name, sizeof(name), "dp.flows.%d.convs", idx);
        kiln_vload_dds_(L, &cf->dds, name, hp->dp_filter, hp->dp_layers, hp->dp_kernel);
        snprintf(name, sizeof(name), "dp.flows.%d.proj", idx);
        kiln_vload_conv_(L, &cf->proj, name, 3 * hp->dp_bins - 1, hp->dp_filter, 1, 1);
    }

    /* flow: coupling layers at 0, 2, 4, ... (Flip between them) */
    int half = hp->inter / 2;
    for (int f = 0; f < hp->n_flows && !L->failed; f++) {
        kiln_vcoupling_t *c = &v->flow[f];
        snprintf(name, sizeof(name), "flow.flows.%d.pre", 2 * f);
        kiln_vload_conv_(L, &c->pre, name, C, half, 1, 1);
        snprintf(name, sizeof(name), "flow.flows.%d.post", 2 * f);
        kiln_vload_conv_(L, &c->post, name, half, C, 1, 1);
        for (int i = 0; i < hp->wn_layers; i++) {
            snprintf(name, sizeof(name), "flow.flows.%d.enc.in_layers.%d", 2 * f, i);
            kiln_vload_conv_(L, &c->in[i], name, 2 * C, C, hp->flow_kernel, 1);
            snprintf(name, sizeof(name), "flow.flows.%d.enc.res_skip_layers.%d", 2 * f, i);
            kiln_vload_conv_(L, &c->rs[i], name, i < hp->wn_layers - 1 ? 2 * C : C, C, 1, 1);
        }
    }

    /* decoder */
    kiln_vload_conv_(L, &v->conv_pre, "dec.conv_pre", hp->ups_ch0, hp->inter, 7, 1);
    int ch = hp->ups_ch0;
    for (int i = 0; i < hp->n_ups && !L->failed; i++) {
        int oc = ch / 2, K = hp->ups_kernel[i];
        kiln_vconv_t raw;
        snprintf(name, sizeof(name), "dec.ups.%d", i);
        /* ConvTranspose1d weight is [C_in, C_out, K] */
        kiln_vload_conv_(L, &raw, name, ch, oc, K, 0);
        sh[0] = oc;
        snprintf(name, sizeof(name), "dec.ups.%d.bias", i);
        float *b = kiln_vload_vec_(L, name, 1, sh);
        float *w = kiln_voice_take_(v, (size_t)K * oc * ch);
        if (L->failed || !w)
            break;
        kiln_vrelayout_transpose_(w, raw.w, ch, oc, K);
        v->ups[i] = (kiln_vconv_t){.w = w, .b = b, .oc = oc, .ic = ch, .k = K};
        for (int j = 0; j < hp->n_res; j++)
            for (int d = 0; d < hp->n_dil; d++) {
                snprintf(name, sizeof(name), "dec.resblocks.%d.convs.%d", i * hp->n_res + j, d);
                kiln_vload_conv_(L, &v->res[i * hp->n_res + j][d], name, oc, oc,
                                 hp->res_kernel[j], 1);
            }
        ch = oc;
    }
    kiln_vload_conv_(L, &v->conv_post, "dec.conv_post", 1, ch, 7, 0);
    if (L->failed)
        return;
    /* the convolutions of kiln_vconv1d_() take k-major weights */
    float *tmp = malloc((size_t)16 * 1024 * sizeof(float));
    kiln_vconv_t *cvs[KILN_VOICE_MAX_LAYERS * 2 + KILN_VOICE_MAX_FLOWS * KILN_VOICE_MAX_WN + 2 +
                      KILN_VOICE_MAX_UPS * KILN_VOICE_MAX_RES * KILN_VOICE_MAX_DIL];
    int n = 0;
    for (int l = 0; l < hp->n_layers; l++) {
        cvs[n++] = &v->enc[l].ffn1;
        cvs[n++] = &v->enc[l].ffn2;
    }
    for (int f = 0; f < hp->n_flows; f++)
        for (int i = 0; i < hp->wn_layers; i++)
            cvs[n++] = &v->flow[f].in[i];
    cvs[n++] = &v->conv_pre;
    cvs[n++] = &v->conv_post;
    for (int i = 0; i < hp->n_ups * hp->n_res; i++)
        for (int d = 0; d < hp->n_dil; d++)
            cvs[n++] = &v->res[i][d];
    for (int i = 0; i < n && tmp; i++) {
        if ((size_t)cvs[i]->ic * cvs[i]->k > 16 * 1024) {
            snprintf(L->errstr, L->errstr_size, "convolution too wide");
            L->failed = 1;
            break;
        }
        kiln_vkmajor_(cvs[i], tmp);
    }
    if (!tmp) {
        snprintf(L->errstr, L->errstr_size, "out of memory");
        L->failed = 1;
    }
    free(tmp);
}

kiln_voice_t *kiln_voice_load(const char *path, char *errstr, size_t errstr_size) {
    char dir[512], cfg[600], st[600];
    struct stat sb;
    if (stat(path, &sb) < 0) {
        snprintf(errstr, errstr_size, "could not open voice \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    snprintf(dir, sizeof(dir), "%s", path);
    if (!S_ISDIR(sb.st_mode)) {
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(dir, sizeof(dir), ".");
        snprintf(cfg, sizeof(cfg), "%s", path);
    } else {
        snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
    }
    snprintf(st, sizeof(st), "%s/model.safetensors", dir);

    kiln_voice_t *v = calloc(1, sizeof(*v));
    if (!v) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    snprintf(v->path, sizeof(v->path), "%s", path);
    if (kiln_voice_config_(v, cfg, errstr, errstr_size)) {
        kiln_voice_destroy(v);
        return NULL;
    }
    kiln_wmap_t mp;
    kiln_wtab_t tab = {.path = st};
    if (kiln_wmap_open(&mp, st, errstr, errstr_size)) {
        kiln_voice_destroy(v);
        return NULL;
    }
    kiln_vload_t L = {.v = v, .tab = &tab, .errstr = errstr, .errstr_size = errstr_size};
    if (kiln_wtab_index_safetensors(&tab, &mp, 1, errstr, errstr_size))
        L.failed = 1;
    else
        kiln_vload_weights_(&L);
    kiln_wtab_free(&tab);
    kiln_wmap_close(&mp);
    if (L.failed) {
        kiln_voice_destroy(v);
        return NULL;
    }
    return v;
}

void kiln_voice_destroy(kiln_voice_t *v) {
    if (!v)
        return;
    kiln_vdev_free_(v->dev);
    for (int i = 0; i < v->n_bufs; i++)
        free(v->bufs[i]);
    free(v->bufs);
    free(v->map_cp);
    free(v->map_id);
    free(v);
}

int kiln_voice_sample_rate(const kiln_voice_t *v) { return v->sample_rate; }

int kiln_voice_hop_length(const kiln_voice_t *v) {
    int hop = 1;
    for (int i = 0; i < v->hp.n_ups; i++)
        hop *= v->hp.ups_rate[i];
    return hop;
}

const char *kiln_voice_espeak_voice(const kiln_voice_t *v) { return v->espeak_voice; }
