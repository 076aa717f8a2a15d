/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <pthread.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "fileio.h"
#include "strutil.h"
#include "update.h"

#define IO_CHUNK (1024 * 1024)
/* Progress is reported at most once per this many bytes (and at phase ends). */
#define PROGRESS_STEP (4 * 1024 * 1024)

static const char *const slot_status_table[_SLOT_STATUS_MAX] = {
        [SLOT_STATUS_EMPTY] = "empty",         [SLOT_STATUS_STAGED] = "staged",
        [SLOT_STATUS_BAD] = "bad",             [SLOT_STATUS_TRYING] = "trying",
        [SLOT_STATUS_EXHAUSTED] = "exhausted", [SLOT_STATUS_GOOD] = "good",
};

const char *slot_status_to_string(SlotStatus s) {
        return s >= 0 && s < _SLOT_STATUS_MAX ? slot_status_table[s] : NULL;
}

static const char *const stage_phase_table[_STAGE_PHASE_MAX] = {
        [STAGE_PHASE_HEADER] = "verifying-header",
        [STAGE_PHASE_WRITING] = "writing",
        [STAGE_PHASE_READBACK] = "reading-back",
        [STAGE_PHASE_FINISHING] = "finishing",
};

const char *stage_phase_to_string(StagePhase p) {
        return p >= 0 && p < _STAGE_PHASE_MAX ? stage_phase_table[p] : NULL;
}

_printf_(3, 4) static int fail(char **ret_error, int r, const char *fmt, ...) {
        va_list ap;
        char *m = NULL;

        if (!ret_error || *ret_error) /* keep the first, most specific message */
                return r;
        errno = -r;
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        *ret_error = m;
        return r;
}

static char *env_path(const UpdateTarget *t) {
        if (t->env_path)
                return strdup(t->env_path);
        return path_join(t->esp_dir, "EFI/hull/grubenv");
}

static void slot_var(Slot s, const char *suffix, char buf[static 32]) {
        snprintf(buf, 32, "hull_%s_%s", slot_to_string(s), suffix);
}

static int load_env(const UpdateTarget *t, GrubEnv **ret_env, BootState *ret_state, char **ret_error) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;
        _cleanup_free_ char *p = env_path(t);
        int r;

        if (!p)
                return -ENOMEM;
        if (t->booted < 0 || t->booted >= _SLOT_MAX)
                return fail(ret_error, -EINVAL, "the booted slot is unknown");
        r = grubenv_load(p, &e);
        if (r < 0)
                return fail(ret_error, r, "cannot read the boot environment %s: %m", p);
        r = boot_state_from_env(e, ret_state);
        if (r < 0)
                return fail(ret_error, r, "the boot environment %s holds invalid boot-counting values", p);
        *ret_env = TAKE_PTR(e);
        return 0;
}

static int save_env(const UpdateTarget *t, GrubEnv *e, const BootState *s, char **ret_error) {
        _cleanup_free_ char *p = env_path(t);
        int r;

        if (!p)
                return -ENOMEM;
        r = boot_state_to_env(s, e);
        if (r < 0)
                return fail(ret_error, r, "invalid boot state");
        r = grubenv_save(e, p);
        if (r < 0)
                return fail(ret_error, r, "cannot write the boot environment %s: %m", p);
        return 0;
}

static SlotStatus slot_status(const GrubEnv *e, const BootState *s, Slot slot) {
        char var[32];
        const SlotState *st = s->slot + slot;

        if (st->priority == 0) {
                slot_var(slot, "staged", var);
                if (streq(grubenv_get(e, var) ?: "", "1"))
                        return SLOT_STATUS_STAGED;
                slot_var(slot, "version", var);
                return isempty(grubenv_get(e, var)) ? SLOT_STATUS_EMPTY : SLOT_STATUS_BAD;
        }
        if (st->good)
                return SLOT_STATUS_GOOD;
        return st->tries > 0 ? SLOT_STATUS_TRYING : SLOT_STATUS_EXHAUSTED;
}

