/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <jansson.h>

#include "tests.h"
#include "yaml-json.h"

/* Convert and return the compact JSON text with sorted keys, or abort. */
static char *convert(const char *yaml) {
        json_t *j = NULL;
        char *error = NULL;
        int r = yaml_to_json(yaml, strlen(yaml), &j, &error);
        if (r < 0) {
                fprintf(stderr, "conversion of <<%s>> failed: %s (%s)\n", yaml, strerror(-r), error ?: "-");
                abort();
        }
        char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        ASSERT_TRUE(s);
        json_decref(j);
        return s;
}

static void check(const char *yaml, const char *expected) {
        char *s = convert(yaml);
        ASSERT_STREQ(s, expected);
        free(s);
}

/* The conversion must fail with -EBADMSG and exactly this message. */
static void check_error_len(const char *yaml, size_t len, const char *expected) {
        json_t *j = NULL;
        char *error = NULL;

        ASSERT_ERROR(yaml_to_json(yaml, len, &j, &error), EBADMSG);
        ASSERT_TRUE(j == NULL);
        ASSERT_STREQ(error, expected);
        free(error);
        /* ret_error is optional. */
        ASSERT_ERROR(yaml_to_json(yaml, len, &j, NULL), EBADMSG);
}

static void check_error(const char *yaml, const char *expected) {
        check_error_len(yaml, strlen(yaml), expected);
}

static void test_scalar_types(void) {
        check("int: 42\n"
              "neg: -7\n"
              "zero: 0\n"
              "t: true\n"
              "f: false\n"
              "n: null\n"
              "tilde: ~\n"
              "empty:\n"
              "quoted_int: \"42\"\n"
              "single_bool: 'true'\n"
              "quoted_null: \"null\"\n"
              "float: 1.5\n"
              "plus: +1\n"
              "hex: 0x10\n"
              "yes: yes\n"
              "True: True\n"
              "word: hello world\n"
              "block: |\n"
              "  line one\n"
              "  line two\n"
              "folded: >\n"
              "  folded\n"
              "  text\n",
              "{\"True\":\"True\",\"block\":\"line one\\nline two\\n\",\"empty\":null,\"f\":false,"
              "\"float\":\"1.5\",\"folded\":\"folded text\\n\",\"hex\":\"0x10\",\"int\":42,\"n\":null,"
              "\"neg\":-7,\"plus\":\"+1\",\"quoted_int\":\"42\",\"quoted_null\":\"null\","
              "\"single_bool\":\"true\",\"t\":true,\"tilde\":null,\"word\":\"hello world\",\"yes\":\"yes\","
              "\"zero\":0}");
}

static void test_integers(void) {
        check("[9223372036854775807, -9223372036854775808, -0]", "[9223372036854775807,-9223372036854775808,0]");
        check_error("a: 9223372036854775808\n", "1:4: number '9223372036854775808' is out of range");
        check_error("a: -9223372036854775809\n", "1:4: number '-9223372036854775809' is out of range");
        /* 0644 would be 420 to a YAML 1.1 reader and 644 to a 1.2 one. */
        check_error("files:\n  - mode: 0644\n",
                    "2:11: number '0644' has a leading zero; write it without, or quote it to mean a string");
        check_error("a: -01\n", "1:4: number '-01' has a leading zero; write it without, or quote it to mean a string");
        check("mode: \"0644\"\n", "{\"mode\":\"0644\"}");
}

static void test_nesting(void) {
        check("generation: 4\n"
              "kubelet:\n"
              "  labels:\n"
              "    role: worker\n"
              "  taints:\n"
              "    - key: dedicated\n"
              "      effect: NoSchedule\n"
              "    - {key: gpu, value: \"yes\"}\n"
              "  extra_args: []\n"
              "sysctl: {}\n"
              "matrix: [[1, 2], [], [[]]]\n",
              "{\"generation\":4,\"kubelet\":{\"extra_args\":[],\"labels\":{\"role\":\"worker\"},"
              "\"taints\":[{\"effect\":\"NoSchedule\",\"key\":\"dedicated\"},{\"key\":\"gpu\",\"value\":\"yes\"}]},"
              "\"matrix\":[[1,2],[],[[]]],\"sysctl\":{}}");
        /* Key order is kept as written. */
        json_t *j = NULL;
        ASSERT_OK(yaml_to_json("z: 1\na: 2\nm: 3\n", 15, &j, NULL));
        char *s = json_dumps(j, JSON_COMPACT);
        ASSERT_STREQ(s, "{\"z\":1,\"a\":2,\"m\":3}");
        free(s);
        json_decref(j);
}

