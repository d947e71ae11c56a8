/*
 * tests/0300-store_file.c - the file:// object store and the key rules.
 *
 * Covers put/get/overwrite/exists/delete, max_bytes (TOO_LARGE), NOT_FOUND,
 * every traversal form we know of (for keys, result keys and URIs, including
 * symbolic links that point out of the root), atomic replacement under
 * concurrent readers, root URI parsing, and the SHA-256 helper. Runs in a
 * fresh directory under $TMPDIR; takes well under a second.
 *
 * TEST_ASSERT() evaluates its condition twice, so calls with side effects
 * (mkdtemp, symlink, put) are made first and only their result is asserted.
 */
#include "kiln/conf.h"
#include "kiln/store.h"
#include "tests/test.h"

#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[512];

static kiln_store_t *open_store(const char *url, char *errstr, size_t errstr_size) {
    kiln_conf_t *conf = kiln_conf_new();
    char stack[600];
    snprintf(stack, sizeof(stack), "%s/stack", tmpdir);
    kiln_conf_set(conf, "stack.dir", stack, errstr, errstr_size);
    if (kiln_conf_set(conf, "store.url", url, errstr, errstr_size) != KILN_CONF_OK) {
        kiln_conf_destroy(conf);
        return NULL;
    }
    kiln_store_t *st = kiln_store_new(conf, errstr, errstr_size);
    kiln_conf_destroy(conf);
    return st;
}

static void write_file(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");
    TEST_ASSERT(fp, "could not create %s", path);
    fputs(text, fp);
    fclose(fp);
}

static int path_exists(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* Counts leftover temporary files in \p dir. */
static int count_tmp(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *de; (de = readdir(d));)
        if (!strncmp(de->d_name, ".kiln-tmp", 9))
            n++;
    closedir(d);
    return n;
}

/* ---- concurrent overwrite: readers must see one whole version or the other */
typedef struct {
    const char *url;
    int writer;
    int bad;
} race_arg_t;

#define RACE_LEN 65536
#define RACE_ITERS 150

static void *race_thread(void *p) {
    race_arg_t *ra = p;
    char errstr[512];
    kiln_store_t *st = open_store(ra->url, errstr, sizeof(errstr));
    if (!st) {
        ra->bad++;
        return NULL;
    }
    static char bufs[2][RACE_LEN];
    for (int i = 0; i < RACE_ITERS; i++) {
        if (ra->writer) {
            int v = i & 1;
            if (kiln_store_put(st, "race/obj", bufs[v], RACE_LEN, errstr, sizeof(errstr)))
                ra->bad++;
        } else {
            void *data;
            size_t len;
            kiln_err_t err = kiln_store_get(st, "race/obj", 0, &data, &len, errstr,
                                            sizeof(errstr));
            if (err) {
                ra->bad++;
                continue;
            }
            if (len != RACE_LEN || (memcmp(data, bufs[0], len) && memcmp(data, bufs[1], len)))
                ra->bad++;
            free(data);
        }
    }
    kiln_store_destroy(st);
    return NULL;
}

