/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "fileio.h"
#include "sign.h"
#include "strutil.h"

/* A PEM key file is a few hundred bytes; anything much larger is not one. */
#define KEY_FILE_SIZE_MAX (64 * 1024)
#define ED25519_RAW_SIZE 32

struct HullKey {
        EVP_PKEY *pkey;
        bool has_private;
        char id[KEY_ID_LEN + 1];
};

struct Keyring {
        HullKey **keys;
        size_t n_keys;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY_CTX *, EVP_PKEY_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free);

/* Failed OpenSSL calls leave entries on the thread's error queue; drop them so
 * that they are not reported later against an unrelated call. */
static int crypto_error(int r) {
        ERR_clear_error();
        return r;
}

/* Private key material read from or written to disk passes through these
 * buffers; wipe it before it goes back to the allocator. */
static void free_secret(char *p, size_t n) {
        if (p)
                OPENSSL_cleanse(p, n);
        free(p);
}

static int key_new_from_pkey(EVP_PKEY *pkey, bool has_private, HullKey **ret) {
        uint8_t raw[ED25519_RAW_SIZE], digest[EVP_MAX_MD_SIZE];
        size_t raw_len = sizeof(raw);
        unsigned digest_len;

        if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519)
                return -EBADMSG;
        if (EVP_PKEY_get_raw_public_key(pkey, raw, &raw_len) != 1 || raw_len != ED25519_RAW_SIZE)
                return crypto_error(-EBADMSG);
        if (EVP_Digest(raw, raw_len, digest, &digest_len, EVP_sha256(), NULL) != 1)
                return crypto_error(-EIO);

        HullKey *k = calloc(1, sizeof(HullKey));
        if (!k)
                return -ENOMEM;
        k->pkey = pkey;
        k->has_private = has_private;
        hex_encode(digest, KEY_ID_LEN / 2, k->id);
        *ret = k;
        return 0;
}

HullKey *key_free(HullKey *k) {
        if (!k)
                return NULL;
        EVP_PKEY_free(k->pkey);
        free(k);
        return NULL;
}

int key_generate(HullKey **ret) {
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        int r;

        ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
        if (!ctx)
                return crypto_error(-ENOMEM);
        if (EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &pkey) != 1)
                return crypto_error(-EIO);

        r = key_new_from_pkey(pkey, true, ret);
        if (r < 0)
                return r;
        TAKE_PTR(pkey);
        return 0;
}

/* OpenSSL's default passphrase callback prompts on the terminal; a library
 * must never do that. Encrypted keys therefore simply fail to load. */
static int no_passphrase(_unused_ char *buf, _unused_ int size, _unused_ int rwflag, _unused_ void *userdata) {
        return -1;
}

static int key_load(const char *path, bool private, HullKey **ret) {
        _cleanup_(BIO_freep) BIO *bio = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        char *data = NULL;
        size_t size = 0;
        int r;

        r = read_full_file(path, KEY_FILE_SIZE_MAX, &data, &size);
        if (r < 0)
                return r;

        bio = BIO_new_mem_buf(data, (int) size);
        if (bio) {
                if (private)
                        pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
                else
                        pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
        }
        free_secret(data, size);
        if (!bio)
                return crypto_error(-ENOMEM);
        if (!pkey)
                return crypto_error(-EBADMSG);

        r = key_new_from_pkey(pkey, private, ret);
        if (r < 0)
                return r;
        TAKE_PTR(pkey);
        return 0;
}

int key_load_private(const char *path, HullKey **ret) {
        return key_load(path, true, ret);
}

int key_load_public(const char *path, HullKey **ret) {
        return key_load(path, false, ret);
}

/* Write data to a fresh temporary file next to 'path' (created with 'mode'
 * from the start, so a private key is never readable by others, not even
 * half-written), fsync it, then move it into place: with 'replace' by
 * rename(), otherwise by link(), which fails with EEXIST instead of
 * overwriting. Finally fsync the directory. */
