/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hullctl cluster: the fleet seen from outside the cluster (MISSION.md,
 * NKD): OS rollouts and per-node state, and the few edits an operator makes
 * to an OS object (new version, rollback, pause, approve the next batch).
 * Everything goes through the Kubernetes API with the user's kubeconfig; the
 * decisions stay with hull-operator. */

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bundle.h"
#include "fetch.h"
#include "fileio.h"
#include "oci-bundle.h"
#include "oci.h"
#include "osspec.h"
#include "ctl-cluster.h"
#include "kube-version.h"
#include "kube.h"
#include "log.h"
#include "sign.h"
#include "strutil.h"

#define OS_PATH "/apis/hull.dev/v1alpha1/oses"
#define OSNODE_PATH "/apis/hull.dev/v1alpha1/osnodes"

static const char *arg_kubeconfig = NULL;
static const char *arg_context = NULL;
static bool arg_json = false;
static const char *arg_version = NULL;
static const char *arg_image_url = NULL;
static const char *arg_sha256 = NULL;
static const char *arg_key_id = NULL;
static const char *arg_kubelet_version = NULL;
static const char *arg_created = NULL;
/* The normalized spec.image.created: from --created, --bundle or the OCI
 * manifest, in that order. */
static char created_buf[32];
static const char *created_value = NULL;
static const char *created_source = NULL;
static const char *arg_bundle = NULL;
static const char *arg_trust = NULL;
/* What --bundle read, for the arg_* above that point into it. */
static char bundle_sha256[65];
static char *bundle_version = NULL, *bundle_key_id = NULL, *bundle_kubelet = NULL;
static const char *arg_registry_auth = NULL;
static const char *arg_registry_ca = NULL;
/* What an oci:// --image-url resolved to. */
static char *oci_pinned_url = NULL;
static char oci_sha256[65];
static char *oci_version = NULL;
static const char *arg_max_unavailable = NULL;
static const char *arg_batches = NULL;
static unsigned arg_wait = 60;
static bool arg_wait_set = false;

static void cluster_help(void) {
        printf("hullctl cluster — Hull OS rollouts through the Kubernetes API\n\n"
               "Usage:\n"
               "  hullctl cluster [OPTIONS] status [OS]        rollouts; with OS, also its nodes\n"
               "  hullctl cluster [OPTIONS] nodes              every node's OS state (OSNode objects)\n"
               "  hullctl cluster [OPTIONS] upgrade OS --version V --image-url URL --sha256 HEX\n"
               "                   [--key-id ID] [--kubelet-version vX.Y.Z] [--created YYYY-MM-DDTHH:MM:SSZ]\n"
               "  hullctl cluster [OPTIONS] upgrade OS --bundle FILE --trust PUBLIC.pem --image-url URL\n"
               "                   (version, sha256, key id, kubelet version and created from the verified bundle)\n"
               "                   [--max-unavailable N|P%%] [--batches 1,10%%,100%%]\n"
               "                   --image-url oci://HOST/REPO:TAG resolves the tag to its digest (HEAD\n"
               "                   on the registry) and pins oci://HOST/REPO@sha256:D, with sha256 = D\n"
               "                   [--registry-auth config.json] [--registry-ca CA.pem]\n"
               "  hullctl cluster [OPTIONS] rollback OS --version V\n"
               "  hullctl cluster [OPTIONS] pause OS | resume OS | approve OS\n"
               "  hullctl cluster [OPTIONS] retry OS [NODE...] [--wait SECONDS]\n"
               "                   give nodes that failed this rollout's task another try (all of\n"
               "                   them without NODE); hull-node resets them, the operator picks\n"
               "                   them again within maxUnavailable\n\n"
               "Options:\n"
               "      --kubeconfig F     kubeconfig (default: $KUBECONFIG, ~/.kube/config)\n"
               "      --context NAME     kubeconfig context (default: current-context)\n"
               "      --json             print the objects as JSON\n"
               "      --wait SECONDS     retry: how long to wait for hull-node's answer (default 60)\n\n"
               "upgrade and rollback change the OS object's spec; hull-operator rolls it out\n"
               "under the object's strategy. approve lets a rollout waiting at a manual gate\n"
               "go on to its next batch. See hullctl(1) and docs/CRD.md.\n");
}

/* Only a syntax check: the CRD schema and the operator validate properly,
 * but a typo is better caught before a round trip. */
typedef struct OsIntOrPercentText {
        bool percent;
        long long value;
} OsIntOrPercentText;

static int parse_ip(const char *s, OsIntOrPercentText *out) {
        uint64_t v;
        size_t l = strlen(s);
        if (l > 1 && s[l - 1] == '%') {
                _cleanup_free_ char *n = strndup(s, l - 1);
                if (!n)
                        return -ENOMEM;
                if (safe_atou64(n, &v) < 0 || v > 100)
                        return -EINVAL;
                *out = (OsIntOrPercentText) { .percent = true, .value = (long long) v };
                return 0;
        }
        if (safe_atou64(s, &v) < 0 || v > INT32_MAX)
                return -EINVAL;
        *out = (OsIntOrPercentText) { .percent = false, .value = (long long) v };
        return 0;
}

static json_t *ip_json(const OsIntOrPercentText *v) {
        if (!v->percent)
                return json_integer(v->value);
        char buf[16];
        snprintf(buf, sizeof(buf), "%lld%%", v->value);
        return json_string(buf);
}

static const char *status_str(json_t *o, const char *key) {
        return json_string_value(json_object_get(json_object_get(o, "status"), key));
}

static long long status_int(json_t *o, const char *key) {
        return (long long) json_integer_value(json_object_get(json_object_get(o, "status"), key));
}

