/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Ed25519 signing keys (OpenSSL libcrypto), stored as PEM: PKCS#8 for the
 * private key, SubjectPublicKeyInfo for the public key. The key id is the
 * first 8 bytes of SHA-256 over the raw 32-byte public key, in hex (16
 * characters); it names the key in bundle manifests. */

#define KEY_ID_LEN 16
#define SIGNATURE_SIZE 64

typedef struct HullKey HullKey;

int key_generate(HullKey **ret) _warn_unused_result_;
/* Accepts an unencrypted PKCS#8 PEM private key (never prompts for a
 * passphrase). -EBADMSG if it is not an Ed25519 private key. */
int key_load_private(const char *path, HullKey **ret) _warn_unused_result_;
/* Accepts a public key PEM. -EBADMSG if it is not an Ed25519 key. */
int key_load_public(const char *path, HullKey **ret) _warn_unused_result_;
/* Writes mode 0600; refuses to overwrite an existing file (-EEXIST).
 * -ENOKEY if k holds only a public key. The file is created 0600 before any
 * byte is written and appears under its name only once complete. */
int key_save_private(const HullKey *k, const char *path) _warn_unused_result_;
/* Writes mode 0644, atomically replacing an existing file. */
int key_save_public(const HullKey *k, const char *path) _warn_unused_result_;
HullKey *key_free(HullKey *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(HullKey *, key_free);

const char *key_id(const HullKey *k);
bool key_has_private(const HullKey *k);

/* -ENOKEY if k holds only a public key. */
int key_sign(const HullKey *k, const void *data, size_t len, uint8_t ret_sig[static SIGNATURE_SIZE]) _warn_unused_result_;
/* 0 if valid, -EKEYREJECTED if the signature does not match. */
int key_verify(const HullKey *k, const void *data, size_t len, const uint8_t sig[static SIGNATURE_SIZE]) _warn_unused_result_;

/* A set of trusted public keys, e.g. every *.pem in /usr/share/hull/keys. */
typedef struct Keyring Keyring;
int keyring_new(Keyring **ret) _warn_unused_result_;
int keyring_add(Keyring *kr, HullKey *k) _warn_unused_result_;   /* takes ownership on success */
/* Only the public half of the keys is used. keyring_add() fails with -EEXIST
 * if a key with the same id is already present. keyring_load_dir() reads
 * every regular file named *.pem (other names are skipped); a *.pem that is
 * not an Ed25519 public key fails the whole load (-EBADMSG) rather than
 * silently shrinking the set of trusted keys. */
int keyring_load_dir(const char *dir, Keyring **ret) _warn_unused_result_;  /* -ENOKEY if empty */
const HullKey *keyring_find(const Keyring *kr, const char *id);
size_t keyring_size(const Keyring *kr);
/* The i-th key, i < keyring_size(); NULL beyond. */
const HullKey *keyring_get(const Keyring *kr, size_t i);
Keyring *keyring_free(Keyring *kr);
DEFINE_TRIVIAL_CLEANUP_FUNC(Keyring *, keyring_free);

/* SHA-256 of a whole file as lower-case hex (what sha256sum prints), read
 * in 1 MiB pieces. -errno from open/read. */
int sha256_file(const char *path, char ret_hex[static 65]) _warn_unused_result_;
