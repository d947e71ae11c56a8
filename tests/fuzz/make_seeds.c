/*
 * tests/fuzz/make_seeds.c - writes the generated part of the seed corpus:
 * small but complete Whisper weight files (ggml and CTranslate2, 1 layer,
 * width 1, 80 mels, the English vocabulary size) and variants cut or bent
 * at each header field, plus the audio formats sox cannot write (Ogg Opus,
 * MP3) through libsndfile. tests/fuzz/make_seeds.sh builds and runs it;
 * the files it wrote are committed, so this runs only to regenerate them.
 *
 *   make_seeds CORPUS_DIR
 */
#include <math.h>
#include <sndfile.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NV 51864 /* English-only vocabulary */
#define NM 80
#define C 1      /* width of both stacks */
#define TA 1     /* audio context */
#define TT 1     /* text context */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf_t;

static void put(buf_t *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            exit(1);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void u8(buf_t *b, uint8_t v) { put(b, &v, 1); }
static void u16(buf_t *b, uint16_t v) { put(b, &v, 2); }
static void u32(buf_t *b, uint32_t v) { put(b, &v, 4); }
static void f32(buf_t *b, float v) { put(b, &v, 4); }

static void save(const char *dir, const char *name, const uint8_t *p, size_t n) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(p, 1, n, fp) != n || fclose(fp)) {
        perror(path);
        exit(1);
    }
}

/* small deterministic values, exact in half precision */
static uint16_t half_of(size_t i) { return (uint16_t)(0x3000 + (i * 7) % 0x400); }

/* ---- ggml ---- */

static void ggml_tensor(buf_t *b, const char *name, int rank, int64_t d0, int64_t d1,
                        int64_t d2) {
    int64_t sh[3] = {d0, d1, d2};
    size_t n = 1;
    u32(b, (uint32_t)rank);
    u32(b, (uint32_t)strlen(name));
    u32(b, 1); /* f16 */
    for (int d = rank - 1; d >= 0; d--) { /* ne[]: innermost first */
        u32(b, (uint32_t)sh[d]);
        n *= (size_t)sh[d];
    }
    put(b, name, strlen(name));
    for (size_t i = 0; i < n; i++)
        u16(b, half_of(i));
}

static void ggml_layer(buf_t *b, const char *pre, int l, int cross) {
    char n[128];
#define T(suffix, rank, a, c)                                                            \
    do {                                                                                 \
        snprintf(n, sizeof(n), "%s.blocks.%d.%s", pre, l, suffix);                       \
        ggml_tensor(b, n, rank, a, c, 1);                                                \
    } while (0)
    T("attn_ln.weight", 1, C, 1); T("attn_ln.bias", 1, C, 1);
    T("attn.query.weight", 2, C, C); T("attn.query.bias", 1, C, 1);
    T("attn.key.weight", 2, C, C); T("attn.value.weight", 2, C, C);
    T("attn.value.bias", 1, C, 1); T("attn.out.weight", 2, C, C); T("attn.out.bias", 1, C, 1);
    T("mlp_ln.weight", 1, C, 1); T("mlp_ln.bias", 1, C, 1);
    T("mlp.0.weight", 2, 4 * C, C); T("mlp.0.bias", 1, 4 * C, 1);
    T("mlp.2.weight", 2, C, 4 * C); T("mlp.2.bias", 1, C, 1);
    if (cross) {
        T("cross_attn_ln.weight", 1, C, 1); T("cross_attn_ln.bias", 1, C, 1);
        T("cross_attn.query.weight", 2, C, C); T("cross_attn.query.bias", 1, C, 1);
        T("cross_attn.key.weight", 2, C, C); T("cross_attn.value.weight", 2, C, C);
        T("cross_attn.value.bias", 1, C, 1);
        T("cross_attn.out.weight", 2, C, C); T("cross_attn.out.bias", 1, C, 1);
    }
#undef T
}

