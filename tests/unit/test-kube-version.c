/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>

#include "kube-version.h"
#include "tests.h"

static void test_parse(void) {
        KubeVersion v;

        ASSERT_OK(kube_version_parse("v1.32.4", &v));
        ASSERT_EQ(v.major, 1);
        ASSERT_EQ(v.minor, 32);
        ASSERT_EQ(v.patch, 4);
        ASSERT_TRUE(!v.suffix);
        ASSERT_OK(kube_version_parse("v1.32.0-rc.1", &v));
        ASSERT_EQ(v.minor, 32);
        ASSERT_TRUE(v.suffix);
        /* What managed clusters report. */
        ASSERT_OK(kube_version_parse("v1.29.3-gke.1093000", &v));
        ASSERT_OK(kube_version_parse("v1.28.5-eks-5e0fdde", &v));
        ASSERT_OK(kube_version_parse("v1.30.2+k3s1", &v));
        ASSERT_EQ(v.minor, 30);
        ASSERT_OK(kube_version_parse("v1.33.0-alpha.3.123+abcdef0", &v));
        ASSERT_OK(kube_version_parse("v0.0.0", &v));

        static const char *const bad[] = {
                "", "1.32.4", "V1.32.4", "v1.32", "v1", "v1.32.", "v1..4", "v1.32.4-", "v1.32.4+", "v01.32.4",
                "v1.032.4", "v1.32.04", "v1.32.4 ", " v1.32.4", "v1.32.4_x", "v1.32.4-rc 1", "v1.32.x",
                "v123456.1.1", "v1.32.4-" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "garbage",
                "v-1.32.4", "v1.-32.4",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (kube_version_parse(bad[i], &v) != -EINVAL) {
                        fprintf(stderr, "accepted '%s'\n", bad[i]);
                        abort();
                }
        }
        ASSERT_ERROR(kube_version_parse(NULL, &v), EINVAL);
}

static void check_ok(const char *api, const char *kubelet) {
        char *m = NULL;
        int r = kube_version_skew_check(api, kubelet, "2.0.0", &m);
        if (r != 0) {
                fprintf(stderr, "%s / %s refused: %s\n", api, kubelet, m ?: "?");
                abort();
        }
        ASSERT_TRUE(m == NULL);
}

static void check_refused(const char *api, const char *kubelet, int err, const char *want) {
        char *m = NULL;
        int r = kube_version_skew_check(api, kubelet, "2.0.0", &m);
        if (r != -err || !m || strcmp(m, want) != 0) {
                fprintf(stderr, "%s / %s: %d '%s', expected -%d '%s'\n", api, kubelet, r, m ?: "(null)", err, want);
                abort();
        }
        free(m);
}

static void test_skew(void) {
        /* Equal, patch differences either way. */
        check_ok("v1.32.4", "v1.32.4");
        check_ok("v1.32.4", "v1.32.0");
        check_ok("v1.32.0", "v1.32.9");
        /* One to three minor versions older. */
        check_ok("v1.32.4", "v1.31.2");
        check_ok("v1.32.4", "v1.29.0");
        /* Pre-release and build suffixes do not count. */
        check_ok("v1.32.4", "v1.32.0-rc.1");
        check_ok("v1.32.0-rc.1", "v1.32.5");
        check_ok("v1.29.3-gke.1093000", "v1.28.1");
        check_ok("v1.30.2+k3s1", "v1.27.9");

        check_refused("v1.32.4", "v1.33.0", ERANGE,
                      "kubelet v1.33.0 of image 2.0.0 is newer than the API server v1.32.4 (version skew policy)");
        check_refused("v1.32.4", "v1.33.0-rc.1", ERANGE,
                      "kubelet v1.33.0-rc.1 of image 2.0.0 is newer than the API server v1.32.4 (version skew "
                      "policy)");
        check_refused("v1.32.4", "v1.28.15", ERANGE,
                      "kubelet v1.28.15 of image 2.0.0 is 4 minor versions older than the API server v1.32.4, at "
                      "most 3 are allowed (version skew policy)");
        /* A kubelet before 1.25 may only be two minor versions older. */
        check_ok("v1.26.0", "v1.24.3");
        check_refused("v1.27.0", "v1.24.3", ERANGE,
                      "kubelet v1.24.3 of image 2.0.0 is 3 minor versions older than the API server v1.27.0, at "
                      "most 2 are allowed (version skew policy)");
        check_ok("v1.28.0", "v1.25.0");
        check_refused("v2.0.0", "v1.32.0", ERANGE,
                      "kubelet v1.32.0 of image 2.0.0 has another major version than the API server v2.0.0 "
                      "(version skew policy)");

        check_refused("garbage", "v1.32.0", EINVAL, "the API server version \"garbage\" is not a Kubernetes version");
        check_refused("v1.32.4", "1.32.0", EINVAL, "the kubelet version \"1.32.0\" is not a Kubernetes version");
        check_refused("v1.32.4", "", EINVAL, "the kubelet version \"\" is not a Kubernetes version");

        /* Without an image version and without a message. */
        char *m = NULL;
        ASSERT_ERROR(kube_version_skew_check("v1.32.4", "v1.33.0", NULL, &m), ERANGE);
        ASSERT_STREQ(m, "kubelet v1.33.0 is newer than the API server v1.32.4 (version skew policy)");
        free(m);
        ASSERT_ERROR(kube_version_skew_check("v1.32.4", "v1.33.0", NULL, NULL), ERANGE);
        ASSERT_ERROR(kube_version_skew_check(NULL, "v1.33.0", NULL, NULL), EINVAL);
}

int main(void) {
        TEST_RUN(test_parse);
        TEST_RUN(test_skew);
        return 0;
}
