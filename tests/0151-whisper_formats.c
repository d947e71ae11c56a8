/*
 * tests/0151-whisper_formats.c - the Whisper loaders on generated files:
 * one small random-weight model is written as a CTranslate2 directory, a
 * whisper.cpp ggml file and a Hugging Face directory (model.safetensors in
 * fp16 and in bf16, config.json, vocab.json + added_tokens.json or
 * tokenizer.json); all must load, give the same encoder output and the same
 * greedy tokens. Truncated and mis-shaped files, the whisper.cpp test
 * fixture (no tensor data) and a missing path must fail with a message
 * naming the file and the tensor. Needs no downloaded model.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/kernels.h"
#include "kiln/whisper.h"
#include "models/whisper/whisper_int.h"
#include "tests/test.h"
#include "tests/whisper_test_util.h"

#define C 64
#define NH 2
#define NM 80
#define TA 1500
#define TT 64
#define NV 51864

static uint64_t rs = 12345;
static float frand(void) { return kiln_wt_rand(&rs); }

/* float -> IEEE half (truncating; values here are normal or flushed to 0) */
static uint16_t f2h(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    uint32_t sign = (b >> 16) & 0x8000;
    int e = (int)((b >> 23) & 0xff) - 127 + 15;
    if (e <= 0)
        return (uint16_t)sign;
    if (e >= 31)
        return (uint16_t)(sign | 0x7bff);
    return (uint16_t)(sign | (e << 10) | ((b >> 13) & 0x3ff));
}

/* One generated tensor, in CTranslate2 naming (fused QKV / KV). */
typedef struct {
    char name[96];
    int rank;
    int64_t shape[3];
    float *v;
    size_t n;
} gt_t;
static gt_t T[128];
static int nT;

static gt_t *gen(const char *name, float scale, float offset, int rank, int64_t a, int64_t b,
                 int64_t c) {
    gt_t *t = &T[nT++];
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->rank = rank;
    t->shape[0] = a;
    t->shape[1] = b;
    t->shape[2] = c;
    t->n = (size_t)a * (rank > 1 ? b : 1) * (rank > 2 ? c : 1);
    t->v = malloc(t->n * sizeof(float));
    for (size_t i = 0; i < t->n; i++) { /* exact in half and in bfloat16: formats agree */
        float x = kiln_half_to_float(f2h(offset + scale * frand()));
        uint32_t bits = (uint32_t)kiln_wt_f2bf(x) << 16;
        memcpy(&x, &bits, 4);
        t->v[i] = x;
    }
    return t;
}
static gt_t *find(const char *name) {
    for (int i = 0; i < nT; i++)
        if (!strcmp(T[i].name, name))
            return &T[i];
    return NULL;
}