/* Writes the ggml model; \p n_words tokens of vocabulary. Returns offsets of
 * the sections in \p cuts: [0] after hparams, [1] after mel, [2] after vocab. */
static void ggml_model(buf_t *b, int n_words, size_t cuts[3]) {
    int32_t hp[11] = {NV, TA, C, 1, 1, TT, C, 1, 1, NM, 1};
    u32(b, 0x67676d6c);
    put(b, hp, sizeof(hp));
    cuts[0] = b->n;
    u32(b, NM);
    u32(b, 201);
    for (int i = 0; i < NM * 201; i++)
        f32(b, (float)(i % 13) / 64.0f);
    cuts[1] = b->n;
    u32(b, (uint32_t)n_words);
    for (int i = 0; i < n_words; i++) {
        char w[16];
        int len = snprintf(w, sizeof(w), i % 5 ? "w%d" : " (", i);
        u32(b, (uint32_t)len);
        put(b, w, (size_t)len);
    }
    cuts[2] = b->n;
    ggml_tensor(b, "encoder.conv1.weight", 3, C, NM, 3);
    ggml_tensor(b, "encoder.conv1.bias", 1, C, 1, 1);
    ggml_tensor(b, "encoder.conv2.weight", 3, C, C, 3);
    ggml_tensor(b, "encoder.conv2.bias", 1, C, 1, 1);
    ggml_tensor(b, "encoder.positional_embedding", 2, TA, C, 1);
    ggml_tensor(b, "encoder.ln_post.weight", 1, C, 1, 1);
    ggml_tensor(b, "encoder.ln_post.bias", 1, C, 1, 1);
    ggml_tensor(b, "decoder.token_embedding.weight", 2, NV, C, 1);
    ggml_tensor(b, "decoder.positional_embedding", 2, TT, C, 1);
    ggml_tensor(b, "decoder.ln.weight", 1, C, 1, 1);
    ggml_tensor(b, "decoder.ln.bias", 1, C, 1, 1);
    ggml_layer(b, "encoder", 0, 0);
    ggml_layer(b, "decoder", 0, 1);
}

/* ---- CTranslate2 ---- */

static void ct2_str(buf_t *b, const char *s) {
    u16(b, (uint16_t)(strlen(s) + 1));
    put(b, s, strlen(s) + 1);
}

/* dtype: 0 f32, 1 i8, 3 i32, 4 f16, 5 bf16 */
static void ct2_var(buf_t *b, const char *name, int rank, int64_t d0, int64_t d1, int64_t d2,
                    int dtype) {
    int64_t sh[3] = {d0, d1, d2};
    static const int es[] = {4, 1, 2, 4, 2, 2};
    size_t n = 1;
    ct2_str(b, name);
    u8(b, (uint8_t)rank);
    for (int d = 0; d < rank; d++) {
        u32(b, (uint32_t)sh[d]);
        n *= (size_t)sh[d];
    }
    u8(b, (uint8_t)dtype);
    u32(b, (uint32_t)(n * (size_t)es[dtype]));
    for (size_t i = 0; i < n; i++) {
        if (dtype == 0)
            f32(b, (float)(1 + i % 9) / 16.0f);
        else if (dtype == 1)
            u8(b, (uint8_t)(i % 100));
        else if (dtype == 3)
            u32(b, 1);
        else
            u16(b, dtype == 4 ? half_of(i) : (uint16_t)(0x3e00 + i % 64));
    }
}

static int ct2_n_vars(int n_layers_each) { return 7 + 2 + 4 + 12 * n_layers_each + 20 * n_layers_each; }