static void fill_info(const UpdateTarget *t, const GrubEnv *e, const BootState *s, SlotInfo ret[static _SLOT_MAX]) {
        for (Slot i = 0; i < _SLOT_MAX; i++) {
                char var[32];
                slot_var(i, "version", var);
                ret[i] = (SlotInfo) {
                        .status = slot_status(e, s, i),
                        .priority = s->slot[i].priority,
                        .tries = s->slot[i].tries,
                        .good = s->slot[i].good,
                        .booted = i == t->booted,
                };
                snprintf(ret[i].version, sizeof(ret[i].version), "%s", grubenv_get(e, var) ?: "");
        }
}

int update_read_slots(const UpdateTarget *t, SlotInfo ret[static _SLOT_MAX]) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;
        BootState s;
        int r = load_env(t, &e, &s, NULL);
        if (r < 0)
                return r;
        fill_info(t, e, &s, ret);
        return 0;
}

/* ---- stage ---- */

/* Read-back verification of the root file system runs on a second thread,
 * a window behind the writer: each finished window is read back from the
 * device into a second SHA-256 with O_DIRECT, which makes the kernel write
 * the range out first and then bypasses the page cache, so the bytes hashed
 * are the ones on the device. (Where O_DIRECT is refused, the range is
 * synced with sync_file_range and dropped from the cache instead.) On two
 * cores this overlaps the second hash with the writing (bench/stage.sh). */
#define VERIFY_WINDOW (8 * 1024 * 1024)
#define DIRECT_ALIGN 4096

typedef struct Verifier {
        pthread_t thread;
        bool started;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        int fd;              /* O_RDONLY on the slot */
        bool direct;         /* fd has O_DIRECT */
        uint64_t size;       /* of the payload */
        uint64_t written;    /* published by the writer */
        uint64_t verified;
        bool abort;
        int error;
        uint8_t digest[32];
} Verifier;

static int verify_range(Verifier *v, EVP_MD_CTX *ctx, uint8_t *buf, uint64_t start, uint64_t end) {
        if (!v->direct) {
                /* Wait for the range to reach the device, then forget the
                 * cached copy so that the read below comes from the device. */
                if (sync_file_range(v->fd, (off64_t) start, (off64_t) (end - start),
                                    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) < 0)
                        return -errno;
                (void) posix_fadvise(v->fd, (off_t) start, (off_t) (end - start), POSIX_FADV_DONTNEED);
        }
        for (uint64_t off = start; off < end;) {
                size_t want = (size_t) MIN((uint64_t) IO_CHUNK, end - off);
                /* O_DIRECT reads whole blocks; only the last one of the
                 * payload can be partial (start and window ends are
                 * aligned), and only 'want' bytes of it are hashed. */
                size_t len = v->direct ? ALIGN_TO(want, (size_t) DIRECT_ALIGN) : want;
                ssize_t n = pread(v->fd, buf, len, (off_t) off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0 || (v->direct && (size_t) n < want))
                        return -EILSEQ;
                size_t use = MIN((size_t) n, want);
                if (EVP_DigestUpdate(ctx, buf, use) != 1)
                        return -EIO;
                off += use;
        }
        return 0;
}

