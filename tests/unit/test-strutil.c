/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdint.h>

#include "strutil.h"
#include "tests.h"

static void test_parse_size(void) {
        uint64_t v;
        ASSERT_OK(parse_size("512", &v));
        ASSERT_EQ(v, 512);
        ASSERT_OK(parse_size("64K", &v));
        ASSERT_EQ(v, 65536);
        ASSERT_OK(parse_size("256M", &v));
        ASSERT_EQ(v, 256ULL << 20);
        ASSERT_OK(parse_size("2GiB", &v));
        ASSERT_EQ(v, 2ULL << 30);
        ASSERT_OK(parse_size("1t", &v));
        ASSERT_EQ(v, 1ULL << 40);
        ASSERT_OK(parse_size("10B", &v));
        ASSERT_EQ(v, 10);
        ASSERT_ERROR(parse_size("", &v), EINVAL);
        ASSERT_ERROR(parse_size("-1G", &v), EINVAL);
        ASSERT_ERROR(parse_size("1X", &v), EINVAL);
        ASSERT_ERROR(parse_size("1GG", &v), EINVAL);
        ASSERT_ERROR(parse_size(" 1G", &v), EINVAL);
        ASSERT_ERROR(parse_size("99999999999999T", &v), ERANGE);
        ASSERT_ERROR(parse_size("999999999999999999999", &v), ERANGE);
}

static void test_atou(void) {
        uint64_t v;
        unsigned u;
        ASSERT_OK(safe_atou64("18446744073709551615", &v));
        ASSERT_TRUE(v == UINT64_MAX);
        ASSERT_ERROR(safe_atou64("18446744073709551616", &v), ERANGE);
        ASSERT_ERROR(safe_atou64("12a", &v), EINVAL);
        ASSERT_ERROR(safe_atou64("-3", &v), EINVAL);
        ASSERT_ERROR(safe_atou64("+3", &v), EINVAL);
        ASSERT_ERROR(safe_atou("4294967296", &u), ERANGE);
        ASSERT_OK(safe_atou("42", &u));
        ASSERT_EQ(u, 42);
}

static void test_hex(void) {
        uint8_t in[] = { 0x00, 0xab, 0xff, 0x10 }, out[4];
        char s[9];
        hex_encode(in, 4, s);
        ASSERT_STREQ(s, "00abff10");
        ASSERT_OK(hex_decode("00ABff10", out, 4));
        ASSERT_TRUE(memcmp(in, out, 4) == 0);
        ASSERT_ERROR(hex_decode("00abff1", out, 4), EINVAL);
        ASSERT_ERROR(hex_decode("00abff1g", out, 4), EINVAL);
}

static void test_tokens(void) {
        ASSERT_TRUE(string_is_safe_token("linux-image-amd64", "-"));
        ASSERT_TRUE(!string_is_safe_token("a b", "-"));
        ASSERT_TRUE(!string_is_safe_token("", "-"));
        ASSERT_TRUE(string_has_prefix("hull.slot=a", "hull.slot="));
        ASSERT_TRUE(!string_has_prefix("hull", "hull.slot="));
        char buf[32];
        ASSERT_STREQ(format_bytes(buf, sizeof(buf), 1536), "1.5 KiB");
        ASSERT_STREQ(format_bytes(buf, sizeof(buf), 12), "12 B");
}

static void test_strv(void) {
        _cleanup_strv_free_ char **l = NULL;
        ASSERT_EQ(strv_length(l), 0);
        l = strv_append(l, "a");
        l = strv_append(l, "b");
        ASSERT_TRUE(l != NULL);
        ASSERT_EQ(strv_length(l), 2);
        ASSERT_STREQ(l[1], "b");
        ASSERT_TRUE(l[2] == NULL);
}

static void test_error_set(void) {
        char *e = NULL;
        ASSERT_EQ(error_set(NULL, -EINVAL, "ignored %d", 1), -EINVAL);
        ASSERT_EQ(error_set(&e, -EINVAL, "first %s", "x"), -EINVAL);
        ASSERT_STREQ(e, "first x");
        ASSERT_EQ(error_set(&e, -ENOENT, "second"), -ENOENT); /* replaces, frees the first */
        ASSERT_STREQ(e, "second");
        free(e);
}

static void test_quote(void) {
        char buf[STRING_QUOTE_SIZE], long_in[200];
        ASSERT_STREQ(string_quote(buf, "plain"), "\"plain\"");
        ASSERT_STREQ(string_quote(buf, "a\"b\\c"), "\"a\\\"b\\\\c\"");
        ASSERT_STREQ(string_quote(buf, "t\tn\n\xc3\xa4"), "\"t\\x09n\\x0a\\xc3\\xa4\"");
        memset(long_in, 0x01, sizeof(long_in) - 1);
        long_in[sizeof(long_in) - 1] = '\0';
        string_quote(buf, long_in); /* the worst case fits */
        ASSERT_EQ(strlen(buf), 1 + STRING_QUOTE_CHARS * 4 + 3 + 1);
        memset(long_in, 'a', sizeof(long_in) - 1);
        string_quote(buf, long_in);
        ASSERT_EQ(strlen(buf), 1 + STRING_QUOTE_CHARS + 3 + 1);
        ASSERT_TRUE(strstr(buf, "a...\""));
}

int main(void) {
        TEST_RUN(test_parse_size);
        TEST_RUN(test_atou);
        TEST_RUN(test_hex);
        TEST_RUN(test_tokens);
        TEST_RUN(test_strv);
        TEST_RUN(test_error_set);
        TEST_RUN(test_quote);
        return 0;
}
