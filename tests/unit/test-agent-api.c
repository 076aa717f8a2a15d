/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "agent-api.h"
#include "bootcount.h"
#include "strutil.h"
#include "tests.h"

#define DIGEST "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define DIGEST_OTHER "0f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define DIGEST_UPPER "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
/* A literal and its length, for the parsers' (body, len) pairs. */
#define SL(s) (s), strlen(s)
#define STAGE_FIELDS "source, sha256, version, key_id, ca_file, client_cert, client_key"

/* Runs one parser by name on body; on failure also checks that *ret was
 * not touched and that a message came back. Returns the result and, in
 * *ret_error, the message. */
static int parse(const char *which, const char *body, size_t len, char **ret_error) {
        union {
                StageRequest stage;
                ActivateRequest activate;
                RollbackRequest rollback;
                MarkGoodRequest mark_good;
                DebugRequest debug;
                HookRequest hook;
        } u, before;
        char *err = NULL;
        int r;

        memset(&u, 0x5a, sizeof(u));
        before = u;
        if (streq(which, "stage"))
                r = api_parse_stage(body, len, &u.stage, &err);
        else if (streq(which, "activate"))
                r = api_parse_activate(body, len, &u.activate, &err);
        else if (streq(which, "rollback"))
                r = api_parse_rollback(body, len, &u.rollback, &err);
        else if (streq(which, "mark-good"))
                r = api_parse_mark_good(body, len, &u.mark_good, &err);
        else if (streq(which, "debug"))
                r = api_parse_debug(body, len, &u.debug, &err);
        else if (streq(which, "hook"))
                r = api_parse_hook(body, len, &u.hook, &err);
        else
                abort();

        if (r < 0) {
                ASSERT_TRUE(memcmp(&u, &before, sizeof(u)) == 0);
                ASSERT_TRUE(err != NULL);
        } else {
                ASSERT_TRUE(err == NULL);
                if (streq(which, "stage"))
                        stage_request_done(&u.stage);
                else if (streq(which, "debug"))
                        debug_request_done(&u.debug);
                else if (streq(which, "hook"))
                        hook_request_done(&u.hook);
        }
        if (ret_error)
                *ret_error = err;
        else
                free(err);
        return r;
}

static void reject_len(const char *which, const char *body, size_t len, int err, const char *prefix) {
        _cleanup_free_ char *msg = NULL;
        int r = parse(which, body, len, &msg);

        if (r != -err || !msg || !string_has_prefix(msg, prefix)) {
                fprintf(stderr, "%s %.200s: got %d \"%s\", expected %d \"%s...\"\n", which, body, r,
                        msg ?: "(null)", -err, prefix);
                abort();
        }
}

static void reject(const char *which, const char *body, const char *prefix) {
        reject_len(which, body, strlen(body), EBADMSG, prefix);
}

static void accept(const char *which, const char *body) {
        _cleanup_free_ char *msg = NULL;
        int r = parse(which, body, strlen(body), &msg);
        if (r < 0) {
                fprintf(stderr, "%s %.200s: refused: %d %s\n", which, body, r, msg ?: "(null)");
                abort();
        }
}

static StageRequest stage_ok(const char *body) {
        StageRequest req;
        _cleanup_free_ char *err = NULL;
        int r = api_parse_stage(body, strlen(body), &req, &err);
        if (r < 0) {
                fprintf(stderr, "stage %.200s: refused: %d %s\n", body, r, err ?: "(null)");
                abort();
        }
        ASSERT_TRUE(req.source != NULL);
        return req;
}

/* {"source": s} with s JSON-escaped. */
static char *source_body(const char *field, const char *s) {
        json_t *j = json_pack("{s:s}", field, s);
        ASSERT_TRUE(j);
        char *b = json_dumps(j, JSON_COMPACT);
        ASSERT_TRUE(b);
        json_decref(j);
        return b;
}

static char *repeat(char c, size_t n) {
        char *s = malloc(n + 1);
        ASSERT_TRUE(s);
        memset(s, c, n);
        s[n] = '\0';
        return s;
}