int main(void) {
    char errstr[1024], url[600], root[560], path[1024];
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(tmpdir, sizeof(tmpdir), "%s/kiln-0300-XXXXXX", base);
    int ok = mkdtemp(tmpdir) != NULL;
    TEST_ASSERT(ok, "mkdtemp failed");
    char real[PATH_MAX];
    ok = realpath(tmpdir, real) && strlen(real) < 400;
    TEST_ASSERT(ok, "realpath failed");
    memcpy(tmpdir, real, strlen(real) + 1);
    snprintf(root, sizeof(root), "%s/objects", tmpdir);
    snprintf(url, sizeof(url), "file://%s", root);

    SUB_TEST("open creates the root and reports its URI");
    kiln_store_t *st = open_store(url, errstr, sizeof(errstr));
    TEST_ASSERT(st, "kiln_store_new: %s", errstr);
    TEST_CHECK(path_exists(root), "root %s not created", root);
    TEST_CHECK(!strcmp(kiln_store_root(st), url), "root uri %s", kiln_store_root(st));
    SUB_TEST_PASS();

    SUB_TEST("put then get returns the same bytes, NUL-terminated");
    {
        const char bin[] = {'a', 0, 'b', (char)0xff, 0, 'z'};
        TEST_CHECK(kiln_store_put(st, "in/a.bin", bin, sizeof(bin), errstr, sizeof(errstr)) ==
                       KILN_OK, "put: %s", errstr);
        void *data = NULL;
        size_t len = 0;
        kiln_err_t err = kiln_store_get(st, "in/a.bin", 1024, &data, &len, errstr,
                                        sizeof(errstr));
        TEST_CHECK(err == KILN_OK, "get: %s", errstr);
        TEST_CHECK(len == sizeof(bin) && data && !memcmp(data, bin, len), "len %zu", len);
        TEST_CHECK(data && ((char *)data)[len] == '\0', "not NUL-terminated");
        free(data);
        snprintf(path, sizeof(path), "%s/in/a.bin", root);
        TEST_CHECK(path_exists(path), "%s missing on disk", path);
        /* empty object */
        TEST_CHECK(kiln_store_put(st, "empty", NULL, 0, errstr, sizeof(errstr)) == KILN_OK,
                   "put empty: %s", errstr);
        err = kiln_store_get(st, "empty", 10, &data, &len, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_OK && len == 0 && data && !*(char *)data, "get empty: %s",
                   errstr);
        free(data);
    }
    SUB_TEST_PASS();

    SUB_TEST("overwrite replaces the object and leaves no temp files");
    {
        TEST_CHECK(!kiln_store_put(st, "in/o.txt", "first version", 13, errstr, sizeof(errstr)),
                   "put 1: %s", errstr);
        TEST_CHECK(!kiln_store_put(st, "in/o.txt", "second", 6, errstr, sizeof(errstr)),
                   "put 2: %s", errstr);
        void *data;
        size_t len;
        TEST_CHECK(!kiln_store_get(st, "in/o.txt", 100, &data, &len, errstr, sizeof(errstr)),
                   "get: %s", errstr);
        TEST_CHECK(len == 6 && !memcmp(data, "second", 6), "got %.*s", (int)len, (char *)data);
        free(data);
        snprintf(path, sizeof(path), "%s/in", root);
        TEST_CHECK(count_tmp(path) == 0, "%d temp files left", count_tmp(path));
    }
    SUB_TEST_PASS();

    SUB_TEST("exists and delete");
    {
        TEST_CHECK(kiln_store_exists(st, "in/o.txt") == 1, "exists != 1");
        TEST_CHECK(kiln_store_exists(st, "in/nope") == 0, "missing exists != 0");
        TEST_CHECK(kiln_store_exists(st, "nodir/nope") == 0, "missing dir exists != 0");
        TEST_CHECK(kiln_store_exists(st, "in") == 0, "a directory is not an object");
        TEST_CHECK(kiln_store_exists(st, "../x") == -1, "bad key exists != -1");
        TEST_CHECK(!kiln_store_delete(st, "in/o.txt", errstr, sizeof(errstr)), "delete: %s",
                   errstr);
        TEST_CHECK(kiln_store_exists(st, "in/o.txt") == 0, "exists after delete");
        TEST_CHECK(!kiln_store_delete(st, "in/o.txt", errstr, sizeof(errstr)),
                   "second delete: %s", errstr);
        TEST_CHECK(!kiln_store_delete(st, "nodir/x", errstr, sizeof(errstr)),
                   "delete in missing dir: %s", errstr);
    }
    SUB_TEST_PASS();

    SUB_TEST("max_bytes gives TOO_LARGE, 0 means no limit");
    {
        char big[5000];
        memset(big, 'x', sizeof(big));
        TEST_CHECK(!kiln_store_put(st, "big", big, sizeof(big), errstr, sizeof(errstr)),
                   "put: %s", errstr);
        void *data = (void *)1;
        size_t len = 99;
        kiln_err_t err = kiln_store_get(st, "big", sizeof(big) - 1, &data, &len, errstr,
                                        sizeof(errstr));
        TEST_CHECK(err == KILN_ERR_TOO_LARGE, "got %s", kiln_err2name(err));
        TEST_CHECK(data == NULL && len == 0, "outputs not cleared");
        TEST_CHECK(strstr(errstr, "larger than the limit of 4999 bytes"), "errstr: %s", errstr);
        err = kiln_store_get(st, "big", sizeof(big), &data, &len, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_OK && len == sizeof(big), "exact limit: %s", errstr);
        free(data);
        err = kiln_store_get(st, "big", 0, &data, &len, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_OK && len == sizeof(big), "no limit: %s", errstr);
        free(data);
    }
    SUB_TEST_PASS();

    SUB_TEST("missing objects give NOT_FOUND");
    {
        void *data;
        size_t len;
        const char *missing[] = {"nope", "nodir/nope", "in/a.bin/below-a-file", "in"};
        for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
            kiln_err_t err = kiln_store_get(st, missing[i], 0, &data, &len, errstr,
                                            sizeof(errstr));
            TEST_CHECK(err == KILN_ERR__NOT_FOUND, "%s: %s (%s)", missing[i],
                       kiln_err2name(err), errstr);
        }
        TEST_CHECK(strstr(errstr, "could not read object \"file://"), "errstr: %s", errstr);
    }
    SUB_TEST_PASS();

    SUB_TEST("key_check accepts safe keys");
    {
        char k1024[KILN_STORE_KEY_MAX + 1];
        memset(k1024, 'k', sizeof(k1024) - 1);
        for (int i = 100; i < KILN_STORE_KEY_MAX; i += 101)
            k1024[i] = '/';
        k1024[KILN_STORE_KEY_MAX] = '\0';
        const char *good[] = {"a", "a/b.c", "results/acme/j1/out.json", ".hidden", "a..b",
                              "..a", "a..", "x/.y/z", "with space/ü n i c ö d e.wav",
                              "日本語/キー", "emoji/\xf0\x9f\x8e\xa7.flac", k1024};
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
            TEST_CHECK(kiln_store_key_check(good[i]) == KILN_OK, "rejected \"%.60s\"", good[i]);
    }
    SUB_TEST_PASS();

    SUB_TEST("key_check rejects traversal, absolute, empty segments, control chars");
    {
        char k1025[KILN_STORE_KEY_MAX + 2];
        memset(k1025, 'k', sizeof(k1025) - 1);
        k1025[KILN_STORE_KEY_MAX + 1] = '\0';
        const char *bad[] = {"", "..", ".", "../x", "a/../../x", "a/..", "./a", "a/./b",
                             "a/.", "/etc/passwd", "/", "a//b", "a/", "//x", "a\\b",
                             "..\\x", "a\\..\\..\\x", "a\nb", "a\x01" "b", "a\x7f",
                             "a\rb", "tab\there", "\x1b[31m", "\xff", "a\xc0\xaf" "b",
                             "\xed\xa0\x80", "\xf4\x90\x80\x80", "a\xe2\x82", k1025};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            TEST_CHECK(kiln_store_key_check(bad[i]) == KILN_ERR_BAD_KEY,
                       "accepted bad key #%zu \"%.40s\"", i, bad[i]);
        TEST_CHECK(kiln_store_key_check(NULL) == KILN_ERR_BAD_KEY, "accepted NULL");
    }
    SUB_TEST_PASS();

    SUB_TEST("operations with bad keys fail with BAD_KEY and touch nothing");
    {
        const char *bad[] = {"../escaped", "a/../../escaped", "/tmp/escaped-abs", "x/../y",
                             "a\nb", "a\x01" "b", "."};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            void *data;
            size_t len;
            kiln_err_t e1 = kiln_store_put(st, bad[i], "x", 1, errstr, sizeof(errstr));
            kiln_err_t e2 = kiln_store_get(st, bad[i], 0, &data, &len, errstr, sizeof(errstr));
            kiln_err_t e3 = kiln_store_delete(st, bad[i], errstr, sizeof(errstr));
            TEST_CHECK(e1 == KILN_ERR_BAD_KEY && e2 == KILN_ERR_BAD_KEY &&
                           e3 == KILN_ERR_BAD_KEY,
                       "key #%zu: put %s get %s delete %s", i, kiln_err2name(e1),
                       kiln_err2name(e2), kiln_err2name(e3));
        }
        TEST_CHECK(strstr(errstr, "invalid object key"), "errstr: %s", errstr);
        snprintf(path, sizeof(path), "%s/escaped", tmpdir);
        TEST_CHECK(!path_exists(path), "%s was created", path);
        TEST_CHECK(!path_exists("/tmp/escaped-abs"), "/tmp/escaped-abs was created");
    }
    SUB_TEST_PASS();

    SUB_TEST("result_key builds results/<tenant>/<job>/<name>");
    {
        char key[256];
        TEST_CHECK(kiln_store_result_key(key, sizeof(key), "acme", "job-1", "out.json") ==
                       KILN_OK, "rejected");
        TEST_CHECK(!strcmp(key, "results/acme/job-1/out.json"), "got %s", key);
        TEST_CHECK(kiln_store_result_key(key, sizeof(key), "ácme co", "9f1c", "t.srt") ==
                       KILN_OK, "rejected unicode tenant");
    }
    SUB_TEST_PASS();

    SUB_TEST("result_key rejects unsafe tenants, job ids and names");
    {
        char key[256];
        const char *bad_parts[] = {"../x", "..", ".", "", "a/b", "/abs", "a\\b", "a\nb",
                                   "a\x01", "\xff"};
        for (size_t i = 0; i < sizeof(bad_parts) / sizeof(bad_parts[0]); i++) {
            const char *b = bad_parts[i];
            TEST_CHECK(kiln_store_result_key(key, sizeof(key), b, "j", "n") == KILN_ERR_BAD_KEY,
                       "tenant \"%s\" accepted", b);
            TEST_CHECK(kiln_store_result_key(key, sizeof(key), "t", b, "n") == KILN_ERR_BAD_KEY,
                       "job \"%s\" accepted", b);
            TEST_CHECK(kiln_store_result_key(key, sizeof(key), "t", "j", b) == KILN_ERR_BAD_KEY,
                       "name \"%s\" accepted", b);
        }
        TEST_CHECK(kiln_store_result_key(key, sizeof(key), NULL, "j", "n") == KILN_ERR_BAD_KEY,
                   "NULL tenant accepted");
        TEST_CHECK(kiln_store_result_key(key, 12, "acme", "job-1", "out.json") ==
                       KILN_ERR_BAD_KEY && key[0] == '\0',
                   "truncated key accepted: %s", key);
        char longpart[1100];
        memset(longpart, 'j', sizeof(longpart) - 1);
        longpart[sizeof(longpart) - 1] = '\0';
        char big[2048];
        TEST_CHECK(kiln_store_result_key(big, sizeof(big), "t", longpart, "n") ==
                       KILN_ERR_BAD_KEY, "key over 1024 bytes accepted");
    }
    SUB_TEST_PASS();

    SUB_TEST("uri and get_uri round trip");
    {
        char uri[1024];
        TEST_CHECK(!kiln_store_put(st, "in/ü space.txt", "hello", 5, errstr, sizeof(errstr)),
                   "put: %s", errstr);
        kiln_store_uri(st, "in/ü space.txt", uri, sizeof(uri));
        snprintf(path, sizeof(path), "%s/in/ü space.txt", url);
        TEST_CHECK(!strcmp(uri, path), "uri %s", uri);
        void *data;
        size_t len;
        kiln_err_t err = kiln_store_get_uri(st, uri, 100, &data, &len, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_OK && len == 5 && !memcmp(data, "hello", 5), "get_uri: %s",
                   errstr);
        if (!err)
            free(data);
        snprintf(path, sizeof(path), "file://localhost%s/in/ü space.txt", root);
        err = kiln_store_get_uri(st, path, 100, &data, &len, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_OK, "file://localhost form: %s", errstr);
        if (!err)
            free(data);
        err = kiln_store_get_uri(st, uri, 3, &data, &len, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_ERR_TOO_LARGE, "limit via uri: %s", kiln_err2name(err));
        snprintf(path, sizeof(path), "%s/in/missing.txt", url);
        err = kiln_store_get_uri(st, path, 100, &data, &len, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_ERR__NOT_FOUND, "missing: %s", kiln_err2name(err));
        snprintf(path, sizeof(path), "%s/nodir/deeper/missing.txt", url);
        err = kiln_store_get_uri(st, path, 100, &data, &len, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_ERR__NOT_FOUND, "missing dir: %s", kiln_err2name(err));
    }
    SUB_TEST_PASS();

    SUB_TEST("get_uri rejects URIs outside the root, also through symbolic links");
    {
        /* a secret next to the root, a directory outside, links pointing out */
        char secret[600], outdir[600], evil[600];
        snprintf(secret, sizeof(secret), "%s/secret", tmpdir);
        write_file(secret, "top secret");
        snprintf(outdir, sizeof(outdir), "%s/outside", tmpdir);
        mkdir(outdir, 0755);
        snprintf(path, sizeof(path), "%s/outside/secret", tmpdir);
        write_file(path, "top secret");
        snprintf(evil, sizeof(evil), "%s/objects-evil", tmpdir);
        mkdir(evil, 0755);
        snprintf(path, sizeof(path), "%s/objects-evil/secret", tmpdir);
        write_file(path, "top secret");
        snprintf(path, sizeof(path), "%s/dirlink", root);
        ok = !symlink(outdir, path);
        TEST_ASSERT(ok, "symlink failed");
        snprintf(path, sizeof(path), "%s/in/filelink", root);
        ok = !symlink(secret, path);
        TEST_ASSERT(ok, "symlink failed");
        snprintf(path, sizeof(path), "%s/rel", root);
        ok = !symlink("../outside", path);
        TEST_ASSERT(ok, "symlink failed");

        char uris[16][1024];
        int n = 0;
        snprintf(uris[n++], sizeof(uris[0]), "file:///etc/passwd");
        snprintf(uris[n++], sizeof(uris[0]), "file://%s", secret);
        snprintf(uris[n++], sizeof(uris[0]), "%s/../secret", url);
        snprintf(uris[n++], sizeof(uris[0]), "%s/in/../../secret", url);
        snprintf(uris[n++], sizeof(uris[0]), "%s/./in/a.bin", url);
        snprintf(uris[n++], sizeof(uris[0]), "%s//in/a.bin", url);
        snprintf(uris[n++], sizeof(uris[0]), "%s-evil/secret", url);
        snprintf(uris[n++], sizeof(uris[0]), "%s/dirlink/secret", url);
        snprintf(uris[n++], sizeof(uris[0]), "%s/rel/secret", url);
        snprintf(uris[n++], sizeof(uris[0]), "%s/in/filelink", url);
        snprintf(uris[n++], sizeof(uris[0]), "%s", url);
        snprintf(uris[n++], sizeof(uris[0]), "file://%s/objects\\..\\secret", tmpdir);
        snprintf(uris[n++], sizeof(uris[0]), "s3://bucket/in/a.bin");
        snprintf(uris[n++], sizeof(uris[0]), "http://127.0.0.1/in/a.bin");
        snprintf(uris[n++], sizeof(uris[0]), "in/a.bin");
        snprintf(uris[n++], sizeof(uris[0]), "file://relative/in/a.bin");
        for (int i = 0; i < n; i++) {
            void *data = NULL;
            size_t len = 0;
            kiln_err_t err = kiln_store_get_uri(st, uris[i], 0, &data, &len, errstr,
                                                sizeof(errstr));
            TEST_CHECK(err == KILN_ERR_BAD_KEY, "%s: %s (%s)", uris[i], kiln_err2name(err),
                       errstr);
            TEST_CHECK(data == NULL, "%s: returned data", uris[i]);
            if (data)
                free(data);
        }
        /* the same links through plain keys */
        const char *linked[] = {"dirlink/secret", "rel/secret", "in/filelink"};
        for (size_t i = 0; i < 3; i++) {
            void *data = NULL;
            size_t len;
            kiln_err_t err = kiln_store_get(st, linked[i], 0, &data, &len, errstr,
                                            sizeof(errstr));
            TEST_CHECK(err == KILN_ERR_BAD_KEY, "get %s: %s", linked[i], kiln_err2name(err));
            free(data);
            err = kiln_store_put(st, linked[i], "pwn", 3, errstr, sizeof(errstr));
            TEST_CHECK(linked[i][0] == 'i' || err == KILN_ERR_BAD_KEY, "put %s: %s", linked[i],
                       kiln_err2name(err));
        }
        snprintf(path, sizeof(path), "%s/outside/secret", tmpdir);
        FILE *fp = fopen(path, "r");
        char buf[32] = "";
        if (fp) {
            TEST_CHECK(fgets(buf, sizeof(buf), fp) != NULL, "read back failed");
            fclose(fp);
        }
        TEST_CHECK(!strcmp(buf, "top secret"), "outside file was overwritten: %s", buf);
        /* putting over a link replaces the link itself, never its target */
        fp = fopen(secret, "r");
        buf[0] = '\0';
        if (fp) {
            TEST_CHECK(fgets(buf, sizeof(buf), fp) != NULL, "read back failed");
            fclose(fp);
        }
        TEST_CHECK(!strcmp(buf, "top secret"), "link target was overwritten: %s", buf);
        TEST_CHECK(strstr(errstr, "symbolic link"), "errstr: %s", errstr);
    }
    SUB_TEST_PASS();

    SUB_TEST("a file and a directory of the same name conflict");
    {
        TEST_CHECK(!kiln_store_put(st, "c/a", "1", 1, errstr, sizeof(errstr)), "put: %s", errstr);
        kiln_err_t err = kiln_store_put(st, "c/a/b", "2", 1, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_ERR_BAD_KEY, "file as dir: %s", kiln_err2name(err));
        err = kiln_store_put(st, "c", "3", 1, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_ERR_BAD_KEY, "dir as file: %s (%s)", kiln_err2name(err), errstr);
        snprintf(path, sizeof(path), "%s/c", root);
        TEST_CHECK(count_tmp(path) == 0 && count_tmp(root) == 0, "temp files left");
    }
    SUB_TEST_PASS();

    SUB_TEST("concurrent overwrite is atomic for readers");
    {
        race_arg_t ra[3] = {{url, 1, 0}, {url, 1, 0}, {url, 0, 0}};
        static char zero[RACE_LEN];
        ok = !kiln_store_put(st, "race/obj", zero, RACE_LEN, errstr, sizeof(errstr));
        TEST_ASSERT(ok, "seed: %s", errstr);
        pthread_t th[3];
        for (int i = 0; i < 3; i++)
            pthread_create(&th[i], NULL, race_thread, &ra[i]);
        for (int i = 0; i < 3; i++)
            pthread_join(th[i], NULL);
        TEST_CHECK(ra[0].bad + ra[1].bad == 0, "%d writer failures", ra[0].bad + ra[1].bad);
        TEST_CHECK(ra[2].bad == 0, "%d torn or failed reads", ra[2].bad);
        snprintf(path, sizeof(path), "%s/race", root);
        TEST_CHECK(count_tmp(path) == 0, "temp files left");
    }
    SUB_TEST_PASS();
    kiln_store_destroy(st);

    SUB_TEST("store.url forms: default, relative, bare path, bad schemes");
    {
        st = open_store("", errstr, sizeof(errstr));
        TEST_CHECK(st, "default: %s", errstr);
        snprintf(path, sizeof(path), "file://%s/stack/objects", tmpdir);
        TEST_CHECK(st && !strcmp(kiln_store_root(st), path), "default root %s",
                   st ? kiln_store_root(st) : "-");
        kiln_store_destroy(st);

        char cwd[PATH_MAX];
        ok = getcwd(cwd, sizeof(cwd)) && !chdir(tmpdir);
        TEST_ASSERT(ok, "getcwd/chdir");
        st = open_store("file://./rel/objs", errstr, sizeof(errstr));
        TEST_CHECK(st, "relative: %s", errstr);
        snprintf(path, sizeof(path), "file://%s/rel/objs", tmpdir);
        TEST_CHECK(st && !strcmp(kiln_store_root(st), path), "relative root %s",
                   st ? kiln_store_root(st) : "-");
        kiln_store_destroy(st);
        st = open_store("bare/dir", errstr, sizeof(errstr));
        snprintf(path, sizeof(path), "file://%s/bare/dir", tmpdir);
        TEST_CHECK(st && !strcmp(kiln_store_root(st), path), "bare root %s",
                   st ? kiln_store_root(st) : errstr);
        kiln_store_destroy(st);
        ok = !chdir(cwd);
        TEST_ASSERT(ok, "chdir back");

        const char *bad[] = {"ftp://host/x", "s3://", "s3:///x", "s3://bad*bucket/x",
                             "s3://b/../x", "file://"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            errstr[0] = '\0';
            st = open_store(bad[i], errstr, sizeof(errstr));
            TEST_CHECK(!st && errstr[0], "%s accepted", bad[i]);
            kiln_store_destroy(st);
        }
        snprintf(path, sizeof(path), "file://%s/secret/sub", tmpdir); /* a file as root */
        st = open_store(path, errstr, sizeof(errstr));
        TEST_CHECK(!st && strstr(errstr, "could not create store directory"), "%s", errstr);
        kiln_store_destroy(NULL);
    }
    SUB_TEST_PASS();

    SUB_TEST("a vanished root is a retriable store error for put, NOT_FOUND for get");
    {
        snprintf(path, sizeof(path), "file://%s/vanish", tmpdir);
        st = open_store(path, errstr, sizeof(errstr));
        TEST_ASSERT(st, "open: %s", errstr);
        snprintf(path, sizeof(path), "%s/vanish", tmpdir);
        TEST_CHECK(rmdir(path) == 0, "rmdir %s", path);
        kiln_err_t err = kiln_store_put(st, "a/b", "x", 1, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_ERR_STORE && kiln_err_is_retriable(err), "put: %s (%s)",
                   kiln_err2name(err), errstr);
        void *data;
        size_t len;
        err = kiln_store_get(st, "a/b", 0, &data, &len, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_ERR__NOT_FOUND, "get: %s", kiln_err2name(err));
        kiln_store_destroy(st);
    }
    SUB_TEST_PASS();

    SUB_TEST("sha256 matches the FIPS 180-2 vectors");
    {
        char hex[65];
        kiln_store_sha256_hex("", 0, hex);
        TEST_CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
                   "empty: %s", hex);
        kiln_store_sha256_hex("abc", 3, hex);
        TEST_CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
                   "abc: %s", hex);
        const char *m56 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        kiln_store_sha256_hex(m56, strlen(m56), hex);
        TEST_CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
                   "56 bytes: %s", hex);
        char *mil = malloc(1000000);
        TEST_ASSERT(mil, "malloc");
        memset(mil, 'a', 1000000);
        kiln_store_sha256_hex(mil, 1000000, hex);
        free(mil);
        TEST_CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
                   "million a: %s", hex);
    }
    SUB_TEST_PASS();

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (!test_n_failed_ && system(cmd) != 0)
        printf("# could not remove %s\n", tmpdir);
    return TEST_DONE();
}
