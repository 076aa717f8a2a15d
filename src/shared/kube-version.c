/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube-version.h"
#include "strutil.h"

#define NUMBER_DIGITS_MAX 5
#define SUFFIX_MAX 64

/* A decimal number without a leading zero; advances *p. */
static bool parse_number(const char **p, unsigned *ret) {
        const char *s = *p;
        unsigned v = 0;
        size_t n = 0;

        while (s[n] >= '0' && s[n] <= '9') {
                if (n == NUMBER_DIGITS_MAX)
                        return false;
                v = v * 10 + (unsigned) (s[n] - '0');
                n++;
        }
        if (n == 0 || (n > 1 && s[0] == '0'))
                return false;
        *p = s + n;
        *ret = v;
        return true;
}

int kube_version_parse(const char *s, KubeVersion *ret) {
        KubeVersion v = {};

        if (!s || s[0] != 'v')
                return -EINVAL;
        s++;
        if (!parse_number(&s, &v.major) || *s++ != '.' || !parse_number(&s, &v.minor) || *s++ != '.' ||
            !parse_number(&s, &v.patch))
                return -EINVAL;
        if (*s) {
                if (*s != '-' && *s != '+')
                        return -EINVAL;
                s++;
                size_t l = strnlen(s, SUFFIX_MAX + 1);
                if (l == 0 || l > SUFFIX_MAX)
                        return -EINVAL;
                for (size_t i = 0; i < l; i++) {
                        char c = s[i];
                        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                              c == '.' || c == '+' || c == '-'))
                                return -EINVAL;
                }
                v.suffix = true;
        }
        if (ret)
                *ret = v;
        return 0;
}

int kube_version_skew_check(const char *apiserver, const char *kubelet, const char *image_version,
                            char **ret_message) {
        char q[STRING_QUOTE_SIZE];
        KubeVersion a, k;
        _cleanup_free_ char *of_image = NULL;

        if (kube_version_parse(apiserver, &a) < 0)
                return error_set(ret_message, -EINVAL, "the API server version %s is not a Kubernetes version",
                                 apiserver ? string_quote(q, apiserver) : "(none)");
        if (kube_version_parse(kubelet, &k) < 0)
                return error_set(ret_message, -EINVAL, "the kubelet version %s is not a Kubernetes version",
                                 kubelet ? string_quote(q, kubelet) : "(none)");
        if (image_version && asprintf(&of_image, " of image %s", image_version) < 0)
                return -ENOMEM;

        if (k.major != a.major)
                return error_set(ret_message, -ERANGE,
                                 "kubelet %s%s has another major version than the API server %s (version skew "
                                 "policy)",
                                 kubelet, of_image ?: "", apiserver);
        if (k.minor > a.minor)
                return error_set(ret_message, -ERANGE,
                                 "kubelet %s%s is newer than the API server %s (version skew policy)", kubelet,
                                 of_image ?: "", apiserver);
        /* Three minor versions since 1.28 (KEP-3935); a kubelet older than
         * 1.25 only ever supported two. */
        unsigned allowed = k.major == 1 && k.minor < 25 ? 2 : 3;
        if (a.minor - k.minor > allowed)
                return error_set(ret_message, -ERANGE,
                                 "kubelet %s%s is %u minor versions older than the API server %s, at most %u are "
                                 "allowed (version skew policy)",
                                 kubelet, of_image ?: "", a.minor - k.minor, apiserver, allowed);
        return 0;
}