static void test_stage_valid(void) {
        StageRequest req = stage_ok("{\"source\":\"/var/tmp/b.hullb\"}");
        ASSERT_STREQ(req.source, "/var/tmp/b.hullb");
        ASSERT_TRUE(!req.sha256 && !req.version && !req.key_id && !req.ca_file && !req.client_cert &&
                    !req.client_key);
        stage_request_done(&req);
        ASSERT_TRUE(req.source == NULL);
        stage_request_done(&req); /* twice is fine */

        /* Everything, pretty-printed, keys in another order; hex is
         * lower-cased, the version kept as it is. */
        req = stage_ok("{\n  \"client_key\": \"/etc/hull/client.key\",\n  \"version\": \"1.2.3~rc1+b2\",\n"
                       "  \"sha256\": \"" DIGEST_UPPER "\",\n  \"key_id\": \"0123456789ABCDEF\",\n"
                       "  \"ca_file\": \"/etc/hull/ca.pem\",\n  \"client_cert\": \"/etc/hull/client.pem\",\n"
                       "  \"source\": \"https://updates.example.com/hull-demo-2.0.0.hullb\"\n}\n");
        ASSERT_STREQ(req.source, "https://updates.example.com/hull-demo-2.0.0.hullb");
        ASSERT_STREQ(req.sha256, DIGEST);
        ASSERT_STREQ(req.version, "1.2.3~rc1+b2");
        ASSERT_STREQ(req.key_id, "0123456789abcdef");
        ASSERT_STREQ(req.ca_file, "/etc/hull/ca.pem");
        ASSERT_STREQ(req.client_cert, "/etc/hull/client.pem");
        ASSERT_STREQ(req.client_key, "/etc/hull/client.key");
        stage_request_done(&req);

        /* A pinned oci:// reference, its digest repeated as sha256, a CA. */
        req = stage_ok("{\"source\":\"OCI://reg.example.com:5000/hull/os:2.0@sha256:" DIGEST "\",\"sha256\":\"" DIGEST_UPPER
                       "\",\"ca_file\":\"/etc/hull/registry-ca.pem\"}");
        ASSERT_STREQ(req.source, "oci://reg.example.com:5000/hull/os:2.0@sha256:" DIGEST);
        ASSERT_STREQ(req.sha256, DIGEST);
        ASSERT_STREQ(req.ca_file, "/etc/hull/registry-ca.pem");
        stage_request_done(&req);

        /* The scheme is lower-cased, nothing else. */
        req = stage_ok("{\"source\":\"HTTPS://Updates.Example.COM/B.hullb\"}");
        ASSERT_STREQ(req.source, "https://Updates.Example.COM/B.hullb");
        stage_request_done(&req);

        accept("stage", "{\"source\":\"https://h:8443/p/q.hullb?sig=a%20b&x=1#frag\"}");
        accept("stage", "{\"source\":\"https://[::1]:8443/b\"}");
        accept("stage", "{\"source\":\"https://host\"}");
        accept("stage", "{\"source\":\"https://host/a@b\"}"); /* '@' after the host is no userinfo */
        accept("stage", "{\"source\":\"https://host/x\", \"ca_file\":\"/etc/ca.pem\"}");
        accept("stage", "{\"source\":\"/a/.b/...c/...\"}");
        accept("stage", "{\"source\":\"/var/tmp/b\\u00fcndel\"}"); /* non-ASCII paths are fine */
        accept("stage", "{\"source\":\"/b\",\"version\":\"a\"}");
        accept("stage", "{\"source\":\"/b\",\"sha256\":\"" DIGEST "\",\"key_id\":\"0123456789abcdef\"}");

        /* Limits, exactly. */
        _cleanup_free_ char *v64 = repeat('v', API_VERSION_MAX), *b1 = NULL;
        ASSERT_TRUE(asprintf(&b1, "{\"source\":\"/b\",\"version\":\"%s\"}", v64) > 0);
        accept("stage", b1);

        _cleanup_free_ char *path = repeat('p', API_PATH_MAX), *b2 = NULL;
        path[0] = '/';
        b2 = source_body("source", path);
        accept("stage", b2);

        _cleanup_free_ char *url = repeat('u', API_URL_MAX), *b3 = NULL;
        memcpy(url, "https://h/", 10);
        b3 = source_body("source", url);
        accept("stage", b3);
}

