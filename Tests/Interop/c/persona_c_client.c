/*
 * persona-c-client — calls platform.persona.v1.PersonaService from plain C: grpc_c_client
 * (libnghttp2, h2c) for the wire and protoc-c generated code (libprotobuf-c) for the messages,
 * google.protobuf.Struct and Timestamp included. It proves a client with no gRPC library renders
 * and lists personas byte for byte.
 *
 *   persona-c-client --host H --port P --persona-id ID --persona-name NAME [--token JWT]
 *
 * The token (an EdDSA JWT, `authorization: Bearer …`) comes from --token or $PERSONA_TOKEN; it must
 * belong to the owner of persona ID, which must have been created with the interop template
 * (TEMPLATE below) and variable schema {role: string (required), tone: string, default "calmly"}
 * and never updated (Tests/Interop/persona/persona_client.py creates it so).
 *
 * Checks, one "PASS c <check>" or "FAIL c <check>: why" line each; exit status 1 if any failed,
 * 2 on a usage or connection error:
 *   render           RenderPersona {role: "a pirate"}: the text, persona_version 1, defaulted
 *                    variables ["tone"]
 *   list             ListPersonas, walking every page of 2: the persona is listed once, with its
 *                    name, template, version 1, create_time and its variable schema as a Struct
 *   missing_variable RenderPersona without `role`: INVALID_ARGUMENT
 *   unauthenticated  RenderPersona without a token: UNAUTHENTICATED
 *   not_found        RenderPersona of an id that does not exist: NOT_FOUND
 */
#define _POSIX_C_SOURCE 200809L   /* strdup */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_c_client.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "platform/persona/v1/persona.pb-c.h"

#define TIMEOUT_MS 30000
#define SERVICE "/platform.persona.v1.PersonaService/"
#define TEMPLATE "You are {{role}}. Speak {{tone}}."
#define EXPECTED_TEXT "You are a pirate. Speak calmly."
#define MAX_PAGES 100

enum { GRPC_OK = 0, GRPC_INVALID_ARGUMENT = 3, GRPC_NOT_FOUND = 5, GRPC_UNAUTHENTICATED = 16 };

static char failure[1024];

static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(failure, sizeof failure, fmt, ap);
    va_end(ap);
    return -1;
}

typedef struct {
    grpc_c_conn *conn;
    grpc_c_md auth[1];   /* authorization: Bearer <token> */
    const char *persona_id;
    const char *persona_name;
} ctx;

/* One unary call that must reach a gRPC status; fills res. with_auth = 0 sends no token. */
static int call(ctx *c, const char *method, const ProtobufCMessage *req, int with_auth,
                grpc_c_result *res) {
    char path[128];
    snprintf(path, sizeof path, SERVICE "%s", method);
    size_t len = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = malloc(len ? len : 1);
    protobuf_c_message_pack(req, buf);
    int rv = grpc_c_unary(c->conn, path, buf, len, with_auth ? c->auth : NULL, with_auth ? 1 : 0,
                          TIMEOUT_MS, res);
    free(buf);
    if (rv != 0) return fail("%s: %s", method, res->error);
    return 0;
}

static int expect_status(const grpc_c_result *res, int code, const char *what) {
    if (res->grpc_status != code)
        return fail("%s: want status %d, got %d (%s)", what, code, res->grpc_status,
                    res->grpc_message);
    return 0;
}

/* --- google.protobuf.Struct helpers ---------------------------------------------------------- */

static const Google__Protobuf__Value *struct_get(const Google__Protobuf__Struct *s,
                                                 const char *key) {
    if (!s) return NULL;
    for (size_t i = 0; i < s->n_fields; i++)
        if (s->fields[i]->key && strcmp(s->fields[i]->key, key) == 0) return s->fields[i]->value;
    return NULL;
}

static const Google__Protobuf__Struct *as_struct(const Google__Protobuf__Value *v) {
    return v && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE ? v->struct_value
                                                                            : NULL;
}

static const char *as_string(const Google__Protobuf__Value *v) {
    return v && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE ? v->string_value
                                                                            : NULL;
}

/* A RenderPersonaRequest for c->persona_id (or id) with the given role (NULL: no variables
 * beyond an empty Struct). Everything lives on the caller's stack. */
typedef struct {
    Platform__Persona__V1__RenderPersonaRequest req;
    Google__Protobuf__Struct vars;
    Google__Protobuf__Struct__FieldsEntry entry, *entries[1];
    Google__Protobuf__Value value;
} render_request;