static void ct2_layer(buf_t *b, const char *pre, int l, int cross, int dt) {
    char n[128];
#define V(suffix, rank, a, c)                                                            \
    do {                                                                                 \
        snprintf(n, sizeof(n), "%s/layer_%d/%s", pre, l, suffix);                        \
        ct2_var(b, n, rank, a, c, 1, dt);                                                \
    } while (0)
    V("self_attention/layer_norm/gamma", 1, C, 1); V("self_attention/layer_norm/beta", 1, C, 1);
    V("self_attention/linear_0/weight", 2, 3 * C, C); V("self_attention/linear_0/bias", 1, 3 * C, 1);
    V("self_attention/linear_1/weight", 2, C, C); V("self_attention/linear_1/bias", 1, C, 1);
    if (cross) {
        V("attention/layer_norm/gamma", 1, C, 1); V("attention/layer_norm/beta", 1, C, 1);
        V("attention/linear_0/weight", 2, C, C); V("attention/linear_0/bias", 1, C, 1);
        V("attention/linear_1/weight", 2, 2 * C, C); V("attention/linear_1/bias", 1, 2 * C, 1);
        V("attention/linear_2/weight", 2, C, C); V("attention/linear_2/bias", 1, C, 1);
    }
    V("ffn/layer_norm/gamma", 1, C, 1); V("ffn/layer_norm/beta", 1, C, 1);
    V("ffn/linear_0/weight", 2, 4 * C, C); V("ffn/linear_0/bias", 1, 4 * C, 1);
    V("ffn/linear_1/weight", 2, C, 4 * C); V("ffn/linear_1/bias", 1, C, 1);
#undef V
}

/* A complete model.bin with \p nv vocabulary rows; weights in dtype \p dt
 * (the conv1 weight in int8 with its scale when \p int8_conv). */
static void ct2_model(buf_t *b, int nv, int dt, int int8_conv) {
    u32(b, 6);
    ct2_str(b, "WhisperSpec");
    u32(b, 3);
    u32(b, (uint32_t)(ct2_n_vars(1) + (int8_conv ? 1 : 0)));
    if (int8_conv) {
        ct2_var(b, "encoder/conv1/weight", 3, C, NM, 3, 1);
        ct2_var(b, "encoder/conv1/weight_scale", 1, C, 1, 1, 0);
    } else {
        ct2_var(b, "encoder/conv1/weight", 3, C, NM, 3, dt);
    }
    ct2_var(b, "encoder/conv1/bias", 1, C, 1, 1, dt);
    ct2_var(b, "encoder/conv2/weight", 3, C, C, 3, dt);
    ct2_var(b, "encoder/conv2/bias", 1, C, 1, 1, dt);
    ct2_var(b, "encoder/position_encodings/encodings", 2, TA, C, 1, dt);
    ct2_var(b, "encoder/layer_norm/gamma", 1, C, 1, 1, dt);
    ct2_var(b, "encoder/layer_norm/beta", 1, C, 1, 1, dt);
    ct2_var(b, "encoder/num_heads", 0, 1, 1, 1, 3);
    ct2_var(b, "decoder/num_heads", 0, 1, 1, 1, 3);
    ct2_var(b, "decoder/embeddings/weight", 2, nv, C, 1, dt);
    ct2_var(b, "decoder/position_encodings/encodings", 2, TT, C, 1, dt);
    ct2_var(b, "decoder/layer_norm/gamma", 1, C, 1, 1, dt);
    ct2_var(b, "decoder/layer_norm/beta", 1, C, 1, 1, dt);
    ct2_layer(b, "encoder", 0, 0, dt);
    ct2_layer(b, "decoder", 0, 1, dt);
    u32(b, 1); /* one alias: the tied output projection */
    ct2_str(b, "decoder/projection/weight");
    ct2_str(b, "decoder/embeddings/weight");
}

/* ---- Hugging Face safetensors ---- */

typedef struct {
    char name[96];
    int rank;
    int64_t shape[3];
} st_t;

static int st_add(st_t *t, int n, const char *pfx, const char *name, int rank, int64_t a,
                  int64_t b, int64_t c) {
    snprintf(t[n].name, sizeof(t[n].name), "%s%s", pfx, name);
    t[n].rank = rank;
    t[n].shape[0] = a;
    t[n].shape[1] = b;
    t[n].shape[2] = c;
    return n + 1;
}