static void test_stage_invalid(void) {
        /* The body. */
        reject("stage", "", "'source' is required");
        reject("stage", "{}", "'source' is required");
        reject("stage", "[]", "request body must be a JSON object");
        reject("stage", "\"/b\"", "request body must be a JSON object");
        reject("stage", "null", "request body must be a JSON object");
        reject("stage", "1", "request body must be a JSON object");
        reject("stage", "{", "request body is not valid JSON");
        reject("stage", "{} {}", "request body is not valid JSON");
        reject("stage", "{\"source\":\"/a\"} x", "request body is not valid JSON");
        reject("stage", "{'source':'/a'}", "request body is not valid JSON");
        reject("stage", "{\"source\":\"/a\\u0000b\"}", "request body is not valid JSON");
        reject("stage", "{\"source\":\"/a\xff\"}", "request body is not valid JSON");
        reject_len("stage", "{\"source\":\"/a\"}\0", 16, EBADMSG, "request body is not valid JSON");
        reject("stage", " ", "request body is not valid JSON");

        /* Duplicate keys, even with the same value. */
        _cleanup_free_ char *dup = NULL;
        ASSERT_EQ(parse("stage", SL("{\"source\":\"/a\",\"source\":\"/a\"}"), &dup), -EBADMSG);
        ASSERT_TRUE(strstr(dup, "duplicate"));

        /* Unknown fields: named, with the list of known ones. */
        _cleanup_free_ char *unknown = NULL;
        ASSERT_EQ(parse("stage", SL("{\"source\":\"/a\",\"sorce\":\"/b\"}"), &unknown), -EBADMSG);
        ASSERT_STREQ(unknown, "unknown field 'sorce' (known: " STAGE_FIELDS ")");
        reject("stage", "{\"Source\":\"/a\"}", "unknown field 'Source'");
        reject("stage", "{\"\":1}", "unknown field ''");
        /* A long field name is quoted only in part. */
        _cleanup_free_ char *longkey = repeat('k', 10000), *lk = NULL, *lkmsg = NULL;
        ASSERT_TRUE(asprintf(&lk, "{\"%s\":1}", longkey) > 0);
        ASSERT_EQ(parse("stage", lk, strlen(lk), &lkmsg), -EBADMSG);
        ASSERT_TRUE(string_has_prefix(lkmsg, "unknown field 'kkkk"));
        ASSERT_TRUE(strlen(lkmsg) < 200);

        /* Types. */
        static const char *const not_strings[] = { "1", "true", "null", "[]", "{}", "1.5" };
        static const char *const string_fields[] = { "source",  "sha256",      "version",   "key_id",
                                                     "ca_file", "client_cert", "client_key" };
        for (size_t f = 0; f < ELEMENTSOF(string_fields); f++)
                for (size_t i = 0; i < ELEMENTSOF(not_strings); i++) {
                        _cleanup_free_ char *b = NULL, *prefix = NULL;
                        if (streq(string_fields[f], "source"))
                                ASSERT_TRUE(asprintf(&b, "{\"source\":%s}", not_strings[i]) > 0);
                        else
                                ASSERT_TRUE(asprintf(&b, "{\"source\":\"https://h/b\",\"%s\":%s}",
                                                     string_fields[f], not_strings[i]) > 0);
                        ASSERT_TRUE(asprintf(&prefix, "'%s' must be a string", string_fields[f]) > 0);
                        reject("stage", b, prefix);
                }

        /* Sources that are neither an absolute path nor https. */
        static const char *const neither[] = {
                "", "b.hullb", "./b.hullb", "../b", "~/b", "file:///var/tmp/b", "ftp://h/b",
                "https:/h/b", "https:h", " /b", "C:\\b",
        };
        for (size_t i = 0; i < ELEMENTSOF(neither); i++) {
                _cleanup_free_ char *b = source_body("source", neither[i]);
                reject("stage", b, "'source' must be an absolute local path, an https:// URL or an oci:// reference");
        }

        /* oci:// references: pinned by digest, with a registry host. */
        reject("stage", "{\"source\":\"oci://reg.example.com/hull/os:2.0.0\"}",
               "'source' oci://reg.example.com/hull/os:2.0.0 names a tag, which can move: pin it by digest, "
               "oci://HOST/REPO@sha256:HEX (hull-build push prints it");
        reject("stage", "{\"source\":\"oci://reg.example.com/hull/os\"}", "'source' oci://reg.example.com/hull/os:latest names a tag");
        reject("stage", "{\"source\":\"oci://hull/os@sha256:" DIGEST "\"}",
               "'source' is not a valid oci:// reference: image reference \"hull/os@sha256:");
        reject("stage", "{\"source\":\"oci://reg.example.com/Hull/os@sha256:" DIGEST "\"}",
               "'source' is not a valid oci:// reference: image reference");
        reject("stage", "{\"source\":\"oci://reg.example.com/hull/os@sha256:" DIGEST_UPPER "\"}",
               "'source' is not a valid oci:// reference");
        reject("stage", "{\"source\":\"oci://reg.example.com/hull/os@sha256:" DIGEST "\",\"sha256\":\"" DIGEST_OTHER "\"}",
               "'sha256' must be the digest the oci:// source is pinned by (" DIGEST ")");
        reject("stage", "{\"source\":\"oci://reg.example.com/h@sha256:" DIGEST "\",\"client_cert\":\"/c\",\"client_key\":\"/k\"}",
               "'client_cert' is only valid with an https:// source");
        reject("stage", "{\"source\":\"http://h/b\"}", "'source' must not use plain http://; use https://");
        reject("stage", "{\"source\":\"HTTP://localhost/b\"}", "'source' must not use plain http://");
        reject("stage", "{\"source\":\"http://127.0.0.1/b\"}", "'source' must not use plain http://");

        /* Paths. */
        static const char *const unnormalised[] = {
                "/", "//", "/a/", "/a//b", "/a/./b", "/a/../b", "/..", "/.", "/a/..", "/a/.", "/./a", "//a",
        };
        for (size_t i = 0; i < ELEMENTSOF(unnormalised); i++) {
                _cleanup_free_ char *b = source_body("source", unnormalised[i]);
                reject("stage", b, "'source' must be a normalised path");
        }
        reject("stage", "{\"source\":\"/a\\tb\"}", "'source' must not contain control characters");
        reject("stage", "{\"source\":\"/a\\nb\"}", "'source' must not contain control characters");
        reject("stage", "{\"source\":\"/a\\u007fb\"}", "'source' must not contain control characters");
        _cleanup_free_ char *path = repeat('p', API_PATH_MAX + 1), *b = NULL;
        path[0] = '/';
        b = source_body("source", path);
        reject("stage", b, "'source' is longer than 4095 bytes");

        /* URLs. */
        reject("stage", "{\"source\":\"https://\"}", "'source' must name a host");
        reject("stage", "{\"source\":\"https:///b\"}", "'source' must name a host");
        reject("stage", "{\"source\":\"https://?q\"}", "'source' must name a host");
        reject("stage", "{\"source\":\"https://:443/b\"}", "'source' must name a host");
        reject("stage", "{\"source\":\"https://user:pw@h/b\"}", "'source' must not contain credentials");
        reject("stage", "{\"source\":\"https://user@h\"}", "'source' must not contain credentials");
        reject("stage", "{\"source\":\"https://h/a b\"}", "'source' must not contain whitespace or control");
        reject("stage", "{\"source\":\"https://h/a\\tb\"}", "'source' must not contain whitespace or control");
        reject("stage", "{\"source\":\"https://h/a\\r\\n\"}", "'source' must not contain whitespace or control");
        reject("stage", "{\"source\":\"https://h/\\u007f\"}", "'source' must not contain whitespace or control");
        reject("stage", "{\"source\":\"https://h\\u00f6st/b\"}", "'source' must be ASCII");
        _cleanup_free_ char *url = repeat('u', API_URL_MAX + 1), *bu = NULL;
        memcpy(url, "https://h/", 10);
        bu = source_body("source", url);
        reject("stage", bu, "'source' is longer than 4096 bytes");

        /* Digests, versions, key ids. */
        static const char *const bad_sha[] = {
                "", DIGEST "0", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0",
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0g",
                " 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad_sha); i++) {
                _cleanup_free_ char *bs = NULL;
                ASSERT_TRUE(asprintf(&bs, "{\"source\":\"/b\",\"sha256\":\"%s\"}", bad_sha[i]) > 0);
                reject("stage", bs, "'sha256' must be 64 hexadecimal digits");
        }
        static const char *const bad_version[] = { "", "-1", ".1", "~1", "1 2", "1/2", "1:2", "1\\n", "\\u00e9" };
        for (size_t i = 0; i < ELEMENTSOF(bad_version); i++) {
                _cleanup_free_ char *bv = NULL;
                ASSERT_TRUE(asprintf(&bv, "{\"source\":\"/b\",\"version\":\"%s\"}", bad_version[i]) > 0);
                reject("stage", bv, "'version' must be 1 to 64 characters");
        }
        _cleanup_free_ char *v65 = repeat('v', API_VERSION_MAX + 1), *bv = NULL;
        ASSERT_TRUE(asprintf(&bv, "{\"source\":\"/b\",\"version\":\"%s\"}", v65) > 0);
        reject("stage", bv, "'version' must be 1 to 64 characters");
        static const char *const bad_key[] = { "", "0123456789abcde", "0123456789abcdef0", "0123456789abcdeg" };
        for (size_t i = 0; i < ELEMENTSOF(bad_key); i++) {
                _cleanup_free_ char *bk = NULL;
                ASSERT_TRUE(asprintf(&bk, "{\"source\":\"/b\",\"key_id\":\"%s\"}", bad_key[i]) > 0);
                reject("stage", bk, "'key_id' must be 16 hexadecimal digits");
        }

        /* TLS options. */
        reject("stage", "{\"source\":\"/b\",\"ca_file\":\"/etc/ca.pem\"}",
               "'ca_file' is only valid with an https:// source");
        reject("stage", "{\"source\":\"/b\",\"client_cert\":\"/c\",\"client_key\":\"/k\"}",
               "'client_cert' is only valid with an https:// source");
        reject("stage", "{\"source\":\"https://h/b\",\"ca_file\":\"ca.pem\"}", "'ca_file' must be an absolute path");
        reject("stage", "{\"source\":\"https://h/b\",\"ca_file\":\"/etc/../ca.pem\"}",
               "'ca_file' must be a normalised path");
        reject("stage", "{\"source\":\"https://h/b\",\"client_cert\":\"/c\",\"client_key\":\"k\"}",
               "'client_key' must be an absolute path");
        reject("stage", "{\"source\":\"https://h/b\",\"client_key\":\"/k\"}", "'client_key' requires 'client_cert'");
        reject("stage", "{\"source\":\"https://h/b\",\"client_cert\":\"/c\"}", "'client_cert' requires 'client_key'");
}

