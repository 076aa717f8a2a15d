/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

/* The versions of the components an image carries that matter to
 * Kubernetes: the kernel, containerd, runc and the kubelet
 * (docs/BUNDLE.md, "components"). hull-build records them in the build
 * facts, in the image (/usr/lib/hull/components.json) and in the signed
 * bundle manifest; the agent, hull-node and the operator read them back.
 *
 * One JSON form everywhere: an object of known keys ("kernel",
 * "containerd", "runc", "kubelet") with string values; a component that is
 * not in the image has no key. Values are tokens ([A-Za-z0-9._+~-], first a
 * letter or digit, 1..COMPONENT_VERSION_MAX characters); "kubelet" must in
 * addition be a Kubernetes version ("v1.32.0", kube-version.h), because the
 * operator's version-skew check depends on it. */

#define COMPONENT_VERSION_MAX 64
#define COMPONENTS_FILE "/usr/lib/hull/components.json"
#define COMPONENTS_FILE_MAX (16 * 1024)

typedef enum Component {
        COMPONENT_CONTAINERD,
        COMPONENT_KERNEL,
        COMPONENT_KUBELET,
        COMPONENT_RUNC,
        _COMPONENT_MAX,
        _COMPONENT_INVALID = -EINVAL,
} Component;

const char *component_to_string(Component c);
Component component_from_string(const char *s);

typedef struct Components {
        char *version[_COMPONENT_MAX];  /* NULL: not in the image */
} Components;

void components_done(Components *c);
bool components_is_empty(const Components *c);
/* Whether v is a valid value for component k (rules above). */
bool component_version_is_valid(Component k, const char *v);
/* Set (a copy of v) or, with v NULL, clear. -EINVAL for an invalid value. */
int components_set(Components *c, Component k, const char *v) _warn_unused_result_;
int components_copy(const Components *from, Components *ret) _warn_unused_result_;

/* From a JSON object, strictly: not an object, an unknown key, a value that
 * is not a string or breaks the rules above: -EBADMSG, and *ret_error (if
 * non-NULL) names the key ("components.kubelet: \"1.32\" is not a Kubernetes
 * version such as v1.32.0"). An empty object is allowed here. */
int components_from_json(json_t *obj, Components *ret, char **ret_error) _warn_unused_result_;
/* A new JSON object; keys of absent components are left out. NULL on OOM. */
json_t *components_to_json(const Components *c);
/* The components.json file: components_from_json() over at most
 * COMPONENTS_FILE_MAX bytes of JSON (-E2BIG beyond), duplicate keys refused. */
int components_parse(const char *data, size_t len, Components *ret, char **ret_error) _warn_unused_result_;
/* Compact JSON with sorted keys and a trailing newline. */
int components_format(const Components *c, char **ret) _warn_unused_result_;

/* ---- what hull-build reads (pure, so that they can be unit-tested) ---- */

/* A Debian package version reduced to the upstream version the project
 * itself would name: epoch ("1:") and Debian revision (from the last "-")
 * removed, a repack suffix ("+ds1", "~ds1", "+dfsg2", "~dfsg") removed, and
 * a remaining "~" (Debian's pre-release marker) written as "-":
 *   "1.6.20~ds1-1+b1" -> "1.6.20", "1:1.1.5+ds1-1+deb12u1" -> "1.1.5",
 *   "1.7.0~rc.1-1" -> "1.7.0-rc.1", "1.32.0-1.1" -> "1.32.0".
 * -EINVAL if nothing valid remains. */
int debian_upstream_version(const char *raw, char **ret) _warn_unused_result_;

/* "Kubernetes v1.32.0\n" (what kubelet --version prints) -> "v1.32.0".
 * -EINVAL for anything else. */
int kubelet_version_from_output(const char *out, char **ret) _warn_unused_result_;

/* Fill containerd and runc from an installed-package list, one
 * "name version" per line (/usr/share/hull/packages.txt): containerd from
 * the package "containerd" or Docker's "containerd.io", runc from "runc";
 * the kubelet from the package "kubelet" as "v" + its upstream version.
 * Components without a package are left as they are. -EINVAL if a package
 * that counts has a version that cannot be normalised. */
int components_from_package_list(const char *list, Components *c) _warn_unused_result_;
