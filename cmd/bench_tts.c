/*
 * cmd/bench_tts.c - `kiln bench tts`: kiln's Piper (VITS) voice on the CPU
 * against Piper on onnxruntime (piper-tts), same voice, text, default scales
 * and thread count.
 *
 *   1. loads the voice and phonemises TEXT (default
 *      tests/golden/voice_corpus.txt) into sentences of phoneme ids;
 *   2. starts bench/tts_ort.py --serve in ./var/venv as a child process,
 *      which loads the same voice (.onnx), phonemises the same text with
 *      Piper's own front end and then runs one pass per command it reads
 *      (skipped, with a note, when the venv is absent);
 *   3. runs the two sides interleaved, round after round (kiln, ort, kiln,
 *      ort, ...), so that both see the same machine load, after one short
 *      warm-up each; front ends are outside the timings (model only):
 *        single   every sentence as its own request, one after another:
 *                 kiln_voice_synth_ids() with B = 1 (the ops on the pool)
 *                 against session.run() with THREADS intra-op threads;
 *        batched  the sentences in batches of --batch (default: all in one):
 *                 kiln_voice_synth_ids() with B sentences (one sentence per
 *                 pool thread at a time) against onnxruntime's better of
 *                 two batched modes: padded batches of B in one run
 *                 ("pad", THREADS intra-op threads) and THREADS concurrent
 *                 one-sentence runs on a one-thread session ("conc");
 *   4. reports the real-time factor of each (synthesis seconds per second
 *      of audio; the medians over --rounds), the CPU time per second of
 *      audio (all threads: what the side cost the machine, and less
 *      sensitive to other load than wall time) and the ratios
 *      (onnxruntime's / kiln's, > 1: kiln is faster), prints a table, with --json one
 *      JSON object as the last line, and writes it to
 *      bench/results/tts-DATE-HOST.json (--out, or --no-save).
 *
 * The audio of the padded batches is padded too, so their RTF uses the
 * audio length of onnxruntime's single passes (the same sentences and
 * scales; the durations are random, noise_w > 0, and so vary a little from
 * run to run). Intelligibility (WER through kiln's Whisper) is
 * bench/tts_wer.sh; --wer runs it after the timings.
 *
 * Exit: 0, 1 on failure, 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd/bench.h"
#include "cmd/cli.h"
#include "kiln/kernels.h"
#include "kiln/voice.h"

int kiln_cmd_bench_tts(int argc, char **argv);

#define KILN_BT_DEFAULT_VOICE "var/models/voices/en_US-joe-medium"
#define KILN_BT_DEFAULT_TEXT "tests/golden/voice_corpus.txt"
#define KILN_BT_MAX_ROUNDS 32

typedef struct {
    const char *voice, *text, *venv, *out;
    int threads, rounds, batch, json, no_ref, no_save, wer;
} kiln_bt_opts_t;

/* the timings of one side and mode, one per round */
typedef struct {
    double el[KILN_BT_MAX_ROUNDS], cpu[KILN_BT_MAX_ROUNDS], audio[KILN_BT_MAX_ROUNDS];
    int n;
} kiln_bt_runs_t;

/* @returns the median over the runs of \p r of t / audio (t: r->el, or
 * r->cpu with \p cpu), 0 without runs. */
static double kiln_bt_rtf_(const kiln_bt_runs_t *r, int cpu) {
    double v[KILN_BT_MAX_ROUNDS];
    int n = 0;
    for (int i = 0; i < r->n; i++)
        if (r->audio[i] > 0)
            v[n++] = (cpu ? r->cpu[i] : r->el[i]) / r->audio[i];
    return kiln_bench_median(v, n);
}

/* ---- kiln's side -------------------------------------------------------- */

/*
 * One pass of kiln over every sentence of \p tx, in batches of \p batch
 * (1: single requests). @returns the seconds it took, -1 on failure;
 * *audio_s gets the seconds of audio.
 */
