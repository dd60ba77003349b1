/* grpc_c_client — see grpc_c_client.h. */
#define _GNU_SOURCE
#include "grpc_c_client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#define GRPC_C_MAX_MESSAGE (64 << 20)   /* refuse to buffer absurd message lengths */

struct grpc_c_conn {
    int fd;
    nghttp2_session *session;
    char *authority;
    char io_error[128];   /* set by the send callback when the socket fails */
    int broken;           /* a call ended with its stream still open: refuse further calls */
};

/* State of one call, attached to its stream as stream user data. */
typedef struct {
    grpc_c_result *res;
    /* request body: the framed message, handed to nghttp2 by the data provider */
    uint8_t *body;
    size_t body_len, body_off;
    /* response */
    int http_status;
    int content_type_ok;
    int saw_status;
    int in_trailers;             /* the current HEADERS block is the trailers */
    uint8_t prefix[5];           /* message prefix being assembled */
    size_t prefix_have;
    uint8_t *msg;                /* message body being assembled */
    size_t msg_len, msg_have;
    int messages;                /* complete messages received */
    int closed;                  /* on_stream_close ran */
    uint32_t rst_error;          /* its HTTP/2 error code */
    int failed;                  /* a protocol error was recorded in res->error */
} call_t;

static void call_fail(call_t *c, const char *fmt, ...) {
    if (c->failed) return;       /* keep the first error: it is the cause */
    c->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->res->error, sizeof c->res->error, fmt, ap);
    va_end(ap);
}

/* --- base64 (for -bin metadata) and percent-decoding (for grpc-message) ----------------------- */

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Unpadded, as the gRPC spec says senders should emit. */
static char *b64_encode(const uint8_t *in, size_t n) {
    char *out = malloc(4 * ((n + 2) / 3) + 1), *p = out;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *p++ = b64chars[v >> 18]; *p++ = b64chars[(v >> 12) & 63];
        *p++ = b64chars[(v >> 6) & 63]; *p++ = b64chars[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *p++ = b64chars[v >> 18]; *p++ = b64chars[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *p++ = b64chars[v >> 18]; *p++ = b64chars[(v >> 12) & 63]; *p++ = b64chars[(v >> 6) & 63];
    }
    *p = 0;
    return out;
}

/* Accepts padded and unpadded input (both are legal in gRPC). Returns -1 on bad input. */
static int b64_decode(const uint8_t *in, size_t n, uint8_t *out, size_t *out_len) {
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '=') break;
        const char *pos = in[i] ? strchr(b64chars, in[i]) : NULL;
        if (!pos) return -1;
        acc = acc << 6 | (uint32_t)(pos - b64chars);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    *out_len = o;
    return 0;
}

