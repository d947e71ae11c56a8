/*
 * cmd/speak.c - `kiln speak`: text to speech with a Piper voice, locally,
 * with no broker and no database (models/voice/).
 *
 *   kiln speak [--voice PATH] [--format wav|flac|ogg|opus|mp3] [--rate HZ]
 *              [--noise-scale X] [--length-scale X] [--noise-w X] [--seed N]
 *              [--sentence-silence S] [--threads N] [--backend B]
 *              [--precision P] [--timings FILE]
 *              [--vtt FILE] [--text-file F] -o OUT [TEXT...]
 *
 * The text is the arguments joined by spaces, or the file of --text-file
 * ("-": standard input). Every sentence goes through the model in one
 * batch. The format comes from --format or from OUT's extension (wav by
 * default); --rate resamples with libsoxr (ogg/opus is always 48 kHz).
 * --timings writes word and sentence timings as JSON, --vtt as WebVTT.
 * Exit status: 0 written, 1 synthesis or write failed, 2 usage error.
 */
#include <getopt.h>
#include <soxr.h>
#include <time.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kiln/kernels.h"
#include "kiln/voice.h"

int kiln_cmd_speak(int argc, char **argv);

#define KILN_SPEAK_DEFAULT_VOICE "var/models/voices/en_US-joe-medium"

static void kiln_speak_usage_(FILE *fp) {
    fprintf(fp,
            "usage: kiln speak [OPTIONS] -o OUT [TEXT...]\n"
            "\n"
            "Synthesises speech from text with a Piper (VITS) voice, locally.\n"
            "\n"
            "  -o, --output FILE      audio file to write (required)\n"
            "  --voice PATH           converted voice directory (config.json +\n"
            "                         model.safetensors; default " KILN_SPEAK_DEFAULT_VOICE
            ";\n"
            "                         `make voices`)\n"
            "  --format FMT           wav, flac, ogg (vorbis), opus or mp3 (default: from\n"
            "                         OUT's extension, else wav)\n"
            "  --rate HZ              output sample rate (default: the voice's)\n"
            "  --text-file F          read the text from F (\"-\": standard input)\n"
            "  --noise-scale X        default: the voice's (0.667)\n"
            "  --length-scale X       > 1 speaks slower (default: the voice's)\n"
            "  --noise-w X            duration noise; 0: deterministic durations\n"
            "  --seed N               noise seed (default 1)\n"
            "  --sentence-silence S   seconds of silence after each sentence (0)\n"
            "  --no-normalize         keep the model's level (Piper peak-normalises)\n"
            "  --threads N            CPU threads (default: all cores)\n"
            "  --backend B            where the model runs: cpu (default), cuda (a\n"
            "                         `make CUDA=1` build on a GPU), auto, or ref (the device\n"
            "                         code path on the host, for tests)\n"
            "  --precision P          cuda matrix inputs of the flow and decoder: fp32\n"
            "                         (default), tf32, fp16, bf16\n"
            "  --timings FILE         word and sentence timings as JSON (\"-\": stdout)\n"
            "  --vtt FILE             sentence cues as WebVTT\n"
            "  --repeat N             synthesise N times and print the time of each run\n"
            "                         (JSON lines on stdout; bench/tts.sh)\n"
            "  --help                 this text\n");
}

static char *kiln_speak_read_file_(const char *path) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f)
        return NULL;
    size_t n = 0, cap = 4096;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (buf)
        buf[n] = 0;
    if (f != stdin)
        fclose(f);
    return buf;
}

/* @returns the libsndfile format for a name ("wav", "flac", ...), 0 if unknown. */
static int kiln_speak_format_(const char *name) {
    if (!strcasecmp(name, "wav"))
        return SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    if (!strcasecmp(name, "flac"))
        return SF_FORMAT_FLAC | SF_FORMAT_PCM_16;
    if (!strcasecmp(name, "ogg"))
        return SF_FORMAT_OGG | SF_FORMAT_VORBIS;
    if (!strcasecmp(name, "opus"))
        return SF_FORMAT_OGG | SF_FORMAT_OPUS;
    if (!strcasecmp(name, "mp3"))
        return SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III;
    return 0;
}

