/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "bundle.h"
#include "fileio.h"
#include "spawn.h"
#include "tests.h"

static char dir[] = "/tmp/test-bundle-XXXXXX";

/* Three payloads: one larger than the 1 MiB stream buffer and not a multiple
 * of 4096, one small, one a single byte. */
#define ROOTFS_SIZE (3 * 1024 * 1024 + 123)
#define KERNEL_SIZE 5000
#define INITRD_SIZE 1

static HullKey *trusted, *untrusted;
static Keyring *keyring;         /* trusted only */
static char *good;               /* a valid bundle signed by 'trusted' */
static char *in_rootfs, *in_kernel, *in_initrd;

static char *tpath(const char *name) {
        char *p = path_join(dir, name);
        ASSERT_TRUE(p);
        return p;
}

static char *make_input(const char *name, size_t size, unsigned seed) {
        char *p = tpath(name);
        _cleanup_free_ uint8_t *buf = malloc(size);
        ASSERT_TRUE(buf);
        for (size_t i = 0; i < size; i++)
                buf[i] = (uint8_t) ((i * 2654435761u + seed) >> 13);
        ASSERT_OK(write_file_atomic(p, buf, size, 0644));
        return p;
}

static Manifest *new_manifest(void) {
        Manifest *m;
        ASSERT_OK(manifest_new(&m));
        m->name = strdup("hull-demo");
        m->version = strdup("1.0.0");
        m->arch = strdup("x86_64");
        m->created = strdup("2024-05-01T12:00:00Z");
        m->rootfs_type = strdup("erofs");
        m->cmdline = strdup("console=ttyS0");
        ASSERT_TRUE(m->name && m->version && m->arch && m->created && m->rootfs_type && m->cmdline);
        return m;
}

static int create(const char *path, const HullKey *key) {
        _cleanup_(manifest_freep) Manifest *m = new_manifest();
        const BundleInput inputs[] = {
                { "rootfs", in_rootfs },
                { "kernel", in_kernel },
                { "initrd", in_initrd },
        };
        return bundle_create(path, m, inputs, ELEMENTSOF(inputs), key);
}

static int open_only(const char *path, const Keyring *kr) {
        _cleanup_(bundle_freep) Bundle *b = NULL;
        int r = bundle_open(path, kr, &b);
        ASSERT_TRUE(r < 0 ? b == NULL : b != NULL);
        return r;
}

static int extract(const char *path, const char *name) {
        _cleanup_(bundle_freep) Bundle *b = NULL;
        ASSERT_OK(bundle_open(path, keyring, &b));
        return bundle_extract_payload(b, name, -1, NULL, NULL);
}

static int verify_all(const char *path) {
        _cleanup_(bundle_freep) Bundle *b = NULL;
        ASSERT_OK(bundle_open(path, keyring, &b));
        return bundle_verify_payloads(b, NULL, NULL);
}

static uint8_t *slurp(const char *path, size_t *ret_size) {
        char *buf;
        ASSERT_OK(read_full_file(path, 64 * 1024 * 1024, &buf, ret_size));
        return (uint8_t *) buf;
}

/* A copy of the good bundle with one byte changed, or cut at 'truncate'. */
static char *variant(const char *name, size_t flip_at, uint8_t xor, size_t truncate) {
        size_t size;
        _cleanup_free_ uint8_t *data = slurp(good, &size);
        char *p = tpath(name);

        if (xor != 0) {
                ASSERT_TRUE(flip_at < size);
                data[flip_at] ^= xor;
        }
        ASSERT_OK(write_file_atomic(p, data, MIN(size, truncate), 0644));
        return p;
}

static uint32_t good_manifest_len(void) {
        size_t size;
        _cleanup_free_ uint8_t *d = slurp(good, &size);
        return (uint32_t) d[12] << 24 | (uint32_t) d[13] << 16 | (uint32_t) d[14] << 8 | d[15];
}

/* Offset of the first occurrence of 'needle' inside the good bundle's manifest. */
static size_t manifest_offset_of(const char *needle) {
        size_t size;
        _cleanup_free_ uint8_t *d = slurp(good, &size);
        uint32_t mlen = good_manifest_len();
        const uint8_t *hit = memmem(d + 24, mlen, needle, strlen(needle));
        ASSERT_TRUE(hit);
        return (size_t) (hit - d);
}