static json_t *find_condition(json_t *o, const char *type) {
        json_t *c;
        size_t i;
        json_array_foreach(json_object_get(json_object_get(o, "status"), "conditions"), i, c) {
                const char *t = json_string_value(json_object_get(c, "type"));
                if (t && streq(t, type))
                        return c;
        }
        return NULL;
}

static bool condition_true(json_t *o, const char *type) {
        json_t *c = find_condition(o, type);
        const char *s = c ? json_string_value(json_object_get(c, "status")) : NULL;
        return s && streq(s, "True");
}

/* One word for the state of a rollout, most serious first. */
static const char *os_state(json_t *o, json_t **ret_cond) {
        static const char *const order[] = { "Degraded", "Conflict", "Paused", "Complete", "Progressing" };
        for (size_t i = 0; i < ELEMENTSOF(order); i++)
                if (condition_true(o, order[i])) {
                        *ret_cond = find_condition(o, order[i]);
                        return order[i];
                }
        *ret_cond = NULL;
        return "Unknown";
}

static int collect(json_t *item, void *userdata) {
        return json_array_append(userdata, item) < 0 ? -ENOMEM : 0;
}

static void reset(void *userdata) {
        json_array_clear(userdata);
}

static int list_all(KubeClient *k, const char *path, json_t **ret) {
        _cleanup_free_ char *err = NULL;
        json_t *items = json_array();
        if (!items)
                return log_oom();
        int r = kube_list(k, path, &(KubeListOptions) {}, collect, reset, items, NULL, &err);
        if (r < 0) {
                json_decref(items);
                if (r == -ENOENT)
                        return log_error_errno(r, "The cluster does not know %s: are Hull's CRDs installed? "
                                                  "(kubectl apply -k deploy/)", path);
                return log_error_errno(r, "Failed to list %s: %s", path, err ?: "(no message)");
        }
        *ret = items;
        return 0;
}

/* names: a JSON object whose keys are the nodes to show; NULL: all. */
static void print_nodes(json_t *osnodes, json_t *names) {
        json_t *n;
        size_t i;
        printf("%-24s %-11s %-12s %-4s %-6s %s\n", "NODE", "PHASE", "VERSION", "SLOT", "CONFIG", "LAST ERROR");
        json_array_foreach(osnodes, i, n) {
                if (names && !json_object_get(names, kube_name(n)))
                        continue;
                if (names)
                        json_object_del(names, kube_name(n));
                const char *err = json_string_value(
                        json_object_get(json_object_get(json_object_get(n, "status"), "lastError"), "message"));
                printf("%-24s %-11s %-12s %-4s %-6lld %s\n", kube_name(n), status_str(n, "phase") ?: "-",
                       status_str(n, "version") ?: "-", status_str(n, "slot") ?: "-",
                       status_int(n, "configGeneration"), err ?: "");
        }
        /* Selected nodes without an OSNode: hull-node has not started there. */
        const char *k;
        json_t *v;
        json_object_foreach(names, k, v)
                printf("%-24s %-11s %-12s %-4s %-6s %s\n", k, "-", "-", "-", "-", "no OSNode: is hull-node running?");
}

/* The nodes an OS object selects, as hull-operator sees them: its
 * nodeSelector, minus nodes labelled hull.dev/unmanaged=true. */
static int selected_nodes(KubeClient *k, json_t *os, json_t **ret) {
        _cleanup_(json_decrefp) json_t *items = json_array();
        _cleanup_free_ char *sel = strdup("hull.dev/unmanaged!=true"), *err = NULL;
        json_t *ns = json_object_get(json_object_get(os, "spec"), "nodeSelector"), *v, *n;
        const char *key;
        size_t i;

        if (!items || !sel)
                return log_oom();
        json_object_foreach(ns, key, v) {
                char *s = NULL;
                if (!json_is_string(v) || asprintf(&s, "%s,%s=%s", sel, key, json_string_value(v)) < 0)
                        return log_oom();
                free(sel);
                sel = s;
        }
        int r = kube_list(k, "/api/v1/nodes", &(KubeListOptions) { .label_selector = sel }, collect, reset, items,
                          NULL, &err);
        if (r < 0)
                return log_error_errno(r, "Failed to list the nodes of OS '%s': %s", kube_name(os),
                                       err ?: "(no message)");
        json_t *names = json_object();
        if (!names)
                return log_oom();
        json_array_foreach(items, i, n)
                json_object_set_new(names, kube_name(n), json_true());
        *ret = names;
        return 0;
}

