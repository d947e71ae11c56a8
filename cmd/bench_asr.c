/*
 * cmd/bench_asr.c - `kiln bench asr` and `kiln bench wer`: kiln's Whisper
 * against faster-whisper and whisper.cpp on the same model, audio and
 * thread count.
 *
 * bench asr
 *   1. loads the model once and decodes every audio file of DIR (the files
 *      of DIR/transcripts.tsv) to 16 kHz PCM, in this process;
 *   2. starts each baseline as a child process from ./var/venv that loads
 *      the same model and audio and then transcribes every file on each
 *      "run" line it reads: faster-whisper (bench/asr_fw.py) and whisper.cpp
 *      (bench/asr_wcpp.py: pywhispercpp, on the same weights converted to
 *      ggml f16 once); one that cannot start is skipped with its reason;
 *   3. runs kiln and the baselines in turn, A B C A B C, one warm-up pass
 *      each and then --reps timed passes each, and reports the median wall
 *      time of a pass, the real-time factor (wall / audio), the speed ratio
 *      (baseline time / kiln time) and the WER of each side's last pass
 *      against the references (bench/asr_wer.py: Whisper's English
 *      normaliser and jiwer; without the venv, a basic normaliser written
 *      here: lower case, punctuation dropped);
 *   4. measures kiln alone at batch 1, 8 and 32 (--scaling), median of
 *      --scaling-reps passes each: throughput in x real time;
 *   5. prints a table, with --json one JSON object as the last line, and
 *      writes it to bench/results/asr-<date>-<hostname>.json (--out, or
 *      --no-save).
 * Every side uses the same decoding settings: --preset greedy (default;
 * beam 1, temperature 0, no conditioning: the golden files' settings, where
 * the tokens match) or --preset default (faster-whisper's defaults: beam 5,
 * temperature fallback, conditioning), --beam N overriding the beam size.
 * Timings on a CPU machine are ratios: kiln and the references run in turn
 * on the same cores, and only the ratio is meant to be compared between runs.
 *
 * bench wer DIR
 *   transcribes DIR's files with kiln and prints its WER, and each
 *   baseline's WER on the same files and settings when the venv has it.
 *
 * Exit: 0, 1 on failure, 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd/bench.h"
#include "kiln/audio.h"
#include "kiln/kernels.h"
#include "kiln/whisper.h"

int kiln_cmd_bench_asr(int argc, char **argv);
int kiln_cmd_bench_wer(int argc, char **argv);

#define KILN_BA_DEFAULT_MODEL "var/models/whisper-tiny.en"
#define KILN_BA_DEFAULT_DIR "../shared/data/speech/dev"

typedef struct {
    char *name;              /* file name as in transcripts.tsv */
    char *ref;               /* reference text */
    kiln_audio_t au;
} kiln_ba_file_t;

typedef struct {
    const char *model, *dir, *preset, *out, *venv, *ref_omp, *refs;
    int threads, beam, batch, reps, sreps, json, no_ref, no_save, max_files;
    int scaling[8], n_scaling;
} kiln_ba_opts_t;

static int kiln_ba_exists_(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* ---- files -------------------------------------------------------------- */

static void kiln_ba_files_free_(kiln_ba_file_t *f, int n) {
    for (int i = 0; f && i < n; i++) {
        free(f[i].name);
        free(f[i].ref);
        kiln_audio_free(&f[i].au);
    }
    free(f);
}

/* Reads DIR/transcripts.tsv and decodes every file. @returns the count, -1 on failure. */
static int kiln_ba_files_load_(const char *dir, int max, kiln_ba_file_t **out) {
    char path[4096], err[512];
    snprintf(path, sizeof(path), "%s/transcripts.tsv", dir);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "kiln bench: could not open \"%s\": %s\n", path, strerror(errno));
        return -1;
    }
    kiln_ba_file_t *f = NULL;
    int n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, fp)) >= 0 && (max <= 0 || n < max)) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        char *tab = strchr(line, '\t');
        if (!tab)
            continue;
        *tab = '\0';
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            kiln_ba_file_t *nf = realloc(f, sizeof(*f) * cap);
            if (!nf)
                break;
            f = nf;
        }
        memset(&f[n], 0, sizeof(f[n]));
        f[n].name = strdup(line);
        f[n].ref = strdup(tab + 1);
        snprintf(path, sizeof(path), "%s/%s", dir, line);
        if (kiln_audio_decode_file(path, 16000, 0, &f[n].au, err, sizeof(err)) != KILN_OK) {
            fprintf(stderr, "kiln bench: %s (skipped)\n", err);
            free(f[n].name);
            free(f[n].ref);
            continue;
        }
        n++;
    }
    free(line);
    fclose(fp);
    if (n == 0) {
        fprintf(stderr, "kiln bench: no audio file could be read from %s\n", dir);
        kiln_ba_files_free_(f, n);
        return -1;
    }
    *out = f;
    return n;
}

static double kiln_ba_audio_s_(const kiln_ba_file_t *f, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += f[i].au.n_samples / 16000.0;
    return s;
}

/* ---- kiln side ---------------------------------------------------------- */

static kiln_whisper_params_t kiln_ba_params_(const kiln_ba_opts_t *o, int batch) {
    kiln_whisper_params_t p = strcmp(o->preset, "default") ? kiln_whisper_greedy_params()
                                                           : kiln_whisper_default_params();
    if (o->beam > 0)
        p.beam_size = o->beam;
    p.max_batch = batch;
    p.n_threads = o->threads;
    return p;
}

