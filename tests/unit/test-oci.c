/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* oci.h's parsers (references, docker config.json, WWW-Authenticate) and
 * oci-bundle.h's layout (the OCI manifest of a bundle, its checks, the
 * unverified head parser). The HTTP side is tests/integration/test-oci.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"
#include "oci-bundle.h"
#include "oci.h"
#include "strutil.h"
#include "tests.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define D "sha256:" HEX64

static void ref_ok(const char *s, const char *reg, const char *repo, const char *tag, const char *digest) {
        _cleanup_free_ char *err = NULL, *f = NULL;
        OciRef r = {};
        int k = oci_ref_parse(s, &r, &err);
        if (k < 0) {
                fprintf(stderr, "%s: refused: %s\n", s, err ?: "(null)");
                abort();
        }
        ASSERT_STREQ(r.registry, reg);
        ASSERT_STREQ(r.repository, repo);
        ASSERT_TRUE(tag ? r.tag && streq(r.tag, tag) : !r.tag);
        ASSERT_TRUE(digest ? r.digest && streq(r.digest, digest) : !r.digest);
        ASSERT_EQ(oci_ref_is_pinned(&r), digest != NULL);
        ASSERT_OK(oci_ref_format(&r, false, &f));
        ASSERT_STREQ(f, s);
        oci_ref_done(&r);
        ASSERT_TRUE(r.registry == NULL);
}

static void ref_bad(const char *s, const char *words) {
        _cleanup_free_ char *err = NULL;
        OciRef r = {};
        int k = oci_ref_parse(s, &r, &err);
        if (k != -EINVAL || !err || !strstr(err, words) || r.registry) {
                fprintf(stderr, "%s: got %d \"%s\", wanted -EINVAL with \"%s\"\n", s, k, err ?: "(null)", words);
                abort();
        }
}