static int cmd_status(KubeClient *k, const char *only) {
        _cleanup_(json_decrefp) json_t *oses = NULL, *osnodes = NULL;
        json_t *o;
        size_t i;
        int r;

        r = list_all(k, OS_PATH, &oses);
        if (r < 0)
                return r;
        if (only) {
                r = list_all(k, OSNODE_PATH, &osnodes);
                if (r < 0)
                        return r;
        }
        if (arg_json) {
                json_t *out = json_pack("{s:O, s:O?}", "oses", oses, "osnodes", osnodes);
                char *s = out ? json_dumps(out, JSON_INDENT(2)) : NULL;
                json_decref(out);
                if (!s)
                        return log_oom();
                puts(s);
                free(s);
                return 0;
        }
        json_t *target = NULL;
        printf("%-16s %-9s %-12s %7s %7s %11s %6s %6s  %s\n", "OS", "OPERATION", "VERSION", "DESIRED", "UPDATED",
               "IN-PROGRESS", "FAILED", "BATCH", "STATE");
        json_array_foreach(oses, i, o) {
                if (only && !streq(kube_name(o), only))
                        continue;
                target = o;
                json_t *spec = json_object_get(o, "spec"), *cond;
                const char *state = os_state(o, &cond);
                size_t n_batches = json_array_size(json_object_get(json_object_get(spec, "strategy"), "batches"));
                char batch[48];
                snprintf(batch, sizeof(batch), "%lld/%zu", status_int(o, "currentBatch") + 1, n_batches ?: 1);
                const char *msg = cond ? json_string_value(json_object_get(cond, "message")) : NULL;
                printf("%-16s %-9s %-12s %7lld %7lld %11lld %6lld %6s  %s%s%s\n", kube_name(o),
                       json_string_value(json_object_get(spec, "operation")) ?: "-",
                       json_string_value(json_object_get(spec, "version")) ?: "-", status_int(o, "desired"),
                       status_int(o, "updated"), status_int(o, "inProgress"), status_int(o, "failed"), batch,
                       state, isempty(msg) ? "" : ": ", msg ?: "");
        }
        if (only && !target)
                return log_error_errno(ENOENT, "No OS object named '%s' (see 'hullctl cluster status')", only);
        if (only) {
                _cleanup_(json_decrefp) json_t *names = NULL;
                r = selected_nodes(k, target, &names);
                if (r < 0)
                        return r;
                putchar('\n');
                print_nodes(osnodes, names);
        }
        return 0;
}

static int cmd_nodes(KubeClient *k) {
        _cleanup_(json_decrefp) json_t *osnodes = NULL;
        int r = list_all(k, OSNODE_PATH, &osnodes);
        if (r < 0)
                return r;
        if (arg_json) {
                char *s = json_dumps(osnodes, JSON_INDENT(2));
                if (!s)
                        return log_oom();
                puts(s);
                free(s);
                return 0;
        }
        print_nodes(osnodes, NULL);
        return 0;
}

static int patch_os(KubeClient *k, const char *name, json_t *spec_patch, const char *what) {
        _cleanup_free_ char *path = NULL, *err = NULL;
        json_t *ret = NULL;
        json_t *patch = json_pack("{s:o}", "spec", spec_patch);
        if (!patch || asprintf(&path, "%s/%s", OS_PATH, name) < 0) {
                json_decref(patch);
                return log_oom();
        }
        int r = kube_merge_patch(k, path, patch, &ret, &err);
        json_decref(patch);
        if (r == -ENOENT)
                return log_error_errno(r, "No OS object named '%s'. Create it first (docs/CRD.md has examples: "
                                          "kubectl apply -f os.yaml)", name);
        if (r < 0)
                return log_error_errno(r, "The API server refused to %s OS '%s': %s", what, name,
                                       err ?: "(no message)");
        printf("OS %s: %s (generation %" PRIi64 "); hull-operator takes it from here.\n"
               "Follow it with: hullctl cluster status %s\n", name, what, kube_generation(ret), name);
        json_decref(ret);
        return 0;
}

/* A flag given together with --bundle must agree with the bundle: a
 * mismatch means the wrong file or the wrong flag, never something to pick
 * one of silently. */
static int agree(const char *flag, const char **arg, const char *from_bundle) {
        if (*arg && from_bundle && !streq(*arg, from_bundle))
                return log_error_errno(EINVAL, "%s is '%s', but the bundle says '%s'; leave %s out with --bundle", flag,
                                       *arg, from_bundle, flag);
        if (!*arg)
                *arg = from_bundle;
        return 0;
}

/* spec.image.created, the time strategy.minImageAgeSeconds counts from, in
 * the one form the CRD takes (YYYY-MM-DDTHH:MM:SSZ). The first source that
 * has one wins: --created, then the bundle, then the OCI manifest. */
static int set_created(const char *value, const char *source) {
        int64_t t;

        if (created_value || !value)
                return 0;
        if (kube_parse_time(value, &t) < 0 || t < 0)
                return log_error_errno(EINVAL, "%s: '%s' is not an RFC 3339 time such as 2026-12-03T10:00:00Z", source,
                                       value);
        kube_format_time(t, created_buf);
        created_value = created_buf;
        created_source = source;
        return 0;
}

/* --bundle: the values the OS object pins are read from the bundle the
 * nodes will download, after its signature and every payload digest are
 * checked against --trust, so that what is rolled out is what was tested. */
