/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "dm.h"

#define DM_CONTROL "/dev/mapper/control"
#define DM_STATUS_BUFFER_MAX (1U << 20)

int dm_status_single_target(const void *buf, size_t size, char **ret_type, char **ret_params) {
        struct dm_ioctl io;
        struct dm_target_spec spec;

        if (size < sizeof(io))
                return -EBADMSG;
        memcpy(&io, buf, sizeof(io));

        size_t end = MIN((size_t) io.data_size, size);
        if (io.data_start < sizeof(io) || io.data_start > end)
                return -EBADMSG;
        if (io.target_count != 1)
                return -EMEDIUMTYPE;

        const char *data = (const char *) buf + io.data_start;
        size_t avail = end - io.data_start;
        if (avail < sizeof(spec))
                return -EBADMSG;
        memcpy(&spec, data, sizeof(spec));

        if (strnlen(spec.target_type, sizeof(spec.target_type)) == sizeof(spec.target_type))
                return -EBADMSG;
        const char *params = data + sizeof(spec);
        size_t plen = strnlen(params, avail - sizeof(spec));
        if (plen == avail - sizeof(spec))
                return -EBADMSG;

        _cleanup_free_ char *t = strdup(spec.target_type);
        _cleanup_free_ char *p = strndup(params, plen);
        if (!t || !p)
                return -ENOMEM;
        *ret_type = TAKE_PTR(t);
        *ret_params = TAKE_PTR(p);
        return 0;
}

static void dm_init(struct dm_ioctl *io, size_t size, const char *name) {
        memset(io, 0, sizeof(*io));
        io->version[0] = DM_VERSION_MAJOR;
        io->version[1] = 0;
        io->version[2] = 0;
        io->data_size = (uint32_t) size;
        io->data_start = sizeof(struct dm_ioctl);
        if (name)
                (void) snprintf(io->name, sizeof(io->name), "%s", name);
}

int dm_table_load_request(void *buf, size_t size, const char *name, const char *type, uint64_t sectors,
                          const char *params, size_t *ret_size) {
        struct dm_target_spec spec = {};
        size_t plen = strlen(params) + 1;
        /* The kernel walks targets by spec.next from each spec; keep the
         * whole request 8-byte aligned as libdevmapper does. */
        size_t need = sizeof(struct dm_ioctl) + ALIGN_TO(sizeof(spec) + plen, 8);

        if (strlen(name) >= DM_NAME_LEN || strlen(type) >= sizeof(spec.target_type))
                return -EINVAL;
        if (need > size || need > UINT32_MAX)
                return -E2BIG;
        memset(buf, 0, need);
        struct dm_ioctl *io = buf;
        dm_init(io, need, name);
        io->target_count = 1;
        io->flags = DM_READONLY_FLAG;

        spec.sector_start = 0;
        spec.length = sectors;
        spec.status = 0;
        spec.next = (uint32_t) (need - sizeof(struct dm_ioctl));
        memcpy(spec.target_type, type, strlen(type) + 1);
        memcpy((uint8_t *) buf + sizeof(struct dm_ioctl), &spec, sizeof(spec));
        memcpy((uint8_t *) buf + sizeof(struct dm_ioctl) + sizeof(spec), params, plen);
        *ret_size = need;
        return 0;
}

static int dm_simple(int fd, unsigned long req, const char *name, uint32_t flags, struct dm_ioctl *ret) {
        struct dm_ioctl io;

        dm_init(&io, sizeof(io), name);
        io.flags = flags;
        if (ioctl(fd, req, &io) < 0)
                return -errno;
        if (ret)
                *ret = io;
        return 0;
}

int dm_create_readonly(const char *name, const char *uuid, const char *type, uint64_t sectors, const char *params,
                       dev_t *ret_dev) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ void *buf = NULL;
        struct dm_ioctl io;
        size_t size = sizeof(struct dm_ioctl) + sizeof(struct dm_target_spec) + strlen(params) + 16, used;
        int r;

        if (strlen(name) >= DM_NAME_LEN || (uuid && strlen(uuid) >= DM_UUID_LEN) || strchr(name, '/'))
                return -EINVAL;
        buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        r = dm_table_load_request(buf, size, name, type, sectors, params, &used);
        if (r < 0)
                return r;

        fd = open(DM_CONTROL, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return -errno;

        dm_init(&io, sizeof(io), name);
        if (uuid)
                (void) snprintf(io.uuid, sizeof(io.uuid), "%s", uuid);
        if (ioctl(fd, DM_DEV_CREATE, &io) < 0)
                return -errno;

        /* Load the table, then resume: a new device is suspended and has
         * no table until then. */
        r = ioctl(fd, DM_TABLE_LOAD, buf) < 0 ? -errno : 0;
        if (r >= 0)
                r = dm_simple(fd, DM_DEV_SUSPEND, name, 0, &io);
        if (r < 0) {
                (void) dm_simple(fd, DM_DEV_REMOVE, name, 0, NULL);
                return r;
        }

        /* devtmpfs made /dev/dm-N; /dev/mapper/NAME is what udev would add
         * and what hull-init and findmnt show. */
        char path[sizeof("/dev/mapper/") + DM_NAME_LEN];
        (void) snprintf(path, sizeof(path), "/dev/mapper/%s", name);
        (void) unlink(path);
        if (mknod(path, S_IFBLK | 0600, makedev(major(io.dev), minor(io.dev))) < 0) {
                r = -errno;
                (void) dm_simple(fd, DM_DEV_REMOVE, name, 0, NULL);
                return r;
        }
        if (ret_dev)
                *ret_dev = makedev(major(io.dev), minor(io.dev));
        return 0;
}

static int dm_table_status_call(const char *name, uint32_t flags, char **ret_type, char **ret_params) {
        _cleanup_close_ int fd = open(DM_CONTROL, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return -errno;

        for (size_t size = 16384;; size *= 2) {
                if (size > DM_STATUS_BUFFER_MAX)
                        return -E2BIG;
                _cleanup_free_ void *buf = calloc(1, size);
                if (!buf)
                        return -ENOMEM;
                struct dm_ioctl *io = buf;
                dm_init(io, size, name);
                io->flags = flags;
                if (ioctl(fd, DM_TABLE_STATUS, io) < 0)
                        return -errno;
                if (io->flags & DM_BUFFER_FULL_FLAG)
                        continue;
                return dm_status_single_target(buf, size, ret_type, ret_params);
        }
}

int dm_target_status(const char *name, char **ret_type, char **ret_status) {
        return dm_table_status_call(name, 0, ret_type, ret_status);
}

int dm_target_table(const char *name, char **ret_type, char **ret_params) {
        return dm_table_status_call(name, DM_STATUS_TABLE_FLAG, ret_type, ret_params);
}

int dm_remove(const char *name) {
        _cleanup_close_ int fd = open(DM_CONTROL, O_RDWR | O_CLOEXEC);
        char path[sizeof("/dev/mapper/") + DM_NAME_LEN];

        if (fd < 0)
                return -errno;
        int r = dm_simple(fd, DM_DEV_REMOVE, name, 0, NULL);
        if (r < 0)
                return r;
        (void) snprintf(path, sizeof(path), "/dev/mapper/%s", name);
        (void) unlink(path);
        return 0;
}
