/*
 * grpc_c_client — a minimal, blocking gRPC client on libnghttp2 (h2c with prior knowledge over a
 * plain TCP socket). It knows nothing about protobuf: a call takes the serialized request bytes
 * and hands back the serialized response bytes, so any message library (protobuf-c here) fits.
 *
 * One connection carries any number of sequential unary calls, each on a new HTTP/2 stream.
 * It checks the gRPC wire protocol strictly and reports violations as errors: :status 200,
 * content-type application/grpc*, the 5-byte message prefix (possibly split over several DATA
 * frames), no compressed messages (it never offers an encoding), exactly one response message for
 * an OK unary call, grpc-status in the trailers (or a trailers-only response).
 *
 * Not thread-safe; not for streaming calls (yet).
 */
#ifndef GRPC_C_CLIENT_H
#define GRPC_C_CLIENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct grpc_c_conn grpc_c_conn;

/* One metadata entry. Keys are lowercase; values of keys ending in "-bin" are raw bytes (the
 * library base64-encodes them on the wire and decodes received ones). value is NUL-terminated
 * for convenience; value_len excludes the NUL. */
typedef struct {
    char *key;
    uint8_t *value;
    size_t value_len;
} grpc_c_md;

typedef struct {
    int grpc_status;        /* the call's gRPC status code; -1 when the call failed below gRPC */
    char *grpc_message;     /* percent-decoded grpc-message ("" when absent) */
    uint8_t *response;      /* the response message (NULL when none arrived) */
    size_t response_len;
    grpc_c_md *headers;     /* response headers, except pseudo-headers (":status") */
    size_t n_headers;
    grpc_c_md *trailers;    /* trailers (grpc-status and grpc-message included) */
    size_t n_trailers;
    int trailers_only;      /* 1: the status came in the only HEADERS frame */
    int data_frames;        /* how many DATA frames carried the response body */
    char error[256];        /* why grpc_c_unary returned -1 */
} grpc_c_result;

/* Connects to host:port and starts the HTTP/2 session (client preface + SETTINGS).
 * authority is the :authority to send (NULL: "host:port"). Returns NULL and fills err on error. */
grpc_c_conn *grpc_c_connect(const char *host, const char *port, const char *authority,
                            char *err, size_t errlen);

/* Calls `path` ("/package.Service/Method") with one request message and waits for the status.
 * md/n_md: extra request metadata. timeout_ms > 0 sends grpc-timeout and bounds the wait.
 * Returns 0 when a gRPC status arrived (any code, see res->grpc_status), -1 on a transport or
 * protocol error (res->error says what). Always call grpc_c_result_free(res) afterwards. */
int grpc_c_unary(grpc_c_conn *conn, const char *path, const uint8_t *request, size_t request_len,
                 const grpc_c_md *md, size_t n_md, int timeout_ms, grpc_c_result *res);

void grpc_c_result_free(grpc_c_result *res);

/* Closes the connection (sends GOAWAY) and frees it. */
void grpc_c_close(grpc_c_conn *conn);

/* The first entry with this key, or NULL. */
const grpc_c_md *grpc_c_md_find(const grpc_c_md *md, size_t n, const char *key);

#endif