static int fill_from_bundle(void) {
        _cleanup_(keyring_freep) Keyring *kr = NULL;
        _cleanup_(key_freep) HullKey *key = NULL;
        _cleanup_(bundle_freep) Bundle *b = NULL;
        int r;

        if (!arg_bundle)
                return 0;
        if (!arg_trust)
                return log_error_errno(EINVAL, "--bundle needs --trust PUBLIC.pem: what is read from a bundle is only "
                                               "as good as its signature");
        r = key_load_public(arg_trust, &key);
        if (r < 0)
                return log_error_errno(r, "Cannot load the public key '%s': %m", arg_trust);
        r = keyring_new(&kr);
        if (r >= 0 && (r = keyring_add(kr, key)) >= 0)
                key = NULL;
        if (r < 0)
                return log_error_errno(r, "Cannot set up the keyring: %m");
        r = bundle_open(arg_bundle, kr, &b);
        if (r == -ENOKEY || r == -EKEYREJECTED)
                return log_error_errno(r, "'%s' is not signed by the key in '%s'", arg_bundle, arg_trust);
        if (r < 0)
                return log_error_errno(r, "'%s' is not a valid Hull bundle: %m", arg_bundle);
        r = bundle_verify_payloads(b, NULL, NULL);
        if (r < 0)
                return log_error_errno(r, "'%s' is damaged (a payload does not match its signed digest): %m", arg_bundle);
        r = sha256_file(arg_bundle, bundle_sha256);
        if (r < 0)
                return log_error_errno(r, "Cannot read '%s': %m", arg_bundle);

        const Manifest *m = bundle_manifest(b);
        if (!(bundle_version = strdup(m->version)) || !(bundle_key_id = strdup(m->key_id)))
                return log_oom();
        if (m->components.version[COMPONENT_KUBELET] &&
            !(bundle_kubelet = strdup(m->components.version[COMPONENT_KUBELET])))
                return log_oom();
        if ((r = agree("--version", &arg_version, bundle_version)) < 0 ||
            (!oci_url_is_oci(arg_image_url) && (r = agree("--sha256", &arg_sha256, bundle_sha256)) < 0) ||
            (r = agree("--key-id", &arg_key_id, bundle_key_id)) < 0)
                return r;
        if (arg_kubelet_version && !bundle_kubelet)
                return log_error_errno(EINVAL, "--kubelet-version is '%s', but the bundle records no kubelet",
                                       arg_kubelet_version);
        r = agree("--kubelet-version", &arg_kubelet_version, bundle_kubelet);
        if (r < 0)
                return r;
        /* The manifest's created is the build's SOURCE_DATE_EPOCH; --created
         * (publication) may differ from it and wins. */
        r = set_created(m->created, "the bundle's created");
        if (r < 0)
                return r;
        printf("Bundle %s: %s %s, signed by %s, sha256 %s, kubelet %s, created %s\n", arg_bundle, m->name, m->version,
               m->key_id, bundle_sha256, bundle_kubelet ?: "none", m->created);
        return 0;
}

/* --registry-auth, else the docker convention, as hull-build push. */
static int registry_auth_file(char **ret) {
        if (arg_registry_auth)
                return (*ret = strdup(arg_registry_auth)) ? 0 : -ENOMEM;
        return oci_auth_default_path(ret);
}

/* --image-url oci://...: what the OS object gets is pinned by digest, so
 * that moving the tag later never changes what nodes install. With
 * --bundle, the registry's artifact must hold that very bundle (the same
 * signed head). */
static int resolve_oci_image(void) {
        _cleanup_(oci_ref_done) OciRef ref = {};
        _cleanup_(oci_client_freep) OciClient *c = NULL;
        _cleanup_free_ char *err = NULL, *auth = NULL, *pinned = NULL;
        char digest[OCI_DIGEST_SIZE];
        int r;

        if (!arg_image_url || !oci_url_is_oci(arg_image_url))
                return 0;
        const char *original = arg_image_url;
        r = oci_url_parse(arg_image_url, &ref, &err);
        if (r < 0)
                return log_error_errno(r, "--image-url: %s", err);
        if (!ref.tag && !ref.digest)
                return log_error_errno(EINVAL, "--image-url %s names neither a tag nor a digest", arg_image_url);
        r = registry_auth_file(&auth);
        if (r < 0)
                return log_oom();
        r = fetch_global_init();
        if (r < 0)
                return log_error_errno(r, "Cannot initialise libcurl");
        OciClientOptions o = { .auth_file = auth, .ca_file = arg_registry_ca };
        r = oci_client_new(ref.registry, ref.repository, &o, &c, &err);
        if (r < 0)
                return log_error_errno(r, "%s", err ?: "Cannot set up the registry client");
        r = oci_manifest_resolve(c, ref.digest ?: ref.tag, digest, &err);
        if (r < 0)
                return log_error_errno(r, "Cannot resolve %s: %s", arg_image_url, err ?: strerror(-r));

        /* Only a Hull bundle gets into the OS object (the nodes would
         * refuse anything else, one by one). */
        _cleanup_(oci_bundle_freep) OciBundle *b = NULL;
        r = oci_bundle_resolve(c, digest, &b, &err);
        if (r < 0)
                return log_error_errno(r, "%s is not a usable Hull bundle: %s", arg_image_url, err ?: strerror(-r));
        if (arg_bundle) {
                _cleanup_free_ uint8_t *mine = NULL;
                _cleanup_close_ int fd = -EBADF;
                size_t size;
                const void *head = oci_bundle_head(b, &size);

                mine = malloc(size);
                fd = open(arg_bundle, O_RDONLY | O_CLOEXEC);
                if (!mine)
                        return log_oom();
                if (fd < 0 || pread(fd, mine, size, 0) != (ssize_t) size || memcmp(mine, head, size) != 0)
                        return log_error_errno(EINVAL, "%s (%s) does not hold the bundle '%s': its signed head differs",
                                               arg_image_url, digest, arg_bundle);
        } else if (arg_version && !streq(arg_version, oci_bundle_manifest(b)->version))
                return log_error_errno(EINVAL, "--version is '%s', but %s holds version '%s'", arg_version, arg_image_url,
                                       oci_bundle_manifest(b)->version);
        /* Read from the artifact's signed manifest without checking the
         * signature here: every node checks it, and a version that does
         * not match what they verify makes them refuse the bundle. */
        if (!arg_version) {
                if (!(oci_version = strdup(oci_bundle_manifest(b)->version)))
                        return log_oom();
                arg_version = oci_version;
        }

        _cleanup_free_ char *created = NULL;
        r = oci_bundle_annotation(b, OCI_ANNOTATION_CREATED, &created);
        if (r == -ENOMEM)
                return log_oom();
        r = set_created(created, "the OCI manifest's " OCI_ANNOTATION_CREATED);
        if (r < 0)
                return r;

        snprintf(oci_sha256, sizeof(oci_sha256), "%s", digest + strlen("sha256:"));
        if (arg_sha256 && !streq(arg_sha256, oci_sha256))
                return log_error_errno(EINVAL, "--sha256 is '%s', but %s resolves to %s", arg_sha256, arg_image_url, digest);
        arg_sha256 = oci_sha256;
        free(ref.digest);
        ref.digest = strdup(digest);
        if (!ref.digest || oci_ref_format(&ref, true, &pinned) < 0 ||
            asprintf(&oci_pinned_url, "%s%s", OCI_URL_PREFIX, pinned) < 0)
                return log_oom();
        arg_image_url = oci_pinned_url;
        printf("Resolved %s to %s (version %s, created %s)\n", original, oci_pinned_url, oci_bundle_manifest(b)->version,
               created ?: "unknown");
        return 0;
}

