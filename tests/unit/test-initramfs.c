/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hull-build's initramfs: the module plan from fixture modules.{dep,softdep,
 * alias,builtin}, initrd.conf as hull-initrd parses it, and the newc archive
 * parsed back byte by byte, twice identical. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "initramfs.h"
#include "initrd-conf.h"
#include "tests.h"

static const char dep[] =
        "kernel/fs/erofs/erofs.ko: kernel/lib/libcrc32c.ko\n"
        "kernel/lib/libcrc32c.ko:\n"
        "kernel/crypto/crc32c_generic.ko:\n"
        "kernel/arch/x86/crypto/crc32c-intel.ko:\n"
        "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko kernel/lib/crc16.ko\n"
        "kernel/fs/jbd2/jbd2.ko:\n"
        "kernel/fs/mbcache.ko:\n"
        "kernel/lib/crc16.ko:\n"
        "kernel/fs/overlayfs/overlay.ko:\n"
        "kernel/drivers/md/dm-verity.ko: kernel/drivers/md/dm-bufio.ko kernel/drivers/md/dm-mod.ko\n"
        "kernel/drivers/md/dm-bufio.ko:\n"
        "kernel/drivers/md/dm-mod.ko:\n"
        "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n"
        "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko "
        "kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n"
        "kernel/drivers/virtio/virtio_pci_modern_dev.ko:\n"
        "kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko\n"
        "kernel/drivers/virtio/virtio.ko:\n"
        "kernel/drivers/block/loop.ko:\n";
static const char softdep[] =
        "# Soft dependencies extracted from modules themselves.\n"
        "softdep libcrc32c pre: crc32c\n"
        "softdep ext4 pre: crypto-crc32c\n"
        "softdep virtio_blk loop post: loop\n";
static const char alias[] =
        "# Aliases extracted from modules themselves.\n"
        "alias crypto-crc32c crc32c_generic\n"
        "alias crc32c crc32c_generic\n"
        "alias crypto-crc32c crc32c_intel\n"
        "alias crc32c crc32c_intel\n"
        "alias virtio:d00000002v* virtio_blk\n"
        "alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\n"
        "alias acpi*:PNP0A03:* virtio_pci\n"
        "alias devname:loop-control loop\n"
        "alias fs-erofs erofs\n";
static const char builtin[] = "kernel/crypto/sha256_generic.ko\nkernel/lib/crc32.ko\n";

static ssize_t find(const InitramfsPlan *p, const char *name) {
        for (size_t i = 0; i < p->n_modules; i++)
                if (streq(p->modules[i].name, name))
                        return (ssize_t) i;
        return -1;
}

static bool has_dep_in(const InitramfsPlan *p, const char *user, const char *dep_name, bool soft) {
        ssize_t u = find(p, user), d = find(p, dep_name);
        ASSERT_TRUE(u >= 0 && d >= 0);
        const size_t *l = soft ? p->modules[u].softs : p->modules[u].deps;
        size_t n = soft ? p->modules[u].n_softs : p->modules[u].n_deps;
        for (size_t i = 0; i < n; i++)
                if (l[i] == (size_t) d)
                        return true;
        return false;
}
#define has_dep(p, u, d) has_dep_in(p, u, d, false)
#define has_soft(p, u, d) has_dep_in(p, u, d, true)