/* A width-1, one-layer WhisperForConditionalGeneration checkpoint in
 * \p dtype ("F16", "BF16" or "F32"); names prefixed by \p pfx. */
static void st_model(buf_t *b, const char *pfx, const char *dtype) {
    static st_t t[128];
    int n = 0;
    char nm[128];
    n = st_add(t, n, pfx, "encoder.conv1.weight", 3, C, NM, 3);
    n = st_add(t, n, pfx, "encoder.conv1.bias", 1, C, 1, 1);
    n = st_add(t, n, pfx, "encoder.conv2.weight", 3, C, C, 3);
    n = st_add(t, n, pfx, "encoder.conv2.bias", 1, C, 1, 1);
    n = st_add(t, n, pfx, "encoder.embed_positions.weight", 2, TA, C, 1);
    n = st_add(t, n, pfx, "encoder.layer_norm.weight", 1, C, 1, 1);
    n = st_add(t, n, pfx, "encoder.layer_norm.bias", 1, C, 1, 1);
    n = st_add(t, n, pfx, "decoder.embed_tokens.weight", 2, NV, C, 1);
    n = st_add(t, n, pfx, "decoder.embed_positions.weight", 2, TT, C, 1);
    n = st_add(t, n, pfx, "decoder.layer_norm.weight", 1, C, 1, 1);
    n = st_add(t, n, pfx, "decoder.layer_norm.bias", 1, C, 1, 1);
    static const struct { const char *s; int rank, a, c; } layer[] = {
        {"self_attn_layer_norm.weight", 1, 1, 1}, {"self_attn_layer_norm.bias", 1, 1, 1},
        {"self_attn.q_proj.weight", 2, 1, 1},     {"self_attn.q_proj.bias", 1, 1, 1},
        {"self_attn.k_proj.weight", 2, 1, 1},     {"self_attn.v_proj.weight", 2, 1, 1},
        {"self_attn.v_proj.bias", 1, 1, 1},       {"self_attn.out_proj.weight", 2, 1, 1},
        {"self_attn.out_proj.bias", 1, 1, 1},     {"final_layer_norm.weight", 1, 1, 1},
        {"final_layer_norm.bias", 1, 1, 1},       {"fc1.weight", 2, 4, 1},
        {"fc1.bias", 1, 4, 1},                    {"fc2.weight", 2, 1, 4},
        {"fc2.bias", 1, 1, 1},
        {"encoder_attn_layer_norm.weight", 1, 1, 1}, {"encoder_attn_layer_norm.bias", 1, 1, 1},
        {"encoder_attn.q_proj.weight", 2, 1, 1},  {"encoder_attn.q_proj.bias", 1, 1, 1},
        {"encoder_attn.k_proj.weight", 2, 1, 1},  {"encoder_attn.v_proj.weight", 2, 1, 1},
        {"encoder_attn.v_proj.bias", 1, 1, 1},    {"encoder_attn.out_proj.weight", 2, 1, 1},
        {"encoder_attn.out_proj.bias", 1, 1, 1}};
    for (int side = 0; side < 2; side++)
        for (size_t i = 0; i < sizeof(layer) / sizeof(layer[0]); i++) {
            if (!side && i >= 15) /* cross-attention: decoder only */
                break;
            snprintf(nm, sizeof(nm), "%s.layers.0.%s", side ? "decoder" : "encoder", layer[i].s);
            n = st_add(t, n, pfx, nm, layer[i].rank, layer[i].a * C, layer[i].c * C, 1);
        }
    size_t es = strcmp(dtype, "F32") ? 2 : 4, off = 0;
    buf_t h = {0};
    const char *meta = "{\"__metadata__\": {\"format\": \"pt\"}";
    put(&h, meta, strlen(meta));
    for (int i = 0; i < n; i++) {
        size_t cnt = 1;
        char e[256];
        int len = snprintf(e, sizeof(e), ", \"%s\": {\"dtype\": \"%s\", \"shape\": [", t[i].name, dtype);
        put(&h, e, (size_t)len);
        for (int d = 0; d < t[i].rank; d++) {
            len = snprintf(e, sizeof(e), "%s%lld", d ? ", " : "", (long long)t[i].shape[d]);
            put(&h, e, (size_t)len);
            cnt *= (size_t)t[i].shape[d];
        }
        len = snprintf(e, sizeof(e), "], \"data_offsets\": [%zu, %zu]}", off, off + cnt * es);
        put(&h, e, (size_t)len);
        off += cnt * es;
    }
    put(&h, "}", 1);
    while (h.n % 8)
        put(&h, " ", 1);
    uint64_t hl = h.n;
    put(b, &hl, 8);
    put(b, h.p, h.n);
    for (size_t i = 0; i < off / es; i++) {
        if (es == 4)
            f32(b, (float)(1 + i % 9) / 16.0f);
        else
            u16(b, !strcmp(dtype, "F16") ? half_of(i) : (uint16_t)(0x3e00 + i % 64));
    }
    free(h.p);
}