static void *verifier_thread(void *p) {
        Verifier *v = p;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        void *buf = NULL;
        unsigned len = 0;
        int r = 0;

        if (posix_memalign(&buf, DIRECT_ALIGN, IO_CHUNK) != 0)
                buf = NULL;
        if (!ctx || !buf || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
                r = -ENOMEM;
        while (r >= 0) {
                pthread_mutex_lock(&v->lock);
                while (!v->abort && v->written - v->verified < VERIFY_WINDOW && v->written < v->size)
                        pthread_cond_wait(&v->cond, &v->lock);
                bool abort = v->abort;
                uint64_t start = v->verified, end = v->written;
                pthread_mutex_unlock(&v->lock);
                if (abort) {
                        r = -ECANCELED;
                        break;
                }
                if (start == v->size)
                        break;
                if (v->direct && end < v->size)
                        end -= end % DIRECT_ALIGN;
                r = verify_range(v, ctx, buf, start, end);
                pthread_mutex_lock(&v->lock);
                v->verified = end;
                pthread_mutex_unlock(&v->lock);
        }
        if (r >= 0 && (EVP_DigestFinal_ex(ctx, v->digest, &len) != 1 || len != 32))
                r = -EIO;
        v->error = r;
        EVP_MD_CTX_free(ctx);
        free(buf);
        return NULL;
}

static int verifier_start(Verifier *v, const char *device, uint64_t size) {
        pthread_mutex_init(&v->lock, NULL);
        pthread_cond_init(&v->cond, NULL);
        v->size = size;
        v->fd = open(device, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_DIRECT);
        v->direct = v->fd >= 0;
        if (v->fd < 0)
                v->fd = open(device, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (v->fd < 0)
                return -errno;
        int r = -pthread_create(&v->thread, NULL, verifier_thread, v);
        if (r < 0)
                return r;
        v->started = true;
        return 0;
}

static void verifier_advance(Verifier *v, uint64_t written) {
        pthread_mutex_lock(&v->lock);
        v->written = written;
        pthread_cond_signal(&v->cond);
        pthread_mutex_unlock(&v->lock);
}

/* Waits for the verifier; returns its error, or 0 with the digest. */
static int verifier_finish(Verifier *v, bool abort) {
        if (!v->started)
                return -ECANCELED;
        pthread_mutex_lock(&v->lock);
        v->abort = v->abort || abort;
        pthread_cond_signal(&v->cond);
        pthread_mutex_unlock(&v->lock);
        (void) pthread_join(v->thread, NULL);
        v->started = false;
        return v->error;
}

static void verifier_done(Verifier *v) {
        if (v->started)
                (void) verifier_finish(v, true);
        if (v->fd > 0)
                safe_close(v->fd);
        if (v->size > 0) {
                pthread_mutex_destroy(&v->lock);
                pthread_cond_destroy(&v->cond);
        }
}

enum { FILE_KERNEL, FILE_INITRD, _FILE_MAX };
static const char *const file_payload[_FILE_MAX] = { "kernel", "initrd" };
static const char *const file_name[_FILE_MAX] = { "vmlinuz", "initrd.img" };

typedef struct StageCtx {
        const UpdateTarget *t;
        const StageOptions *o;
        char **error;
        Slot slot;
        int dev_fd;
        uint64_t dev_size;
        int file_fd[_FILE_MAX];
        char *tmp_path[_FILE_MAX], *final_path[_FILE_MAX];
        char *slot_dir;
        uint64_t total, last_progress;
        BundleStream *stream;
        bool verified;
        const char *current; /* payload being written, for messages */
        Verifier verifier;
        uint64_t rootfs_size;
} StageCtx;

static void stage_ctx_done(StageCtx *c) {
        verifier_done(&c->verifier);
        safe_close(c->dev_fd);
        for (size_t i = 0; i < _FILE_MAX; i++) {
                safe_close(c->file_fd[i]);
                if (c->tmp_path[i])
                        (void) unlink(c->tmp_path[i]);
                free(c->tmp_path[i]);
                free(c->final_path[i]);
        }
        free(c->slot_dir);
        bundle_stream_free(c->stream);
}

static void progress(StageCtx *c, StagePhase p, uint64_t done, uint64_t total, bool force) {
        if (!c->o || !c->o->progress)
                return;
        if (!force && done - c->last_progress < PROGRESS_STEP && done != total)
                return;
        c->last_progress = done;
        c->o->progress(p, done, total, c->o->userdata);
}

static int io_pwrite_all(const UpdateTarget *t, int fd, const uint8_t *p, size_t len, uint64_t off) {
        while (len > 0) {
                ssize_t n = t->io && t->io->pwrite ? t->io->pwrite(fd, p, len, (off_t) off, t->io->userdata)
                                                   : pwrite(fd, p, len, (off_t) off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t) n;
                off += (uint64_t) n;
        }
        return 0;
}

static int io_fsync(const UpdateTarget *t, int fd) {
        int r = t->io && t->io->fsync ? t->io->fsync(fd, t->io->userdata) : fsync(fd);
        return r < 0 ? -errno : 0;
}

static int device_size(int fd, uint64_t *ret) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISBLK(st.st_mode)) {
                if (ioctl(fd, BLKGETSIZE64, ret) < 0)
                        return -errno;
                return 0;
        }
        if (S_ISREG(st.st_mode)) {
                *ret = (uint64_t) st.st_size;
                return 0;
        }
        return -ENOTBLK;
}