/*
 * One pass of kiln over every file (one batched call). texts[i] gets file
 * i's text (malloc'ed, replacing what was there) when texts is not NULL.
 * @returns the wall time in seconds, or -1.
 */
static double kiln_ba_kiln_pass_(const kiln_whisper_model_t *m, const kiln_whisper_params_t *p,
                                 const kiln_ba_file_t *f, int n, char **texts) {
    const float **pcm = calloc((size_t)n, sizeof(*pcm));
    size_t *ns = calloc((size_t)n, sizeof(*ns));
    kiln_whisper_result_t *res = calloc((size_t)n, sizeof(*res));
    double t = -1.0;
    if (!pcm || !ns || !res)
        goto done;
    for (int i = 0; i < n; i++) {
        pcm[i] = f[i].au.pcm;
        ns[i] = f[i].au.n_samples;
    }
    double t0 = kiln_bench_clock(CLOCK_MONOTONIC);
    kiln_err_t e = kiln_whisper_transcribe(m, p, pcm, ns, n, res);
    t = kiln_bench_clock(CLOCK_MONOTONIC) - t0;
    if (e != KILN_OK) {
        fprintf(stderr, "kiln bench: could not transcribe: %s\n", kiln_err2str(e));
        t = -1.0;
    }
    for (int i = 0; i < n; i++) {
        if (texts && e == KILN_OK) {
            free(texts[i]);
            texts[i] = strdup(res[i].err == KILN_OK && res[i].text ? res[i].text : "");
        }
        kiln_whisper_result_clear(&res[i]);
    }
done:
    free(pcm);
    free(ns);
    free(res);
    return t;
}

/* ---- reference implementations (child processes) -------------------------- */

/*
 * One reference implementation, run as a child process by a bench/asr_*.py
 * script that speaks the same line protocol: it loads the model and the
 * audio, prints {"ready": true, ...}, then answers each "run" line with one
 * JSON line {"elapsed", "maxrss_kb", "texts"} and ends on "quit".
 */
typedef struct {
    const char *name;        /* "faster-whisper", "whisper.cpp" */
    const char *script;      /* under bench/ */
    const char *what;        /* description for the result JSON */
    kiln_bench_child_t c;    /* the process, while it runs */
    int up;                  /* started and ready */
    const char *why;         /* when !up: why not */
    char whybuf[700];
    double t[64];            /* timed passes */
    int nt;
    long rss_kb;
    char **texts;            /* last pass, one per file */
    double wer;
} kiln_ba_ref_t;

/* What a command works on: kiln_ba_setup_() makes it, kiln_ba_teardown_() frees it. */
typedef struct {
    kiln_ba_opts_t o;
    kiln_whisper_model_t *m;
    kiln_ba_file_t *f;       /* the audio files, n of them */
    int n;
    char host[256], cpu[256], date[32];
    char **kt;               /* kiln's texts of its last pass, one per file */
    kiln_ba_ref_t refs[2];   /* the baselines */
} kiln_ba_run_t;

/* The baselines, in the order they run after kiln. */
static void kiln_ba_refs_init_(kiln_ba_ref_t r[2], int n_files) {
    memset(r, 0, 2 * sizeof(*r));
    r[0].name = "faster-whisper";
    r[0].script = "asr_fw.py";
    r[0].what = "faster-whisper 1.2.1 (CTranslate2 4.8.5, float32)";
    r[1].name = "whisper.cpp";
    r[1].script = "asr_wcpp.py";
    r[1].what = "whisper.cpp 1.8.5 (pywhispercpp 1.5.1 wheel: ggml 0.13.1, OpenMP), the same "
                "weights converted to ggml f16 (bench/asr_wcpp.py)";
    for (int k = 0; k < 2; k++) {
        r[k].wer = -1.0;
        r[k].texts = calloc((size_t)n_files, sizeof(char *));
    }
}

/* Keeps the last line of the child's log as the reason it failed. */
static void kiln_ba_ref_fail_(kiln_ba_ref_t *r, const char *what) {
    char line[512] = "", last[512] = "";
    FILE *lf = r->c.log[0] ? fopen(r->c.log, "r") : NULL;
    while (lf && fgets(line, sizeof(line), lf))
        if (line[0] != '\n')
            snprintf(last, sizeof(last), "%s", line);
    if (lf)
        fclose(lf);
    last[strcspn(last, "\n")] = '\0';
    snprintf(r->whybuf, sizeof(r->whybuf), "%s%s%s", what, last[0] ? ": " : "", last);
    r->why = r->whybuf;
}