static bool no_temporaries(void) {
        struct dirent **ents;
        bool ok = true;
        int n = scandir(dir, &ents, NULL, alphasort);
        ASSERT_TRUE(n >= 0);
        for (int i = 0; i < n; i++) {
                if (strstr(ents[i]->d_name, "hull-tmp"))
                        ok = false;
                free(ents[i]);
        }
        free(ents);
        return ok;
}

typedef struct Progress {
        uint64_t last, total;
        unsigned calls;
} Progress;

static void progress(uint64_t done, uint64_t total, void *userdata) {
        Progress *p = userdata;
        ASSERT_TRUE(done > p->last && done <= total);
        ASSERT_TRUE(p->calls == 0 || total == p->total);
        p->last = done;
        p->total = total;
        p->calls++;
}

static void test_roundtrip(void) {
        _cleanup_(bundle_freep) Bundle *b = NULL;
        size_t size;
        _cleanup_free_ uint8_t *raw = slurp(good, &size);

        /* Header bytes as documented. */
        ASSERT_TRUE(memcmp(raw, "HULLBNDL\0\0\0\1", 12) == 0);
        ASSERT_TRUE(memcmp(raw + 16, "\0\0\0\100\0\0\0\0", 8) == 0);
        uint32_t mlen = good_manifest_len();
        ASSERT_TRUE(mlen > 0 && mlen <= MANIFEST_SIZE_MAX);
        ASSERT_EQ(raw[24], '{');

        ASSERT_OK(bundle_open(good, keyring, &b));
        const Manifest *m = bundle_manifest(b);
        ASSERT_STREQ(m->key_id, key_id(trusted));
        ASSERT_STREQ(m->version, "1.0.0");
        ASSERT_STREQ(m->cmdline, "console=ttyS0");
        ASSERT_EQ(m->n_payloads, 3);
        ASSERT_STREQ(m->payloads[0].name, "rootfs");
        ASSERT_EQ(m->payloads[0].offset, 0);
        ASSERT_EQ(m->payloads[0].size, ROOTFS_SIZE);
        ASSERT_EQ(m->payloads[1].offset, ALIGN_TO(ROOTFS_SIZE, 4096));
        ASSERT_EQ(m->payloads[2].offset, m->payloads[1].offset + 8192);
        ASSERT_EQ(m->payloads[2].size, INITRD_SIZE);

        /* The manifest in the file is exactly the canonical form. */
        _cleanup_free_ char *canon = NULL;
        ASSERT_OK(manifest_format(m, &canon));
        ASSERT_EQ(strlen(canon), mlen);
        ASSERT_TRUE(memcmp(raw + 24, canon, mlen) == 0);

        /* No trailing bytes after the last payload. */
        uint64_t area = ALIGN_TO(24 + mlen + 64, 4096);
        ASSERT_EQ(size, area + m->payloads[2].offset + 1);

        /* Every payload comes out byte for byte. */
        const char *inputs[] = { in_rootfs, in_kernel, in_initrd };
        for (size_t i = 0; i < 3; i++) {
                _cleanup_free_ char *out = tpath("extracted");
                _cleanup_close_ int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                ASSERT_TRUE(fd >= 0);
                Progress p = {};
                ASSERT_OK(bundle_extract_payload(b, m->payloads[i].name, fd, progress, &p));
                ASSERT_EQ(p.last, m->payloads[i].size);
                ASSERT_EQ(p.total, m->payloads[i].size);
                ASSERT_TRUE(p.calls >= 1);

                size_t a_size, b_size;
                _cleanup_free_ uint8_t *a = slurp(inputs[i], &a_size), *e = slurp(out, &b_size);
                ASSERT_EQ(a_size, b_size);
                ASSERT_TRUE(memcmp(a, e, a_size) == 0);
        }
        /* The rootfs needs several rounds of the 1 MiB buffer. */
        Progress p = {};
        ASSERT_OK(bundle_extract_payload(b, "rootfs", -1, progress, &p));
        ASSERT_EQ(p.calls, 4);

        p = (Progress) {};
        ASSERT_OK(bundle_verify_payloads(b, progress, &p));
        ASSERT_EQ(p.total, ROOTFS_SIZE + KERNEL_SIZE + INITRD_SIZE);
        ASSERT_EQ(p.last, p.total);

        ASSERT_ERROR(bundle_extract_payload(b, "nope", -1, NULL, NULL), ENOENT);

        /* A keyring with more keys still finds the signer. */
        _cleanup_(keyring_freep) Keyring *both = NULL;
        _cleanup_free_ char *pa = tpath("a.pem"), *pb = tpath("b.pem");
        HullKey *ka, *kb;
        ASSERT_OK(key_save_public(untrusted, pb));
        ASSERT_OK(key_save_public(trusted, pa));
        ASSERT_OK(keyring_new(&both));
        ASSERT_OK(key_load_public(pb, &kb));
        ASSERT_OK(keyring_add(both, kb));
        ASSERT_OK(key_load_public(pa, &ka));
        ASSERT_OK(keyring_add(both, ka));
        ASSERT_OK(open_only(good, both));

        ASSERT_TRUE(no_temporaries());
}

