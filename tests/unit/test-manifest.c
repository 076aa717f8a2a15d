/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <jansson.h>

#include "manifest.h"
#include "tests.h"

#define DIGEST_A "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define DIGEST_B "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
#define DIGEST_C "fd61a03af4f77d870fc21e05e7e80678095c92d808cfb3b5c279ee04c74aca13"
#define ROOT_HASH "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* The canonical form of valid_json(): sorted keys, no whitespace. */
static const char canonical[] =
        "{\"arch\":\"x86_64\",\"cmdline\":\"console=ttyS0 quiet\",\"created\":\"2024-05-01T12:00:00Z\","
        "\"format\":1,\"key_id\":\"0123456789abcdef\",\"name\":\"hull-demo\","
        "\"payloads\":[{\"name\":\"rootfs\",\"offset\":0,\"sha256\":\"" DIGEST_A "\",\"size\":1048576},"
        "{\"name\":\"kernel\",\"offset\":1048576,\"sha256\":\"" DIGEST_B "\",\"size\":5000},"
        "{\"name\":\"initrd\",\"offset\":1056768,\"sha256\":\"" DIGEST_C "\",\"size\":1}],"
        "\"rootfs_type\":\"erofs\",\"verity\":{\"hash_offset\":1040384,\"root_hash\":\"" ROOT_HASH "\"},"
        "\"version\":\"1.2.3~rc1+b2\"}";

static json_t *payload(const char *name, json_int_t offset, json_int_t size, const char *digest) {
        json_t *p = json_pack("{s:s, s:I, s:I, s:s}", "name", name, "offset", offset, "size", size, "sha256", digest);
        ASSERT_TRUE(p);
        return p;
}

/* Deliberately not in canonical key order. */
static json_t *valid_json(void) {
        json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:I}, s:[o, o, o]}",
                              "version", "1.2.3~rc1+b2",
                              "name", "hull-demo",
                              "format", 1,
                              "arch", "x86_64",
                              "key_id", "0123456789abcdef",
                              "created", "2024-05-01T12:00:00Z",
                              "rootfs_type", "erofs",
                              "cmdline", "console=ttyS0 quiet",
                              "verity", "root_hash", ROOT_HASH, "hash_offset", (json_int_t) 1040384,
                              "payloads",
                              payload("rootfs", 0, 1048576, DIGEST_A),
                              payload("kernel", 1048576, 5000, DIGEST_B),
                              payload("initrd", 1056768, 1, DIGEST_C));
        ASSERT_TRUE(j);
        return j;
}

static int parse_str(const char *s) {
        _cleanup_(manifest_freep) Manifest *m = NULL;
        int r = manifest_parse(s, strlen(s), &m);
        ASSERT_TRUE(r < 0 ? m == NULL : m != NULL);
        return r;
}

/* Takes a reference to j. */
static int parse_json(json_t *j) {
        _cleanup_free_ char *s = json_dumps(j, JSON_INDENT(2));
        ASSERT_TRUE(s);
        json_decref(j);
        return parse_str(s);
}

static json_t *payload_at(json_t *j, size_t i) {
        return json_array_get(json_object_get(j, "payloads"), i);
}