static double kiln_bt_kiln_pass_(kiln_voice_t *v, const kiln_voice_text_t *tx, int n, int batch,
                                 double *audio_s, double *cpu_s) {
    kiln_voice_params_t p = kiln_voice_default_params();
    kiln_voice_audio_t *a = calloc((size_t)batch, sizeof(*a));
    const int **ids = malloc((size_t)batch * sizeof(*ids));
    int *n_ids = malloc((size_t)batch * sizeof(int));
    double samples = 0, el = -1.0;
    char err[256];
    if (!a || !ids || !n_ids)
        goto out;
    double t0 = kiln_bench_clock(CLOCK_MONOTONIC);
    double c0 = kiln_bench_clock(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < n; i += batch) {
        int B = n - i < batch ? n - i : batch;
        for (int b = 0; b < B; b++) {
            ids[b] = tx->s[i + b].ids;
            n_ids[b] = tx->s[i + b].n_ids;
        }
        if (kiln_voice_synth_ids(v, ids, n_ids, B, &p, a, err, sizeof(err)) != KILN_OK) {
            fprintf(stderr, "kiln bench tts: %s\n", err);
            goto out;
        }
        for (int b = 0; b < B; b++) {
            samples += (double)a[b].n_samples;
            kiln_voice_audio_clear(&a[b]);
        }
    }
    el = kiln_bench_clock(CLOCK_MONOTONIC) - t0;
    *cpu_s = kiln_bench_clock(CLOCK_PROCESS_CPUTIME_ID) - c0;
    *audio_s = samples / kiln_voice_sample_rate(v);
out:
    free(a);
    free(ids);
    free(n_ids);
    return el;
}

/* ---- the onnxruntime side (bench/tts_ort.py --serve) --------------------- */

typedef struct {
    kiln_bench_child_t c;
    int sentences, ids_match; /* Piper's sentences; how many have kiln's ids */
} kiln_bt_ref_t;