static void test_tampered_payload(void) {
        _cleanup_free_ char *p1 = NULL, *p2 = NULL;
        _cleanup_(bundle_freep) Bundle *g = NULL;
        ASSERT_OK(bundle_open(good, keyring, &g));
        uint64_t area = ALIGN_TO(24 + good_manifest_len() + 64, 4096);
        uint64_t initrd_at = area + manifest_find_payload(bundle_manifest(g), "initrd")->offset;

        /* One byte in the middle of the rootfs. */
        p1 = variant("bad-rootfs.bundle", (size_t) area + 1234567, 0x01, SIZE_MAX);
        ASSERT_OK(open_only(p1, keyring)); /* the header and manifest are fine */
        ASSERT_ERROR(extract(p1, "rootfs"), EBADMSG);
        ASSERT_OK(extract(p1, "kernel"));
        ASSERT_ERROR(verify_all(p1), EBADMSG);

        /* The single initrd byte, the very last byte of the file. */
        p2 = variant("bad-initrd.bundle", (size_t) initrd_at, 0x80, SIZE_MAX);
        ASSERT_OK(extract(p2, "rootfs"));
        ASSERT_ERROR(extract(p2, "initrd"), EBADMSG);
        ASSERT_ERROR(verify_all(p2), EBADMSG);

        /* Extraction wrote data, and the caller must throw it away. */
        _cleanup_(bundle_freep) Bundle *b = NULL;
        _cleanup_free_ char *out = tpath("untrusted-out");
        _cleanup_close_ int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(bundle_open(p1, keyring, &b));
        ASSERT_ERROR(bundle_extract_payload(b, "rootfs", fd, NULL, NULL), EBADMSG);
}

static void test_tampered_manifest(void) {
        _cleanup_free_ char *p1 = NULL, *p2 = NULL, *p3 = NULL, *p4 = NULL;

        /* Still valid JSON, still names the trusted key: the signature fails. */
        p1 = variant("m1.bundle", manifest_offset_of("\"1.0.0\"") + 1, '1' ^ '2', SIZE_MAX);
        ASSERT_ERROR(open_only(p1, keyring), EKEYREJECTED);

        /* No longer JSON at all. */
        p2 = variant("m2.bundle", 24, 0xff, SIZE_MAX);
        ASSERT_ERROR(open_only(p2, keyring), EKEYREJECTED);

        /* A changed digest in the manifest. */
        p3 = variant("m3.bundle", manifest_offset_of("\"sha256\":\"") + 12, 0x01, SIZE_MAX);
        ASSERT_ERROR(open_only(p3, keyring), EKEYREJECTED);

        /* A changed key_id claims a key we do not have. */
        char claim[64];
        (void) snprintf(claim, sizeof(claim), "\"key_id\":\"%s\"", key_id(trusted));
        size_t at = manifest_offset_of(claim) + 10;
        size_t size;
        _cleanup_free_ uint8_t *d = slurp(good, &size);
        p4 = variant("m4.bundle", at, d[at] == '0' ? '0' ^ '1' : d[at] ^ '0', SIZE_MAX);
        ASSERT_ERROR(open_only(p4, keyring), ENOKEY);
}

static void put_be32_at(const char *name, size_t at, uint32_t v, char **ret) {
        size_t size;
        _cleanup_free_ uint8_t *data = slurp(good, &size);
        data[at] = (uint8_t) (v >> 24);
        data[at + 1] = (uint8_t) (v >> 16);
        data[at + 2] = (uint8_t) (v >> 8);
        data[at + 3] = (uint8_t) v;
        *ret = tpath(name);
        ASSERT_OK(write_file_atomic(*ret, data, size, 0644));
}