static void test_valid(void) {
        _cleanup_(manifest_freep) Manifest *m = NULL, *m2 = NULL;
        _cleanup_free_ char *pretty = NULL, *out = NULL, *out2 = NULL;
        json_t *j = valid_json();

        pretty = json_dumps(j, JSON_INDENT(4));
        json_decref(j);
        ASSERT_OK(manifest_parse(pretty, strlen(pretty), &m));

        ASSERT_EQ(m->format, 1);
        ASSERT_STREQ(m->name, "hull-demo");
        ASSERT_STREQ(m->version, "1.2.3~rc1+b2");
        ASSERT_STREQ(m->arch, "x86_64");
        ASSERT_STREQ(m->key_id, "0123456789abcdef");
        ASSERT_STREQ(m->created, "2024-05-01T12:00:00Z");
        ASSERT_STREQ(m->rootfs_type, "erofs");
        ASSERT_STREQ(m->cmdline, "console=ttyS0 quiet");
        ASSERT_STREQ(m->verity_root_hash, ROOT_HASH);
        ASSERT_EQ(m->verity_hash_offset, 1040384);
        ASSERT_EQ(m->n_payloads, 3);
        ASSERT_STREQ(m->payloads[1].name, "kernel");
        ASSERT_EQ(m->payloads[1].offset, 1048576);
        ASSERT_EQ(m->payloads[1].size, 5000);

        const ManifestPayload *p = manifest_find_payload(m, "initrd");
        ASSERT_TRUE(p == m->payloads + 2);
        ASSERT_TRUE(manifest_find_payload(m, "nope") == NULL);
        ASSERT_EQ(p->sha256[0], 0xfd);
        ASSERT_EQ(p->sha256[31], 0x13);

        /* Canonical output, stable across a round trip. */
        ASSERT_OK(manifest_format(m, &out));
        ASSERT_STREQ(out, canonical);
        ASSERT_OK(manifest_parse(out, strlen(out), &m2));
        ASSERT_OK(manifest_format(m2, &out2));
        ASSERT_STREQ(out, out2);

        /* Optional fields may be absent. */
        j = valid_json();
        json_object_del(j, "cmdline");
        json_object_del(j, "verity");
        ASSERT_OK(parse_json(j));
        manifest_free(m2);
        m2 = NULL;
        ASSERT_OK(manifest_parse(canonical, sizeof(canonical) - 1, &m2));

        /* ext4, payloads listed out of offset order, gaps, leap day. */
        j = valid_json();
        json_object_set_new(j, "rootfs_type", json_string("ext4"));
        json_object_set_new(j, "created", json_string("2024-02-29T23:59:60Z"));
        json_array_clear(json_object_get(j, "payloads"));
        json_array_append_new(json_object_get(j, "payloads"), payload("kernel", 8 * 1048576, 1, DIGEST_B));
        json_array_append_new(json_object_get(j, "payloads"), payload("rootfs", 0, 1048577, DIGEST_A));
        ASSERT_OK(parse_json(j));
}

static void test_missing_and_types(void) {
        static const char *const required[] = {
                "format", "name", "version", "arch", "key_id", "created", "rootfs_type", "payloads",
        };
        static const char *const payload_required[] = { "name", "offset", "size", "sha256" };
        json_t *j;

        for (size_t i = 0; i < ELEMENTSOF(required); i++) {
                j = valid_json();
                json_object_del(j, required[i]);
                ASSERT_ERROR(parse_json(j), EBADMSG);

                /* Every field with the wrong JSON type. */
                j = valid_json();
                json_object_set_new(j, required[i], json_true());
                ASSERT_ERROR(parse_json(j), EBADMSG);
                j = valid_json();
                json_object_set_new(j, required[i], json_null());
                ASSERT_ERROR(parse_json(j), EBADMSG);
        }
        for (size_t i = 0; i < ELEMENTSOF(payload_required); i++) {
                j = valid_json();
                json_object_del(payload_at(j, 1), payload_required[i]);
                ASSERT_ERROR(parse_json(j), EBADMSG);
                j = valid_json();
                json_object_set_new(payload_at(j, 1), payload_required[i], json_array());
                ASSERT_ERROR(parse_json(j), EBADMSG);
        }

        /* Numbers as strings, strings as numbers, reals for integers. */
        j = valid_json();
        json_object_set_new(j, "format", json_string("1"));
        ASSERT_ERROR(parse_json(j), EBADMSG);
        j = valid_json();
        json_object_set_new(j, "format", json_real(1.0));
        ASSERT_ERROR(parse_json(j), EBADMSG);
        j = valid_json();
        json_object_set_new(j, "name", json_integer(5));
        ASSERT_ERROR(parse_json(j), EBADMSG);
        j = valid_json();
        json_object_set_new(payload_at(j, 0), "size", json_string("1048576"));
        ASSERT_ERROR(parse_json(j), EBADMSG);
        j = valid_json();
        json_object_set_new(payload_at(j, 0), "size", json_real(1048576.0));
        ASSERT_ERROR(parse_json(j), EBADMSG);
        j = valid_json();
        json_object_set_new(j, "cmdline", json_null());
        ASSERT_ERROR(parse_json(j), EBADMSG);
        j = valid_json();
        json_object_set_new(j, "verity", json_string(ROOT_HASH));
        ASSERT_ERROR(parse_json(j), EBADMSG);
        j = valid_json();
        json_object_del(json_object_get(j, "verity"), "hash_offset");
        ASSERT_ERROR(parse_json(j), EBADMSG);
        j = valid_json();
        json_object_set_new(j, "payloads", json_object());
        ASSERT_ERROR(parse_json(j), EBADMSG);
        j = valid_json();
        json_array_append_new(json_object_get(j, "payloads"), json_string("extra"));
        ASSERT_ERROR(parse_json(j), EBADMSG);
}