/* Starts r's script. @returns 0, or -1 with r->why set (venv or script missing, ...). */
static int kiln_ba_ref_start_(kiln_ba_ref_t *r, const kiln_ba_opts_t *o,
                              const kiln_ba_file_t *f, int n) {
    char py[1024], script_buf[1024], thr[16], beam[16];
    snprintf(py, sizeof(py), "%s/bin/python", o->venv);
    const char *script = kiln_bench_script(r->script, script_buf, sizeof(script_buf));
    if (!kiln_ba_exists_(py)) {
        snprintf(r->whybuf, sizeof(r->whybuf), "no reference: %s is absent (make ref-venv)", py);
        r->why = r->whybuf;
        return -1;
    }
    if (!script) {
        snprintf(r->whybuf, sizeof(r->whybuf), "no reference: bench/%s not found", r->script);
        r->why = r->whybuf;
        return -1;
    }
    char tag[64];
    snprintf(tag, sizeof(tag), "asr-%s", r->script);
    snprintf(thr, sizeof(thr), "%d", o->threads > 0 ? o->threads : kiln_kernels_threads());
    char **args = calloc((size_t)n + 16, sizeof(char *));
    char **paths = calloc((size_t)n, sizeof(char *));
    int a = 0;
    args[a++] = py;
    args[a++] = (char *)script;
    args[a++] = "--model";
    args[a++] = (char *)o->model;
    args[a++] = "--threads";
    args[a++] = thr;
    args[a++] = "--preset";
    args[a++] = (char *)o->preset;
    if (o->beam > 0) {
        snprintf(beam, sizeof(beam), "%d", o->beam);
        args[a++] = "--beam";
        args[a++] = beam;
    }
    for (int i = 0; i < n; i++) {
        size_t len = strlen(o->dir) + strlen(f[i].name) + 2;
        paths[i] = malloc(len);
        snprintf(paths[i], len, "%s/%s", o->dir, f[i].name);
        args[a++] = paths[i];
    }
    args[a] = NULL;
    /* libgomp's default (active) waiting spins on every core between
     * parallel regions; on a shared machine that alone made faster-whisper
     * 2-3x slower. Passive waiting is the baseline's best case there. */
    char omp[] = "OMP_WAIT_POLICY=PASSIVE";
    char *env[] = {strcmp(o->ref_omp, "active") ? omp : NULL, NULL};
    int started = kiln_bench_child_start_env(&r->c, args, tag, env);
    for (int i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    free(args);
    if (started && r->c.pid <= 0) {
        r->why = "could not start the reference process";
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int ok = r->c.out && getline(&line, &cap, r->c.out) > 0 && strstr(line, "\"ready\"");
    free(line);
    if (!ok) {
        kiln_ba_ref_fail_(r, "the reference process failed to start");
        return -1;
    }
    r->up = 1;
    return 0;
}

/* One reference pass into r->texts. @returns its elapsed seconds (as it
 * measured them), or -1. */
static double kiln_ba_ref_pass_(kiln_ba_ref_t *r, const kiln_ba_file_t *f, int n) {
    fprintf(r->c.in, "run\n");
    fflush(r->c.in);
    char *line = NULL;
    size_t cap = 0;
    double el = -1.0;
    if (getline(&line, &cap, r->c.out) > 0) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        json_t *e = o ? json_object_get(o, "elapsed") : NULL;
        if (json_is_number(e)) {
            el = json_number_value(e);
            r->rss_kb = (long)json_integer_value(json_object_get(o, "maxrss_kb"));
            json_t *tx = json_object_get(o, "texts");
            for (int i = 0; i < n; i++) {
                const char *base = strrchr(f[i].name, '/') ? strrchr(f[i].name, '/') + 1
                                                           : f[i].name;
                const char *s = json_string_value(json_object_get(tx, base));
                free(r->texts[i]);
                r->texts[i] = strdup(s ? s : "");
            }
        }
        json_decref(o);
    }
    free(line);
    if (el < 0)
        kiln_ba_ref_fail_(r, "the reference pass failed");
    return el;
}

/* ---- WER ---------------------------------------------------------------- */

/* Lower-cases ASCII, keeps letters, digits and apostrophes, splits on the rest. */
static int kiln_ba_words_(const char *s, char ***out) {
    int n = 0, cap = 16;
    char **w = malloc(sizeof(char *) * cap);
    char buf[256];
    int len = 0;
    for (const char *p = s;; p++) {
        unsigned char c = (unsigned char)*p;
        int keep = c && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '\'' || c >= 0x80);
        if (keep && len < (int)sizeof(buf) - 1) {
            buf[len++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        } else if (!keep && len > 0) {
            buf[len] = '\0';
            if (n == cap) {
                cap *= 2;
                w = realloc(w, sizeof(char *) * cap);
            }
            w[n++] = strdup(buf);
            len = 0;
        }
        if (!c)
            break;
    }
    *out = w;
    return n;
}

/* Word edit distance of hyp against ref. */
static int kiln_ba_edits_(char **r, int nr, char **h, int nh) {
    int *prev = malloc(sizeof(int) * (nh + 1)), *cur = malloc(sizeof(int) * (nh + 1));
    for (int j = 0; j <= nh; j++)
        prev[j] = j;
    for (int i = 1; i <= nr; i++) {
        cur[0] = i;
        for (int j = 1; j <= nh; j++) {
            int sub = prev[j - 1] + (strcmp(r[i - 1], h[j - 1]) != 0);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        int *t = prev;
        prev = cur;
        cur = t;
    }
    int d = prev[nh];
    free(prev);
    free(cur);
    return d;
}

/* WER in percent with the basic normaliser (when the venv is absent). */
static double kiln_ba_wer_basic_(const kiln_ba_file_t *f, int n, char **texts) {
    long edits = 0, words = 0;
    for (int i = 0; i < n; i++) {
        char **rw, **hw;
        int nr = kiln_ba_words_(f[i].ref, &rw), nh = kiln_ba_words_(texts[i] ? texts[i] : "", &hw);
        edits += kiln_ba_edits_(rw, nr, hw, nh);
        words += nr;
        for (int k = 0; k < nr; k++)
            free(rw[k]);
        for (int k = 0; k < nh; k++)
            free(hw[k]);
        free(rw);
        free(hw);
    }
    return words ? 100.0 * edits / words : 0.0;
}

#define KILN_BA_WER_PY "whisper-normalizer"
#define KILN_BA_WER_BASIC "basic (lower case, no punctuation; venv absent)"

/*
 * WER in percent of texts (one per file) with bench/asr_wer.py (Whisper's
 * English normaliser + jiwer), or, when the script or venv is missing or
 * fails, with the basic normaliser above. *how gets KILN_BA_WER_PY or
 * KILN_BA_WER_BASIC.
 */
static double kiln_ba_wer_(const kiln_ba_opts_t *o, const kiln_ba_file_t *f, int n,
                           char **texts, const char **how) {
    char py[1024], sb[1024], tsv[128], cmd[4096];
    double wer = -1.0;
    snprintf(py, sizeof(py), "%s/bin/python", o->venv);
    const char *script = kiln_bench_script("asr_wer.py", sb, sizeof(sb));
    snprintf(tsv, sizeof(tsv), "/tmp/kiln-bench-wer.%d.tsv", (int)getpid());
    FILE *fp = script && kiln_ba_exists_(py) ? fopen(tsv, "w") : NULL;
    if (fp) {
        for (int i = 0; i < n; i++) {
            fprintf(fp, "%s\t", f[i].name);
            for (const char *c = texts[i] ? texts[i] : ""; *c; c++) /* one line per file */
                fputc(*c == '\t' || *c == '\n' ? ' ' : *c, fp);
            fputc('\n', fp);
        }
        fclose(fp);
        snprintf(cmd, sizeof(cmd), "'%s' '%s' --json '%s' '%s' 2>/dev/null", py, script, o->dir,
                 tsv);
        FILE *pp = popen(cmd, "r");
        char line[1024];
        while (pp && fgets(line, sizeof(line), pp)) {
            json_error_t je;
            json_t *j = json_loads(line, 0, &je);
            json_t *v = j ? json_object_get(j, "wer") : NULL;
            if (json_is_number(v))
                wer = json_number_value(v);
            json_decref(j);
        }
        if (pp)
            pclose(pp);
        unlink(tsv);
    }
    *how = wer >= 0 ? KILN_BA_WER_PY : KILN_BA_WER_BASIC;
    return wer >= 0 ? wer : kiln_ba_wer_basic_(f, n, texts);
}

/* ---- options ------------------------------------------------------------ */

static void kiln_ba_usage_(FILE *fp, int wer) {
    if (wer)
        fprintf(fp, "usage: kiln bench wer [OPTIONS] [DIR]\n\n"
                    "Transcribes DIR's files (DIR/transcripts.tsv: file<TAB>reference) with kiln\n"
                    "and prints the WER after Whisper's English normalisation, and the WER of\n"
                    "faster-whisper and whisper.cpp (./var/venv) on the same files and\n"
                    "settings.\n\n");
    else
        fprintf(fp, "usage: kiln bench asr [OPTIONS]\n\n"
                    "Times kiln, faster-whisper and whisper.cpp (./var/venv, child processes)\n"
                    "on the same model, audio and thread count, interleaved (A B C A B C), and\n"
                    "prints each one's real-time factor and WER, the speed ratios, and kiln's\n"
                    "throughput at several batch sizes.\n\n");
    fprintf(fp,
            "  --model PATH      model (default " KILN_BA_DEFAULT_MODEL ")\n"
            "  --dir DIR         audio and transcripts.tsv (default " KILN_BA_DEFAULT_DIR ")\n"
            "  --threads N       CPU threads of both sides (default: all CPUs)\n"
            "  --preset P        greedy (default: beam 1, temperature 0, no conditioning)\n"
            "                    or default (faster-whisper's defaults)\n"
            "  --beam N          beam size of both sides (overrides the preset's)\n"
            "  --batch N         kiln's windows decoded together (default 8)\n"
            "  --files N         only the first N files\n"
            "  --refs LIST       baselines, comma-separated (default\n"
            "                    faster-whisper,whisper.cpp; whisper.cpp needs pywhispercpp\n"
            "                    in the venv and converts the model to ggml once)\n"
            "  --no-ref          kiln only\n"
            "  --venv DIR        the baselines' venv (default var/venv)\n"
            "  --ref-omp MODE    passive (default: OMP_WAIT_POLICY=PASSIVE for the\n"
            "                    baselines, their best case on a busy machine) or active\n"
            "  --json            also print one JSON object as the last line\n");
    if (!wer)
        fprintf(fp,
                "  --reps N          timed passes per side (default 5), after a warm-up\n"
                "  --scaling LIST    kiln batch sizes to measure (default 1,8,32; \"\" none)\n"
                "  --scaling-reps N  passes per batch size (default 3)\n"
                "  --out FILE        result JSON (default bench/results/asr-DATE-HOST.json)\n"
                "  --no-save         do not write the result JSON\n");
    fprintf(fp, "  -h, --help        this text\n");
}

/* @returns 0, 1 (help printed) or -1 (usage error printed). */
static int kiln_ba_parse_(int argc, char **argv, kiln_ba_opts_t *o, int wer) {
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'}, {"dir", required_argument, 0, 'd'},
        {"threads", required_argument, 0, 't'}, {"preset", required_argument, 0, 'p'},
        {"beam", required_argument, 0, 'b'}, {"batch", required_argument, 0, 'B'},
        {"files", required_argument, 0, 'F'}, {"no-ref", no_argument, 0, 'N'},
        {"venv", required_argument, 0, 'v'}, {"json", no_argument, 0, 'j'},
        {"reps", required_argument, 0, 'r'}, {"scaling", required_argument, 0, 's'},
        {"scaling-reps", required_argument, 0, 'R'}, {"out", required_argument, 0, 'o'},
        {"no-save", no_argument, 0, 'x'}, {"ref-omp", required_argument, 0, 'O'},
        {"refs", required_argument, 0, 'f'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    memset(o, 0, sizeof(*o));
    o->model = KILN_BA_DEFAULT_MODEL;
    o->dir = KILN_BA_DEFAULT_DIR;
    o->preset = "greedy";
    o->venv = "var/venv";
    o->ref_omp = "passive";
    o->refs = "faster-whisper,whisper.cpp";
    o->batch = 8;
    o->reps = 5;
    o->sreps = 3;
    o->scaling[0] = 1;
    o->scaling[1] = 8;
    o->scaling[2] = 32;
    o->n_scaling = wer ? 0 : 3;
    const char *me = wer ? "kiln bench wer" : "kiln bench asr";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        char *end = NULL;
        long v = 0;
        if (optarg && strchr("tbBFrR", c)) {
            v = strtol(optarg, &end, 10);
            if (*end || v < (c == 't' || c == 'b' ? 0 : 1) || v > 4096) {
                fprintf(stderr, "%s: invalid value \"%s\" for an option\n", me, optarg);
                return -1;
            }
        }
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'd': o->dir = optarg; break;
        case 't': o->threads = (int)v; break;
        case 'p':
            if (strcmp(optarg, "greedy") && strcmp(optarg, "default")) {
                fprintf(stderr, "%s: invalid --preset \"%s\" (greedy or default)\n", me, optarg);
                return -1;
            }
            o->preset = optarg;
            break;
        case 'b': o->beam = (int)v; break;
        case 'B': o->batch = (int)v; break;
        case 'F': o->max_files = (int)v; break;
        case 'N': o->no_ref = 1; break;
        case 'f': o->refs = optarg; break;
        case 'v': o->venv = optarg; break;
        case 'j': o->json = 1; break;
        case 'r': o->reps = (int)(v > 50 ? 50 : v); break;
        case 'R': o->sreps = (int)(v > 50 ? 50 : v); break;
        case 'o': o->out = optarg; break;
        case 'x': o->no_save = 1; break;
        case 'O':
            if (strcmp(optarg, "passive") && strcmp(optarg, "active")) {
                fprintf(stderr, "%s: invalid --ref-omp \"%s\" (passive or active)\n", me, optarg);
                return -1;
            }
            o->ref_omp = optarg;
            break;
        case 's': {
            o->n_scaling = 0;
            char *dup = strdup(optarg), *save = NULL;
            for (char *t = strtok_r(dup, ",", &save); t && o->n_scaling < 8;
                 t = strtok_r(NULL, ",", &save)) {
                int b = atoi(t);
                if (b < 1 || b > 256) {
                    fprintf(stderr, "%s: invalid batch size \"%s\" in --scaling\n", me, t);
                    free(dup);
                    return -1;
                }
                o->scaling[o->n_scaling++] = b;
            }
            free(dup);
            break;
        }
        case 'h': kiln_ba_usage_(stdout, wer); return 1;
        default: kiln_ba_usage_(stderr, wer); return -1;
        }
    }
    if (wer && optind < argc)
        o->dir = argv[optind++];
    if (optind < argc) {
        kiln_ba_usage_(stderr, wer);
        return -1;
    }
    return 0;
}

static void kiln_ba_machine_(char *host, size_t hs, char *cpu, size_t cs, char *date,
                             size_t ds) {
    if (gethostname(host, hs))
        snprintf(host, hs, "unknown");
    host[hs - 1] = '\0';
    snprintf(cpu, cs, "unknown");
    FILE *fp = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (fp && fgets(line, sizeof(line), fp))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            snprintf(cpu, cs, "%s", strchr(line, ':') + 2);
            cpu[strcspn(cpu, "\n")] = '\0';
            break;
        }
    if (fp)
        fclose(fp);
    time_t now = time(NULL);
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    if (sde)
        now = (time_t)atoll(sde);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, ds, "%Y-%m-%d", &tm);
}