static void test_tampered_header(void) {
        _cleanup_free_ char *v2 = NULL, *v0 = NULL, *magic = NULL, *mlen_big = NULL, *mlen_zero = NULL;
        _cleanup_free_ char *mlen_plus = NULL, *mlen_minus = NULL, *siglen = NULL, *reserved = NULL;
        uint32_t mlen = good_manifest_len();

        /* The version is checked right after the magic and before the
         * signature: an unknown version is reported as such. */
        put_be32_at("v2.bundle", 8, 2, &v2);
        ASSERT_ERROR(open_only(v2, keyring), EPROTONOSUPPORT);
        put_be32_at("v0.bundle", 8, 0, &v0);
        ASSERT_ERROR(open_only(v0, keyring), EPROTONOSUPPORT);

        magic = variant("magic.bundle", 0, 'H' ^ 'h', SIZE_MAX);
        ASSERT_ERROR(open_only(magic, keyring), EBADMSG);

        put_be32_at("mlen-big.bundle", 12, MANIFEST_SIZE_MAX + 1, &mlen_big);
        ASSERT_ERROR(open_only(mlen_big, keyring), EBADMSG);
        put_be32_at("mlen-zero.bundle", 12, 0, &mlen_zero);
        ASSERT_ERROR(open_only(mlen_zero, keyring), EBADMSG);
        /* A different length moves the signature: it no longer verifies. */
        put_be32_at("mlen-plus.bundle", 12, mlen + 1, &mlen_plus);
        ASSERT_ERROR(open_only(mlen_plus, keyring), EKEYREJECTED);
        put_be32_at("mlen-minus.bundle", 12, mlen - 1, &mlen_minus);
        ASSERT_ERROR(open_only(mlen_minus, keyring), EKEYREJECTED);

        put_be32_at("siglen.bundle", 16, 63, &siglen);
        ASSERT_ERROR(open_only(siglen, keyring), EBADMSG);
        put_be32_at("reserved.bundle", 20, 1, &reserved);
        ASSERT_ERROR(open_only(reserved, keyring), EBADMSG);
}

static void test_signature(void) {
        _cleanup_free_ char *other = tpath("other.bundle"), *flipped = NULL, *zeroed = NULL;
        _cleanup_(keyring_freep) Keyring *empty = NULL;
        uint32_t mlen = good_manifest_len();

        /* Signed by a key that is not in the keyring. */
        ASSERT_OK(create(other, untrusted));
        ASSERT_ERROR(open_only(other, keyring), ENOKEY);
        ASSERT_OK(keyring_new(&empty));
        ASSERT_ERROR(open_only(good, empty), ENOKEY);

        /* One bit of the signature. */
        flipped = variant("sig-flip.bundle", 24 + mlen + 17, 0x04, SIZE_MAX);
        ASSERT_ERROR(open_only(flipped, keyring), EKEYREJECTED);

        /* All zeros. */
        size_t size;
        _cleanup_free_ uint8_t *d = slurp(good, &size);
        memset(d + 24 + mlen, 0, SIGNATURE_SIZE);
        zeroed = tpath("sig-zero.bundle");
        ASSERT_OK(write_file_atomic(zeroed, d, size, 0644));
        ASSERT_ERROR(open_only(zeroed, keyring), EKEYREJECTED);
}

static void test_truncated(void) {
        uint32_t mlen = good_manifest_len();
        const size_t bad_cuts[] = {
                0, 1, 8, 23,                  /* inside the header */
                24, 24 + mlen / 2, 24 + mlen, /* inside the manifest; signature missing */
                24 + mlen + 1, 24 + mlen + 63, /* inside the signature */
        };

        for (size_t i = 0; i < ELEMENTSOF(bad_cuts); i++) {
                _cleanup_free_ char *p = variant("cut.bundle", 0, 0, bad_cuts[i]);
                ASSERT_ERROR(open_only(p, keyring), EBADMSG);
        }

        /* Header, manifest and signature complete, payloads missing: the
         * bundle opens, and reading a payload finds the truncation. */
        _cleanup_free_ char *nopay = variant("nopayload.bundle", 0, 0, 24 + mlen + 64);
        ASSERT_OK(open_only(nopay, keyring));
        ASSERT_ERROR(extract(nopay, "rootfs"), ENODATA);
        ASSERT_ERROR(verify_all(nopay), ENODATA);

        /* The last byte missing. */
        size_t size;
        free(slurp(good, &size));
        _cleanup_free_ char *short1 = variant("short.bundle", 0, 0, size - 1);
        ASSERT_OK(extract(short1, "rootfs"));
        ASSERT_OK(extract(short1, "kernel"));
        ASSERT_ERROR(extract(short1, "initrd"), ENODATA);
        ASSERT_ERROR(verify_all(short1), ENODATA);

        /* Cut in the middle of the rootfs, after the first buffer. */
        uint64_t area = ALIGN_TO(24 + mlen + 64, 4096);
        _cleanup_free_ char *mid = variant("mid.bundle", 0, 0, (size_t) area + 1536 * 1024);
        ASSERT_ERROR(extract(mid, "rootfs"), ENODATA);
}