static void test_unknown_fields(void) {
        json_t *j = valid_json();
        json_object_set_new(j, "signature", json_string("trust me"));
        ASSERT_ERROR(parse_json(j), EBADMSG);

        j = valid_json();
        json_object_set_new(payload_at(j, 0), "compression", json_string("zstd"));
        ASSERT_ERROR(parse_json(j), EBADMSG);

        j = valid_json();
        json_object_set_new(json_object_get(j, "verity"), "salt", json_string("00"));
        ASSERT_ERROR(parse_json(j), EBADMSG);

        /* Field names are case-sensitive. */
        j = valid_json();
        json_object_set_new(j, "Name", json_string("x"));
        ASSERT_ERROR(parse_json(j), EBADMSG);
}

static void test_format_version(void) {
        json_t *j = valid_json();
        json_object_set_new(j, "format", json_integer(3));
        ASSERT_ERROR(parse_json(j), EPROTONOSUPPORT);

        /* Format 2 without components is format 2 all the same. */
        j = valid_json();
        json_object_set_new(j, "format", json_integer(2));
        ASSERT_OK(parse_json(j));

        /* A newer format may bring fields we do not know: still "unsupported". */
        j = valid_json();
        json_object_set_new(j, "format", json_integer(3));
        json_object_set_new(j, "signatures", json_array());
        ASSERT_ERROR(parse_json(j), EPROTONOSUPPORT);

        j = valid_json();
        json_object_set_new(j, "format", json_integer(0));
        ASSERT_ERROR(parse_json(j), EPROTONOSUPPORT);
        j = valid_json();
        json_object_set_new(j, "format", json_integer(-1));
        ASSERT_ERROR(parse_json(j), EPROTONOSUPPORT);
}

static void test_digests(void) {
        static const char *const bad[] = {
                "",
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0",   /* 63 */
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a080", /* 65 */
                "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",  /* upper */
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0g",  /* not hex */
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a 8",
        };
        json_t *j;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                j = valid_json();
                json_object_set_new(payload_at(j, 2), "sha256", json_string(bad[i]));
                ASSERT_ERROR(parse_json(j), EBADMSG);
                j = valid_json();
                json_object_set_new(json_object_get(j, "verity"), "root_hash", json_string(bad[i]));
                ASSERT_ERROR(parse_json(j), EBADMSG);
        }

        static const char *const bad_ids[] = {
                "0123456789abcde", "0123456789abcdef0", "0123456789ABCDEF", "0123456789abcdeg", "",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad_ids); i++) {
                j = valid_json();
                json_object_set_new(j, "key_id", json_string(bad_ids[i]));
                ASSERT_ERROR(parse_json(j), EBADMSG);
        }
}