/* What needs nothing read first. */
static int check_upgrade_args_early(void) {
        int64_t t;

        /* The CRD's form exactly: no fraction, no offset. */
        if (arg_created && (strlen(arg_created) != 20 || arg_created[19] != 'Z' ||
                            kube_parse_time(arg_created, &t) < 0 || t < 0 || arg_created[17] > '5'))
                return log_error_errno(EINVAL, "--created wants a UTC time YYYY-MM-DDTHH:MM:SSZ such as "
                                               "2026-12-03T10:00:00Z, not '%s'", arg_created);
        return 0;
}

static int check_upgrade_args(void) {
        OsIntOrPercentText v;
        if (!arg_version || !arg_image_url || !arg_sha256)
                return log_error_errno(EINVAL, "upgrade needs --image-url, and --bundle FILE --trust PUBLIC.pem or "
                                               "--version and --sha256 (the SHA-256 of the bundle file, as "
                                               "'sha256sum' prints it)");
        if (strlen(arg_sha256) != 64 || strspn(arg_sha256, "0123456789abcdef") != 64)
                return log_error_errno(EINVAL, "--sha256 wants 64 lowercase hex digits, not '%s'", arg_sha256);
        if (!string_has_prefix(arg_image_url, "https://") && !string_has_prefix(arg_image_url, "http://") &&
            !oci_url_is_oci(arg_image_url))
                return log_error_errno(EINVAL, "--image-url wants an http(s) URL or oci://HOST/REPO:TAG, not '%s'",
                                       arg_image_url);
        if (arg_kubelet_version && kube_version_parse(arg_kubelet_version, NULL) < 0)
                return log_error_errno(EINVAL, "--kubelet-version wants a Kubernetes version such as v1.32.0 (the "
                                               "bundle's components.kubelet, as 'hull-build verify' prints it), not "
                                               "'%s'", arg_kubelet_version);
        if (!arg_kubelet_version && !arg_bundle)
                log_warning("No --kubelet-version: hull-operator makes no kubelet version-skew check for this "
                            "upgrade. Give the bundle's kubelet version if the image has a kubelet.");
        if (arg_max_unavailable && parse_ip(arg_max_unavailable, &v) < 0)
                return log_error_errno(EINVAL, "--max-unavailable wants a count or a percentage such as 10%%, "
                                               "not '%s'", arg_max_unavailable);
        return 0;
}

static int cmd_upgrade(KubeClient *k, const char *name) {
        /* kubeletVersion and created: null when not known, so that the
         * merge patch removes the previous image's (a stale one would check
         * the wrong kubelet, or let a new image pass minImageAgeSeconds). */
        json_t *spec = json_pack("{s:s, s:s, s:{s:s, s:s, s:s?, s:s?, s:s?}}", "version", arg_version, "operation",
                                 "upgrade", "image", "url", arg_image_url, "sha256", arg_sha256, "keyId", arg_key_id,
                                 "kubeletVersion", arg_kubelet_version, "created", created_value);
        if (!spec)
                return log_oom();
        json_t *strategy = NULL;
        if (arg_max_unavailable || arg_batches)
                json_object_set_new(spec, "strategy", strategy = json_object());
        if (arg_max_unavailable) {
                OsIntOrPercentText v;
                if (parse_ip(arg_max_unavailable, &v) < 0) {
                        json_decref(spec);
                        return log_error_errno(EINVAL, "--max-unavailable wants a count or a percentage such as "
                                                       "10%%, not '%s'", arg_max_unavailable);
                }
                json_object_set_new(strategy, "maxUnavailable", ip_json(&v));
        }
        if (arg_batches) {
                _cleanup_free_ char *copy = strdup(arg_batches);
                json_t *batches = json_array();
                if (!copy || !batches) {
                        json_decref(spec);
                        json_decref(batches);
                        return log_oom();
                }
                for (char *t = copy, *next; t; t = next) {
                        OsIntOrPercentText v;
                        next = strchr(t, ',');
                        if (next)
                                *next++ = '\0';
                        if (parse_ip(t, &v) < 0 || v.value == 0) {
                                json_decref(spec);
                                json_decref(batches);
                                return log_error_errno(EINVAL, "--batches wants sizes such as 1,10%%,100%% (each "
                                                               "at least 1), not '%s'", t);
                        }
                        json_array_append_new(batches, json_pack("{s:o}", "nodes", ip_json(&v)));
                }
                json_object_set_new(strategy, "batches", batches);
        }
        return patch_os(k, name, spec, "upgrade");
}

static int cmd_rollback(KubeClient *k, const char *name) {
        json_t *spec = json_pack("{s:s, s:s}", "version", arg_version, "operation", "rollback");
        return spec ? patch_os(k, name, spec, "roll back") : log_oom();
}

static int cmd_pause(KubeClient *k, const char *name, bool pause) {
        json_t *spec = json_pack("{s:{s:b}}", "strategy", "paused", pause);
        return spec ? patch_os(k, name, spec, pause ? "pause" : "resume") : log_oom();
}

