/*
 * lib/store_int.h - internals shared by the object store backends.
 *
 * lib/store.c parses the root URI, checks every key and dispatches through
 * a kiln_store_ops_t table to lib/store_file.c or lib/store_s3.c. A backend
 * only ever sees keys that passed kiln_store_key_check(), and it reports
 * failures with a message already formatted for the caller (lower-case,
 * "could not ...", naming the object's URI).
 */
#ifndef KILN_STORE_INT_H
#define KILN_STORE_INT_H

#include <stddef.h>

#include "kiln/store.h"

typedef struct kiln_store_ops_s {
    kiln_err_t (*put)(kiln_store_t *st, const char *key, const void *data, size_t len,
                      char *errstr, size_t errstr_size);
    /* max_bytes is never 0 here: store.c turns "no limit" into SIZE_MAX - 1. */
    kiln_err_t (*get)(kiln_store_t *st, const char *key, size_t max_bytes, void **data,
                      size_t *len, char *errstr, size_t errstr_size);
    /* 1 exists, 0 does not, -1 error (reason in errstr). */
    int (*exists)(kiln_store_t *st, const char *key, char *errstr, size_t errstr_size);
    kiln_err_t (*del)(kiln_store_t *st, const char *key, char *errstr, size_t errstr_size);
    /* Maps a full URI to a key of this store, or KILN_ERR_BAD_KEY when the URI
     * lies outside it (NOT_FOUND where it is inside but cannot exist). */
    kiln_err_t (*uri_to_key)(kiln_store_t *st, const char *uri, char *key, size_t key_size,
                             char *errstr, size_t errstr_size);
    /* makes every earlier put durable (deferred-sync mode); NULL: nothing to do */
    kiln_err_t (*sync)(kiln_store_t *st, char *errstr, size_t errstr_size);
    void (*destroy)(kiln_store_t *st);
} kiln_store_ops_t;

struct kiln_store_s {
    const kiln_store_ops_t *ops;
    char *root_uri; /* "file:///abs/dir" or "s3://bucket[/prefix]", no trailing '/' */
    void *impl;     /* backend state, freed by ops->destroy */
    int deferred_sync; /* 1: puts skip fsync; kiln_store_sync() makes them durable */
};

/* Opens a file:// store rooted at \p path (absolute or relative; created when
 * missing). Fills st->ops, st->impl and st->root_uri. @returns 0 or -1. */
int kiln_store_file_open(kiln_store_t *st, const char *path, char *errstr,
                         size_t errstr_size);

/* Opens an s3:// store for \p bucket with \p prefix ("" or "a/b", checked).
 * @returns 0 or -1. */
int kiln_store_s3_open(kiln_store_t *st, const kiln_conf_t *conf, const char *bucket,
                       const char *prefix, char *errstr, size_t errstr_size);

/* @returns 1 when the \p n bytes at \p path are '/'-separated segments that
 * each pass the key rules (no length limit), else 0. */
int kiln_store_path_ok(const char *path, size_t n);

/* Grows *buf (capacity *cap) so that it holds at least \p need bytes.
 * @returns 0, or -1 when out of memory. */
int kiln_store_buf_reserve(char **buf, size_t *cap, size_t need);

#endif