static void test_plan(void) {
        _cleanup_(modtrim_freep) ModTrim *idx = NULL;
        InitramfsPlan p = {};
        char *err = NULL;

        ASSERT_OK(modtrim_load(&(ModTrimSources) { dep, softdep, alias, builtin }, &idx, &err));
        char *required[] = { "dm-verity", "erofs", "ext4", "overlay", "sha256_generic", NULL };
        char *storage[] = { "virtio_pci", "virtio-blk", "nvme", NULL };
        char *live[] = { "loop", "virtio_blk", "isofs", NULL };
        ASSERT_OK(initramfs_plan(idx, required, storage, live, &p, &err));

        /* Every dependency before its user (and only earlier indices). */
        for (size_t i = 0; i < p.n_modules; i++) {
                for (size_t d = 0; d < p.modules[i].n_deps; d++)
                        ASSERT_TRUE(p.modules[i].deps[d] < i);
                for (size_t d = 0; d < p.modules[i].n_softs; d++)
                        ASSERT_TRUE(p.modules[i].softs[d] < i);
        }
        ASSERT_TRUE(find(&p, "dm_mod") < find(&p, "dm_verity"));
        ASSERT_TRUE(has_dep(&p, "dm_verity", "dm_bufio"));
        /* softdep pre: through modules.alias: both crc32c drivers, as soft
         * dependencies (crc32c_intel fails without SSE4.2). */
        ASSERT_TRUE(has_soft(&p, "libcrc32c", "crc32c_generic"));
        ASSERT_TRUE(has_soft(&p, "libcrc32c", "crc32c_intel"));
        ASSERT_TRUE(!has_dep(&p, "libcrc32c", "crc32c_intel"));
        ASSERT_TRUE(has_soft(&p, "ext4", "crc32c_generic"));
        ASSERT_TRUE(has_dep(&p, "ext4", "jbd2"));
        ASSERT_TRUE(has_dep(&p, "erofs", "libcrc32c"));
        ASSERT_TRUE(find(&p, "crc32c_generic") < find(&p, "libcrc32c"));
        /* Only "pre:" names: not post: ones nor words before pre:. */
        ASSERT_EQ(p.modules[find(&p, "virtio_blk")].n_softs, 0);
        /* Built in: not listed, not an error. */
        ASSERT_TRUE(find(&p, "sha256_generic") < 0);
        ASSERT_TRUE(find(&p, "crc32") < 0);
        /* Classes: roots keep theirs, the rest are deps; storage beats live. */
        ASSERT_EQ(p.modules[find(&p, "erofs")].class, INITRAMFS_REQUIRED);
        ASSERT_EQ(p.modules[find(&p, "dm_mod")].class, INITRAMFS_DEP);
        ASSERT_EQ(p.modules[find(&p, "virtio_pci")].class, INITRAMFS_STORAGE);
        ASSERT_EQ(p.modules[find(&p, "virtio_blk")].class, INITRAMFS_STORAGE);
        ASSERT_EQ(p.modules[find(&p, "virtio")].class, INITRAMFS_DEP);
        ASSERT_EQ(p.modules[find(&p, "loop")].class, INITRAMFS_LIVE);
        /* Storage aliases: device buses only, not acpi or devname. */
        char **a = p.modules[find(&p, "virtio_pci")].aliases;
        ASSERT_TRUE(a && streq(a[0], "pci:v00001AF4d*sv*sd*bc*sc*i*") && !a[1]);
        ASSERT_TRUE(p.modules[find(&p, "loop")].aliases == NULL);
        ASSERT_EQ(p.n_modules, 18); /* each of the 18 fixture modules once */
        /* Missing optional names are reported, not fatal. */
        ASSERT_TRUE(p.missing && streq(p.missing[0], "nvme") && streq(p.missing[1], "isofs") && !p.missing[2]);

        /* hull-initrd reads what the builder writes. */
        _cleanup_free_ char *conf = NULL;
        ASSERT_OK(initramfs_conf_format(&p, "6.1.0-50-amd64", "erofs", "demo-1", &conf));
        InitrdConf c = {};
        unsigned line = 0;
        ASSERT_OK(initrd_conf_parse(conf, strlen(conf), &c, &line));
        ASSERT_EQ(c.n_modules, p.n_modules);
        for (size_t i = 0; i < c.n_modules; i++) {
                ASSERT_STREQ(c.modules[i].path, p.modules[i].path);
                ASSERT_EQ(c.modules[i].n_deps, p.modules[i].n_deps);
                ASSERT_EQ(c.modules[i].n_softs, p.modules[i].n_softs);
                ASSERT_EQ((int) c.modules[i].class, (int) p.modules[i].class);
        }
        InitrdModule *vp = NULL;
        for (size_t i = 0; i < c.n_modules; i++)
                if (streq(c.modules[i].name, "virtio_pci"))
                        vp = &c.modules[i];
        ASSERT_TRUE(vp && initrd_module_matches(vp, "pci:v00001AF4d00001042sv00001AF4sd00001100bc01sc00i00"));
        ASSERT_STREQ(c.rootfstype, "erofs");
        initrd_conf_done(&c);
        initramfs_plan_done(&p);

        /* A required module the kernel lacks is an error naming it. */
        char *req2[] = { "btrfs", NULL };
        ASSERT_ERROR(initramfs_plan(idx, req2, NULL, NULL, &p, &err), ENOENT);
        ASSERT_TRUE(err && strstr(err, "btrfs"));
        free(err);
        err = NULL;
}

/* Names that only an alias of a built-in module answers need no module
 * (modtrim keeps those patterns apart from the loadable ones'). */
