/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>

#include "components.h"
#include "tests.h"

static void check_upstream(const char *raw, const char *want) {
        char *v = NULL;
        int r = debian_upstream_version(raw, &v);
        if (want ? (r < 0 || strcmp(v, want) != 0) : r != -EINVAL) {
                fprintf(stderr, "'%s' -> %d '%s', expected '%s'\n", raw, r, r >= 0 ? v : "", want ?: "EINVAL");
                abort();
        }
        free(v);
}

static void test_debian_versions(void) {
        /* Debian bookworm's own packages. */
        check_upstream("1.6.20~ds1-1+b1", "1.6.20");
        check_upstream("1.1.5+ds1-1+deb12u1", "1.1.5");
        check_upstream("1:1.1.5+ds1-1+deb12u1", "1.1.5");
        check_upstream("1.7.24~ds1-6+b1", "1.7.24");
        check_upstream("1.2.5+dfsg-1", "1.2.5");
        /* Docker's and the Kubernetes project's repositories. */
        check_upstream("1.6.28-1", "1.6.28");
        check_upstream("1.7.25-1", "1.7.25");
        check_upstream("1.32.0-1.1", "1.32.0");
        /* Pre-releases and native packages (no revision). */
        check_upstream("1.7.0~rc.1-1", "1.7.0-rc.1");
        check_upstream("2.0.0", "2.0.0");
        check_upstream("6.1.0", "6.1.0");

        check_upstream("", NULL);
        check_upstream("-1", NULL);
        check_upstream("x:1.0-1", NULL);
        check_upstream(":1.0-1", NULL);
        check_upstream("1.0 beta-1", NULL);
        check_upstream("~ds1-1", NULL);
        char *v = NULL;
        ASSERT_ERROR(debian_upstream_version(NULL, &v), EINVAL);
}

static void test_kubelet_output(void) {
        char *v = NULL;

        ASSERT_OK(kubelet_version_from_output("Kubernetes v1.32.0\n", &v));
        ASSERT_STREQ(v, "v1.32.0");
        free(v);
        ASSERT_OK(kubelet_version_from_output("Kubernetes v1.33.0-rc.1", &v));
        ASSERT_STREQ(v, "v1.33.0-rc.1");
        free(v);
        v = NULL;
        ASSERT_ERROR(kubelet_version_from_output("Kubernetes 1.32.0\n", &v), EINVAL);
        ASSERT_ERROR(kubelet_version_from_output("kubelet version v1.32.0\n", &v), EINVAL);
        ASSERT_ERROR(kubelet_version_from_output("Kubernetes v1.32.0\nwarning: something\n", &v), EINVAL);
        ASSERT_ERROR(kubelet_version_from_output("Kubernetes \n", &v), EINVAL);
        ASSERT_ERROR(kubelet_version_from_output("", &v), EINVAL);
        ASSERT_TRUE(v == NULL);
}

static void test_package_list(void) {
        Components c = {};

        ASSERT_OK(components_from_package_list("adduser 3.134\n"
                                               "containerd 1.6.20~ds1-1+b1\n"
                                               "kubelet 1.32.0-1.1\n"
                                               "runc 1.1.5+ds1-1+deb12u1\n"
                                               "systemd 252.33-1~deb12u1\n",
                                               &c));
        ASSERT_STREQ(c.version[COMPONENT_CONTAINERD], "1.6.20");
        ASSERT_STREQ(c.version[COMPONENT_RUNC], "1.1.5");
        ASSERT_STREQ(c.version[COMPONENT_KUBELET], "v1.32.0");
        ASSERT_TRUE(c.version[COMPONENT_KERNEL] == NULL);
        components_done(&c);

        /* Docker's package; no runc package; no trailing newline. */
        ASSERT_OK(components_from_package_list("containerd.io 1.7.25-1", &c));
        ASSERT_STREQ(c.version[COMPONENT_CONTAINERD], "1.7.25");
        ASSERT_TRUE(c.version[COMPONENT_RUNC] == NULL);
        components_done(&c);

        ASSERT_OK(components_from_package_list("", &c));
        ASSERT_TRUE(components_is_empty(&c));
        /* A kubelet package whose version is no Kubernetes version. */
        ASSERT_ERROR(components_from_package_list("kubelet 1.32-1\n", &c), EINVAL);
        ASSERT_ERROR(components_from_package_list("runc x:1\n", &c), EINVAL);
        components_done(&c);
}

