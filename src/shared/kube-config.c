/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Where the client's configuration comes from: a kubeconfig (YAML, one or
 * several files merged as kubectl does) or the in-cluster service account. */
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "fileio.h"
#include "kube-internal.h"
#include "kube.h"
#include "yaml-json.h"
#include "strutil.h"

#define KUBECONFIG_MAX (4U * 1024U * 1024U)
#define TOKEN_MAX (64U * 1024U)
#define NAMESPACE_MAX 256U
#define KUBECONFIG_FILES_MAX 64
#define DEFAULT_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"


KubeConfig *kube_config_ref(KubeConfig *c) {
        if (c)
                __atomic_add_fetch(&c->refcount, 1, __ATOMIC_RELAXED);
        return c;
}

static void free_secret(void *p, size_t n) {
        if (p)
                explicit_bzero(p, n);
        free(p);
}

KubeConfig *kube_config_unref(KubeConfig *c) {
        if (!c)
                return NULL;
        if (__atomic_sub_fetch(&c->refcount, 1, __ATOMIC_ACQ_REL) > 0)
                return NULL;
        free(c->server);
        free_secret(c->token, c->token ? strlen(c->token) : 0);
        free(c->token_file);
        free(c->ca_file);
        free(c->ca_data);
        free(c->cert_data);
        free_secret(c->key_data, c->key_size);
        free(c->cert_file);
        free(c->key_file);
        free(c->namespace);
        free(c->user_agent);
        free(c);
        return NULL;
}

int kube_config_set_user_agent(KubeConfig *c, const char *ua) {
        char *s = strdup(ua);
        if (!s)
                return -ENOMEM;
        free(c->user_agent);
        c->user_agent = s;
        return 0;
}

static KubeConfig *config_new(void) {
        KubeConfig *c = calloc(1, sizeof(*c));
        if (c)
                c->refcount = 1;
        return c;
}

static bool b64_char(char ch) {
        return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '+' ||
               ch == '/';
}

int kube_base64_decode(const char *s, void **ret, size_t *ret_size) {
        _cleanup_free_ char *in = NULL;
        unsigned char *out;
        size_t n = 0, pad = 0;
        int k;

        in = malloc(strlen(s) + 1);
        if (!in)
                return -ENOMEM;
        for (const char *p = s; *p; p++) {
                if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
                        continue;
                if (*p == '=')
                        pad++;
                else if (!b64_char(*p) || pad > 0)
                        return -EBADMSG; /* bad character, or data after '=' */
                in[n++] = *p;
        }
        in[n] = '\0';
        if (n == 0 || n % 4 != 0 || pad > 2 || n > INT32_MAX)
                return -EBADMSG;
        out = malloc(n / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        /* EVP_DecodeBlock counts the padding as zero bytes: take it off. */
        k = EVP_DecodeBlock(out, (const unsigned char *) in, (int) n);
        if (k < 0 || (size_t) k < pad) {
                free(out);
                return -EBADMSG;
        }
        *ret_size = (size_t) k - pad;
        out[*ret_size] = '\0';
        *ret = out;
        return 0;
}

/* ---- kubeconfig ---- */

typedef struct Merge {
        /* name -> {"v": entry body, "dir": directory of its file} */
        json_t *clusters, *users, *contexts;
        char *current_context;
        unsigned files;
} Merge;

static void merge_done(Merge *m) {
        json_decref(m->clusters);
        json_decref(m->users);
        json_decref(m->contexts);
        free(m->current_context);
}

static int merge_section(json_t *root, const char *list, const char *item, json_t *into, const char *dir,
                         const char *path, char **ret_error) {
        json_t *a = json_object_get(root, list), *e;
        size_t i;

        if (!a || json_is_null(a))
                return 0;
        if (!json_is_array(a))
                return error_set(ret_error, -EBADMSG, "%s: '%s' is not a list", path, list);
        json_array_foreach(a, i, e) {
                const char *name = json_string_value(json_object_get(e, "name"));
                json_t *body = json_object_get(e, item);
                if (!name)
                        return error_set(ret_error, -EBADMSG, "%s: %s[%zu] has no name", path, list, i);
                if (body && !json_is_object(body) && !json_is_null(body))
                        return error_set(ret_error, -EBADMSG, "%s: %s '%s': '%s' is not a mapping", path, list, name,
                                    item);
                /* kubectl's merge: the first file that defines a name wins. */
                if (json_object_get(into, name))
                        continue;
                json_t *v = json_pack("{s:O, s:s}", "v", json_is_object(body) ? body : json_object(), "dir", dir);
                if (!v || json_object_set_new(into, name, v) < 0)
                        return -ENOMEM;
                if (!json_is_object(body))
                        json_decref(json_object_get(v, "v")); /* the temporary empty object */
        }
        return 0;
}

static int merge_file(Merge *m, const char *path, bool must_exist, char **ret_error) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_free_ char *data = NULL, *copy = NULL, *yerr = NULL, *abs_dir = NULL;
        size_t size = 0;
        const char *dir, *cc;
        int r;

        r = read_full_file(path, KUBECONFIG_MAX, &data, &size);
        if (r == -ENOENT && !must_exist)
                return 0; /* kubectl skips files in KUBECONFIG that do not exist */
        if (r < 0)
                return error_set(ret_error, r, "%s: %s", path, strerror(-r));
        m->files++;

        bool blank = true;
        for (size_t i = 0; i < size; i++)
                if (data[i] != ' ' && data[i] != '\n' && data[i] != '\r' && data[i] != '\t') {
                        blank = false;
                        break;
                }
        if (blank)
                return 0;
        r = yaml_to_json(data, size, &root, &yerr);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return error_set(ret_error, -EBADMSG, "%s:%s", path, yerr ?: " not YAML");
        if (!json_is_object(root))
                return error_set(ret_error, -EBADMSG, "%s: not a mapping", path);

        copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        dir = dirname(copy);
        if (dir[0] != '/') {
                _cleanup_free_ char *cwd = getcwd(NULL, 0);
                if (!cwd)
                        return -errno;
                abs_dir = path_join(cwd, dir);
                if (!abs_dir)
                        return -ENOMEM;
                dir = abs_dir;
        }

        cc = json_string_value(json_object_get(root, "current-context"));
        if (!m->current_context && !isempty(cc)) {
                m->current_context = strdup(cc);
                if (!m->current_context)
                        return -ENOMEM;
        }
        if ((r = merge_section(root, "clusters", "cluster", m->clusters, dir, path, ret_error)) < 0 ||
            (r = merge_section(root, "users", "user", m->users, dir, path, ret_error)) < 0 ||
            (r = merge_section(root, "contexts", "context", m->contexts, dir, path, ret_error)) < 0)
                return r;
        return 0;
}