static void test_builtin_alias(void) {
        _cleanup_(modtrim_freep) ModTrim *idx = NULL;
        InitramfsPlan p = {};
        char *err = NULL;
        char *req[] = { "libcrc32c", "crypto-crc32c", NULL }, *sto[] = { "crc32c", "no-such", NULL };

        ASSERT_OK(modtrim_load(&(ModTrimSources) { "kernel/lib/libcrc32c.ko:\n", "softdep libcrc32c pre: crc32c\n",
                                       "alias crypto-crc32c crc32c_generic\nalias crc32c crc32c_generic\n",
                                       "kernel/crypto/crc32c_generic.ko\n" },
                                     &idx, &err));
        ASSERT_OK(initramfs_plan(idx, req, sto, NULL, &p, &err));
        ASSERT_EQ(p.n_modules, 1);
        ASSERT_EQ(p.modules[0].n_softs, 0);
        ASSERT_TRUE(p.missing && streq(p.missing[0], "no-such") && !p.missing[1]);
        initramfs_plan_done(&p);
}

static void test_index_errors(void) {
        ModTrim *idx = NULL;
        char *err = NULL;

        /* The index is modtrim's: its errors name the file and line. */
        ASSERT_ERROR(modtrim_load(&(ModTrimSources) { "kernel/a.ko\n" }, &idx, &err), EBADMSG);
        ASSERT_TRUE(err && strstr(err, "modules.dep:1"));
        /* A dependency without a line of its own is malformed there. */
        ASSERT_ERROR(modtrim_load(&(ModTrimSources) { "a.ko: b.ko\n" }, &idx, &err), EBADMSG);
        ASSERT_TRUE(strstr(err, "not in modules.dep"));
        free(err);
        err = NULL;

        /* A cycle. */
        InitramfsPlan p = {};
        char *req[] = { "a", NULL };
        ASSERT_OK(modtrim_load(&(ModTrimSources) { "a.ko: b.ko\nb.ko: a.ko\n" }, &idx, &err));
        ASSERT_ERROR(initramfs_plan(idx, req, NULL, NULL, &p, &err), ELOOP);
        ASSERT_TRUE(err && strstr(err, "depends on itself"));
        idx = modtrim_free(idx);
        free(err);
}

/* ---- the archive -------------------------------------------------------- */

static unsigned hex8(const char *s) {
        char b[9];
        memcpy(b, s, 8);
        b[8] = '\0';
        return (unsigned) strtoul(b, NULL, 16);
}

static void write_file(const char *dir, const char *rel, const char *content) {
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", dir, rel);
        char *slash = strrchr(p, '/');
        *slash = '\0';
        ASSERT_OK(mkdir_p(p, 0755));
        *slash = '/';
        ASSERT_OK(write_file_atomic(p, content, strlen(content), 0644));
}