static void test_references(void) {
        ref_ok("registry.example.com/hull/os:2.0.0", "registry.example.com", "hull/os", "2.0.0", NULL);
        ref_ok("registry.example.com:5000/hull/os@" D, "registry.example.com:5000", "hull/os", NULL, D);
        ref_ok("registry.example.com:5000/hull/os:v2@" D, "registry.example.com:5000", "hull/os", "v2", D);
        ref_ok("localhost/os", "localhost", "os", NULL, NULL);
        ref_ok("localhost:5000/a/b/c", "localhost:5000", "a/b/c", NULL, NULL);
        ref_ok("127.0.0.1:5000/a", "127.0.0.1:5000", "a", NULL, NULL);
        ref_ok("[::1]:5000/a:t", "[::1]:5000", "a", "t", NULL);
        ref_ok("Reg-1.Example.COM/a.b/c_d/e__f/g-h/i---j:_T.a-g", "Reg-1.Example.COM", "a.b/c_d/e__f/g-h/i---j",
               "_T.a-g", NULL);

        /* Tags: 128 characters, not 129. */
        _cleanup_free_ char *t128 = NULL, *t129 = NULL;
        char tag[130];
        memset(tag, 'x', 129);
        tag[128] = '\0';
        ASSERT_TRUE(asprintf(&t128, "r.io/a:%s", tag) > 0);
        ref_ok(t128, "r.io", "a", tag, NULL);
        tag[128] = 'x';
        tag[129] = '\0';
        ASSERT_TRUE(asprintf(&t129, "r.io/a:%s", tag) > 0);
        ref_bad(t129, "the tag must be");

        ref_bad("hull/os:1", "does not start with a registry host");
        ref_bad("os", "has no registry host");
        ref_bad("docker.io", "has no registry host");
        ref_bad("", "has no registry host");
        ref_bad("/a", "does not start with a registry host");
        ref_bad("-r.io/a", "does not start with a registry host");
        ref_bad("r-.io/a", "does not start with a registry host");
        ref_bad("r..io/a", "does not start with a registry host");
        ref_bad("r.io:0/a", "does not start with a registry host");
        ref_bad("r.io:65536/a", "does not start with a registry host");
        ref_bad("r.io:/a", "does not start with a registry host");
        ref_bad("[zz]:5/a", "does not start with a registry host");
        ref_bad("user@r.io/a@" D, "the digest must be");
        ref_bad("r.io/Hull", "the repository must be lowercase");
        ref_bad("r.io/", "the repository must be");
        ref_bad("r.io/a/", "the repository must be");
        ref_bad("r.io/a//b", "the repository must be");
        ref_bad("r.io/a..b", "the repository must be");
        ref_bad("r.io/a___b", "the repository must be");
        ref_bad("r.io/-a", "the repository must be");
        ref_bad("r.io/a-", "the repository must be");
        ref_bad("r.io/a b", "the repository must be");
        ref_bad("r.io/a:", "the tag must be");
        ref_bad("r.io/a:.x", "the tag must be");
        ref_bad("r.io/a:-x", "the tag must be");
        ref_bad("r.io/a:x/y", "the tag must be");
        ref_bad("r.io/a@sha256:" HEX64 "0", "the digest must be");
        ref_bad("r.io/a@sha256:0123", "the digest must be");
        ref_bad("r.io/a@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", "the digest must be");
        ref_bad("r.io/a@sha512:" HEX64 HEX64, "the digest must be");
        ref_bad("r.io/a@", "the digest must be");

        /* oci:// */
        OciRef r = {};
        _cleanup_free_ char *err = NULL, *pinned = NULL;
        ASSERT_TRUE(oci_url_is_oci("oci://x") && oci_url_is_oci("OCI://x") && !oci_url_is_oci("https://x") &&
                    !oci_url_is_oci(NULL));
        ASSERT_OK(oci_url_parse("oci://r.io/hull/os:2@" D, &r, NULL));
        ASSERT_OK(oci_ref_format(&r, true, &pinned));
        ASSERT_STREQ(pinned, "r.io/hull/os@" D);
        oci_ref_done(&r);
        ASSERT_ERROR(oci_url_parse("r.io/hull/os", &r, &err), EINVAL);
        ASSERT_TRUE(strstr(err, "is not an oci:// reference"));
        ASSERT_OK(oci_ref_parse("r.io/a:1", &r, NULL));
        ASSERT_ERROR(oci_ref_format(&r, true, &pinned), EINVAL);
        oci_ref_done(&r);

        ASSERT_TRUE(oci_digest_is_valid(D));
        ASSERT_TRUE(!oci_digest_is_valid("sha256:" HEX64 "0") && !oci_digest_is_valid(HEX64) && !oci_digest_is_valid(NULL));
        char d[OCI_DIGEST_SIZE];
        oci_digest_data("{}", 2, d);
        ASSERT_STREQ(d, OCI_EMPTY_DIGEST);
}

static int auth(const char *json, const char *registry, char **user, char **pass, char **err) {
        *user = *pass = NULL;
        return oci_auth_parse(json, strlen(json), registry, user, pass, err);
}

static void auth_ok(const char *json, const char *registry, const char *u, const char *p) {
        _cleanup_free_ char *user = NULL, *pass = NULL, *err = NULL;
        int r = auth(json, registry, &user, &pass, &err);
        if (r != 1) {
                fprintf(stderr, "%s for %s: %d %s\n", json, registry, r, err ?: "(null)");
                abort();
        }
        ASSERT_STREQ(user, u);
        ASSERT_STREQ(pass, p);
}

static void auth_bad(const char *json, const char *registry, int e, const char *words) {
        _cleanup_free_ char *user = NULL, *pass = NULL, *err = NULL;
        int r = auth(json, registry, &user, &pass, &err);
        if (r != -e || !err || !strstr(err, words) || user || pass) {
                fprintf(stderr, "%s for %s: got %d \"%s\", wanted %d \"%s\"\n", json, registry, r, err ?: "(null)", -e,
                        words);
                abort();
        }
}

