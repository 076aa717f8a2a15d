/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "fileio.h"
#include "sign.h"
#include "spawn.h"
#include "tests.h"

static char dir[] = "/tmp/test-sign-XXXXXX";

static char *tpath(const char *name) {
        char *p = path_join(dir, name);
        ASSERT_TRUE(p);
        return p;
}

static bool hex16(const char *s) {
        if (!s || strlen(s) != KEY_ID_LEN)
                return false;
        for (const char *p = s; *p; p++)
                if (!strchr("0123456789abcdef", *p))
                        return false;
        return true;
}

static void test_generate_sign_verify(void) {
        _cleanup_(key_freep) HullKey *a = NULL, *b = NULL;
        uint8_t sig[SIGNATURE_SIZE], sig2[SIGNATURE_SIZE];
        static const char msg[] = "hull bundle header and manifest";

        ASSERT_OK(key_generate(&a));
        ASSERT_OK(key_generate(&b));
        ASSERT_TRUE(key_has_private(a));
        ASSERT_TRUE(hex16(key_id(a)));
        ASSERT_TRUE(!streq(key_id(a), key_id(b)));

        ASSERT_OK(key_sign(a, msg, sizeof(msg), sig));
        ASSERT_OK(key_verify(a, msg, sizeof(msg), sig));
        /* Ed25519 is deterministic. */
        ASSERT_OK(key_sign(a, msg, sizeof(msg), sig2));
        ASSERT_TRUE(memcmp(sig, sig2, sizeof(sig)) == 0);

        /* Wrong key, changed message, changed signature, shorter message. */
        ASSERT_ERROR(key_verify(b, msg, sizeof(msg), sig), EKEYREJECTED);
        char tampered[sizeof(msg)];
        memcpy(tampered, msg, sizeof(msg));
        tampered[3] ^= 1;
        ASSERT_ERROR(key_verify(a, tampered, sizeof(tampered), sig), EKEYREJECTED);
        sig2[10] ^= 0x80;
        ASSERT_ERROR(key_verify(a, msg, sizeof(msg), sig2), EKEYREJECTED);
        ASSERT_ERROR(key_verify(a, msg, sizeof(msg) - 1, sig), EKEYREJECTED);
        /* An all-ones signature is not even a valid encoding. */
        memset(sig2, 0xff, sizeof(sig2));
        ASSERT_ERROR(key_verify(a, msg, sizeof(msg), sig2), EKEYREJECTED);

        /* The empty message is a message too. */
        ASSERT_OK(key_sign(a, "", 0, sig));
        ASSERT_OK(key_verify(a, "", 0, sig));
}

static void test_save_load(void) {
        _cleanup_(key_freep) HullKey *k = NULL, *priv = NULL, *pub = NULL, *other = NULL;
        _cleanup_free_ char *ppriv = tpath("signing.key"), *ppub = tpath("signing.pem");
        _cleanup_free_ char *data = NULL;
        uint8_t sig[SIGNATURE_SIZE];
        struct stat st;

        ASSERT_OK(key_generate(&k));
        ASSERT_OK(key_save_private(k, ppriv));
        ASSERT_OK(key_save_public(k, ppub));

        ASSERT_OK(stat(ppriv, &st));
        ASSERT_EQ(st.st_mode & 07777, 0600);
        ASSERT_OK(stat(ppub, &st));
        ASSERT_EQ(st.st_mode & 07777, 0644);

        ASSERT_OK(read_full_file(ppriv, 4096, &data, NULL));
        ASSERT_TRUE(strstr(data, "-----BEGIN PRIVATE KEY-----") == data);
        free(data);
        data = NULL;
        ASSERT_OK(read_full_file(ppub, 4096, &data, NULL));
        ASSERT_TRUE(strstr(data, "-----BEGIN PUBLIC KEY-----") == data);

        ASSERT_OK(key_load_private(ppriv, &priv));
        ASSERT_OK(key_load_public(ppub, &pub));
        ASSERT_TRUE(key_has_private(priv));
        ASSERT_TRUE(!key_has_private(pub));
        ASSERT_STREQ(key_id(priv), key_id(k));
        ASSERT_STREQ(key_id(pub), key_id(k));

        /* Signed with the reloaded private key, checked with the public one. */
        ASSERT_OK(key_sign(priv, "abc", 3, sig));
        ASSERT_OK(key_verify(pub, "abc", 3, sig));
        ASSERT_OK(key_verify(k, "abc", 3, sig));

        /* A public key cannot sign or be saved as a private key. */
        ASSERT_ERROR(key_sign(pub, "abc", 3, sig), ENOKEY);
        _cleanup_free_ char *pp2 = tpath("from-public.key");
        ASSERT_ERROR(key_save_private(pub, pp2), ENOKEY);
        ASSERT_TRUE(access(pp2, F_OK) < 0 && errno == ENOENT);

        /* Never overwrite a private key, not even with itself. */
        ASSERT_OK(key_generate(&other));
        ASSERT_ERROR(key_save_private(other, ppriv), EEXIST);
        key_free(priv);
        priv = NULL;
        ASSERT_OK(key_load_private(ppriv, &priv));
        ASSERT_STREQ(key_id(priv), key_id(k));
        /* ... but a public key file may be replaced. */
        ASSERT_OK(key_save_public(other, ppub));
        key_free(pub);
        pub = NULL;
        ASSERT_OK(key_load_public(ppub, &pub));
        ASSERT_STREQ(key_id(pub), key_id(other));

        /* Wrong kind of PEM for the call. */
        key_free(pub);
        pub = NULL;
        ASSERT_ERROR(key_load_public(ppriv, &pub), EBADMSG);
        ASSERT_ERROR(key_load_private(ppub, &pub), EBADMSG);

        _cleanup_free_ char *missing = tpath("missing.pem");
        ASSERT_ERROR(key_load_public(missing, &pub), ENOENT);
        ASSERT_ERROR(key_save_private(k, "/nonexistent-dir/x.key"), ENOENT);

        /* No temporary files left behind. */
        struct dirent **ents;
        int n = scandir(dir, &ents, NULL, alphasort);
        ASSERT_TRUE(n >= 0);
        for (int i = 0; i < n; i++) {
                ASSERT_TRUE(strstr(ents[i]->d_name, "hull-tmp") == NULL);
                free(ents[i]);
        }
        free(ents);
}

