/*
 * cmd/transcribe.c - `kiln transcribe`: speech to text on local files, with
 * no broker and no database. It runs the same engine the worker runs
 * (models/whisper/engine_whisper.c), with every file of the command line in
 * one batch.
 *
 *   kiln transcribe [--model PATH] [--format txt|json|srt|vtt] [--beam N]
 *                   [--threads N] [--language CODE] [--batch N] [--greedy]
 *                   [--best-of N] [--temperature T[,T...]] [--no-condition]
 *                   [--backend cpu|cuda|auto] [--precision P] FILE...
 *
 * Decoding defaults are faster-whisper's (beam 5, temperature fallback,
 * conditioning on previous text); --greedy selects the golden files'
 * settings (beam 1, temperature 0 only, no conditioning).
 *
 * Output goes to stdout: txt prints each file's text on one line (prefixed
 * with the file name when there are several); json prints one object per
 * file and line ({"file","text","language","duration","segments":[{"start",
 * "end","text"}]}); srt and vtt print subtitles, one block per file (vtt
 * adds a "NOTE <file>" line when there are several; srt has no comments).
 * Exit status: 0 when every file was transcribed, 1 when one failed, 2 on
 * a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/audio.h"
#include "kiln/conf.h"
#include "kiln/engine.h"
#include "kiln/whisper.h"

extern const kiln_engine_ops_t kiln_engine_whisper_ops;

int kiln_cmd_transcribe(int argc, char **argv);

static void kiln_transcribe_usage_(FILE *fp) {
    fprintf(fp,
            "usage: kiln transcribe [OPTIONS] FILE...\n"
            "\n"
            "Transcribes audio files (wav, flac, ogg/opus, ...) with Whisper, locally.\n"
            "\n"
            "  --model PATH      CTranslate2 model directory or ggml file\n"
            "                    (default: var/models/whisper-tiny.en; `make models`)\n"
            "  --format FMT      txt (default), json, srt or vtt\n"
            "  --beam N          beam size (default 5; 1: greedy)\n"
            "  --best-of N       samples per fallback temperature (default 5)\n"
            "  --temperature L   fallback temperatures, comma-separated\n"
            "                    (default 0,0.2,0.4,0.6,0.8,1; \"0\": no fallback)\n"
            "  --no-condition    do not prompt a window with the previous text\n"
            "  --greedy          beam 1, temperature 0, no conditioning (the golden\n"
            "                    files' settings)\n"
            "  --threads N       CPU threads (default: all cores)\n"
            "  --language CODE   language of multilingual models (default: detect)\n"
            "  --batch N         30 s windows decoded together (default 8)\n"
            "  --backend B       cpu (default), cuda (a `make CUDA=1` build on a GPU) or\n"
            "                    auto (cuda when a GPU is visible)\n"
            "  --precision P     cuda matrix inputs: fp32, tf32, fp16 (default) or bf16\n"
            "  --help            this text\n");
}

static char *kiln_transcribe_read_(const char *path, size_t *len, char *err, size_t errsz) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errsz, "could not open \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 20;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(fp);
                snprintf(err, errsz, "could not read \"%s\": out of memory", path);
                return NULL;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, fp);
        n += got;
    } while (got > 0);
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        free(buf);
        snprintf(err, errsz, "could not read \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    *len = n;
    return buf;
}

/* Formats ms as HH:MM:SS<sep>mmm. */
static void kiln_transcribe_ts_(char *buf, size_t size, int64_t ms, char sep) {
    if (ms < 0)
        ms = 0;
    snprintf(buf, size, "%02lld:%02lld:%02lld%c%03lld", (long long)(ms / 3600000),
             (long long)(ms / 60000 % 60), (long long)(ms / 1000 % 60), sep,
             (long long)(ms % 1000));
}

