/*
 * kiln/store.h - object store: file:// and s3:// behind one interface.
 *
 * A store has a root URI (conf "store.url"): file:///abs/dir or
 * s3://bucket[/prefix]. Keys are relative paths below that root. Every key is
 * checked by kiln_store_key_check(): no "..", no absolute path, no empty
 * segment, no NUL or control characters, at most 1024 bytes. Result keys are
 * built only by kiln_store_result_key(), so they never leave
 * results/<tenant>/.
 *
 * S3 uses libcurl with CURLOPT_AWS_SIGV4 (path-style addressing so that
 * MinIO and moto work). Transient failures return KILN_ERR_STORE (retriable);
 * a missing object KILN_ERR__NOT_FOUND; a rejected key KILN_ERR_BAD_KEY.
 *
 * A kiln_store_t may be used from one thread at a time; create one per
 * thread when needed.
 */
#ifndef KILN_STORE_H
#define KILN_STORE_H

#include <stddef.h>

#include "kiln/conf.h"
#include "kiln/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_store_s kiln_store_t;

/** Longest accepted object key, in bytes (the S3 limit). */
#define KILN_STORE_KEY_MAX 1024

/**
 * Opens the store configured by \p conf (store.url, s3.*). For file:// the
 * root directory is created if missing.
 * @returns the handle, or NULL with the reason in \p errstr.
 */
kiln_store_t *kiln_store_new(const kiln_conf_t *conf, char *errstr, size_t errstr_size);

/** Frees \p st; NULL is fine. */
void kiln_store_destroy(kiln_store_t *st);

/**
 * @returns the root URI of \p st ("file:///abs/dir" or "s3://bucket[/prefix]",
 * no trailing '/'), valid until kiln_store_destroy().
 */
const char *kiln_store_root(const kiln_store_t *st);

/** @returns KILN_OK if \p key is acceptable, else KILN_ERR_BAD_KEY. */
kiln_err_t kiln_store_key_check(const char *key);

/**
 * Builds "results/<tenant>/<job_id>/<name>" into \p out.
 * @returns KILN_ERR_BAD_KEY if tenant, job id or name is not a single safe
 * path segment (no '/', "..", control characters) or the result is too long.
 */
kiln_err_t kiln_store_result_key(char *out, size_t out_size, const char *tenant,
                                 const char *job_id, const char *name);

/**
 * Deferred durability: with \p on, file:// puts skip their per-object fsyncs
 * and kiln_store_sync() makes every earlier put durable at once (one
 * syncfs). The worker turns this on and syncs once per batch, before the
 * transaction that references the objects. S3 puts are durable when they
 * return, so for s3:// both calls change nothing.
 */
void kiln_store_set_deferred_sync(kiln_store_t *st, int on);
kiln_err_t kiln_store_sync(kiln_store_t *st, char *errstr, size_t errstr_size);

/** Writes \p len bytes under \p key (atomically for file://: temp + rename). */
kiln_err_t kiln_store_put(kiln_store_t *st, const char *key, const void *data, size_t len,
                          char *errstr, size_t errstr_size);

/**
 * Reads the object at \p key. At most \p max_bytes are accepted: a bigger
 * object gives KILN_ERR_TOO_LARGE (0 means no limit). On success *data is
 * malloc'ed (caller frees) and NUL-terminated (not counted in *len); on
 * failure *data is NULL and *len 0.
 */
kiln_err_t kiln_store_get(kiln_store_t *st, const char *key, size_t max_bytes, void **data,
                          size_t *len, char *errstr, size_t errstr_size);

/**
 * Reads an object by full URI. Only URIs inside this store are accepted
 * (same scheme and bucket, path below the root): anything else gives
 * KILN_ERR_BAD_KEY, so a job cannot make a worker read arbitrary files.
 */
kiln_err_t kiln_store_get_uri(kiln_store_t *st, const char *uri, size_t max_bytes,
                              void **data, size_t *len, char *errstr, size_t errstr_size);

/** @returns 1 if \p key exists, 0 if not, -1 on error. */
int kiln_store_exists(kiln_store_t *st, const char *key);

/** Deletes \p key (missing is not an error). */
kiln_err_t kiln_store_delete(kiln_store_t *st, const char *key, char *errstr, size_t errstr_size);

/**
 * Writes the full URI of \p key into \p out ("file:///..." or "s3://bucket/...").
 * The key appears verbatim (not percent-encoded), as the aws CLI writes s3
 * URIs; kiln_store_get_uri() accepts exactly this form.
 */
void kiln_store_uri(const kiln_store_t *st, const char *key, char *out, size_t out_size);

/**
 * Writes the SHA-256 of \p len bytes at \p data as 64 lower-case hex digits
 * plus NUL into \p out (used for S3 payload signing and artifact checksums).
 */
void kiln_store_sha256_hex(const void *data, size_t len, char out[65]);

#ifdef __cplusplus
}
#endif
#endif