static void write_pem(const char *name, EVP_PKEY *pkey) {
        _cleanup_free_ char *p = tpath(name);
        FILE *f = fopen(p, "we");
        ASSERT_TRUE(f);
        ASSERT_EQ(PEM_write_PUBKEY(f, pkey), 1);
        ASSERT_EQ(fclose(f), 0);
}

static void test_not_ed25519(void) {
        _cleanup_(key_freep) HullKey *k = NULL;
        _cleanup_free_ char *pec = tpath("ec.pem"), *pgarbage = tpath("garbage.pem"), *pempty = tpath("empty.pem");

        /* A valid public key of the wrong algorithm. */
        EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        ASSERT_TRUE(ec);
        write_pem("ec.pem", ec);
        EVP_PKEY_free(ec);
        ASSERT_ERROR(key_load_public(pec, &k), EBADMSG);

        static const char garbage[] = "-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n";
        ASSERT_OK(write_file_atomic(pgarbage, garbage, strlen(garbage), 0644));
        ASSERT_ERROR(key_load_public(pgarbage, &k), EBADMSG);
        ASSERT_ERROR(key_load_private(pgarbage, &k), EBADMSG);
        ASSERT_OK(write_file_atomic(pempty, "", 0, 0644));
        ASSERT_ERROR(key_load_public(pempty, &k), EBADMSG);
        ASSERT_TRUE(k == NULL);
}

/* The key id as documented: SHA-256 over the raw public key, first 8 bytes
 * in hex. Computed here with OpenSSL alone. */
static void test_key_id_definition(void) {
        _cleanup_(key_freep) HullKey *k = NULL;
        _cleanup_free_ char *p = tpath("id.pem");
        uint8_t raw[32], md[32];
        size_t raw_len = sizeof(raw);
        char hex[17];

        ASSERT_OK(key_generate(&k));
        ASSERT_OK(key_save_public(k, p));
        FILE *f = fopen(p, "re");
        ASSERT_TRUE(f);
        EVP_PKEY *pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
        ASSERT_EQ(fclose(f), 0);
        ASSERT_TRUE(pkey);
        ASSERT_EQ(EVP_PKEY_get_raw_public_key(pkey, raw, &raw_len), 1);
        EVP_PKEY_free(pkey);
        ASSERT_EQ(raw_len, 32);
        ASSERT_EQ(EVP_Digest(raw, raw_len, md, NULL, EVP_sha256(), NULL), 1);
        for (size_t i = 0; i < 8; i++)
                (void) snprintf(hex + 2 * i, 3, "%02x", md[i]);
        ASSERT_STREQ(key_id(k), hex);
}

/* A passphrase-protected key is refused, and never prompts (stdin may be a
 * terminal in a developer's shell). */
static void test_encrypted_private_key(void) {
        _cleanup_(key_freep) HullKey *k = NULL;
        _cleanup_free_ char *p = tpath("encrypted.key");

        EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        ASSERT_TRUE(pkey);
        FILE *f = fopen(p, "we");
        ASSERT_TRUE(f);
        ASSERT_EQ(PEM_write_PrivateKey(f, pkey, EVP_aes_256_cbc(), NULL, 0, NULL, (void *) "secret"), 1);
        ASSERT_EQ(fclose(f), 0);
        EVP_PKEY_free(pkey);
        ASSERT_ERROR(key_load_private(p, &k), EBADMSG);
}

