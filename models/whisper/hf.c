/*
 * models/whisper/hf.c - loads a Hugging Face transformers Whisper checkpoint
 * directory:
 *
 *   model.safetensors   u64 header length N (little-endian), N bytes of JSON
 *                       {"<name>": {"dtype": "F32"|"F16"|"BF16", "shape": [...],
 *                       "data_offsets": [begin, end]}, "__metadata__": {...}},
 *                       then the data (offsets relative to its start)
 *   config.json         d_model, encoder_layers, decoder_layers,
 *                       encoder_attention_heads, decoder_attention_heads,
 *                       encoder_ffn_dim, decoder_ffn_dim, num_mel_bins,
 *                       max_source_positions, max_target_positions, vocab_size
 *   vocab.json (+ added_tokens.json) or tokenizer.json: the byte-level BPE
 *                       vocabulary and the special tokens
 *   generation_config.json (optional): suppress_tokens, begin_suppress_tokens
 *
 * Tensor names are transformers' WhisperForConditionalGeneration names
 * (model.encoder.layers.N.self_attn.q_proj.weight, ...; the "model." prefix
 * may be absent, as in WhisperModel). Separate q/k/v projections are fused
 * into the canonical QKV layout (the key projection has no bias); the
 * output projection is tied to the token embedding. Hyperparameters come
 * from config.json and are checked against the tensors.
 *
 * Every tensor the model needs is checked (name, dtype, shape, size inside
 * the file) before any weight memory is allocated, so a bad or truncated
 * file fails fast with a message naming the file and the tensor, even at
 * large-v3 size.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/whisper/loader_int.h"

static int kiln_hf_cfg_int_(json_t *cfg, const char *key, int *out) {
    json_t *v = json_object_get(cfg, key);
    if (!json_is_integer(v))
        return -1;
    *out = (int)json_integer_value(v);
    return 0;
}

/*
 * Checks (pass 0: dst is never evaluated) or copies (pass 1) every weight.
 * pfx is "model." or "".
 */