static int hexval(int ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static char *percent_decode(const uint8_t *in, size_t n) {
    char *out = malloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (in[i] == '%' && i + 2 < n && (hi = hexval(in[i + 1])) >= 0 &&
            (lo = hexval(in[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = (char)in[i];   /* a malformed escape passes through, as the spec asks */
        }
    }
    out[o] = 0;
    return out;
}

static int ends_with_bin(const char *key, size_t n) {
    return n >= 4 && memcmp(key + n - 4, "-bin", 4) == 0;
}

static void md_append(grpc_c_md **list, size_t *count, const uint8_t *name, size_t namelen,
                      const uint8_t *value, size_t valuelen, call_t *c) {
    grpc_c_md *grown = realloc(*list, (*count + 1) * sizeof **list);
    if (!grown) { call_fail(c, "out of memory"); return; }
    *list = grown;
    grpc_c_md *m = &(*list)[*count];
    m->key = strndup((const char *)name, namelen);
    m->value = malloc(valuelen + 1);
    if (ends_with_bin((const char *)name, namelen)) {
        if (b64_decode(value, valuelen, m->value, &m->value_len) != 0)
            call_fail(c, "invalid base64 in %s", m->key);
    } else {
        memcpy(m->value, value, valuelen);
        m->value_len = valuelen;
    }
    m->value[m->value_len] = 0;
    (*count)++;
}

/* --- nghttp2 callbacks ------------------------------------------------------------------------ */

static ssize_t send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud) {
    (void)s; (void)flags;
    grpc_c_conn *conn = ud;
    ssize_t n;
    do n = send(conn->fd, data, len, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
    if (n < 0) {
        snprintf(conn->io_error, sizeof conn->io_error, "send: %s", strerror(errno));
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return n;
}

static call_t *call_of(nghttp2_session *s, int32_t stream_id) {
    return nghttp2_session_get_stream_user_data(s, stream_id);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
    (void)ud;
    call_t *c = call_of(s, f->hd.stream_id);
    if (c && f->hd.type == NGHTTP2_HEADERS)
        c->in_trailers = f->headers.cat == NGHTTP2_HCAT_HEADERS;
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
    (void)flags; (void)ud;
    call_t *c = call_of(s, f->hd.stream_id);
    if (!c || f->hd.type != NGHTTP2_HEADERS) return 0;
    grpc_c_result *r = c->res;
#define IS(lit) (namelen == sizeof(lit) - 1 && memcmp(name, lit, namelen) == 0)
    if (!c->in_trailers && IS(":status")) {
        c->http_status = atoi((const char *)value);   /* nghttp2 validated it: 3 digits */
        return 0;
    }
    if (!c->in_trailers && IS("content-type")) {
        c->content_type_ok = valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                             (valuelen == 16 || value[16] == '+' || value[16] == ';');
    }
    if (IS("grpc-status")) {
        char buf[16];
        size_t n = valuelen < sizeof buf - 1 ? valuelen : sizeof buf - 1;
        memcpy(buf, value, n);
        buf[n] = 0;
        char *end;
        long code = strtol(buf, &end, 10);
        if (n == 0 || *end || code < 0 || code > 16)   /* 0..16 are the defined codes */
            call_fail(c, "bad grpc-status \"%s\"", buf);
        r->grpc_status = (int)code;
        c->saw_status = 1;
    }
    if (IS("grpc-message")) {
        free(r->grpc_message);
        r->grpc_message = percent_decode(value, valuelen);
    }
#undef IS
    if (c->in_trailers)
        md_append(&r->trailers, &r->n_trailers, name, namelen, value, valuelen, c);
    else
        md_append(&r->headers, &r->n_headers, name, namelen, value, valuelen, c);
    return 0;
}

/* Reassembles length-prefixed messages from DATA payloads, however the frames split them. */
static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *ud) {
    (void)flags; (void)ud;
    call_t *c = call_of(s, stream_id);
    if (!c) return 0;
    while (len > 0 && !c->failed) {
        if (c->prefix_have < 5) {                 /* still reading the 5-byte prefix */
            size_t n = 5 - c->prefix_have < len ? 5 - c->prefix_have : len;
            memcpy(c->prefix + c->prefix_have, data, n);
            c->prefix_have += n; data += n; len -= n;
            if (c->prefix_have < 5) break;
            if (c->prefix[0] != 0) {
                call_fail(c, "message flag byte %u: compressed messages were never negotiated",
                          c->prefix[0]);
                break;
            }
            c->msg_len = (size_t)c->prefix[1] << 24 | (size_t)c->prefix[2] << 16 |
                         (size_t)c->prefix[3] << 8 | c->prefix[4];
            if (c->msg_len > GRPC_C_MAX_MESSAGE) {
                call_fail(c, "response message of %zu bytes exceeds the %d-byte limit",
                          c->msg_len, GRPC_C_MAX_MESSAGE);
                break;
            }
            c->msg_have = 0;
            c->msg = malloc(c->msg_len ? c->msg_len : 1);
        }
        size_t n = c->msg_len - c->msg_have < len ? c->msg_len - c->msg_have : len;
        memcpy(c->msg + c->msg_have, data, n);
        c->msg_have += n; data += n; len -= n;
        if (c->msg_have == c->msg_len) {          /* one complete message */
            c->messages++;
            if (c->messages > 1) {
                call_fail(c, "more than one response message in a unary call");
                free(c->msg);
            } else {
                c->res->response = c->msg;
                c->res->response_len = c->msg_len;
            }
            c->msg = NULL;
            c->prefix_have = 0;
        }
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
    (void)ud;
    call_t *c = call_of(s, f->hd.stream_id);
    if (!c) return 0;
    if (f->hd.type == NGHTTP2_DATA) {
        c->res->data_frames++;
        if (c->in_trailers) call_fail(c, "DATA after trailers");
    }
    if (f->hd.type == NGHTTP2_HEADERS) {
        int end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
        if (f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
            if (c->http_status != 200)
                call_fail(c, "HTTP status %d", c->http_status);
            else if (!c->content_type_ok)
                call_fail(c, "response content-type is not application/grpc");
            if (end) c->res->trailers_only = 1;
        } else if (!end) {
            call_fail(c, "trailers without END_STREAM");
        }
    }
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *ud) {
    (void)ud;
    call_t *c = call_of(s, stream_id);
    if (c) {
        c->closed = 1;
        c->rst_error = error_code;
    }
    return 0;
}

/* Hands the framed request to nghttp2, ending the stream after the last byte. */
static ssize_t read_body(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t len,
                         uint32_t *data_flags, nghttp2_data_source *src, void *ud) {
    (void)s; (void)stream_id; (void)ud;
    call_t *c = src->ptr;
    size_t n = c->body_len - c->body_off < len ? c->body_len - c->body_off : len;
    memcpy(buf, c->body + c->body_off, n);
    c->body_off += n;
    if (c->body_off == c->body_len) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* --- connection ------------------------------------------------------------------------------- */

grpc_c_conn *grpc_c_connect(const char *host, const char *port, const char *authority,
                            char *err, size_t errlen) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai, *p;
    int rv = getaddrinfo(host, port, &hints, &ai);
    if (rv != 0) {
        snprintf(err, errlen, "resolve %s: %s", host, gai_strerror(rv));
        return NULL;
    }
    int fd = -1;
    for (p = ai; p; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype, p->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, p->ai_addr, p->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        snprintf(err, errlen, "connect %s:%s: %s", host, port, strerror(errno));
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    grpc_c_conn *conn = calloc(1, sizeof *conn);
    conn->fd = fd;
    if (authority) {
        conn->authority = strdup(authority);
    } else if (asprintf(&conn->authority, "%s:%s", host, port) < 0) {
        conn->authority = NULL;
    }

    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, send_cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_client_new(&conn->session, cbs, conn);
    nghttp2_session_callbacks_del(cbs);

    /* The client preface goes out with the first nghttp2_session_send. Windows stay at the
     * 65535-byte default on purpose: large messages then exercise the peer's flow control. */
    nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, settings, 1);
    if (nghttp2_session_send(conn->session) != 0) {
        snprintf(err, errlen, "sending the connection preface failed: %s", conn->io_error);
        grpc_c_close(conn);
        return NULL;
    }
    return conn;
}

void grpc_c_close(grpc_c_conn *conn) {
    if (!conn) return;
    if (!conn->broken) {   /* a broken one may hold a data provider pointing at a dead frame */
        nghttp2_session_terminate_session(conn->session, NGHTTP2_NO_ERROR);
        nghttp2_session_send(conn->session);
    }
    nghttp2_session_del(conn->session);
    close(conn->fd);
    free(conn->authority);
    free(conn);
}

/* --- unary call ------------------------------------------------------------------------------- */

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE}

int grpc_c_unary(grpc_c_conn *conn, const char *path, const uint8_t *request, size_t request_len,
                 const grpc_c_md *md, size_t n_md, int timeout_ms, grpc_c_result *res) {
    memset(res, 0, sizeof *res);
    res->grpc_status = -1;
    res->grpc_message = strdup("");

    if (conn->broken) {
        snprintf(res->error, sizeof res->error, "connection unusable after an earlier error");
        return -1;
    }
    call_t call = {.res = res};
    call.body_len = 5 + request_len;
    call.body = malloc(call.body_len);
    call.body[0] = 0;                                /* not compressed */
    call.body[1] = (uint8_t)(request_len >> 24);     /* big-endian length */
    call.body[2] = (uint8_t)(request_len >> 16);
    call.body[3] = (uint8_t)(request_len >> 8);
    call.body[4] = (uint8_t)request_len;
    if (request_len) memcpy(call.body + 5, request, request_len);

    char timeout[32];
    snprintf(timeout, sizeof timeout, "%dm", timeout_ms);
    size_t nnv = 0, cap = 8 + n_md;
    nghttp2_nv *nva = calloc(cap, sizeof *nva);
    char **owned = calloc(n_md + 1, sizeof *owned);   /* base64 strings to free afterwards */
    nva[nnv++] = (nghttp2_nv)NV(":method", "POST");
    nva[nnv++] = (nghttp2_nv)NV(":scheme", "http");
    nva[nnv++] = (nghttp2_nv)NV(":path", path);
    nva[nnv++] = (nghttp2_nv)NV(":authority", conn->authority);
    nva[nnv++] = (nghttp2_nv)NV("content-type", "application/grpc");
    nva[nnv++] = (nghttp2_nv)NV("te", "trailers");
    nva[nnv++] = (nghttp2_nv)NV("user-agent", "grpc-c-client/1.0 (libnghttp2 " NGHTTP2_VERSION ")");
    if (timeout_ms > 0) nva[nnv++] = (nghttp2_nv)NV("grpc-timeout", timeout);
    for (size_t i = 0; i < n_md; i++) {
        size_t klen = strlen(md[i].key);
        if (ends_with_bin(md[i].key, klen)) {
            owned[i] = b64_encode(md[i].value, md[i].value_len);
            nva[nnv++] = (nghttp2_nv)NV(md[i].key, owned[i]);
        } else {
            nva[nnv++] = (nghttp2_nv){(uint8_t *)md[i].key, md[i].value, klen, md[i].value_len,
                                      NGHTTP2_NV_FLAG_NONE};
        }
    }

    nghttp2_data_provider provider = {.source.ptr = &call, .read_callback = read_body};
    int32_t stream_id = nghttp2_submit_request(conn->session, NULL, nva, nnv, &provider, &call);
    int rv = -1;
    if (stream_id < 0) {
        snprintf(res->error, sizeof res->error, "submit_request: %s",
                 nghttp2_strerror(stream_id));
        goto out;
    }

    long long deadline = timeout_ms > 0 ? now_ms() + timeout_ms + 1000 : -1; /* + server's slack */
    uint8_t buf[16384];
    while (!call.closed) {
        int e = nghttp2_session_send(conn->session);
        if (e != 0) {
            snprintf(res->error, sizeof res->error, "nghttp2_session_send: %s %s",
                     nghttp2_strerror(e), conn->io_error);
            goto out;
        }
        if (!nghttp2_session_want_read(conn->session) &&
            !nghttp2_session_want_write(conn->session)) {
            snprintf(res->error, sizeof res->error, "the HTTP/2 session ended (GOAWAY?)");
            goto out;
        }
        int wait = -1;
        if (deadline >= 0) {
            wait = (int)(deadline - now_ms());
            if (wait <= 0) {
                nghttp2_submit_rst_stream(conn->session, NGHTTP2_FLAG_NONE, stream_id,
                                          NGHTTP2_CANCEL);
                nghttp2_session_send(conn->session);   /* best effort */
                snprintf(res->error, sizeof res->error, "no status within the deadline");
                goto out;
            }
        }
        struct pollfd pfd = {.fd = conn->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, wait);
        if (pr < 0 && errno != EINTR) {
            snprintf(res->error, sizeof res->error, "poll: %s", strerror(errno));
            goto out;
        }
        if (pr <= 0) continue;
        ssize_t n = recv(conn->fd, buf, sizeof buf, 0);
        if (n == 0) {
            snprintf(res->error, sizeof res->error, "connection closed by the server");
            goto out;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            snprintf(res->error, sizeof res->error, "recv: %s", strerror(errno));
            goto out;
        }
        ssize_t used = nghttp2_session_mem_recv(conn->session, buf, (size_t)n);
        if (used < 0) {
            snprintf(res->error, sizeof res->error, "HTTP/2 protocol error: %s",
                     nghttp2_strerror((int)used));
            goto out;
        }
    }
    nghttp2_session_send(conn->session);   /* flush WINDOW_UPDATEs etc. */

    if (call.failed) goto out;              /* res->error already says why */
    if (call.rst_error != NGHTTP2_NO_ERROR) {
        snprintf(res->error, sizeof res->error, "stream reset: %s",
                 nghttp2_http2_strerror(call.rst_error));
        goto out;
    }
    if (!call.saw_status) {
        snprintf(res->error, sizeof res->error, "stream ended without grpc-status");
        goto out;
    }
    if (call.prefix_have > 0) {
        snprintf(res->error, sizeof res->error, "stream ended inside a message (%zu of %zu bytes)",
                 call.msg_have, call.msg_len);
        goto out;
    }
    if (res->grpc_status == 0 && call.messages != 1) {
        snprintf(res->error, sizeof res->error, "status OK with %d response messages",
                 call.messages);
        goto out;
    }
    rv = 0;
out:
    if (rv != 0) res->grpc_status = -1;
    /* After an error the stream may still be open, and its user data and data provider point
     * into this stack frame: detach it and retire the connection. */
    if (stream_id > 0 && !call.closed) {
        nghttp2_session_set_stream_user_data(conn->session, stream_id, NULL);
        conn->broken = 1;
    }
    free(call.msg);
    free(call.body);
    for (size_t i = 0; i < n_md; i++) free(owned[i]);
    free(owned);
    free(nva);
    return rv;
}

static void md_free(grpc_c_md *md, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(md[i].key);
        free(md[i].value);
    }
    free(md);
}

void grpc_c_result_free(grpc_c_result *res) {
    free(res->grpc_message);
    free(res->response);
    md_free(res->headers, res->n_headers);
    md_free(res->trailers, res->n_trailers);
    memset(res, 0, sizeof *res);
}

const grpc_c_md *grpc_c_md_find(const grpc_c_md *md, size_t n, const char *key) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(md[i].key, key) == 0) return &md[i];
    return NULL;
}