/* Read-modify-write: approvedBatches must go up by exactly one from what is
 * there, so a concurrent approval is retried from a fresh read instead of
 * being lost or doubled. */
static int bump_approved(json_t *obj, void *userdata) {
        json_t *spec = json_object_get(obj, "spec");
        json_t *strategy = json_object_get(spec, "strategy");
        int64_t *ret = userdata;
        if (!json_is_object(spec))
                return -EINVAL;
        if (!strategy) {
                strategy = json_object();
                json_object_set_new(spec, "strategy", strategy);
        }
        json_int_t cur = json_integer_value(json_object_get(strategy, "approvedBatches"));
        *ret = cur + 1;
        json_object_set_new(strategy, "approvedBatches", json_integer(cur + 1));
        return 0;
}

static int cmd_approve(KubeClient *k, const char *name) {
        _cleanup_free_ char *path = NULL, *err = NULL;
        int64_t approved = 0;
        if (asprintf(&path, "%s/%s", OS_PATH, name) < 0)
                return log_oom();
        int r = kube_update_retry(k, path, bump_approved, &approved, NULL, &err);
        if (r == -ENOENT)
                return log_error_errno(r, "No OS object named '%s'", name);
        if (r < 0)
                return log_error_errno(r, "Failed to approve the next batch of OS '%s': %s", name,
                                       err ?: "(no message)");
        printf("OS %s: approvedBatches is now %" PRIi64 "; the rollout may pass its next manual gate.\n", name,
               approved);
        return 0;
}

/* ---- retry ---- */

static bool phase_failed(const char *phase) {
        return phase && (streq(phase, "Failed") || streq(phase, "RolledBack"));
}

/* Why NODE cannot be retried for task T, or NULL if it can. */
static char *retry_refusal(const char *node, json_t *osnode, const char *task) {
        const char *cur = status_str(osnode, "task"), *phase = status_str(osnode, "phase");
        char *why = NULL;
        int r;

        if (!osnode)
                r = asprintf(&why, "%s has no OSNode: is hull-node running there?", node);
        else if (cur && streq(cur, task) && phase_failed(phase))
                return NULL;
        else if (cur && streq(cur, task))
                r = asprintf(&why, "%s has not failed this rollout's task: it is %s", node, phase ?: "without a phase");
        else if (phase_failed(phase))
                r = asprintf(&why, "%s failed task %s, not this rollout's task %s: it counts as pending already and "
                             "is given the task when the rollout allows", node, cur ?: "(none)", task);
        else
                r = asprintf(&why, "%s has not failed this rollout's task %s (phase %s%s%s)", node, task,
                             phase ?: "none", cur ? ", task " : "", cur ?: "");
        return r < 0 ? NULL : why;
}

static void now_precise(char buf[40]) {
        struct timespec ts;
        struct tm tm;
        (void) clock_gettime(CLOCK_REALTIME, &ts);
        (void) gmtime_r(&ts.tv_sec, &tm);
        size_t l = strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + l, 40 - l, ".%06ldZ", ts.tv_nsec / 1000);
}