static void test_not_a_bundle(void) {
        _cleanup_free_ char *text = tpath("text"), *zeros = tpath("zeros"), *missing = tpath("missing");
        static const char t[] = "This is not a bundle, just some text that is long enough.\n";
        uint8_t z[8192] = {};

        ASSERT_OK(write_file_atomic(text, t, strlen(t), 0644));
        ASSERT_ERROR(open_only(text, keyring), EBADMSG);
        ASSERT_OK(write_file_atomic(zeros, z, sizeof(z), 0644));
        ASSERT_ERROR(open_only(zeros, keyring), EBADMSG);
        /* A key file is not a bundle either. */
        _cleanup_free_ char *pem = tpath("key.pem");
        ASSERT_OK(key_save_public(trusted, pem));
        ASSERT_ERROR(open_only(pem, keyring), EBADMSG);
        ASSERT_ERROR(open_only(missing, keyring), ENOENT);
        ASSERT_ERROR(open_only(dir, keyring), EISDIR);

        /* A FIFO must not block the reader. */
        _cleanup_free_ char *fifo = tpath("fifo");
        ASSERT_OK(mkfifo(fifo, 0600));
        ASSERT_ERROR(open_only(fifo, keyring), EBADMSG);
}

/* Write a bundle by hand: lets a trusted key sign manifests that
 * bundle_create() would never produce. */
static char *raw_bundle(const char *name, const char *manifest, const HullKey *k) {
        size_t mlen = strlen(manifest), total = ALIGN_TO(24 + mlen + 64, 4096) + 8192;
        _cleanup_free_ uint8_t *d = calloc(1, total);
        ASSERT_TRUE(d);
        memcpy(d, "HULLBNDL\0\0\0\1", 12);
        d[12] = (uint8_t) (mlen >> 24);
        d[13] = (uint8_t) (mlen >> 16);
        d[14] = (uint8_t) (mlen >> 8);
        d[15] = (uint8_t) mlen;
        d[19] = 64;
        memcpy(d + 24, manifest, mlen);
        ASSERT_OK(key_sign(k, d, 24 + mlen, d + 24 + mlen));
        char *p = tpath(name);
        ASSERT_OK(write_file_atomic(p, d, total, 0644));
        return p;
}

static json_t *good_manifest_json(void) {
        size_t size;
        _cleanup_free_ uint8_t *d = slurp(good, &size);
        json_t *j = json_loadb((const char *) d + 24, good_manifest_len(), 0, NULL);
        ASSERT_TRUE(j);
        return j;
}

/* Takes the reference to j. */
static int open_signed(json_t *j, const HullKey *k) {
        _cleanup_free_ char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
        json_decref(j);
        ASSERT_TRUE(s);
        _cleanup_free_ char *p = raw_bundle("signed.bundle", s, k);
        return open_only(p, keyring);
}