static void test_cpio(void) {
        char dir[] = "/tmp/test-initramfs.XXXXXX";
        ASSERT_TRUE(mkdtemp(dir));
        _cleanup_(modtrim_freep) ModTrim *idx = NULL;
        InitramfsPlan p = {};
        char *err = NULL;

        ASSERT_OK(modtrim_load(&(ModTrimSources) { "kernel/fs/erofs/erofs.ko: kernel/lib/libcrc32c.ko\n"
                                                   "kernel/lib/libcrc32c.ko:\nkernel/drivers/block/virtio_blk.ko:\n",
                                       NULL, "alias virtio:d00000002v* virtio_blk\n" },
                                     &idx, &err));
        char *req[] = { "erofs", NULL }, *sto[] = { "virtio_blk", NULL };
        ASSERT_OK(initramfs_plan(idx, req, sto, NULL, &p, &err));
        write_file(dir, "root/usr/lib/modules/6.1/kernel/fs/erofs/erofs.ko", "EROFS-MODULE-BYTES");
        write_file(dir, "root/usr/lib/modules/6.1/kernel/lib/libcrc32c.ko", "crc!");
        write_file(dir, "root/usr/lib/modules/6.1/kernel/drivers/block/virtio_blk.ko", "vblk\x01\x02\x03");
        write_file(dir, "hull-initrd", "#!static-binary");

        char root[300], bin[300], a1[300], a2[300];
        snprintf(root, sizeof(root), "%s/root", dir);
        snprintf(bin, sizeof(bin), "%s/hull-initrd", dir);
        snprintf(a1, sizeof(a1), "%s/a1.cpio", dir);
        snprintf(a2, sizeof(a2), "%s/a2.cpio", dir);
        InitramfsOptions o = { .root = root, .kver = "6.1", .initrd_binary = bin, .rootfstype = "erofs",
                               .mtime = 1700000000 };
        _cleanup_free_ char *conf = NULL;
        ASSERT_OK(initramfs_conf_format(&p, "6.1", "erofs", NULL, &conf));

        for (int k = 0; k < 2; k++) {
                int fd = open(k ? a2 : a1, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                ASSERT_TRUE(fd >= 0);
                ASSERT_OK(initramfs_write_cpio(fd, &o, &p, conf, &err));
                close(fd);
        }
        _cleanup_free_ char *b1 = NULL, *b2 = NULL;
        size_t s1, s2;
        ASSERT_OK(read_full_file(a1, 1 << 20, &b1, &s1));
        ASSERT_OK(read_full_file(a2, 1 << 20, &b2, &s2));
        ASSERT_EQ(s1, s2);
        ASSERT_TRUE(memcmp(b1, b2, s1) == 0);
        ASSERT_EQ(s1 % 4, 0);

        /* Parse it back. */
        const char *want_files[][2] = {
                { "init", "#!static-binary" },
                { "usr/lib/modules/6.1/kernel/fs/erofs/erofs.ko", "EROFS-MODULE-BYTES" },
                { "usr/lib/modules/6.1/kernel/lib/libcrc32c.ko", "crc!" },
                { "usr/lib/modules/6.1/kernel/drivers/block/virtio_blk.ko", "vblk\x01\x02\x03" },
                { "usr/lib/hull/initrd.conf", conf },
        };
        bool seen[ELEMENTSOF(want_files)] = {}, console = false, sysroot = false, trailer = false;
        char prev[256] = "";
        size_t off = 0;
        unsigned ino = 0;
        while (off < s1) {
                const char *h = b1 + off;
                ASSERT_TRUE(memcmp(h, "070701", 6) == 0);
                unsigned f[13];
                for (int i = 0; i < 13; i++)
                        f[i] = hex8(h + 6 + 8 * i);
                const char *name = h + 110;
                ASSERT_EQ(strlen(name) + 1, f[11]);
                size_t data = ALIGN_TO(off + 110 + f[11], 4);
                off = ALIGN_TO(data + f[6], 4);
                if (streq(name, "TRAILER!!!")) {
                        trailer = true;
                        ASSERT_EQ(off, s1);
                        break;
                }
                ASSERT_EQ(f[0], ++ino);              /* inodes 1, 2, ... */
                ASSERT_EQ(f[2], 0);                  /* uid */
                ASSERT_EQ(f[3], 0);                  /* gid */
                ASSERT_EQ(f[5], 1700000000);         /* mtime */
                ASSERT_TRUE(strcmp(prev, name) < 0); /* sorted, parents first */
                snprintf(prev, sizeof(prev), "%s", name);
                if (S_ISDIR(f[1])) {
                        ASSERT_EQ(f[4], 2);
                        ASSERT_EQ(f[6], 0);
                }
                /* Every entry's parent came before it. */
                const char *slash = strrchr(name, '/');
                if (slash) {
                        char parent[256];
                        snprintf(parent, sizeof(parent), "%.*s", (int) (slash - name), name);
                        ASSERT_TRUE(memmem(b1, (size_t) (h - b1), parent, strlen(parent) + 1) != NULL);
                }
                if (streq(name, "dev/console")) {
                        console = true;
                        ASSERT_EQ(f[1], S_IFCHR | 0600);
                        ASSERT_EQ(f[9], 5);
                        ASSERT_EQ(f[10], 1);
                }
                if (streq(name, "sysroot"))
                        sysroot = true;
                for (size_t i = 0; i < ELEMENTSOF(want_files); i++)
                        if (streq(name, want_files[i][0])) {
                                seen[i] = true;
                                ASSERT_EQ(f[6], strlen(want_files[i][1]));
                                ASSERT_TRUE(memcmp(b1 + data, want_files[i][1], f[6]) == 0);
                                ASSERT_EQ(f[1] & 07777, streq(name, "init") ? 0755 : 0644);
                        }
        }
        ASSERT_TRUE(trailer && console && sysroot);
        for (size_t i = 0; i < ELEMENTSOF(want_files); i++)
                ASSERT_TRUE(seen[i]);

        /* A module file that is missing is an error naming it. */
        char gone[400];
        snprintf(gone, sizeof(gone), "%s/usr/lib/modules/6.1/kernel/lib/libcrc32c.ko", root);
        ASSERT_OK(unlink(gone) < 0 ? -errno : 0);
        int fd = open(a1, O_WRONLY | O_TRUNC | O_CLOEXEC);
        ASSERT_ERROR(initramfs_write_cpio(fd, &o, &p, conf, &err), ENOENT);
        ASSERT_TRUE(err && strstr(err, "libcrc32c.ko"));
        close(fd);
        free(err);

        initramfs_plan_done(&p);
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        ASSERT_EQ(system(cmd), 0);
}

int main(void) {
        test_plan();
        test_builtin_alias();
        test_index_errors();
        test_cpio();
        return 0;
}