static uint64_t file_size_or_zero(const char *p) {
        struct stat st;
        return stat(p, &st) >= 0 && S_ISREG(st.st_mode) ? (uint64_t) st.st_size : 0;
}

static int on_verified(const Manifest *m, void *userdata) {
        StageCtx *c = userdata;
        const UpdateTarget *t = c->t;
        const StageOptions *o = c->o;
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;
        BootState s;
        char var[32];
        int r;

        /* Everything that can be refused is refused here, before the first
         * write: a bundle for another machine or that does not fit changes
         * nothing. */
        if (!streq(m->arch, t->arch))
                return fail(c->error, -EXDEV, "the bundle is for %s, this node is %s", m->arch, t->arch);
        if (o && o->expect_version && !streq(m->version, o->expect_version))
                return fail(c->error, -EDOM, "the bundle holds version %s, not the requested %s", m->version,
                            o->expect_version);
        if (o && o->expect_key_id && !streq(m->key_id, o->expect_key_id))
                return fail(c->error, -EKEYREVOKED, "the bundle is signed by key %s, not the requested %s",
                            m->key_id, o->expect_key_id);
        const ManifestPayload *rootfs = manifest_find_payload(m, "rootfs");
        if (!rootfs)
                return fail(c->error, -EBADMSG, "the bundle has no 'rootfs' payload");
        uint64_t kernel_files = 0;
        for (size_t i = 0; i < _FILE_MAX; i++) {
                const ManifestPayload *p = manifest_find_payload(m, file_payload[i]);
                if (!p)
                        return fail(c->error, -EBADMSG, "the bundle has no '%s' payload", file_payload[i]);
                kernel_files += p->size;
        }
        if (m->verity_root_hash && m->verity_hash_offset >= rootfs->size)
                return fail(c->error, -EBADMSG, "the bundle's verity hash offset lies outside its root file system");

        c->dev_fd = open(t->slot_device[c->slot], O_WRONLY | O_CLOEXEC | O_EXCL | O_NOCTTY);
        if (c->dev_fd < 0)
                return fail(c->error, -errno, "cannot open slot %s (%s) for writing: %m", slot_to_string(c->slot),
                            t->slot_device[c->slot]);
        r = device_size(c->dev_fd, &c->dev_size);
        if (r < 0)
                return fail(c->error, r, "cannot determine the size of %s: %m", t->slot_device[c->slot]);
        if (rootfs->size > c->dev_size) {
                char a[32], b[32];
                return fail(c->error, -EFBIG, "the root file system (%s) does not fit slot %s (%s)",
                            format_bytes(a, sizeof(a), rootfs->size), slot_to_string(c->slot),
                            format_bytes(b, sizeof(b), c->dev_size));
        }

        c->slot_dir = path_join(t->esp_dir, c->slot == SLOT_A ? "EFI/hull/a" : "EFI/hull/b");
        if (!c->slot_dir)
                return -ENOMEM;
        uint64_t reclaim = 0;
        for (size_t i = 0; i < _FILE_MAX; i++) {
                c->final_path[i] = path_join(c->slot_dir, file_name[i]);
                if (!c->final_path[i] || asprintf(&c->tmp_path[i], "%s.new", c->final_path[i]) < 0)
                        return -ENOMEM;
                reclaim += file_size_or_zero(c->final_path[i]) + file_size_or_zero(c->tmp_path[i]);
        }
        struct statvfs sv;
        if (statvfs(t->esp_dir, &sv) < 0)
                return fail(c->error, -errno, "cannot examine the ESP at %s: %m", t->esp_dir);
        /* Keep 1 MiB for the environment and FAT's own needs. */
        uint64_t avail = (uint64_t) sv.f_bavail * sv.f_frsize + reclaim;
        if (kernel_files + (1 << 20) > avail) {
                char a[32], b[32];
                return fail(c->error, -EFBIG, "the kernel and initrd (%s) do not fit the ESP (%s free)",
                            format_bytes(a, sizeof(a), kernel_files), format_bytes(b, sizeof(b), avail));
        }

        /* The point of no return for the inactive slot: from here on it is
         * bad until the very end. Saved (and synced) before any byte of it
         * changes. */
        r = load_env(t, &e, &s, c->error);
        if (r < 0)
                return r;
        r = boot_state_mark_bad(&s, c->slot);
        if (r < 0)
                return fail(c->error, r, "cannot mark slot %s bad", slot_to_string(c->slot));
        slot_var(c->slot, "staged", var);
        (void) grubenv_unset(e, var);
        slot_var(c->slot, "version", var);
        r = grubenv_set(e, var, m->version);
        if (r < 0)
                return fail(c->error, r, "cannot record the version in the boot environment");
        r = save_env(t, e, &s, c->error);
        if (r < 0)
                return r;

        r = mkdir_p(c->slot_dir, 0755);
        if (r < 0)
                return fail(c->error, r, "cannot create %s: %m", c->slot_dir);
        for (size_t i = 0; i < _FILE_MAX; i++) {
                (void) unlink(c->final_path[i]);
                c->file_fd[i] = open(c->tmp_path[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
                if (c->file_fd[i] < 0)
                        return fail(c->error, -errno, "cannot create %s: %m", c->tmp_path[i]);
        }

        c->total = bundle_stream_total(c->stream);
        c->rootfs_size = rootfs->size;
        r = verifier_start(&c->verifier, t->slot_device[c->slot], rootfs->size);
        if (r < 0)
                return fail(c->error, r, "cannot start reading back %s: %m", t->slot_device[c->slot]);
        c->verified = true;
        return 0;
}

static int on_payload_data(const ManifestPayload *p, uint64_t offset, const void *data, size_t len, void *userdata) {
        StageCtx *c = userdata;
        int fd = -EBADF, r;

        c->current = p->name;
        if (streq(p->name, "rootfs"))
                fd = c->dev_fd;
        else
                for (size_t i = 0; i < _FILE_MAX; i++)
                        if (streq(p->name, file_payload[i]))
                                fd = c->file_fd[i];
        if (fd < 0)
                return 0; /* a payload this agent does not use; still hashed */

        r = io_pwrite_all(c->t, fd, data, len, offset);
        if (r < 0)
                return fail(c->error, r, "writing the '%s' payload to %s failed: %m", p->name,
                            fd == c->dev_fd ? c->t->slot_device[c->slot] : "the ESP");
        if (fd == c->dev_fd)
                verifier_advance(&c->verifier, offset + len);
        progress(c, STAGE_PHASE_WRITING, bundle_stream_position(c->stream) + len, c->total, false);
        return 0;
}

static int stage_sink(const void *data, size_t len, void *userdata) {
        StageCtx *c = userdata;
        return bundle_stream_feed(c->stream, data, len);
}

/* Read 'size' bytes of fd from the medium (not the page cache) and compare
 * their SHA-256 with 'want'. */
static int read_back(StageCtx *c, int fd, uint64_t size, const uint8_t want[static 32], uint64_t *done) {
        _cleanup_free_ uint8_t *buf = malloc(IO_CHUNK);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        uint8_t md[32];
        unsigned mdlen = 0;
        uint64_t off = 0;
        int r = 0;

        if (!buf || !ctx) {
                EVP_MD_CTX_free(ctx);
                return -ENOMEM;
        }
        /* Drop what we wrote from the cache so the read sees the device. */
        (void) posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        (void) ioctl(fd, BLKFLSBUF, 0);

        if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
                r = -EIO;
                goto out;
        }
        while (off < size) {
                ssize_t n = pread(fd, buf, (size_t) MIN((uint64_t) IO_CHUNK, size - off), (off_t) off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        goto out;
                }
                if (n == 0) {
                        r = -EILSEQ;
                        goto out;
                }
                if (EVP_DigestUpdate(ctx, buf, (size_t) n) != 1) {
                        r = -EIO;
                        goto out;
                }
                off += (uint64_t) n;
                *done += (uint64_t) n;
                progress(c, STAGE_PHASE_READBACK, *done, 0, false);
        }
        if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32)
                r = -EIO;
        else if (CRYPTO_memcmp(md, want, 32) != 0)
                r = -EILSEQ;
out:
        EVP_MD_CTX_free(ctx);
        return r;
}

