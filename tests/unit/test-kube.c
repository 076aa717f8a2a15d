/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pure parts of the Kubernetes client: watch stream parsing, Status
 * bodies and errno mapping, kubeconfig and in-cluster configuration,
 * selectors, escaping, times, backoff. No network. */
#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "kube-internal.h"
#include "kube.h"
#include "tests.h"

/* ---- watch parser ---- */

typedef struct Seen {
        char log[4096];
        unsigned n;
        int fail_at; /* return -EUCLEAN at this event (1-based), 0: never */
} Seen;

static int record(KubeEventType type, json_t *object, void *userdata) {
        Seen *s = userdata;
        size_t l = strlen(s->log);

        s->n++;
        (void) snprintf(s->log + l, sizeof(s->log) - l, "%s:%s:%s;", kube_event_type_to_string(type),
                        kube_name(object) ?: "-", kube_resource_version(object) ?: "-");
        if (s->fail_at > 0 && (int) s->n == s->fail_at)
                return -EUCLEAN;
        return 0;
}

static const char stream[] =
        "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\",\"resourceVersion\":\"11\"}}}\n"
        "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"n1\",\"resourceVersion\":\"12\"},\"x\":\"\\u00e9\\n{}\"}}\r\n"
        "\n"
        "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"20\"}}}\n"
        "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"n1\",\"resourceVersion\":\"21\"},"
        "\"spec\":{\"big\":9007199254740993}}}\n"
        "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\"}}\n";
static const char expected[] = "ADDED:n1:11;MODIFIED:n1:12;BOOKMARK:-:20;DELETED:n1:21;ERROR:-:-;";

static void feed_split(const char *data, size_t len, size_t (*next)(size_t left, void *u), void *u, Seen *s) {
        _cleanup_(kube_watch_parser_freep) KubeWatchParser *p = kube_watch_parser_new(record, s);
        ASSERT_TRUE(p);
        while (len > 0) {
                size_t n = next(len, u);
                n = MIN(n, len);
                ASSERT_OK(kube_watch_parser_feed(p, data, n));
                data += n;
                len -= n;
        }
        ASSERT_EQ(kube_watch_parser_pending(p), 0);
}

static size_t whole(size_t left, void *u) {
        return left;
}
static size_t one(size_t left, void *u) {
        return 1;
}
static size_t random_split(size_t left, void *u) {
        unsigned *seed = u;
        *seed = *seed * 1103515245U + 12345U;
        return 1 + (*seed >> 8) % 40;
}

static void test_watch_parser_splits(void) {
        Seen s = {};
        feed_split(stream, strlen(stream), whole, NULL, &s);
        ASSERT_STREQ(s.log, expected);

        s = (Seen) {};
        feed_split(stream, strlen(stream), one, NULL, &s);
        ASSERT_STREQ(s.log, expected);

        for (unsigned seed = 1; seed < 200; seed++) {
                unsigned st = seed;
                s = (Seen) {};
                feed_split(stream, strlen(stream), random_split, &st, &s);
                ASSERT_STREQ(s.log, expected);
        }
}

static int keep(KubeEventType t, json_t *o, void *u) {
        *(json_t **) u = json_incref(o);
        return 0;
}

static void test_watch_parser_big_integer(void) {
        /* generation-like integers above 2^53 must not go through double. */
        const char *line = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"generation\":9007199254740993}}}\n";
        json_t *kept = NULL;
        _cleanup_(kube_watch_parser_freep) KubeWatchParser *p = kube_watch_parser_new(keep, &kept);
        ASSERT_OK(kube_watch_parser_feed(p, line, strlen(line)));
        ASSERT_TRUE(kept);
        ASSERT_TRUE(kube_generation(kept) == INT64_C(9007199254740993));
        json_decref(kept);
}

static void expect_bad(const char *data, int err) {
        Seen s = {};
        _cleanup_(kube_watch_parser_freep) KubeWatchParser *p = kube_watch_parser_new(record, &s);
        ASSERT_ERROR(kube_watch_parser_feed(p, data, strlen(data)), err);
}