static void test_auth(void) {
        _cleanup_free_ char *user = NULL, *pass = NULL;

        /* "hull:s3:cret" (the password may hold ':'). */
        auth_ok("{\"auths\":{\"r.io:5000\":{\"auth\":\"aHVsbDpzMzpjcmV0\"}}}", "r.io:5000", "hull", "s3:cret");
        auth_ok("{\"auths\":{\"https://r.io:5000/v1/\":{\"auth\":\"aHVsbDpzMzpjcmV0\"}}}", "r.io:5000", "hull", "s3:cret");
        auth_ok("{\"auths\":{\"R.IO\":{\"username\":\"u\",\"password\":\"p\"}}}", "r.io", "u", "p");
        /* "a:" with padding, and an exact key winning over a URL one. */
        auth_ok("{\"auths\":{\"http://r.io/x\":{\"auth\":\"Yjpj\"},\"r.io\":{\"auth\":\"YTo=\"}}}", "r.io", "a", "");
        /* Inline credentials win over a store for this registry. */
        auth_ok("{\"credsStore\":\"desktop\",\"auths\":{\"r.io\":{\"auth\":\"YTpi\"}}}", "r.io", "a", "b");

        ASSERT_EQ(auth("{\"auths\":{\"other.io\":{\"auth\":\"YTpi\"}}}", "r.io", &user, &pass, NULL), 0);
        ASSERT_EQ(auth("{}", "r.io", &user, &pass, NULL), 0);
        ASSERT_EQ(auth("{\"auths\":{\"r.io:5000\":{\"auth\":\"YTpi\"}}}", "r.io", &user, &pass, NULL), 0);
        ASSERT_EQ(auth("{\"auths\":{\"r.io\":{}}}", "r.io", &user, &pass, NULL), 0);
        ASSERT_TRUE(!user && !pass);

        auth_bad("{\"credHelpers\":{\"r.io\":\"ecr-login\"}}", "r.io", EOPNOTSUPP, "credential helpers are not supported");
        auth_bad("{\"auths\":{\"r.io\":{}},\"credsStore\":\"pass\"}", "r.io", EOPNOTSUPP,
                 "credential helpers are not supported");
        auth_bad("{\"auths\":{\"r.io\":{\"identitytoken\":\"x\"}}}", "r.io", EOPNOTSUPP, "identity token");
        auth_bad("{\"auths\":{\"r.io\":{\"auth\":\"!!!!\"}}}", "r.io", EBADMSG, "is not base64 of USER:PASSWORD");
        auth_bad("{\"auths\":{\"r.io\":{\"auth\":\"YWJj\"}}}", "r.io", EBADMSG, "is not base64 of USER:PASSWORD");
        auth_bad("{\"auths\":{\"r.io\":{\"auth\":\"OmI=\"}}}", "r.io", EBADMSG, "is not base64 of USER:PASSWORD");
        auth_bad("{\"auths\":{\"r.io\":{\"auth\":\"YTpi=\"}}}", "r.io", EBADMSG, "is not base64");
        auth_bad("{\"auths\":{\"r.io\":{\"auth\":7}}}", "r.io", EBADMSG, "must be strings");
        auth_bad("{\"auths\":{\"r.io\":\"x\"}}", "r.io", EBADMSG, "is not an object");
        auth_bad("{\"auths\":[]}", "r.io", EBADMSG, "\"auths\" in the registry credentials file is not an object");
        auth_bad("{\"auths\":{\"r.io\":{\"username\":\"a\\nb\",\"password\":\"p\"}}}", "r.io", EBADMSG,
                 "control characters");
        auth_bad("[]", "r.io", EBADMSG, "not a JSON object");
        auth_bad("{\"auths\":{}, \"auths\":{}}", "r.io", EBADMSG, "not a JSON object");
        auth_bad("", "r.io", EBADMSG, "the registry credentials file is empty");

        ASSERT_ERROR(oci_auth_load("/nonexistent/config.json", "r.io", &user, &pass, NULL), ENOENT);
}

