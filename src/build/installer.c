/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hull-build installer: an EFI ISO and PXE files from a built disk image
 * (docs/INSTALL.md). Everything comes from the disk image itself (its GPT,
 * ESP and root A) plus the build facts JSON next to it, so an installer can
 * be made for any image that was built, without rebuilding it. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cpio.h"
#include "fileio.h"
#include "install.h"
#include "installer.h"
#include "log.h"
#include "provision.h"
#include "spawn.h"
#include "strutil.h"

#define ISO_LABEL "HULL-INSTALL"

static int run_tool(char * const *argv, int log_fd) {
        int r = spawn_run(argv, &(SpawnOptions) { .output_fd = log_fd });
        if (r == 0)
                return 0;
        return log_error_errno(r < 0 ? r : EPROTO, "%s failed%s (see the log)", argv[0], r > 0 ? " with an exit status" : "");
}

/* The build facts hull-build wrote next to the disk image. */
typedef struct Facts {
        char *name, *version, *cmdline;
        uint64_t rootfs_size;
} Facts;

static void facts_done(Facts *f) {
        free(f->name);
        free(f->version);
        free(f->cmdline);
}

static int read_facts(const char *image, Facts *ret) {
        _cleanup_free_ char *path = NULL, *data = NULL;
        size_t len = strlen(image), sz;
        json_error_t e;
        int r;

        if (len > 4 && streq(image + len - 4, ".img"))
                len -= 4;
        if (asprintf(&path, "%.*s.json", (int) len, image) < 0)
                return -ENOMEM;
        r = read_full_file(path, 1 << 20, &data, &sz);
        if (r < 0)
                return log_error_errno(r, "Cannot read the build facts '%s' that hull-build wrote next to the image: %m",
                                       path);
        json_t *o = json_loadb(data, sz, 0, &e);
        const char *name = NULL, *version = NULL, *cmdline = NULL;
        json_int_t rs = 0;
        if (!o || json_unpack(o, "{s:s,s:s,s:s,s:I}", "name", &name, "version", &version, "cmdline", &cmdline,
                              "rootfs_size", &rs) < 0 || rs <= 0) {
                json_decref(o);
                return log_error_errno(EBADMSG, "'%s' is not the build facts of a Hull image (name, version, cmdline, rootfs_size)",
                                       path);
        }
        *ret = (Facts) { strdup(name), strdup(version), strdup(cmdline), (uint64_t) rs };
        json_decref(o);
        if (!ret->name || !ret->version || !ret->cmdline)
                return -ENOMEM;
        return 0;
}

/* The image's kernel arguments, minus what boots an installed slot (its
 * init, its root device, dm-verity of the partition, panic=: a failing
 * installer must stop, not reboot into itself), plus the installer's. */
static int installer_cmdline(const Facts *f, const InstallerOptions *o, const char *live, char **ret) {
        _cleanup_free_ char *copy = strdup(f->cmdline), *s = strdup("");
        char *save = NULL;

        if (!copy || !s)
                return -ENOMEM;
        for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
                if (string_has_prefix(w, "init=") || string_has_prefix(w, "root=") || string_has_prefix(w, "hull.verity.") ||
                    string_has_prefix(w, "panic=") || string_has_prefix(w, "hull.install.") || string_has_prefix(w, "hull.live=") ||
                    streq(w, "ro") || streq(w, "rw"))
                        continue;
                char *n;
                if (asprintf(&n, "%s%s ", s, w) < 0)
                        return -ENOMEM;
                free(s);
                s = n;
        }
        char *n;
        if (asprintf(&n, "%sinit=/usr/lib/hull/hull-install hull.live=%s fastboot hull.install.disk=%s%s%s%s", s, live,
                     o->disk ?: "auto", o->root_size ? " hull.install.root-size=" : "", o->root_size ?: "",
                     o->force ? " hull.install.force=1" : "") < 0)
                return -ENOMEM;
        *ret = n;
        return 0;
}

static int write_text(const char *path, const char *text) {
        int r = write_file_atomic(path, text, strlen(text), 0644);
        return r < 0 ? log_error_errno(r, "Failed to write '%s': %m", path) : 0;
}