static void test_watch_parser_bad_lines(void) {
        expect_bad("not json\n", EBADMSG);
        expect_bad("[1,2]\n", EBADMSG);
        expect_bad("\"ADDED\"\n", EBADMSG);
        expect_bad("{\"type\":\"ADDED\"}\n", EBADMSG);
        expect_bad("{\"type\":\"ADDED\",\"object\":[]}\n", EBADMSG);
        expect_bad("{\"type\":\"SOMETHING\",\"object\":{}}\n", EBADMSG);
        expect_bad("{\"type\":7,\"object\":{}}\n", EBADMSG);
        expect_bad("{\"type\":\"ADDED\",\"object\":{}} trailing\n", EBADMSG);
        expect_bad("{\"type\":\"ADDED\",\"object\":{\"a\":\"\xff\"}}\n", EBADMSG);

        /* The events before a bad line are delivered; the callback's error
         * stops the feed. */
        Seen s = { .fail_at = 2 };
        _cleanup_(kube_watch_parser_freep) KubeWatchParser *p = kube_watch_parser_new(record, &s);
        ASSERT_ERROR(kube_watch_parser_feed(p, stream, strlen(stream)), EUCLEAN);
        ASSERT_EQ(s.n, 2);

        /* An unfinished line is held, not parsed. */
        Seen s2 = {};
        _cleanup_(kube_watch_parser_freep) KubeWatchParser *p2 = kube_watch_parser_new(record, &s2);
        ASSERT_OK(kube_watch_parser_feed(p2, "{\"type\":\"ADDED\"", 15));
        ASSERT_EQ(s2.n, 0);
        ASSERT_EQ(kube_watch_parser_pending(p2), 15);
}

static void test_watch_parser_long_line(void) {
        size_t n = KUBE_WATCH_LINE_MAX + 1;
        _cleanup_free_ char *big = malloc(n);
        Seen s = {};

        ASSERT_TRUE(big);
        memset(big, ' ', n);
        /* In pieces without a newline: refused once over the cap. */
        _cleanup_(kube_watch_parser_freep) KubeWatchParser *p = kube_watch_parser_new(record, &s);
        ASSERT_OK(kube_watch_parser_feed(p, big, n - 1));
        ASSERT_ERROR(kube_watch_parser_feed(p, big, 1), E2BIG);

        /* In one piece with its newline. */
        _cleanup_(kube_watch_parser_freep) KubeWatchParser *p2 = kube_watch_parser_new(record, &s);
        big[n - 1] = '\n';
        _cleanup_free_ char *bigger = malloc(n + 1);
        ASSERT_TRUE(bigger);
        memset(bigger, ' ', n + 1);
        bigger[n] = '\n';
        ASSERT_ERROR(kube_watch_parser_feed(p2, bigger, n + 1), E2BIG);
        /* Exactly at the cap is fine (blank, so skipped). */
        ASSERT_OK(kube_watch_parser_feed(p2, big, n));
        ASSERT_EQ(s.n, 0);
}

/* ---- Status and errno ---- */

static void test_status(void) {
        KubeResponse r = {};
        json_error_t e;
        json_t *b = json_loads("{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                               "\"message\":\"Cannot evict pod as it would violate the pod's disruption budget.\","
                               "\"reason\":\"TooManyRequests\",\"code\":429,\"details\":{\"causes\":"
                               "[{\"reason\":\"DisruptionBudget\",\"message\":\"needs 1\"}]}}",
                               0, &e);
        ASSERT_TRUE(b);
        r.status = 429;
        r.body = b;
        kube_response_parse_status(&r, b);
        ASSERT_STREQ(r.reason, "TooManyRequests");
        ASSERT_STREQ(r.cause, "DisruptionBudget");
        ASSERT_TRUE(strstr(r.message, "disruption budget"));
        _cleanup_free_ char *msg = kube_response_error(&r, -EAGAIN);
        ASSERT_STREQ(msg, "429 TooManyRequests: Cannot evict pod as it would violate the pod's disruption budget.");
        /* Parsing something that is not a Status clears the fields. */
        kube_response_parse_status(&r, NULL);
        ASSERT_TRUE(!r.reason && !r.message && !r.cause);
        kube_response_done(&r);
        ASSERT_TRUE(!r.body && r.status == 0);

        _cleanup_free_ char *t = kube_response_error(NULL, -ECONNREFUSED);
        ASSERT_TRUE(strstr(t, "refused"));
}