static void test_documents(void) {
        /* Top-level values need not be mappings; the caller decides. */
        check("42\n", "42");
        check("- a\n- b\n", "[\"a\",\"b\"]");
        check("---\n", "null");
        check("--- {a: 1}\n...\n", "{\"a\":1}");
        /* JSON is (nearly) YAML, and goes through unchanged. */
        check("{\"a\": [1, \"2\", {\"b\": null, \"c\": false}]}", "{\"a\":[1,\"2\",{\"b\":null,\"c\":false}]}");
        /* Keys are strings, whatever they look like. */
        check("1: one\ntrue: yes\nnull: x\n\"q\": y\n", "{\"1\":\"one\",\"null\":\"x\",\"q\":\"y\",\"true\":\"yes\"}");
        check("name: caf\xc3\xa9 \"\\u2713\"\n", "{\"name\":\"caf\xc3\xa9 \\\"\\\\u2713\\\"\"}");
        check("name: \"\\u2713\"\n", "{\"name\":\"\xe2\x9c\x93\"}");

        check_error("", "1:1: no YAML document");
        check_error("# only a comment\n", "1:1: no YAML document");
        check_error("a: 1\n---\nb: 2\n", "2:1: more than one YAML document");
}

static void test_syntax_errors(void) {
        /* The unclosed bracket is named with where it starts. */
        check_error("a: [1, 2\nb: 3\n",
                    "2:2: did not find expected ',' or ']' (while parsing a flow sequence that starts at 1:4)");
        check_error("a: 1\n b: 2\n", "2:3: mapping values are not allowed in this context");
        check_error("a:\n  - 1\n  b: 2\n", "3:3: did not find expected '-' indicator (while parsing a block collection that starts at 2:3)");
        check_error("a: \"unterminated\n", "2:1: found unexpected end of stream (while scanning a quoted scalar that starts at 1:4)");
        /* Invalid UTF-8 is a reader error, located from its byte offset. */
        check_error("a: 1\nb: \xff\n", "2:4: invalid leading UTF-8 octet");
}

static void test_rejected(void) {
        check_error("a: &anchor 1\nb: 2\n", "1:4: YAML anchors are not supported ('&anchor')");
        check_error("base: &b {x: 1}\n", "1:7: YAML anchors are not supported ('&b')");
        check_error("a: 1\nb: *x\n", "2:4: YAML aliases are not supported");
        check_error("a: !!str 1\n", "1:4: YAML tags are not supported ('tag:yaml.org,2002:str')");
        check_error("a: !custom x\n", "1:4: YAML tags are not supported ('!custom')");
        check_error("a: !!map {}\n", "1:4: YAML tags are not supported ('tag:yaml.org,2002:map')");
        check_error("a: 1\nb: 2\na: 3\n", "3:1: duplicate key 'a'");
        check_error("outer:\n  k: 1\n  j: 2\n  k: 1\n", "4:3: duplicate key 'k'");
        check_error("{x: 1, \"x\": 2}", "1:8: duplicate key 'x'");
        check_error("? [a]\n: 1\n", "1:3: mapping keys must be scalars");
        check_error("? {a: 1}\n: 1\n", "1:3: mapping keys must be scalars");
        check_error("a: \"x\\0y\"\n", "1:4: NUL byte in YAML scalar");
        check_error("\"k\\0\": 1\n", "1:1: NUL byte in YAML mapping key");
        check_error_len("a: b\0c\n", 7, "1:5: control characters are not allowed");

        /* Nesting has a limit; one below it is fine. */
        char deep[2 * YAML_JSON_DEPTH_MAX + 3];
        size_t n = 0;
        for (int i = 0; i < YAML_JSON_DEPTH_MAX; i++)
                deep[n++] = '[';
        for (int i = 0; i < YAML_JSON_DEPTH_MAX; i++)
                deep[n++] = ']';
        deep[n] = '\0';
        free(convert(deep));

        char deeper[2 * YAML_JSON_DEPTH_MAX + 3];
        n = 0;
        for (int i = 0; i <= YAML_JSON_DEPTH_MAX; i++)
                deeper[n++] = '[';
        for (int i = 0; i <= YAML_JSON_DEPTH_MAX; i++)
                deeper[n++] = ']';
        deeper[n] = '\0';
        check_error(deeper, "1:65: YAML nesting deeper than 64 levels");
}

int main(void) {
        TEST_RUN(test_scalar_types);
        TEST_RUN(test_integers);
        TEST_RUN(test_nesting);
        TEST_RUN(test_documents);
        TEST_RUN(test_syntax_errors);
        TEST_RUN(test_rejected);
        return 0;
}
