/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fileio.h"
#include "seed-var.h"

typedef struct SeedContext {
        SeedResult *result;
        size_t len;             /* current length of result->failed_path */
} SeedContext;

/* Track the path of the entry being worked on, so that a failure can name it. */
static int path_push(SeedContext *c, const char *name, size_t *ret_saved) {
        size_t l = strlen(name);

        if (c->len + 1 + l + 1 > sizeof(c->result->failed_path))
                return -ENAMETOOLONG;
        *ret_saved = c->len;
        if (c->len > 0)
                c->result->failed_path[c->len++] = '/';
        memcpy(c->result->failed_path + c->len, name, l + 1);
        c->len += l;
        return 0;
}

static void path_pop(SeedContext *c, size_t saved) {
        c->len = saved;
        c->result->failed_path[saved] = '\0';
}

static void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}
#define _cleanup_closedir_ _cleanup_(closedirp)

/* An independent directory stream on the directory fd, so that the caller's
 * fd keeps its own position and ownership. */
static int opendir_at(int dfd, DIR **ret) {
        int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(fd);
        if (!d) {
                int r = -errno;
                (void) close(fd);
                return r;
        }
        *ret = d;
        return 0;
}

static bool dot_or_dotdot(const char *n) {
        return streq(n, ".") || streq(n, "..");
}