static void test_strings(void) {
        static const struct {
                const char *field, *value;
        } bad[] = {
                { "name", "" },
                { "name", "../etc" },
                { "name", ".." },
                { "name", "-rf" },
                { "name", "hull demo" },
                { "name", "hull/demo" },
                { "name", "hülle" },
                { "version", "1.0;reboot" },
                { "version", "1.0\n" },
                { "version", "$(id)" },
                { "arch", "x86 64" },
                { "rootfs_type", "squashfs" },
                { "rootfs_type", "EROFS" },
                { "created", "2024-05-01 12:00:00Z" },
                { "created", "2024-05-01T12:00:00+02:00" },
                { "created", "2024-05-01T12:00:00.5Z" },
                { "created", "2024-13-01T12:00:00Z" },
                { "created", "2023-02-29T12:00:00Z" },
                { "created", "2024-04-31T12:00:00Z" },
                { "created", "2024-05-01T24:00:00Z" },
                { "created", "yesterday" },
                { "cmdline", "quiet\ninit=/bin/sh" },
                { "cmdline", "quiet\tsplash" },
        };
        json_t *j;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                j = valid_json();
                json_object_set_new(j, bad[i].field, json_string(bad[i].value));
                ASSERT_ERROR(parse_json(j), EBADMSG);
        }

        static const char *const bad_payload_names[] = { "", "../rootfs", "a b", ".hidden", "x/y" };
        for (size_t i = 0; i < ELEMENTSOF(bad_payload_names); i++) {
                j = valid_json();
                json_object_set_new(payload_at(j, 1), "name", json_string(bad_payload_names[i]));
                ASSERT_ERROR(parse_json(j), EBADMSG);
        }

        /* Overlong strings. */
        char longname[200];
        memset(longname, 'a', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        j = valid_json();
        json_object_set_new(j, "version", json_string(longname));
        ASSERT_ERROR(parse_json(j), EBADMSG);

        /* An embedded NUL is refused by the JSON parser itself. */
        ASSERT_ERROR(parse_str("{\"format\":1,\"name\":\"a\\u0000b\"}"), EBADMSG);
}

static void test_payload_layout(void) {
        json_t *j;

        /* Overlap: kernel starts inside rootfs. */
        j = valid_json();
        json_object_set_new(payload_at(j, 1), "offset", json_integer(1040384));
        ASSERT_ERROR(parse_json(j), EBADMSG);
        /* Same offset. */
        j = valid_json();
        json_object_set_new(payload_at(j, 2), "offset", json_integer(1048576));
        ASSERT_ERROR(parse_json(j), EBADMSG);
        /* Contained entirely. */
        j = valid_json();
        json_object_set_new(payload_at(j, 2), "offset", json_integer(4096));
        ASSERT_ERROR(parse_json(j), EBADMSG);

        /* Misaligned, negative, zero. */
        j = valid_json();
        json_object_set_new(payload_at(j, 1), "offset", json_integer(1048577));
        ASSERT_ERROR(parse_json(j), EBADMSG);
        j = valid_json();
        json_object_set_new(payload_at(j, 1), "offset", json_integer(-4096));
        ASSERT_ERROR(parse_json(j), EBADMSG);
        j = valid_json();
        json_object_set_new(payload_at(j, 1), "size", json_integer(-1));
        ASSERT_ERROR(parse_json(j), EBADMSG);
        j = valid_json();
        json_object_set_new(payload_at(j, 1), "size", json_integer(0));
        ASSERT_ERROR(parse_json(j), EBADMSG);

        /* Past the end of what off_t can address. */
        j = valid_json();
        json_object_set_new(payload_at(j, 2), "offset", json_integer(INT64_MAX - 4095));
        json_object_set_new(payload_at(j, 2), "size", json_integer(4096));
        ASSERT_ERROR(parse_json(j), EBADMSG);
        j = valid_json();
        json_object_set_new(payload_at(j, 2), "offset", json_integer(INT64_MAX - 4095));
        json_object_set_new(payload_at(j, 2), "size", json_integer(4095));
        ASSERT_OK(parse_json(j));

        /* Duplicate names. */
        j = valid_json();
        json_object_set_new(payload_at(j, 2), "name", json_string("kernel"));
        ASSERT_ERROR(parse_json(j), EBADMSG);

        /* No payloads at all, or too many. */
        j = valid_json();
        json_array_clear(json_object_get(j, "payloads"));
        ASSERT_ERROR(parse_json(j), EBADMSG);
        j = valid_json();
        json_object_del(j, "verity");
        json_array_clear(json_object_get(j, "payloads"));
        for (int i = 0; i <= MANIFEST_PAYLOADS_MAX; i++) {
                char name[16];
                (void) snprintf(name, sizeof(name), "p%d", i);
                json_array_append_new(json_object_get(j, "payloads"), payload(name, (json_int_t) i * 4096, 1, DIGEST_A));
        }
        ASSERT_ERROR(parse_json(j), EBADMSG);

        /* Verity: needs a rootfs payload, an aligned offset inside it. */
        j = valid_json();
        json_object_set_new(payload_at(j, 0), "name", json_string("root"));
        ASSERT_ERROR(parse_json(j), EBADMSG);
        j = valid_json();
        json_object_set_new(json_object_get(j, "verity"), "hash_offset", json_integer(1048576));
        ASSERT_ERROR(parse_json(j), EBADMSG);
        j = valid_json();
        json_object_set_new(json_object_get(j, "verity"), "hash_offset", json_integer(1000));
        ASSERT_ERROR(parse_json(j), EBADMSG);
        j = valid_json();
        json_object_set_new(json_object_get(j, "verity"), "hash_offset", json_integer(0));
        ASSERT_ERROR(parse_json(j), EBADMSG);
}