static void test_errno_mapping(void) {
        ASSERT_EQ(kube_errno_from_status(200, NULL), 0);
        ASSERT_EQ(kube_errno_from_status(201, NULL), 0);
        ASSERT_EQ(kube_errno_from_status(202, NULL), 0);
        ASSERT_EQ(kube_errno_from_status(400, "BadRequest"), -EINVAL);
        ASSERT_EQ(kube_errno_from_status(401, "Unauthorized"), -EACCES);
        ASSERT_EQ(kube_errno_from_status(403, "Forbidden"), -EACCES);
        ASSERT_EQ(kube_errno_from_status(404, "NotFound"), -ENOENT);
        ASSERT_EQ(kube_errno_from_status(409, "Conflict"), -ESTALE);
        ASSERT_EQ(kube_errno_from_status(409, NULL), -ESTALE);
        ASSERT_EQ(kube_errno_from_status(409, "AlreadyExists"), -EEXIST);
        ASSERT_EQ(kube_errno_from_status(410, "Expired"), -EXPIRED);
        ASSERT_EQ(kube_errno_from_status(410, "Gone"), -EXPIRED);
        ASSERT_EQ(kube_errno_from_status(415, NULL), -EOPNOTSUPP);
        ASSERT_EQ(kube_errno_from_status(422, "Invalid"), -EINVAL);
        ASSERT_EQ(kube_errno_from_status(429, NULL), -EAGAIN);
        ASSERT_EQ(kube_errno_from_status(500, NULL), -EAGAIN);
        ASSERT_EQ(kube_errno_from_status(503, NULL), -EAGAIN);
        ASSERT_EQ(kube_errno_from_status(302, NULL), -EPROTO);
        ASSERT_EQ(kube_errno_from_status(418, NULL), -EPROTO);
        ASSERT_EQ(kube_errno_from_status(0, NULL), -EIO);
        ASSERT_TRUE(EXPIRED != ESTALE && EXPIRED != EAGAIN && EXPIRED != ETIMEDOUT);
}

/* ---- kubeconfig ---- */

static char tmpdir[] = "/tmp/test-kube-XXXXXX";

static char *tmp_write(const char *name, const char *content) {
        char *p = path_join(tmpdir, name);
        ASSERT_TRUE(p);
        _cleanup_free_ char *copy = strdup(p);
        char *slash = strrchr(copy, '/');
        *slash = '\0';
        ASSERT_OK(mkdir_p(copy, 0755));
        ASSERT_OK(write_file_atomic(p, content, strlen(content), 0600));
        return p;
}

/* "-----BEGIN CA-----\n" (19 bytes: one '=' of padding), "cert!" (5: two),
 * "key" (3: none). */
#define CA_PEM "-----BEGIN CA-----\n"
#define CA_B64 "LS0tLS1CRUdJTiBDQS0tLS0tCg=="

static const char kubeconfig_main[] =
        "apiVersion: v1\n"
        "kind: Config\n"
        "current-context: prod\n"
        "preferences: {}\n"
        "clusters:\n"
        "- name: prod-cluster\n"
        "  cluster:\n"
        "    server: https://10.0.0.1:6443/\n"
        "    certificate-authority-data: " CA_B64 "\n"
        "    extension-we-do-not-know: 1\n"
        "- name: dev-cluster\n"
        "  cluster:\n"
        "    server: http://127.0.0.1:8080\n"
        "    certificate-authority: certs/ca.pem\n"
        "    insecure-skip-tls-verify: true\n"
        "users:\n"
        "- name: admin\n"
        "  user:\n"
        "    client-certificate-data: Y2VydCE=\n"
        "    client-key-data: a2V5\n"
        "- name: dev\n"
        "  user:\n"
        "    token: abc.def\n"
        "    tokenFile: secrets/token\n"
        "    client-certificate: /abs/cert.pem\n"
        "    client-key: keys/key.pem\n"
        "contexts:\n"
        "- name: prod\n"
        "  context:\n"
        "    cluster: prod-cluster\n"
        "    user: admin\n"
        "- name: dev\n"
        "  context:\n"
        "    cluster: dev-cluster\n"
        "    user: dev\n"
        "    namespace: team-a\n"
        "- name: broken\n"
        "  context:\n"
        "    cluster: nowhere\n"
        "    user: admin\n"
        "- name: nouser\n"
        "  context:\n"
        "    cluster: prod-cluster\n"
        "    user: ghost\n";