static int write_file_new(const char *path, const char *data, size_t len, mode_t mode, bool replace) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (asprintf(&tmp, "%s.hull-tmp.XXXXXX", path) < 0)
                return -ENOMEM;

        /* mkostemp() creates the file O_EXCL with mode 0600. */
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;

        r = loop_write(fd, data, len);
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = -errno;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0) {
                if (replace) {
                        if (rename(tmp, path) < 0)
                                r = -errno;
                } else if (link(tmp, path) < 0)
                        r = -errno;
        }
        /* After a successful rename() the name is gone already; after
         * link() this drops the temporary name and keeps the new one. */
        if (r < 0 || !replace)
                (void) unlink(tmp);
        if (r < 0)
                return r;

        return fsync_parent_directory(path);
}

static int key_write_pem(const HullKey *k, const char *path, bool private) {
        _cleanup_(BIO_freep) BIO *bio = NULL;
        char *pem;
        long len;

        if (!k || !path)
                return -EINVAL;
        if (private && !k->has_private)
                return -ENOKEY;

        bio = BIO_new(BIO_s_mem());
        if (!bio)
                return crypto_error(-ENOMEM);
        /* PEM_write_bio_PrivateKey() writes unencrypted PKCS#8 ("PRIVATE KEY"). */
        if ((private ? PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL)
                     : PEM_write_bio_PUBKEY(bio, k->pkey)) != 1)
                return crypto_error(-EIO);

        len = BIO_get_mem_data(bio, &pem);
        if (len <= 0)
                return crypto_error(-EIO);

        int r = write_file_new(path, pem, (size_t) len, private ? 0600 : 0644, !private);
        if (private)
                /* The memory BIO frees its buffer without wiping it. */
                OPENSSL_cleanse(pem, (size_t) len);
        return r;
}

int key_save_private(const HullKey *k, const char *path) {
        return key_write_pem(k, path, true);
}

int key_save_public(const HullKey *k, const char *path) {
        return key_write_pem(k, path, false);
}

const char *key_id(const HullKey *k) {
        return k ? k->id : NULL;
}

bool key_has_private(const HullKey *k) {
        return k && k->has_private;
}

int key_sign(const HullKey *k, const void *data, size_t len, uint8_t ret_sig[static SIGNATURE_SIZE]) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        uint8_t sig[SIGNATURE_SIZE];
        size_t sig_len = sizeof(sig);

        if (!k || (!data && len > 0))
                return -EINVAL;
        if (!k->has_private)
                return -ENOKEY;

        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return crypto_error(-ENOMEM);
        /* Ed25519 is used in its pure form: no separate digest (md NULL),
         * the whole message goes into one EVP_DigestSign() call. */
        if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1 ||
            EVP_DigestSign(ctx, sig, &sig_len, data, len) != 1 ||
            sig_len != SIGNATURE_SIZE)
                return crypto_error(-EIO);

        memcpy(ret_sig, sig, SIGNATURE_SIZE);
        return 0;
}

int key_verify(const HullKey *k, const void *data, size_t len, const uint8_t sig[static SIGNATURE_SIZE]) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;

        if (!k || !sig || (!data && len > 0))
                return -EINVAL;

        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return crypto_error(-ENOMEM);
        if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) != 1)
                return crypto_error(-EIO);
        /* 1 is valid; 0 is a bad signature and a negative value a malformed
         * one (e.g. an out-of-range scalar): both are a rejection. */
        if (EVP_DigestVerify(ctx, sig, SIGNATURE_SIZE, data, len) != 1)
                return crypto_error(-EKEYREJECTED);
        return 0;
}

int keyring_new(Keyring **ret) {
        Keyring *kr = calloc(1, sizeof(Keyring));
        if (!kr)
                return -ENOMEM;
        *ret = kr;
        return 0;
}

