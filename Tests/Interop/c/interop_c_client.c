/*
 * c-interop-client — interop test cases over grpc_c_client (libnghttp2, h2c) with messages from
 * protobuf-c. It proves a plain C program with no gRPC library talks to a server byte for byte.
 *
 *   c-interop-client --host H --port P --test_case NAME
 *
 * Cases (unary parts of doc/interop-test-descriptions.md): empty_unary, large_unary,
 * custom_metadata, status_code_and_message, special_status_message, unimplemented_method,
 * unimplemented_service, echo (EchoService/Echo); `all` runs them all on one connection.
 * Exit status 0 means the case passed; otherwise the reason is printed on stderr.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_c_client.h"
#include "grpc/testing/test.pb-c.h"
#include "platform/echo/v1/echo.pb-c.h"

#define TIMEOUT_MS 30000
#define SPECIAL_MESSAGE \
    "\t\ntest with whitespace\r\nand Unicode BMP \xe2\x98\xba and non-BMP \xf0\x9f\x98\x88\t\n"

static char failure[512];

static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(failure, sizeof failure, fmt, ap);
    va_end(ap);
    return -1;
}

/* Packs a protobuf-c message into a malloc'd buffer. */
static uint8_t *pack(const ProtobufCMessage *m, size_t *len) {
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len ? *len : 1);
    protobuf_c_message_pack(m, buf);
    return buf;
}

/* One unary call that must reach a gRPC status; fills res. */
static int call(grpc_c_conn *conn, const char *path, const ProtobufCMessage *req,
                const grpc_c_md *md, size_t n_md, grpc_c_result *res) {
    size_t len;
    uint8_t *buf = pack(req, &len);
    int rv = grpc_c_unary(conn, path, buf, len, md, n_md, TIMEOUT_MS, res);
    free(buf);
    if (rv != 0) return fail("%s: %s", path, res->error);
    return 0;
}

static int expect_status(const grpc_c_result *res, int code, const char *message,
                         const char *what) {
    if (res->grpc_status != code)
        return fail("%s: want status %d, got %d (%s)", what, code, res->grpc_status,
                    res->grpc_message);
    if (message && strcmp(res->grpc_message, message) != 0)
        return fail("%s: want message \"%s\", got \"%s\"", what, message, res->grpc_message);
    return 0;
}