/* A string field, or NULL; -EBADMSG if present with another type. */
static int get_string(json_t *o, const char *key, const char **ret, const char *what, char **ret_error) {
        json_t *v = json_object_get(o, key);
        if (!v || json_is_null(v)) {
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v))
                return error_set(ret_error, -EBADMSG, "%s: '%s' is not a string", what, key);
        *ret = json_string_value(v);
        return 0;
}

static int resolve_path(const char *dir, const char *p, char **ret) {
        char *s = p[0] == '/' ? strdup(p) : path_join(dir, p);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int decode_field(json_t *o, const char *key, void **ret, size_t *ret_size, const char *what,
                        char **ret_error) {
        const char *s;
        int r;

        r = get_string(o, key, &s, what, ret_error);
        if (r < 0 || !s)
                return r;
        r = kube_base64_decode(s, ret, ret_size);
        if (r == -EBADMSG)
                return error_set(ret_error, r, "%s: '%s' is not valid base64", what, key);
        return r;
}

static int config_from_merge(Merge *m, const char *context, KubeConfig **ret, char **ret_error) {
        _cleanup_(kube_config_unrefp) KubeConfig *c = NULL;
        json_t *ctx, *cl, *us = NULL, *clv, *usv = NULL;
        const char *name, *cluster_name, *user_name, *ns, *s, *cdir, *udir = NULL;
        _cleanup_free_ char *what_cl = NULL, *what_us = NULL;
        int r;

        name = context ?: m->current_context;
        if (isempty(name))
                return error_set(ret_error, -EBADMSG, "kubeconfig has no current-context and no context was given");
        ctx = json_object_get(json_object_get(m->contexts, name), "v");
        if (!ctx)
                return error_set(ret_error, -EBADMSG, "context \"%s\" not found in kubeconfig", name);
        if ((r = get_string(ctx, "cluster", &cluster_name, "context", ret_error)) < 0 ||
            (r = get_string(ctx, "user", &user_name, "context", ret_error)) < 0 ||
            (r = get_string(ctx, "namespace", &ns, "context", ret_error)) < 0)
                return r;
        if (isempty(cluster_name))
                return error_set(ret_error, -EBADMSG, "context \"%s\" names no cluster", name);
        cl = json_object_get(m->clusters, cluster_name);
        if (!cl)
                return error_set(ret_error, -EBADMSG, "cluster \"%s\" (of context \"%s\") not found in kubeconfig",
                            cluster_name, name);
        clv = json_object_get(cl, "v");
        cdir = json_string_value(json_object_get(cl, "dir"));
        if (!isempty(user_name)) {
                us = json_object_get(m->users, user_name);
                if (!us)
                        return error_set(ret_error, -EBADMSG, "user \"%s\" (of context \"%s\") not found in kubeconfig",
                                    user_name, name);
                usv = json_object_get(us, "v");
                udir = json_string_value(json_object_get(us, "dir"));
        }
        if (asprintf(&what_cl, "cluster \"%s\"", cluster_name) < 0 ||
            asprintf(&what_us, "user \"%s\"", user_name ?: "") < 0)
                return -ENOMEM;

        c = config_new();
        if (!c)
                return -ENOMEM;

        r = get_string(clv, "server", &s, what_cl, ret_error);
        if (r < 0)
                return r;
        if (isempty(s))
                return error_set(ret_error, -EBADMSG, "%s has no server", what_cl);
        if (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0)
                return error_set(ret_error, -EBADMSG, "%s: server '%s' is not an http(s) URL", what_cl, s);
        c->server = strdup(s);
        if (!c->server)
                return -ENOMEM;
        for (size_t l = strlen(c->server); l > 0 && c->server[l - 1] == '/'; l--)
                c->server[l - 1] = '\0';

        r = decode_field(clv, "certificate-authority-data", &c->ca_data, &c->ca_size, what_cl, ret_error);
        if (r < 0)
                return r;
        r = get_string(clv, "certificate-authority", &s, what_cl, ret_error);
        if (r < 0)
                return r;
        if (s && !c->ca_data && (r = resolve_path(cdir, s, &c->ca_file)) < 0)
                return r;
        json_t *insecure = json_object_get(clv, "insecure-skip-tls-verify");
        if (insecure && !json_is_boolean(insecure) && !json_is_null(insecure))
                return error_set(ret_error, -EBADMSG, "%s: 'insecure-skip-tls-verify' is not a boolean", what_cl);
        c->insecure = json_is_true(insecure);

        if (usv) {
                r = get_string(usv, "token", &s, what_us, ret_error);
                if (r < 0)
                        return r;
                if (!isempty(s) && !(c->token = strdup(s)))
                        return -ENOMEM;
                r = get_string(usv, "tokenFile", &s, what_us, ret_error);
                if (r < 0)
                        return r;
                if (!isempty(s) && (r = resolve_path(udir, s, &c->token_file)) < 0)
                        return r;
                r = decode_field(usv, "client-certificate-data", &c->cert_data, &c->cert_size, what_us, ret_error);
                if (r < 0)
                        return r;
                r = decode_field(usv, "client-key-data", &c->key_data, &c->key_size, what_us, ret_error);
                if (r < 0)
                        return r;
                r = get_string(usv, "client-certificate", &s, what_us, ret_error);
                if (r < 0)
                        return r;
                if (s && !c->cert_data && (r = resolve_path(udir, s, &c->cert_file)) < 0)
                        return r;
                r = get_string(usv, "client-key", &s, what_us, ret_error);
                if (r < 0)
                        return r;
                if (s && !c->key_data && (r = resolve_path(udir, s, &c->key_file)) < 0)
                        return r;
                if ((c->cert_data || c->cert_file) != (c->key_data || c->key_file))
                        return error_set(ret_error, -EBADMSG, "%s: a client certificate needs a client key and vice versa",
                                    what_us);
                if (!c->token && !c->token_file && !c->cert_data && !c->cert_file &&
                    (json_object_get(usv, "exec") || json_object_get(usv, "auth-provider")))
                        return error_set(ret_error, -EOPNOTSUPP,
                                    "%s: exec and auth-provider credential plugins are not supported", what_us);
        }
        if (!isempty(ns) && !(c->namespace = strdup(ns)))
                return -ENOMEM;
        if (!c->namespace && !(c->namespace = strdup("default")))
                return -ENOMEM;

        *ret = TAKE_PTR(c);
        return 0;
}

int kube_config_load(const char *path, const char *context, KubeConfig **ret, char **ret_error) {
        _cleanup_free_ char *list = NULL, *home_path = NULL;
        Merge m = {};
        int r;

        if (!ret)
                return -EINVAL;
        m.clusters = json_object();
        m.users = json_object();
        m.contexts = json_object();
        if (!m.clusters || !m.users || !m.contexts) {
                r = -ENOMEM;
                goto finish;
        }

        if (path) {
                r = merge_file(&m, path, true, ret_error);
                if (r < 0)
                        goto finish;
        } else {
                const char *env = getenv("KUBECONFIG");
                if (!isempty(env)) {
                        unsigned n = 0;
                        list = strdup(env);
                        if (!list) {
                                r = -ENOMEM;
                                goto finish;
                        }
                        for (char *p = list, *next; p; p = next) {
                                next = strchr(p, ':');
                                if (next)
                                        *next++ = '\0';
                                if (*p == '\0')
                                        continue;
                                if (++n > KUBECONFIG_FILES_MAX) {
                                        r = error_set(ret_error, -E2BIG, "KUBECONFIG lists more than %d files",
                                                 KUBECONFIG_FILES_MAX);
                                        goto finish;
                                }
                                r = merge_file(&m, p, false, ret_error);
                                if (r < 0)
                                        goto finish;
                        }
                } else {
                        const char *home = getenv("HOME");
                        if (isempty(home)) {
                                r = error_set(ret_error, -ENOENT, "no kubeconfig: neither KUBECONFIG nor HOME is set");
                                goto finish;
                        }
                        home_path = path_join(home, ".kube/config");
                        if (!home_path) {
                                r = -ENOMEM;
                                goto finish;
                        }
                        r = merge_file(&m, home_path, true, ret_error);
                        if (r < 0)
                                goto finish;
                }
                if (m.files == 0) {
                        r = error_set(ret_error, -ENOENT, "none of the files in KUBECONFIG exists");
                        goto finish;
                }
        }
        r = config_from_merge(&m, context, ret, ret_error);
finish:
        merge_done(&m);
        return r;
}

/* ---- in-cluster ---- */

static int read_trimmed(const char *path, size_t max, char **ret) {
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        int r;

        r = read_full_file(path, max, &data, &size);
        if (r < 0)
                return r;
        while (size > 0 && (data[size - 1] == '\n' || data[size - 1] == '\r' || data[size - 1] == ' '))
                data[--size] = '\0';
        if (strlen(data) != size)
                return -EBADMSG; /* NUL inside */
        *ret = TAKE_PTR(data);
        return 0;
}

int kube_config_in_cluster(const char *dir, KubeConfig **ret, char **ret_error) {
        _cleanup_(kube_config_unrefp) KubeConfig *c = NULL;
        _cleanup_free_ char *ns_path = NULL, *ns = NULL;
        const char *host, *port;
        int r;

        if (!ret)
                return -EINVAL;
        host = getenv("KUBERNETES_SERVICE_HOST");
        port = getenv("KUBERNETES_SERVICE_PORT");
        if (isempty(host) || isempty(port))
                return error_set(ret_error, -ENOENT,
                            "not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
        for (const char *p = port; *p; p++)
                if (*p < '0' || *p > '9' || p - port > 5)
                        return error_set(ret_error, -EINVAL, "KUBERNETES_SERVICE_PORT '%s' is not a port", port);
        if (strpbrk(host, "/[]@ ?#"))
                return error_set(ret_error, -EINVAL, "KUBERNETES_SERVICE_HOST '%s' is not a host", host);
        dir = dir ?: DEFAULT_SA_DIR;

        c = config_new();
        if (!c)
                return -ENOMEM;
        /* An IPv6 address needs brackets in a URL (net.JoinHostPort). */
        if (asprintf(&c->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host, port) < 0) {
                c->server = NULL;
                return -ENOMEM;
        }
        c->token_file = path_join(dir, "token");
        c->ca_file = path_join(dir, "ca.crt");
        ns_path = path_join(dir, "namespace");
        if (!c->token_file || !c->ca_file || !ns_path)
                return -ENOMEM;

        r = read_trimmed(c->token_file, TOKEN_MAX, &c->token);
        if (r < 0)
                return error_set(ret_error, r, "reading the service account token %s: %s", c->token_file, strerror(-r));
        if (access(c->ca_file, R_OK) < 0)
                return error_set(ret_error, -errno, "service account CA %s: %m", c->ca_file);
        r = read_trimmed(ns_path, NAMESPACE_MAX, &ns);
        if (r >= 0 && !isempty(ns))
                c->namespace = TAKE_PTR(ns);
        else if (!(c->namespace = strdup("default")))
                return -ENOMEM;

        *ret = TAKE_PTR(c);
        return 0;
}

int kube_config_auto(const char *path, const char *context, KubeConfig **ret, char **ret_error) {
        if (!path && !isempty(getenv("KUBERNETES_SERVICE_HOST")))
                return kube_config_in_cluster(NULL, ret, ret_error);
        return kube_config_load(path, context, ret, ret_error);
}