static void kiln_ba_texts_free_(char **t, int n) {
    for (int i = 0; t && i < n; i++)
        free(t[i]);
    free(t);
}

/*
 * What both commands start with: parses the options, sets the threads,
 * loads the model and decodes DIR's files.
 * @returns the file count, or 0 with *rc the exit status (0 after --help).
 */
static int kiln_ba_setup_(int argc, char **argv, int wer, kiln_ba_run_t *x, int *rc) {
    kiln_ba_opts_t *o = &x->o;
    kiln_whisper_model_t **m = &x->m;
    char err[512];
    memset(x, 0, sizeof(*x));
    const char *me = wer ? "kiln bench wer" : "kiln bench asr";
    int pr = kiln_ba_parse_(argc, argv, o, wer);
    *rc = pr > 0 ? 0 : 2;
    if (pr)
        return 0;
    *rc = 1;
    if (o->threads > 0)
        kiln_kernels_set_threads(o->threads);
    if (!(*m = kiln_whisper_model_load(o->model, err, sizeof(err)))) {
        fprintf(stderr, "%s: %s\n", me, err);
        return 0;
    }
    int n = kiln_ba_files_load_(o->dir, o->max_files, &x->f);
    if (n <= 0) {
        kiln_whisper_model_destroy(*m);
        return 0;
    }
    x->n = n;
    kiln_ba_machine_(x->host, sizeof(x->host), x->cpu, sizeof(x->cpu), x->date, sizeof(x->date));
    x->kt = calloc((size_t)n, sizeof(char *));
    kiln_ba_refs_init_(x->refs, n);
    *rc = 0;
    return n;
}