static void render_init(render_request *r, const char *id, const char *role) {
    Platform__Persona__V1__RenderPersonaRequest req = PLATFORM__PERSONA__V1__RENDER_PERSONA_REQUEST__INIT;
    Google__Protobuf__Struct vars = GOOGLE__PROTOBUF__STRUCT__INIT;
    Google__Protobuf__Struct__FieldsEntry entry = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    Google__Protobuf__Value value = GOOGLE__PROTOBUF__VALUE__INIT;
    r->req = req;
    r->vars = vars;
    r->entry = entry;
    r->value = value;
    r->req.persona_id = (char *)id;
    r->req.variables = &r->vars;
    if (role) {
        r->value.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
        r->value.string_value = (char *)role;
        r->entry.key = "role";
        r->entry.value = &r->value;
        r->entries[0] = &r->entry;
        r->vars.n_fields = 1;
        r->vars.fields = r->entries;
    }
}

/* --- checks -------------------------------------------------------------------------------- */

static int check_render(ctx *c) {
    render_request r;
    render_init(&r, c->persona_id, "a pirate");
    grpc_c_result res;
    int rv = call(c, "RenderPersona", &r.req.base, 1, &res);
    if (!rv) rv = expect_status(&res, GRPC_OK, "RenderPersona");
    if (!rv) {
        Platform__Persona__V1__RenderPersonaResponse *resp =
            platform__persona__v1__render_persona_response__unpack(NULL, res.response_len,
                                                                   res.response);
        if (!resp)
            rv = fail("the response does not decode as RenderPersonaResponse");
        else if (strcmp(resp->text, EXPECTED_TEXT) != 0)
            rv = fail("text \"%s\", want \"%s\"", resp->text, EXPECTED_TEXT);
        else if (resp->persona_version != 1)
            rv = fail("persona_version %d, want 1", resp->persona_version);
        else if (resp->n_defaulted_variables != 1 ||
                 strcmp(resp->defaulted_variables[0], "tone") != 0)
            rv = fail("defaulted_variables: %zu entries (first \"%s\"), want [\"tone\"]",
                      resp->n_defaulted_variables,
                      resp->n_defaulted_variables ? resp->defaulted_variables[0] : "");
        if (resp) platform__persona__v1__render_persona_response__free_unpacked(resp, NULL);
    }
    grpc_c_result_free(&res);
    return rv;
}

/* The listed persona must be exactly what the Python step created. */
static int check_listed(const ctx *c, const Platform__Persona__V1__Persona *p) {
    if (strcmp(p->name, c->persona_name) != 0)
        return fail("name \"%s\", want \"%s\"", p->name, c->persona_name);
    if (strcmp(p->template_, TEMPLATE) != 0)
        return fail("template \"%s\", want \"%s\"", p->template_, TEMPLATE);
    if (p->version != 1) return fail("version %d, want 1", p->version);
    if (!p->user_id[0]) return fail("user_id is empty");
    if (!p->create_time || p->create_time->seconds <= 0) return fail("create_time unset");
    if (p->delete_time) return fail("delete_time is set on a live persona");
    if (p->_rating_case != PLATFORM__PERSONA__V1__PERSONA___RATING__NOT_SET)
        return fail("rating is set (%g) before any rating", p->rating);
    /* The schema comes back as a Struct: {"type": "object", "properties": {"role": {"type":
     * "string"}, "tone": {"type": "string", "default": "calmly"}}, "required": ["role"]}. */
    const Google__Protobuf__Struct *schema = p->variables;
    if (!schema) return fail("variables (the schema) unset");
    const char *type = as_string(struct_get(schema, "type"));
    if (!type || strcmp(type, "object") != 0) return fail("variables.type is not \"object\"");
    const Google__Protobuf__Struct *props = as_struct(struct_get(schema, "properties"));
    const Google__Protobuf__Struct *tone = as_struct(struct_get(props, "tone"));
    const char *dflt = as_string(struct_get(tone, "default"));
    if (!dflt || strcmp(dflt, "calmly") != 0)
        return fail("variables.properties.tone.default is not \"calmly\"");
    const char *role_type = as_string(struct_get(as_struct(struct_get(props, "role")), "type"));
    if (!role_type || strcmp(role_type, "string") != 0)
        return fail("variables.properties.role.type is not \"string\"");
    const Google__Protobuf__Value *req = struct_get(schema, "required");
    if (!req || req->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE ||
        req->list_value->n_values != 1 || !as_string(req->list_value->values[0]) ||
        strcmp(as_string(req->list_value->values[0]), "role") != 0)
        return fail("variables.required is not [\"role\"]");
    return 0;
}