static void kiln_transcribe_print_(const char *fmt, const char *file, int many,
                                   const kiln_transcript_t *t) {
    if (!strcmp(fmt, "txt")) {
        if (many)
            printf("%s: %s\n", file, t->text ? t->text : "");
        else
            printf("%s\n", t->text ? t->text : "");
    } else if (!strcmp(fmt, "json")) {
        json_t *o = json_object(), *segs = json_array();
        json_object_set_new(o, "file", json_string(file));
        json_object_set_new(o, "text", json_string(t->text ? t->text : ""));
        json_object_set_new(o, "language", json_string(t->language));
        json_object_set_new(o, "duration", json_real(t->duration_s));
        for (int s = 0; s < t->n_segments; s++) {
            json_t *sg = json_object();
            json_object_set_new(sg, "start", json_real(t->segments[s].start_ms / 1000.0));
            json_object_set_new(sg, "end", json_real(t->segments[s].end_ms / 1000.0));
            json_object_set_new(sg, "text", json_string(t->segments[s].text));
            json_array_append_new(segs, sg);
        }
        json_object_set_new(o, "segments", segs);
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        int vtt = !strcmp(fmt, "vtt");
        char a[32], b[32];
        if (vtt)
            printf("WEBVTT\n\n");
        if (many)
            printf(vtt ? "NOTE %s\n\n" : "", file);
        for (int s = 0; s < t->n_segments; s++) {
            kiln_transcribe_ts_(a, sizeof(a), t->segments[s].start_ms, vtt ? '.' : ',');
            kiln_transcribe_ts_(b, sizeof(b), t->segments[s].end_ms, vtt ? '.' : ',');
            if (!vtt)
                printf("%d\n", s + 1);
            printf("%s --> %s\n%s\n\n", a, b, t->segments[s].text);
        }
    }
    fflush(stdout);
}

