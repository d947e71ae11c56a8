/*
 * tests/fuzz/fuzz.h - what the fuzz targets share.
 *
 * Every tests/fuzz/fuzz_<name>.c defines one function
 *
 *     static int kiln_fuzz_<name>(const uint8_t *data, size_t size)
 *
 * that feeds \p data to one kiln entry point and checks what comes back, and,
 * unless KILN_FUZZ_NO_MAIN is defined, the libFuzzer entry point
 * LLVMFuzzerTestOneInput() that calls it. tests/fuzz/build.sh links each
 * target with clang's libFuzzer (ASan + UBSan); tests/0700-fuzz_replay.c
 * defines KILN_FUZZ_NO_MAIN, includes every target and replays the corpus
 * (tests/fuzz/corpus/<name>/) through the same functions in `make test`,
 * built by gcc against libkiln.a.
 *
 * KILN_FUZZ_CHECK(cond) aborts when the output of the code under test breaks
 * one of its documented promises: libFuzzer reports that as a crash and
 * keeps the input, the replay reports the file.
 */
#ifndef KILN_FUZZ_H
#define KILN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define KILN_FUZZ_CHECK(cond)                                                            \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__,    \
                    #cond);                                                              \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* One target as the replay driver sees it. */
typedef struct kiln_fuzz_target_s {
    const char *name; /* directory under tests/fuzz/corpus/ */
    int (*one)(const uint8_t *data, size_t size);
} kiln_fuzz_target_t;

/*
 * kiln_fuzz_memfd_path
 *     Stores \p size bytes in an anonymous in-memory file (one per call site:
 *     \p fd caches it, -1 the first time) and writes its path
 *     ("/proc/self/fd/N") into \p path, for entry points that take a file name.
 *
 * @returns 0, or -1 when the file could not be written.
 */
static inline int kiln_fuzz_memfd_path(int *fd, const uint8_t *data, size_t size,
                                       char path[64]) {
    if (*fd < 0 && (*fd = memfd_create("kiln-fuzz", 0)) < 0)
        return -1;
    if (ftruncate(*fd, 0) < 0)
        return -1;
    for (size_t off = 0; off < size;) {
        ssize_t w = pwrite(*fd, data + off, size - off, (off_t)off);
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    snprintf(path, 64, "/proc/self/fd/%d", *fd);
    return 0;
}

/* Finds \p needle in the \p size bytes at \p data. @returns its offset or size. */
static inline size_t kiln_fuzz_find(const uint8_t *data, size_t size, const char *needle) {
    const uint8_t *p = memmem(data, size, needle, strlen(needle));
    return p ? (size_t)(p - data) : size;
}

/* @returns 1 when the NUL-terminated \p s holds no byte below 0x20. */
static inline int kiln_fuzz_printable(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20)
            return 0;
    return 1;
}

/* With KILN_FUZZ_VERBOSE set, prints what the entry point answered (to see
 * how far a seed gets). */
static inline void kiln_fuzz_note(const char *target, int rc, const char *err) {
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("KILN_FUZZ_VERBOSE") != NULL;
    if (verbose)
        fprintf(stderr, "%s: rc %d: %s\n", target, rc, rc ? err : "accepted");
}

/*
 * Leaks in system libraries, not in kiln, that LeakSanitizer skips (so that
 * fuzzing goes on and the replay passes under `make test SAN=1`):
 *   vorbis_info_init: when libsndfile 1.2.0 fails to open a malformed Ogg
 *   Vorbis stream, the codec setup that libvorbis 1.3.7 allocated for it
 *   (5784 bytes) is never freed; the same leak as xiph/vorbis#125. Input:
 *   corpus/audio/leak-9a355f23aacc89aa8345fd7fe1e11e12f1d76bcb.
 */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:vorbis_info_init\n"; }

#ifdef KILN_FUZZ_NO_MAIN
#define KILN_FUZZ_MAIN(fn)
#else
#define KILN_FUZZ_MAIN(fn)                                                               \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);                        \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fn(data, size); }
#endif

#endif
