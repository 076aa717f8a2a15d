/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "sha256.h"
#include "tests.h"

static void hex_of(const void *data, size_t len, char ret[static 65]) {
        Sha256 s;
        uint8_t d[32];
        sha256_init(&s);
        sha256_update(&s, data, len);
        sha256_final(&s, d);
        sha256_hex(d, ret);
}

/* FIPS 180-4 / NIST CSHS examples. */
static void test_vectors(void) {
        char h[65];

        hex_of("", 0, h);
        ASSERT_STREQ(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        hex_of("abc", 3, h);
        ASSERT_STREQ(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        hex_of(two, strlen(two), h);
        ASSERT_STREQ(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

        /* A million 'a's, fed in uneven pieces. */
        Sha256 s;
        uint8_t d[32];
        char a[997];
        memset(a, 'a', sizeof(a));
        sha256_init(&s);
        size_t left = 1000000;
        for (size_t step = 1; left > 0; step = step % sizeof(a) + 7) {
                size_t n = step < left ? step : left;
                n = n < sizeof(a) ? n : sizeof(a);
                sha256_update(&s, a, n);
                left -= n;
        }
        sha256_final(&s, d);
        sha256_hex(d, h);
        ASSERT_STREQ(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Every length around the padding boundaries agrees with OpenSSL. */
static void test_against_openssl(void) {
        uint8_t data[300];
        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t) (i * 131 + 7);
        for (size_t len = 0; len <= sizeof(data); len++) {
                uint8_t want[32];
                unsigned wl = 0;
                char h[65], w[65];
                ASSERT_TRUE(EVP_Digest(data, len, want, &wl, EVP_sha256(), NULL) == 1 && wl == 32);
                sha256_hex(want, w);
                hex_of(data, len, h);
                ASSERT_STREQ(h, w);
        }
}

int main(void) {
        TEST_RUN(test_vectors);
        TEST_RUN(test_against_openssl);
        return 0;
}