static void gen_model(void) {
    char n[128];
    gen("encoder/conv1/weight", 0.1f, 0, 3, C, NM, 3);
    gen("encoder/conv1/bias", 0.1f, 0, 1, C, 0, 0);
    gen("encoder/conv2/weight", 0.1f, 0, 3, C, C, 3);
    gen("encoder/conv2/bias", 0.1f, 0, 1, C, 0, 0);
    gen("encoder/position_encodings/encodings", 0.5f, 0, 2, TA, C, 0);
    gen("encoder/layer_norm/gamma", 0.1f, 1, 1, C, 0, 0);
    gen("encoder/layer_norm/beta", 0.1f, 0, 1, C, 0, 0);
    gen("decoder/embeddings/weight", 0.5f, 0, 2, NV, C, 0);
    gen("decoder/position_encodings/encodings", 0.5f, 0, 2, TT, C, 0);
    gen("decoder/layer_norm/gamma", 0.1f, 1, 1, C, 0, 0);
    gen("decoder/layer_norm/beta", 0.1f, 0, 1, C, 0, 0);
    for (int side = 0; side < 2; side++) {
        const char *p = side ? "decoder/layer_0" : "encoder/layer_0";
        const char *sub[] = {"self_attention", "attention", "ffn"};
        for (int s = 0; s < 3; s++) {
            if (!side && s == 1)
                continue;
            snprintf(n, sizeof(n), "%s/%s/layer_norm/gamma", p, sub[s]);
            gen(n, 0.1f, 1, 1, C, 0, 0);
            snprintf(n, sizeof(n), "%s/%s/layer_norm/beta", p, sub[s]);
            gen(n, 0.1f, 0, 1, C, 0, 0);
        }
        int64_t rows0 = 3 * C;
        snprintf(n, sizeof(n), "%s/self_attention/linear_0/weight", p);
        gen(n, 0.15f, 0, 2, rows0, C, 0);
        snprintf(n, sizeof(n), "%s/self_attention/linear_0/bias", p);
        gt_t *b = gen(n, 0.1f, 0, 1, rows0, 0, 0);
        for (int i = C; i < 2 * C; i++)
            b->v[i] = 0; /* whisper's key projection has no bias */
        snprintf(n, sizeof(n), "%s/self_attention/linear_1/weight", p);
        gen(n, 0.15f, 0, 2, C, C, 0);
        snprintf(n, sizeof(n), "%s/self_attention/linear_1/bias", p);
        gen(n, 0.1f, 0, 1, C, 0, 0);
        if (side) {
            gen("decoder/layer_0/attention/linear_0/weight", 0.15f, 0, 2, C, C, 0);
            gen("decoder/layer_0/attention/linear_0/bias", 0.1f, 0, 1, C, 0, 0);
            gen("decoder/layer_0/attention/linear_1/weight", 0.15f, 0, 2, 2 * C, C, 0);
            b = gen("decoder/layer_0/attention/linear_1/bias", 0.1f, 0, 1, 2 * C, 0, 0);
            for (int i = 0; i < C; i++)
                b->v[i] = 0;
            gen("decoder/layer_0/attention/linear_2/weight", 0.15f, 0, 2, C, C, 0);
            gen("decoder/layer_0/attention/linear_2/bias", 0.1f, 0, 1, C, 0, 0);
        }
        snprintf(n, sizeof(n), "%s/ffn/linear_0/weight", p);
        gen(n, 0.15f, 0, 2, 4 * C, C, 0);
        snprintf(n, sizeof(n), "%s/ffn/linear_0/bias", p);
        gen(n, 0.1f, 0, 1, 4 * C, 0, 0);
        snprintf(n, sizeof(n), "%s/ffn/linear_1/weight", p);
        gen(n, 0.1f, 0, 2, C, 4 * C, 0);
        snprintf(n, sizeof(n), "%s/ffn/linear_1/bias", p);
        gen(n, 0.1f, 0, 1, C, 0, 0);
    }
}

static void ct2_str(FILE *fp, const char *s) {
    uint16_t n = (uint16_t)(strlen(s) + 1);
    fwrite(&n, 2, 1, fp);
    fwrite(s, 1, n, fp);
}

/* Writes model.bin (2-D+ tensors as f16, others f32) and vocabulary.txt. */
static void write_ct2(const char *dir, int bad_shape) {
    char path[512];
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/model.bin", dir);
    FILE *fp = fopen(path, "wb");
    uint32_t u = 6, nv = (uint32_t)nT + 2;
    fwrite(&u, 4, 1, fp);
    ct2_str(fp, "WhisperSpec");
    u = 3;
    fwrite(&u, 4, 1, fp);
    fwrite(&nv, 4, 1, fp);
    for (int i = 0; i < 2; i++) {
        ct2_str(fp, i ? "decoder/num_heads" : "encoder/num_heads");
        uint8_t rank = 0, dt = 2;
        uint32_t nb = 2;
        int16_t h = NH;
        fwrite(&rank, 1, 1, fp);
        fwrite(&dt, 1, 1, fp);
        fwrite(&nb, 4, 1, fp);
        fwrite(&h, 2, 1, fp);
    }
    for (int i = 0; i < nT; i++) {
        gt_t *t = &T[i];
        ct2_str(fp, t->name);
        uint8_t rank = (uint8_t)t->rank, dt = t->rank > 1 ? 4 : 0;
        fwrite(&rank, 1, 1, fp);
        for (int d = 0; d < t->rank; d++) {
            uint32_t dim = (uint32_t)t->shape[d];
            if (bad_shape && i == 0 && d == 2)
                dim = 1; /* conv1 kernel width 1 instead of 3 */
            fwrite(&dim, 4, 1, fp);
        }
        fwrite(&dt, 1, 1, fp);
        uint32_t nb = (uint32_t)(t->n * (dt == 4 ? 2 : 4));
        fwrite(&nb, 4, 1, fp);
        for (size_t k = 0; k < t->n; k++) {
            if (dt == 4) {
                uint16_t h = f2h(t->v[k]);
                fwrite(&h, 2, 1, fp);
            } else {
                fwrite(&t->v[k], 4, 1, fp);
            }
        }
    }
    u = 0;
    fwrite(&u, 4, 1, fp);
    fclose(fp);
    snprintf(path, sizeof(path), "%s/vocabulary.txt", dir);
    fp = fopen(path, "w");
    kiln_wvocab_t v;
    memset(&v, 0, sizeof(v));
    kiln_whisper_vocab_specials(&v, NV);
    for (int id = 0; id < NV; id++) {
        if (id == v.sot) fprintf(fp, "<|startoftranscript|>\n");
        else if (id == v.eot) fprintf(fp, "<|endoftext|>\n");
        else if (id == v.no_timestamps) fprintf(fp, "<|notimestamps|>\n");
        else if (id >= v.timestamp_begin) fprintf(fp, "<|%.2f|>\n", (id - v.timestamp_begin) * 0.02);
        else fprintf(fp, "t%d\n", id);
    }
    fclose(fp);
}