static void test_body_size(void) {
        /* Exactly API_BODY_MAX bytes is fine, one more is not, and is refused
         * before it is parsed. */
        char *b = repeat(' ', API_BODY_MAX + 1);
        memcpy(b, "{\"source\":\"/b\"}", 15);
        ASSERT_EQ(parse("stage", b, API_BODY_MAX, NULL), 0);
        reject_len("stage", b, API_BODY_MAX + 1, E2BIG, "request body is larger than 1048576 bytes");
        reject_len("activate", b, API_BODY_MAX + 1, E2BIG, "request body is larger than");
        reject_len("debug", b, SIZE_MAX, E2BIG, "request body is larger than");
        free(b);

        /* No body at all is "{}". */
        ActivateRequest a;
        ASSERT_OK(api_parse_activate(NULL, 0, &a, NULL));
        ASSERT_EQ(a.tries, 0);
        ASSERT_TRUE(a.reboot);
        ASSERT_ERROR(api_parse_activate(NULL, 1, &a, NULL), EINVAL);
        /* A NULL ret_error is fine on failure too. */
        ASSERT_ERROR(api_parse_activate(SL("[]"), &a, NULL), EBADMSG);
}

static void test_activate(void) {
        ActivateRequest a;

        ASSERT_OK(api_parse_activate(SL(""), &a, NULL));
        ASSERT_EQ(a.tries, 0);
        ASSERT_TRUE(a.reboot);
        ASSERT_OK(api_parse_activate(SL("{}"), &a, NULL));
        ASSERT_EQ(a.tries, 0);
        ASSERT_TRUE(a.reboot);
        for (unsigned t = 1; t <= BOOT_TRIES_MAX; t++) {
                char b[64];
                snprintf(b, sizeof(b), "{\"tries\": %u, \"reboot\": false}", t);
                ASSERT_OK(api_parse_activate(b, strlen(b), &a, NULL));
                ASSERT_EQ(a.tries, t);
                ASSERT_TRUE(!a.reboot);
        }
        ASSERT_OK(api_parse_activate(SL("{\"reboot\":true}"), &a, NULL));
        ASSERT_TRUE(a.reboot);

        static const char *const bad_tries[] = {
                "0", "10", "-1", "3.0", "3e0", "\"3\"", "true", "null", "[3]", "9223372036854775807",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad_tries); i++) {
                _cleanup_free_ char *b = NULL;
                ASSERT_TRUE(asprintf(&b, "{\"tries\":%s}", bad_tries[i]) > 0);
                reject("activate", b, "'tries' must be an integer from 1 to 9");
        }
        reject("activate", "{\"tries\":99999999999999999999}", "request body is not valid JSON");
        reject("activate", "{\"reboot\":\"yes\"}", "'reboot' must be true or false");
        reject("activate", "{\"reboot\":1}", "'reboot' must be true or false");
        reject("activate", "{\"reboot\":null}", "'reboot' must be true or false");
        reject("activate", "{\"try\":3}", "unknown field 'try' (known: tries, reboot)");
        reject("activate", "{\"tries\":3,\"tries\":3}", "request body is not valid JSON");
}