/* ---- a newc cpio archive (the PXE media initrd) ------------------------- */

typedef struct CpioFile {
        const char *name; /* below hull-media/hull/ */
        int fd;
        uint64_t offset, size;
} CpioFile;

static int write_media_cpio(const char *path, const CpioFile *files, size_t n) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        unsigned ino = 1;
        int r;

        if (fd < 0)
                return -errno;
        if ((r = cpio_write_header(fd, &(CpioHeader) { "hull-media", S_IFDIR | 0755, 0, ino++ })) < 0 ||
            (r = cpio_write_header(fd, &(CpioHeader) { "hull-media/hull", S_IFDIR | 0755, 0, ino++ })) < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *name = NULL;
                if (asprintf(&name, "hull-media/hull/%s", files[i].name) < 0)
                        return -ENOMEM;
                if ((r = cpio_write_header(fd, &(CpioHeader) { name, S_IFREG | 0644, files[i].size, ino++ })) < 0)
                        return r;
                off_t pos = lseek(fd, 0, SEEK_CUR);
                if (pos < 0)
                        return -errno;
                if ((r = install_copy_range(files[i].fd, files[i].offset, fd, (uint64_t) pos, files[i].size)) < 0)
                        return r;
                if (lseek(fd, pos + (off_t) files[i].size, SEEK_SET) < 0)
                        return -errno;
                if ((r = cpio_write_pad(fd, files[i].size)) < 0)
                        return r;
        }
        if ((r = cpio_write_trailer(fd)) < 0)
                return r;
        return fsync(fd) < 0 ? -errno : 0;
}

/* ---- the EFI boot image of the ISO -------------------------------------- */

static int make_efiboot(const char *work, const char *cmdline, int log_fd, const char *out) {
        _cleanup_free_ char *cfg = NULL, *cfg_path = NULL, *efi = NULL, *arg = NULL;
        int r;

        if (asprintf(&cfg_path, "%s/grub-iso.cfg", work) < 0 || asprintf(&efi, "%s/BOOTX64.EFI", work) < 0 ||
            asprintf(&arg, "boot/grub/grub.cfg=%s", cfg_path) < 0)
                return -ENOMEM;
        /* Embedded in BOOTX64.EFI: find the medium by its label, boot the
         * image's own kernel and initramfs from it. The menu gives a few
         * seconds to edit the hull.install.* arguments. */
        if (asprintf(&cfg,
                     "# Hull installer (made by hull-build installer)\n"
                     "insmod part_gpt\ninsmod part_msdos\ninsmod iso9660\ninsmod fat\n"
                     "serial --unit=0 --speed=115200\n"
                     "terminal_input console serial\nterminal_output console serial\n"
                     "search --no-floppy --set=root --file /hull/install.json\n"
                     "set timeout=3\n"
                     /* Text mode: the console is serial as often as not. */
                     "set gfxpayload=text\n"
                     "menuentry \"Install Hull (writes the disk named by hull.install.disk)\" {\n"
                     "  echo \"hull: loading the installer from $root\"\n"
                     "  linux /hull/vmlinuz %s\n"
                     "  initrd /hull/initrd.img\n"
                     "}\n",
                     cmdline) < 0)
                return -ENOMEM;
        r = write_text(cfg_path, cfg);
        if (r < 0)
                return r;
        char *mk[] = { (char *) "grub-mkstandalone", (char *) "-O", (char *) "x86_64-efi",
                       (char *) "--modules=part_gpt part_msdos iso9660 fat normal configfile test echo linux search "
                                "search_fs_file all_video gzio efi_gop serial terminal sleep",
                       (char *) "--locales=", (char *) "--themes=", (char *) "--fonts=", (char *) "-o", efi, arg, NULL };
        if ((r = run_tool(mk, log_fd)) < 0)
                return r;
        (void) unlink(out);
        char *mkfs[] = { (char *) "mkfs.vfat", (char *) "-n", (char *) "HULL-EFI", (char *) "-C", (char *) out,
                         (char *) "8192", NULL };
        if ((r = run_tool(mkfs, log_fd)) < 0)
                return r;
        char *md[] = { (char *) "mmd", (char *) "-i", (char *) out, (char *) "::/EFI", (char *) "::/EFI/BOOT", NULL };
        if ((r = run_tool(md, log_fd)) < 0)
                return r;
        char *cp[] = { (char *) "mcopy", (char *) "-i", (char *) out, efi, (char *) "::/EFI/BOOT/BOOTX64.EFI", NULL };
        return run_tool(cp, log_fd);
}