int kiln_cmd_transcribe(int argc, char **argv) {
    static struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"format", required_argument, 0, 'f'},
        {"beam", required_argument, 0, 'b'},    {"threads", required_argument, 0, 't'},
        {"language", required_argument, 0, 'l'}, {"batch", required_argument, 0, 'B'},
        {"help", no_argument, 0, 'h'},          {"greedy", no_argument, 0, 'g'},
        {"best-of", required_argument, 0, 'o'}, {"temperature", required_argument, 0, 'T'},
        {"no-condition", no_argument, 0, 'C'},  {"backend", required_argument, 0, 'K'},
        {"precision", required_argument, 0, 'P'}, {0, 0, 0, 0}};
    const char *model = NULL, *fmt = "txt", *lang = NULL, *temps = NULL, *backend = NULL;
    const char *precision = NULL;
    int beam = 0, threads = 0, batch = 8, greedy = 0, best_of = 0, nocond = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:f:b:t:l:B:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'f': fmt = optarg; break;
        case 'b': beam = atoi(optarg); if (beam < 1) beam = -1; break;
        case 'g': greedy = 1; break;
        case 'o': best_of = atoi(optarg); if (best_of < 1) best_of = -1; break;
        case 'T': temps = optarg; break;
        case 'C': nocond = 1; break;
        case 't': threads = atoi(optarg); break;
        case 'l': lang = optarg; break;
        case 'B': batch = atoi(optarg); break;
        case 'K': backend = optarg; break;
        case 'P': precision = optarg; break;
        case 'h': kiln_transcribe_usage_(stdout); return 0;
        default: kiln_transcribe_usage_(stderr); return 2;
        }
    }
    if (strcmp(fmt, "txt") && strcmp(fmt, "json") && strcmp(fmt, "srt") && strcmp(fmt, "vtt")) {
        fprintf(stderr, "kiln transcribe: invalid --format \"%s\" (txt, json, srt or vtt)\n",
                fmt);
        return 2;
    }
    if (optind >= argc || beam < 0 || best_of < 0 || threads < 0 || batch < 1) {
        kiln_transcribe_usage_(stderr);
        return 2;
    }
    float tv[8];
    int nt = 0;
    if (temps) {
        char *dup = strdup(temps), *save = NULL;
        for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            char *end;
            float v = strtof(t, &end);
            if (*end || v < 0.0f || nt == 8) {
                nt = -1;
                break;
            }
            tv[nt++] = v;
        }
        free(dup);
        if (nt <= 0) {
            fprintf(stderr, "kiln transcribe: invalid --temperature \"%s\" (1 to 8 values >= 0)\n",
                    temps);
            return 2;
        }
    }
    if (threads > 0) {
        char tb[16];
        snprintf(tb, sizeof(tb), "%d", threads);
        setenv("KILN_WHISPER_THREADS", tb, 1);
    }
    char err[512], num[16];
    kiln_conf_t *conf = kiln_conf_new();
    snprintf(num, sizeof(num), "%d", batch);
    if ((model && kiln_conf_set(conf, "worker.model", model, err, sizeof(err))) ||
        (backend && kiln_conf_set(conf, "whisper.backend", backend, err, sizeof(err))) ||
        (precision && kiln_conf_set(conf, "whisper.precision", precision, err, sizeof(err))) ||
        kiln_conf_set(conf, "worker.max_batch", num, err, sizeof(err))) {
        fprintf(stderr, "kiln transcribe: %s\n", err);
        kiln_conf_destroy(conf);
        return 2;
    }
    void *eng = kiln_engine_whisper_ops.load(conf, err, sizeof(err));
    kiln_conf_destroy(conf);
    if (!eng) {
        fprintf(stderr, "kiln transcribe: %s\n", err);
        return 1;
    }
    kiln_whisper_params_t *wp = kiln_whisper_engine_params(eng);
    if (greedy) {
        kiln_whisper_params_t g = kiln_whisper_greedy_params();
        g.max_batch = wp->max_batch;
        g.n_threads = wp->n_threads;
        *wp = g;
    }
    if (beam > 0)
        wp->beam_size = beam;
    if (best_of > 0)
        wp->best_of = best_of;
    if (nt > 0) {
        memcpy(wp->temperatures, tv, sizeof(float) * nt);
        wp->n_temperatures = nt;
    }
    if (nocond)
        wp->condition_on_previous_text = 0;
    int n = argc - optind, rc = 0, ok = 0;
    kiln_audio_t *au = calloc((size_t)n, sizeof(*au));
    kiln_asr_request_t *reqs = calloc((size_t)n, sizeof(*reqs));
    kiln_transcript_t *out = calloc((size_t)n, sizeof(*out));
    const char **names = calloc((size_t)n, sizeof(*names));
    if (!au || !reqs || !out || !names) {
        fprintf(stderr, "kiln transcribe: out of memory\n");
        rc = 1;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const char *path = argv[optind + i];
        size_t len;
        char *bytes = kiln_transcribe_read_(path, &len, err, sizeof(err));
        if (bytes) {
            kiln_err_t e = kiln_audio_decode(bytes, len, 16000, 0, &au[ok], err, sizeof(err));
            free(bytes);
            if (e == KILN_OK) {
                reqs[ok].job_id = path;
                reqs[ok].pcm = au[ok].pcm;
                reqs[ok].n_samples = au[ok].n_samples;
                reqs[ok].rms_dbfs = au[ok].rms_dbfs;
                reqs[ok].peak_dbfs = au[ok].peak_dbfs;
                reqs[ok].language = lang;
                reqs[ok].beam_size = 0; /* the engine's (set above) */
                names[ok++] = path;
                continue;
            }
        }
        fprintf(stderr, "kiln transcribe: %s\n", err);
        rc = 1;
    }
    if (ok > 0) {
        kiln_err_t e = kiln_engine_whisper_ops.run_batch(eng, reqs, ok, out);
        if (e != KILN_OK) {
            fprintf(stderr, "kiln transcribe: could not transcribe: %s\n", kiln_err2str(e));
            rc = 1;
        }
        for (int i = 0; i < ok && e == KILN_OK; i++) {
            if (out[i].err != KILN_OK) {
                fprintf(stderr, "kiln transcribe: could not transcribe \"%s\": %s\n", names[i],
                        out[i].error);
                rc = 1;
                continue;
            }
            kiln_transcribe_print_(fmt, names[i], n > 1, &out[i]);
        }
    }
done:
    for (int i = 0; au && out && i < n; i++) {
        kiln_audio_free(&au[i]);
        kiln_transcript_clear(&out[i]);
    }
    free(au);
    free(reqs);
    free(out);
    free(names);
    kiln_engine_whisper_ops.destroy(eng);
    return rc;
}