int update_pump_file(UpdateSink sink, void *sink_userdata, void *pump_userdata, char **ret_error) {
        const char *path = pump_userdata;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        _cleanup_free_ uint8_t *buf = NULL;
        struct stat st;

        if (fd < 0)
                return fail(ret_error, -errno, "cannot open %s: %m", path);
        if (fstat(fd, &st) < 0)
                return fail(ret_error, -errno, "cannot examine %s: %m", path);
        if (!S_ISREG(st.st_mode))
                return fail(ret_error, -EBADMSG, "%s is not a regular file", path);
        buf = malloc(IO_CHUNK);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, buf, IO_CHUNK);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return fail(ret_error, -errno, "reading %s failed: %m", path);
                }
                if (n == 0)
                        return 0;
                int r = sink(buf, (size_t) n, sink_userdata);
                if (r < 0)
                        return r;
        }
}

static int stage_explain(StageCtx *c, int r) {
        /* Messages for the errors the stream itself returns. */
        switch (r) {
        case -EBADMSG:
                if (c->verified && c->current)
                        return fail(c->error, r, "the '%s' payload does not match its signed digest: the bundle is corrupt or was tampered with",
                                    c->current);
                return fail(c->error, r, "not a valid Hull bundle (bad header or manifest)");
        case -EKEYREJECTED:
                return fail(c->error, r, "the bundle's signature does not verify: it was modified after signing");
        case -ENOKEY:
                return fail(c->error, r, "the bundle is signed by a key this image does not trust (trusted keys are in /usr/share/hull/keys)");
        case -EPROTONOSUPPORT:
                return fail(c->error, r, "the bundle format is newer than this agent understands");
        case -ENODATA:
                return fail(c->error, r, "the bundle ends early: truncated file or download");
        default:
                return fail(c->error, r, "staging failed: %s", strerror(-r));
        }
}