static void test_kubeconfig_current_context(void) {
        _cleanup_free_ char *path = tmp_write("a/config", kubeconfig_main);
        _cleanup_(kube_config_unrefp) KubeConfig *c = NULL;
        char *error = NULL;

        ASSERT_OK(kube_config_load(path, NULL, &c, &error));
        ASSERT_TRUE(!error);
        ASSERT_STREQ(c->server, "https://10.0.0.1:6443");
        ASSERT_EQ(c->ca_size, strlen(CA_PEM));
        ASSERT_TRUE(memcmp(c->ca_data, CA_PEM, c->ca_size) == 0);
        ASSERT_EQ(c->cert_size, 5);
        ASSERT_TRUE(memcmp(c->cert_data, "cert!", 5) == 0);
        ASSERT_EQ(c->key_size, 3);
        ASSERT_TRUE(memcmp(c->key_data, "key", 3) == 0);
        ASSERT_TRUE(!c->token && !c->token_file && !c->ca_file && !c->insecure);
        ASSERT_STREQ(c->namespace, "default");
        ASSERT_EQ(c->refcount, 1);
        ASSERT_TRUE(kube_config_ref(c) == c);
        ASSERT_EQ(c->refcount, 2);
        ASSERT_TRUE(kube_config_unref(c) == NULL);
        ASSERT_EQ(c->refcount, 1);
}

static void test_kubeconfig_explicit_context(void) {
        _cleanup_free_ char *path = tmp_write("a/config", kubeconfig_main);
        _cleanup_free_ char *dir = path_join(tmpdir, "a");
        _cleanup_(kube_config_unrefp) KubeConfig *c = NULL;
        _cleanup_free_ char *want_ca = NULL, *want_tf = NULL, *want_key = NULL;

        ASSERT_OK(kube_config_load(path, "dev", &c, NULL));
        ASSERT_STREQ(c->server, "http://127.0.0.1:8080");
        ASSERT_TRUE(c->insecure);
        ASSERT_STREQ(c->token, "abc.def");
        /* Relative paths are relative to the kubeconfig's directory. */
        ASSERT_TRUE(asprintf(&want_ca, "%s/certs/ca.pem", dir) > 0);
        ASSERT_TRUE(asprintf(&want_tf, "%s/secrets/token", dir) > 0);
        ASSERT_TRUE(asprintf(&want_key, "%s/keys/key.pem", dir) > 0);
        ASSERT_STREQ(c->ca_file, want_ca);
        ASSERT_STREQ(c->token_file, want_tf);
        ASSERT_STREQ(c->cert_file, "/abs/cert.pem");
        ASSERT_STREQ(c->key_file, want_key);
        ASSERT_TRUE(!c->ca_data && !c->cert_data);
        ASSERT_STREQ(c->namespace, "team-a");
}

static void expect_load_error(const char *path, const char *context, int err, const char *needle) {
        KubeConfig *c = NULL;
        _cleanup_free_ char *error = NULL;

        ASSERT_ERROR(kube_config_load(path, context, &c, &error), err);
        ASSERT_TRUE(!c);
        if (needle) {
                if (!error || !strstr(error, needle)) {
                        fprintf(stderr, "error \"%s\" lacks \"%s\"\n", error ?: "(null)", needle);
                        abort();
                }
        }
}

static void test_kubeconfig_errors(void) {
        _cleanup_free_ char *path = tmp_write("a/config", kubeconfig_main);
        _cleanup_free_ char *missing = path_join(tmpdir, "nope/config");

        expect_load_error(path, "staging", EBADMSG, "context \"staging\" not found");
        expect_load_error(path, "broken", EBADMSG, "cluster \"nowhere\"");
        expect_load_error(path, "nouser", EBADMSG, "user \"ghost\"");
        expect_load_error(missing, NULL, ENOENT, NULL);

        _cleanup_free_ char *nocc = tmp_write("b/nocc", "clusters: []\n");
        expect_load_error(nocc, NULL, EBADMSG, "current-context");
        _cleanup_free_ char *notyaml = tmp_write("b/bad", "clusters: [\n");
        expect_load_error(notyaml, NULL, EBADMSG, "bad:");
        _cleanup_free_ char *badb64 = tmp_write("b/b64",
                                                "current-context: x\n"
                                                "contexts: [{name: x, context: {cluster: c}}]\n"
                                                "clusters: [{name: c, cluster: {server: 'https://h', "
                                                "certificate-authority-data: 'QUJD=RA=='}}]\n");
        expect_load_error(badb64, NULL, EBADMSG, "base64");
        _cleanup_free_ char *noserver = tmp_write("b/noserver",
                                                  "current-context: x\n"
                                                  "contexts: [{name: x, context: {cluster: c}}]\n"
                                                  "clusters: [{name: c, cluster: {}}]\n");
        expect_load_error(noserver, NULL, EBADMSG, "no server");
        _cleanup_free_ char *exec = tmp_write("b/exec",
                                              "current-context: x\n"
                                              "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
                                              "clusters: [{name: c, cluster: {server: 'https://h'}}]\n"
                                              "users: [{name: u, user: {exec: {command: aws}}}]\n");
        expect_load_error(exec, NULL, EOPNOTSUPP, "exec");
        _cleanup_free_ char *noname = tmp_write("b/noname", "clusters: [{cluster: {server: 'https://h'}}]\n");
        expect_load_error(noname, "x", EBADMSG, "has no name");
}