/* ggml: the same weights, openai names, separate q/k/v, ne innermost first. */
static void ggml_tensor(FILE *fp, const char *name, const float *v, int rank,
                        const int64_t *shape, int f16) {
    int32_t nd = rank, nl = (int32_t)strlen(name), ty = f16;
    fwrite(&nd, 4, 1, fp);
    fwrite(&nl, 4, 1, fp);
    fwrite(&ty, 4, 1, fp);
    size_t n = 1;
    for (int d = rank - 1; d >= 0; d--) {
        int32_t ne = (int32_t)shape[d];
        fwrite(&ne, 4, 1, fp);
        n *= (size_t)shape[d];
    }
    fwrite(name, 1, (size_t)nl, fp);
    for (size_t k = 0; k < n; k++) {
        if (f16) {
            uint16_t h = f2h(v[k]);
            fwrite(&h, 2, 1, fp);
        } else {
            fwrite(&v[k], 4, 1, fp);
        }
    }
}

static void write_ggml(const char *path) {
    FILE *fp = fopen(path, "wb");
    int32_t h[12] = {0x67676d6c, NV, TA, C, NH, 1, TT, C, NH, 1, NM, 1};
    fwrite(h, 4, 12, fp);
    int32_t nm = NM, nf = 201, nw = 0;
    fwrite(&nm, 4, 1, fp);
    fwrite(&nf, 4, 1, fp);
    float *fb = malloc(sizeof(float) * NM * 201);
    kiln_whisper_mel_filters(fb, NM, 400, 16000);
    fwrite(fb, 4, NM * 201, fp);
    free(fb);
    fwrite(&nw, 4, 1, fp);
    static const char *map[][2] = {
        {"encoder/conv1/weight", "encoder.conv1.weight"}, {"encoder/conv1/bias", "encoder.conv1.bias"},
        {"encoder/conv2/weight", "encoder.conv2.weight"}, {"encoder/conv2/bias", "encoder.conv2.bias"},
        {"encoder/position_encodings/encodings", "encoder.positional_embedding"},
        {"encoder/layer_norm/gamma", "encoder.ln_post.weight"}, {"encoder/layer_norm/beta", "encoder.ln_post.bias"},
        {"decoder/embeddings/weight", "decoder.token_embedding.weight"},
        {"decoder/position_encodings/encodings", "decoder.positional_embedding"},
        {"decoder/layer_norm/gamma", "decoder.ln.weight"}, {"decoder/layer_norm/beta", "decoder.ln.bias"}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        gt_t *t = find(map[i][0]);
        ggml_tensor(fp, map[i][1], t->v, t->rank, t->shape, t->rank > 1);
    }
    int64_t cc[2] = {C, C}, c1[1] = {C}, f1[2] = {4 * C, C}, f2[2] = {C, 4 * C}, f1b[1] = {4 * C};
    char a[128], b[128];
    for (int side = 0; side < 2; side++) {
        const char *p = side ? "decoder/layer_0" : "encoder/layer_0";
        const char *q = side ? "decoder.blocks.0" : "encoder.blocks.0";
#define G(src, dst, off, rank, shape)                                                    \
    do {                                                                                 \
        snprintf(a, sizeof(a), "%s/%s", p, src);                                         \
        snprintf(b, sizeof(b), "%s.%s", q, dst);                                         \
        ggml_tensor(fp, b, find(a)->v + (off), rank, shape, rank > 1);                   \
    } while (0)
        G("self_attention/layer_norm/gamma", "attn_ln.weight", 0, 1, c1);
        G("self_attention/layer_norm/beta", "attn_ln.bias", 0, 1, c1);
        G("self_attention/linear_0/weight", "attn.query.weight", 0, 2, cc);
        G("self_attention/linear_0/weight", "attn.key.weight", C * C, 2, cc);
        G("self_attention/linear_0/weight", "attn.value.weight", 2 * C * C, 2, cc);
        G("self_attention/linear_0/bias", "attn.query.bias", 0, 1, c1);
        G("self_attention/linear_0/bias", "attn.value.bias", 2 * C, 1, c1);
        G("self_attention/linear_1/weight", "attn.out.weight", 0, 2, cc);
        G("self_attention/linear_1/bias", "attn.out.bias", 0, 1, c1);
        if (side) {
            G("attention/layer_norm/gamma", "cross_attn_ln.weight", 0, 1, c1);
            G("attention/layer_norm/beta", "cross_attn_ln.bias", 0, 1, c1);
            G("attention/linear_0/weight", "cross_attn.query.weight", 0, 2, cc);
            G("attention/linear_0/bias", "cross_attn.query.bias", 0, 1, c1);
            G("attention/linear_1/weight", "cross_attn.key.weight", 0, 2, cc);
            G("attention/linear_1/weight", "cross_attn.value.weight", C * C, 2, cc);
            G("attention/linear_1/bias", "cross_attn.value.bias", C, 1, c1);
            G("attention/linear_2/weight", "cross_attn.out.weight", 0, 2, cc);
            G("attention/linear_2/bias", "cross_attn.out.bias", 0, 1, c1);
        }
        G("ffn/layer_norm/gamma", "mlp_ln.weight", 0, 1, c1);
        G("ffn/layer_norm/beta", "mlp_ln.bias", 0, 1, c1);
        G("ffn/linear_0/weight", "mlp.0.weight", 0, 2, f1);
        G("ffn/linear_0/bias", "mlp.0.bias", 0, 1, f1b);
        G("ffn/linear_1/weight", "mlp.2.weight", 0, 2, f2);
        G("ffn/linear_1/bias", "mlp.2.bias", 0, 1, c1);
#undef G
    }
    fclose(fp);
}


