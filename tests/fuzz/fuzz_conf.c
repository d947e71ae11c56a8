/*
 * tests/fuzz/fuzz_conf.c - the configuration parser: kiln_conf_load_file()
 * on the input as a kiln.conf, then kiln_conf_set_pair() on each of its
 * lines as `--set` arguments, then a copy, a dump and the pass-through walk
 * (lib/conf.c).
 *
 * The dump must mask every secret: a property marked secret, or a
 * pass-through key that names a password, secret or SASL setting, is
 * written as "********" whatever its value.
 */
#include <stdio.h>

#include "kiln/conf.h"
#include "tests/fuzz/fuzz.h"

/* Pass-through keys the dump masks (lib/conf.c), by name. */
static int kiln_fuzz_conf_secret_name_(const char *k) {
    return strstr(k, "password") || strstr(k, "secret") || strstr(k, "sasl.") ||
           strstr(k, "key.pem") || strstr(k, "private");
}

static int kiln_fuzz_conf_walk_(const char *key, const char *value, void *opaque) {
    KILN_FUZZ_CHECK(key && value);
    (*(int *)opaque)++;
    return 0;
}

/* Checks that every "key = value" line of \p dump with a secret key is masked. */
static void kiln_fuzz_conf_check_dump_(const char *dump, size_t len) {
    size_t n_props;
    const kiln_prop_t *props = kiln_conf_props(&n_props);
    const char *line = dump, *end = dump + len;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t ll = nl ? (size_t)(nl - line) : (size_t)(end - line);
        const char *sep = memmem(line, ll, " = ", 3);
        if (sep) {
            char key[256];
            size_t kl = (size_t)(sep - line) < sizeof(key) - 1 ? (size_t)(sep - line)
                                                              : sizeof(key) - 1;
            memcpy(key, line, kl);
            key[kl] = '\0';
            int secret = 0, known = 0;
            for (size_t i = 0; i < n_props; i++)
                if (!strcmp(props[i].name, key)) {
                    known = 1;
                    secret = (props[i].scope & KILN_SCOPE_SECRET) != 0;
                }
            if (!known && (!strncmp(key, "kafka.", 6) || !strncmp(key, "pg.", 3)))
                secret = kiln_fuzz_conf_secret_name_(key);
            const char *val = sep + 3;
            size_t vl = ll - (size_t)(val - line);
            /* a secret's line is "key = " (unset) or "key = ********"; a value
             * holding a newline cannot break out of it either */
            if (secret)
                KILN_FUZZ_CHECK(vl == 0 || (vl == 8 && !memcmp(val, "********", 8)));
        }
        line += ll + 1;
    }
}

static int kiln_fuzz_conf(const uint8_t *data, size_t size) {
    static int fd = -1;
    char path[64], err[512];
    kiln_conf_t *conf = kiln_conf_new();
    if (!kiln_fuzz_memfd_path(&fd, data, size, path)) {
        err[0] = '\0';
        if (kiln_conf_load_file(conf, path, 1, err, sizeof(err)))
            KILN_FUZZ_CHECK(err[0] != '\0');
    }
    /* every line as a --set argument (NUL-terminated copies) */
    char *copy = malloc(size + 1);
    if (copy) {
        memcpy(copy, data, size);
        copy[size] = '\0';
        for (char *s = copy, *nl; s; s = nl ? nl + 1 : NULL) {
            if ((nl = strchr(s, '\n')))
                *nl = '\0';
            err[0] = '\0';
            kiln_conf_res_t r = kiln_conf_set_pair(conf, s, err, sizeof(err));
            KILN_FUZZ_CHECK(r == KILN_CONF_OK || r == KILN_CONF_INVALID ||
                            r == KILN_CONF_UNKNOWN);
            KILN_FUZZ_CHECK(r == KILN_CONF_OK || err[0] != '\0');
        }
        free(copy);
    }
    kiln_conf_t *dup = kiln_conf_dup(conf);
    char *dump = NULL;
    size_t dump_len = 0;
    FILE *mf = open_memstream(&dump, &dump_len);
    if (mf) {
        kiln_conf_dump(dup, mf);
        fclose(mf);
        kiln_fuzz_conf_check_dump_(dump, dump_len);
        free(dump);
    }
    int n = 0;
    kiln_conf_foreach_passthrough(dup, "kafka.", kiln_fuzz_conf_walk_, &n);
    kiln_conf_foreach_passthrough(dup, "pg.", kiln_fuzz_conf_walk_, &n);
    KILN_FUZZ_CHECK(kiln_conf_get(dup, "worker.max_batch") != NULL);
    kiln_conf_destroy(dup);
    kiln_conf_destroy(conf);
    return 0;
}

KILN_FUZZ_MAIN(kiln_fuzz_conf)