static void test_kubeconfig_merge(void) {
        /* First file that sets a value wins, files that do not exist are
         * skipped; each file's relative paths are relative to itself. */
        _cleanup_free_ char *f1 = tmp_write("m1/config",
                                            "current-context: one\n"
                                            "contexts:\n"
                                            "- {name: one, context: {cluster: shared, user: u2}}\n"
                                            "clusters:\n"
                                            "- {name: shared, cluster: {server: 'https://first:1', "
                                            "certificate-authority: ca1.pem}}\n");
        _cleanup_free_ char *f2 = tmp_write("m2/config",
                                            "current-context: two\n"
                                            "contexts:\n"
                                            "- {name: one, context: {cluster: other, user: nobody}}\n"
                                            "- {name: two, context: {cluster: shared, user: u2, namespace: ns2}}\n"
                                            "clusters:\n"
                                            "- {name: shared, cluster: {server: 'https://second:2'}}\n"
                                            "users:\n"
                                            "- {name: u2, user: {tokenFile: tok}}\n");
        _cleanup_free_ char *missing = path_join(tmpdir, "m3/none");
        _cleanup_free_ char *env = NULL, *want_ca = NULL, *want_tok = NULL;
        _cleanup_(kube_config_unrefp) KubeConfig *c = NULL, *c2 = NULL;

        ASSERT_TRUE(asprintf(&env, "%s::%s:%s", missing, f1, f2) > 0);
        ASSERT_TRUE(asprintf(&want_ca, "%s/m1/ca1.pem", tmpdir) > 0);
        ASSERT_TRUE(asprintf(&want_tok, "%s/m2/tok", tmpdir) > 0);
        ASSERT_OK(setenv("KUBECONFIG", env, 1));
        ASSERT_OK(kube_config_load(NULL, NULL, &c, NULL));
        ASSERT_STREQ(c->server, "https://first:1");
        ASSERT_STREQ(c->ca_file, want_ca);
        ASSERT_STREQ(c->token_file, want_tok);
        ASSERT_OK(kube_config_load(NULL, "two", &c2, NULL));
        ASSERT_STREQ(c2->server, "https://first:1");
        ASSERT_STREQ(c2->namespace, "ns2");

        /* kube_config_auto() without the in-cluster variables: kubeconfig. */
        KubeConfig *c3 = NULL;
        ASSERT_OK(unsetenv("KUBERNETES_SERVICE_HOST"));
        ASSERT_OK(kube_config_auto(NULL, "two", &c3, NULL));
        ASSERT_STREQ(c3->namespace, "ns2");
        kube_config_unref(c3);

        ASSERT_OK(setenv("KUBECONFIG", missing, 1));
        expect_load_error(NULL, NULL, ENOENT, "KUBECONFIG");
        ASSERT_OK(unsetenv("KUBECONFIG"));
}