static int kiln_hf_bind_(kiln_whisper_model_t *m, kiln_wtab_t *tab, const char *pfx, int pass,
                         char *errstr, size_t errstr_size) {
    const kiln_whisper_hparams_t *hp = &m->hp;
    const int64_t C = hp->n_audio_state, F = hp->n_audio_state * 4;
    /* pass 0: dst (and any offset into it) is never evaluated */
#define CP(dst, ...) KILN_WCOPY(pass ? (dst) : NULL, __VA_ARGS__)
    CP(m->conv1_w, KILN_WSHAPE(C, hp->n_mels, 3), "%sencoder.conv1.weight", pfx);
    CP(m->conv1_b, KILN_WSHAPE(C), "%sencoder.conv1.bias", pfx);
    CP(m->conv2_w, KILN_WSHAPE(C, C, 3), "%sencoder.conv2.weight", pfx);
    CP(m->conv2_b, KILN_WSHAPE(C), "%sencoder.conv2.bias", pfx);
    CP(m->enc_pos, KILN_WSHAPE(hp->n_audio_ctx, C), "%sencoder.embed_positions.weight", pfx);
    CP(m->enc_ln_g, KILN_WSHAPE(C), "%sencoder.layer_norm.weight", pfx);
    CP(m->enc_ln_b, KILN_WSHAPE(C), "%sencoder.layer_norm.bias", pfx);
    CP(m->tok_emb, KILN_WSHAPE(hp->n_vocab, C), "%sdecoder.embed_tokens.weight", pfx);
    CP(m->dec_pos, KILN_WSHAPE(hp->n_text_ctx, C), "%sdecoder.embed_positions.weight", pfx);
    CP(m->dec_ln_g, KILN_WSHAPE(C), "%sdecoder.layer_norm.weight", pfx);
    CP(m->dec_ln_b, KILN_WSHAPE(C), "%sdecoder.layer_norm.bias", pfx);
    for (int side = 0; side < 2; side++) {
        const char *s = side ? "decoder" : "encoder";
        for (int l = 0; l < (side ? hp->n_text_layer : hp->n_audio_layer); l++) {
            /* q, k, v into the fused QKV layout; the key has no bias */
            kiln_wlayer_view_t L = kiln_wlayer_view_(m, side, l);
            CP(L.ln1_g, KILN_WSHAPE(C), "%s%s.layers.%d.self_attn_layer_norm.weight", pfx, s, l);
            CP(L.ln1_b, KILN_WSHAPE(C), "%s%s.layers.%d.self_attn_layer_norm.bias", pfx, s, l);
            CP(L.w_qkv, KILN_WSHAPE(C, C), "%s%s.layers.%d.self_attn.q_proj.weight", pfx, s, l);
            CP(L.b_qkv, KILN_WSHAPE(C), "%s%s.layers.%d.self_attn.q_proj.bias", pfx, s, l);
            CP(L.w_qkv + C * C, KILN_WSHAPE(C, C), "%s%s.layers.%d.self_attn.k_proj.weight", pfx,
               s, l);
            CP(L.w_qkv + 2 * C * C, KILN_WSHAPE(C, C), "%s%s.layers.%d.self_attn.v_proj.weight",
               pfx, s, l);
            CP(L.b_qkv + 2 * C, KILN_WSHAPE(C), "%s%s.layers.%d.self_attn.v_proj.bias", pfx, s,
               l);
            CP(L.w_o, KILN_WSHAPE(C, C), "%s%s.layers.%d.self_attn.out_proj.weight", pfx, s, l);
            CP(L.b_o, KILN_WSHAPE(C), "%s%s.layers.%d.self_attn.out_proj.bias", pfx, s, l);
            CP(L.ln2_g, KILN_WSHAPE(C), "%s%s.layers.%d.final_layer_norm.weight", pfx, s, l);
            CP(L.ln2_b, KILN_WSHAPE(C), "%s%s.layers.%d.final_layer_norm.bias", pfx, s, l);
            CP(L.w_fc1, KILN_WSHAPE(F, C), "%s%s.layers.%d.fc1.weight", pfx, s, l);
            CP(L.b_fc1, KILN_WSHAPE(F), "%s%s.layers.%d.fc1.bias", pfx, s, l);
            CP(L.w_fc2, KILN_WSHAPE(C, F), "%s%s.layers.%d.fc2.weight", pfx, s, l);
            CP(L.b_fc2, KILN_WSHAPE(C), "%s%s.layers.%d.fc2.bias", pfx, s, l);
            if (!side)
                continue;
            kiln_wdec_layer_t *D = pass ? &m->dec[l] : NULL;
            CP(D->lnx_g, KILN_WSHAPE(C), "%sdecoder.layers.%d.encoder_attn_layer_norm.weight",
               pfx, l);
            CP(D->lnx_b, KILN_WSHAPE(C), "%sdecoder.layers.%d.encoder_attn_layer_norm.bias",
               pfx, l);
            CP(D->wx_q, KILN_WSHAPE(C, C), "%sdecoder.layers.%d.encoder_attn.q_proj.weight", pfx,
               l);
            CP(D->bx_q, KILN_WSHAPE(C), "%sdecoder.layers.%d.encoder_attn.q_proj.bias", pfx, l);
            CP(D->wx_kv, KILN_WSHAPE(C, C), "%sdecoder.layers.%d.encoder_attn.k_proj.weight",
               pfx, l);
            CP(D->wx_kv + C * C, KILN_WSHAPE(C, C),
               "%sdecoder.layers.%d.encoder_attn.v_proj.weight", pfx, l);
            CP(D->bx_kv + C, KILN_WSHAPE(C), "%sdecoder.layers.%d.encoder_attn.v_proj.bias", pfx,
               l);
            CP(D->wx_o, KILN_WSHAPE(C, C), "%sdecoder.layers.%d.encoder_attn.out_proj.weight",
               pfx, l);
            CP(D->bx_o, KILN_WSHAPE(C), "%sdecoder.layers.%d.encoder_attn.out_proj.bias", pfx, l);
        }
    }
#undef CP
    return 0;
}

/* Reads a JSON file of dir; NULL when absent or invalid. */
static json_t *kiln_hf_json_(const char *dir, const char *file) {
    char path[1200];
    json_error_t je;
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    return json_load_file(path, 0, &je);
}