static void challenge_ok(const char *h, OciAuthScheme scheme, const char *realm, const char *service, const char *scope) {
        OciChallenge c = {};
        int r = oci_challenge_parse(h, &c);
        if (r < 0) {
                fprintf(stderr, "%s: %d\n", h, r);
                abort();
        }
        ASSERT_EQ(c.scheme, scheme);
        ASSERT_TRUE(realm ? c.realm && streq(c.realm, realm) : !c.realm);
        ASSERT_TRUE(service ? c.service && streq(c.service, service) : !c.service);
        ASSERT_TRUE(scope ? c.scope && streq(c.scope, scope) : !c.scope);
        oci_challenge_done(&c);
}

static void challenge_bad(const char *h, int e) {
        OciChallenge c = {};
        int r = oci_challenge_parse(h, &c);
        if (r != -e || c.realm) {
                fprintf(stderr, "%s: got %d, wanted %d\n", h, r, -e);
                abort();
        }
}

static void test_challenge(void) {
        challenge_ok("Bearer realm=\"https://auth.example.com/token\",service=\"registry.example.com\","
                     "scope=\"repository:hull/os:pull,push\"",
                     OCI_AUTH_BEARER, "https://auth.example.com/token", "registry.example.com",
                     "repository:hull/os:pull,push");
        challenge_ok("bearer  Realm = \"https://a/t\" ,  SERVICE=reg", OCI_AUTH_BEARER, "https://a/t", "reg", NULL);
        challenge_ok("Basic realm=\"hull-test\"", OCI_AUTH_BASIC, "hull-test", NULL, NULL);
        challenge_ok("Basic", OCI_AUTH_BASIC, NULL, NULL, NULL);
        challenge_ok("Basic realm=\"a \\\"quoted\\\" \\\\ realm\", charset=\"UTF-8\"", OCI_AUTH_BASIC,
                     "a \"quoted\" \\ realm", NULL, NULL);
        challenge_ok("Bearer realm=\"https://a/t\",error=\"invalid_token\"", OCI_AUTH_BEARER, "https://a/t", NULL, NULL);
        /* Only the first of several challenges is read. */
        challenge_ok("Bearer realm=\"https://a/t\", Basic realm=\"x\"", OCI_AUTH_BEARER, "https://a/t", NULL, NULL);
        challenge_ok("Basic realm=\"x\", Bearer", OCI_AUTH_BASIC, "x", NULL, NULL);
        challenge_ok("Bearer realm=\"\\x\"", OCI_AUTH_BEARER, "x", NULL, NULL);

        challenge_bad("", EBADMSG);
        challenge_bad("   ", EBADMSG);
        challenge_bad("Bearer", EBADMSG);                           /* no realm */
        challenge_bad("Bearer service=\"x\"", EBADMSG);
        challenge_bad("Bearer realm=\"\"", EBADMSG);
        challenge_bad("Bearer realm=\"https://a/t", EBADMSG);        /* unterminated */
        challenge_bad("Bearer realm=\"https://a/t\\", EBADMSG);
        challenge_bad("Bearer realm=\"a\",realm=\"b\"", EBADMSG);    /* repeated */
        challenge_bad("Bearer realm=\"a\",", EBADMSG);               /* trailing comma */
        challenge_bad("Bearer realm=\"a\" service=\"b\"", EBADMSG);  /* no comma */
        challenge_bad("Bearer realm=", EBADMSG);
        challenge_bad("Bearer realm", EBADMSG);
        challenge_bad("Bearer =x", EBADMSG);
        challenge_bad("Bearer realm=\"a\x01\"", EBADMSG);
        challenge_bad("Bearer realm=\"a\xc3\xa9\"", EBADMSG);
        challenge_bad("Bearer realm=\"a\",,service=x", EBADMSG);
        challenge_bad("Bearer,realm=\"a\"", EBADMSG);
        challenge_bad("Basic dXNlcjpwYXNz", EBADMSG);               /* token68 */
        challenge_bad("Negotiate", EOPNOTSUPP);
        challenge_bad("Digest realm=\"x\", nonce=\"y\"", EOPNOTSUPP);
        char big[5000];
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        memcpy(big, "Basic realm=\"", 13);
        challenge_bad(big, EBADMSG);
}

