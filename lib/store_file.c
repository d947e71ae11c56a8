/*
 * lib/store_file.c - the file:// object store backend.
 *
 * Objects are regular files below a root directory (made absolute and
 * resolved with realpath() when the store opens). Every operation walks the
 * key from the root one segment at a time with openat(O_NOFOLLOW), so a
 * symbolic link anywhere below the root is refused (KILN_ERR_BAD_KEY) rather
 * than followed out of the store.
 *
 * put writes a temporary file in the target directory, fsyncs it, renames it
 * over the key and fsyncs the directory: readers see the old object or the
 * new one, never a part, and writing the same key again is a harmless
 * overwrite. Missing directories are created on put; they are left in place
 * on delete (a concurrent put may be using them).
 *
 * A file store cannot hold both "a" and "a/b" (S3 can): the second put
 * fails with KILN_ERR_BAD_KEY.
 */
#include "kiln/log.h"
#include "kiln/store.h"
#include "lib/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct kiln_store_file_s {
    char *root; /* resolved absolute root without trailing '/' ("" for "/") */
} kiln_store_file_t;

#define KILN_FS(st) ((kiln_store_file_t *)(st)->impl)

/* ------------------------------------------------------------------ helpers */

/* Creates \p path and its missing parents (mode 0755). @returns 0 or -1. */
static int kiln_store_file_mkdirs_(const char *path) {
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) && errno != EEXIST)
                return -1;
            *p = c;
            if (!c)
                break;
        }
    }
    return 0;
}

/* Opens the root directory of the store. */
static int kiln_store_file_root_fd_(const kiln_store_file_t *fs) {
    return open(fs->root[0] ? fs->root : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/*
 * kiln_store_file_walk_ - opens the directory that holds \p key, one segment
 * at a time without following symbolic links, creating missing directories
 * when \p create. *base points at the last segment of \p key.
 * @returns the directory fd, or -1 with errno (ELOOP for a symbolic link,
 * ENOTDIR when a segment is a file, ENOENT when missing).
 */
static int kiln_store_file_walk_(const kiln_store_file_t *fs, const char *key, int create,
                                 const char **base) {
    int dfd = kiln_store_file_root_fd_(fs);
    if (dfd < 0)
        return -1;
    const char *seg = key;
    const char *slash;
    while ((slash = strchr(seg, '/'))) {
        char name[NAME_MAX + 1];
        size_t n = (size_t)(slash - seg);
        if (n > NAME_MAX) {
            close(dfd);
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(name, seg, n);
        name[n] = '\0';
        int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && create) {
            if (mkdirat(dfd, name, 0755) && errno != EEXIST) {
                int e = errno;
                close(dfd);
                errno = e;
                return -1;
            }
            fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd < 0) {
            int e = errno;
            struct stat sb;
            if ((e == ENOTDIR || e == ELOOP) &&
                !fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW))
                e = S_ISLNK(sb.st_mode) ? ELOOP : ENOTDIR;
            close(dfd);
            errno = e;
            return -1;
        }
        close(dfd);
        dfd = fd;
        seg = slash + 1;
    }
    *base = seg;
    return dfd;
}

/*
 * kiln_store_file_fail_ - formats "could not <verb> object "<uri>": <why>"
 * for errno \p e and picks the code: a symbolic link, an over-long name or
 * a file/directory clash is a bad key (retrying cannot help), a missing file
 * NOT_FOUND when reading, anything else KILN_ERR_STORE (retriable).
 */
static kiln_err_t kiln_store_file_fail_(kiln_store_t *st, const char *verb, const char *key,
                                        int e, char *errstr, size_t errstr_size) {
    char uri[PATH_MAX + 16];
    kiln_store_uri(st, key, uri, sizeof(uri));
    kiln_err_t err;
    const char *why;
    switch (e) {
    case ELOOP:
        err = KILN_ERR_BAD_KEY, why = "refusing to follow a symbolic link";
        break;
    case ENAMETOOLONG:
        err = KILN_ERR_BAD_KEY, why = "a path segment is too long for this file system";
        break;
    case ENOENT: /* for a write: the root or a directory vanished meanwhile */
        if (!strcmp(verb, "write"))
            err = KILN_ERR_STORE, why = strerror(e);
        else
            err = KILN_ERR__NOT_FOUND, why = "no such object";
        break;
    case EISDIR:
    case ENOTDIR:
        err = KILN_ERR_BAD_KEY, why = "conflicts with an existing object or directory";
        break;
    default:
        err = KILN_ERR_STORE, why = strerror(e);
        break;
    }
    snprintf(errstr, errstr_size, "could not %s object \"%s\": %s", verb, uri, why);
    return err;
}

/* ------------------------------------------------------------------ ops */

static kiln_err_t kiln_store_file_put_(kiln_store_t *st, const char *key, const void *data,
                                       size_t len, char *errstr, size_t errstr_size) {
    static atomic_uint seq;
    const char *base;
    int e;
    int dfd = kiln_store_file_walk_(KILN_FS(st), key, 1, &base);
    if (dfd < 0)
        return kiln_store_file_fail_(st, "write", key, errno, errstr, errstr_size);

    char tmp[64];
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        snprintf(tmp, sizeof(tmp), ".kiln-tmp.%ld.%u", (long)getpid(),
                 atomic_fetch_add(&seq, 1));
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        e = errno;
        close(dfd);
        return kiln_store_file_fail_(st, "write", key, e, errstr, errstr_size);
    }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            goto fail;
        p += w;
        left -= (size_t)w;
    }
    if (!st->deferred_sync && fsync(fd))
        goto fail;
    if (close(fd)) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (renameat(dfd, tmp, dfd, base))
        goto fail;
    if (!st->deferred_sync && fsync(dfd))
        KILN_LOG_WARN("could not fsync the directory of \"%s\": %s", key, strerror(errno));
    close(dfd);
    return KILN_OK;