static void test_in_cluster(void) {
        _cleanup_free_ char *tok = tmp_write("sa/token", "eyJhbGciOi.token\n");
        _cleanup_free_ char *ca = tmp_write("sa/ca.crt", "-----BEGIN CERTIFICATE-----\n");
        _cleanup_free_ char *ns = tmp_write("sa/namespace", "hull-system");
        _cleanup_free_ char *dir = path_join(tmpdir, "sa");
        _cleanup_free_ char *error = NULL;
        KubeConfig *c = NULL;

        ASSERT_OK(unsetenv("KUBERNETES_SERVICE_HOST"));
        ASSERT_OK(unsetenv("KUBERNETES_SERVICE_PORT"));
        ASSERT_ERROR(kube_config_in_cluster(dir, &c, &error), ENOENT);
        ASSERT_TRUE(error && strstr(error, "KUBERNETES_SERVICE_HOST"));

        ASSERT_OK(setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1));
        ASSERT_OK(setenv("KUBERNETES_SERVICE_PORT", "443", 1));
        ASSERT_OK(kube_config_in_cluster(dir, &c, NULL));
        ASSERT_STREQ(c->server, "https://10.96.0.1:443");
        ASSERT_STREQ(c->token, "eyJhbGciOi.token");
        ASSERT_STREQ(c->token_file, tok);
        ASSERT_STREQ(c->ca_file, ca);
        ASSERT_STREQ(c->namespace, "hull-system");
        c = kube_config_unref(c);

        ASSERT_OK(setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1));
        ASSERT_OK(kube_config_in_cluster(dir, &c, NULL));
        ASSERT_STREQ(c->server, "https://[fd00:10:96::1]:443");
        c = kube_config_unref(c);

        /* kube_config_auto() prefers in-cluster when the variables are set
         * and no path is given (dir is the default there, so it fails here
         * unless that path exists: just check it did not use a kubeconfig). */
        ASSERT_OK(setenv("KUBECONFIG", "/nonexistent/kubeconfig", 1));
        int r = kube_config_auto(NULL, NULL, &c, NULL);
        if (r >= 0)
                c = kube_config_unref(c);
        else
                ASSERT_TRUE(r != -EBADMSG);
        ASSERT_OK(unsetenv("KUBECONFIG"));

        ASSERT_OK(setenv("KUBERNETES_SERVICE_PORT", "44x", 1));
        ASSERT_ERROR(kube_config_in_cluster(dir, &c, NULL), EINVAL);

        /* No token: an error, not an anonymous client. */
        ASSERT_OK(setenv("KUBERNETES_SERVICE_PORT", "443", 1));
        ASSERT_OK(unlink(tok));
        ASSERT_ERROR(kube_config_in_cluster(dir, &c, NULL), ENOENT);
        ASSERT_OK(unsetenv("KUBERNETES_SERVICE_HOST"));
        ASSERT_OK(unsetenv("KUBERNETES_SERVICE_PORT"));
}

static void test_base64(void) {
        void *d = NULL;
        size_t n = 0;

        ASSERT_OK(kube_base64_decode("YWJj", &d, &n)); /* no padding */
        ASSERT_EQ(n, 3);
        ASSERT_TRUE(memcmp(d, "abc", 3) == 0);
        free(d);
        ASSERT_OK(kube_base64_decode("YWI=", &d, &n));
        ASSERT_EQ(n, 2);
        ASSERT_TRUE(memcmp(d, "ab", 2) == 0);
        free(d);
        ASSERT_OK(kube_base64_decode("YQ==", &d, &n));
        ASSERT_EQ(n, 1);
        ASSERT_TRUE(memcmp(d, "a", 1) == 0);
        free(d);
        ASSERT_OK(kube_base64_decode("YWJj\nZGVm\n", &d, &n));
        ASSERT_EQ(n, 6);
        ASSERT_TRUE(memcmp(d, "abcdef", 6) == 0);
        free(d);
        ASSERT_ERROR(kube_base64_decode("YWJ", &d, &n), EBADMSG);
        ASSERT_ERROR(kube_base64_decode("", &d, &n), EBADMSG);
        ASSERT_ERROR(kube_base64_decode("Y===", &d, &n), EBADMSG);
        ASSERT_ERROR(kube_base64_decode("YQ==YQ==", &d, &n), EBADMSG);
        ASSERT_ERROR(kube_base64_decode("YW*j", &d, &n), EBADMSG);
}

/* ---- selectors ---- */