static void test_rollback_mark_good(void) {
        RollbackRequest rb;
        MarkGoodRequest mg;

        ASSERT_OK(api_parse_rollback(SL(""), &rb, NULL));
        ASSERT_TRUE(rb.reboot);
        ASSERT_OK(api_parse_rollback(SL("{\"reboot\":false}"), &rb, NULL));
        ASSERT_TRUE(!rb.reboot);
        reject("rollback", "{\"reboot\":0}", "'reboot' must be true or false");
        reject("rollback", "{\"tries\":3}", "unknown field 'tries' (known: reboot)");
        reject("rollback", "[true]", "request body must be a JSON object");

        ASSERT_OK(api_parse_mark_good(SL(""), &mg, NULL));
        ASSERT_TRUE(!mg.force);
        ASSERT_OK(api_parse_mark_good(SL("{\"force\":true}"), &mg, NULL));
        ASSERT_TRUE(mg.force);
        ASSERT_OK(api_parse_mark_good(SL("{\"force\":false}"), &mg, NULL));
        ASSERT_TRUE(!mg.force);
        reject("mark-good", "{\"force\":\"true\"}", "'force' must be true or false");
        reject("mark-good", "{\"Force\":true}", "unknown field 'Force' (known: force)");
}

static void test_debug(void) {
        DebugRequest d;

        ASSERT_OK(api_parse_debug(SL(""), &d, NULL));
        ASSERT_TRUE(d.command == NULL);
        debug_request_done(&d);

        ASSERT_OK(api_parse_debug(SL("{\"command\":[\"sh\",\"-c\",\"echo hi; exit 3\"]}"), &d, NULL));
        ASSERT_EQ(strv_length(d.command), 3);
        ASSERT_STREQ(d.command[0], "sh");
        ASSERT_STREQ(d.command[2], "echo hi; exit 3");
        ASSERT_TRUE(d.command[3] == NULL);
        debug_request_done(&d);
        ASSERT_TRUE(d.command == NULL);

        /* Limits: 64 arguments of 4096 bytes. */
        _cleanup_free_ char *arg = repeat('a', API_COMMAND_ARG_MAX), *big = repeat('a', API_COMMAND_ARG_MAX + 1);
        json_t *args = json_array();
        for (unsigned i = 0; i < API_COMMAND_ARGS_MAX; i++)
                json_array_append_new(args, json_string(arg));
        json_t *j = json_pack("{s:o}", "command", args);
        _cleanup_free_ char *b = json_dumps(j, JSON_COMPACT);
        ASSERT_OK(api_parse_debug(b, strlen(b), &d, NULL));
        ASSERT_EQ(strv_length(d.command), API_COMMAND_ARGS_MAX);
        debug_request_done(&d);

        json_array_append_new(args, json_string("x"));
        _cleanup_free_ char *b65 = json_dumps(j, JSON_COMPACT);
        reject("debug", b65, "'command' must be an array of 1 to 64 strings");
        json_decref(j);

        _cleanup_free_ char *blong = NULL;
        ASSERT_TRUE(asprintf(&blong, "{\"command\":[\"sh\",\"%s\"]}", big) > 0);
        reject("debug", blong, "'command[1]' is longer than 4096 bytes");

        reject("debug", "{\"command\":[]}", "'command' must be an array of 1 to 64 strings");
        reject("debug", "{\"command\":\"sh\"}", "'command' must be an array of 1 to 64 strings");
        reject("debug", "{\"command\":null}", "'command' must be an array of 1 to 64 strings");
        reject("debug", "{\"command\":{}}", "'command' must be an array of 1 to 64 strings");
        reject("debug", "{\"command\":[\"\"]}", "'command[0]' must be a non-empty string");
        reject("debug", "{\"command\":[\"sh\",1]}", "'command[1]' must be a non-empty string");
        reject("debug", "{\"command\":[\"sh\",null]}", "'command[1]' must be a non-empty string");
        reject("debug", "{\"command\":[[\"sh\"]]}", "'command[0]' must be a non-empty string");
        reject("debug", "{\"cmd\":[\"sh\"]}", "unknown field 'cmd' (known: command)");
}