fail:
    e = errno;
    if (fd >= 0)
        close(fd);
    unlinkat(dfd, tmp, 0);
    close(dfd);
    return kiln_store_file_fail_(st, "write", key, e, errstr, errstr_size);
}

static kiln_err_t kiln_store_file_get_(kiln_store_t *st, const char *key, size_t max_bytes,
                                       void **data, size_t *len, char *errstr,
                                       size_t errstr_size) {
    const char *base;
    int e;
    int dfd = kiln_store_file_walk_(KILN_FS(st), key, 0, &base);
    if (dfd < 0)
        return kiln_store_file_fail_(st, "read", key, errno == ENOTDIR ? ENOENT : errno,
                                     errstr, errstr_size);
    int fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    e = errno;
    close(dfd);
    if (fd < 0)
        return kiln_store_file_fail_(st, "read", key, e, errstr, errstr_size);

    struct stat sb;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    kiln_err_t err = KILN_OK;
    if (fstat(fd, &sb)) {
        err = kiln_store_file_fail_(st, "read", key, errno, errstr, errstr_size);
        goto done;
    }
    if (S_ISDIR(sb.st_mode)) {
        err = kiln_store_file_fail_(st, "read", key, ENOENT, errstr, errstr_size);
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        char uri[PATH_MAX + 16];
        kiln_store_uri(st, key, uri, sizeof(uri));
        snprintf(errstr, errstr_size, "could not read object \"%s\": not a regular file", uri);
        err = KILN_ERR_BAD_KEY;
        goto done;
    }
    if ((unsigned long long)sb.st_size > max_bytes)
        goto too_large;
    if (kiln_store_buf_reserve(&buf, &cap, (size_t)sb.st_size + 1))
        goto nomem;
    for (;;) { /* read to EOF: the file may have been replaced meanwhile */
        if (n == cap - 1 && kiln_store_buf_reserve(&buf, &cap, cap + 1))
            goto nomem;
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err = kiln_store_file_fail_(st, "read", key, errno, errstr, errstr_size);
            goto done;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max_bytes)
            goto too_large;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    buf = NULL;
    goto done;

too_large: {
    char uri[PATH_MAX + 16];
    kiln_store_uri(st, key, uri, sizeof(uri));
    snprintf(errstr, errstr_size, "object \"%s\" is larger than the limit of %zu bytes", uri,
             max_bytes);
    err = KILN_ERR_TOO_LARGE;
    goto done;
}
nomem:
    snprintf(errstr, errstr_size, "out of memory reading object \"%s\"", key);
    err = KILN_ERR__NOMEM;
done:
    free(buf);
    close(fd);
    return err;
}

static int kiln_store_file_exists_(kiln_store_t *st, const char *key, char *errstr,
                                   size_t errstr_size) {
    const char *base;
    int dfd = kiln_store_file_walk_(KILN_FS(st), key, 0, &base);
    if (dfd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        kiln_store_file_fail_(st, "stat", key, errno, errstr, errstr_size);
        return -1;
    }
    struct stat sb;
    int r = fstatat(dfd, base, &sb, AT_SYMLINK_NOFOLLOW);
    int e = errno;
    close(dfd);
    if (r)
        return e == ENOENT ? 0 : (kiln_store_file_fail_(st, "stat", key, e, errstr, errstr_size),
                                  -1);
    if (S_ISLNK(sb.st_mode)) {
        kiln_store_file_fail_(st, "stat", key, ELOOP, errstr, errstr_size);
        return -1;
    }
    return S_ISREG(sb.st_mode);
}

static kiln_err_t kiln_store_file_del_(kiln_store_t *st, const char *key, char *errstr,
                                       size_t errstr_size) {
    const char *base;
    int dfd = kiln_store_file_walk_(KILN_FS(st), key, 0, &base);
    if (dfd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return KILN_OK;
        return kiln_store_file_fail_(st, "delete", key, errno, errstr, errstr_size);
    }
    int r = unlinkat(dfd, base, 0);
    int e = errno;
    close(dfd);
    if (r && e != ENOENT && e != EISDIR)
        return kiln_store_file_fail_(st, "delete", key, e, errstr, errstr_size);
    return KILN_OK;
}