static int copy_out_of_esp(const char *image, uint64_t esp_offset, const char *what, const char *dest, int log_fd) {
        _cleanup_free_ char *img = NULL, *src = NULL;
        if (asprintf(&img, "%s@@%llu", image, (unsigned long long) esp_offset) < 0 || asprintf(&src, "::/EFI/hull/a/%s", what) < 0)
                return -ENOMEM;
        (void) unlink(dest);
        char *argv[] = { (char *) "mcopy", (char *) "-n", (char *) "-i", img, src, (char *) dest, NULL };
        return run_tool(argv, log_fd);
}

static int file_copy(const char *src, const char *dest) {
        _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (in < 0 || fstat(in, &st) < 0)
                return -errno;
        _cleanup_close_ int out = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out < 0)
                return -errno;
        return install_copy_range(in, 0, out, 0, (uint64_t) st.st_size);
}

/* The kernel only takes an archive that follows a compressed one at a
 * 4-byte aligned offset; a loader that concatenates initrds (iPXE, GRUB)
 * aligns them, but `cat initrd.img media.cpio` does not. Trailing zeros after
 * the archive are skipped, so padding the file makes both work. */
static int pad_to_4(const char *path) {
        struct stat st;
        if (stat(path, &st) < 0)
                return -errno;
        return truncate(path, (off_t) ALIGN_TO((uint64_t) st.st_size, 4)) < 0 ? -errno : 0;
}