/* Fills the vocabulary from vocab.json (+ added_tokens.json) or tokenizer.json. */
static int kiln_hf_vocab_(kiln_whisper_model_t *m, const char *dir, char *errstr,
                          size_t errstr_size) {
    kiln_wvocab_t *v = &m->vocab;
    const int V = m->hp.n_vocab;
    json_t *tj = NULL, *vocab = kiln_hf_json_(dir, "vocab.json"), *added = NULL;
    if (json_is_object(vocab)) {
        added = kiln_hf_json_(dir, "added_tokens.json");
    } else {
        json_decref(vocab);
        tj = kiln_hf_json_(dir, "tokenizer.json");
        vocab = json_incref(json_object_get(json_object_get(tj, "model"), "vocab"));
    }
    if (!json_is_object(vocab)) {
        snprintf(errstr, errstr_size, "could not load the vocabulary of \"%s\": no vocab.json "
                 "and no tokenizer.json with a model vocabulary", dir);
        json_decref(vocab);
        json_decref(tj);
        return -1;
    }
    v->n = V;
    if (!(v->tok = calloc((size_t)V, sizeof(char *))))
        goto oom;
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        json_int_t id = json_integer_value(val);
        if (id >= 0 && id < V && !v->tok[id] &&
            !(v->tok[id] = kiln_whisper_bpe_bytes_(key, strlen(key))))
            goto oom;
    }
    /* special tokens: added_tokens.json {"content": id}, tokenizer.json [{id, content}] */
    json_object_foreach(added, key, val) {
        json_int_t id = json_integer_value(val);
        if (id >= 0 && id < V) {
            free(v->tok[id]);
            if (!(v->tok[id] = strdup(key)))
                goto oom;
        }
    }
    size_t i;
    json_t *at;
    json_array_foreach(json_object_get(tj, "added_tokens"), i, at) {
        json_int_t id = json_integer_value(json_object_get(at, "id"));
        const char *c = json_string_value(json_object_get(at, "content"));
        if (c && id >= 0 && id < V) {
            free(v->tok[id]);
            if (!(v->tok[id] = strdup(c)))
                goto oom;
        }
    }
    json_decref(vocab);
    json_decref(added);
    json_decref(tj);
    vocab = added = tj = NULL;
    kiln_whisper_vocab_specials(v, V);
    for (int id = 0; id < V; id++) { /* old tokenizers leave the timestamps unnamed */
        if (v->tok[id])
            continue;
        char buf[64];
        if (id >= v->timestamp_begin)
            snprintf(buf, sizeof(buf), "<|%.2f|>", (id - v->timestamp_begin) * 0.02);
        else
            snprintf(buf, sizeof(buf), "[_extra_token_%d]", id);
        if (!(v->tok[id] = strdup(buf)))
            goto oom;
    }
    if (strcmp(v->tok[v->sot], "<|startoftranscript|>") ||
        strcmp(v->tok[v->no_timestamps], "<|notimestamps|>") ||
        strcmp(v->tok[v->timestamp_begin], "<|0.00|>")) {
        snprintf(errstr, errstr_size, "could not load the vocabulary of \"%s\": special tokens "
                 "are not where a Whisper vocabulary of %d has them", dir, V);
        return -1;
    }
    /* suppress lists from generation_config.json, else Whisper's defaults */
    json_t *gc = kiln_hf_json_(dir, "generation_config.json");
    json_t *sup = json_object_get(gc, "suppress_tokens");
    json_t *supb = json_object_get(gc, "begin_suppress_tokens");
    if (json_is_array(sup) && json_is_array(supb) && json_array_size(supb) <= 4) {
        v->n_suppress = (int)json_array_size(sup);
        if (!(v->suppress = calloc((size_t)v->n_suppress + 8, sizeof(int)))) {
            json_decref(gc);
            goto oom;
        }
        for (int k = 0; k < v->n_suppress; k++) {
            int id = (int)json_integer_value(json_array_get(sup, k));
            v->suppress[k] = id >= 0 && id < V ? id : v->sot;
        }
        /* faster-whisper/CTranslate2 also suppress the task tokens (-1 expands to them) */
        int extra[] = {v->translate, v->transcribe, v->sot_lm, v->sot_prev, v->sot,
                       v->no_speech};
        for (int k = 0; k < 6; k++)
            v->suppress[v->n_suppress++] = extra[k];
        v->n_suppress_begin = (int)json_array_size(supb);
        for (int k = 0; k < v->n_suppress_begin; k++) {
            int id = (int)json_integer_value(json_array_get(supb, k));
            v->suppress_begin[k] = id >= 0 && id < V ? id : v->eot;
        }
    } else if (kiln_whisper_vocab_default_suppress(v)) {
        json_decref(gc);
        goto oom;
    }
    json_decref(gc);
    return 0;
