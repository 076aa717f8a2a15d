/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "macro.h"

/* Kubernetes versions ("v1.32.4", "v1.32.0-rc.1", "v1.29.3-gke.1093000",
 * "v1.30.2+k3s1") and the kubelet/kube-apiserver rule of the Kubernetes
 * version skew policy (docs/OPERATOR.md, "Version skew"). */

typedef struct KubeVersion {
        unsigned major, minor, patch;
        bool suffix;            /* a pre-release or build suffix follows the patch number */
} KubeVersion;

/* "v" MAJOR "." MINOR "." PATCH, numbers without leading zeros (at most 5
 * digits), optionally followed by "-" or "+" and 1..64 characters of
 * [0-9A-Za-z.+-]. -EINVAL for anything else. */
int kube_version_parse(const char *s, KubeVersion *ret) _warn_unused_result_;

/* The kubelet rule of the skew policy: the kubelet must not be newer than
 * kube-apiserver (compared by major.minor: patch levels and suffixes do not
 * count) and may be at most three minor versions older, a kubelet older
 * than 1.25 at most two. Returns 0 if allowed; -ERANGE if the policy
 * forbids it, with *ret_message (if non-NULL) saying why and naming both
 * versions and image_version (may be NULL), e.g. "kubelet v1.33.0 of image
 * 2.0.0 is newer than the API server v1.32.4 (version skew policy)";
 * -EINVAL if either version does not parse, with a message naming it. */
int kube_version_skew_check(const char *apiserver, const char *kubelet, const char *image_version,
                            char **ret_message) _warn_unused_result_;