static int make_installer(const InstallerOptions *o, char **work) {
        _cleanup_(facts_done) Facts f = {};
        _cleanup_(install_media_done) InstallMedia m = {};
        _cleanup_free_ char *tree = NULL, *hull = NULL, *log_path = NULL, *config = NULL, *iso = NULL;
        _cleanup_free_ char *pxe = NULL, *json = NULL, *iso_cmdline = NULL, *pxe_cmdline = NULL, *p = NULL;
        DiskLayout l;
        size_t config_len = 0;
        uint64_t esp_z = 0;
        char b1[32], b2[32], b3[32], b4[32];
        struct timespec t0, t1;
        int r;

        (void) clock_gettime(CLOCK_MONOTONIC, &t0);
        r = install_read_image_layout(o->image, &l);
        if (r == -EBADMSG || r == -EINVAL)
                return log_error_errno(r, "'%s' is not a Hull disk image (no GPT with hull-esp, hull-root-a, hull-root-b and "
                                       "hull-persist)", o->image);
        if (r < 0)
                return log_error_errno(r, "Cannot read the partition table of '%s': %m", o->image);
        r = read_facts(o->image, &f);
        if (r < 0)
                return r;
        if (f.rootfs_size > l.part[PART_ROOT_A].size)
                return log_error_errno(EBADMSG, "The build facts say the root image is %llu bytes, more than root A holds",
                                       (unsigned long long) f.rootfs_size);

        /* The machine config: checked now, so a bad one never reaches a disk. */
        if (o->config) {
                _cleanup_(provision_freep) ProvisionConfig *pc = NULL;
                _cleanup_free_ char *err = NULL;
                r = read_full_file(o->config, PROVISION_SIZE_MAX, &config, &config_len);
                if (r < 0)
                        return log_error_errno(r, "Cannot read the machine config '%s': %m", o->config);
                r = provision_parse(config, config_len, &pc, &err);
                if (r < 0)
                        return log_error_errno(r, "%s: %s", o->config, err ?: strerror(-r));
        }
        uint64_t persist_min = o->persist_min ?: l.part[PART_PERSIST].size;
        if (o->root_size && !streq(o->root_size, "max")) {
                uint64_t v;
                if (parse_size(o->root_size, &v) < 0 || v < f.rootfs_size)
                        return log_error_errno(EINVAL, "--root-size %s: expected max or a size of at least the root image (%s)",
                                               o->root_size, format_bytes(b1, sizeof(b1), f.rootfs_size));
        }

        if ((r = mkdir_p(o->output_dir, 0755)) < 0)
                return log_error_errno(r, "Failed to create '%s': %m", o->output_dir);
        if (asprintf(work, "%s/.installer-XXXXXX", o->output_dir) < 0 || asprintf(&log_path, "%s/installer.log", o->output_dir) < 0)
                return -ENOMEM;
        if (!mkdtemp(*work)) {
                *work = mfree(*work);
                return log_error_errno(errno, "Failed to create a work directory: %m");
        }
        _cleanup_close_ int log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_APPEND, 0644);
        if (log_fd < 0) {
                r = log_error_errno(errno, "Failed to open '%s': %m", log_path);
                return r;
        }
        r = -ENOMEM;
        if (asprintf(&tree, "%s/iso", *work) < 0 || asprintf(&hull, "%s/iso/hull", *work) < 0 ||
            asprintf(&iso, "%s/%s-%s-installer.iso", o->output_dir, f.name, f.version) < 0 ||
            asprintf(&pxe, "%s/%s-%s-pxe", o->output_dir, f.name, f.version) < 0)
                return r;
        if ((r = mkdir_p(hull, 0755)) < 0 || (r = mkdir_p(pxe, 0755)) < 0) {
                log_error_errno(r, "Failed to create directories: %m");
                return r;
        }
        fprintf(stderr, "Making the installer for %s %s from %s; log: %s\n", f.name, f.version, o->image, log_path);

        /* The pieces: kernel and initramfs of slot A, root A (file system
         * and dm-verity tree only), the ESP compressed (mostly empty space). */
        free(p);
        if (asprintf(&p, "%s/vmlinuz", hull) < 0 || (r = copy_out_of_esp(o->image, l.part[PART_ESP].offset, "vmlinuz", p, log_fd)) < 0)
                return r;
        free(p);
        if (asprintf(&p, "%s/initrd.img", hull) < 0 ||
            (r = copy_out_of_esp(o->image, l.part[PART_ESP].offset, "initrd.img", p, log_fd)) < 0)
                return r;

        _cleanup_close_ int img = open(o->image, O_RDONLY | O_CLOEXEC);
        if (img < 0) {
                r = log_error_errno(errno, "Cannot open '%s': %m", o->image);
                return r;
        }
        free(p);
        p = NULL;
        if (asprintf(&p, "%s/root.img", hull) < 0) {
                r = -ENOMEM;
                return r;
        }
        {
                _cleanup_close_ int out = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                r = out < 0 ? -errno : install_copy_range(img, l.part[PART_ROOT_A].offset, out, 0, f.rootfs_size);
                if (r < 0) {
                        log_error_errno(r, "Failed to copy root A out of '%s': %m", o->image);
                        return r;
                }
        }
        free(p);
        if (asprintf(&p, "%s/esp.img.zst", hull) < 0) {
                r = -ENOMEM;
                return r;
        }
        {
                struct stat st;
                _cleanup_close_ int out = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                r = out < 0 ? -errno : install_compress_range(img, l.part[PART_ESP].offset, l.part[PART_ESP].size, out, 3);
                if (r >= 0 && fstat(out, &st) >= 0)
                        esp_z = (uint64_t) st.st_size;
                if (r < 0) {
                        log_error_errno(r, "Failed to compress the ESP: %m");
                        return r;
                }
        }
        if (config) {
                free(p);
                if (asprintf(&p, "%s/config.json", hull) < 0) {
                        r = -ENOMEM;
                        return r;
                }
                r = write_file_atomic(p, config, config_len, 0644);
                if (r < 0)
                        return r;
        }

        m = (InstallMedia) {
                .name = strdup(f.name),
                .version = strdup(f.version),
                .esp_size = l.part[PART_ESP].size,
                .root_size = l.part[PART_ROOT_A].size,
                .persist_min = persist_min,
                .root_image_size = f.rootfs_size,
                .esp_image_size = l.part[PART_ESP].size,
                .esp_image = strdup("esp.img.zst"),
                .root_image = strdup("root.img"),
                .config = config ? strdup("config.json") : NULL,
        };
        if (!m.name || !m.version || !m.esp_image || !m.root_image || (config && !m.config)) {
                r = -ENOMEM;
                return r;
        }
        free(p);
        if ((r = install_media_format(&m, &json)) < 0 || asprintf(&p, "%s/install.json", hull) < 0 ||
            (r = write_text(p, json)) < 0)
                return r;

        /* The ISO. */
        if ((r = installer_cmdline(&f, o, ISO_LABEL, &iso_cmdline)) < 0 ||
            (r = installer_cmdline(&f, o, "initrd", &pxe_cmdline)) < 0)
                return r;
        free(p);
        if (asprintf(&p, "%s/efiboot.img", tree) < 0) {
                r = -ENOMEM;
                return r;
        }
        if ((r = make_efiboot(*work, iso_cmdline, log_fd, p)) < 0)
                return r;
        _cleanup_free_ char *tmp_iso = NULL;
        if (asprintf(&tmp_iso, "%s.tmp", iso) < 0) {
                r = -ENOMEM;
                return r;
        }
        (void) unlink(tmp_iso);
        /* -isohybrid-gpt-basdat: the same file written to a USB stick boots
         * as well (the EFI image becomes a GPT partition). */
        char *xorriso[] = { (char *) "xorriso", (char *) "-as", (char *) "mkisofs", (char *) "-iso-level", (char *) "3",
                            (char *) "-R", (char *) "-J", (char *) "-V", (char *) ISO_LABEL, (char *) "-o", tmp_iso,
                            (char *) "-e", (char *) "efiboot.img", (char *) "-no-emul-boot", (char *) "-isohybrid-gpt-basdat",
                            tree, NULL };
        if ((r = run_tool(xorriso, log_fd)) < 0)
                return r;
        if (rename(tmp_iso, iso) < 0) {
                r = log_error_errno(errno, "Failed to move '%s' into place: %m", iso);
                return r;
        }

        /* PXE: the same kernel and initramfs, and the medium as a second
         * initrd (the kernel unpacks concatenated cpio archives). */
        _cleanup_free_ char *pv = NULL, *pi = NULL, *pm = NULL, *ipxe = NULL, *ipxe_path = NULL, *readme = NULL, *rp = NULL;
        if (asprintf(&pv, "%s/vmlinuz", pxe) < 0 || asprintf(&pi, "%s/initrd.img", pxe) < 0 ||
            asprintf(&pm, "%s/media.cpio", pxe) < 0 || asprintf(&ipxe_path, "%s/boot.ipxe", pxe) < 0 ||
            asprintf(&rp, "%s/README", pxe) < 0) {
                r = -ENOMEM;
                return r;
        }
        free(p);
        if (asprintf(&p, "%s/vmlinuz", hull) < 0 || (r = file_copy(p, pv)) < 0) {
                log_error_errno(r, "Failed to write '%s': %m", pv);
                return r;
        }
        free(p);
        if (asprintf(&p, "%s/initrd.img", hull) < 0 || (r = file_copy(p, pi)) < 0 || (r = pad_to_4(pi)) < 0) {
                log_error_errno(r, "Failed to write '%s': %m", pi);
                return r;
        }
        {
                _cleanup_close_ int espz = -EBADF, cfg = -EBADF;
                _cleanup_free_ char *ez = NULL, *cf = NULL;
                CpioFile files[4];
                size_t n = 0;
                if (asprintf(&ez, "%s/esp.img.zst", hull) < 0 || asprintf(&cf, "%s/config.json", hull) < 0) {
                        r = -ENOMEM;
                        return r;
                }
                espz = open(ez, O_RDONLY | O_CLOEXEC);
                if (espz < 0) {
                        r = -errno;
                        return r;
                }
                files[n++] = (CpioFile) { "install.json", -EBADF, 0, strlen(json) };
                files[n++] = (CpioFile) { "esp.img.zst", espz, 0, esp_z };
                if (config) {
                        cfg = open(cf, O_RDONLY | O_CLOEXEC);
                        if (cfg < 0) {
                                r = -errno;
                                return r;
                        }
                        files[n++] = (CpioFile) { "config.json", cfg, 0, config_len };
                }
                files[n++] = (CpioFile) { "root.img", img, l.part[PART_ROOT_A].offset, f.rootfs_size };
                /* install.json from its file on the tree. */
                _cleanup_free_ char *jp = NULL;
                if (asprintf(&jp, "%s/install.json", hull) < 0) {
                        r = -ENOMEM;
                        return r;
                }
                _cleanup_close_ int jfd = open(jp, O_RDONLY | O_CLOEXEC);
                if (jfd < 0) {
                        r = -errno;
                        return r;
                }
                files[0].fd = jfd;
                r = write_media_cpio(pm, files, n);
                if (r < 0) {
                        log_error_errno(r, "Failed to write '%s': %m", pm);
                        return r;
                }
        }
        if (asprintf(&ipxe,
                     "#!ipxe\n"
                     "# Hull installer for %s %s (made by hull-build installer). Serve this\n"
                     "# directory over HTTP and chain this script; see README.\n"
                     "kernel vmlinuz initrd=initrd.img initrd=media.cpio %s\n"
                     "initrd initrd.img\n"
                     "initrd media.cpio\n"
                     "boot\n",
                     f.name, f.version, pxe_cmdline) < 0 ||
            asprintf(&readme,
                     "Hull installer (PXE) for %s %s\n\n"
                     "  vmlinuz      the image's kernel\n"
                     "  initrd.img   the image's initramfs\n"
                     "  media.cpio   the installer medium as a second initrd (root image, ESP, machine config)\n"
                     "  boot.ipxe    an iPXE script loading the three\n\n"
                     "Kernel command line:\n  %s\n\n"
                     "Both initrds must be loaded (in this order; initrd.img is padded to a multiple of\n"
                     "4 bytes, so plain concatenation works too); the machine needs RAM for the medium\n"
                     "(media.cpio) on top of what the system needs. With GRUB:\n"
                     "  linux vmlinuz <command line>\n  initrd initrd.img media.cpio\n\n"
                     "Change hull.install.disk=, hull.install.root-size= and hull.install.force=1 as\n"
                     "docs/INSTALL.md describes.\n",
                     f.name, f.version, pxe_cmdline) < 0) {
                r = -ENOMEM;
                return r;
        }
        if ((r = write_text(ipxe_path, ipxe)) < 0 || (r = write_text(rp, readme)) < 0)
                return r;

        struct stat st;
        (void) clock_gettime(CLOCK_MONOTONIC, &t1);
        fprintf(stderr, "Installer for %s %s made in %.0f s\n  ISO:  %s (%s)\n  PXE:  %s/ (vmlinuz, initrd.img, media.cpio, boot.ipxe)\n"
                "  root image %s, ESP %s compressed to %s\n",
                f.name, f.version, (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9, iso,
                stat(iso, &st) >= 0 ? format_bytes(b1, sizeof(b1), (uint64_t) st.st_size) : "?", pxe,
                format_bytes(b2, sizeof(b2), f.rootfs_size), format_bytes(b3, sizeof(b3), l.part[PART_ESP].size),
                format_bytes(b4, sizeof(b4), esp_z));
        return 0;
}

int installer_run(const InstallerOptions *o) {
        _cleanup_free_ char *work = NULL;
        int r = make_installer(o, &work);
        if (work) {
                char *rm[] = { (char *) "rm", (char *) "-rf", (char *) "--one-file-system", work, NULL };
                (void) spawn_run(rm, &(SpawnOptions) { .output_fd = -1 });
        }
        return r;
}