static HookRequest hook_ok(const char *body) {
        HookRequest req;
        _cleanup_free_ char *err = NULL;
        int r = api_parse_hook(body, strlen(body), &req, &err);
        if (r < 0) {
                fprintf(stderr, "hook %.200s: refused: %d %s\n", body, r, err ?: "(null)");
                abort();
        }
        ASSERT_TRUE(req.name && req.stage);
        return req;
}

static void test_hook(void) {
        HookRequest h = hook_ok("{\"name\":\"ceph-noout\"}");
        ASSERT_STREQ(h.name, "ceph-noout");
        ASSERT_STREQ(h.stage, "manual");
        ASSERT_EQ(h.timeout_sec, 300u);
        ASSERT_TRUE(h.task == NULL);
        hook_request_done(&h);
        hook_request_done(&h); /* twice is fine */

        h = hook_ok("{\"name\":\"ceph-noout\",\"stage\":\"pre-drain\",\"timeout_seconds\":300,"
                    "\"task\":\"workers/upgrade/2.0.0\"}");
        ASSERT_STREQ(h.stage, "pre-drain");
        ASSERT_STREQ(h.task, "workers/upgrade/2.0.0");
        hook_request_done(&h);
        h = hook_ok("{\"name\":\"a\",\"stage\":\"post-boot\",\"timeout_seconds\":1,\"task\":\"\"}");
        ASSERT_STREQ(h.stage, "post-boot");
        ASSERT_EQ(h.timeout_sec, 1u);
        ASSERT_TRUE(h.task == NULL); /* empty: none */
        hook_request_done(&h);
        accept("hook", "{\"name\":\"x\",\"timeout_seconds\":86400,\"stage\":\"manual\"}");
        accept("hook", "{\"name\":\"0.9_z-Z.\"}");

        /* Names: a file name in a hooks directory and nothing more. */
        _cleanup_free_ char *n64 = repeat('n', 64), *n65 = repeat('n', 65), *b64 = NULL, *b65 = NULL;
        b64 = source_body("name", n64);
        b65 = source_body("name", n65);
        accept("hook", b64);
        reject("hook", b65, "'name' must be 1 to 64 letters, digits, '.', '_' or '-' starting with a letter or digit");
        const char *bad_names[] = { "", ".", "..", "../x", "a/b", "/etc/passwd", ".hidden", "-x", "_x", "a b",
                                    "a\\n", "caf\u00e9", "a*", "a\\u0001" };
        for (size_t i = 0; i < ELEMENTSOF(bad_names); i++) {
                _cleanup_free_ char *b = NULL;
                ASSERT_TRUE(asprintf(&b, "{\"name\":\"%s\"}", bad_names[i]) > 0);
                reject("hook", b, "'name' must be 1 to 64 letters");
        }
        reject("hook", "{\"name\":\"../x\"}", "'name' must be 1 to 64 letters, digits, '.', '_' or '-' starting "
                                               "with a letter or digit (a file name in a hooks directory), not '../x'");
        reject("hook", "{}", "'name' is required");
        reject("hook", "", "'name' is required");
        reject("hook", "{\"stage\":\"manual\"}", "'name' is required");
        reject("hook", "{\"name\":null}", "'name' must be a string");
        reject("hook", "{\"name\":3}", "'name' must be a string");
        reject("hook", "{\"name\":[\"x\"]}", "'name' must be a string");
        reject("hook", "{\"name\":\"a\\u0000b\"}", "request body is not valid JSON");

        reject("hook", "{\"name\":\"x\",\"stage\":\"predrain\"}",
               "'stage' must be pre-drain, post-boot or manual, not 'predrain'");
        reject("hook", "{\"name\":\"x\",\"stage\":\"\"}", "'stage' must be pre-drain, post-boot or manual");
        reject("hook", "{\"name\":\"x\",\"stage\":\"Pre-Drain\"}", "'stage' must be pre-drain");
        reject("hook", "{\"name\":\"x\",\"stage\":null}", "'stage' must be a string");

        const char *bad_timeouts[] = { "0", "-1", "86401", "1.0", "300.5", "\"300\"", "true", "null", "[]",
                                       "9223372036854775807" };
        for (size_t i = 0; i < ELEMENTSOF(bad_timeouts); i++) {
                _cleanup_free_ char *b = NULL;
                ASSERT_TRUE(asprintf(&b, "{\"name\":\"x\",\"timeout_seconds\":%s}", bad_timeouts[i]) > 0);
                reject("hook", b, "'timeout_seconds' must be an integer from 1 to 86400");
        }

        _cleanup_free_ char *t253 = repeat('t', 253), *t254 = repeat('t', 254), *bt253 = NULL, *bt254 = NULL;
        ASSERT_TRUE(asprintf(&bt253, "{\"name\":\"x\",\"task\":\"%s\"}", t253) > 0);
        ASSERT_TRUE(asprintf(&bt254, "{\"name\":\"x\",\"task\":\"%s\"}", t254) > 0);
        accept("hook", bt253);
        reject("hook", bt254, "'task' is longer than 253 bytes");
        reject("hook", "{\"name\":\"x\",\"task\":7}", "'task' must be a string");
        reject("hook", "{\"name\":\"x\",\"task\":\"a\\nb\"}", "'task' must not contain control characters");
        reject("hook", "{\"name\":\"x\",\"task\":\"a\\u007fb\"}", "'task' must not contain control characters");

        reject("hook", "{\"name\":\"x\",\"timeout\":5}",
               "unknown field 'timeout' (known: name, stage, timeout_seconds, task)");
        reject("hook", "{\"name\":\"x\",\"name\":\"y\"}", "request body is not valid JSON");
        reject("hook", "[\"x\"]", "request body must be a JSON object");
        reject_len("hook", "{\"name\":\"x\"}", SIZE_MAX, E2BIG, "request body is larger than");

        ASSERT_TRUE(api_hook_name_is_valid("ceph-noout"));
        ASSERT_TRUE(!api_hook_name_is_valid(NULL));
        ASSERT_TRUE(!api_hook_name_is_valid(".."));
}

