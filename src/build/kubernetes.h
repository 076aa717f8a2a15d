/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "build.h"

/* Where a kubelet .deb waits inside the tree while apt installs it. */
#define BUILD_KUBELET_DEB_IN_ROOT "var/tmp/hull-kubelet.deb"

/* Packages every image with a 'kubernetes' section gets on top of the
 * spec's (docs/KUBERNETES.md). NULL-terminated. */
extern const char *const build_kubernetes_packages[];

/* Copy src to dst (atomically, with mode) and return the SHA-256 of what
 * was read as lower-case hex: the bytes checked are the bytes written.
 * Hashing alone is sha256_file() (sign.h). */
int build_copy_file_sha256(const char *src, const char *dst, mode_t mode, char ret_hex[static 65]) _warn_unused_result_;

/* Before anything is built: every local file the spec pins (the kubelet,
 * image archives) exists and has its SHA-256. */
int build_kubernetes_check_sources(BuildContext *c) _warn_unused_result_;

/* Packages stage: copy a kubelet .deb into the tree, checked against its
 * pin; *ret_in_root is its path for apt (NULL when there is none). */
int build_kubernetes_stage_deb(BuildContext *c, char **ret_in_root) _warn_unused_result_;

/* Customise stage: the node wiring, when the spec has a 'kubernetes'
 * section; and the image archives of 'images'. */
int build_kubernetes_wire(BuildContext *c) _warn_unused_result_;
int build_images_install(BuildContext *c) _warn_unused_result_;