static int cmd_retry(KubeClient *k, const char *name, char **nodes, size_t n_nodes) {
        _cleanup_(json_decrefp) json_t *os = NULL, *osnodes = NULL, *names = NULL, *byname = json_object(),
                                        *chosen = json_array();
        _cleanup_free_ char *path = NULL, *err = NULL, *task = NULL;
        _cleanup_(os_spec_done) OsSpec spec = {};
        json_t *n;
        size_t i;
        int r;

        if (!byname || !chosen || asprintf(&path, "%s/%s", OS_PATH, name) < 0)
                return log_oom();
        r = kube_get(k, path, &os, &err);
        if (r == -ENOENT)
                return log_error_errno(r, "No OS object named '%s' (see 'hullctl cluster status')", name);
        if (r < 0)
                return log_error_errno(r, "Failed to read OS '%s': %s", name, err ?: "(no message)");
        r = os_spec_parse(json_object_get(os, "spec"), &spec, &err);
        if (r < 0)
                return log_error_errno(r, "OS '%s' has an invalid spec, so it has no rollout to retry: %s", name,
                                       err ?: "(no message)");
        task = os_task_id(name, &spec);
        if (!task)
                return log_oom();
        r = selected_nodes(k, os, &names);
        if (r < 0)
                return r;
        r = list_all(k, OSNODE_PATH, &osnodes);
        if (r < 0)
                return r;
        json_array_foreach(osnodes, i, n)
                json_object_set(byname, kube_name(n), n);

        /* All or nothing: a list with one wrong name changes no node. */
        if (n_nodes > 0) {
                bool bad = false;
                for (i = 0; i < n_nodes; i++) {
                        _cleanup_free_ char *why = NULL;
                        if (!json_object_get(names, nodes[i])) {
                                log_error("%s is not a node of OS '%s' (its nodeSelector, minus hull.dev/unmanaged=true)",
                                          nodes[i], name);
                                bad = true;
                                continue;
                        }
                        why = retry_refusal(nodes[i], json_object_get(byname, nodes[i]), task);
                        if (why) {
                                log_error("%s", why);
                                bad = true;
                                continue;
                        }
                        json_array_append_new(chosen, json_string(nodes[i]));
                }
                if (bad) {
                        log_error("Nothing was changed.");
                        return -EINVAL;
                }
        } else {
                const char *key;
                json_t *v;
                json_object_foreach(names, key, v) {
                        _cleanup_free_ char *why = retry_refusal(key, json_object_get(byname, key), task);
                        if (!why)
                                json_array_append_new(chosen, json_string(key));
                }
                if (json_array_size(chosen) == 0) {
                        printf("No node of OS %s failed its task %s: nothing to retry.\n", name, task);
                        return 0;
                }
        }

        /* The request goes to each node's hull-node through its OSNode; a
         * new requestedAt is a new request, even for the same task. */
        char at[40];
        now_precise(at);
        json_array_foreach(chosen, i, n) {
                const char *node = json_string_value(n);
                _cleanup_free_ char *p = NULL, *e = NULL;
                json_t *patch = json_pack("{s:{s:{s:s, s:s}}}", "spec", "retry", "task", task, "requestedAt", at);
                if (!patch || asprintf(&p, "%s/%s", OSNODE_PATH, node) < 0) {
                        json_decref(patch);
                        return log_oom();
                }
                r = kube_merge_patch(k, p, patch, NULL, &e);
                json_decref(patch);
                if (r < 0)
                        return log_error_errno(r, "Failed to ask for a retry on %s: %s%s", node, e ?: "(no message)",
                                               i > 0 ? " (the nodes before it were asked)" : "");
        }

        /* A node that timed out, was quarantined and then reported its
         * failure: the person asking for the retry has looked at it. The
         * label goes after the request, so that the node never counts as
         * pending while its OSNode still says Failed. */
        json_array_foreach(chosen, i, n) {
                const char *node = json_string_value(n);
                _cleanup_(json_decrefp) json_t *obj = NULL;
                _cleanup_free_ char *p = NULL, *e = NULL;
                if (asprintf(&p, "/api/v1/nodes/%s", node) < 0)
                        return log_oom();
                r = kube_get(k, p, &obj, &e);
                if (r < 0)
                        return log_error_errno(r, "Failed to read node %s: %s", node, e ?: "(no message)");
                const char *q = kube_label(obj, "hull.dev/quarantined");
                if (!q)
                        continue;
                json_t *patch = json_pack("{s:{s:{s:n}}}", "metadata", "labels", "hull.dev/quarantined");
                if (!patch)
                        return log_oom();
                free(e);
                e = NULL;
                r = kube_merge_patch(k, p, patch, NULL, &e);
                json_decref(patch);
                if (r < 0)
                        return log_error_errno(r, "Failed to remove the quarantine label of %s: %s", node,
                                               e ?: "(no message)");
                printf("%s: quarantine label removed\n", node);
        }

        /* hull-node answers in status.retry; wait for every answer. */
        size_t answered = 0, refused = 0, n_chosen = json_array_size(chosen);
        _cleanup_free_ bool *done = calloc(n_chosen, sizeof(bool));
        if (!done)
                return log_oom();
        for (unsigned waited = 0;; waited++) {
                json_array_foreach(chosen, i, n) {
                        const char *node = json_string_value(n);
                        _cleanup_(json_decrefp) json_t *obj = NULL;
                        _cleanup_free_ char *p = NULL, *e = NULL;
                        if (done[i])
                                continue;
                        if (asprintf(&p, "%s/%s", OSNODE_PATH, node) < 0)
                                return log_oom();
                        if (kube_get(k, p, &obj, &e) < 0)
                                continue;
                        json_t *ans = json_object_get(json_object_get(obj, "status"), "retry");
                        const char *got = json_string_value(json_object_get(ans, "requestedAt"));
                        if (!got || !streq(got, at))
                                continue;
                        const char *result = json_string_value(json_object_get(ans, "result"));
                        const char *msg = json_string_value(json_object_get(ans, "message"));
                        done[i] = true;
                        answered++;
                        if (!result || !streq(result, "Reset"))
                                refused++;
                        printf("%s: %s: %s\n", node, result ?: "?", msg ?: "");
                }
                if (answered == n_chosen || waited >= arg_wait)
                        break;
                sleep(1);
        }
        json_array_foreach(chosen, i, n)
                if (!done[i])
                        printf("%s: no answer from hull-node in %u s; the request stays and is carried out when "
                               "hull-node runs there (kubectl get osnode %s -o jsonpath='{.status.retry}')\n",
                               json_string_value(n), arg_wait, json_string_value(n));
        if (answered == n_chosen && refused == 0)
                printf("OS %s: %zu node(s) will be given task %s again as the rollout allows (hullctl cluster "
                       "status %s).\n", name, n_chosen, task, name);
        return answered == n_chosen && refused == 0 ? 0 : -EIO;
}