static void test_error_codes(void) {
        static const struct {
                int err;
                unsigned status;
                const char *code;
        } table[] = {
                { EBADMSG, 422, "bad_bundle" },          { EKEYREJECTED, 422, "bad_signature" },
                { ENOKEY, 422, "unknown_key" },          { EPROTONOSUPPORT, 422, "unsupported_format" },
                { EXDEV, 422, "wrong_arch" },            { EFBIG, 422, "too_large" },
                { EDOM, 422, "version_mismatch" },       { EKEYREVOKED, 422, "key_mismatch" },
                { EUCLEAN, 422, "digest_mismatch" },     { ENODATA, 422, "truncated" },
                { ECOMM, 502, "download_failed" },       { ECONNREFUSED, 502, "download_failed" },
                { ETIMEDOUT, 502, "download_failed" },   { EPROTO, 502, "download_failed" },
                { ENOENT, 502, "download_failed" },      { EACCES, 502, "download_failed" },
                { EILSEQ, 500, "readback_mismatch" },    { EIO, 500, "io_error" },
                { ENOSPC, 507, "no_space" },             { EDQUOT, 507, "no_space" },
                { EBUSY, 409, "busy" },                  { ENOMEDIUM, 409, "conflict" },
                { ESTALE, 409, "conflict" },             { E2BIG, 413, "too_large" },
                { EINVAL, 400, "bad_request" },          { ECANCELED, 503, "cancelled" },
                { EINTR, 500, "interrupted" },           { ENOMEM, 500, "internal" },
                { EPERM, 500, "internal" },              { 0, 500, "internal" },
                { 4095, 500, "internal" },               { INT_MAX, 500, "internal" },
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                ASSERT_STREQ(api_error_code_from_errno(table[i].err), table[i].code);
                ASSERT_STREQ(api_error_code_from_errno(-table[i].err), table[i].code);
                ApiError e = api_error_from_errno(-table[i].err);
                ASSERT_EQ(e.status, table[i].status);
                ASSERT_STREQ(e.code, table[i].code);
        }
        ASSERT_STREQ(api_error_code_from_errno(INT_MIN), "internal");

        /* Names: whatever the table knows agrees with glibc; the rest is
         * E<number>. */
        char buf[API_ERRNO_NAME_MAX];
        ASSERT_STREQ(api_errno_name(-EKEYREJECTED, buf), "EKEYREJECTED");
        ASSERT_STREQ(api_errno_name(EKEYREJECTED, buf), "EKEYREJECTED");
        ASSERT_STREQ(api_errno_name(0, buf), "0");
        ASSERT_STREQ(api_errno_name(-4095, buf), "E4095");
        ASSERT_STREQ(api_errno_name(INT_MIN, buf), "E2147483647");
        unsigned named = 0;
        for (int e = 1; e < 200; e++) {
                const char *n = api_errno_name(-e, buf);
                char expect[API_ERRNO_NAME_MAX];
                snprintf(expect, sizeof(expect), "E%d", e);
                if (streq(n, expect))
                        continue;
                named++;
                const char *glibc = strerrorname_np(e);
                if (!glibc || !streq(n, glibc)) {
                        fprintf(stderr, "errno %d: %s, glibc says %s\n", e, n, glibc ?: "(null)");
                        abort();
                }
        }
        ASSERT_TRUE(named >= 40);
}

static void test_format_error(void) {
        char *s;

        ASSERT_OK(api_format_error("bad_signature",
                                   "the bundle's signature does not verify against key 0123456789abcdef",
                                   -EKEYREJECTED, &s));
        ASSERT_STREQ(s, "{\"error\":{\"code\":\"bad_signature\",\"message\":\"the bundle's signature does not "
                        "verify against key 0123456789abcdef\",\"errno\":\"EKEYREJECTED\"}}");
        free(s);

        ASSERT_OK(api_format_error("busy", "operation 7 is running", 0, &s));
        ASSERT_STREQ(s, "{\"error\":{\"code\":\"busy\",\"message\":\"operation 7 is running\"}}");
        free(s);

        ASSERT_OK(api_format_error(NULL, NULL, ENOSPC, &s));
        ASSERT_STREQ(s, "{\"error\":{\"code\":\"internal\",\"message\":\"No space left on device\","
                        "\"errno\":\"ENOSPC\"}}");
        free(s);

        ASSERT_OK(api_format_error("internal", "x", -4000, &s));
        ASSERT_STREQ(s, "{\"error\":{\"code\":\"internal\",\"message\":\"x\",\"errno\":\"E4000\"}}");
        free(s);

        /* Anything in the message: one line, valid JSON, invalid bytes as
         * U+FFFD. */
        ASSERT_OK(api_format_error("io_error", "line\none \"q\" \x01 bad:\xff\xc0\xaf end", -EIO, &s));
        ASSERT_TRUE(!strchr(s, '\n'));
        json_t *j = json_loads(s, 0, NULL);
        ASSERT_TRUE(j);
        ASSERT_STREQ(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
                     "line\none \"q\" \x01 bad:\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end");
        json_decref(j);
        free(s);

        /* Long messages are cut. */
        _cleanup_free_ char *huge = repeat('m', 1024 * 1024);
        ASSERT_OK(api_format_error("internal", huge, 0, &s));
        ASSERT_TRUE(strlen(s) < 70 * 1024);
        free(s);
}

