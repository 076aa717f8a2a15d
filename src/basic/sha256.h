/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* SHA-256 (FIPS 180-4), streaming. Here rather than OpenSSL's because
 * hull-agent's daemon process keeps OpenSSL out of its address space (only
 * the stage worker runs it) and still fingerprints what a hook printed for
 * the audit log. Not constant-time; for digests of data, not for keys. */

typedef struct Sha256 {
        uint32_t h[8];
        uint64_t length;        /* bytes so far */
        uint8_t buf[64];
        size_t buf_len;
} Sha256;

void sha256_init(Sha256 *s);
void sha256_update(Sha256 *s, const void *data, size_t len);
/* Writes the digest; s must be sha256_init()ed again before reuse. */
void sha256_final(Sha256 *s, uint8_t ret[static 32]);
/* Lower-case hex of a digest: 64 digits and a NUL. */
void sha256_hex(const uint8_t digest[static 32], char ret[static 65]);