/*
 * kiln_store_file_uri_to_key_ - maps "file:///abs/path" to a key. The path
 * must be normalised (no ".", "..", empty segment) and its directory must
 * resolve (realpath, symbolic links followed) to the root or below it; the
 * final segment is then opened without following links by get.
 */
static kiln_err_t kiln_store_file_uri_to_key_(kiln_store_t *st, const char *uri, char *key,
                                              size_t key_size, char *errstr,
                                              size_t errstr_size) {
    const kiln_store_file_t *fs = KILN_FS(st);
    const char *path = NULL;
    if (!strncmp(uri, "file://", 7))
        path = !strncmp(uri + 7, "localhost/", 10) ? uri + 16 : uri + 7;
    size_t n = path ? strlen(path) : 0;
    if (!path || path[0] != '/' || n >= PATH_MAX || !kiln_store_path_ok(path + 1, n - 1))
        goto outside;

    const char *slash = strrchr(path, '/');
    const char *base = slash + 1;
    char dir[PATH_MAX], real[PATH_MAX];
    size_t dlen = slash == path ? 1 : (size_t)(slash - path);
    memcpy(dir, path, dlen);
    dir[dlen] = '\0';
    size_t rlen = strlen(fs->root);
    if (!realpath(dir, real)) {
        int e = errno;
        /* a directory that does not exist: not found if it would be inside */
        if ((e == ENOENT || e == ENOTDIR) && !strncmp(path, fs->root, rlen) &&
            path[rlen] == '/') {
            snprintf(errstr, errstr_size, "could not read object \"%s\": no such object", uri);
            return KILN_ERR__NOT_FOUND;
        }
        if (e == ENOENT || e == ENOTDIR)
            goto outside;
        snprintf(errstr, errstr_size, "could not resolve object URI \"%s\": %s", uri,
                 strerror(e));
        return KILN_ERR_STORE;
    }
    const char *rest;
    if (!strcmp(real, fs->root[0] ? fs->root : "/"))
        rest = "";
    else if (!strncmp(real, fs->root, rlen) && real[rlen] == '/')
        rest = real + rlen + 1;
    else
        goto outside;
    int k = snprintf(key, key_size, "%s%s%s", rest, *rest ? "/" : "", base);
    if (k < 0 || (size_t)k >= key_size)
        goto outside;
    return KILN_OK;

outside:
    snprintf(errstr, errstr_size, "object URI \"%.300s\" is outside the store %s", uri,
             st->root_uri);
    return KILN_ERR_BAD_KEY;
}

/* One syncfs() of the store's file system makes every deferred put durable
 * (data, the renames and the directories). */
static kiln_err_t kiln_store_file_sync_(kiln_store_t *st, char *errstr, size_t errstr_size) {
    int fd = kiln_store_file_root_fd_(KILN_FS(st));
    if (fd < 0 || syncfs(fd)) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        snprintf(errstr, errstr_size, "could not sync the object store \"%s\": %s", st->root_uri,
                 strerror(e));
        return KILN_ERR_STORE;
    }
    close(fd);
    return KILN_OK;
}

static void kiln_store_file_destroy_(kiln_store_t *st) {
    kiln_store_file_t *fs = KILN_FS(st);
    if (!fs)
        return;
    free(fs->root);
    free(fs);
    st->impl = NULL;
}

static const kiln_store_ops_t kiln_store_file_ops = {
    .put = kiln_store_file_put_,
    .get = kiln_store_file_get_,
    .exists = kiln_store_file_exists_,
    .del = kiln_store_file_del_,
    .uri_to_key = kiln_store_file_uri_to_key_,
    .sync = kiln_store_file_sync_,
    .destroy = kiln_store_file_destroy_,
};

int kiln_store_file_open(kiln_store_t *st, const char *path, char *errstr,
                         size_t errstr_size) {
    char real[PATH_MAX];
    if (kiln_store_file_mkdirs_(path)) {
        snprintf(errstr, errstr_size, "could not create store directory \"%s\": %s", path,
                 strerror(errno));
        return -1;
    }
    if (!realpath(path, real)) {
        snprintf(errstr, errstr_size, "could not resolve store directory \"%s\": %s", path,
                 strerror(errno));
        return -1;
    }
    kiln_store_file_t *fs = calloc(1, sizeof(*fs));
    size_t n = strlen(real);
    if (n == 1) /* "/" */
        real[0] = '\0', n = 0;
    char *uri = malloc(n + 8);
    if (!fs || !uri || !(fs->root = strdup(real))) {
        free(fs);
        free(uri);
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    snprintf(uri, n + 8, "file://%s", real);
    st->ops = &kiln_store_file_ops;
    st->impl = fs;
    st->root_uri = uri;
    return 0;
}
