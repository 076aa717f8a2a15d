/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fileio.h"
#include "fuzz.h"
#include "kube.h"

/* The kubeconfig loader over arbitrary bytes (through a memfd, so nothing
 * touches the disk): it either returns a usable config or an error with a
 * message, never both and never a crash. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *error = NULL;
        KubeConfig *c = NULL;
        char path[64];
        int r;

        fd = memfd_create("kubeconfig", MFD_CLOEXEC);
        if (fd < 0)
                return 0;
        if (size > 0 && loop_write(fd, data, size) < 0)
                return 0;
        (void) snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

        r = kube_config_load(path, NULL, &c, &error);
        if (r >= 0) {
                if (!c || !c->server || c->refcount != 1 || !c->namespace)
                        abort();
                if ((c->cert_data == NULL) != (c->key_data == NULL) && !c->cert_file && !c->key_file)
                        abort();
                /* The server URL has no trailing slash. */
                size_t l = strlen(c->server);
                if (l == 0 || c->server[l - 1] == '/')
                        abort();
                kube_config_unref(c);
                return 0;
        }
        if (c)
                abort();
        if (r != -ENOMEM && r != -EBADMSG && r != -EOPNOTSUPP && r != -ENOENT)
                abort();
        if ((r == -EBADMSG || r == -EOPNOTSUPP) && !error)
                abort();

        /* An explicit context that does not exist is always an error. */
        error = mfree(error);
        r = kube_config_load(path, "no-such-context-\x01", &c, &error);
        if (r >= 0 || c)
                abort();
        return 0;
}