static int check_list(ctx *c) {
    char *token = strdup("");
    int found = 0, rv = 0, pages = 0;
    size_t listed = 0;
    while (!rv) {
        if (++pages > MAX_PAGES) {
            rv = fail("more than %d pages of 2", MAX_PAGES);
            break;
        }
        Platform__Persona__V1__ListPersonasRequest req =
            PLATFORM__PERSONA__V1__LIST_PERSONAS_REQUEST__INIT;
        req.page_size = 2;
        req.page_token = token;
        grpc_c_result res;
        rv = call(c, "ListPersonas", &req.base, 1, &res);
        if (!rv) rv = expect_status(&res, GRPC_OK, "ListPersonas");
        Platform__Persona__V1__ListPersonasResponse *resp = NULL;
        if (!rv) {
            resp = platform__persona__v1__list_personas_response__unpack(NULL, res.response_len,
                                                                          res.response);
            if (!resp) rv = fail("page %d does not decode as ListPersonasResponse", pages);
        }
        if (!rv && resp->n_personas > 2)
            rv = fail("page %d has %zu personas, page_size was 2", pages, resp->n_personas);
        for (size_t i = 0; !rv && resp && i < resp->n_personas; i++) {
            const Platform__Persona__V1__Persona *p = resp->personas[i];
            listed++;
            if (strcmp(p->id, c->persona_id) != 0) continue;
            if (found++) rv = fail("persona %s listed twice", c->persona_id);
            else if (check_listed(c, p)) {
                char why[sizeof failure];
                snprintf(why, sizeof why, "%s", failure);
                rv = fail("persona %s: %s", c->persona_id, why);
            }
        }
        if (!rv) {
            free(token);
            token = strdup(resp->next_page_token);
        }
        if (resp) platform__persona__v1__list_personas_response__free_unpacked(resp, NULL);
        grpc_c_result_free(&res);
        if (!rv && !token[0]) break;   /* the last page */
    }
    free(token);
    if (!rv && !found)
        rv = fail("persona %s not among the %zu listed over %d page(s)", c->persona_id, listed,
                  pages);
    if (!rv) printf("  c list: %zu persona(s) over %d page(s)\n", listed, pages);
    return rv;
}

static int render_expecting(ctx *c, const char *id, const char *role, int with_auth, int code) {
    render_request r;
    render_init(&r, id, role);
    grpc_c_result res;
    int rv = call(c, "RenderPersona", &r.req.base, with_auth, &res);
    if (!rv) rv = expect_status(&res, code, "RenderPersona");
    if (!rv && res.response) rv = fail("a response message came with status %d", code);
    grpc_c_result_free(&res);
    return rv;
}

static int check_missing_variable(ctx *c) {
    return render_expecting(c, c->persona_id, NULL, 1, GRPC_INVALID_ARGUMENT);
}

static int check_unauthenticated(ctx *c) {
    return render_expecting(c, c->persona_id, "a pirate", 0, GRPC_UNAUTHENTICATED);
}

static int check_not_found(ctx *c) {
    /* A well-formed UUID no persona has (the service makes v4 UUIDs; this is not one). */
    return render_expecting(c, "00000000-0000-4000-8000-00000000c1c1", "a pirate", 1,
                            GRPC_NOT_FOUND);
}

static const struct {
    const char *name;
    int (*run)(ctx *);
} checks[] = {
    {"render", check_render},
    {"list", check_list},
    {"missing_variable", check_missing_variable},
    {"unauthenticated", check_unauthenticated},
    {"not_found", check_not_found},
};

static void usage(void) {
    fprintf(stderr, "usage: persona-c-client --host H --port P --persona-id ID "
                    "--persona-name NAME [--token JWT | $PERSONA_TOKEN] [--authority A]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *port = NULL, *authority = NULL, *token = NULL;
    ctx c = {0};
    static const struct option opts[] = {
        {"host", required_argument, 0, 'h'},
        {"port", required_argument, 0, 'p'},
        {"token", required_argument, 0, 't'},
        {"persona-id", required_argument, 0, 'i'},
        {"persona-name", required_argument, 0, 'n'},
        {"authority", required_argument, 0, 'a'},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'h': host = optarg; break;
        case 'p': port = optarg; break;
        case 't': token = optarg; break;
        case 'i': c.persona_id = optarg; break;
        case 'n': c.persona_name = optarg; break;
        case 'a': authority = optarg; break;
        default: usage();
        }
    }
    if (!token) token = getenv("PERSONA_TOKEN");
    if (!port || !token || !token[0] || !c.persona_id || !c.persona_name || optind != argc)
        usage();

    size_t blen = strlen("Bearer ") + strlen(token) + 1;
    char *bearer = malloc(blen);
    snprintf(bearer, blen, "Bearer %s", token);
    c.auth[0].key = "authorization";
    c.auth[0].value = (uint8_t *)bearer;
    c.auth[0].value_len = blen - 1;

    char err[256];
    c.conn = grpc_c_connect(host, port, authority, err, sizeof err);
    if (!c.conn) {
        fprintf(stderr, "persona-c-client: cannot connect to %s:%s: %s\n", host, port, err);
        free(bearer);
        return 2;
    }
    int failed = 0;
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        failure[0] = 0;
        if (checks[i].run(&c) != 0) {
            printf("FAIL c %s: %s\n", checks[i].name, failure);
            failed = 1;
        } else {
            printf("PASS c %s\n", checks[i].name);
        }
        fflush(stdout);
    }
    grpc_c_close(c.conn);
    free(bearer);
    return failed;
}