/* ---- Hugging Face: model.safetensors + config.json + tokenizer files ---- */

static int hf_add(kiln_wt_tensor_t *h, int n, const char *name, const char *src, size_t off,
                  int rank, int64_t a, int64_t b) {
    snprintf(h[n].name, sizeof(h[n].name), "%s", name);
    h[n].v = find(src)->v + off;
    h[n].rank = rank;
    h[n].shape[0] = a;
    h[n].shape[1] = b;
    h[n].shape[2] = 3;
    return n + 1;
}

/*
 * Writes the same weights in transformers' naming. bf16: BF16 tensors (else
 * F16); prefix "model." or ""; tokjson: tokenizer.json (else vocab.json +
 * added_tokens.json); bad_shape: conv1 kernel width 1.
 */
static void write_hf(const char *dir, int bf16, const char *pfx, int tokjson, int bad_shape) {
    static kiln_wt_tensor_t h[64];
    int n = 0;
    char a[160], b[160], q2[160];
    mkdir(dir, 0755);
#define A(dst, src, off, rank, x, y)                                                     \
    do {                                                                                 \
        snprintf(a, sizeof(a), "%s%s", pfx, dst);                                        \
        n = hf_add(h, n, a, src, off, rank, x, y);                                       \
    } while (0)
    A("encoder.conv1.weight", "encoder/conv1/weight", 0, 3, C, NM);
    A("encoder.conv1.bias", "encoder/conv1/bias", 0, 1, C, 0);
    A("encoder.conv2.weight", "encoder/conv2/weight", 0, 3, C, C);
    A("encoder.conv2.bias", "encoder/conv2/bias", 0, 1, C, 0);
    A("encoder.embed_positions.weight", "encoder/position_encodings/encodings", 0, 2, TA, C);
    A("encoder.layer_norm.weight", "encoder/layer_norm/gamma", 0, 1, C, 0);
    A("encoder.layer_norm.bias", "encoder/layer_norm/beta", 0, 1, C, 0);
    A("decoder.embed_tokens.weight", "decoder/embeddings/weight", 0, 2, NV, C);
    A("decoder.embed_positions.weight", "decoder/position_encodings/encodings", 0, 2, TT, C);
    A("decoder.layer_norm.weight", "decoder/layer_norm/gamma", 0, 1, C, 0);
    A("decoder.layer_norm.bias", "decoder/layer_norm/beta", 0, 1, C, 0);
    for (int side = 0; side < 2; side++) {
        const char *p = side ? "decoder/layer_0" : "encoder/layer_0";
        const char *q = side ? "decoder.layers.0" : "encoder.layers.0";
#define L(dst, src, off, rank, x, y)                                                     \
    do {                                                                                 \
        snprintf(q2, sizeof(q2), "%s.%s", q, dst);                                       \
        snprintf(b, sizeof(b), "%s/%s", p, src);                                         \
        A(q2, b, off, rank, x, y);                                                       \
    } while (0)
        L("self_attn_layer_norm.weight", "self_attention/layer_norm/gamma", 0, 1, C, 0);
        L("self_attn_layer_norm.bias", "self_attention/layer_norm/beta", 0, 1, C, 0);
        L("self_attn.q_proj.weight", "self_attention/linear_0/weight", 0, 2, C, C);
        L("self_attn.q_proj.bias", "self_attention/linear_0/bias", 0, 1, C, 0);
        L("self_attn.k_proj.weight", "self_attention/linear_0/weight", C * C, 2, C, C);
        L("self_attn.v_proj.weight", "self_attention/linear_0/weight", 2 * C * C, 2, C, C);
        L("self_attn.v_proj.bias", "self_attention/linear_0/bias", 2 * C, 1, C, 0);
        L("self_attn.out_proj.weight", "self_attention/linear_1/weight", 0, 2, C, C);
        L("self_attn.out_proj.bias", "self_attention/linear_1/bias", 0, 1, C, 0);
        if (side) {
            L("encoder_attn_layer_norm.weight", "attention/layer_norm/gamma", 0, 1, C, 0);
            L("encoder_attn_layer_norm.bias", "attention/layer_norm/beta", 0, 1, C, 0);
            L("encoder_attn.q_proj.weight", "attention/linear_0/weight", 0, 2, C, C);
            L("encoder_attn.q_proj.bias", "attention/linear_0/bias", 0, 1, C, 0);
            L("encoder_attn.k_proj.weight", "attention/linear_1/weight", 0, 2, C, C);
            L("encoder_attn.v_proj.weight", "attention/linear_1/weight", C * C, 2, C, C);
            L("encoder_attn.v_proj.bias", "attention/linear_1/bias", C, 1, C, 0);
            L("encoder_attn.out_proj.weight", "attention/linear_2/weight", 0, 2, C, C);
            L("encoder_attn.out_proj.bias", "attention/linear_2/bias", 0, 1, C, 0);
        }
        L("final_layer_norm.weight", "ffn/layer_norm/gamma", 0, 1, C, 0);
        L("final_layer_norm.bias", "ffn/layer_norm/beta", 0, 1, C, 0);
        L("fc1.weight", "ffn/linear_0/weight", 0, 2, 4 * C, C);
        L("fc1.bias", "ffn/linear_0/bias", 0, 1, 4 * C, 0);
        L("fc2.weight", "ffn/linear_1/weight", 0, 2, C, 4 * C);
        L("fc2.bias", "ffn/linear_1/bias", 0, 1, C, 0);
#undef L
    }
#undef A
    char path[512];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    FILE *fp = fopen(path, "wb");
    kiln_wt_safetensors_header(fp, h, n, bf16 ? "BF16" : "F16", bad_shape ? 0 : -1, 2, 1);
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < kiln_wt_numel(&h[i]); k++) {
            uint16_t x = bf16 ? kiln_wt_f2bf(h[i].v[k]) : f2h(h[i].v[k]);
            fwrite(&x, 2, 1, fp);
        }
    }
    fclose(fp);
    kiln_wt_hf_config(dir, C, 1, 1, NH, NM, TA, TT, NV);
    /* vocabulary: byte-level text "t<id>" for ordinary tokens; specials as added tokens
     * (timestamps left unnamed, as older tokenizers do) */
    kiln_wvocab_t v;
    memset(&v, 0, sizeof(v));
    kiln_whisper_vocab_specials(&v, NV);
    snprintf(path, sizeof(path), "%s/%s", dir, tokjson ? "tokenizer.json" : "vocab.json");
    fp = fopen(path, "w");
    fprintf(fp, tokjson ? "{\"model\":{\"type\":\"BPE\",\"vocab\":{" : "{");
    for (int id = 0; id < v.eot; id++)
        fprintf(fp, "%s\"t%d\":%d", id ? "," : "", id, id);
    fprintf(fp, ",\"<|endoftext|>\":%d}", v.eot);
    if (tokjson)
        fprintf(fp, "},\"added_tokens\":[{\"id\":%d,\"content\":\"<|startoftranscript|>\"},"
                    "{\"id\":%d,\"content\":\"<|notimestamps|>\"}]}",
                v.sot, v.no_timestamps);
    fprintf(fp, "\n");
    fclose(fp);
    if (!tokjson) {
        snprintf(path, sizeof(path), "%s/added_tokens.json", dir);
        fp = fopen(path, "w");
        fprintf(fp, "{\"<|startoftranscript|>\":%d,\"<|notimestamps|>\":%d}\n", v.sot,
                v.no_timestamps);
        fclose(fp);
    }
}