int cluster_main(int argc, char **argv) {
        enum { ARG_KUBECONFIG = 0x100, ARG_CONTEXT, ARG_JSON, ARG_VERSION, ARG_IMAGE_URL, ARG_SHA256, ARG_KEY_ID,
               ARG_KUBELET_VERSION, ARG_CREATED, ARG_MAX_UNAVAILABLE, ARG_BATCHES, ARG_BUNDLE, ARG_TRUST, ARG_REGISTRY_AUTH,
               ARG_REGISTRY_CA, ARG_WAIT };
        static const struct option opts[] = {
                { "kubeconfig", required_argument, NULL, ARG_KUBECONFIG },
                { "context", required_argument, NULL, ARG_CONTEXT },
                { "json", no_argument, NULL, ARG_JSON },
                { "version", required_argument, NULL, ARG_VERSION },
                { "image-url", required_argument, NULL, ARG_IMAGE_URL },
                { "sha256", required_argument, NULL, ARG_SHA256 },
                { "key-id", required_argument, NULL, ARG_KEY_ID },
                { "kubelet-version", required_argument, NULL, ARG_KUBELET_VERSION },
                { "created", required_argument, NULL, ARG_CREATED },
                { "max-unavailable", required_argument, NULL, ARG_MAX_UNAVAILABLE },
                { "batches", required_argument, NULL, ARG_BATCHES },
                { "bundle", required_argument, NULL, ARG_BUNDLE },
                { "trust", required_argument, NULL, ARG_TRUST },
                { "registry-auth", required_argument, NULL, ARG_REGISTRY_AUTH },
                { "registry-ca", required_argument, NULL, ARG_REGISTRY_CA },
                { "wait", required_argument, NULL, ARG_WAIT },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        _cleanup_(kube_config_unrefp) KubeConfig *config = NULL;
        _cleanup_(kube_client_freep) KubeClient *k = NULL;
        _cleanup_free_ char *err = NULL;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
                switch (c) {
                case ARG_KUBECONFIG:
                        arg_kubeconfig = optarg;
                        break;
                case ARG_CONTEXT:
                        arg_context = optarg;
                        break;
                case ARG_JSON:
                        arg_json = true;
                        break;
                case ARG_VERSION:
                        arg_version = optarg;
                        break;
                case ARG_IMAGE_URL:
                        arg_image_url = optarg;
                        break;
                case ARG_SHA256:
                        arg_sha256 = optarg;
                        break;
                case ARG_KEY_ID:
                        arg_key_id = optarg;
                        break;
                case ARG_KUBELET_VERSION:
                        arg_kubelet_version = optarg;
                        break;
                case ARG_CREATED:
                        arg_created = optarg;
                        break;
                case ARG_MAX_UNAVAILABLE:
                        arg_max_unavailable = optarg;
                        break;
                case ARG_BATCHES:
                        arg_batches = optarg;
                        break;
                case ARG_BUNDLE:
                        arg_bundle = optarg;
                        break;
                case ARG_TRUST:
                        arg_trust = optarg;
                        break;
                case ARG_REGISTRY_AUTH:
                        arg_registry_auth = optarg;
                        break;
                case ARG_REGISTRY_CA:
                        arg_registry_ca = optarg;
                        break;
                case ARG_WAIT: {
                        char *end = NULL;
                        errno = 0;
                        unsigned long v = strtoul(optarg, &end, 10);
                        if (errno != 0 || !end || *end || end == optarg || *optarg == '-' || v > 3600) {
                                log_error("--wait takes a number of seconds from 0 to 3600, not '%s'", optarg);
                                return 2;
                        }
                        arg_wait = (unsigned) v;
                        arg_wait_set = true;
                        break;
                }
                case 'h':
                        cluster_help();
                        return 0;
                default:
                        log_error("see 'hullctl cluster --help'");
                        return 2;
                }
        char **args = argv + optind;
        int n = argc - optind;
        if (n < 1) {
                cluster_help();
                return 2;
        }
        const char *verb = args[0];
        bool needs_os = streq(verb, "upgrade") || streq(verb, "rollback") || streq(verb, "pause") ||
                        streq(verb, "resume") || streq(verb, "approve");
        bool retry = streq(verb, "retry");
        if (!needs_os && !retry && !streq(verb, "status") && !streq(verb, "nodes")) {
                log_error("Unknown cluster command '%s' (status, nodes, upgrade, rollback, pause, resume, approve, "
                          "retry)",
                          verb);
                return 2;
        }
        if ((needs_os && n != 2) || (retry && n < 2) || (streq(verb, "status") && n > 2) || (streq(verb, "nodes") && n != 1)) {
                log_error("Wrong number of arguments for 'hullctl cluster %s'; see 'hullctl cluster --help'", verb);
                return 2;
        }

        /* Check what can be checked before connecting: a typo in a flag
         * should not wait for (or depend on) the cluster. */
        if (streq(verb, "upgrade") &&
            ((r = check_upgrade_args_early()) < 0 || (r = set_created(arg_created, "--created")) < 0 ||
             (r = fill_from_bundle()) < 0 || (r = resolve_oci_image()) < 0 || (r = check_upgrade_args()) < 0))
                return 2;
        if (!streq(verb, "upgrade") && (arg_bundle || arg_trust || arg_created)) {
                log_error("%s", arg_created ? "--created is for upgrade" : "--bundle and --trust are for upgrade");
                return 2;
        }
        if (!retry && arg_wait_set) {
                log_error("--wait is for retry");
                return 2;
        }
        if (streq(verb, "rollback") && !arg_version) {
                log_error("rollback needs --version: the version the nodes go back to (it must be in their "
                          "other slot)");
                return 2;
        }

        r = kube_global_init();
        if (r >= 0)
                r = kube_config_load(arg_kubeconfig, arg_context, &config, &err);
        if (r < 0) {
                log_error_errno(r, "Failed to load the kubeconfig: %s%s", err ?: "(no message)",
                                r == -ENOENT ? " (pass --kubeconfig FILE or set KUBECONFIG)" : "");
                return 1;
        }
        r = kube_client_new(config, &k);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the Kubernetes client: %m");
                return 1;
        }
        (void) kube_client_set_user_agent(k, "hullctl/" HULL_VERSION);

        if (streq(verb, "status"))
                r = cmd_status(k, n == 2 ? args[1] : NULL);
        else if (streq(verb, "nodes"))
                r = cmd_nodes(k);
        else if (streq(verb, "upgrade"))
                r = cmd_upgrade(k, args[1]);
        else if (streq(verb, "rollback"))
                r = cmd_rollback(k, args[1]);
        else if (streq(verb, "pause") || streq(verb, "resume"))
                r = cmd_pause(k, args[1], streq(verb, "pause"));
        else if (retry)
                r = cmd_retry(k, args[1], args + 2, (size_t) n - 2);
        else
                r = cmd_approve(k, args[1]);
        return r == -EINVAL ? 2 : r < 0 ? 1 : 0;
}