static void test_signed_but_bad_manifest(void) {
        json_t *j;

        /* The raw writer itself is right. */
        ASSERT_OK(open_signed(good_manifest_json(), trusted));

        j = good_manifest_json();
        json_object_set_new(j, "extra", json_true());
        ASSERT_ERROR(open_signed(j, trusted), EBADMSG);

        j = good_manifest_json();
        json_object_set_new(j, "format", json_integer(3));
        ASSERT_ERROR(open_signed(j, trusted), EPROTONOSUPPORT);

        j = good_manifest_json();
        json_object_set_new(json_array_get(json_object_get(j, "payloads"), 1), "sha256", json_string("abcd"));
        ASSERT_ERROR(open_signed(j, trusted), EBADMSG);

        j = good_manifest_json();
        json_object_set_new(json_array_get(json_object_get(j, "payloads"), 1), "offset", json_integer(0));
        ASSERT_ERROR(open_signed(j, trusted), EBADMSG);

        j = good_manifest_json();
        json_object_set_new(json_array_get(json_object_get(j, "payloads"), 2), "size", json_integer(-1));
        ASSERT_ERROR(open_signed(j, trusted), EBADMSG);

        /* Valid signature by a trusted key, but the manifest claims another
         * key id: not what the signer vouched for. */
        j = good_manifest_json();
        json_object_set_new(j, "key_id", json_string(key_id(untrusted)));
        ASSERT_ERROR(open_signed(j, trusted), EKEYREJECTED);

        /* Signed, but not JSON. */
        _cleanup_free_ char *p = raw_bundle("notjson.bundle", "not json", trusted);
        ASSERT_ERROR(open_only(p, keyring), EBADMSG);
}

static void test_create_errors(void) {
        _cleanup_(manifest_freep) Manifest *m = new_manifest();
        _cleanup_(key_freep) HullKey *pub = NULL;
        _cleanup_free_ char *out = tpath("errors.bundle"), *empty = tpath("empty-input");
        _cleanup_free_ char *missing = tpath("no-such-input"), *pubpath = tpath("pub.pem");
        uint8_t d[32] = {};

        const BundleInput ok[] = { { "rootfs", in_kernel } };
        const BundleInput dup[] = { { "rootfs", in_kernel }, { "rootfs", in_initrd } };
        const BundleInput unsafe[] = { { "../rootfs", in_kernel } };
        const BundleInput nofile[] = { { "rootfs", missing } };
        const BundleInput isdir[] = { { "rootfs", dir } };
        const BundleInput isempty[] = { { "rootfs", empty } };
        ASSERT_OK(write_file_atomic(empty, "", 0, 0644));

        ASSERT_ERROR(bundle_create(out, m, dup, 2, trusted), EEXIST);
        ASSERT_EQ(m->n_payloads, 0); /* rolled back */
        ASSERT_ERROR(bundle_create(out, m, unsafe, 1, trusted), EINVAL);
        ASSERT_ERROR(bundle_create(out, m, nofile, 1, trusted), ENOENT);
        ASSERT_ERROR(bundle_create(out, m, isdir, 1, trusted), EISDIR);
        ASSERT_ERROR(bundle_create(out, m, isempty, 1, trusted), EINVAL);
        ASSERT_ERROR(bundle_create(out, m, ok, 0, trusted), EINVAL);
        ASSERT_EQ(m->n_payloads, 0);

        ASSERT_OK(key_save_public(trusted, pubpath));
        ASSERT_OK(key_load_public(pubpath, &pub));
        ASSERT_ERROR(bundle_create(out, m, ok, 1, pub), ENOKEY);

        /* A manifest field that would not parse: refused before signing. */
        free(m->version);
        m->version = strdup("1.0 beta");
        ASSERT_ERROR(bundle_create(out, m, ok, 1, trusted), EINVAL);
        ASSERT_EQ(m->n_payloads, 0);
        ASSERT_TRUE(access(out, F_OK) < 0 && errno == ENOENT);
        ASSERT_TRUE(no_temporaries());

        /* Into a directory that does not exist. */
        free(m->version);
        m->version = strdup("1.0");
        ASSERT_ERROR(bundle_create("/nonexistent-dir/x.bundle", m, ok, 1, trusted), ENOENT);

        /* The manifest must come without payloads. */
        ASSERT_OK(manifest_add_payload(m, "kernel", 1, d));
        ASSERT_ERROR(bundle_create(out, m, ok, 1, trusted), EINVAL);
        manifest_free(m);

        /* Success replaces an existing file atomically. */
        m = new_manifest();
        ASSERT_OK(write_file_atomic(out, "old", 3, 0644));
        ASSERT_OK(bundle_create(out, m, ok, 1, trusted));
        ASSERT_EQ(m->n_payloads, 1);
        ASSERT_STREQ(m->key_id, key_id(trusted));
        ASSERT_OK(verify_all(out));
        struct stat st;
        ASSERT_OK(stat(out, &st));
        ASSERT_EQ(st.st_mode & 07777, 0644);
        ASSERT_TRUE(no_temporaries());
}


