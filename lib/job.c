/*
 * lib/job.c - job message parsing and validation (kiln/job.h).
 */
#include "kiln/job.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "kiln/kafka.h"

kiln_job_limits_t kiln_job_default_limits(void) {
    kiln_job_limits_t l = {.max_message_bytes = 1 << 20, .max_json_depth = 32,
                           .max_inline_bytes = 65536};
    return l;
}

static int kiln_charset_ok(const char *s, size_t maxlen, const char *extra) {
    size_t n = strlen(s);
    if (n == 0 || n > maxlen)
        return 0;
    for (const char *c = s; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'))
            continue;
        if (!strchr(extra, *c))
            return 0;
    }
    return 1;
}

int kiln_job_id_valid(const char *id) { return kiln_charset_ok(id, KILN_JOB_ID_MAX, "._:-"); }
int kiln_tenant_valid(const char *t) { return kiln_charset_ok(t, KILN_TENANT_MAX, "_-"); }
int kiln_voice_name_valid(const char *name) {
    return name[0] != '.' && kiln_charset_ok(name, 64, "._-");
}

int kiln_speak_format_valid(const char *fmt) {
    static const char *const fmts[] = {"wav", "flac", "ogg", "opus", "mp3"};
    for (unsigned i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++)
        if (!strcmp(fmt, fmts[i]))
            return 1;
    return 0;
}

long long kiln_utf8_chars(const char *s) {
    long long n = 0;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        n += (*c & 0xc0) != 0x80;
    return n;
}

static const char *kiln_json_str(json_t *o, const char *key, int *bad);

/* Speak fields: params.voice, params.format, params.sample_rate and the
 * length of the text. @returns KILN_OK or the error with errstr. */
static kiln_err_t kiln_job_parse_speak(kiln_job_t *job, const kiln_job_limits_t *lim,
                                       char *errstr, size_t errstr_size) {
    int bad = 0;
    if (job->text) {
        job->text_chars = kiln_utf8_chars(job->text);
        if (lim->max_text_chars && (size_t)job->text_chars > lim->max_text_chars) {
            snprintf(errstr, errstr_size, "text of %lld characters is over the limit of %zu",
                     job->text_chars, lim->max_text_chars);
            return KILN_ERR_TOO_LARGE;
        }
    }
    if (!job->params)
        return KILN_OK;
    job->voice = kiln_json_str(job->params, "voice", &bad);
    if (bad || (job->voice && !kiln_voice_name_valid(job->voice))) {
        snprintf(errstr, errstr_size,
                 "field \"params.voice\" must be a voice name (1-64 characters of A-Z a-z 0-9 . _ -)");
        return KILN_ERR_BAD_JOB;
    }
    job->format = kiln_json_str(job->params, "format", &bad);
    if (bad || (job->format && !kiln_speak_format_valid(job->format))) {
        snprintf(errstr, errstr_size,
                 "field \"params.format\" must be one of wav, flac, ogg, opus, mp3");
        return KILN_ERR_BAD_JOB;
    }
    json_t *sr = json_object_get(job->params, "sample_rate");
    if (sr && !json_is_null(sr)) {
        long long v = -1;
        if (json_is_integer(sr))
            v = json_integer_value(sr);
        else if (json_is_string(sr)) {
            char *end;
            v = strtoll(json_string_value(sr), &end, 10);
            if (end == json_string_value(sr) || *end)
                v = -1;
        }
        if (v < 8000 || v > 48000) {
            snprintf(errstr, errstr_size, "field \"params.sample_rate\" must be 8000..48000 Hz");
            return KILN_ERR_BAD_JOB;
        }
        job->sample_rate = (int)v;
    }
    return KILN_OK;
}

/* Deepest JSON nesting, counted outside strings. */
static int kiln_json_depth(const char *buf, size_t len) {
    int depth = 0, max = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"')
            in_str = 1;
        else if (c == '{' || c == '[') {
            if (++depth > max)
                max = depth;
        } else if (c == '}' || c == ']')
            depth--;
    }
    return max;
}

static const char *kiln_json_str(json_t *o, const char *key, int *bad) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        *bad = 1;
        return NULL;
    }
    return json_string_value(v);
}

