/*
 * tests/0700-fuzz_replay.c - replays the fuzz corpus in `make test`.
 *
 * Every file under tests/fuzz/corpus/<target>/ (the seeds, what the fuzzer
 * kept for its coverage, and every input that once crashed a target) goes
 * through the same harness function as in the libFuzzer build: the target
 * sources are included here with KILN_FUZZ_NO_MAIN, and this build is gcc
 * against libkiln.a (under ASan + UBSan with `make test SAN=1`). Each input
 * runs in a child process, so a crash, an abort on a broken invariant or a
 * hang (30 s) is reported with the file's name and the replay goes on.
 * Children keep their files under one scratch TMPDIR, removed at the end
 * (a crashed child cannot clean up after itself).
 */
#define KILN_FUZZ_NO_MAIN
#include "tests/fuzz/fuzz_audio.c"
#include "tests/fuzz/fuzz_conf.c"
#include "tests/fuzz/fuzz_ct2.c"
#include "tests/fuzz/fuzz_ggml.c"
#include "tests/fuzz/fuzz_hf.c"
#include "tests/fuzz/fuzz_job.c"
#include "tests/fuzz/fuzz_s3.c"

#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <sys/wait.h>

#include "tests/test.h"

static const kiln_fuzz_target_t kiln_replay_targets[] = {
    {"job", kiln_fuzz_job},   {"audio", kiln_fuzz_audio}, {"conf", kiln_fuzz_conf},
    {"s3", kiln_fuzz_s3},     {"ggml", kiln_fuzz_ggml},   {"ct2", kiln_fuzz_ct2},
    {"hf", kiln_fuzz_hf},
};

/* Reads the file at \p path. @returns a malloc'ed buffer (NULL on error). */
static uint8_t *kiln_replay_read_(const char *path, size_t *size) {
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n == cap) {
            uint8_t *nb = realloc(buf, (cap = cap ? cap * 2 : 65536));
            if (!nb) {
                free(buf);
                fclose(fp);
                return NULL;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, fp);
        n += got;
    } while (got > 0);
    fclose(fp);
    *size = n;
    return buf;
}

/* Runs one input in a child. @returns 0, or the wait status of a failure. */
static int kiln_replay_one_(const kiln_fuzz_target_t *t, const uint8_t *data, size_t size) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        alarm(30);
        t->one(data, size);
        exit(0); /* runs the target's own cleanup (atexit) */
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        ;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : (st ? st : -1);
}

static int kiln_replay_filter_(const struct dirent *d) { return d->d_name[0] != '.'; }

static int kiln_replay_rm_(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void) {
    const char *src = getenv("KILN_SRC");
    char dir[1024], path[2048];
    int total = 0;
    char scratch[] = "/tmp/kiln-replay.XXXXXX";
    if (!mkdtemp(scratch)) {
        perror("mkdtemp");
        return 1;
    }
    setenv("TMPDIR", scratch, 1);
    for (size_t i = 0; i < sizeof(kiln_replay_targets) / sizeof(kiln_replay_targets[0]); i++) {
        const kiln_fuzz_target_t *t = &kiln_replay_targets[i];
        char name[64];
        snprintf(name, sizeof(name), "corpus/%s replays without a crash", t->name);
        SUB_TEST(name);
        snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", src ? src : ".", t->name);
        struct dirent **ents = NULL;
        int n = scandir(dir, &ents, kiln_replay_filter_, alphasort);
        TEST_CHECK(n > 0, "no corpus files in %s", dir);
        int n_crash = 0;
        for (int k = 0; k < n; k++) {
            snprintf(path, sizeof(path), "%s/%s", dir, ents[k]->d_name);
            size_t size = 0;
            uint8_t *data = kiln_replay_read_(path, &size);
            TEST_CHECK(data != NULL, "could not read %s", path);
            if (data) {
                int st = kiln_replay_one_(t, data, size);
                TEST_CHECK(st == 0, "%s: %s %d", path,
                           st > 0 && WIFSIGNALED(st) ? "killed by signal" : "exit status",
                           st > 0 && WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
                n_crash += st != 0;
                free(data);
            }
            free(ents[k]);
        }
        free(ents);
        printf("# %s: %d file(s), %d failed\n", t->name, n > 0 ? n : 0, n_crash);
        total += n > 0 ? n : 0;
        SUB_TEST_PASS();
    }
    nftw(scratch, kiln_replay_rm_, 16, FTW_DEPTH | FTW_PHYS);
    printf("# replayed %d corpus file(s)\n", total);
    return TEST_DONE();
}