/* Starts the baselines --refs asks for (all unless --no-ref). */
static void kiln_ba_refs_start_(kiln_ba_ref_t r[2], const kiln_ba_opts_t *o,
                                const kiln_ba_file_t *f, int n) {
    for (int k = 0; k < 2; k++) {
        if (o->no_ref)
            r[k].why = "no reference: --no-ref";
        else if (!strstr(o->refs, r[k].name))
            r[k].why = "not asked for (--refs)";
        else if (kiln_ba_ref_start_(&r[k], o, f, n))
            kiln_bench_child_stop(&r[k].c);
    }
}

/* One pass of every running baseline; one that fails is stopped with its
 * reason and left out from then on. timed: keep the times. */
static void kiln_ba_refs_pass_(kiln_ba_ref_t r[2], const kiln_ba_file_t *f, int n, int timed) {
    for (int k = 0; k < 2; k++) {
        if (!r[k].up)
            continue;
        double t = kiln_ba_ref_pass_(&r[k], f, n);
        if (t < 0) {
            fprintf(stderr, "\nkiln bench: %s: %s\n", r[k].name, r[k].why);
            r[k].up = 0;
            r[k].nt = 0;
            kiln_bench_child_stop(&r[k].c);
        } else if (timed && r[k].nt < 64) {
            r[k].t[r[k].nt++] = t;
            fprintf(stderr, "  %s %.2f s", r[k].name, t);
        }
    }
}