/* ---- streaming ---- */

typedef struct Collect {
        uint8_t *data[3];
        size_t size[3];
        unsigned done_mask;
        bool verified;
        int refuse;           /* returned from 'verified' */
        bool data_before_verified;
} Collect;

static int payload_index(const char *name) {
        return streq(name, "rootfs") ? 0 : streq(name, "kernel") ? 1 : streq(name, "initrd") ? 2 : -1;
}

static int on_verified(const Manifest *m, void *userdata) {
        Collect *c = userdata;
        c->verified = true;
        ASSERT_TRUE(streq(m->version, "1.0.0"));
        return c->refuse;
}

static int on_data(const ManifestPayload *p, uint64_t offset, const void *data, size_t len, void *userdata) {
        Collect *c = userdata;
        int i = payload_index(p->name);
        if (!c->verified)
                c->data_before_verified = true;
        ASSERT_TRUE(i >= 0);
        ASSERT_EQ(offset, c->size[i]); /* in order, no gaps, no repeats */
        uint8_t *n = realloc(c->data[i], c->size[i] + len);
        ASSERT_TRUE(n);
        memcpy(n + c->size[i], data, len);
        c->data[i] = n;
        c->size[i] += len;
        return 0;
}

static int on_done(const ManifestPayload *p, void *userdata) {
        Collect *c = userdata;
        c->done_mask |= 1u << payload_index(p->name);
        return 0;
}

static const BundleStreamOps collect_ops = { on_verified, on_data, on_done };

/* Feed a file in chunks of pseudo-random sizes (1 byte up to 300 KiB);
 * returns the first error, from feed or finish. */
static int stream_file(const char *path, const Keyring *kr, Collect *c, unsigned seed, uint8_t ret_sha[32]) {
        _cleanup_(bundle_stream_freep) BundleStream *s = NULL;
        size_t size, at = 0;
        _cleanup_free_ uint8_t *data = slurp(path, &size);
        int r;

        ASSERT_OK(bundle_stream_new(kr, &collect_ops, c, &s));
        while (at < size) {
                seed = seed * 1103515245u + 12345u;
                size_t n = MIN(size - at, (size_t) (seed >> 8) % (seed & 1 ? 300 * 1024 : 64) + 1);
                r = bundle_stream_feed(s, data + at, n);
                if (r < 0) {
                        ASSERT_EQ(bundle_stream_feed(s, data, 1), r); /* sticky */
                        return r;
                }
                at += n;
                ASSERT_EQ(bundle_stream_position(s), at);
        }
        r = bundle_stream_finish(s);
        if (r >= 0 && ret_sha)
                ASSERT_OK(bundle_stream_file_sha256(s, ret_sha));
        return r;
}

static void collect_done(Collect *c) {
        for (size_t i = 0; i < 3; i++)
                free(c->data[i]);
}

static void test_stream_roundtrip(void) {
        for (unsigned seed = 1; seed <= 20; seed++) {
                Collect c = {};
                uint8_t sha[32], want[32];
                ASSERT_OK(stream_file(good, keyring, &c, seed, sha));
                ASSERT_TRUE(!c.data_before_verified);
                ASSERT_EQ(c.done_mask, 7);
                const char *in[] = { in_rootfs, in_kernel, in_initrd };
                for (size_t i = 0; i < 3; i++) {
                        size_t size;
                        _cleanup_free_ uint8_t *exp = slurp(in[i], &size);
                        ASSERT_EQ(c.size[i], size);
                        ASSERT_TRUE(memcmp(c.data[i], exp, size) == 0);
                }
                size_t size;
                _cleanup_free_ uint8_t *all = slurp(good, &size);
                ASSERT_TRUE(EVP_Digest(all, size, want, NULL, EVP_sha256(), NULL) == 1);
                ASSERT_TRUE(memcmp(sha, want, 32) == 0);
                collect_done(&c);
        }
}