int update_stage(const UpdateTarget *t, const StageOptions *o, UpdatePump pump, void *pump_userdata, StageResult *ret,
                 char **ret_error) {
        _cleanup_(stage_ctx_done) StageCtx c = {
                .t = t, .o = o, .error = ret_error, .dev_fd = -EBADF, .file_fd = { -EBADF, -EBADF },
        };
        static const BundleStreamOps ops = { on_verified, on_payload_data, NULL };
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;
        BootState s;
        char var[32];
        int r;

        if (!t || !pump || !t->keyring || !t->esp_dir || !t->arch)
                return -EINVAL;
        if (t->booted < 0 || t->booted >= _SLOT_MAX)
                return fail(ret_error, -EINVAL, "the booted slot is unknown");
        c.slot = slot_other(t->booted);
        if (!t->slot_device[c.slot])
                return fail(ret_error, -EINVAL, "no device for slot %s", slot_to_string(c.slot));

        r = bundle_stream_new(t->keyring, &ops, &c, &c.stream);
        if (r < 0)
                return r;
        progress(&c, STAGE_PHASE_HEADER, 0, 0, true);

        if (!o || !o->expect_sha256)
                bundle_stream_no_file_digest(c.stream);
        r = pump(stage_sink, &c, pump_userdata, ret_error);
        if (r >= 0)
                r = bundle_stream_finish(c.stream);
        if (r < 0)
                return stage_explain(&c, r);
        const Manifest *m = bundle_stream_manifest(c.stream);
        progress(&c, STAGE_PHASE_WRITING, bundle_stream_position(c.stream), c.total, true);
        /* Copied now, so that nothing can fail once the slot is staged. */
        _cleanup_(components_done) Components comp = {};
        r = components_copy(&m->components, &comp);
        if (r < 0)
                return r;

        if (o && o->expect_sha256) {
                uint8_t sha[32];
                char want[65], got[65];
                r = bundle_stream_file_sha256(c.stream, sha);
                if (r < 0)
                        return r;
                if (CRYPTO_memcmp(sha, o->expect_sha256, 32) != 0) {
                        hex_encode(o->expect_sha256, 32, want);
                        hex_encode(sha, 32, got);
                        return fail(ret_error, -EUCLEAN, "the bundle's SHA-256 is %s, expected %s", got, want);
                }
        }

        /* Synced, then read back from the medium and compared. */
        r = io_fsync(t, c.dev_fd);
        if (r < 0)
                return fail(ret_error, r, "syncing %s failed: %m", t->slot_device[c.slot]);
        for (size_t i = 0; i < _FILE_MAX; i++) {
                r = io_fsync(t, c.file_fd[i]);
                if (r < 0)
                        return fail(ret_error, r, "syncing %s failed: %m", c.tmp_path[i]);
        }
        uint64_t done = 0;
        progress(&c, STAGE_PHASE_READBACK, 0, 0, true);
        const ManifestPayload *rootfs = manifest_find_payload(m, "rootfs");
        r = verifier_finish(&c.verifier, false);
        if (r >= 0 && CRYPTO_memcmp(c.verifier.digest, rootfs->sha256, 32) != 0)
                r = -EILSEQ;
        if (r < 0)
                return fail(ret_error, r, r == -EILSEQ ? "slot %s does not read back what was written to it: the disk is failing?"
                                                       : "reading slot %s back failed: %m",
                            slot_to_string(c.slot));
        for (size_t i = 0; i < _FILE_MAX; i++) {
                const ManifestPayload *p = manifest_find_payload(m, file_payload[i]);
                _cleanup_close_ int fd = open(c.tmp_path[i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0)
                        return fail(ret_error, -errno, "cannot reopen %s: %m", c.tmp_path[i]);
                r = read_back(&c, fd, p->size, p->sha256, &done);
                if (r < 0)
                        return fail(ret_error, r, "%s does not read back what was written to it", c.tmp_path[i]);
        }

        progress(&c, STAGE_PHASE_FINISHING, 0, 0, true);
        for (size_t i = 0; i < _FILE_MAX; i++) {
                c.file_fd[i] = safe_close(c.file_fd[i]);
                if (rename(c.tmp_path[i], c.final_path[i]) < 0)
                        return fail(ret_error, -errno, "cannot move %s into place: %m", c.final_path[i]);
                c.tmp_path[i] = mfree(c.tmp_path[i]);
        }
        _cleanup_close_ int dfd = open(c.slot_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || syncfs(dfd) < 0)
                return fail(ret_error, -errno, "syncing the ESP failed: %m");

        /* Complete: record how to boot it. Still priority 0 until activate. */
        r = load_env(t, &e, &s, ret_error);
        if (r < 0)
                return r;
        if (s.slot[c.slot].priority != 0)
                return fail(ret_error, -ESTALE, "slot %s changed state while it was being staged", slot_to_string(c.slot));
        slot_var(c.slot, "args", var);
        r = grubenv_set(e, var, m->cmdline ?: "");
        if (r >= 0) {
                slot_var(c.slot, "version", var);
                r = grubenv_set(e, var, m->version);
        }
        if (r >= 0) {
                slot_var(c.slot, "staged", var);
                r = grubenv_set(e, var, "1");
        }
        if (r < 0)
                return fail(ret_error, r, "the image's kernel arguments do not fit the boot environment block");
        r = save_env(t, e, &s, ret_error);
        if (r < 0)
                return r;

        if (ret) {
                ret->slot = c.slot;
                snprintf(ret->version, sizeof(ret->version), "%s", m->version);
                ret->components = comp;
                comp = (Components) {};
        }
        return 0;
}

void stage_result_done(StageResult *r) {
        if (r)
                components_done(&r->components);
}

/* ---- activate, mark-good, rollback ---- */

int update_activate(const UpdateTarget *t, unsigned tries, Slot *ret_slot, char **ret_error) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;
        BootState s;
        char var[32];
        int r = load_env(t, &e, &s, ret_error);
        if (r < 0)
                return r;
        Slot other = slot_other(t->booted);
        SlotStatus st = slot_status(e, &s, other);
        if (st != SLOT_STATUS_STAGED)
                return fail(ret_error, -ENOMEDIUM, "slot %s is %s, not staged: stage an image first", slot_to_string(other),
                            slot_status_to_string(st));
        if (tries == 0) {
                const char *v = grubenv_get(e, ENV_NEW_TRIES);
                if (!v || safe_atou(v, &tries) < 0 || tries < 1 || tries > BOOT_TRIES_MAX)
                        tries = BOOT_TRIES_DEFAULT;
        }
        r = boot_state_install(&s, other, tries);
        if (r < 0)
                return fail(ret_error, r, "tries must be 1 to %d", BOOT_TRIES_MAX);
        slot_var(other, "staged", var);
        (void) grubenv_unset(e, var);
        r = save_env(t, e, &s, ret_error);
        if (r < 0)
                return r;
        if (ret_slot)
                *ret_slot = other;
        return 0;
}