static void test_selectors(void) {
        json_error_t e;
        _cleanup_(json_decrefp) json_t *l = json_loads(
                "{\"role\":\"worker\",\"zone\":\"a\",\"hull.dev/group\":\"g1\",\"tier\":\"\",\"rank\":\"7\"}", 0, &e);
        ASSERT_TRUE(l);

        static const struct {
                const char *sel;
                int want;
        } cases[] = {
                { "", 1 },
                { "   ", 1 },
                { "role=worker", 1 },
                { "role==worker", 1 },
                { "role = worker", 1 },
                { "role=master", 0 },
                { "role!=master", 1 },
                { "role!=worker", 0 },
                { "missing!=x", 1 },
                { "missing=x", 0 },
                { "zone in (a,b)", 1 },
                { "zone in ( b , c )", 0 },
                { "zone in(a)", 1 },
                { "zone notin (b,c)", 1 },
                { "zone notin (a)", 0 },
                { "missing notin (a)", 1 },
                { "missing in (a)", 0 },
                { "hull.dev/group", 1 },
                { "missing", 0 },
                { "!missing", 1 },
                { "! role", 0 },
                { "tier=", 1 },
                { "tier", 1 },
                { "rank>5", 1 },
                { "rank<5", 0 },
                { "role=worker,zone in (a),!missing,hull.dev/group=g1", 1 },
                { "role=worker,zone=b", 0 },
                { "zone=b,role=worker", 0 },
                { "role", 1 },
                /* malformed */
                { "role=worker,", -EINVAL },
                { ",role", -EINVAL },
                { "=x", -EINVAL },
                { "role=a=b", -EINVAL },
                { "zone in a", -EINVAL },
                { "zone in (a", -EINVAL },
                { "zone in ()", -EINVAL },
                { "zone notin (a b)", -EINVAL },
                { "!role=x", -EINVAL },
                { "-bad=x", -EINVAL },
                { "role=in valid", -EINVAL },
                { "a/b/c=x", -EINVAL },
                { "role=a/b", -EINVAL },
                { "rank>x", -EINVAL },
                { "zone=b,role=", 0 },
                { "zone=b,role=(", -EINVAL }, /* errors found after a mismatch too */
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int r = kube_selector_matches(cases[i].sel, l);
                if (r != cases[i].want) {
                        fprintf(stderr, "selector \"%s\": %d, expected %d\n", cases[i].sel, r, cases[i].want);
                        abort();
                }
        }
        /* No labels at all. */
        ASSERT_EQ(kube_selector_matches("!a", NULL), 1);
        ASSERT_EQ(kube_selector_matches("a", NULL), 0);
        ASSERT_EQ(kube_selector_matches(NULL, NULL), 1);
}

static void test_escape(void) {
        _cleanup_free_ char *a = kube_escape("spec.nodeName=node-1,status.phase!=Running");
        ASSERT_STREQ(a, "spec.nodeName%3Dnode-1%2Cstatus.phase%21%3DRunning");
        _cleanup_free_ char *b = kube_escape("zone in (a,b)");
        ASSERT_STREQ(b, "zone%20in%20%28a%2Cb%29");
        _cleanup_free_ char *c = kube_escape("eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ+/=&?#%");
        ASSERT_STREQ(c, "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ%2B%2F%3D%26%3F%23%25");
        _cleanup_free_ char *d = kube_escape("Az09-._~\xc3\xa9");
        ASSERT_STREQ(d, "Az09-._~%C3%A9");
        _cleanup_free_ char *e = kube_escape("");
        ASSERT_STREQ(e, "");
}