/* rm -rf of one entry, never following symbolic links. */
static int rm_rf_at(int dfd, const char *name, unsigned depth) {
        struct stat st;

        if (depth > SEED_MAX_DEPTH)
                return -ELOOP;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISDIR(st.st_mode))
                return unlinkat(dfd, name, 0) < 0 ? -errno : 0;

        _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        _cleanup_closedir_ DIR *d = NULL;
        int r = opendir_at(fd, &d);
        if (r < 0)
                return r;
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                return -errno;
                        break;
                }
                if (dot_or_dotdot(de->d_name))
                        continue;
                r = rm_rf_at(fd, de->d_name, depth + 1);
                if (r < 0)
                        return r;
        }
        return unlinkat(dfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

static int copy_bytes(int in, int out) {
        char buf[64 * 1024];

        for (;;) {
                ssize_t n = read(in, buf, sizeof(buf));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return 0;
                int r = loop_write(out, buf, (size_t) n);
                if (r < 0)
                        return r;
        }
}

/* Owner first: chown() clears the set-user-ID and set-group-ID bits, which
 * the chmod() after it then restores. Time stamps last, after the content. */
static int copy_attributes_fd(int fd, const struct stat *st) {
        const struct timespec ts[2] = { st->st_atim, st->st_mtim };

        if (fchown(fd, st->st_uid, st->st_gid) < 0)
                return -errno;
        if (fchmod(fd, st->st_mode & 07777) < 0)
                return -errno;
        if (futimens(fd, ts) < 0)
                return -errno;
        return 0;
}

static int copy_dir_contents(SeedContext *c, int src_fd, int dst_fd, unsigned depth);

/* Create dst_name in dst_dfd as a full copy of src_name in src_dfd. */
static int copy_entry(SeedContext *c, int src_dfd, const char *src_name, const struct stat *st,
                      int dst_dfd, const char *dst_name, unsigned depth) {
        int r;

        if (depth > SEED_MAX_DEPTH)
                return -ELOOP;

        switch (st->st_mode & S_IFMT) {

        case S_IFREG: {
                _cleanup_close_ int in = openat(src_dfd, src_name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
                if (in < 0)
                        return -errno;
                _cleanup_close_ int out = openat(dst_dfd, dst_name,
                                                 O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (out < 0)
                        return -errno;
                r = copy_bytes(in, out);
                if (r < 0)
                        return r;
                r = copy_attributes_fd(out, st);
                if (r < 0)
                        return r;
                /* The data must be on disk before the name that makes it visible. */
                if (fsync(out) < 0)
                        return -errno;
                return 0;
        }

        case S_IFDIR: {
                if (mkdirat(dst_dfd, dst_name, 0700) < 0)
                        return -errno;
                _cleanup_close_ int in = openat(src_dfd, src_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (in < 0)
                        return -errno;
                _cleanup_close_ int out = openat(dst_dfd, dst_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (out < 0)
                        return -errno;
                r = copy_dir_contents(c, in, out, depth + 1);
                if (r < 0)
                        return r;
                r = copy_attributes_fd(out, st);
                if (r < 0)
                        return r;
                if (fsync(out) < 0)
                        return -errno;
                return 0;
        }

        case S_IFLNK: {
                char target[PATH_MAX];
                ssize_t n = readlinkat(src_dfd, src_name, target, sizeof(target));
                if (n < 0)
                        return -errno;
                if ((size_t) n >= sizeof(target))
                        return -ENAMETOOLONG;
                target[n] = '\0';
                if (symlinkat(target, dst_dfd, dst_name) < 0)
                        return -errno;
                if (fchownat(dst_dfd, dst_name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
                        return -errno;
                const struct timespec ts[2] = { st->st_atim, st->st_mtim };
                if (utimensat(dst_dfd, dst_name, ts, AT_SYMLINK_NOFOLLOW) < 0)
                        return -errno;
                return 0;
        }

        case S_IFCHR:
        case S_IFBLK:
        case S_IFIFO: {
                if (mknodat(dst_dfd, dst_name, (st->st_mode & S_IFMT) | 0600, st->st_rdev) < 0)
                        return -errno;
                /* By name: we created the node just now, and opening it could
                 * block (FIFO) or have side effects (device). */
                if (fchownat(dst_dfd, dst_name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
                        return -errno;
                if (fchmodat(dst_dfd, dst_name, st->st_mode & 07777, 0) < 0)
                        return -errno;
                const struct timespec ts[2] = { st->st_atim, st->st_mtim };
                if (utimensat(dst_dfd, dst_name, ts, AT_SYMLINK_NOFOLLOW) < 0)
                        return -errno;
                return 0;
        }

        default:
                /* Sockets belong to a running program, not to an image. */
                return 0;
        }
}

static int copy_dir_contents(SeedContext *c, int src_fd, int dst_fd, unsigned depth) {
        _cleanup_closedir_ DIR *d = NULL;
        int r;

        r = opendir_at(src_fd, &d);
        if (r < 0)
                return r;
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                return -errno;
                        return 0;
                }
                if (dot_or_dotdot(de->d_name))
                        continue;

                size_t saved;
                r = path_push(c, de->d_name, &saved);
                if (r < 0)
                        return r;
                struct stat st;
                if (fstatat(src_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return -errno;
                r = copy_entry(c, src_fd, de->d_name, &st, dst_fd, de->d_name, depth);
                if (r < 0)
                        return r;
                path_pop(c, saved);
        }
}

static int seed_dir(SeedContext *c, int src_fd, int dst_fd, unsigned depth) {
        _cleanup_closedir_ DIR *d = NULL;
        bool changed = false;
        int r;

        if (depth > SEED_MAX_DEPTH)
                return -ELOOP;

        /* A leftover of a run that was interrupted: it never got its real name. */
        r = rm_rf_at(dst_fd, SEED_TMP_NAME, 0);
        if (r < 0)
                return r;

        r = opendir_at(src_fd, &d);
        if (r < 0)
                return r;
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                return -errno;
                        break;
                }
                if (dot_or_dotdot(de->d_name) || streq(de->d_name, SEED_TMP_NAME))
                        continue;

                size_t saved;
                r = path_push(c, de->d_name, &saved);
                if (r < 0)
                        return r;

                struct stat st, dst_st;
                if (fstatat(src_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return -errno;

                if (fstatat(dst_fd, de->d_name, &dst_st, AT_SYMLINK_NOFOLLOW) >= 0) {
                        /* Present on both sides: only a real directory on both
                         * sides is looked into; anything else stays as it is. */
                        if (S_ISDIR(st.st_mode) && S_ISDIR(dst_st.st_mode)) {
                                _cleanup_close_ int sub_src = openat(src_fd, de->d_name,
                                                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                                if (sub_src < 0)
                                        return -errno;
                                _cleanup_close_ int sub_dst = openat(dst_fd, de->d_name,
                                                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                                if (sub_dst < 0)
                                        return -errno;
                                r = seed_dir(c, sub_src, sub_dst, depth + 1);
                                if (r < 0)
                                        return r;
                        }
                        path_pop(c, saved);
                        continue;
                }
                if (errno != ENOENT)
                        return -errno;
                if (S_ISSOCK(st.st_mode)) {
                        path_pop(c, saved);
                        continue;
                }

                r = copy_entry(c, src_fd, de->d_name, &st, dst_fd, SEED_TMP_NAME, depth + 1);
                if (r < 0) {
                        (void) rm_rf_at(dst_fd, SEED_TMP_NAME, 0);
                        return r;
                }
                /* RENAME_NOREPLACE: even a racing creator of the name wins over us. */
                if (renameat2(dst_fd, SEED_TMP_NAME, dst_fd, de->d_name, RENAME_NOREPLACE) < 0) {
                        r = -errno;
                        (void) rm_rf_at(dst_fd, SEED_TMP_NAME, 0);
                        return r;
                }
                changed = true;
                c->result->copied++;
                path_pop(c, saved);
        }

        /* Make the new names durable. */
        if (changed && fsync(dst_fd) < 0)
                return -errno;
        return 0;
}

int seed_tree(const char *src, const char *dst, SeedResult *result) {
        SeedContext c = { .result = result };

        result->copied = 0;
        result->failed_path[0] = '\0';

        _cleanup_close_ int src_fd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (src_fd < 0)
                return -errno;
        _cleanup_close_ int dst_fd = open(dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dst_fd < 0)
                return -errno;

        int r = seed_dir(&c, src_fd, dst_fd, 0);
        if (r >= 0)
                result->failed_path[0] = '\0';
        return r;
}