static void test_malformed_json(void) {
        static const char *const bad[] = {
                "",
                "null",
                "[]",
                "\"manifest\"",
                "{",
                "{\"format\":1",
                "{\"format\":1}}",
                "{\"format\":1} trailing",
                "{'format':1}",
                "{\"format\":1,}",
                /* Beyond int64: jansson refuses the number. */
                "{\"format\":1,\"payloads\":[{\"size\":99999999999999999999999}]}",
                "{\"format\":99999999999999999999999}",
                /* The same key twice. */
                "{\"format\":1,\"format\":1}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ASSERT_ERROR(parse_str(bad[i]), EBADMSG);

        /* Duplicate key elsewhere in an otherwise valid manifest. */
        _cleanup_free_ char *dup = NULL;
        ASSERT_TRUE(asprintf(&dup, "{\"name\":\"evil\",%s", canonical + 1) > 0);
        ASSERT_ERROR(parse_str(dup), EBADMSG);

        /* The size bound comes first, whatever the content. */
        _cleanup_(manifest_freep) Manifest *m = NULL;
        _cleanup_free_ char *big = malloc(MANIFEST_SIZE_MAX + 2);
        ASSERT_TRUE(big);
        memset(big, ' ', MANIFEST_SIZE_MAX + 1);
        memcpy(big, canonical, sizeof(canonical) - 1);
        big[MANIFEST_SIZE_MAX + 1] = '\0';
        ASSERT_ERROR(manifest_parse(big, MANIFEST_SIZE_MAX + 1, &m), E2BIG);
        /* Trailing whitespace just inside the bound is fine. */
        ASSERT_OK(manifest_parse(big, MANIFEST_SIZE_MAX, &m));

        /* Only 'len' bytes count: a valid prefix is not enough. */
        manifest_free(m);
        m = NULL;
        ASSERT_ERROR(manifest_parse(canonical, sizeof(canonical) - 2, &m), EBADMSG);
        ASSERT_TRUE(m == NULL);
}

static void test_build(void) {
        _cleanup_(manifest_freep) Manifest *m = NULL, *back = NULL;
        _cleanup_free_ char *s = NULL;
        uint8_t d[32];

        memset(d, 0xab, sizeof(d));
        ASSERT_OK(manifest_new(&m));
        ASSERT_EQ(m->format, MANIFEST_FORMAT_MIN);
        m->name = strdup("hull-demo");
        m->version = strdup("2");
        m->arch = strdup("aarch64");
        m->created = strdup("2030-01-01T00:00:00Z");
        m->rootfs_type = strdup("ext4");
        ASSERT_TRUE(m->name && m->version && m->arch && m->created && m->rootfs_type);

        /* Not yet signable: no key id, no payloads. */
        ASSERT_ERROR(manifest_format(m, &s), EINVAL);
        m->key_id = strdup("fedcba9876543210");
        ASSERT_ERROR(manifest_format(m, &s), EINVAL);

        ASSERT_OK(manifest_add_payload(m, "rootfs", 8192, d));
        ASSERT_ERROR(manifest_add_payload(m, "rootfs", 1, d), EEXIST);
        ASSERT_ERROR(manifest_add_payload(m, "../x", 1, d), EINVAL);
        ASSERT_ERROR(manifest_add_payload(m, "empty", 0, d), EINVAL);
        ASSERT_ERROR(manifest_add_payload(m, "huge", UINT64_MAX, d), EINVAL);
        ASSERT_OK(manifest_add_payload(m, "kernel", 1, d));
        ASSERT_EQ(m->n_payloads, 2);

        /* Both at offset 0 until bundle_create() lays them out. */
        ASSERT_ERROR(manifest_format(m, &s), EINVAL);
        m->payloads[1].offset = 8192;
        ASSERT_OK(manifest_format(m, &s));
        ASSERT_OK(manifest_parse(s, strlen(s), &back));
        ASSERT_EQ(back->n_payloads, 2);
        ASSERT_TRUE(memcmp(back->payloads[0].sha256, d, 32) == 0);
        ASSERT_TRUE(back->cmdline == NULL && back->verity_root_hash == NULL);
        ASSERT_TRUE(strstr(s, "cmdline") == NULL && strstr(s, "verity") == NULL);

        /* Anything parse would refuse, format refuses too. */
        free(s);
        s = NULL;
        m->verity_hash_offset = 4096; /* without a root hash */
        ASSERT_ERROR(manifest_format(m, &s), EINVAL);
        m->verity_hash_offset = 0;
        free(m->version);
        m->version = strdup("1 0");
        ASSERT_ERROR(manifest_format(m, &s), EINVAL);
        ASSERT_TRUE(s == NULL);

        /* Payload cap. */
        manifest_free(m);
        ASSERT_OK(manifest_new(&m));
        for (int i = 0; i < MANIFEST_PAYLOADS_MAX; i++) {
                char name[16];
                (void) snprintf(name, sizeof(name), "p%d", i);
                ASSERT_OK(manifest_add_payload(m, name, 1, d));
        }
        ASSERT_ERROR(manifest_add_payload(m, "one-more", 1, d), E2BIG);
}

static json_t *components_json(void) {
        json_t *c = json_pack("{s:s, s:s, s:s, s:s}", "kernel", "6.1.0-28-amd64", "containerd", "1.6.20", "runc",
                              "1.1.5", "kubelet", "v1.32.0");
        ASSERT_TRUE(c);
        return c;
}

static void test_components(void) {
        _cleanup_(manifest_freep) Manifest *m = NULL, *back = NULL;
        _cleanup_free_ char *s = NULL, *s2 = NULL;
        json_t *j;

        /* Format 2 with components: parsed, and written back the same. */
        j = valid_json();
        json_object_set_new(j, "format", json_integer(2));
        json_object_set_new(j, "components", components_json());
        s = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        ASSERT_OK(manifest_parse(s, strlen(s), &m));
        ASSERT_EQ(m->format, 2);
        ASSERT_STREQ(m->components.version[COMPONENT_KUBELET], "v1.32.0");
        ASSERT_STREQ(m->components.version[COMPONENT_KERNEL], "6.1.0-28-amd64");
        free(s);
        s = NULL;
        ASSERT_OK(manifest_format(m, &s));
        ASSERT_TRUE(strstr(s, "\"components\":{\"containerd\":\"1.6.20\",\"kernel\":\"6.1.0-28-amd64\","
                              "\"kubelet\":\"v1.32.0\",\"runc\":\"1.1.5\"}"));
        ASSERT_TRUE(strstr(s, "\"format\":2"));
        ASSERT_OK(manifest_parse(s, strlen(s), &back));
        ASSERT_OK(manifest_format(back, &s2));
        ASSERT_STREQ(s, s2);

        /* Only some components: the others have no key. */
        j = valid_json();
        json_object_set_new(j, "format", json_integer(2));
        json_object_set_new(j, "components", json_pack("{s:s}", "kernel", "6.1.0-28-amd64"));
        ASSERT_OK(parse_json(j));

        /* Components need format 2: a format-1 reader would refuse them. */
        j = valid_json();
        json_object_set_new(j, "components", components_json());
        ASSERT_ERROR(parse_json(j), EBADMSG);

        /* Strict object. */
        static const char *const bad[] = {
                "[]", "{}", "\"v1.32.0\"", "null", "{\"crio\":\"1.0\"}", "{\"kubelet\":\"1.32.0\"}",
                "{\"kubelet\":\"v1.32\"}", "{\"runc\":1}", "{\"runc\":\"\"}", "{\"runc\":\"a b\"}",
                "{\"runc\":\"-1\"}", "{\"runc\":{}}",
                "{\"runc\":\"1234567890123456789012345678901234567890123456789012345678901234x\"}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                j = valid_json();
                json_object_set_new(j, "format", json_integer(2));
                json_t *c = json_loads(bad[i], JSON_DECODE_ANY, NULL);
                ASSERT_TRUE(c);
                json_object_set_new(j, "components", c);
                if (parse_json(j) != -EBADMSG) {
                        fprintf(stderr, "components %s accepted\n", bad[i]);
                        abort();
                }
        }

        /* Building: setting components raises the format; none keeps 1. */
        free(s);
        s = NULL;
        manifest_free(m);
        ASSERT_OK(manifest_parse(canonical, strlen(canonical), &m));
        ASSERT_EQ(m->format, 1);
        Components c = {};
        ASSERT_OK(manifest_set_components(m, &c));
        ASSERT_EQ(m->format, 1);
        ASSERT_OK(manifest_format(m, &s));
        ASSERT_STREQ(s, canonical);
        free(s);
        s = NULL;
        ASSERT_OK(components_set(&c, COMPONENT_KUBELET, "v1.33.0"));
        ASSERT_OK(manifest_set_components(m, &c));
        components_done(&c);
        ASSERT_EQ(m->format, 2);
        ASSERT_OK(manifest_format(m, &s));
        ASSERT_TRUE(strstr(s, "\"components\":{\"kubelet\":\"v1.33.0\"}"));
        /* A value set behind the API's back is refused when formatting. */
        free(m->components.version[COMPONENT_KUBELET]);
        m->components.version[COMPONENT_KUBELET] = strdup("1.33");
        free(s);
        s = NULL;
        ASSERT_ERROR(manifest_format(m, &s), EINVAL);
        /* ... and components in format 1. */
        free(m->components.version[COMPONENT_KUBELET]);
        m->components.version[COMPONENT_KUBELET] = strdup("v1.33.0");
        m->format = 1;
        ASSERT_ERROR(manifest_format(m, &s), EINVAL);
        ASSERT_TRUE(s == NULL);
}

int main(void) {
        TEST_RUN(test_valid);
        TEST_RUN(test_missing_and_types);
        TEST_RUN(test_unknown_fields);
        TEST_RUN(test_format_version);
        TEST_RUN(test_digests);
        TEST_RUN(test_strings);
        TEST_RUN(test_payload_layout);
        TEST_RUN(test_malformed_json);
        TEST_RUN(test_build);
        TEST_RUN(test_components);
        return 0;
}
