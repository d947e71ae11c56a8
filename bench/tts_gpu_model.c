/*
 * bench/tts_gpu_model.c - speech synthesis on a device backend: the real
 * voice code (kiln_voice_synth_ids: text encoder and duration predictor on
 * the CPU, the flow and the HiFi-GAN decoder as one ragged batch of im2col
 * + matmul ops, models/voice/vits_dev.c) on ready phoneme ids, so that it
 * needs no espeak-ng (bench/gpu.sh runs it on CUDA).
 *
 *   tts_gpu_model --voice DIR --ids FILE [--backend cuda] [--precision fp32[,fp16..]]
 *                 [--batches 1,16,64] [--min-seconds 60] [--reps 3] [--sentences N]
 *                 [--parity N] [--device-samples N] [--threads N] [--cpu-compare]
 *                 [--gpu NAME] [--json PATH]
 *
 * FILE holds one sentence per line, its phoneme ids space-separated
 * (bench/tts_ids.txt: the 52 sentences of `kiln bench tts`, made by
 * tests/tools/voice_ids); --sentences uses only the first N. The voice is
 * loaded twice: once on --backend, once on the CPU engine (the reference).
 * All calls use the voice's default scales and seed 1 (sequence b of a call
 * draws its noise from seed + b * 0x9e3779b9: the same sentence at another
 * place in a batch gets other durations). Per precision, in order:
 *   warm-up   one call of 2 sentences (device start-up, workspace);
 *   parity    the first --parity sentences (default all) in one call on the
 *             backend and on the CPU: durations must be identical, and the
 *             per-sentence SNR (dB) is reported as min / median; in fp32 a
 *             min under 40 dB fails (exit 1), other precisions only report;
 *   request   the first k sentences (cycled) whose audio totals at least
 *             --min-seconds, in ONE kiln_voice_synth_ids call: wall ms,
 *             median of --reps;
 *   batches   per batch size B, a pass over the corpus (ceil(n / B) * B
 *             sentences, cycled) in calls of B: audio seconds per wall
 *             second (x real time), median of --reps passes.
 * --cpu-compare then times the CPU engine at batch 1 and 16 the same way
 * (ratio = backend / cpu, against the first precision). The goals of
 * issue 7 are checked per precision and on the best of them: the request
 * (>= 60 s of audio) in <= 100 ms, and >= 3000x real time at some batch > 1.
 *
 * Output: a table on stdout, and with --json one JSON object, rewritten
 * after every measurement (a run stopped by a timeout leaves a valid file).
 * The GPU's name comes from --gpu, else $KILN_GPU_NAME.
 * Exit: 0; 1 on a failure or a parity failure; 2 on a usage error.
 *
 * Build: bench/gpu.sh (on a GPU machine, or GPU_SH_BUILD_ONLY=1), or
 * make [CUDA=1] $(BUILD)/bench/tts_gpu_model.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kiln/kernels.h"
#include "kiln/voice.h"

#define TG_MAX_BATCHES 16
#define TG_MAX_REPS 64

/* the phoneme-id sentences of --ids */
typedef struct {
    int **ids;
    int *n_ids;
    int n;
} tg_corpus_t;

typedef struct {
    const char *voice, *ids, *backend, *precision, *json, *gpu;
    int batches[TG_MAX_BATCHES], n_batches, reps, sentences, parity, threads, cpu_compare;
    double min_seconds;
    size_t device_samples;
} tg_opts_t;