/* ---- audio through libsndfile (what sox cannot write) ---- */

static void audio(const char *dir, const char *name, int format, int rate, int channels) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    SF_INFO info = {.samplerate = rate, .channels = channels, .format = format};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    if (!sf) {
        fprintf(stderr, "%s: %s (skipped)\n", path, sf_strerror(NULL));
        return;
    }
    int frames = rate / 10;
    float *pcm = malloc(sizeof(float) * (size_t)frames * (size_t)channels);
    for (int i = 0; i < frames * channels; i++)
        pcm[i] = 0.5f * sinf(2.0f * 3.14159265f * 440.0f * (float)(i / channels) / (float)rate);
    sf_writef_float(sf, pcm, frames);
    sf_close(sf);
    free(pcm);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
        return 2;
    }
    char dir[512];
    const char *root = argv[1];
    buf_t b = {0};
    size_t cuts[3];

    snprintf(dir, sizeof(dir), "%s/ggml", root);
    ggml_model(&b, 64, cuts);
    save(dir, "seed-tiny-f16.bin", b.p, b.n);
    save(dir, "seed-cut-hparams.bin", b.p, cuts[0] - 8);
    save(dir, "seed-cut-mel.bin", b.p, cuts[1] - 100);
    save(dir, "seed-hparams-only.bin", b.p, cuts[0]);
    save(dir, "seed-cut-vocab.bin", b.p, cuts[2] - 3);
    save(dir, "seed-cut-tensors.bin", b.p, cuts[2] + 40);
    /* a quantized tensor type (q4_0 = 2) right after the vocabulary */
    buf_t q = {0};
    put(&q, b.p, cuts[2]);
    u32(&q, 1); u32(&q, 4); u32(&q, 2); u32(&q, 32);
    put(&q, "qten", 4);
    for (int i = 0; i < 18; i++)
        u8(&q, 0);
    save(dir, "seed-quantized.bin", q.p, q.n);
    b.n = 0;
    ggml_model(&b, 0, cuts); /* no vocabulary: every token named by the loader */
    save(dir, "seed-tiny-novocab.bin", b.p, b.n);

    snprintf(dir, sizeof(dir), "%s/ct2", root);
    b.n = 0;
    ct2_model(&b, NV, 4, 0);
    save(dir, "seed-tiny-f16.bin", b.p, b.n);
    save(dir, "seed-header-only.bin", b.p, 4 + 2 + 12 + 4 + 4);
    save(dir, "seed-cut-first-var.bin", b.p, 4 + 2 + 12 + 4 + 4 + 30);
    b.n = 0;
    ct2_model(&b, NV, 5, 1); /* bf16, int8 conv1 with its scale */
    save(dir, "seed-tiny-bf16-int8.bin", b.p, b.n);
    b.n = 0;
    ct2_model(&b, NV, 0, 0);
    save(dir, "seed-tiny-f32.bin", b.p, b.n);
    /* a model with a small vocabulary and its own vocabulary.txt + config.json:
     * kiln_ct2_vocab_() reads the special tokens at their English-vocabulary
     * ids (50256 ...) past the end of an 8-token table (found by reading
     * the code; kept as a regression input) */
    b.n = 0;
    ct2_model(&b, 8, 4, 0);
    const char *sect = "\n@@vocabulary.txt@@\n<|endoftext|>\nhello\nĠworld\n\"\n#\n(\n)\n!\n"
                       "\n@@config.json@@\n{\"suppress_ids\": [1, 2, 99999, -5], "
                       "\"suppress_ids_begin\": [0, 7]}\n";
    put(&b, sect, strlen(sect));
    save(dir, "crash-small-vocab-oob.bin", b.p, b.n);

    snprintf(dir, sizeof(dir), "%s/hf", root);
    b.n = 0;
    st_model(&b, "model.", "F16");
    save(dir, "seed-tiny-f16.safetensors", b.p, b.n);
    save(dir, "seed-cut-header.safetensors", b.p, 600);
    save(dir, "seed-cut-data.safetensors", b.p, b.n - 1000);
    b.n = 0;
    st_model(&b, "", "BF16"); /* WhisperModel names: no "model." prefix */
    save(dir, "seed-tiny-bf16-noprefix.safetensors", b.p, b.n);
    b.n = 0;
    st_model(&b, "model.", "F32");
    /* its own side files: a tokenizer.json instead of vocab.json, suppress lists */
    const char *hsect =
        "\n@@config.json@@\n{\"d_model\": 1, \"encoder_layers\": 1, \"decoder_layers\": 1, "
        "\"encoder_attention_heads\": 1, \"decoder_attention_heads\": 1, \"num_mel_bins\": 80, "
        "\"max_source_positions\": 1, \"max_target_positions\": 1, \"vocab_size\": 51864}"
        "\n@@tokenizer.json@@\n{\"model\": {\"vocab\": {\"a\": 0, \"\\u0120b\": 1}}, "
        "\"added_tokens\": [{\"id\": 50257, \"content\": \"<|startoftranscript|>\"}, "
        "{\"id\": 50362, \"content\": \"<|notimestamps|>\"}, {\"id\": 99999, \"content\": \"x\"}]}"
        "\n@@generation_config.json@@\n{\"suppress_tokens\": [1, 220, -1, 99999], "
        "\"begin_suppress_tokens\": [220, 50256]}\n";
    put(&b, hsect, strlen(hsect));
    save(dir, "seed-tiny-f32-tokenizer.safetensors", b.p, b.n);
    free(b.p);
    free(q.p);

    snprintf(dir, sizeof(dir), "%s/audio", root);
    audio(dir, "seed-opus.ogg", SF_FORMAT_OGG | SF_FORMAT_OPUS, 48000, 1);
    audio(dir, "seed-mp3.mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, 22050, 1);
    audio(dir, "seed-rf64.wav", SF_FORMAT_RF64 | SF_FORMAT_PCM_16, 16000, 1);
    audio(dir, "seed-sds.sds", SF_FORMAT_SDS | SF_FORMAT_PCM_16, 16000, 1);
    audio(dir, "seed-mat5.mat", SF_FORMAT_MAT5 | SF_FORMAT_FLOAT, 16000, 2);
    audio(dir, "seed-dwvw.aiff", SF_FORMAT_AIFF | SF_FORMAT_DWVW_12, 16000, 1);
    audio(dir, "seed-alac.caf", SF_FORMAT_CAF | SF_FORMAT_ALAC_16, 16000, 1);
    audio(dir, "seed-g721.au", SF_FORMAT_AU | SF_FORMAT_G721_32, 8000, 1);
    audio(dir, "seed-msadpcm.wav", SF_FORMAT_WAV | SF_FORMAT_MS_ADPCM, 16000, 2);
    audio(dir, "seed-nms.wav", SF_FORMAT_WAV | SF_FORMAT_NMS_ADPCM_32, 8000, 1);
    return 0;
}