static int kiln_bt_exists_(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* The voice's .onnx (what models/voice/fetch.sh keeps next to config.json). */
static int kiln_bt_onnx_(const char *voice, char *buf, size_t size) {
    const char *base = strrchr(voice, '/') ? strrchr(voice, '/') + 1 : voice;
    snprintf(buf, size, "%s/%s.onnx", voice, base);
    return kiln_bt_exists_(buf) ? 0 : -1;
}

/* Counts the sentences whose ids Piper and kiln agree on. */
static int kiln_bt_ids_match_(json_t *ids, const kiln_voice_text_t *tx) {
    int match = 0;
    for (size_t i = 0; i < json_array_size(ids) && (int)i < tx->n; i++) {
        json_t *s = json_array_get(ids, i);
        int same = (int)json_array_size(s) == tx->s[i].n_ids;
        for (int k = 0; same && k < tx->s[i].n_ids; k++)
            same = json_integer_value(json_array_get(s, (size_t)k)) == tx->s[i].ids[k];
        match += same;
    }
    return match;
}

/* Starts the reference. @returns 0, or -1 with *why set. */
static int kiln_bt_ref_start_(kiln_bt_ref_t *r, const kiln_bt_opts_t *o, int threads,
                              const kiln_voice_text_t *tx, const char **why) {
    static char whybuf[700];
    char py[1024], sb[1024], onnx[1024], thr[16];
    memset(r, 0, sizeof(*r));
    snprintf(py, sizeof(py), "%s/bin/python", o->venv);
    const char *script = kiln_bench_script("tts_ort.py", sb, sizeof(sb));
    if (!kiln_bt_exists_(py)) {
        snprintf(whybuf, sizeof(whybuf), "no reference: %s is absent (make ref-venv)", py);
        *why = whybuf;
        return -1;
    }
    if (!script) {
        *why = "no reference: bench/tts_ort.py not found";
        return -1;
    }
    if (kiln_bt_onnx_(o->voice, onnx, sizeof(onnx))) {
        snprintf(whybuf, sizeof(whybuf), "no reference: could not find \"%s\"", onnx);
        *why = whybuf;
        return -1;
    }
    snprintf(thr, sizeof(thr), "%d", threads);
    char *args[] = {py, (char *)script, "--serve", onnx, (char *)o->text, thr, NULL};
    if (kiln_bench_child_start(&r->c, args, "tts-ort")) {
        *why = "could not start the reference process";
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    json_t *j = getline(&line, &cap, r->c.out) > 0 ? json_loads(line, 0, NULL) : NULL;
    free(line);
    if (!j || !json_is_true(json_object_get(j, "ready"))) {
        json_decref(j);
        snprintf(whybuf, sizeof(whybuf), "the reference process failed to start (log: %s)",
                 r->c.log);
        *why = whybuf;
        r->c.log[0] = '\0'; /* stop it, but keep its log for the message */
        kiln_bench_child_stop(&r->c);
        return -1;
    }
    r->sentences = (int)json_integer_value(json_object_get(j, "sentences"));
    r->ids_match = kiln_bt_ids_match_(json_object_get(j, "ids"), tx);
    json_decref(j);
    return 0;
}

/* One reference pass (\p cmd: "single", "pad B", "conc", "warm"). @returns its
 * seconds, -1 on failure; *audio_s gets its seconds of audio, *cpu_s its CPU time. */
static double kiln_bt_ref_pass_(kiln_bt_ref_t *r, const char *cmd, double *audio_s,
                                double *cpu_s) {
    char *line = NULL;
    size_t cap = 0;
    double el = -1.0;
    fprintf(r->c.in, "%s\n", cmd);
    fflush(r->c.in);
    if (getline(&line, &cap, r->c.out) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        json_t *e = j ? json_object_get(j, "elapsed") : NULL;
        if (json_is_number(e)) {
            el = json_number_value(e);
            *audio_s = json_number_value(json_object_get(j, "audio_s"));
            *cpu_s = json_number_value(json_object_get(j, "cpu"));
        }
        json_decref(j);
    }
    free(line);
    return el;
}

/* ---- options ------------------------------------------------------------ */

static void kiln_bt_usage_(FILE *fp) {
    fprintf(fp,
            "usage: kiln bench tts [OPTIONS]\n\n"
            "Times kiln's Piper voice against Piper on onnxruntime (bench/tts_ort.py in\n"
            "./var/venv, a child process): same voice, text, scales and threads, model\n"
            "only, interleaved rounds; single requests (one sentence at a time) and\n"
            "batched (--batch sentences per call); prints real-time factors and ratios.\n\n"
            "  --voice DIR     the voice (default " KILN_BT_DEFAULT_VOICE ")\n"
            "  --text FILE     the text (default " KILN_BT_DEFAULT_TEXT ")\n"
            "  --threads N     CPU threads of both sides (default: all CPUs)\n"
            "  --rounds R      timed rounds (default 3; medians)\n"
            "  --batch N       sentences per batched call (default 0: all)\n"
            "  --no-ref        kiln only\n"
            "  --venv DIR      onnxruntime's venv (default var/venv)\n"
            "  --wer           then run bench/tts_wer.sh (intelligibility through Whisper)\n"
            "  --json          also print one JSON object as the last line\n"
            "  --out FILE      result JSON (default bench/results/tts-DATE-HOST.json)\n"
            "  --no-save       do not write the result JSON\n"
            "  -h, --help      this text\n");
}

/* @returns 0, 1 (help printed) or -1 (usage error printed). */
static int kiln_bt_parse_(int argc, char **argv, kiln_bt_opts_t *o) {
    static const struct option lo[] = {
        {"voice", required_argument, 0, 'v'}, {"text", required_argument, 0, 'T'},
        {"threads", required_argument, 0, 't'}, {"rounds", required_argument, 0, 'r'},
        {"batch", required_argument, 0, 'b'}, {"no-ref", no_argument, 0, 'N'},
        {"venv", required_argument, 0, 'V'}, {"wer", no_argument, 0, 'w'},
        {"json", no_argument, 0, 'j'}, {"out", required_argument, 0, 'o'},
        {"no-save", no_argument, 0, 'x'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    *o = (kiln_bt_opts_t){.voice = KILN_BT_DEFAULT_VOICE, .text = KILN_BT_DEFAULT_TEXT,
                          .venv = "var/venv", .rounds = 3};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        long v = optarg ? strtol(optarg, NULL, 10) : 0;
        switch (c) {
        case 'v': o->voice = optarg; break;
        case 'T': o->text = optarg; break;
        case 't': o->threads = (int)v; break;
        case 'r': o->rounds = (int)(v > KILN_BT_MAX_ROUNDS ? KILN_BT_MAX_ROUNDS : v); break;
        case 'b': o->batch = (int)v; break;
        case 'N': o->no_ref = 1; break;
        case 'V': o->venv = optarg; break;
        case 'w': o->wer = 1; break;
        case 'j': o->json = 1; break;
        case 'o': o->out = optarg; break;
        case 'x': o->no_save = 1; break;
        case 'h': kiln_bt_usage_(stdout); return 1;
        default: kiln_bt_usage_(stderr); return -1;
        }
    }
    if (o->rounds < 1 || o->threads < 0 || o->batch < 0 || optind < argc) {
        kiln_bt_usage_(stderr);
        return -1;
    }
    return 0;
}

/* Reads all of \p path. @returns a NUL-terminated buffer, or NULL (errno set). */
static char *kiln_bt_slurp_(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    char chunk[8192];
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(fp);
                return NULL;
            }
            buf = nb;
        }
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(fp);
    if (!buf)
        buf = calloc(1, 1);
    else
        buf[len] = '\0';
    return buf;
}

static json_t *kiln_bt_runs_json_(const char *impl, const char *mode, const kiln_bt_runs_t *r) {
    json_t *o = json_object(), *el = json_array();
    json_object_set_new(o, "impl", json_string(impl));
    json_object_set_new(o, "mode", json_string(mode));
    json_t *cpu = json_array();
    json_object_set_new(o, "rtf", json_real(kiln_bt_rtf_(r, 0)));
    json_object_set_new(o, "cpu_rtf", json_real(kiln_bt_rtf_(r, 1)));
    for (int i = 0; i < r->n; i++) {
        json_array_append_new(el, json_real(r->el[i]));
        json_array_append_new(cpu, json_real(r->cpu[i]));
    }
    json_object_set_new(o, "elapsed_s", el);
    json_object_set_new(o, "cpu_s", cpu);
    json_object_set_new(o, "audio_s", json_real(r->n ? r->audio[0] : 0.0));
    return o;
}

int kiln_cmd_bench_tts(int argc, char **argv) {
    kiln_bt_opts_t o;
    int rc = kiln_bt_parse_(argc, argv, &o);
    if (rc)
        return rc > 0 ? KILN_EXIT_OK : KILN_EXIT_USAGE;
    if (o.threads > 0)
        kiln_kernels_set_threads(o.threads);
    int threads = kiln_kernels_threads();
    char err[512];
    kiln_voice_t *v = kiln_voice_load(o.voice, err, sizeof(err));
    if (!v) {
        fprintf(stderr, "kiln bench tts: %s\n", err);
        return KILN_EXIT_FAIL;
    }
    char *text = kiln_bt_slurp_(o.text);
    kiln_voice_text_t tx = {0};
    if (!text) {
        fprintf(stderr, "kiln bench tts: could not read \"%s\": %s\n", o.text, strerror(errno));
        kiln_voice_destroy(v);
        return KILN_EXIT_FAIL;
    }
    if (kiln_voice_phonemize(v, text, &tx, err, sizeof(err)) != KILN_OK) {
        fprintf(stderr, "kiln bench tts: could not phonemise \"%s\": %s\n", o.text, err);
        free(text);
        kiln_voice_destroy(v);
        return KILN_EXIT_FAIL;
    }
    free(text);
    int n = tx.n, batch = o.batch > 0 && o.batch < n ? o.batch : n;
    char pad_cmd[32];
    snprintf(pad_cmd, sizeof(pad_cmd), "pad %d", batch);

    kiln_bt_ref_t ref = {0};
    const char *why = NULL;
    int have_ref = !o.no_ref && kiln_bt_ref_start_(&ref, &o, threads, &tx, &why) == 0;
    if (!o.no_ref && !have_ref)
        fprintf(stderr, "kiln bench tts: %s\n", why);

    /* warm-up: scratch buffers, pool threads, onnxruntime's first runs */
    kiln_voice_text_t one = tx;
    double au, el, cpu;
    one.n = n < 2 ? n : 2;
    if (kiln_bt_kiln_pass_(v, &one, one.n, one.n, &au, &cpu) < 0)
        goto fail;
    if (have_ref && kiln_bt_ref_pass_(&ref, "warm", &au, &cpu) < 0)
        fprintf(stderr, "kiln bench tts: the reference's warm-up failed (log: %s)\n", ref.c.log);

    kiln_bt_runs_t ks = {0}, kb = {0}, os = {0}, op = {0}, oc = {0};
#define KILN_BT_ADD_(r, e, a, c) ((r).el[(r).n] = (e), (r).audio[(r).n] = (a), (r).cpu[(r).n++] = (c))
    for (int r = 0; r < o.rounds; r++) {
        if ((el = kiln_bt_kiln_pass_(v, &tx, n, 1, &au, &cpu)) < 0)
            goto fail;
        KILN_BT_ADD_(ks, el, au, cpu);
        if (have_ref && (el = kiln_bt_ref_pass_(&ref, "single", &au, &cpu)) > 0)
            KILN_BT_ADD_(os, el, au, cpu);
        if ((el = kiln_bt_kiln_pass_(v, &tx, n, batch, &au, &cpu)) < 0)
            goto fail;
        KILN_BT_ADD_(kb, el, au, cpu);
        if (have_ref && (el = kiln_bt_ref_pass_(&ref, pad_cmd, &au, &cpu)) > 0)
            KILN_BT_ADD_(op, el, os.n ? os.audio[os.n - 1] : 0.0, cpu);
        if (have_ref && (el = kiln_bt_ref_pass_(&ref, "conc", &au, &cpu)) > 0)
            KILN_BT_ADD_(oc, el, au, cpu);
        if (!o.json)
            fprintf(stderr, "round %d/%d done\n", r + 1, o.rounds);
    }
#undef KILN_BT_ADD_
    int ref_sentences = ref.sentences, ids_match = ref.ids_match;
    if (have_ref)
        kiln_bench_child_stop(&ref.c);

    double rks = kiln_bt_rtf_(&ks, 0), rkb = kiln_bt_rtf_(&kb, 0);
    double ros = kiln_bt_rtf_(&os, 0), rop = kiln_bt_rtf_(&op, 0), roc = kiln_bt_rtf_(&oc, 0);
    int pad_best = rop > 0 && (roc <= 0 || rop < roc);
    double rob = pad_best ? rop : roc;
    const kiln_bt_runs_t *obr = pad_best ? &op : &oc;
    double cks = kiln_bt_rtf_(&ks, 1), ckb = kiln_bt_rtf_(&kb, 1);
    double cos_ = kiln_bt_rtf_(&os, 1), cob = kiln_bt_rtf_(obr, 1);
    double loadavg[3] = {0};
    getloadavg(loadavg, 3);
    printf("kiln bench tts: %d sentences, %.1f s of audio (kiln), %d threads, %d rounds, "
           "batch %d\n",
           n, ks.n ? ks.audio[0] : 0.0, threads, o.rounds, batch);
    if (have_ref)
        printf("  phoneme ids identical to Piper's: %d of %d sentences (Piper: %d)\n",
               ids_match, n, ref_sentences);
    printf("\n  %-26s %9s %9s %7s   %9s %9s %7s\n", "mode", "kiln RTF", "ort RTF", "ratio",
           "kiln CPU", "ort CPU", "ratio");
    printf("  %-26s %9.4f %9.4f %6.2fx   %9.4f %9.4f %6.2fx\n", "single (1 sentence/call)", rks,
           ros, ros > 0 ? ros / rks : 0.0, cks, cos_, cos_ > 0 ? cos_ / cks : 0.0);
    printf("  %-26s %9.4f %9.4f %6.2fx   %9.4f %9.4f %6.2fx\n", "batched", rkb, rob,
           rob > 0 ? rob / rkb : 0.0, ckb, cob, cob > 0 ? cob / ckb : 0.0);
    if (have_ref)
        printf("  onnxruntime batched: %s (RTF pad %.4f, conc %.4f)\n", pad_best ? "pad" : "conc",
               rop, roc);
    printf("\n  RTF: wall seconds per second of audio; CPU: CPU seconds (all threads) per\n"
           "  second of audio (medians of rounds); ratio: onnxruntime's / kiln's (> 1:\n"
           "  kiln faster). Load average %.2f at the end.\n",
           loadavg[0]);

    char host[128] = "unknown", date[32];
    gethostname(host, sizeof(host) - 1);
    time_t now = time(NULL);
    strftime(date, sizeof(date), "%Y-%m-%d", localtime(&now));
    json_t *j = json_object(), *params = json_object(), *results = json_array();
    json_object_set_new(j, "bench", json_string("tts"));
    json_object_set_new(j, "machine", json_string(host));
    json_object_set_new(j, "date", json_string(date));
    json_object_set_new(params, "voice", json_string(o.voice));
    json_object_set_new(params, "text", json_string(o.text));
    json_object_set_new(params, "sentences", json_integer(n));
    json_object_set_new(params, "threads", json_integer(threads));
    json_object_set_new(params, "rounds", json_integer(o.rounds));
    json_object_set_new(params, "batch", json_integer(batch));
    json_object_set_new(params, "loadavg_end", json_real(loadavg[0]));
    json_object_set_new(params, "reference",
                        json_string(have_ref ? "piper-tts on onnxruntime (bench/tts_ort.py)"
                                    : why ? why : "--no-ref"));
    if (have_ref)
        json_object_set_new(params, "ids_identical", json_integer(ids_match));
    json_object_set_new(params, "note",
                        json_string("CPU only, model only (front ends outside the timings); "
                                    "interleaved rounds on a shared machine: compare ratios"));
    json_array_append_new(results, kiln_bt_runs_json_("kiln", "single", &ks));
    json_array_append_new(results, kiln_bt_runs_json_("kiln", "batched", &kb));
    if (have_ref) {
        json_array_append_new(results, kiln_bt_runs_json_("onnxruntime", "single", &os));
        json_array_append_new(results, kiln_bt_runs_json_("onnxruntime", "pad", &op));
        json_array_append_new(results, kiln_bt_runs_json_("onnxruntime", "conc", &oc));
    }
    json_object_set_new(j, "params", params);
    json_object_set_new(j, "results", results);
    json_object_set_new(j, "rtf_kiln_single", json_real(rks));
    json_object_set_new(j, "rtf_kiln_batched", json_real(rkb));
    json_object_set_new(j, "ratio_single", ros > 0 ? json_real(ros / rks) : json_null());
    json_object_set_new(j, "ratio_batched", rob > 0 ? json_real(rob / rkb) : json_null());
    json_object_set_new(j, "ort_batched_mode", json_string(pad_best ? "pad" : "conc"));
    json_object_set_new(j, "cpu_ratio_single", cos_ > 0 ? json_real(cos_ / cks) : json_null());
    json_object_set_new(j, "cpu_ratio_batched", cob > 0 ? json_real(cob / ckb) : json_null());
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(j);
    if (!o.no_save && s)
        kiln_bench_save("tts", s, o.out);
    if (o.json && s)
        printf("%s\n", s);
    free(s);
    kiln_voice_text_clear(&tx);
    kiln_voice_destroy(v);
    if (o.wer) {
        char sb[1024], cmd[3072], exe[1024];
        const char *script = kiln_bench_script("tts_wer.sh", sb, sizeof(sb));
        ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        exe[len > 0 ? len : 0] = '\0';
        if (!script) {
            fprintf(stderr, "kiln bench tts: bench/tts_wer.sh not found\n");
            return KILN_EXIT_FAIL;
        }
        snprintf(cmd, sizeof(cmd), "KILN='%s' bash '%s' --voice '%s' --text '%s'%s", exe, script,
                 o.voice, o.text, o.json ? " --json" : "");
        fflush(NULL);
        return system(cmd) == 0 ? KILN_EXIT_OK : KILN_EXIT_FAIL;
    }
    return KILN_EXIT_OK;
fail:
    if (have_ref)
        kiln_bench_child_stop(&ref.c);
    kiln_voice_text_clear(&tx);
    kiln_voice_destroy(v);
    return KILN_EXIT_FAIL;
}