kiln_err_t kiln_job_parse(const void *buf, size_t len, const kiln_job_limits_t *lim,
                          kiln_job_t *job, char *errstr, size_t errstr_size) {
    memset(job, 0, sizeof(*job));
    snprintf(job->tenant, sizeof(job->tenant), "default");
    if (len == 0) {
        snprintf(errstr, errstr_size, "empty job message");
        return KILN_ERR_BAD_JOB;
    }
    if (len > lim->max_message_bytes) {
        snprintf(errstr, errstr_size, "job message of %zu bytes is over the limit of %zu", len,
                 lim->max_message_bytes);
        return KILN_ERR_TOO_LARGE;
    }
    int depth = kiln_json_depth(buf, len);
    if (depth > lim->max_json_depth) {
        snprintf(errstr, errstr_size, "job message nests %d deep, over the limit of %d", depth,
                 lim->max_json_depth);
        return KILN_ERR_TOO_LARGE;
    }
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(errstr, errstr_size, "invalid JSON: %s at line %d column %d", jerr.text,
                 jerr.line, jerr.column);
        return KILN_ERR_BAD_JOB;
    }
    job->root = root;
    if (!json_is_object(root)) {
        snprintf(errstr, errstr_size, "job message is not a JSON object");
        return KILN_ERR_BAD_JOB;
    }
    int bad = 0;
    const char *id = kiln_json_str(root, "id", &bad);
    if (!id || bad || !kiln_job_id_valid(id)) {
        snprintf(errstr, errstr_size,
                 "field \"id\" is missing or invalid (1-128 characters of A-Z a-z 0-9 . _ : -)");
        return KILN_ERR_BAD_JOB;
    }
    snprintf(job->id, sizeof(job->id), "%s", id);
    const char *tenant = kiln_json_str(root, "tenant", &bad);
    if (bad || (tenant && !kiln_tenant_valid(tenant))) {
        snprintf(errstr, errstr_size,
                 "field \"tenant\" is invalid (1-64 characters of A-Z a-z 0-9 _ -)");
        return KILN_ERR_BAD_JOB;
    }
    if (tenant)
        snprintf(job->tenant, sizeof(job->tenant), "%s", tenant);
    const char *modality = kiln_json_str(root, "modality", &bad);
    if (!modality || bad) {
        snprintf(errstr, errstr_size, "field \"modality\" is missing or not a string");
        return KILN_ERR_BAD_JOB;
    }
    if (!kiln_modality_valid(modality)) {
        snprintf(errstr, errstr_size, "unknown modality \"%.32s\"", modality);
        return KILN_ERR_BAD_JOB;
    }
    snprintf(job->modality, sizeof(job->modality), "%s", modality);
    json_t *pr = json_object_get(root, "priority");
    if (pr && !json_is_null(pr)) {
        if (!json_is_integer(pr) || json_integer_value(pr) < -1000 || json_integer_value(pr) > 1000) {
            snprintf(errstr, errstr_size, "field \"priority\" must be an integer in -1000..1000");
            return KILN_ERR_BAD_JOB;
        }
        job->priority = (int)json_integer_value(pr);
    }
    job->deadline = kiln_json_str(root, "deadline", &bad);
    if (bad) {
        snprintf(errstr, errstr_size, "field \"deadline\" must be an RFC 3339 string");
        return KILN_ERR_BAD_JOB;
    }
    json_t *input = json_object_get(root, "input");
    if (!input || !json_is_object(input)) {
        snprintf(errstr, errstr_size, "field \"input\" is missing or not an object");
        return KILN_ERR_BAD_JOB;
    }
    job->input_uri = kiln_json_str(input, "uri", &bad);
    job->inline_b64 = kiln_json_str(input, "inline_b64", &bad);
    job->text = kiln_json_str(input, "text", &bad);
    if (bad) {
        snprintf(errstr, errstr_size, "fields of \"input\" must be strings");
        return KILN_ERR_BAD_JOB;
    }
    if (job->text && !*job->text && !job->input_uri && !job->inline_b64 &&
        !strcmp(job->modality, "speak")) {
        snprintf(errstr, errstr_size, "field \"input.text\" is empty: a speak job needs text");
        return KILN_ERR_BAD_JOB;
    }
    if ((job->input_uri && !*job->input_uri) || (job->inline_b64 && !*job->inline_b64) ||
        (job->text && !*job->text)) {
        snprintf(errstr, errstr_size, "field \"input\" has an empty value");
        return KILN_ERR_BAD_JOB;
    }
    int n_in = !!job->input_uri + !!job->inline_b64 + !!job->text;
    if (n_in != 1) {
        snprintf(errstr, errstr_size,
                 "field \"input\" must have exactly one of \"uri\", \"inline_b64\", \"text\"");
        return KILN_ERR_BAD_JOB;
    }
    if (job->inline_b64 && strlen(job->inline_b64) > (lim->max_inline_bytes + 2) / 3 * 4) {
        snprintf(errstr, errstr_size, "inline payload is over the limit of %zu bytes",
                 lim->max_inline_bytes);
        return KILN_ERR_TOO_LARGE;
    }
    if (!strcmp(job->modality, "transcribe") && job->text) {
        snprintf(errstr, errstr_size, "a transcribe job needs audio: \"input.uri\" or \"input.inline_b64\"");
        return KILN_ERR_BAD_JOB;
    }
    json_t *params = json_object_get(root, "params");
    if (params && !json_is_null(params)) {
        if (!json_is_object(params)) {
            snprintf(errstr, errstr_size, "field \"params\" must be an object");
            return KILN_ERR_BAD_JOB;
        }
        job->params = params;
        job->language = kiln_json_str(params, "language", &bad);
        if (bad || (job->language && strlen(job->language) > 15)) {
            snprintf(errstr, errstr_size, "field \"params.language\" must be a short string");
            return KILN_ERR_BAD_JOB;
        }
    }
    if (!strcmp(job->modality, "speak"))
        return kiln_job_parse_speak(job, lim, errstr, errstr_size);
    return KILN_OK;
}

void kiln_job_clear(kiln_job_t *job) {
    if (!job)
        return;
    json_decref(job->root);
    memset(job, 0, sizeof(*job));
}

void kiln_job_new_id(char out[37]) {
    unsigned char b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        /* getrandom cannot really fail for 16 bytes; fall back to time+pid */
        unsigned long long t = (unsigned long long)getpid() * 6364136223846793005ULL;
        for (int i = 0; i < 16; i++)
            b[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)i;
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}