static void sanitized(const char *in, size_t max, const char *expect) {
        _cleanup_free_ char *s = api_utf8_sanitize(in, max);
        ASSERT_STREQ(s, expect);
        json_t *j = json_string(s);
        ASSERT_TRUE(j);
        json_decref(j);
}

#define FFFD "\xef\xbf\xbd"

static void test_utf8_sanitize(void) {
        sanitized("", 10, "");
        sanitized(NULL, 10, "");
        sanitized("plain ASCII\n\t\x01\x7f", SIZE_MAX, "plain ASCII\n\t\x01\x7f");
        sanitized("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf", 100,
                  "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"); /* é € 😀 U+10FFFF */
        sanitized("\xef\xbf\xbf\xee\x80\x80", 100, "\xef\xbf\xbf\xee\x80\x80"); /* U+FFFF, U+E000 */

        sanitized("a\xff" "b", 100, "a" FFFD "b");
        sanitized("\x80", 100, FFFD);
        sanitized("\xc0\xaf", 100, FFFD FFFD);                      /* overlong '/' */
        sanitized("\xc1\xbf", 100, FFFD FFFD);
        sanitized("\xe0\x80\xaf", 100, FFFD FFFD FFFD);             /* overlong */
        sanitized("\xe0\x9f\xbf", 100, FFFD FFFD FFFD);
        sanitized("\xed\xa0\x80", 100, FFFD FFFD FFFD);             /* surrogate U+D800 */
        sanitized("\xed\xbf\xbf", 100, FFFD FFFD FFFD);
        sanitized("\xf0\x80\x80\xaf", 100, FFFD FFFD FFFD FFFD);    /* overlong */
        sanitized("\xf4\x90\x80\x80", 100, FFFD FFFD FFFD FFFD);    /* U+110000 */
        sanitized("\xf5\x80\x80\x80", 100, FFFD FFFD FFFD FFFD);
        sanitized("\xf8\x88\x80\x80\x80", 100, FFFD FFFD FFFD FFFD FFFD);
        /* Truncated sequences: one U+FFFD for the maximal subpart. */
        sanitized("\xe2\x82", 100, FFFD);
        sanitized("\xe2\x82x", 100, FFFD "x");
        sanitized("\xf0\x9f\x98", 100, FFFD);
        sanitized("\xf0\x9f\x98\xc3\xa9", 100, FFFD "\xc3\xa9");

        /* Cutting at max never splits a character. */
        sanitized("a\xc3\xa9", 2, "a");
        sanitized("a\xc3\xa9", 3, "a\xc3\xa9");
        sanitized("a\xe2\x82\xac" "b", 2, "a");
        sanitized("a\xe2\x82\xac" "b", 3, "a");
        sanitized("a\xe2\x82\xac" "b", 4, "a\xe2\x82\xac");
        sanitized("a\xf0\x9f\x98\x80", 4, "a");
        sanitized("abc", 0, "");
        sanitized("abc", 2, "ab");
        /* ... but stray continuation bytes are not backed over for ever. */
        sanitized("abcd\x80\x80\x80\x80\x80", 6, "abcd" FFFD FFFD);

        /* Whatever comes in, jansson takes what comes out. */
        srand(42);
        for (unsigned n = 0; n < 20000; n++) {
                char in[24];
                size_t l = (size_t) rand() % (sizeof(in) - 1);
                for (size_t i = 0; i < l; i++) {
                        int c = rand() % 255 + 1;
                        /* Bias towards UTF-8 lead and continuation bytes. */
                        if (rand() % 2)
                                c = 0x80 | (c & 0x7f);
                        in[i] = (char) c;
                }
                in[l] = '\0';
                _cleanup_free_ char *s = api_utf8_sanitize(in, (size_t) rand() % 30);
                ASSERT_TRUE(s);
                json_t *j = json_string(s);
                ASSERT_TRUE(j);
                json_decref(j);
        }
}

int main(void) {
        TEST_RUN(test_stage_valid);
        TEST_RUN(test_stage_invalid);
        TEST_RUN(test_body_size);
        TEST_RUN(test_activate);
        TEST_RUN(test_rollback_mark_good);
        TEST_RUN(test_debug);
        TEST_RUN(test_hook);
        TEST_RUN(test_error_codes);
        TEST_RUN(test_format_error);
        TEST_RUN(test_utf8_sanitize);
        return 0;
}