Keyring *keyring_free(Keyring *kr) {
        if (!kr)
                return NULL;
        for (size_t i = 0; i < kr->n_keys; i++)
                key_free(kr->keys[i]);
        free(kr->keys);
        free(kr);
        return NULL;
}

int keyring_add(Keyring *kr, HullKey *k) {
        if (!kr || !k)
                return -EINVAL;
        if (keyring_find(kr, k->id))
                return -EEXIST;

        HullKey **n = realloc(kr->keys, sizeof(HullKey *) * (kr->n_keys + 1));
        if (!n)
                return -ENOMEM;
        kr->keys = n;
        kr->keys[kr->n_keys++] = k;
        return 0;
}

static bool pem_name(const char *name) {
        size_t l = strlen(name);
        /* Hidden files (editor droppings, our own temporaries) are skipped. */
        return name[0] != '.' && l > 4 && streq(name + l - 4, ".pem");
}

int keyring_load_dir(const char *dir, Keyring **ret) {
        _cleanup_(keyring_freep) Keyring *kr = NULL;
        struct dirent **names = NULL;
        int n, r = 0;

        r = keyring_new(&kr);
        if (r < 0)
                return r;

        /* Sorted, so that the outcome does not depend on directory order. */
        n = scandir(dir, &names, NULL, alphasort);
        if (n < 0)
                return -errno;

        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *p = NULL;
                _cleanup_(key_freep) HullKey *k = NULL;
                struct stat st;

                if (r < 0 || !pem_name(names[i]->d_name))
                        continue;
                p = path_join(dir, names[i]->d_name);
                if (!p) {
                        r = -ENOMEM;
                        continue;
                }
                /* Symlinks are followed (a distribution may link keys in),
                 * but only regular files are read. */
                if (stat(p, &st) < 0) {
                        r = -errno;
                        continue;
                }
                if (!S_ISREG(st.st_mode))
                        continue;

                r = key_load_public(p, &k);
                if (r < 0)
                        continue;
                r = keyring_add(kr, k);
                if (r == -EEXIST) {
                        /* The same key under two names is harmless; two
                         * different keys with one id is not. */
                        const HullKey *o = keyring_find(kr, k->id);
                        r = EVP_PKEY_eq(o->pkey, k->pkey) == 1 ? 0 : crypto_error(-EEXIST);
                        continue;
                }
                if (r >= 0)
                        TAKE_PTR(k);
        }
        for (int i = 0; i < n; i++)
                free(names[i]);
        free(names);

        if (r < 0)
                return r;
        if (kr->n_keys == 0)
                return -ENOKEY;

        *ret = TAKE_PTR(kr);
        return 0;
}

const HullKey *keyring_find(const Keyring *kr, const char *id) {
        if (!kr || !id)
                return NULL;
        for (size_t i = 0; i < kr->n_keys; i++)
                if (streq(kr->keys[i]->id, id))
                        return kr->keys[i];
        return NULL;
}

size_t keyring_size(const Keyring *kr) {
        return kr ? kr->n_keys : 0;
}

const HullKey *keyring_get(const Keyring *kr, size_t i) {
        return kr && i < kr->n_keys ? kr->keys[i] : NULL;
}

int sha256_file(const char *path, char ret_hex[static 65]) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_free_ uint8_t *buf = malloc(1U << 20);
        uint8_t md[32];
        unsigned mdlen = 0;
        int r = 0;

        if (fd < 0)
                return -errno;
        if (!buf)
                return -ENOMEM;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
                EVP_MD_CTX_free(ctx);
                return -ENOMEM;
        }
        for (;;) {
                ssize_t n = read(fd, buf, 1U << 20);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        break;
                }
                if (n == 0)
                        break;
                if (EVP_DigestUpdate(ctx, buf, (size_t) n) != 1) {
                        r = -EIO;
                        break;
                }
        }
        if (r >= 0 && (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32))
                r = -EIO;
        EVP_MD_CTX_free(ctx);
        if (r >= 0)
                hex_encode(md, 32, ret_hex);
        return r;
}