int update_mark_good(const UpdateTarget *t, char **ret_error) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;
        BootState s;
        int r = load_env(t, &e, &s, ret_error);
        if (r < 0)
                return r;
        if (s.slot[t->booted].priority > 0 && s.slot[t->booted].good)
                return 0;
        r = boot_state_mark_good(&s, t->booted);
        if (r < 0)
                return fail(ret_error, r, "slot %s was marked bad while it was running; it cannot be marked good",
                            slot_to_string(t->booted));
        r = save_env(t, e, &s, ret_error);
        return r < 0 ? r : 1;
}

int update_rollback(const UpdateTarget *t, Slot *ret_slot, char **ret_error) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;
        BootState s;
        int r = load_env(t, &e, &s, ret_error);
        if (r < 0)
                return r;
        Slot other = slot_other(t->booted);
        SlotStatus st = slot_status(e, &s, other);
        if (st != SLOT_STATUS_GOOD)
                return fail(ret_error, -ENOMEDIUM, "slot %s is %s: there is no good image to roll back to",
                            slot_to_string(other), slot_status_to_string(st));
        r = boot_state_prefer(&s, other);
        if (r < 0)
                return fail(ret_error, r, "cannot prefer slot %s", slot_to_string(other));
        r = save_env(t, e, &s, ret_error);
        if (r < 0)
                return r;
        if (ret_slot)
                *ret_slot = other;
        return 0;
}