static void test_keyring(void) {
        _cleanup_(keyring_freep) Keyring *kr = NULL;
        _cleanup_(key_freep) HullKey *a = NULL, *b = NULL, *dup = NULL;
        _cleanup_free_ char *kd = tpath("keys"), *empty = tpath("empty-keys");
        _cleanup_free_ char *pa = NULL, *pb = NULL, *pa2 = NULL, *ptxt = NULL, *phidden = NULL, *psub = NULL;

        ASSERT_OK(mkdir_p(kd, 0755));
        ASSERT_OK(mkdir_p(empty, 0755));
        ASSERT_OK(key_generate(&a));
        ASSERT_OK(key_generate(&b));
        ASSERT_TRUE(asprintf(&pa, "%s/%s.pem", kd, key_id(a)) > 0);
        ASSERT_TRUE(asprintf(&pb, "%s/%s.pem", kd, key_id(b)) > 0);
        ASSERT_TRUE(asprintf(&pa2, "%s/copy-of-a.pem", kd) > 0);
        ASSERT_TRUE(asprintf(&ptxt, "%s/README", kd) > 0);
        ASSERT_TRUE(asprintf(&phidden, "%s/.junk.pem", kd) > 0);
        ASSERT_TRUE(asprintf(&psub, "%s/subdir.pem", kd) > 0);
        ASSERT_OK(key_save_public(a, pa));
        ASSERT_OK(key_save_public(b, pb));
        /* The same key twice is tolerated; other names are skipped. */
        ASSERT_OK(key_save_public(a, pa2));
        ASSERT_OK(write_file_atomic(ptxt, "not a key", 9, 0644));
        ASSERT_OK(write_file_atomic(phidden, "not a key", 9, 0644));
        ASSERT_OK(mkdir_p(psub, 0755));

        ASSERT_OK(keyring_load_dir(kd, &kr));
        ASSERT_EQ(keyring_size(kr), 2);
        ASSERT_TRUE(keyring_find(kr, key_id(a)) != NULL);
        ASSERT_TRUE(keyring_find(kr, key_id(b)) != NULL);
        ASSERT_TRUE(keyring_find(kr, "0000000000000000") == NULL);
        ASSERT_TRUE(!key_has_private(keyring_find(kr, key_id(a))));
        ASSERT_TRUE(keyring_get(kr, 0) != NULL && keyring_get(kr, 2) == NULL);

        /* Keys in the ring verify what the private key signed. */
        uint8_t sig[SIGNATURE_SIZE];
        ASSERT_OK(key_sign(b, "x", 1, sig));
        ASSERT_OK(key_verify(keyring_find(kr, key_id(b)), "x", 1, sig));

        /* keyring_add(): duplicate ids refused, ownership taken on success. */
        _cleanup_free_ char *tmp = tpath("a.pem");
        ASSERT_OK(key_save_public(a, tmp));
        ASSERT_OK(key_load_public(tmp, &dup));
        ASSERT_ERROR(keyring_add(kr, dup), EEXIST);
        keyring_free(kr);
        kr = NULL;
        ASSERT_OK(keyring_new(&kr));
        ASSERT_EQ(keyring_size(kr), 0);
        ASSERT_OK(keyring_add(kr, TAKE_PTR(dup)));
        ASSERT_EQ(keyring_size(kr), 1);
        keyring_free(kr);
        kr = NULL;

        /* Empty, or nothing but non-keys: no trust at all. */
        ASSERT_ERROR(keyring_load_dir(empty, &kr), ENOKEY);
        _cleanup_free_ char *ptxt2 = NULL;
        ASSERT_TRUE(asprintf(&ptxt2, "%s/notes.txt", empty) > 0);
        ASSERT_OK(write_file_atomic(ptxt2, "x", 1, 0644));
        ASSERT_ERROR(keyring_load_dir(empty, &kr), ENOKEY);
        _cleanup_free_ char *nodir = tpath("no-such-dir");
        ASSERT_ERROR(keyring_load_dir(nodir, &kr), ENOENT);

        /* A broken *.pem fails the load rather than being skipped quietly. */
        _cleanup_free_ char *pbad = NULL;
        ASSERT_TRUE(asprintf(&pbad, "%s/zz-broken.pem", kd) > 0);
        ASSERT_OK(write_file_atomic(pbad, "junk", 4, 0644));
        ASSERT_ERROR(keyring_load_dir(kd, &kr), EBADMSG);
        ASSERT_TRUE(kr == NULL);
}

int main(void) {
        ASSERT_TRUE(mkdtemp(dir) != NULL);
        TEST_RUN(test_generate_sign_verify);
        TEST_RUN(test_save_load);
        TEST_RUN(test_not_ed25519);
        TEST_RUN(test_key_id_definition);
        TEST_RUN(test_encrypted_private_key);
        TEST_RUN(test_keyring);
        char *rm[] = { (char *) "rm", (char *) "-rf", dir, NULL };
        ASSERT_EQ(spawn_run(rm, NULL), 0);
        return 0;
}