static void test_time(void) {
        char buf[32], mbuf[40];
        int64_t t;

        ASSERT_STREQ(kube_format_time(0, buf), "1970-01-01T00:00:00Z");
        ASSERT_STREQ(kube_format_time(1796058000, buf), "2026-11-30T17:00:00Z");
        ASSERT_STREQ(kube_format_micro_time(1796058000123456ULL, mbuf), "2026-11-30T17:00:00.123456Z");
        ASSERT_OK(kube_parse_time("2026-11-30T17:00:00Z", &t));
        ASSERT_EQ(t, 1796058000);
        ASSERT_OK(kube_parse_time("2026-11-30T17:00:00.123456Z", &t));
        ASSERT_EQ(t, 1796058000);
        ASSERT_OK(kube_parse_time("2026-11-30T19:30:00+02:30", &t));
        ASSERT_EQ(t, 1796058000);
        ASSERT_OK(kube_parse_time("2026-11-30T12:00:00-05:00", &t));
        ASSERT_EQ(t, 1796058000);
        ASSERT_OK(kube_parse_time("2024-02-29T00:00:00Z", &t));
        ASSERT_EQ(t, 1709164800);
        ASSERT_OK(kube_parse_time("1969-12-31T23:59:59Z", &t));
        ASSERT_EQ(t, -1);
        /* Round trip. */
        for (int64_t x = 0; x < 4000000000LL; x += 123456789) {
                ASSERT_OK(kube_parse_time(kube_format_time(x, buf), &t));
                ASSERT_EQ(t, x);
        }
        const char *bad[] = { "", "2026-11-30", "2026-11-30T17:00:00", "2026-13-01T00:00:00Z",
                              "2026-11-31T00:00:00Z", "2023-02-29T00:00:00Z", "2026-11-30 17:00:00Z",
                              "2026-11-30T24:00:00Z", "2026-11-30T17:00:00.Z", "2026-11-30T17:00:00Zjunk",
                              "2026-11-30T17:00:00+0200", "26-11-30T17:00:00Z" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ASSERT_ERROR(kube_parse_time(bad[i], &t), EINVAL);
        ASSERT_ERROR(kube_parse_time(NULL, &t), EINVAL);
}

static void test_backoff_and_timeout(void) {
        /* 0.8 s doubling up to 30 s, jitter adding up to the same again. */
        ASSERT_EQ(kube_backoff_usec(0, 0), 800000);
        ASSERT_EQ(kube_backoff_usec(1, 0), 1600000);
        ASSERT_EQ(kube_backoff_usec(2, 0), 3200000);
        ASSERT_EQ(kube_backoff_usec(5, 0), 25600000);
        ASSERT_EQ(kube_backoff_usec(6, 0), 30000000);
        ASSERT_EQ(kube_backoff_usec(100, 0), 30000000);
        ASSERT_EQ(kube_backoff_usec(0, 799999), 1599999);
        ASSERT_EQ(kube_backoff_usec(100, UINT64_MAX), 30000000 + UINT64_MAX % 30000000);
        for (unsigned i = 0; i < 1000; i++) {
                uint64_t d = kube_backoff_usec(i % 10, kube_random_u64());
                ASSERT_TRUE(d >= 800000 && d < 60000000);
        }
        ASSERT_EQ(kube_watch_timeout_pick(0), 300);
        ASSERT_EQ(kube_watch_timeout_pick(300), 600);
        ASSERT_EQ(kube_watch_timeout_pick(301), 300);
        bool low = false, high = false;
        for (unsigned i = 0; i < 2000; i++) {
                unsigned t = kube_watch_timeout_pick(kube_random_u64());
                ASSERT_TRUE(t >= 300 && t <= 600);
                low = low || t < 400;
                high = high || t > 500;
        }
        ASSERT_TRUE(low && high);
}

static void test_helpers(void) {
        json_error_t e;
        _cleanup_(json_decrefp) json_t *o = json_loads(
                "{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\",\"resourceVersion\":\"42\",\"generation\":"
                "9223372036854775807,\"labels\":{\"a\":\"b\"},\"annotations\":{\"kubernetes.io/config.mirror\":\"x\"}}}",
                0, &e);
        ASSERT_TRUE(o);
        ASSERT_STREQ(kube_name(o), "p");
        ASSERT_STREQ(kube_namespace(o), "ns");
        ASSERT_STREQ(kube_resource_version(o), "42");
        ASSERT_STREQ(kube_label(o, "a"), "b");
        ASSERT_TRUE(kube_label(o, "c") == NULL);
        ASSERT_STREQ(kube_annotation(o, "kubernetes.io/config.mirror"), "x");
        ASSERT_TRUE(kube_generation(o) == INT64_MAX);
        ASSERT_TRUE(kube_name(NULL) == NULL && kube_generation(NULL) == 0);
        ASSERT_STREQ(kube_event_type_to_string(KUBE_BOOKMARK), "BOOKMARK");
        ASSERT_TRUE(kube_event_type_to_string((KubeEventType) 99) == NULL);
}

int main(void) {
        ASSERT_TRUE(mkdtemp(tmpdir));
        TEST_RUN(test_watch_parser_splits);
        TEST_RUN(test_watch_parser_big_integer);
        TEST_RUN(test_watch_parser_bad_lines);
        TEST_RUN(test_watch_parser_long_line);
        TEST_RUN(test_status);
        TEST_RUN(test_errno_mapping);
        TEST_RUN(test_kubeconfig_current_context);
        TEST_RUN(test_kubeconfig_explicit_context);
        TEST_RUN(test_kubeconfig_errors);
        TEST_RUN(test_kubeconfig_merge);
        TEST_RUN(test_in_cluster);
        TEST_RUN(test_base64);
        TEST_RUN(test_selectors);
        TEST_RUN(test_escape);
        TEST_RUN(test_time);
        TEST_RUN(test_backoff_and_timeout);
        TEST_RUN(test_helpers);
        _cleanup_free_ char *cmd = NULL;
        if (asprintf(&cmd, "rm -rf '%s'", tmpdir) > 0)
                (void) system(cmd);
        return 0;
}
