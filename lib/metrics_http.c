/*
 * lib/metrics_http.c - the /metrics HTTP server of kiln/metrics.h, on
 * libmicrohttpd.
 *
 * We create, bind and listen on the socket ourselves (so that port 0 and IPv6
 * work the same way on every libmicrohttpd version, and getsockname() tells
 * the bound port), then hand it to a libmicrohttpd daemon running its own
 * polling thread. Each GET /metrics renders the registry afresh; nothing is
 * cached, so a scrape always sees the latest values.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kiln/log.h"
#include "kiln/metrics.h"

/* lib/metrics.c */
void **kiln_metrics_http_slot_(kiln_metrics_t *reg);

typedef struct kiln_mhttp_s {
    struct MHD_Daemon *mhd;
    int port;
} kiln_mhttp_t;

#define KILN_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

static enum MHD_Result kiln_mhttp_reply(struct MHD_Connection *conn, unsigned int status,
                                        const char *ctype, char *body, size_t len,
                                        enum MHD_ResponseMemoryMode mode) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result kiln_mhttp_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                         const char *method, const char *version,
                                         const char *upload_data, size_t *upload_data_size,
                                         void **con_cls) {
    kiln_metrics_t *reg = cls;
    static int seen;
    (void)version;
    (void)upload_data;
    if (!*con_cls) { /* first call: headers only; answer once any body is read */
        *con_cls = &seen;
        return MHD_YES;
    }
    if (*upload_data_size) { /* swallow a request body */
        *upload_data_size = 0;
        return MHD_YES;
    }
    static char text_plain[] = "text/plain; charset=utf-8";
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD)) {
        static char msg[] = "method not allowed\n";
        return kiln_mhttp_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text_plain, msg,
                                strlen(msg), MHD_RESPMEM_PERSISTENT);
    }
    if (!strcmp(url, "/metrics")) {
        size_t len;
        char *body = kiln_metrics_render(reg, &len);
        return kiln_mhttp_reply(conn, MHD_HTTP_OK, KILN_METRICS_CONTENT_TYPE, body, len,
                                MHD_RESPMEM_MUST_FREE);
    }
    if (!strcmp(url, "/healthz")) {
        static char ok[] = "ok\n";
        return kiln_mhttp_reply(conn, MHD_HTTP_OK, text_plain, ok, strlen(ok),
                                MHD_RESPMEM_PERSISTENT);
    }
    if (!strcmp(url, "/")) {
        static char idx[] = "kiln metrics: GET /metrics (Prometheus text format), GET /healthz\n";
        return kiln_mhttp_reply(conn, MHD_HTTP_OK, text_plain, idx, strlen(idx),
                                MHD_RESPMEM_PERSISTENT);
    }
    static char nf[] = "not found: try /metrics\n";
    return kiln_mhttp_reply(conn, MHD_HTTP_NOT_FOUND, text_plain, nf, strlen(nf),
                            MHD_RESPMEM_PERSISTENT);
}

/* Binds and listens on \p addr:\p port. @returns the socket, or -1 with errstr. */
static int kiln_mhttp_listen(const char *addr, int port, int *family, int *bound_port,
                             char *errstr, size_t errstr_size) {
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(addr, ps, &hints, &res);
    if (gai) {
        snprintf(errstr, errstr_size, "could not resolve metrics address \"%s\": %s", addr,
                 gai_strerror(gai));
        return -1;
    }
    int fd = -1, e = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0) {
            *family = ai->ai_family;
            break;
        }
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(errstr, errstr_size, "could not listen on %s port %d: %s", addr, port,
                 strerror(e));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl)) {
        snprintf(errstr, errstr_size, "could not read the metrics socket's port: %s",
                 strerror(errno));
        close(fd);
        return -1;
    }
    *bound_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

int kiln_metrics_server_start(kiln_metrics_t *reg, const char *bind_addr, int port,
                              char *errstr, size_t errstr_size) {
    void **slot = kiln_metrics_http_slot_(reg);
    if (*slot) {
        snprintf(errstr, errstr_size, "a metrics server already runs for this registry");
        return -1;
    }
    if (port < 0 || port > 65535) {
        snprintf(errstr, errstr_size, "invalid metrics port %d", port);
        return -1;
    }
    const char *addr = bind_addr && *bind_addr ? bind_addr : "127.0.0.1";
    int family = AF_INET, bound = 0;
    int fd = kiln_mhttp_listen(addr, port, &family, &bound, errstr, errstr_size);
    if (fd < 0)
        return -1;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
    if (family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_Daemon *mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, kiln_mhttp_handle, reg, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)64, MHD_OPTION_END);
    if (!mhd) {
        close(fd);
        snprintf(errstr, errstr_size, "could not start the metrics HTTP server on %s port %d",
                 addr, bound);
        return -1;
    }
    kiln_mhttp_t *h = calloc(1, sizeof(*h));
    if (!h) {
        MHD_stop_daemon(mhd);
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    h->mhd = mhd;
    h->port = bound;
    *slot = h;
    return bound;
}

void kiln_metrics_server_stop(kiln_metrics_t *reg) {
    if (!reg)
        return;
    void **slot = kiln_metrics_http_slot_(reg);
    kiln_mhttp_t *h = *slot;
    if (!h)
        return;
    MHD_stop_daemon(h->mhd); /* joins the thread and closes the socket */
    free(h);
    *slot = NULL;
}

int kiln_metrics_server_port(const kiln_metrics_t *reg) {
    kiln_mhttp_t *h = *kiln_metrics_http_slot_((kiln_metrics_t *)reg);
    return h ? h->port : 0;
}

int kiln_metrics_serve_conf(kiln_metrics_t *reg, const kiln_conf_t *conf, const char *prefix,
                            const char *name, char **port_file, char *errstr,
                            size_t errstr_size) {
    char key[64], rel[192];
    *port_file = NULL;
    snprintf(key, sizeof(key), "%s.metrics_port", prefix);
    const char *ps = kiln_conf_get(conf, key); /* "" when unknown */
    int port = *ps ? atoi(ps) : 0;
    if (port < 0)
        return 0;
    snprintf(key, sizeof(key), "%s.metrics_addr", prefix);
    const char *addr = kiln_conf_get(conf, key);
    if (!*addr)
        addr = "127.0.0.1";
    port = kiln_metrics_server_start(reg, addr, port, errstr, errstr_size);
    if (port < 0)
        return -1;
    KILN_LOG_INFO("metrics on http://%s:%d/metrics", addr, port);
    snprintf(rel, sizeof(rel), "run/%s.metrics", name);
    char *path = kiln_conf_stack_path(conf, rel);
    FILE *fp = fopen(path, "w");
    if (fp) {
        fprintf(fp, "%d\n", port);
        fclose(fp);
        *port_file = path;
    } else
        free(path); /* no run directory: not an embedded stack */
    return 0;
}