static void test_stream_errors(void) {
        Collect c = {};
        size_t size;
        _cleanup_free_ uint8_t *all = slurp(good, &size);
        uint32_t mlen = good_manifest_len();
        size_t area = ALIGN_TO(24 + mlen + 64, 4096);

        /* A flipped payload byte: the digest catches it at the end of that
         * payload, and no later payload is ever reported done. */
        _cleanup_free_ char *flip = variant("s-flip", area + 10, 0x01, SIZE_MAX);
        ASSERT_EQ(stream_file(flip, keyring, &c, 7, NULL), -EBADMSG);
        ASSERT_EQ(c.done_mask, 0);
        collect_done(&c);

        /* Cut inside a payload: -ENODATA at finish, no payload data before. */
        c = (Collect) {};
        _cleanup_free_ char *cut = variant("s-cut", 0, 0, area + ROOTFS_SIZE / 2);
        ASSERT_EQ(stream_file(cut, keyring, &c, 3, NULL), -ENODATA);
        ASSERT_EQ(c.done_mask, 0);
        collect_done(&c);

        /* Cut inside the head. */
        c = (Collect) {};
        _cleanup_free_ char *cuth = variant("s-cuth", 0, 0, 24 + mlen / 2);
        ASSERT_EQ(stream_file(cuth, keyring, &c, 3, NULL), -EBADMSG);
        ASSERT_TRUE(!c.verified);
        collect_done(&c);

        /* A manifest byte changed: refused before any payload byte. */
        c = (Collect) {};
        _cleanup_free_ char *man = variant("s-man", 24 + mlen / 2, 0x20, SIZE_MAX);
        ASSERT_EQ(stream_file(man, keyring, &c, 5, NULL), -EKEYREJECTED);
        ASSERT_TRUE(!c.verified && c.size[0] == 0);
        collect_done(&c);

        /* Signed by a key we do not trust. */
        c = (Collect) {};
        _cleanup_(keyring_freep) Keyring *empty = NULL;
        ASSERT_OK(keyring_new(&empty));
        ASSERT_EQ(stream_file(good, empty, &c, 5, NULL), -ENOKEY);
        collect_done(&c);

        /* Not a bundle; another format version. */
        c = (Collect) {};
        _cleanup_free_ char *magic = variant("s-magic", 0, 0x01, SIZE_MAX);
        ASSERT_EQ(stream_file(magic, keyring, &c, 5, NULL), -EBADMSG);
        _cleanup_free_ char *ver = variant("s-ver", 11, 0x02, SIZE_MAX);
        ASSERT_EQ(stream_file(ver, keyring, &c, 5, NULL), -EPROTONOSUPPORT);
        collect_done(&c);

        /* The caller refuses the verified manifest (wrong arch, ...): that
         * error comes back and no payload byte is delivered. */
        c = (Collect) { .refuse = -EXDEV };
        ASSERT_EQ(stream_file(good, keyring, &c, 5, NULL), -EXDEV);
        ASSERT_TRUE(c.verified && c.size[0] == 0);
        collect_done(&c);
}

int main(void) {
        ASSERT_TRUE(mkdtemp(dir) != NULL);
        in_rootfs = make_input("rootfs.img", ROOTFS_SIZE, 1);
        in_kernel = make_input("vmlinuz", KERNEL_SIZE, 2);
        in_initrd = make_input("initrd.img", INITRD_SIZE, 3);

        ASSERT_OK(key_generate(&trusted));
        ASSERT_OK(key_generate(&untrusted));
        _cleanup_free_ char *pub = tpath("trusted.pem");
        HullKey *k;
        ASSERT_OK(key_save_public(trusted, pub));
        ASSERT_OK(key_load_public(pub, &k));
        ASSERT_OK(keyring_new(&keyring));
        ASSERT_OK(keyring_add(keyring, k));

        good = tpath("good.bundle");
        ASSERT_OK(create(good, trusted));

        TEST_RUN(test_roundtrip);
        TEST_RUN(test_tampered_payload);
        TEST_RUN(test_tampered_manifest);
        TEST_RUN(test_tampered_header);
        TEST_RUN(test_signature);
        TEST_RUN(test_truncated);
        TEST_RUN(test_not_a_bundle);
        TEST_RUN(test_signed_but_bad_manifest);
        TEST_RUN(test_create_errors);
        TEST_RUN(test_stream_roundtrip);
        TEST_RUN(test_stream_errors);

        keyring_free(keyring);
        key_free(trusted);
        key_free(untrusted);
        free(good);
        free(in_rootfs);
        free(in_kernel);
        free(in_initrd);
        char *rm[] = { (char *) "rm", (char *) "-rf", dir, NULL };
        ASSERT_EQ(spawn_run(rm, NULL), 0);
        return 0;
}