/* Copies the first \p keep bytes of \p src to \p dst. */
static void truncate_copy(const char *src, const char *dst, long keep) {
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    char buf[65536];
    long left = keep;
    while (left > 0) {
        size_t n = fread(buf, 1, left < (long)sizeof(buf) ? (size_t)left : sizeof(buf), in);
        if (n == 0)
            break;
        fwrite(buf, 1, n, out);
        left -= (long)n;
    }
    fclose(in);
    fclose(out);
}

static long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static void expect_fail(const char *path, const char *must1, const char *must2) {
    char err[512] = "";
    kiln_whisper_model_t *m = kiln_whisper_model_load(path, err, sizeof(err));
    TEST_CHECK(m == NULL, "%s loaded", path);
    kiln_whisper_model_destroy(m);
    TEST_CHECK(strstr(err, must1) && (!must2 || strstr(err, must2)),
               "message \"%s\" lacks \"%s\"/\"%s\"", err, must1, must2 ? must2 : "");
    printf("# %s\n", err);
}

int main(void) {
    char dir[] = "/tmp/kiln-0151-XXXXXX", ct2[64], ggml[64], hf[64], hfb[64], tmp[800], err[512];
    TEST_ASSERT(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(ct2, sizeof(ct2), "%s/ct2", dir);
    snprintf(ggml, sizeof(ggml), "%s/ggml-rand.bin", dir);
    snprintf(hf, sizeof(hf), "%s/hf", dir);
    snprintf(hfb, sizeof(hfb), "%s/hf-bf16", dir);
    gen_model();
    write_ct2(ct2, 0);
    write_ggml(ggml);
    write_hf(hf, 0, "model.", 0, 0);
    write_hf(hfb, 1, "", 1, 0);

    SUB_TEST("random-weight model loads from CTranslate2, ggml and HF (f16, bf16) files");
    kiln_whisper_model_t *mc = kiln_whisper_model_load(ct2, err, sizeof(err));
    TEST_ASSERT(mc != NULL, "ct2: %s", err);
    kiln_whisper_model_t *mg = kiln_whisper_model_load(ggml, err, sizeof(err));
    TEST_ASSERT(mg != NULL, "ggml: %s", err);
    kiln_whisper_model_t *mh = kiln_whisper_model_load(hf, err, sizeof(err));
    TEST_ASSERT(mh != NULL, "hf: %s", err);
    snprintf(tmp, sizeof(tmp), "%s/model.safetensors", hfb);
    kiln_whisper_model_t *mb = kiln_whisper_model_load(tmp, err, sizeof(err));
    TEST_ASSERT(mb != NULL, "hf bf16: %s", err);
    const kiln_whisper_hparams_t *a = kiln_whisper_model_hparams(mc), *b = kiln_whisper_model_hparams(mg);
    TEST_CHECK(!memcmp(a, b, sizeof(*a)), "hparams differ");
    TEST_CHECK(!memcmp(a, kiln_whisper_model_hparams(mh), sizeof(*a)) &&
                   !memcmp(a, kiln_whisper_model_hparams(mb), sizeof(*a)), "hf hparams differ");
    TEST_CHECK(!strcmp(kiln_whisper_model_format(mh), "hf"), "hf format");
    TEST_CHECK(!strcmp(kiln_whisper_token_text(mh, 1234), "t1234") &&
                   !strcmp(kiln_whisper_token_text(mb, 50363), "<|0.00|>"), "hf vocabulary");
    TEST_CHECK(a->n_audio_state == C && a->n_audio_head == NH && a->n_text_ctx == TT &&
                   a->n_audio_layer == 1 && a->n_vocab == NV, "ct2 hparams wrong");
    TEST_CHECK(!strcmp(kiln_whisper_model_format(mc), "ct2") &&
                   !strcmp(kiln_whisper_model_format(mg), "ggml"), "formats");
    SUB_TEST_PASS();

    SUB_TEST("all formats give the same encoder output and the same greedy tokens");
    {
        size_t N = 5 * 16000;
        float *pcm = malloc(N * sizeof(float));
        for (size_t i = 0; i < N; i++)
            pcm[i] = 0.3f * sinf((float)i * 0.05f) + 0.05f * frand();
        float *mel, *ea = malloc(sizeof(float) * TA * C), *eb = malloc(sizeof(float) * TA * C);
        float *win = calloc((size_t)NM * 3000, sizeof(float));
        int nf;
        TEST_ASSERT(kiln_whisper_log_mel(mc, pcm, N, &mel, &nf) == KILN_OK, "mel");
        TEST_CHECK(nf == (int)(N / 160 + 1), "%d frames", nf);
        for (int m = 0; m < NM; m++)
            memcpy(win + m * 3000, mel + (size_t)m * nf, sizeof(float) * (nf - 1));
        kiln_whisper_encode(mc, win, 1, ea);
        kiln_whisper_encode(mg, win, 1, eb);
        double e = kiln_nmse(eb, ea, (size_t)TA * C);
        TEST_CHECK(e < 1e-12, "encoder nmse %g", e);
        kiln_whisper_encode(mh, win, 1, eb);
        e = kiln_nmse(eb, ea, (size_t)TA * C);
        TEST_CHECK(e < 1e-12, "hf encoder nmse %g", e);
        kiln_whisper_encode(mb, win, 1, eb);
        e = kiln_nmse(eb, ea, (size_t)TA * C);
        TEST_CHECK(e < 1e-12, "hf bf16 encoder nmse %g", e);
        kiln_whisper_params_t p = kiln_whisper_greedy_params();
        p.no_speech_skip = 2.0f;
        p.no_speech_threshold = 2.0f; /* random weights: decode whatever comes */
        const float *pc[1] = {pcm};
        size_t ns[1] = {N};
        kiln_whisper_result_t ra, rb;
        memset(&ra, 0, sizeof(ra));
        memset(&rb, 0, sizeof(rb));
        TEST_CHECK(kiln_whisper_transcribe(mc, &p, pc, ns, 1, &ra) == KILN_OK, "ct2 run");
        TEST_CHECK(kiln_whisper_transcribe(mg, &p, pc, ns, 1, &rb) == KILN_OK, "ggml run");
        TEST_CHECK(ra.n_windows >= 1 && ra.n_windows == rb.n_windows, "windows %d %d",
                   ra.n_windows, rb.n_windows);
        TEST_CHECK(ra.n_tokens == rb.n_tokens &&
                       !memcmp(ra.tokens, rb.tokens, sizeof(int) * ra.n_tokens),
                   "tokens differ (%d vs %d)", ra.n_tokens, rb.n_tokens);
        printf("# random model: %d tokens, %d segments\n", ra.n_tokens, ra.n_segments);
        for (int k = 0; k < 2; k++) {
            kiln_whisper_result_clear(&rb);
            TEST_CHECK(kiln_whisper_transcribe(k ? mb : mh, &p, pc, ns, 1, &rb) == KILN_OK,
                       "hf run");
            TEST_CHECK(ra.n_tokens == rb.n_tokens &&
                           !memcmp(ra.tokens, rb.tokens, sizeof(int) * ra.n_tokens),
                       "hf%s tokens differ (%d vs %d)", k ? " bf16" : "", ra.n_tokens,
                       rb.n_tokens);
        }
        kiln_whisper_result_clear(&ra);
        kiln_whisper_result_clear(&rb);
        free(pcm);
        free(mel);
        free(ea);
        free(eb);
        free(win);
    }
    SUB_TEST_PASS();
    kiln_whisper_model_destroy(mc);
    kiln_whisper_model_destroy(mg);
    kiln_whisper_model_destroy(mh);
    kiln_whisper_model_destroy(mb);

    SUB_TEST("truncated CTranslate2, ggml and HF files fail naming file and tensor");
    {
        char bin[128], tdir[128];
        snprintf(bin, sizeof(bin), "%s/model.bin", ct2);
        snprintf(tdir, sizeof(tdir), "%s/trunc", dir);
        write_ct2(tdir, 0); /* vocabulary alongside */
        snprintf(tmp, sizeof(tmp), "%s/model.bin", tdir);
        long sz = file_size(bin);
        truncate_copy(bin, tmp, sz * 6 / 10);
        expect_fail(tdir, "truncated in tensor", tmp);
        truncate_copy(bin, tmp, 10);
        expect_fail(tdir, "truncated", tmp);
        snprintf(tmp, sizeof(tmp), "%s/trunc.bin", dir);
        truncate_copy(ggml, tmp, file_size(ggml) * 6 / 10);
        expect_fail(tmp, "truncated in tensor", tmp);
        truncate_copy(ggml, tmp, 30);
        expect_fail(tmp, "truncated", tmp);
        char sft[128], tsft[160];
        snprintf(sft, sizeof(sft), "%s/model.safetensors", hf);
        snprintf(tdir, sizeof(tdir), "%s/hf-trunc", dir);
        write_hf(tdir, 0, "model.", 0, 0);
        snprintf(tsft, sizeof(tsft), "%s/model.safetensors", tdir);
        truncate_copy(sft, tsft, file_size(sft) * 6 / 10);
        expect_fail(tdir, "truncated in tensor \"model.decoder.embed_tokens.weight\"", tsft);
        truncate_copy(sft, tsft, 6);
        expect_fail(tdir, "too short", tsft);
        truncate_copy(sft, tsft, 100);
        expect_fail(tdir, "safetensors header", tsft);
    }
    SUB_TEST_PASS();

    SUB_TEST("a tensor of the wrong shape, a missing file, the whisper.cpp fixture");
    {
        char tsft2[900];
        snprintf(tmp, sizeof(tmp), "%s/badshape", dir);
        write_ct2(tmp, 1);
        expect_fail(tmp, "could not load \"", "\"encoder/conv1/weight\" has shape [64, 80, 1], expected [64, 80, 3]");
        snprintf(tmp, sizeof(tmp), "%s/hf-badshape", dir);
        write_hf(tmp, 0, "model.", 0, 1);
        expect_fail(tmp, "model.safetensors\": tensor \"model.encoder.conv1.weight\" has shape "
                         "[64, 80, 1], expected [64, 80, 3]", NULL);
        snprintf(tmp, sizeof(tmp), "%s/hf-noconfig", dir);
        write_hf(tmp, 0, "model.", 0, 0);
        snprintf(tsft2, sizeof(tsft2), "%s/config.json", tmp);
        unlink(tsft2);
        expect_fail(tmp, "config.json", "missing");
        snprintf(tmp, sizeof(tmp), "%s/none", dir);
        expect_fail(tmp, "could not open \"", "No such file");
        const char *fx = "../shared/data/models/whisper.cpp-test-fixtures/for-tests-ggml-tiny.en.bin";
        if (file_size(fx) > 0)
            expect_fail(fx, "for-tests-ggml-tiny.en.bin", "tensor \"");
        else
            printf("# whisper.cpp fixture absent, not checked\n");
    }
    SUB_TEST_PASS();

    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return TEST_DONE();
}