static void test_json(void) {
        Components c = {}, d = {};
        char *s = NULL, *err = NULL;
        static const char good[] =
                "{\"kernel\":\"6.1.0-28-amd64\",\"containerd\":\"1.6.20\",\"runc\":\"1.1.5\",\"kubelet\":\"v1.32.0\"}";

        ASSERT_OK(components_parse(good, strlen(good), &c, &err));
        ASSERT_STREQ(c.version[COMPONENT_KERNEL], "6.1.0-28-amd64");
        ASSERT_OK(components_format(&c, &s));
        ASSERT_STREQ(s, "{\"containerd\":\"1.6.20\",\"kernel\":\"6.1.0-28-amd64\",\"kubelet\":\"v1.32.0\",\"runc\":"
                        "\"1.1.5\"}\n");
        ASSERT_OK(components_copy(&c, &d));
        ASSERT_STREQ(d.version[COMPONENT_RUNC], "1.1.5");
        components_done(&d);
        free(s);
        components_done(&c);

        ASSERT_OK(components_parse("{}", 2, &c, NULL));
        ASSERT_TRUE(components_is_empty(&c));
        ASSERT_OK(components_format(&c, &s));
        ASSERT_STREQ(s, "{}\n");
        free(s);

        static const struct {
                const char *json, *msg;
        } bad[] = {
                { "[]", "components: not a JSON object" },
                { "{\"crio\":\"1.0\"}", "components: unknown component \"crio\" (known: containerd, kernel, kubelet, runc)" },
                { "{\"Kernel\":\"6.1\"}", "components: unknown component \"Kernel\" (known: containerd, kernel, kubelet, runc)" },
                { "{\"runc\":1}", "components.runc: not a string" },
                { "{\"runc\":null}", "components.runc: not a string" },
                { "{\"runc\":\"\"}", "components.runc: \"\" is not a version (1 to 64 characters of [A-Za-z0-9._+~-], starting with a letter or digit)" },
                { "{\"runc\":\"-1\"}", "components.runc: \"-1\" is not a version (1 to 64 characters of [A-Za-z0-9._+~-], starting with a letter or digit)" },
                { "{\"runc\":\"1 2\"}", "components.runc: \"1 2\" is not a version (1 to 64 characters of [A-Za-z0-9._+~-], starting with a letter or digit)" },
                { "{\"kubelet\":\"1.32.0\"}", "components.kubelet: \"1.32.0\" is not a Kubernetes version such as v1.32.0" },
                { "{\"runc\":\"1\",\"runc\":\"2\"}", NULL },
                { "{\"runc\":\"1\"", NULL },
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                err = NULL;
                int r = components_parse(bad[i].json, strlen(bad[i].json), &c, &err);
                if (r != -EBADMSG || !err || (bad[i].msg && strcmp(err, bad[i].msg) != 0)) {
                        fprintf(stderr, "%s: %d '%s'\n", bad[i].json, r, err ?: "(null)");
                        abort();
                }
                free(err);
        }
        /* Length limits. */
        char big[200];
        memset(big, 'a', sizeof(big));
        (void) snprintf(big, sizeof(big), "{\"runc\":\"%065d\"}", 1);
        ASSERT_ERROR(components_parse(big, strlen(big), &c, NULL), EBADMSG);
        (void) snprintf(big, sizeof(big), "{\"runc\":\"%064d\"}", 1);
        ASSERT_OK(components_parse(big, strlen(big), &c, NULL));
        components_done(&c);
        char *huge = calloc(1, COMPONENTS_FILE_MAX + 2);
        ASSERT_TRUE(huge);
        memset(huge, ' ', COMPONENTS_FILE_MAX + 1);
        ASSERT_ERROR(components_parse(huge, COMPONENTS_FILE_MAX + 1, &c, NULL), E2BIG);
        free(huge);

        /* components_set() applies the same rules. */
        ASSERT_ERROR(components_set(&c, COMPONENT_KUBELET, "1.32.0"), EINVAL);
        ASSERT_ERROR(components_set(&c, _COMPONENT_MAX, "1"), EINVAL);
        ASSERT_OK(components_set(&c, COMPONENT_KUBELET, "v1.32.0"));
        ASSERT_OK(components_set(&c, COMPONENT_KUBELET, NULL));
        ASSERT_TRUE(components_is_empty(&c));
        ASSERT_EQ(component_from_string("kubelet"), COMPONENT_KUBELET);
        ASSERT_EQ(component_from_string("x"), _COMPONENT_INVALID);
        ASSERT_STREQ(component_to_string(COMPONENT_CONTAINERD), "containerd");
}

int main(void) {
        TEST_RUN(test_debian_versions);
        TEST_RUN(test_kubelet_output);
        TEST_RUN(test_package_list);
        TEST_RUN(test_json);
        return 0;
}