int update_reconcile_boot(const UpdateTarget *t, char ret_failed_version[static 65], char **ret_error) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;
        BootState s;
        char var[32];
        int r = load_env(t, &e, &s, ret_error);
        if (r < 0)
                return r;
        Slot other = slot_other(t->booted);
        const SlotState *o = s.slot + other;
        if (!(o->priority > s.slot[t->booted].priority && !slot_bootable(o)))
                return 0;
        slot_var(other, "version", var);
        snprintf(ret_failed_version, 65, "%s", grubenv_get(e, var) ?: "");
        r = boot_state_mark_bad(&s, other);
        if (r < 0)
                return fail(ret_error, r, "cannot mark slot %s bad", slot_to_string(other));
        r = save_env(t, e, &s, ret_error);
        return r < 0 ? r : 1;
}

int update_check_cmdline(const UpdateTarget *t, const char *args, char **ret_error) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;
        char block[GRUBENV_SIZE];
        BootState s;
        int r = load_env(t, &e, &s, ret_error);
        if (r < 0)
                return r;
        r = grubenv_set(e, ENV_CMDLINE, args ?: "");
        if (r >= 0)
                r = grubenv_format(e, block);
        if (r < 0)
                return fail(ret_error, -ENOSPC,
                            "the kernel arguments (%zu bytes) do not fit the %d-byte GRUB environment block next to "
                            "both slots' own arguments", strlen(args ?: ""), GRUBENV_SIZE);
        return 0;
}

int update_set_cmdline(const UpdateTarget *t, const char *args, char **ret_error) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;
        BootState s;
        int r = load_env(t, &e, &s, ret_error);
        if (r < 0)
                return r;
        if (streq(grubenv_get(e, ENV_CMDLINE) ?: "", args ?: ""))
                return 0;
        r = grubenv_set(e, ENV_CMDLINE, args ?: "");
        if (r < 0)
                return fail(ret_error, r, "the kernel arguments do not fit the boot environment block");
        return save_env(t, e, &s, ret_error);
}