static void kiln_ba_refs_free_(kiln_ba_ref_t r[2], int n) {
    for (int k = 0; k < 2; k++) {
        kiln_bench_child_stop(&r[k].c);
        kiln_ba_texts_free_(r[k].texts, n);
        r[k].texts = NULL;
    }
}

/* Frees what kiln_ba_setup_() made. */
static void kiln_ba_teardown_(kiln_ba_run_t *x) {
    kiln_ba_refs_free_(x->refs, x->n);
    kiln_ba_texts_free_(x->kt, x->n);
    kiln_ba_files_free_(x->f, x->n);
    kiln_whisper_model_destroy(x->m);
}

/* Stops the baselines and scores the last pass of kiln (@returns its WER) and
 * of each baseline that ran (into its wer). *how: as kiln_ba_wer_(). */
static double kiln_ba_wers_(kiln_ba_run_t *x, const char **how) {
    double wk = kiln_ba_wer_(&x->o, x->f, x->n, x->kt, how);
    for (int k = 0; k < 2; k++) {
        kiln_bench_child_stop(&x->refs[k].c);
        if (x->refs[k].nt)
            x->refs[k].wer = kiln_ba_wer_(&x->o, x->f, x->n, x->refs[k].texts, how);
    }
    return wk;
}

/* Why a baseline has no results. */
static const char *kiln_ba_ref_why_(const kiln_ba_ref_t *r) {
    return r->why ? r->why : "did not run";
}

/* One implementation's row of the result JSON. */
static json_t *kiln_ba_result_json_(const char *impl, const double *t, int nt, double audio_s,
                                    double wer, double rss_mb) {
    json_t *r = json_object(), *times = json_array();
    const double med = kiln_bench_median(t, nt);
    for (int i = 0; i < nt; i++)
        json_array_append_new(times, json_real(t[i]));
    json_object_set_new(r, "impl", json_string(impl));
    json_object_set_new(r, "wall_s", json_real(med));
    json_object_set_new(r, "wall_s_all", times);
    json_object_set_new(r, "rtf", json_real(med / audio_s));
    json_object_set_new(r, "x_realtime", json_real(audio_s / med));
    json_object_set_new(r, "wer", json_real(wer));
    json_object_set_new(r, "peak_rss_mb", json_real(rss_mb));
    return r;
}

/* ---- kiln bench asr ----------------------------------------------------- */