static double tg_now_(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* @returns the median of x[0, n) (sorts x). */
static int tg_cmp_(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double tg_median_(double *x, int n) {
    if (n <= 0)
        return 0;
    qsort(x, (size_t)n, sizeof(*x), tg_cmp_);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* @returns the SNR of x against ref in dB (999 when equal). */
static double tg_snr_db_(const float *x, const float *ref, size_t n) {
    double s = 0, e = 0;
    for (size_t i = 0; i < n; i++) {
        s += (double)ref[i] * ref[i];
        e += ((double)x[i] - ref[i]) * ((double)x[i] - ref[i]);
    }
    return e == 0 ? 999.0 : 10.0 * log10(s / e);
}

static void tg_corpus_free_(tg_corpus_t *c) {
    for (int i = 0; i < c->n; i++)
        free(c->ids[i]);
    free(c->ids);
    free(c->n_ids);
    memset(c, 0, sizeof(*c));
}

/* Reads one sentence of ids per line (blank lines skipped). @returns 0, -1 with a message. */
static int tg_corpus_read_(const char *path, tg_corpus_t *c) {
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "tts_gpu_model: could not open \"%s\": %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    while (!rc && getline(&line, &cap, fp) > 0) {
        lineno++;
        int n = 0, *ids = malloc(sizeof(int) * (strlen(line) / 2 + 1));
        char *s = line, *end;
        for (long v; ids && (v = strtol(s, &end, 10), end != s); s = end)
            ids[n++] = (int)v;
        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
            s++;
        if (!ids || *s) {
            fprintf(stderr, "tts_gpu_model: could not read \"%s\" line %d: %s\n", path, lineno,
                    ids ? "not a list of integers" : "out of memory");
            rc = -1;
        } else if (n > 0) {
            int **ni = realloc(c->ids, sizeof(int *) * (size_t)(c->n + 1));
            int *nn = ni ? realloc(c->n_ids, sizeof(int) * (size_t)(c->n + 1)) : NULL;
            if (ni)
                c->ids = ni;
            if (nn)
                c->n_ids = nn;
            if (!nn) {
                fprintf(stderr, "tts_gpu_model: out of memory\n");
                rc = -1;
            } else {
                c->ids[c->n] = ids;
                c->n_ids[c->n++] = n;
                ids = NULL;
            }
        }
        free(ids);
    }
    free(line);
    fclose(fp);
    if (!rc && c->n == 0) {
        fprintf(stderr, "tts_gpu_model: \"%s\" holds no sentences\n", path);
        rc = -1;
    }
    return rc;
}

/*
 * One kiln_voice_synth_ids call on the sentences first .. first + B - 1 of
 * the corpus (cycled). The audio goes to out[0, B) when out is not NULL
 * (the caller clears it), else it is freed.
 * @returns the wall seconds, or -1 (message printed); *audio_s: its length.
 */
static double tg_call_(kiln_voice_t *v, const tg_corpus_t *c, int first, int B,
                       const kiln_voice_params_t *p, double *audio_s, kiln_voice_audio_t *out) {
    const int **ids = malloc(sizeof(*ids) * (size_t)B);
    int *n_ids = malloc(sizeof(int) * (size_t)B);
    kiln_voice_audio_t *a = out ? out : calloc((size_t)B, sizeof(*a));
    double t = -1;
    char err[512];
    if (!ids || !n_ids || !a) {
        fprintf(stderr, "tts_gpu_model: out of memory\n");
        goto done;
    }
    for (int b = 0; b < B; b++) {
        ids[b] = c->ids[(first + b) % c->n];
        n_ids[b] = c->n_ids[(first + b) % c->n];
    }
    double t0 = tg_now_();
    kiln_err_t e = kiln_voice_synth_ids(v, ids, n_ids, B, p, a, err, sizeof(err));
    t = tg_now_() - t0;
    if (e != KILN_OK) {
        fprintf(stderr, "tts_gpu_model: could not synthesise %d sentences on %s: %s\n", B,
                kiln_voice_backend(v), err);
        t = -1;
        goto done;
    }
    size_t ns = 0;
    for (int b = 0; b < B; b++)
        ns += a[b].n_samples;
    *audio_s = (double)ns / kiln_voice_sample_rate(v);
done:
    if (!out && a)
        for (int b = 0; b < B; b++)
            kiln_voice_audio_clear(&a[b]);
    if (!out)
        free(a);
    free(ids);
    free(n_ids);
    return t;
}

/*
 * One pass over the corpus in calls of B sentences: ceil(n / B) calls.
 * @returns the wall seconds, -1 on failure; *audio_s: the audio of the pass.
 */
static double tg_pass_(kiln_voice_t *v, const tg_corpus_t *c, int B,
                       const kiln_voice_params_t *p, double *audio_s) {
    double wall = 0, au;
    *audio_s = 0;
    for (int first = 0; first < c->n; first += B) {
        double t = tg_call_(v, c, first, B, p, &au, NULL);
        if (t < 0)
            return -1;
        wall += t;
        *audio_s += au;
    }
    return wall;
}

/*
 * Times --reps passes at batch B on v. @returns a JSON row
 * {batch, calls, sentences, audio_s, wall_s, x_realtime, x_realtime_all},
 * or NULL on failure.
 */
static json_t *tg_batch_row_(kiln_voice_t *v, const tg_corpus_t *c, int B,
                             const kiln_voice_params_t *p, int reps) {
    double xr[TG_MAX_REPS], wall[TG_MAX_REPS], audio = 0;
    json_t *all = json_array();
    for (int r = 0; r < reps; r++) {
        if ((wall[r] = tg_pass_(v, c, B, p, &audio)) < 0) {
            json_decref(all);
            return NULL;
        }
        xr[r] = audio / wall[r];
        json_array_append_new(all, json_real(xr[r]));
    }
    int calls = (c->n + B - 1) / B;
    return json_pack("{si si si sf sf sf so}", "batch", B, "calls", calls, "sentences", calls * B,
                     "audio_s", audio, "wall_s", tg_median_(wall, reps), "x_realtime",
                     tg_median_(xr, reps), "x_realtime_all", all);
}

/* Writes the JSON document (when --json). @returns 0, -1 on a write error. */
static int tg_save_(const char *path, json_t *doc) {
    if (path && json_dump_file(doc, path, JSON_INDENT(1) | JSON_REAL_PRECISION(6))) {
        fprintf(stderr, "tts_gpu_model: could not write \"%s\"\n", path);
        return -1;
    }
    return 0;
}

/*
 * Parity: the backend's audio of ref_n sentences against the CPU's (ref).
 * @returns the JSON object {sentences, durations_identical, snr_db_min,
 * snr_db_median, snr_db: [...]}; *ok = 0 when durations differ or (fp32)
 * the min SNR is under 40 dB; NULL on a synthesis failure.
 */
static json_t *tg_parity_(kiln_voice_t *v, const tg_corpus_t *c, int ref_n,
                          const kiln_voice_audio_t *ref, const kiln_voice_params_t *p,
                          int fp32, int *ok) {
    kiln_voice_audio_t *a = calloc((size_t)ref_n, sizeof(*a));
    double au, *snr = malloc(sizeof(double) * (size_t)ref_n);
    json_t *o = NULL;
    if (!a || !snr || tg_call_(v, c, 0, ref_n, p, &au, a) < 0)
        goto done;
    int same = 1;
    json_t *list = json_array();
    for (int b = 0; b < ref_n; b++) {
        if (a[b].n_samples != ref[b].n_samples || a[b].n_ids != ref[b].n_ids ||
            memcmp(a[b].durations, ref[b].durations, sizeof(int) * (size_t)a[b].n_ids)) {
            printf("# parity: sentence %d: durations differ (%zu vs %zu samples)\n", b,
                   a[b].n_samples, ref[b].n_samples);
            same = 0;
        }
        size_t n = a[b].n_samples < ref[b].n_samples ? a[b].n_samples : ref[b].n_samples;
        snr[b] = tg_snr_db_(a[b].pcm, ref[b].pcm, n);
        json_array_append_new(list, json_real(round(snr[b] * 10) / 10));
    }
    double mn = snr[0];
    for (int b = 1; b < ref_n; b++)
        mn = snr[b] < mn ? snr[b] : mn;
    double med = tg_median_(snr, ref_n);
    *ok = same && (!fp32 || mn >= 40.0);
    o = json_pack("{si sb sf sf so}", "sentences", ref_n, "durations_identical", same,
                  "snr_db_min", mn, "snr_db_median", med, "snr_db", list);
    printf("parity vs cpu: %d sentences, durations %s, SNR min %.1f dB, median %.1f dB%s\n",
           ref_n, same ? "identical" : "DIFFER", mn, med,
           *ok ? "" : fp32 ? "  ✗ (fp32 needs identical durations and >= 40 dB)" : "  ✗");
done:
    for (int b = 0; a && b < ref_n; b++)
        kiln_voice_audio_clear(&a[b]);
    free(a);
    free(snr);
    return o;
}

/*
 * The long request: the first k sentences (cycled) with >= min_s of audio
 * in one call. k comes from the reference's lengths (ref[0, ref_n): the
 * same sentences at the same places, so the same durations), cycled past
 * them as an estimate, and grows until a call gives enough audio; *k keeps
 * it for the next precision.
 * @returns {sentences, audio_s, wall_ms, wall_ms_all}, NULL on failure.
 */
static json_t *tg_request_(kiln_voice_t *v, const tg_corpus_t *c, const kiln_voice_params_t *p,
                           double min_s, const kiln_voice_audio_t *ref, int ref_n, int reps,
                           int *k) {
    double au = 0, ms[TG_MAX_REPS], sr = kiln_voice_sample_rate(v);
    if (*k <= 0) /* the first precision: from the reference's lengths */
        for (double est = 0; est < min_s && *k < 100000; (*k)++)
            est += ref[*k % ref_n].n_samples / sr;
    for (int tries = 0; tries < 20; tries++) {
        if (tg_call_(v, c, 0, *k, p, &au, NULL) < 0)
            return NULL;
        if (au >= min_s)
            break;
        int more = (int)ceil((min_s - au) / (au / *k));
        *k += more > 1 ? more : 1;
    }
    json_t *all = json_array();
    for (int r = 0; r < reps; r++) {
        double t = tg_call_(v, c, 0, *k, p, &au, NULL);
        if (t < 0) {
            json_decref(all);
            return NULL;
        }
        ms[r] = t * 1e3;
        json_array_append_new(all, json_real(ms[r]));
    }
    double med = tg_median_(ms, reps);
    printf("request: %d sentences, %.1f s of audio in one call: %.1f ms (median of %d), "
           "%.0f x real time\n",
           *k, au, med, reps, au / (med * 1e-3));
    return json_pack("{si sf sf so}", "sentences", *k, "audio_s", au, "wall_ms", med,
                     "wall_ms_all", all);
}

static int tg_parse_list_(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 4096 || (*end && *end != ','))
            return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

static void tg_usage_(void) {
    fprintf(stderr, "usage: tts_gpu_model --voice DIR --ids FILE [--backend cuda] "
                    "[--precision fp32[,fp16]] [--batches 1,16,64] [--min-seconds 60] "
                    "[--reps 3] [--sentences N] [--parity N] [--device-samples N] "
                    "[--threads N] [--cpu-compare] [--gpu NAME] [--json PATH]\n");
}

/* @returns 0, or -1 on a usage error (printed). */
static int tg_parse_(int argc, char **argv, tg_opts_t *o) {
    *o = (tg_opts_t){.backend = "cuda", .precision = "fp32", .batches = {1, 16, 64},
                     .n_batches = 3, .reps = 3, .min_seconds = 60.0,
                     .gpu = getenv("KILN_GPU_NAME")};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--cpu-compare")) {
            o->cpu_compare = 1;
            continue;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        if (!v) {
            tg_usage_();
            return -1;
        }
        if (!strcmp(a, "--voice")) o->voice = v;
        else if (!strcmp(a, "--ids")) o->ids = v;
        else if (!strcmp(a, "--backend")) o->backend = v;
        else if (!strcmp(a, "--precision")) o->precision = v;
        else if (!strcmp(a, "--batches")) o->n_batches = tg_parse_list_(v, o->batches, TG_MAX_BATCHES);
        else if (!strcmp(a, "--min-seconds")) o->min_seconds = atof(v);
        else if (!strcmp(a, "--reps")) o->reps = atoi(v);
        else if (!strcmp(a, "--sentences")) o->sentences = atoi(v);
        else if (!strcmp(a, "--parity")) o->parity = atoi(v);
        else if (!strcmp(a, "--device-samples")) o->device_samples = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--threads")) o->threads = atoi(v);
        else if (!strcmp(a, "--gpu")) o->gpu = v;
        else if (!strcmp(a, "--json")) o->json = v;
        else {
            tg_usage_();
            return -1;
        }
    }
    if (!o->voice || !o->ids || o->n_batches <= 0 || o->reps < 1 || o->reps > TG_MAX_REPS ||
        o->min_seconds <= 0 || o->sentences < 0 || o->parity < 0 || o->threads < 0) {
        tg_usage_();
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    tg_opts_t o;
    if (tg_parse_(argc, argv, &o))
        return 2;
    if (o.threads > 0)
        kiln_kernels_set_threads(o.threads);
    tg_corpus_t c = {0};
    if (tg_corpus_read_(o.ids, &c))
        return 1;
    if (o.sentences > 0 && o.sentences < c.n) {
        for (int i = o.sentences; i < c.n; i++)
            free(c.ids[i]);
        c.n = o.sentences;
    }
    int ref_n = o.parity > 0 && o.parity < c.n ? o.parity : c.n;
    char err[512], first[16];
    snprintf(first, sizeof(first), "%.*s", (int)strcspn(o.precision, ","), o.precision);
    double t0 = tg_now_();
    kiln_voice_t *vc = kiln_voice_load(o.voice, err, sizeof(err));
    kiln_voice_t *vd = vc ? kiln_voice_load(o.voice, err, sizeof(err)) : NULL;
    double t_load = tg_now_() - t0;
    int rc = 1;
    kiln_voice_audio_t *ref = calloc((size_t)ref_n, sizeof(*ref));
    json_t *doc = NULL, *results = json_array();
    if (!vd) {
        fprintf(stderr, "tts_gpu_model: %s\n", err);
        goto out;
    }
    t0 = tg_now_();
    if (kiln_voice_set_backend(vd, o.backend, first, err, sizeof(err)) != KILN_OK) {
        fprintf(stderr, "tts_gpu_model: %s\n", err);
        goto out;
    }
    double t_up = tg_now_() - t0;
    kiln_voice_params_t p = kiln_voice_default_params();
    p.device_batch_samples = o.device_samples;
    int sr = kiln_voice_sample_rate(vd);
    time_t now = time(NULL);
    char date[32], host[128] = "";
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    gethostname(host, sizeof(host) - 1);
    printf("# voice %s (%d Hz): loaded twice in %.2f s; backend %s, up in %.2f s; "
           "%d sentences, %d CPU threads%s%s\n",
           o.voice, sr, t_load, kiln_voice_backend(vd), t_up, c.n, kiln_kernels_threads(),
           o.gpu ? "; GPU " : "", o.gpu ? o.gpu : "");

    /* the reference: the CPU engine on the parity sentences */
    double au, t_ref = tg_call_(vc, &c, 0, ref_n, &p, &au, ref);
    if (t_ref < 0)
        goto out;
    printf("# cpu reference: %d sentences, %.1f s of audio in %.2f s (%.1f x real time)\n",
           ref_n, au, t_ref, au / t_ref);
    json_incref(results); /* one reference for doc (taken even on failure), one kept */
    doc = json_pack("{ss ss ss ss ss ss ss si si si sf sf sI so}", "bench", "tts-gpu-model",
                    "code", "kiln_voice_synth_ids", "voice", o.voice, "gpu",
                    o.gpu ? o.gpu : "", "date", date, "host", host, "backend",
                    kiln_voice_backend(vd), "sample_rate", sr, "sentences", c.n, "cpu_threads",
                    kiln_kernels_threads(), "load_s", t_load, "upload_s", t_up,
                    "device_batch_samples", (json_int_t)o.device_samples, "results", results);
    if (!doc) {
        fprintf(stderr, "tts_gpu_model: out of memory\n");
        goto out;
    }

    char precs[64], *save = NULL;
    snprintf(precs, sizeof(precs), "%s", o.precision);
    int k = 0, parity_ok = 1;
    double goal_ms = -1, goal_x = -1;
    rc = 0;
    for (char *pr = strtok_r(precs, ",", &save); pr && !rc; pr = strtok_r(NULL, ",", &save)) {
        if (kiln_voice_set_backend(vd, o.backend, pr, err, sizeof(err)) != KILN_OK) {
            fprintf(stderr, "tts_gpu_model: %s\n", err);
            rc = 1;
            break;
        }
        /* a host table has fp32 only and ignores the precision: run it once */
        const char *used = strcmp(kiln_voice_backend(vd), "cuda") ? "fp32" : pr;
        if (json_array_size(results) && used != pr) {
            printf("# %s: backend %s has fp32 only, skipped\n", pr, kiln_voice_backend(vd));
            continue;
        }
        printf("== %s %s\n", kiln_voice_backend(vd), used);
        double tw = tg_call_(vd, &c, 0, c.n < 2 ? c.n : 2, &p, &au, NULL);
        if (tw < 0) {
            rc = 1;
            break;
        }
        printf("warm-up: %.1f ms\n", tw * 1e3);
        json_t *row = json_pack("{ss ss sf}", "precision", used, "requested", pr, "warmup_ms",
                                tw * 1e3);
        json_array_append_new(results, row);
        int ok = 1;
        json_t *par = tg_parity_(vd, &c, ref_n, ref, &p, !strcmp(used, "fp32"), &ok);
        if (!par) {
            rc = 1;
            break;
        }
        json_object_set_new(row, "parity", par);
        parity_ok &= ok;
        json_t *req = tg_request_(vd, &c, &p, o.min_seconds, ref, ref_n, o.reps, &k);
        if (!req) {
            rc = 1;
            break;
        }
        json_object_set_new(row, "request", req);
        double req_ms = json_real_value(json_object_get(req, "wall_ms"));
        if (tg_save_(o.json, doc)) {
            rc = 1;
            break;
        }
        json_t *bs = json_array();
        json_object_set_new(row, "batches", bs);
        double best_x = 0;
        for (int bi = 0; bi < o.n_batches && !rc; bi++) {
            json_t *br = tg_batch_row_(vd, &c, o.batches[bi], &p, o.reps);
            if (!br) {
                rc = 1;
                break;
            }
            double x = json_real_value(json_object_get(br, "x_realtime"));
            printf("batch %3d: %3d sentences in %3d calls, %6.1f s of audio in %8.2f ms: "
                   "%8.1f x real time\n",
                   o.batches[bi], (int)json_integer_value(json_object_get(br, "sentences")),
                   (int)json_integer_value(json_object_get(br, "calls")),
                   json_real_value(json_object_get(br, "audio_s")),
                   json_real_value(json_object_get(br, "wall_s")) * 1e3, x);
            if (o.batches[bi] > 1 && x > best_x)
                best_x = x;
            json_array_append_new(bs, br);
            rc = tg_save_(o.json, doc) ? 1 : 0;
            fflush(stdout);
        }
        /* the goals of issue 7, per precision and over all (the best of them) */
        json_object_set_new(row, "goals",
                            json_pack("{sb sb}", "request_60s_le_100ms",
                                      req_ms <= 100 && o.min_seconds >= 60, "x3000_batched",
                                      best_x >= 3000));
        if (goal_ms < 0 || req_ms < goal_ms)
            goal_ms = req_ms;
        goal_x = best_x > goal_x ? best_x : goal_x;
    }
    if (!rc && o.cpu_compare) {
        json_t *cpu = json_array();
        json_object_set_new(doc, "cpu", cpu);
        static const int cb[] = {1, 16};
        for (int i = 0; i < 2 && !rc; i++) {
            json_t *br = tg_batch_row_(vc, &c, cb[i], &p, o.reps);
            if (!br) {
                rc = 1;
                break;
            }
            double x = json_real_value(json_object_get(br, "x_realtime")), xd = 0;
            /* the first precision's row at the same batch size */
            json_t *r0 = json_array_get(results, 0), *b;
            size_t j;
            json_array_foreach(r0 ? json_object_get(r0, "batches") : NULL, j, b)
                if (json_integer_value(json_object_get(b, "batch")) == cb[i])
                    xd = json_real_value(json_object_get(b, "x_realtime"));
            json_object_set_new(br, "backend_over_cpu", xd > 0 ? json_real(xd / x) : json_null());
            printf("cpu batch %3d: %8.1f x real time (%d threads)%s", cb[i], x,
                   kiln_kernels_threads(), xd > 0 ? "" : "\n");
            if (xd > 0)
                printf("; %s / cpu: %.2fx\n", kiln_voice_backend(vd), xd / x);
            json_array_append_new(cpu, br);
            rc = tg_save_(o.json, doc) ? 1 : 0;
        }
    }
    if (doc) {
        json_object_set_new(doc, "parity_ok", json_boolean(parity_ok));
        json_object_set_new(doc, "goals",
                            json_pack("{sf sb sf sb}", "request_wall_ms", goal_ms,
                                      "request_60s_le_100ms", goal_ms >= 0 && goal_ms <= 100 &&
                                                                  o.min_seconds >= 60,
                                      "best_batched_x_realtime", goal_x, "x3000_batched",
                                      goal_x >= 3000));
        if (tg_save_(o.json, doc))
            rc = 1;
        printf("goals (best precision): >= %.0f s in one call in %.1f ms (<= 100 ms: %s); "
               "best batched %.0f x real time (>= 3000x: %s)\n",
               o.min_seconds, goal_ms, goal_ms >= 0 && goal_ms <= 100 ? "yes" : "no", goal_x,
               goal_x >= 3000 ? "yes" : "no");
    }
    if (!parity_ok) {
        printf("✗ parity failed\n");
        rc = 1;
    }
out:
    for (int b = 0; ref && b < ref_n; b++)
        kiln_voice_audio_clear(&ref[b]);
    free(ref);
    json_decref(results);
    json_decref(doc);
    kiln_voice_destroy(vd);
    kiln_voice_destroy(vc);
    tg_corpus_free_(&c);
    return rc;
}