static int kiln_speak_write_(const char *path, int format, int rate, const float *pcm, size_t n) {
    SF_INFO info = {.samplerate = rate, .channels = 1, .format = format};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    if (!sf) {
        fprintf(stderr, "kiln speak: could not write \"%s\": %s\n", path, sf_strerror(NULL));
        return -1;
    }
    sf_count_t w = sf_writef_float(sf, pcm, (sf_count_t)n);
    int rc = sf_close(sf);
    if (w != (sf_count_t)n || rc) {
        fprintf(stderr, "kiln speak: could not write \"%s\": %s\n", path, sf_error_number(rc));
        return -1;
    }
    return 0;
}

static int kiln_speak_timings_(const kiln_voice_t *v, const kiln_voice_text_t *tx,
                               const kiln_voice_audio_t *a, const char *path, int vtt) {
    FILE *fp = strcmp(path, "-") ? fopen(path, "w") : stdout;
    if (!fp) {
        perror(path);
        return -1;
    }
    int rc = kiln_voice_write_timings(v, tx, a, vtt, fp);
    if (fp != stdout && fclose(fp))
        rc = -1;
    if (rc)
        fprintf(stderr, "kiln speak: could not write \"%s\"\n", path);
    return rc;
}

int kiln_cmd_speak(int argc, char **argv) {
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'},     {"voice", required_argument, 0, 'v'},
        {"format", required_argument, 0, 'f'},     {"rate", required_argument, 0, 'r'},
        {"text-file", required_argument, 0, 'T'},  {"noise-scale", required_argument, 0, 'n'},
        {"length-scale", required_argument, 0, 'l'}, {"noise-w", required_argument, 0, 'w'},
        {"seed", required_argument, 0, 's'},       {"sentence-silence", required_argument, 0, 'S'},
        {"no-normalize", no_argument, 0, 'N'},     {"threads", required_argument, 0, 't'},
        {"timings", required_argument, 0, 'J'},    {"vtt", required_argument, 0, 'V'},
        {"repeat", required_argument, 0, 'R'},     {"help", no_argument, 0, 'h'},
        {"backend", required_argument, 0, 'K'},    {"precision", required_argument, 0, 'P'},
        {0, 0, 0, 0}};
    const char *out = NULL, *voice = KILN_SPEAK_DEFAULT_VOICE, *fmt = NULL, *text_file = NULL;
    const char *timings = NULL, *vtt = NULL, *backend = NULL, *precision = NULL;
    int rate = 0, threads = 0, repeat = 0;
    kiln_voice_params_t p = kiln_voice_default_params();
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'v': voice = optarg; break;
        case 'f': fmt = optarg; break;
        case 'r': rate = atoi(optarg); break;
        case 'T': text_file = optarg; break;
        case 'n': p.noise_scale = strtof(optarg, NULL); break;
        case 'l': p.length_scale = strtof(optarg, NULL); break;
        case 'w': p.noise_w = strtof(optarg, NULL); break;
        case 's': p.seed = strtoull(optarg, NULL, 10); break;
        case 'S': p.sentence_silence = strtof(optarg, NULL); break;
        case 'N': p.normalize = 0; break;
        case 't': threads = atoi(optarg); break;
        case 'J': timings = optarg; break;
        case 'V': vtt = optarg; break;
        case 'R': repeat = atoi(optarg); break;
        case 'K': backend = optarg; break;
        case 'P': precision = optarg; break;
        case 'h': kiln_speak_usage_(stdout); return 0;
        default: kiln_speak_usage_(stderr); return 2;
        }
    }
    if (!out || (optind >= argc && !text_file) || (optind < argc && text_file) ||
        (rate && (rate < 1000 || rate > 768000))) {
        kiln_speak_usage_(stderr);
        return 2;
    }
    if (!fmt) {
        const char *dot = strrchr(out, '.');
        fmt = dot && kiln_speak_format_(dot + 1) ? dot + 1 : "wav";
    }
    int format = kiln_speak_format_(fmt);
    if (!format) {
        fprintf(stderr, "kiln speak: unknown format \"%s\" (wav, flac, ogg, opus, mp3)\n", fmt);
        return 2;
    }
    char *text = NULL;
    if (text_file) {
        text = kiln_speak_read_file_(text_file);
        if (!text) {
            perror(text_file);
            return 1;
        }
    } else {
        size_t len = 1;
        for (int i = optind; i < argc; i++)
            len += strlen(argv[i]) + 1;
        text = calloc(len, 1);
        for (int i = optind; text && i < argc; i++) {
            if (i > optind)
                strcat(text, " ");
            strcat(text, argv[i]);
        }
    }
    if (threads > 0)
        kiln_kernels_set_threads(threads);

    char err[512];
    int rc = 1;
    kiln_voice_text_t tx = {0};
    kiln_voice_audio_t a = {0};
    float *res = NULL;
    kiln_voice_t *v = kiln_voice_load(voice, err, sizeof(err));
    if (!v || kiln_voice_set_backend(v, backend, precision, err, sizeof(err))) {
        fprintf(stderr, "kiln speak: %s\n", err);
        goto done;
    }
    for (int r = 0; r < (repeat > 0 ? repeat : 1); r++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        kiln_voice_text_clear(&tx);
        kiln_voice_audio_clear(&a);
        if (kiln_voice_phonemize(v, text, &tx, err, sizeof(err)) ||
            kiln_voice_speak_text(v, &tx, &p, &a, err, sizeof(err))) {
            fprintf(stderr, "kiln speak: %s\n", err);
            goto done;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double el = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        double au = (double)a.n_samples / kiln_voice_sample_rate(v);
        if (repeat > 0)
            printf("{\"engine\":\"kiln\",\"run\":%d,\"audio_s\":%.3f,\"synth_s\":%.4f,"
                   "\"rtf\":%.5f,\"threads\":%d,\"sentences\":%d}\n",
                   r, au, el, el / au, threads, a.n_sent);
    }
    int sr = kiln_voice_sample_rate(v), orate = rate ? rate : sr;
    if ((format & SF_FORMAT_SUBMASK) == SF_FORMAT_OPUS)
        orate = 48000; /* the only rate libsndfile's Opus writer takes */
    const float *pcm = a.pcm;
    size_t n = a.n_samples;
    if (orate != sr) {
        size_t olen = (size_t)((double)n * orate / sr) + 16, done = 0;
        res = malloc(olen * sizeof(float));
        soxr_error_t se = res ? soxr_oneshot(sr, orate, 1, a.pcm, n, NULL, res, olen, &done,
                                             NULL, NULL, NULL)
                              : "out of memory";
        if (se) {
            fprintf(stderr, "kiln speak: could not resample to %d Hz: %s\n", orate, se);
            goto done;
        }
        pcm = res;
        n = done;
    }
    if (kiln_speak_write_(out, format, orate, pcm, n))
        goto done;
    if ((timings && kiln_speak_timings_(v, &tx, &a, timings, 0)) ||
        (vtt && kiln_speak_timings_(v, &tx, &a, vtt, 1)))
        goto done;
    fprintf(stderr, "kiln speak: %s: %.2f s of audio, %d sentence(s), %d Hz\n", out,
            (double)a.n_samples / sr, a.n_sent, orate);
    rc = 0;
done:
    free(res);
    free(text);
    kiln_voice_audio_clear(&a);
    kiln_voice_text_clear(&tx);
    kiln_voice_destroy(v);
    return rc;
}