int kiln_cmd_bench_asr(int argc, char **argv) {
    kiln_ba_run_t x;
    int rc;
    if (!kiln_ba_setup_(argc, argv, 0, &x, &rc))
        return rc;
    const int threads = x.o.threads > 0 ? x.o.threads : kiln_kernels_threads();
    const double audio_s = kiln_ba_audio_s_(x.f, x.n);
    double tk[64], wk = -1.0;
    int nk = 0;
    kiln_ba_refs_start_(x.refs, &x.o, x.f, x.n);
    kiln_whisper_params_t p = kiln_ba_params_(&x.o, x.o.batch);
    double load0 = 0.0;
    getloadavg(&load0, 1);
    fprintf(stderr, "kiln bench asr: %d files, %.1f s of audio, %d threads, preset %s, beam %d, "
            "kiln batch %d\n", x.n, audio_s, threads, x.o.preset, p.beam_size, x.o.batch);
    for (int k = 0; k < 2; k++)
        fprintf(stderr, "  %s: %s\n", x.refs[k].name, x.refs[k].up ? "started" : x.refs[k].why);
    /* warm-up, then kiln and each baseline in turn: A B C A B C */
    rc = 0;
    if (kiln_ba_kiln_pass_(x.m, &p, x.f, x.n, x.kt) < 0) {
        fprintf(stderr, "kiln bench asr: the warm-up pass failed\n");
        rc = 1;
        goto out;
    }
    kiln_ba_refs_pass_(x.refs, x.f, x.n, 0);
    for (int r = 0; r < x.o.reps; r++) {
        double t = kiln_ba_kiln_pass_(x.m, &p, x.f, x.n, x.kt);
        if (t < 0) {
            rc = 1;
            goto out;
        }
        tk[nk++] = t;
        fprintf(stderr, "  rep %d: kiln %.2f s", r + 1, t);
        kiln_ba_refs_pass_(x.refs, x.f, x.n, 1);
        fprintf(stderr, "\n");
    }
    const char *wer_how;
    wk = kiln_ba_wers_(&x, &wer_how);
    /* batch scaling, kiln alone */
    double sc_t[8] = {0};
    for (int s = 0; s < x.o.n_scaling; s++) {
        kiln_whisper_params_t ps = kiln_ba_params_(&x.o, x.o.scaling[s]);
        double ts[64];
        int nts = 0;
        kiln_ba_kiln_pass_(x.m, &ps, x.f, x.n, NULL); /* warm-up (workspace sizes) */
        for (int r = 0; r < x.o.sreps; r++) {
            double t = kiln_ba_kiln_pass_(x.m, &ps, x.f, x.n, NULL);
            if (t > 0)
                ts[nts++] = t;
        }
        sc_t[s] = kiln_bench_median(ts, nts);
        fprintf(stderr, "  scaling: batch %d: %.2f s (median of %d)\n", x.o.scaling[s], sc_t[s],
                nts);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double mk = kiln_bench_median(tk, nk);

    /* table */
    printf("ASR on CPU (%s, %d threads): %s, %d files, %.1f s of audio\n", x.cpu, threads, x.o.dir,
           x.n, audio_s);
    printf("model %s, preset %s, beam %d; median of %d interleaved passes after a warm-up\n",
           x.o.model, x.o.preset, p.beam_size, x.o.reps);
    printf("load average at start %.2f; references with OMP_WAIT_POLICY %s\n\n", load0,
           strcmp(x.o.ref_omp, "active") ? "PASSIVE" : "(library default)");
    printf("  %-16s %10s %10s %12s %8s\n", "implementation", "wall s", "RTF", "x real time",
           "WER %");
    printf("  %-16s %10.2f %10.4f %12.1f %8.2f\n", "kiln", mk, mk / audio_s, audio_s / mk, wk);
    for (int k = 0; k < 2; k++) {
        double mr = kiln_bench_median(x.refs[k].t, x.refs[k].nt);
        if (x.refs[k].nt)
            printf("  %-16s %10.2f %10.4f %12.1f %8.2f\n", x.refs[k].name, mr, mr / audio_s,
                   audio_s / mr, x.refs[k].wer);
        else
            printf("  %-16s %s\n", x.refs[k].name, kiln_ba_ref_why_(&x.refs[k]));
    }
    printf("\n");
    for (int k = 0; k < 2; k++)
        if (x.refs[k].nt && mk > 0)
            printf("  ratio (kiln speed / %s speed): %.2fx\n", x.refs[k].name,
                   kiln_bench_median(x.refs[k].t, x.refs[k].nt) / mk);
    printf("  WER normalisation: %s\n", wer_how);
    if (x.o.n_scaling) {
        printf("\n  kiln throughput by batch size (same files, median of %d):\n", x.o.sreps);
        printf("  %8s %10s %12s %10s\n", "batch", "wall s", "x real time", "vs batch 1");
        for (int s = 0; s < x.o.n_scaling; s++)
            printf("  %8d %10.2f %12.1f %9.2fx\n", x.o.scaling[s], sc_t[s], audio_s / sc_t[s],
                   sc_t[0] / sc_t[s]);
    }
    printf("\n  peak RSS: kiln %.0f MB", ru.ru_maxrss / 1024.0);
    for (int k = 0; k < 2; k++)
        if (x.refs[k].nt && x.refs[k].rss_kb)
            printf(", %s %.0f MB", x.refs[k].name, x.refs[k].rss_kb / 1024.0);
    printf("\n");

    /* JSON */
    json_t *results = json_array(), *ratios = json_object(), *refs_j = json_object();
    for (int k = 0; k < 2; k++)
        json_object_set_new(refs_j, x.refs[k].name,
                            json_string(x.refs[k].nt ? x.refs[k].what
                                                     : kiln_ba_ref_why_(&x.refs[k])));
    json_t *j = json_pack("{s:s, s:s, s:s}", "bench", "asr", "machine", x.host, "date", x.date);
    json_t *params = json_pack(
        "{s:s, s:s, s:i, s:s, s:s, s:i, s:f, s:s, s:i, s:i, s:i, s:s, s:s, s:f, s:o, s:s}",
        "device", "cpu", "cpu", x.cpu, "threads", threads, "model", x.o.model, "dir", x.o.dir,
        "files", x.n, "audio_s", audio_s, "preset", x.o.preset, "beam", p.beam_size, "batch",
        x.o.batch, "reps", x.o.reps, "wer_normaliser", wer_how, "ref_omp_wait_policy",
        x.o.ref_omp, "loadavg_start", load0, "refs", refs_j, "note",
        "CPU only: absolute times are not comparable across machines; compare ratios");
    json_t *rk = kiln_ba_result_json_("kiln", tk, nk, audio_s, wk, ru.ru_maxrss / 1024.0);
    json_object_set_new(rk, "batch", json_integer(x.o.batch));
    json_array_append_new(results, rk);
    for (int k = 0; k < 2; k++) {
        if (!x.refs[k].nt)
            continue;
        const kiln_ba_ref_t *r = &x.refs[k];
        json_array_append_new(results, kiln_ba_result_json_(r->name, r->t, r->nt, audio_s, r->wer,
                                                            r->rss_kb / 1024.0));
        json_object_set_new(ratios, x.refs[k].name,
                            json_real(kiln_bench_median(x.refs[k].t, x.refs[k].nt) / mk));
    }
    for (int s = 0; s < x.o.n_scaling; s++) {
        json_t *rs = json_object();
        json_object_set_new(rs, "impl", json_string("kiln"));
        json_object_set_new(rs, "scaling", json_true());
        json_object_set_new(rs, "batch", json_integer(x.o.scaling[s]));
        json_object_set_new(rs, "wall_s", json_real(sc_t[s]));
        json_object_set_new(rs, "x_realtime", json_real(audio_s / sc_t[s]));
        json_array_append_new(results, rs);
    }
    json_object_set_new(j, "params", params);
    json_object_set_new(j, "results", results);
    /* "ratio" and "wer_ref": faster-whisper's, as before whisper.cpp was added */
    json_object_set(j, "ratio", json_object_get(ratios, "faster-whisper")
                                    ? json_object_get(ratios, "faster-whisper") : json_null());
    json_object_set_new(j, "ratios", ratios);
    json_object_set_new(j, "wer_kiln", json_real(wk));
    json_object_set_new(j, "wer_ref", x.refs[0].nt ? json_real(x.refs[0].wer) : json_null());
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
    if (!x.o.no_save && s)
        kiln_bench_save_as("asr", s, x.o.out, x.date, x.host);
    if (x.o.json && s)
        printf("%s\n", s);
    free(s);
    json_decref(j);
out:
    kiln_ba_teardown_(&x);
    return rc;
}

/* ---- kiln bench wer ----------------------------------------------------- */

int kiln_cmd_bench_wer(int argc, char **argv) {
    kiln_ba_run_t x;
    int rc;
    if (!kiln_ba_setup_(argc, argv, 1, &x, &rc))
        return rc;
    kiln_whisper_params_t p = kiln_ba_params_(&x.o, x.o.batch);
    double tk = kiln_ba_kiln_pass_(x.m, &p, x.f, x.n, x.kt), wk = -1.0;
    if (tk < 0) {
        rc = 1;
        goto out;
    }
    kiln_ba_refs_start_(x.refs, &x.o, x.f, x.n);
    kiln_ba_refs_pass_(x.refs, x.f, x.n, 1);
    const char *how;
    wk = kiln_ba_wers_(&x, &how);
    fprintf(stderr, "\n");
    printf("WER on %s (%d files), model %s, preset %s, beam %d\n", x.o.dir, x.n, x.o.model,
           x.o.preset, p.beam_size);
    printf("  normalisation: %s\n", how);
    printf("  %-16s %8.2f %%\n", "kiln", wk);
    for (int k = 0; k < 2; k++)
        if (x.refs[k].nt)
            printf("  %-16s %8.2f %%   (difference %+.2f)\n", x.refs[k].name, x.refs[k].wer,
                   wk - x.refs[k].wer);
        else
            printf("  %-16s %s\n", x.refs[k].name, kiln_ba_ref_why_(&x.refs[k]));
    if (x.o.json) {
        json_t *wr = json_object();
        for (int k = 0; k < 2; k++)
            json_object_set_new(wr, x.refs[k].name,
                                x.refs[k].nt ? json_real(x.refs[k].wer) : json_null());
        json_t *j = json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:i, s:s, s:i, s:s}, s:f, s:O, s:o, "
                              "s:f}", "bench", "wer", "machine", x.host, "date", x.date, "params",
                              "model", x.o.model, "dir", x.o.dir, "files", x.n, "preset",
                              x.o.preset, "beam", p.beam_size, "normaliser", how, "wer_kiln", wk,
                              "wer_ref", json_object_get(wr, "faster-whisper"), "wer_refs", wr,
                              "kiln_wall_s", tk);
        char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(j);
    }
out:
    kiln_ba_teardown_(&x);
    return rc;
}