static Manifest *sample_manifest(void) {
        Manifest *m = NULL;
        uint8_t sha[32];

        ASSERT_OK(manifest_new(&m));
        m->name = strdup("hull-test");
        m->version = strdup("2.0.0");
        m->arch = strdup("x86_64");
        m->key_id = strdup("0123456789abcdef");
        m->created = strdup("2026-01-02T03:04:05Z");
        m->rootfs_type = strdup("erofs");
        memset(sha, 0x11, 32);
        ASSERT_OK(manifest_add_payload(m, "rootfs", 10000, sha));
        memset(sha, 0x22, 32);
        ASSERT_OK(manifest_add_payload(m, "kernel", 5000, sha));
        m->payloads[1].offset = 12288;
        return m;
}

static void test_layout(void) {
        _cleanup_(manifest_freep) Manifest *m = sample_manifest();
        _cleanup_free_ char *json = NULL, *err = NULL, *mj = NULL;
        char head_digest[OCI_DIGEST_SIZE];
        uint64_t head_size;

        ASSERT_OK(oci_bundle_manifest_make(m, D, 300, &json));
        ASSERT_TRUE(strstr(json, "\"artifactType\":\"application/vnd.hull.bundle.v1\""));
        ASSERT_TRUE(strstr(json, "\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\",\"digest\":\"" OCI_EMPTY_DIGEST
                                 "\",\"size\":2}"));
        ASSERT_TRUE(strstr(json, "{\"mediaType\":\"application/vnd.hull.bundle.head.v1\",\"digest\":\"" D "\",\"size\":300}"));
        ASSERT_TRUE(strstr(json, "\"digest\":\"sha256:1111111111111111111111111111111111111111111111111111111111111111\","
                                 "\"size\":10000,\"annotations\":{\"dev.hull.payload.name\":\"rootfs\"}"));
        ASSERT_TRUE(strstr(json, "\"org.opencontainers.image.version\":\"2.0.0\""));
        ASSERT_TRUE(strstr(json, "\"dev.hull.arch\":\"x86_64\""));
        ASSERT_TRUE(strstr(json, "\"org.opencontainers.image.created\":\"2026-01-02T03:04:05Z\""));
        ASSERT_OK(oci_bundle_manifest_check(json, strlen(json), head_digest, &head_size, NULL));
        ASSERT_STREQ(head_digest, D);
        ASSERT_EQ(head_size, 300);
        ASSERT_OK(oci_bundle_layers_match(json, strlen(json), m, NULL));

        /* The layers must be exactly the signed payloads. */
        m->payloads[1].size = 5001;
        ASSERT_ERROR(oci_bundle_layers_match(json, strlen(json), m, &err), EBADMSG);
        ASSERT_STREQ(err, "the OCI manifest's layer for payload kernel has size 5000, the signed manifest says 5001");
        m->payloads[1].size = 5000;
        m->payloads[1].sha256[0] = 0x23;
        ASSERT_ERROR(oci_bundle_layers_match(json, strlen(json), m, &err), EBADMSG);
        ASSERT_TRUE(strstr(err, "layer for payload kernel has digest sha256:2222"));
        m->payloads[1].sha256[0] = 0x22;
        free(m->payloads[1].name);
        m->payloads[1].name = strdup("initrd");
        ASSERT_ERROR(oci_bundle_layers_match(json, strlen(json), m, &err), EBADMSG);
        ASSERT_STREQ(err, "the OCI manifest's layer 2 is payload \"kernel\", the signed manifest has initrd there");
        m->n_payloads = 1;
        ASSERT_ERROR(oci_bundle_layers_match(json, strlen(json), m, &err), EBADMSG);
        ASSERT_STREQ(err, "the OCI manifest has 2 payload layers, the signed manifest 1 payloads");
        m->n_payloads = 2;

        /* Shapes. */
        static const struct {
                const char *from, *to;
                int e;
                const char *words;
        } bad[] = {
                { "application/vnd.hull.bundle.v1", "application/vnd.example.v1", EMEDIUMTYPE, "this is not a Hull bundle" },
                { "\"schemaVersion\":2", "\"schemaVersion\":1", EBADMSG, "schemaVersion is not 2" },
                { "\"size\":2}", "\"size\":3}", EBADMSG, "config is not the empty descriptor" },
                { "bundle.head.v1", "bundle.payload.v1", EBADMSG, "first layer is not of type" },
                { "\"size\":300", "\"size\":3", EBADMSG, "head layer needs a sha256 digest" },
                { "\"size\":10000", "\"size\":0", EBADMSG, "layer 1 is not a payload" },
                { "\"dev.hull.payload.name\":\"rootfs\"", "\"x\":\"rootfs\"", EBADMSG, "layer 1 is not a payload" },
                { "image.manifest.v1+json", "image.index.v1+json", EMEDIUMTYPE, "mediaType is" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *t = strdup(json), *e = NULL;
                char *at = strstr(t, bad[i].from);
                ASSERT_TRUE(at);
                _cleanup_free_ char *n = NULL;
                ASSERT_TRUE(asprintf(&n, "%.*s%s%s", (int) (at - t), t, bad[i].to, at + strlen(bad[i].from)) > 0);
                int r = oci_bundle_manifest_check(n, strlen(n), head_digest, &head_size, &e);
                if (r != -bad[i].e || !e || !strstr(e, bad[i].words)) {
                        fprintf(stderr, "case %zu: got %d \"%s\"\n", i, r, e ?: "(null)");
                        abort();
                }
        }
        ASSERT_ERROR(oci_bundle_manifest_check("[]", 2, head_digest, &head_size, NULL), EBADMSG);

        /* The unverified head parser. */
        ASSERT_OK(manifest_format(m, &mj));
        size_t ml = strlen(mj), hl = 24 + ml + 64;
        _cleanup_free_ uint8_t *head = calloc(1, hl + 10);
        Manifest *parsed = NULL;
        size_t got;
        memcpy(head, "HULLBNDL", 8);
        head[11] = 1;
        head[12] = (uint8_t) (ml >> 24);
        head[13] = (uint8_t) (ml >> 16);
        head[14] = (uint8_t) (ml >> 8);
        head[15] = (uint8_t) ml;
        head[19] = 64;
        memcpy(head + 24, mj, ml);
        ASSERT_OK(oci_bundle_head_parse(head, hl + 10, &got, &parsed, NULL));
        ASSERT_EQ(got, hl);
        ASSERT_STREQ(parsed->version, "2.0.0");
        manifest_free(parsed);
        ASSERT_ERROR(oci_bundle_head_parse(head, hl - 1, &got, &parsed, NULL), ENODATA);
        ASSERT_ERROR(oci_bundle_head_parse(head, 20, &got, &parsed, NULL), ENODATA);
        head[11] = 2;
        ASSERT_ERROR(oci_bundle_head_parse(head, hl, &got, &parsed, NULL), EPROTONOSUPPORT);
        head[11] = 1;
        head[19] = 65;
        ASSERT_ERROR(oci_bundle_head_parse(head, hl, &got, &parsed, NULL), EBADMSG);
        head[19] = 64;
        head[0] = 'X';
        ASSERT_ERROR(oci_bundle_head_parse(head, hl, &got, &parsed, &err), EBADMSG);
        ASSERT_STREQ(err, "not a Hull bundle (no HULLBNDL magic)");
}

int main(void) {
        TEST_RUN(test_references);
        TEST_RUN(test_auth);
        TEST_RUN(test_challenge);
        TEST_RUN(test_layout);
        return 0;
}