static int is_zeros(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

/* Sends the large_unary request (271828 zero bytes in, 314159 out) and checks the reply. */
static int large_call(grpc_c_conn *conn, const grpc_c_md *md, size_t n_md, grpc_c_result *res) {
    uint8_t *zeros = calloc(1, 271828);
    Grpc__Testing__Payload payload = GRPC__TESTING__PAYLOAD__INIT;
    payload.body.data = zeros;
    payload.body.len = 271828;
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.response_size = 314159;
    req.payload = &payload;
    int rv = call(conn, "/grpc.testing.TestService/UnaryCall", &req.base, md, n_md, res);
    free(zeros);
    if (rv || expect_status(res, 0, NULL, "UnaryCall")) return -1;

    Grpc__Testing__SimpleResponse *resp =
        grpc__testing__simple_response__unpack(NULL, res->response_len, res->response);
    if (!resp) return fail("UnaryCall: the response does not decode as SimpleResponse");
    rv = 0;
    if (!resp->payload || resp->payload->type != GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE)
        rv = fail("UnaryCall: missing payload or wrong payload type");
    else if (resp->payload->body.len != 314159)
        rv = fail("UnaryCall: payload body is %zu bytes, want 314159", resp->payload->body.len);
    else if (!is_zeros(resp->payload->body.data, resp->payload->body.len))
        rv = fail("UnaryCall: payload body is not all zeros");
    /* 314159 bytes cannot fit one DATA frame at the default 16384-byte max frame size. */
    else if (res->data_frames < 2)
        rv = fail("UnaryCall: %d DATA frames for a 314 kB message?", res->data_frames);
    grpc__testing__simple_response__free_unpacked(resp, NULL);
    return rv;
}

/* --- test cases ------------------------------------------------------------------------------ */

static int empty_unary(grpc_c_conn *conn) {
    grpc_c_result res;
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT;
    int rv = call(conn, "/grpc.testing.TestService/EmptyCall", &req.base, NULL, 0, &res);
    if (!rv) rv = expect_status(&res, 0, NULL, "EmptyCall");
    /* The wire lets us check what most clients cannot: Empty serializes to zero bytes. */
    if (!rv && res.response_len != 0)
        rv = fail("EmptyCall: response message is %zu bytes, want 0", res.response_len);
    grpc_c_result_free(&res);
    return rv;
}

static int large_unary(grpc_c_conn *conn) {
    grpc_c_result res;
    int rv = large_call(conn, NULL, 0, &res);
    if (!rv) printf("  large_unary: response arrived in %d DATA frames\n", res.data_frames);
    grpc_c_result_free(&res);
    return rv;
}

static int custom_metadata(grpc_c_conn *conn) {
    static uint8_t initial[] = "test_initial_metadata_value", trailing[] = {0xab, 0xab, 0xab};
    grpc_c_md md[] = {
        {"x-grpc-test-echo-initial", initial, sizeof initial - 1},
        {"x-grpc-test-echo-trailing-bin", trailing, sizeof trailing},  /* base64'd on the wire */
    };
    grpc_c_result res;
    int rv = large_call(conn, md, 2, &res);
    if (!rv) {
        const grpc_c_md *h = grpc_c_md_find(res.headers, res.n_headers, md[0].key);
        const grpc_c_md *t = grpc_c_md_find(res.trailers, res.n_trailers, md[1].key);
        if (!h || h->value_len != md[0].value_len || memcmp(h->value, initial, h->value_len))
            rv = fail("initial metadata %s missing or wrong", md[0].key);
        else if (!t || t->value_len != 3 || memcmp(t->value, trailing, 3))
            rv = fail("trailing metadata %s missing or wrong", md[1].key);
    }
    grpc_c_result_free(&res);
    return rv;
}

static int status_call(grpc_c_conn *conn, const char *message) {
    Grpc__Testing__EchoStatus status = GRPC__TESTING__ECHO_STATUS__INIT;
    status.code = 2;
    status.message = (char *)message;
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.response_status = &status;
    grpc_c_result res;
    int rv = call(conn, "/grpc.testing.TestService/UnaryCall", &req.base, NULL, 0, &res);
    if (!rv) rv = expect_status(&res, 2, message, "UnaryCall");
    grpc_c_result_free(&res);
    return rv;
}

static int status_code_and_message(grpc_c_conn *conn) {
    return status_call(conn, "test status message");
}

static int special_status_message(grpc_c_conn *conn) {
    return status_call(conn, SPECIAL_MESSAGE);   /* exercises grpc-message percent-encoding */
}

static int unimplemented(grpc_c_conn *conn, const char *path) {
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT;
    grpc_c_result res;
    int rv = call(conn, path, &req.base, NULL, 0, &res);
    if (!rv) rv = expect_status(&res, 12, NULL, path);
    grpc_c_result_free(&res);
    return rv;
}

static int unimplemented_method(grpc_c_conn *conn) {
    return unimplemented(conn, "/grpc.testing.TestService/UnimplementedCall");
}

static int unimplemented_service(grpc_c_conn *conn) {
    return unimplemented(conn, "/grpc.testing.UnimplementedService/UnimplementedCall");
}

static int echo(grpc_c_conn *conn) {
    Platform__Echo__V1__EchoRequest req = PLATFORM__ECHO__V1__ECHO_REQUEST__INIT;
    req.text = "hello";
    grpc_c_result res;
    int rv = call(conn, "/platform.echo.v1.EchoService/Echo", &req.base, NULL, 0, &res);
    if (!rv) rv = expect_status(&res, 0, NULL, "Echo");
    if (!rv) {
        Platform__Echo__V1__EchoResponse *resp =
            platform__echo__v1__echo_response__unpack(NULL, res.response_len, res.response);
        if (!resp)
            rv = fail("Echo: the response does not decode as EchoResponse");
        else if (strcmp(resp->text, "hello") != 0)
            rv = fail("Echo: got \"%s\"", resp->text);
        if (resp) platform__echo__v1__echo_response__free_unpacked(resp, NULL);
    }
    grpc_c_result_free(&res);
    return rv;
}

static const struct {
    const char *name;
    int (*run)(grpc_c_conn *);
} cases[] = {
    {"empty_unary", empty_unary},
    {"large_unary", large_unary},
    {"custom_metadata", custom_metadata},
    {"status_code_and_message", status_code_and_message},
    {"special_status_message", special_status_message},
    {"unimplemented_method", unimplemented_method},
    {"unimplemented_service", unimplemented_service},
    {"echo", echo},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static void usage(void) {
    fprintf(stderr, "usage: c-interop-client --host H --port P --test_case NAME "
                    "[--authority A]\ncases:");
    for (size_t i = 0; i < N_CASES; i++) fprintf(stderr, " %s", cases[i].name);
    fprintf(stderr, " all\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *port = NULL, *test_case = NULL, *authority = NULL;
    static const struct option opts[] = {
        {"host", required_argument, 0, 'h'},
        {"server_host", required_argument, 0, 'h'},   /* interop-spec spellings as well */
        {"port", required_argument, 0, 'p'},
        {"server_port", required_argument, 0, 'p'},
        {"test_case", required_argument, 0, 't'},
        {"authority", required_argument, 0, 'a'},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'h': host = optarg; break;
        case 'p': port = optarg; break;
        case 't': test_case = optarg; break;
        case 'a': authority = optarg; break;
        default: usage();
        }
    }
    if (!port || !test_case) usage();
    int all = strcmp(test_case, "all") == 0;
    size_t chosen = N_CASES;
    for (size_t i = 0; i < N_CASES; i++)
        if (strcmp(cases[i].name, test_case) == 0) chosen = i;
    if (!all && chosen == N_CASES) usage();

    char err[256];
    grpc_c_conn *conn = grpc_c_connect(host, port, authority, err, sizeof err);
    if (!conn) {
        fprintf(stderr, "FAIL %s: %s\n", test_case, err);
        return 1;
    }
    int failed = 0;
    for (size_t i = 0; i < N_CASES; i++) {
        if (!all && i != chosen) continue;
        if (cases[i].run(conn) != 0) {
            fprintf(stderr, "FAIL %s: %s\n", cases[i].name, failure);
            failed = 1;
        } else {
            printf("PASS %s\n", cases[i].name);
        }
    }
    grpc_c_close(conn);
    return failed;
}