oom:
    json_decref(vocab);
    json_decref(added);
    json_decref(tj);
    snprintf(errstr, errstr_size, "out of memory");
    return -1;
}

int kiln_whisper_load_hf_(kiln_whisper_model_t *m, const char *dir, const char *file,
                          char *errstr, size_t errstr_size) {
    kiln_whisper_hparams_t *hp = &m->hp;
    kiln_wmap_t mp = {0};
    kiln_wtab_t tab = {.path = file};
    int rc = -1, d_model = 0, enc_ffn = 0, dec_ffn = 0;
    snprintf(m->format, sizeof(m->format), "hf");
    json_t *cfg = kiln_hf_json_(dir, "config.json");
    if (!json_is_object(cfg) || kiln_hf_cfg_int_(cfg, "d_model", &d_model) ||
        kiln_hf_cfg_int_(cfg, "encoder_layers", &hp->n_audio_layer) ||
        kiln_hf_cfg_int_(cfg, "decoder_layers", &hp->n_text_layer) ||
        kiln_hf_cfg_int_(cfg, "encoder_attention_heads", &hp->n_audio_head) ||
        kiln_hf_cfg_int_(cfg, "decoder_attention_heads", &hp->n_text_head) ||
        kiln_hf_cfg_int_(cfg, "num_mel_bins", &hp->n_mels) ||
        kiln_hf_cfg_int_(cfg, "max_source_positions", &hp->n_audio_ctx) ||
        kiln_hf_cfg_int_(cfg, "max_target_positions", &hp->n_text_ctx) ||
        kiln_hf_cfg_int_(cfg, "vocab_size", &hp->n_vocab)) {
        snprintf(errstr, errstr_size, "could not load \"%s/config.json\": %s", dir,
                 cfg ? "a Whisper hyperparameter (d_model, encoder_layers, ..., vocab_size) is "
                       "missing" : "file is missing or not JSON");
        goto done;
    }
    if (kiln_hf_cfg_int_(cfg, "encoder_ffn_dim", &enc_ffn))
        enc_ffn = 4 * d_model;
    if (kiln_hf_cfg_int_(cfg, "decoder_ffn_dim", &dec_ffn))
        dec_ffn = 4 * d_model;
    hp->n_audio_state = hp->n_text_state = d_model;
    if (d_model <= 0 || d_model > 8192 || hp->n_audio_head <= 0 ||
        d_model % hp->n_audio_head || hp->n_text_head <= 0 || d_model % hp->n_text_head ||
        hp->n_audio_layer <= 0 || hp->n_audio_layer > 128 || hp->n_text_layer <= 0 ||
        hp->n_text_layer > 128 || (hp->n_mels != 80 && hp->n_mels != 128) ||
        hp->n_audio_ctx <= 0 || hp->n_audio_ctx > 4096 || hp->n_text_ctx <= 0 ||
        hp->n_text_ctx > 4096 || hp->n_vocab < 51864 || hp->n_vocab > 52000 ||
        enc_ffn != 4 * d_model || dec_ffn != 4 * d_model) {
        snprintf(errstr, errstr_size, "could not load \"%s/config.json\": hyperparameters are "
                 "not those of a Whisper model", dir);
        goto done;
    }
    if (kiln_wmap_open(&mp, file, errstr, errstr_size) ||
        kiln_wtab_index_safetensors(&tab, &mp, 0, errstr, errstr_size))
        goto done;
    char pfx[8] = "model.";
    if (!kiln_wtab_find(&tab, "model.encoder.conv1.weight") &&
        kiln_wtab_find(&tab, "encoder.conv1.weight"))
        pfx[0] = '\0';
    /* check everything, then allocate, then copy */
    if (kiln_hf_bind_(m, &tab, pfx, 0, errstr, errstr_size) ||
        kiln_whisper_alloc_weights_(m, SIZE_MAX, errstr, errstr_size) || /* all checked */
        kiln_hf_bind_(m, &tab, pfx, 1, errstr, errstr_size))
        goto done;
    kiln_whisper_mel_filters(m->mel_filters, hp->n_mels, 400, 16000);
    if (kiln_hf_vocab_(m, dir, errstr, errstr_size))
        goto done;
    rc = 0;
done:
    json_decref(cfg);
    kiln_wtab_free(&tab);
    kiln_wmap_close(&mp);
    return rc;
}
