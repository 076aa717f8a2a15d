/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "fetch-internal.h"
#include "fileio.h"
#include "oci.h"
#include "strutil.h"

#define MANIFEST_BODY_MAX (4 * 1024 * 1024)
#define ERROR_BODY_MAX 8192
#define TOKEN_BODY_MAX (1024 * 1024)
#define AUTH_FILE_MAX (1024 * 1024)
#define CHALLENGE_MAX 4096
#define REF_MAX 2048
#define BACKOFF_FIRST_MSEC 500
#define BACKOFF_MAX_MSEC 10000
#define CONNECT_TIMEOUT_SEC 30
#define STALL_TIMEOUT_SEC 60

DEFINE_TRIVIAL_CLEANUP_FUNC(CURL *, curl_easy_cleanup);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct curl_slist *, curl_slist_free_all);
DEFINE_TRIVIAL_CLEANUP_FUNC(CURLU *, curl_url_cleanup);

static inline void curl_freep(char **p) {
        if (*p)
                curl_free(*p);
}

/* ---- digests ---- */

void oci_digest_data(const void *data, size_t size, char ret[static OCI_DIGEST_SIZE]) {
        uint8_t md[32];
        unsigned len = 0;

        memcpy(ret, "sha256:", 7);
        if (EVP_Digest(data, size, md, &len, EVP_sha256(), NULL) != 1 || len != 32)
                memset(md, 0, sizeof(md)); /* cannot happen; matches nothing real */
        hex_encode(md, 32, ret + 7);
}

static bool lower_hex(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

bool oci_digest_is_valid(const char *s) {
        return s && string_has_prefix(s, "sha256:") && strlen(s) == 71 && lower_hex(s + 7, 64);
}

/* ---- references ---- */

void oci_ref_done(OciRef *r) {
        if (!r)
                return;
        free(r->registry);
        free(r->repository);
        free(r->tag);
        free(r->digest);
        *r = (OciRef) {};
}

bool oci_ref_is_pinned(const OciRef *r) {
        return r && r->digest;
}

bool oci_url_is_oci(const char *s) {
        return s && strncasecmp(s, OCI_URL_PREFIX, strlen(OCI_URL_PREFIX)) == 0;
}

static bool is_lower_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum_c(char c) {
        return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* path-component := [a-z0-9]+ (separator [a-z0-9]+)*,
 * separator := [_.] | __ | [-]+ */
static bool path_component_ok(const char *s, size_t n) {
        size_t i = 0;

        if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
                return false;
        while (i < n) {
                if (is_lower_alnum(s[i])) {
                        i++;
                        continue;
                }
                size_t j = i;
                if (s[i] == '.')
                        j++;
                else if (s[i] == '_')
                        j += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
                else if (s[i] == '-')
                        while (j < n && s[j] == '-')
                                j++;
                else
                        return false;
                if (j >= n || !is_lower_alnum(s[j]))
                        return false;
                i = j;
        }
        return true;
}

/* domain-component := [A-Za-z0-9] | [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9] */
static bool domain_component_ok(const char *s, size_t n) {
        if (n == 0 || n > 63 || !is_alnum_c(s[0]) || !is_alnum_c(s[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_alnum_c(s[i]) && s[i] != '-')
                        return false;
        return true;
}

static bool port_ok(const char *s, size_t n) {
        unsigned v = 0;

        if (n == 0 || n > 5)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (unsigned) (s[i] - '0');
        }
        return v >= 1 && v <= 65535;
}

/* host[:port] or [ipv6][:port]; *ret_explicit: it is recognisably a host
 * (a '.', a port, an IPv6 literal or "localhost"). */
static bool host_ok(const char *s, size_t n, bool *ret_explicit) {
        const char *colon;
        size_t hn = n;

        if (n > 0 && s[0] == '[') {
                const char *close = memchr(s, ']', n);
                if (!close || close == s + 1)
                        return false;
                for (const char *p = s + 1; p < close; p++)
                        if (!isxdigit((unsigned char) *p) && *p != ':')
                                return false;
                size_t rest = n - (size_t) (close + 1 - s);
                if (rest > 0 && (close[1] != ':' || !port_ok(close + 2, rest - 1)))
                        return false;
                *ret_explicit = true;
                return true;
        }
        colon = memchr(s, ':', n);
        if (colon) {
                hn = (size_t) (colon - s);
                if (!port_ok(colon + 1, n - hn - 1))
                        return false;
        }
        if (hn == 0)
                return false;
        for (size_t i = 0, start = 0; i <= hn; i++)
                if (i == hn || s[i] == '.') {
                        if (!domain_component_ok(s + start, i - start))
                                return false;
                        start = i + 1;
                }
        *ret_explicit = colon || memchr(s, '.', hn) || (hn == 9 && strncmp(s, "localhost", 9) == 0);
        return true;
}

/* tag := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127} */
static bool tag_ok(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > OCI_TAG_MAX || !(is_alnum_c(s[0]) || s[0] == '_'))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!is_alnum_c(s[i]) && !strchr("_.-", s[i]))
                        return false;
        return true;
}

int oci_ref_parse(const char *s, OciRef *ret, char **ret_error) {
        _cleanup_free_ char *name = NULL, *tag = NULL, *digest = NULL, *host = NULL, *repo = NULL;
        char q[STRING_QUOTE_SIZE];
        const char *at, *slash, *colon;
        bool explicit_host = false;

        if (!s || !ret)
                return -EINVAL;
        if (strlen(s) > REF_MAX)
                return error_set(ret_error, -EINVAL, "image reference is longer than %d characters", REF_MAX);
        at = strchr(s, '@');
        if (at) {
                if (!oci_digest_is_valid(at + 1))
                        return error_set(ret_error, -EINVAL,
                                         "image reference %s: the digest must be sha256: and 64 lowercase hexadecimal digits",
                                         string_quote(q, s));
                digest = strdup(at + 1);
                name = strndup(s, (size_t) (at - s));
        } else
                name = strdup(s);
        if (!name || (at && !digest))
                return -ENOMEM;

        slash = strchr(name, '/');
        if (!slash)
                return error_set(ret_error, -EINVAL,
                                 "image reference %s has no registry host: write HOST[:PORT]/REPOSITORY[:TAG][@sha256:DIGEST]",
                                 string_quote(q, s));
        if (!host_ok(name, (size_t) (slash - name), &explicit_host) || !explicit_host)
                return error_set(ret_error, -EINVAL,
                                 "image reference %s does not start with a registry host (such as registry.example.com "
                                 "or localhost:5000; there is no default registry)",
                                 string_quote(q, s));
        host = strndup(name, (size_t) (slash - name));
        if (!host)
                return -ENOMEM;

        /* Path components cannot hold ':', so one after the host is the tag's. */
        colon = strrchr(slash + 1, ':');
        if (colon) {
                tag = strdup(colon + 1);
                if (!tag)
                        return -ENOMEM;
                if (!tag_ok(tag))
                        return error_set(ret_error, -EINVAL,
                                         "image reference %s: the tag must be 1 to %d characters from A-Z a-z 0-9 _ . -, "
                                         "not starting with . or -",
                                         string_quote(q, s), OCI_TAG_MAX);
                repo = strndup(slash + 1, (size_t) (colon - slash - 1));
        } else
                repo = strdup(slash + 1);
        if (!repo)
                return -ENOMEM;

        for (const char *p = repo;;) {
                const char *e = strchrnul(p, '/');
                if (!path_component_ok(p, (size_t) (e - p)))
                        return error_set(ret_error, -EINVAL,
                                         "image reference %s: the repository must be lowercase components [a-z0-9] "
                                         "separated by '/', with '.', '_', '__' or '-' inside a component",
                                         string_quote(q, s));
                if (*e == '\0')
                        break;
                p = e + 1;
        }
        if (strlen(host) + 1 + strlen(repo) > OCI_NAME_MAX)
                return error_set(ret_error, -EINVAL, "image reference %s: the name is longer than %d characters",
                                 string_quote(q, s), OCI_NAME_MAX);

        *ret = (OciRef) {
                .registry = TAKE_PTR(host),
                .repository = TAKE_PTR(repo),
                .tag = TAKE_PTR(tag),
                .digest = TAKE_PTR(digest),
        };
        return 0;
}

int oci_url_parse(const char *url, OciRef *ret, char **ret_error) {
        char q[STRING_QUOTE_SIZE];

        if (!oci_url_is_oci(url))
                return error_set(ret_error, -EINVAL, "%s is not an oci:// reference", string_quote(q, url ?: ""));
        return oci_ref_parse(url + strlen(OCI_URL_PREFIX), ret, ret_error);
}

int oci_ref_format(const OciRef *r, bool pinned_only, char **ret) {
        char *s;
        int n;

        if (pinned_only && !r->digest)
                return -EINVAL;
        if (pinned_only)
                n = asprintf(&s, "%s/%s@%s", r->registry, r->repository, r->digest);
        else
                n = asprintf(&s, "%s/%s%s%s%s%s", r->registry, r->repository, r->tag ? ":" : "", r->tag ?: "",
                             r->digest ? "@" : "", r->digest ?: "");
        if (n < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* ---- credentials ---- */

/* Strict base64 (RFC 4648 with padding) through OpenSSL. */
static int base64_decode(const char *in, char **ret) {
        size_t n = strlen(in), pad = 0;
        _cleanup_free_ unsigned char *out = NULL;

        if (n == 0 || n % 4 != 0 || n > AUTH_FILE_MAX)
                return -EBADMSG;
        for (size_t i = 0; i < n; i++) {
                char c = in[i];
                if (c == '=') {
                        if (i < n - 2)
                                return -EBADMSG;
                        pad++;
                } else if (pad > 0 || !(is_alnum_c(c) || c == '+' || c == '/'))
                        return -EBADMSG;
        }
        out = malloc(n / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        int l = EVP_DecodeBlock(out, (const unsigned char *) in, (int) n);
        if (l < 0 || (size_t) l < pad)
                return -EBADMSG;
        l -= (int) pad;
        out[l] = '\0';
        if (memchr(out, '\0', (size_t) l))
                return -EBADMSG;
        *ret = (char *) TAKE_PTR(out);
        return 0;
}

static int base64_encode(const char *in, char **ret) {
        size_t n = strlen(in);
        char *out = malloc((n + 2) / 3 * 4 + 1);

        if (!out)
                return -ENOMEM;
        (void) EVP_EncodeBlock((unsigned char *) out, (const unsigned char *) in, (int) n);
        *ret = out;
        return 0;
}

/* "https://host:5000/v1/" -> "host:5000": how docker writes its keys. */
static bool auth_key_matches(const char *key, const char *registry) {
        const char *k = key;
        size_t n;

        if (strncasecmp(k, "https://", 8) == 0)
                k += 8;
        else if (strncasecmp(k, "http://", 7) == 0)
                k += 7;
        n = strcspn(k, "/");
        return n == strlen(registry) && strncasecmp(k, registry, n) == 0;
}

static bool credential_ok(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

int oci_auth_parse(const char *data, size_t len, const char *registry, char **ret_user, char **ret_password,
                   char **ret_error) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_free_ char *decoded = NULL, *user = NULL, *pass = NULL;
        json_t *auths, *helpers, *entry = NULL, *v;
        const char *key;
        int r;

        if (!data || !registry || !ret_user || !ret_password)
                return -EINVAL;
        if (len > AUTH_FILE_MAX)
                return error_set(ret_error, -EBADMSG, "the registry credentials file is larger than %d bytes", AUTH_FILE_MAX);
        /* What a power cut leaves of a file written without fsync. */
        if (len == 0)
                return error_set(ret_error, -EBADMSG, "the registry credentials file is empty");
        root = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
        if (!root || !json_is_object(root))
                return error_set(ret_error, -EBADMSG, "the registry credentials file is not a JSON object");

        helpers = json_object_get(root, "credHelpers");
        if (helpers && !json_is_object(helpers))
                return error_set(ret_error, -EBADMSG, "\"credHelpers\" in the registry credentials file is not an object");
        json_object_foreach(helpers, key, v)
                if (auth_key_matches(key, registry))
                        return error_set(ret_error, -EOPNOTSUPP,
                                         "the registry credentials file names a credential helper for %s: "
                                         "credential helpers are not supported, put the credentials in \"auths\"",
                                         registry);

        auths = json_object_get(root, "auths");
        if (auths && !json_is_object(auths))
                return error_set(ret_error, -EBADMSG, "\"auths\" in the registry credentials file is not an object");
        json_object_foreach(auths, key, v)
                if (auth_key_matches(key, registry)) {
                        if (!json_is_object(v))
                                return error_set(ret_error, -EBADMSG,
                                                 "\"auths\" entry for %s in the registry credentials file is not an object",
                                                 registry);
                        /* An exact key wins over one with a scheme or path. */
                        if (!entry || streq(key, registry))
                                entry = v;
                }

        if (entry) {
                json_t *a = json_object_get(entry, "auth"), *u = json_object_get(entry, "username"),
                       *p = json_object_get(entry, "password");

                if ((a && !json_is_string(a)) || (u && !json_is_string(u)) || (p && !json_is_string(p)))
                        return error_set(ret_error, -EBADMSG,
                                         "\"auths\" entry for %s: \"auth\", \"username\" and \"password\" must be strings",
                                         registry);
                if (a && !isempty(json_string_value(a))) {
                        char *colon;
                        r = base64_decode(json_string_value(a), &decoded);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0 || !(colon = strchr(decoded, ':')) || colon == decoded)
                                return error_set(ret_error, -EBADMSG,
                                                 "\"auths\" entry for %s: \"auth\" is not base64 of USER:PASSWORD", registry);
                        user = strndup(decoded, (size_t) (colon - decoded));
                        pass = strdup(colon + 1);
                } else if (u && !isempty(json_string_value(u))) {
                        user = strdup(json_string_value(u));
                        pass = strdup(p ? json_string_value(p) : "");
                } else if (json_object_get(entry, "identitytoken") || json_object_get(entry, "registrytoken"))
                        return error_set(ret_error, -EOPNOTSUPP,
                                         "\"auths\" entry for %s holds an identity token: only a user name and password "
                                         "are supported",
                                         registry);
                if ((user || pass) && (!user || !pass))
                        return -ENOMEM;
                if (user && (!credential_ok(user) || !credential_ok(pass)))
                        return error_set(ret_error, -EBADMSG,
                                         "\"auths\" entry for %s: the user name or password holds control characters",
                                         registry);
        }
        if (!user) {
                v = json_object_get(root, "credsStore");
                if (v && !isempty(json_string_value(v)))
                        return error_set(ret_error, -EOPNOTSUPP,
                                         "the registry credentials file uses the credential store \"%s\" for %s: "
                                         "credential helpers are not supported, put the credentials in \"auths\"",
                                         json_string_value(v), registry);
                return 0;
        }
        *ret_user = TAKE_PTR(user);
        *ret_password = TAKE_PTR(pass);
        return 1;
}

int oci_auth_load(const char *path, const char *registry, char **ret_user, char **ret_password, char **ret_error) {
        _cleanup_free_ char *data = NULL, *err = NULL;
        size_t len = 0;
        int r;

        r = read_full_file(path, AUTH_FILE_MAX, &data, &len);
        if (r < 0) {
                errno = -r;
                return error_set(ret_error, r, "cannot read the registry credentials file %s: %m", path);
        }
        r = oci_auth_parse(data, len, registry, ret_user, ret_password, &err);
        if (r < 0 && err)
                return error_set(ret_error, r, "%s: %s", path, err);
        return r;
}

/* ---- WWW-Authenticate ---- */

void oci_challenge_done(OciChallenge *c) {
        if (!c)
                return;
        free(c->realm);
        free(c->service);
        free(c->scope);
        *c = (OciChallenge) {};
}

static bool is_tchar(char c) {
        return is_alnum_c(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void skip_ows(const char **p) {
        while (**p == ' ' || **p == '\t')
                (*p)++;
}

static size_t token_len(const char *p) {
        size_t n = 0;
        while (is_tchar(p[n]))
                n++;
        return n;
}

/* quoted-string: '"' *( qdtext / "\" (VCHAR / SP / HTAB) ) '"', here without
 * obs-text: a registry has no business sending bytes >= 0x80. */
static int parse_quoted(const char **p, char **ret) {
        const char *s = *p + 1;
        _cleanup_free_ char *out = malloc(strlen(s) + 1);
        size_t n = 0;

        if (!out)
                return -ENOMEM;
        for (;; s++) {
                unsigned char c = (unsigned char) *s;
                if (c == '"')
                        break;
                if (c == '\\') {
                        c = (unsigned char) *++s;
                        if (!(c == '\t' || (c >= 0x20 && c < 0x7f)))
                                return -EBADMSG;
                } else if (!(c == '\t' || (c >= 0x20 && c < 0x7f)))
                        return -EBADMSG; /* also the end of the string: unterminated */
                out[n++] = (char) c;
        }
        out[n] = '\0';
        *p = s + 1;
        *ret = TAKE_PTR(out);
        return 0;
}

int oci_challenge_parse(const char *header, OciChallenge *ret) {
        _cleanup_(oci_challenge_done) OciChallenge c = {};
        const char *p = header;
        size_t n;
        int r;

        if (!header || !ret)
                return -EINVAL;
        if (strlen(header) > CHALLENGE_MAX)
                return -EBADMSG;
        skip_ows(&p);
        n = token_len(p);
        if (n == 0)
                return -EBADMSG;
        bool basic = n == 5 && strncasecmp(p, "Basic", 5) == 0, bearer = n == 6 && strncasecmp(p, "Bearer", 6) == 0;
        p += n;
        if (*p != '\0' && *p != ' ')
                return -EBADMSG;
        skip_ows(&p);

        bool after_comma = false;
        while (*p != '\0') {
                const char *name = p;
                _cleanup_free_ char *value = NULL;
                char **slot = NULL;

                n = token_len(p);
                if (n == 0)
                        return -EBADMSG;
                p += n;
                skip_ows(&p);
                if (*p != '=') {
                        /* A token after a comma that is not a parameter's
                         * name starts the next challenge: only the first is
                         * read. (Neither scheme uses the token68 form.) */
                        if (after_comma && (*p == '\0' || p > name + n))
                                break;
                        return -EBADMSG;
                }
                p++;
                skip_ows(&p);
                if (*p == '"') {
                        r = parse_quoted(&p, &value);
                        if (r < 0)
                                return r;
                } else {
                        size_t vn = token_len(p);
                        if (vn == 0)
                                return -EBADMSG;
                        value = strndup(p, vn);
                        if (!value)
                                return -ENOMEM;
                        p += vn;
                }
                if (n == 5 && strncasecmp(name, "realm", 5) == 0)
                        slot = &c.realm;
                else if (n == 7 && strncasecmp(name, "service", 7) == 0)
                        slot = &c.service;
                else if (n == 5 && strncasecmp(name, "scope", 5) == 0)
                        slot = &c.scope;
                if (slot) {
                        if (*slot)
                                return -EBADMSG;
                        *slot = TAKE_PTR(value);
                }
                skip_ows(&p);
                if (*p == '\0')
                        break;
                if (*p != ',')
                        return -EBADMSG;
                p++;
                skip_ows(&p);
                if (*p == '\0')
                        return -EBADMSG;
                after_comma = true;
        }

        if (!basic && !bearer)
                return -EOPNOTSUPP;
        if (bearer && isempty(c.realm))
                return -EBADMSG;
        c.scheme = bearer ? OCI_AUTH_BEARER : OCI_AUTH_BASIC;
        *ret = c;
        c = (OciChallenge) {};
        return 0;
}

/* ---- the client ---- */

struct OciClient {
        char *registry, *repository;
        char *scheme;            /* "https" or "http" */
        char *ca_file;
        bool plain_http;
        unsigned max_retries, retry_after_max_sec;
        const volatile int *cancel;
        char *auth_file;
        char *user, *password;
        char *auth_header;       /* "Authorization: ..." or NULL */
        OciChallenge last;       /* the challenge that made auth_header */
        bool have_last;
        CURL *curl;
        char errbuf[CURL_ERROR_SIZE];
};

OciClient *oci_client_free(OciClient *c) {
        if (!c)
                return NULL;
        free(c->registry);
        free(c->repository);
        free(c->scheme);
        free(c->ca_file);
        free(c->auth_file);
        free(c->user);
        if (c->password)
                explicit_bzero(c->password, strlen(c->password));
        free(c->password);
        if (c->auth_header)
                explicit_bzero(c->auth_header, strlen(c->auth_header));
        free(c->auth_header);
        oci_challenge_done(&c->last);
        if (c->curl)
                curl_easy_cleanup(c->curl);
        free(c);
        return NULL;
}

int oci_client_new(const char *registry, const char *repository, const OciClientOptions *o, OciClient **ret,
                   char **ret_error) {
        _cleanup_(oci_client_freep) OciClient *c = NULL;
        static const OciClientOptions none = {};
        int r;

        if (!registry || !repository || !ret)
                return -EINVAL;
        o = o ?: &none;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->registry = strdup(registry);
        c->repository = strdup(repository);
        c->scheme = strdup(o->plain_http ? "http" : "https");
        if (!c->registry || !c->repository || !c->scheme)
                return -ENOMEM;
        if (o->ca_file && !(c->ca_file = strdup(o->ca_file)))
                return -ENOMEM;
        if (o->ca_file && access(o->ca_file, R_OK) < 0)
                return error_set(ret_error, -EINVAL, "the CA file %s is not readable: %m", o->ca_file);
        c->plain_http = o->plain_http;
        c->max_retries = o->max_retries ?: 3;
        c->retry_after_max_sec = o->retry_after_max_sec ?: 60;
        c->cancel = o->cancel;
        if (o->auth_file) {
                if (!(c->auth_file = strdup(o->auth_file)))
                        return -ENOMEM;
                r = oci_auth_load(o->auth_file, registry, &c->user, &c->password, ret_error);
                if (r < 0 && r != -ENOENT)
                        return r;
                if (r == -ENOENT && ret_error) {
                        free(*ret_error);
                        *ret_error = NULL;
                }
        }
        c->curl = curl_easy_init();
        if (!c->curl)
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

const char *oci_client_ca_file(const OciClient *c) {
        return c->ca_file;
}

bool oci_client_plain_http(const OciClient *c) {
        return c->plain_http;
}

static bool cancelled(const OciClient *c) {
        return c->cancel && *c->cancel != 0;
}

static int sleep_msec(const OciClient *c, unsigned msec) {
        while (msec > 0) {
                unsigned step = MIN(msec, 100u);
                if (cancelled(c))
                        return -ECANCELED;
                (void) nanosleep(&(struct timespec) { .tv_nsec = (long) step * 1000000L }, NULL);
                msec -= step;
        }
        return cancelled(c) ? -ECANCELED : 0;
}

typedef struct Request {
        const char *method;     /* GET HEAD PUT PATCH POST */
        const char *url;
        const char *const *headers;
        const void *data;       /* body from memory, or */
        int fd;                 /* from a file (>= 0) */
        uint64_t offset, length;
        bool has_body;
        size_t body_max;        /* 2xx body kept up to this; 0: discarded */
        bool follow;
} Request;

typedef struct Response {
        long status;
        char *body;
        size_t size, cap;
        bool too_big;
        char *location, *digest, *challenge, *content_type;
        long retry_after;
        uint64_t read_pos;
        const Request *req;
        int read_error;
} Response;

static void response_done(Response *r) {
        free(r->body);
        free(r->location);
        free(r->digest);
        free(r->challenge);
        free(r->content_type);
        *r = (Response) {};
}

/* A new response in the same transfer (interim, or the next one after a
 * redirect): forget the last one's headers and body, but not how far the
 * request body was read. */
static void response_reset(Response *r) {
        const Request *req = r->req;
        uint64_t read_pos = r->read_pos;
        int read_error = r->read_error;

        response_done(r);
        r->req = req;
        r->read_pos = read_pos;
        r->read_error = read_error;
        r->retry_after = -1;
}

static int set_str(char **p, const char *v) {
        char *n = strdup(v);
        if (!n)
                return -ENOMEM;
        free(*p);
        *p = n;
        return 0;
}

static size_t header_cb(char *buf, size_t size, size_t n, void *userdata) {
        Response *r = userdata;
        size_t len = size * n, l = len;
        char line[CHALLENGE_MAX + 64];

        while (l > 0 && (buf[l - 1] == '\n' || buf[l - 1] == '\r'))
                l--;
        if (l >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
                /* A new response (after a redirect or 100 Continue). */
                response_reset(r);
                const char *sp = memchr(buf, ' ', l);
                if (sp && buf + l - sp > 3 && isdigit((unsigned char) sp[1]) && isdigit((unsigned char) sp[2]) &&
                    isdigit((unsigned char) sp[3]))
                        r->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
                return len;
        }
        if (l == 0 || l >= sizeof(line))
                return len;
        memcpy(line, buf, l);
        line[l] = '\0';
        char *colon = strchr(line, ':');
        if (!colon)
                return len;
        *colon = '\0';
        char *v = colon + 1;
        v += strspn(v, " \t");
        for (char *e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t'); e--)
                e[-1] = '\0';

        int k = 0;
        if (strcasecmp(line, "Location") == 0)
                k = set_str(&r->location, v);
        else if (strcasecmp(line, "Docker-Content-Digest") == 0)
                k = set_str(&r->digest, v);
        else if (strcasecmp(line, "WWW-Authenticate") == 0 && !r->challenge)
                k = set_str(&r->challenge, v);
        else if (strcasecmp(line, "Content-Type") == 0)
                k = set_str(&r->content_type, v);
        else if (strcasecmp(line, "Retry-After") == 0) {
                unsigned s;
                if (safe_atou(v, &s) >= 0)
                        r->retry_after = (long) s;
        }
        return k < 0 ? 0 : len;
}

static size_t write_cb(char *buf, size_t size, size_t n, void *userdata) {
        Response *r = userdata;
        size_t len = size * n;
        size_t max = r->status >= 200 && r->status < 300 ? r->req->body_max : ERROR_BODY_MAX;

        if (r->size + len > max) {
                if (r->status >= 200 && r->status < 300) {
                        r->too_big = true;
                        return 0;
                }
                len = max - r->size; /* an error page: keep its start */
                if (len == 0)
                        return size * n;
        }
        if (r->size + len + 1 > r->cap) {
                size_t cap = MAX(r->cap * 2, r->size + len + 1);
                char *b = realloc(r->body, cap);
                if (!b)
                        return 0;
                r->body = b;
                r->cap = cap;
        }
        memcpy(r->body + r->size, buf, len);
        r->size += len;
        r->body[r->size] = '\0';
        return size * n;
}

static size_t read_cb(char *buf, size_t size, size_t n, void *userdata) {
        Response *r = userdata;
        const Request *q = r->req;
        size_t want = size * n;
        uint64_t left = q->length - r->read_pos;

        if (want > left)
                want = (size_t) left;
        if (want == 0)
                return 0;
        if (q->fd >= 0) {
                ssize_t k = pread(q->fd, buf, want, (off_t) (q->offset + r->read_pos));
                if (k <= 0) {
                        r->read_error = k < 0 ? -errno : -ENODATA;
                        return CURL_READFUNC_ABORT;
                }
                want = (size_t) k;
        } else
                memcpy(buf, (const uint8_t *) q->data + r->read_pos, want);
        r->read_pos += want;
        return want;
}

/* curl rewinds to send a body again (after a 401 with a body already sent). */
static int seek_cb(void *userdata, curl_off_t off, int origin) {
        Response *r = userdata;
        if (origin != SEEK_SET || off < 0 || (uint64_t) off > r->req->length)
                return CURL_SEEKFUNC_FAIL;
        r->read_pos = (uint64_t) off;
        return CURL_SEEKFUNC_OK;
}

static int xferinfo_cb(void *userdata, curl_off_t a, curl_off_t b, curl_off_t c_, curl_off_t d) {
        const OciClient *c = userdata;
        return cancelled(c) ? 1 : 0;
}

/* Whether url points at the registry itself: only then does it get our
 * Authorization header. */
static bool same_origin(const OciClient *c, const char *url) {
        size_t sl = strlen(c->scheme), rl = strlen(c->registry);
        return strncasecmp(url, c->scheme, sl) == 0 && strncmp(url + sl, "://", 3) == 0 &&
                strncasecmp(url + sl + 3, c->registry, rl) == 0 && (url[sl + 3 + rl] == '/' || url[sl + 3 + rl] == '\0');
}

#define SETOPT(curl, opt, val)                                    \
        do {                                                      \
                if (curl_easy_setopt(curl, opt, val) != CURLE_OK) \
                        return -EINVAL;                           \
        } while (0)

static int setup_common(OciClient *c, const char *url, bool follow) {
        CURL *curl = c->curl;

        curl_easy_reset(curl);
        c->errbuf[0] = '\0';
        SETOPT(curl, CURLOPT_URL, url);
        SETOPT(curl, CURLOPT_PROTOCOLS_STR, c->plain_http ? "https,http" : "https");
        SETOPT(curl, CURLOPT_REDIR_PROTOCOLS_STR, c->plain_http ? "https,http" : "https");
        SETOPT(curl, CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
        SETOPT(curl, CURLOPT_MAXREDIRS, 5L);
        /* A custom Authorization header never follows a redirect to another
         * host (libcurl >= 7.58 without CURLOPT_UNRESTRICTED_AUTH). */
        SETOPT(curl, CURLOPT_UNRESTRICTED_AUTH, 0L);
        SETOPT(curl, CURLOPT_NOSIGNAL, 1L);
        SETOPT(curl, CURLOPT_USERAGENT, "hull/" HULL_VERSION);
        SETOPT(curl, CURLOPT_ERRORBUFFER, c->errbuf);
        SETOPT(curl, CURLOPT_SSL_VERIFYPEER, 1L);
        SETOPT(curl, CURLOPT_SSL_VERIFYHOST, 2L);
        SETOPT(curl, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
        if (c->ca_file)
                SETOPT(curl, CURLOPT_CAINFO, c->ca_file);
        SETOPT(curl, CURLOPT_CONNECTTIMEOUT, (long) CONNECT_TIMEOUT_SEC);
        SETOPT(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
        SETOPT(curl, CURLOPT_LOW_SPEED_TIME, (long) STALL_TIMEOUT_SEC);
        SETOPT(curl, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
        SETOPT(curl, CURLOPT_XFERINFODATA, c);
        SETOPT(curl, CURLOPT_NOPROGRESS, 0L);
        return 0;
}

/* "registry R, repository P" for messages. */
#define WHERE_FMT "registry %s, repository %s"
#define WHERE(c) (c)->registry, (c)->repository

/* The registry's own explanation: {"errors":[{"code":..,"message":..}]}. */
static void registry_error_text(const Response *r, char *buf, size_t size) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        json_t *e;

        buf[0] = '\0';
        if (!r->body)
                return;
        j = json_loadb(r->body, r->size, 0, NULL);
        e = json_array_get(json_object_get(j, "errors"), 0);
        if (!e)
                return;
        const char *code = json_string_value(json_object_get(e, "code")),
                   *msg = json_string_value(json_object_get(e, "message"));
        char q1[STRING_QUOTE_SIZE], q2[STRING_QUOTE_SIZE];
        if (code || msg)
                snprintf(buf, size, ": %s%s%s", code ? string_quote(q1, code) : "", code && msg ? " " : "",
                         msg ? string_quote(q2, msg) : "");
}

/* A URL-safe copy of a query value. */
static char *escape(OciClient *c, const char *s) {
        char *e = curl_easy_escape(c->curl, s, 0), *copy;
        if (!e)
                return NULL;
        copy = strdup(e);
        curl_free(e);
        return copy;
}

static int set_auth_header(OciClient *c, const char *scheme, const char *cred) {
        char *h;
        if (asprintf(&h, "Authorization: %s %s", scheme, cred) < 0)
                return -ENOMEM;
        if (c->auth_header)
                explicit_bzero(c->auth_header, strlen(c->auth_header));
        free(c->auth_header);
        c->auth_header = h;
        return 0;
}

static int basic_header(OciClient *c) {
        _cleanup_free_ char *pair = NULL, *b64 = NULL;
        int r;

        if (asprintf(&pair, "%s:%s", c->user, c->password) < 0)
                return -ENOMEM;
        r = base64_encode(pair, &b64);
        explicit_bzero(pair, strlen(pair));
        if (r < 0)
                return r;
        r = set_auth_header(c, "Basic", b64);
        explicit_bzero(b64, strlen(b64));
        return r;
}

/* The bearer token flow (distribution's token spec): GET realm?service=&scope=
 * with our basic credentials, if any; the answer's "token" (or
 * "access_token"). */
static int fetch_token(OciClient *c, const OciChallenge *ch, char **ret_error) {
        _cleanup_(curl_slist_free_allp) struct curl_slist *hl = NULL;
        _cleanup_free_ char *url = NULL, *svc = NULL, *scope = NULL, *basic = NULL;
        _cleanup_(json_decrefp) json_t *j = NULL;
        Request q = { .method = "GET", .fd = -1, .body_max = TOKEN_BODY_MAX };
        Response resp = { .req = &q, .retry_after = -1 };
        const char *tok;
        int r;

        if (!string_has_prefix(ch->realm, "https://") && !(c->plain_http && string_has_prefix(ch->realm, "http://")))
                return error_set(ret_error, -EACCES, WHERE_FMT ": the token service %s is not an https:// URL", WHERE(c),
                                 ch->realm);
        if (ch->service && !(svc = escape(c, ch->service)))
                return -ENOMEM;
        if (ch->scope && !(scope = escape(c, ch->scope)))
                return -ENOMEM;
        if (asprintf(&url, "%s%s%s%s%s%s", ch->realm, strchr(ch->realm, '?') ? "&" : "?", svc ? "service=" : "",
                     svc ?: "", scope ? (svc ? "&scope=" : "scope=") : "", scope ?: "") < 0)
                return -ENOMEM;
        q.url = url;

        r = setup_common(c, url, true);
        if (r < 0)
                return error_set(ret_error, r, "libcurl refused an option");
        if (c->user) {
                _cleanup_free_ char *pair = NULL, *b64 = NULL;
                if (asprintf(&pair, "%s:%s", c->user, c->password) < 0 || base64_encode(pair, &b64) < 0 ||
                    asprintf(&basic, "Authorization: Basic %s", b64) < 0)
                        return -ENOMEM;
                if (!(hl = curl_slist_append(hl, basic)))
                        return -ENOMEM;
        }
        SETOPT(c->curl, CURLOPT_HTTPHEADER, hl);
        SETOPT(c->curl, CURLOPT_HEADERFUNCTION, header_cb);
        SETOPT(c->curl, CURLOPT_HEADERDATA, &resp);
        SETOPT(c->curl, CURLOPT_WRITEFUNCTION, write_cb);
        SETOPT(c->curl, CURLOPT_WRITEDATA, &resp);
        CURLcode code = curl_easy_perform(c->curl);
        if (basic)
                explicit_bzero(basic, strlen(basic));
        if (code != CURLE_OK) {
                r = error_set(ret_error, fetch_curl_code_is_tls(code) ? -EPROTO : -ECOMM,
                              WHERE_FMT ": cannot get a token from %s: %s", WHERE(c), ch->realm,
                              c->errbuf[0] ? c->errbuf : curl_easy_strerror(code));
                response_done(&resp);
                return r;
        }
        if (resp.status == 401 || resp.status == 403) {
                r = error_set(ret_error, -EACCES, WHERE_FMT ": authentication failed: the token service %s answered HTTP %ld%s",
                              WHERE(c), ch->realm, resp.status,
                              c->user ? "" : " (no credentials for this registry)");
                response_done(&resp);
                return r;
        }
        if (resp.status != 200) {
                r = error_set(ret_error, -ECOMM, WHERE_FMT ": the token service %s answered HTTP %ld", WHERE(c), ch->realm,
                              resp.status);
                response_done(&resp);
                return r;
        }
        j = json_loadb(resp.body ?: "", resp.size, 0, NULL);
        response_done(&resp);
        tok = json_string_value(json_object_get(j, "token"));
        if (isempty(tok))
                tok = json_string_value(json_object_get(j, "access_token"));
        if (isempty(tok))
                return error_set(ret_error, -EBADMSG, WHERE_FMT ": the token service %s sent no token", WHERE(c),
                                 ch->realm);
        for (const char *p = tok; *p; p++)
                if ((unsigned char) *p <= 0x20 || (unsigned char) *p >= 0x7f)
                        return error_set(ret_error, -EBADMSG, WHERE_FMT ": the token service %s sent a malformed token",
                                         WHERE(c), ch->realm);
        return set_auth_header(c, "Bearer", tok);
}

/* Answer a challenge: make c->auth_header. */
static int authenticate(OciClient *c, const char *header, char **ret_error) {
        _cleanup_(oci_challenge_done) OciChallenge ch = {};
        int r;

        if (!header)
                return error_set(ret_error, -EACCES, WHERE_FMT ": authentication failed (HTTP 401 without a challenge)",
                                 WHERE(c));
        r = oci_challenge_parse(header, &ch);
        if (r == -EOPNOTSUPP)
                return error_set(ret_error, -EACCES, WHERE_FMT ": the registry asks for an authentication scheme "
                                 "other than Basic and Bearer", WHERE(c));
        if (r < 0)
                return error_set(ret_error, -EACCES, WHERE_FMT ": the registry's WWW-Authenticate header is malformed",
                                 WHERE(c));
        if (ch.scheme == OCI_AUTH_BASIC) {
                if (!c->user)
                        return error_set(ret_error, -EACCES,
                                         WHERE_FMT ": authentication failed: the registry wants a user name and password, "
                                         "and %s%s has none for %s",
                                         WHERE(c), c->auth_file ? "the credentials file " : "",
                                         c->auth_file ?: "no credentials file was given, so there are none", c->registry);
                r = basic_header(c);
        } else
                r = fetch_token(c, &ch, ret_error);
        if (r < 0)
                return r;
        oci_challenge_done(&c->last);
        c->last = ch;
        ch = (OciChallenge) {};
        c->have_last = true;
        return 0;
}

int oci_client_refresh_auth(OciClient *c, char **ret_error) {
        if (!c->have_last)
                return error_set(ret_error, -EACCES, WHERE_FMT ": authentication failed", WHERE(c));
        if (c->last.scheme == OCI_AUTH_BASIC)
                return error_set(ret_error, -EACCES, WHERE_FMT ": authentication failed (user name or password refused)",
                                 WHERE(c));
        return fetch_token(c, &c->last, ret_error);
}

int oci_client_auth_header(const OciClient *c, char **ret) {
        if (!c->auth_header) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(c->auth_header);
        return *ret ? 0 : -ENOMEM;
}

/* One request with authentication, and retries for 429 and 5xx. Returns 0
 * with resp filled for 2xx, 3xx, 404 and other statuses the caller judges;
 * an error for 401 (after authenticating), 403, and 429/5xx/network errors
 * that outlasted the retries. 'what' names the object in messages. */
static int request(OciClient *c, const Request *q, Response *resp, const char *what, char **ret_error) {
        bool authed = false;
        unsigned retries = 0;
        int r;

        for (;;) {
                _cleanup_(curl_slist_free_allp) struct curl_slist *hl = NULL;
                CURL *curl = c->curl;
                unsigned wait_ms;

                if (cancelled(c))
                        return error_set(ret_error, -ECANCELED, WHERE_FMT ": cancelled", WHERE(c));
                resp->req = q;
                response_reset(resp);
                resp->read_pos = 0;
                resp->read_error = 0;
                r = setup_common(c, q->url, q->follow);
                if (r < 0)
                        return error_set(ret_error, r, "libcurl refused an option");
                for (const char *const *h = q->headers; h && *h; h++)
                        if (!(hl = curl_slist_append(hl, *h)))
                                return -ENOMEM;
                if (c->auth_header && same_origin(c, q->url) && !(hl = curl_slist_append(hl, c->auth_header)))
                        return -ENOMEM;
                /* No 100-continue round trip (and its stall) before a body. */
                if (!(hl = curl_slist_append(hl, "Expect:")))
                        return -ENOMEM;
                SETOPT(curl, CURLOPT_HTTPHEADER, hl);
                SETOPT(curl, CURLOPT_HEADERFUNCTION, header_cb);
                SETOPT(curl, CURLOPT_HEADERDATA, resp);
                SETOPT(curl, CURLOPT_WRITEFUNCTION, write_cb);
                SETOPT(curl, CURLOPT_WRITEDATA, resp);
                if (streq(q->method, "HEAD"))
                        SETOPT(curl, CURLOPT_NOBODY, 1L);
                else if (streq(q->method, "POST") && !q->has_body) {
                        SETOPT(curl, CURLOPT_POST, 1L);
                        SETOPT(curl, CURLOPT_POSTFIELDS, "");
                        SETOPT(curl, CURLOPT_POSTFIELDSIZE, 0L);
                } else if (streq(q->method, "PUT") || streq(q->method, "PATCH")) {
                        SETOPT(curl, CURLOPT_UPLOAD, 1L);
                        SETOPT(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t) (q->has_body ? q->length : 0));
                        SETOPT(curl, CURLOPT_READFUNCTION, read_cb);
                        SETOPT(curl, CURLOPT_READDATA, resp);
                        SETOPT(curl, CURLOPT_SEEKFUNCTION, seek_cb);
                        SETOPT(curl, CURLOPT_SEEKDATA, resp);
                        if (streq(q->method, "PATCH"))
                                SETOPT(curl, CURLOPT_CUSTOMREQUEST, "PATCH");
                } else if (!streq(q->method, "GET"))
                        return -EINVAL;

                CURLcode code = curl_easy_perform(curl);
                const char *cmsg = c->errbuf[0] ? c->errbuf : curl_easy_strerror(code);

                if (resp->read_error < 0)
                        return error_set(ret_error, resp->read_error, WHERE_FMT ": reading the upload of %s failed: %s",
                                         WHERE(c), what, strerror(-resp->read_error));
                if (code == CURLE_ABORTED_BY_CALLBACK || cancelled(c))
                        return error_set(ret_error, -ECANCELED, WHERE_FMT ": cancelled", WHERE(c));
                if (code == CURLE_WRITE_ERROR && resp->too_big)
                        return error_set(ret_error, -E2BIG, WHERE_FMT ": %s is larger than %zu bytes", WHERE(c), what,
                                         q->body_max);
                if (code == CURLE_OUT_OF_MEMORY)
                        return -ENOMEM;
                if (code != CURLE_OK) {
                        if (fetch_curl_code_is_tls(code))
                                return error_set(ret_error, -EPROTO, WHERE_FMT ": TLS: %s", WHERE(c), cmsg);
                        if (code == CURLE_UNSUPPORTED_PROTOCOL)
                                return error_set(ret_error, -EPROTO, WHERE_FMT ": %s", WHERE(c), cmsg);
                        if (!fetch_curl_code_is_transient(code) || retries >= c->max_retries)
                                return error_set(ret_error, -ECOMM, WHERE_FMT ": %s %s failed: %s", WHERE(c), q->method,
                                                 what, cmsg);
                        wait_ms = MIN((unsigned) BACKOFF_FIRST_MSEC << MIN(retries, 5u), (unsigned) BACKOFF_MAX_MSEC);
                        goto retry;
                }

                char detail[512];
                registry_error_text(resp, detail, sizeof(detail));
                long s = resp->status;
                if (s == 401) {
                        if (!same_origin(c, q->url))
                                return error_set(ret_error, -EACCES,
                                                 WHERE_FMT ": authentication failed: %s is not on the registry's host, and "
                                                 "credentials are only sent there",
                                                 WHERE(c), q->url);
                        if (authed)
                                return error_set(ret_error, -EACCES,
                                                 WHERE_FMT ": authentication failed: %s refused the credentials (HTTP 401%s)",
                                                 WHERE(c), c->registry, detail);
                        r = authenticate(c, resp->challenge, ret_error);
                        if (r < 0)
                                return r;
                        authed = true;
                        continue;
                }
                if (s == 403)
                        return error_set(ret_error, -EACCES, WHERE_FMT ": denied: %s %s is not allowed for these credentials (HTTP 403%s)",
                                         WHERE(c), q->method, what, detail);
                if (s == 429) {
                        if (retries >= c->max_retries)
                                return error_set(ret_error, -EBUSY,
                                                 WHERE_FMT ": too many requests: the registry still refused %s %s after %u retries (HTTP 429)",
                                                 WHERE(c), q->method, what, retries);
                        wait_ms = resp->retry_after >= 0 ?
                                (unsigned) MIN((unsigned long) resp->retry_after, (unsigned long) c->retry_after_max_sec) * 1000u :
                                MIN((unsigned) BACKOFF_FIRST_MSEC << MIN(retries, 5u), (unsigned) BACKOFF_MAX_MSEC);
                        goto retry;
                }
                if (s >= 500) {
                        if (retries >= c->max_retries)
                                return error_set(ret_error, -ECOMM, WHERE_FMT ": %s %s failed: HTTP %ld after %u retries%s",
                                                 WHERE(c), q->method, what, s, retries, detail);
                        wait_ms = MIN((unsigned) BACKOFF_FIRST_MSEC << MIN(retries, 5u), (unsigned) BACKOFF_MAX_MSEC);
                        goto retry;
                }
                return 0;
        retry:
                retries++;
                r = sleep_msec(c, wait_ms);
                if (r < 0)
                        return error_set(ret_error, r, WHERE_FMT ": cancelled", WHERE(c));
        }
}

static int unexpected(OciClient *c, const Response *resp, const char *method, const char *what, char **ret_error) {
        char detail[512];
        registry_error_text(resp, detail, sizeof(detail));
        if (resp->status == 404)
                return error_set(ret_error, -ENOENT, WHERE_FMT ": %s not found (HTTP 404%s)", WHERE(c), what, detail);
        return error_set(ret_error, -ECOMM, WHERE_FMT ": %s %s: unexpected HTTP %ld%s", WHERE(c), method, what,
                         resp->status, detail);
}

static int make_url(const OciClient *c, const char *kind, const char *ref, char **ret) {
        if (asprintf(ret, "%s://%s/v2/%s/%s/%s", c->scheme, c->registry, c->repository, kind, ref) < 0)
                return -ENOMEM;
        return 0;
}

int oci_blob_url(const OciClient *c, const char *digest, char **ret) {
        if (!oci_digest_is_valid(digest))
                return -EINVAL;
        return make_url(c, "blobs", digest, ret);
}

static bool reference_ok(const char *ref) {
        return oci_digest_is_valid(ref) || tag_ok(ref);
}

#define MANIFEST_ACCEPT "Accept: " OCI_MEDIA_TYPE_MANIFEST

int oci_manifest_get(OciClient *c, const char *reference, char **ret_body, size_t *ret_size,
                     char ret_digest[static OCI_DIGEST_SIZE], char **ret_media_type, char **ret_error) {
        _cleanup_free_ char *url = NULL, *what = NULL;
        static const char *const hdr[] = { MANIFEST_ACCEPT, NULL };
        char digest[OCI_DIGEST_SIZE];
        Response resp = {};
        int r;

        if (!reference || !reference_ok(reference))
                return error_set(ret_error, -EINVAL, "%s is neither a tag nor a sha256 digest", reference ?: "(null)");
        if (make_url(c, "manifests", reference, &url) < 0 || asprintf(&what, "manifest %s", reference) < 0)
                return -ENOMEM;
        Request q = { .method = "GET", .url = url, .headers = hdr, .fd = -1, .body_max = MANIFEST_BODY_MAX, .follow = true };
        r = request(c, &q, &resp, what, ret_error);
        if (r < 0)
                goto out;
        if (resp.status != 200) {
                r = unexpected(c, &resp, "GET", what, ret_error);
                goto out;
        }
        oci_digest_data(resp.body ?: "", resp.size, digest);
        if (oci_digest_is_valid(reference) && !streq(reference, digest)) {
                r = error_set(ret_error, -EBADMSG, WHERE_FMT ": the manifest sent for %s hashes to %s: refused", WHERE(c),
                              reference, digest);
                goto out;
        }
        if (resp.digest && !streq(resp.digest, digest)) {
                r = error_set(ret_error, -EBADMSG,
                              WHERE_FMT ": the manifest %s hashes to %s, but the registry says %s: refused", WHERE(c),
                              reference, digest, resp.digest);
                goto out;
        }
        if (ret_media_type) {
                *ret_media_type = resp.content_type ? strdup(resp.content_type) : NULL;
                if (resp.content_type && !*ret_media_type) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        *ret_body = resp.body ? TAKE_PTR(resp.body) : strdup("");
        *ret_size = resp.size;
        memcpy(ret_digest, digest, OCI_DIGEST_SIZE);
        r = *ret_body ? 0 : -ENOMEM;
out:
        response_done(&resp);
        return r;
}

int oci_manifest_resolve(OciClient *c, const char *reference, char ret_digest[static OCI_DIGEST_SIZE],
                         char **ret_error) {
        _cleanup_free_ char *url = NULL, *what = NULL;
        static const char *const hdr[] = { MANIFEST_ACCEPT, NULL };
        Response resp = {};
        int r;

        if (!reference || !reference_ok(reference))
                return error_set(ret_error, -EINVAL, "%s is neither a tag nor a sha256 digest", reference ?: "(null)");
        if (make_url(c, "manifests", reference, &url) < 0 || asprintf(&what, "manifest %s", reference) < 0)
                return -ENOMEM;
        Request q = { .method = "HEAD", .url = url, .headers = hdr, .fd = -1, .follow = true };
        r = request(c, &q, &resp, what, ret_error);
        if (r >= 0 && resp.status != 200)
                r = unexpected(c, &resp, "HEAD", what, ret_error);
        if (r >= 0 && oci_digest_is_valid(resp.digest)) {
                if (oci_digest_is_valid(reference) && !streq(resp.digest, reference))
                        r = error_set(ret_error, -EBADMSG, WHERE_FMT ": asked for manifest %s, the registry answered for %s",
                                      WHERE(c), reference, resp.digest);
                else
                        memcpy(ret_digest, resp.digest, OCI_DIGEST_SIZE);
                response_done(&resp);
                return r;
        }
        response_done(&resp);
        if (r < 0)
                return r;
        /* No usable digest header: hash the manifest itself. */
        _cleanup_free_ char *body = NULL;
        size_t size;
        return oci_manifest_get(c, reference, &body, &size, ret_digest, NULL, ret_error);
}

int oci_manifest_put(OciClient *c, const char *reference, const char *media_type, const void *body, size_t size,
                     char ret_digest[static OCI_DIGEST_SIZE], char **ret_error) {
        _cleanup_free_ char *url = NULL, *what = NULL, *ct = NULL;
        char digest[OCI_DIGEST_SIZE];
        Response resp = {};
        int r;

        if (!reference || !reference_ok(reference) || !media_type)
                return error_set(ret_error, -EINVAL, "%s is neither a tag nor a sha256 digest", reference ?: "(null)");
        oci_digest_data(body, size, digest);
        if (oci_digest_is_valid(reference) && !streq(reference, digest))
                return error_set(ret_error, -EINVAL, "a manifest can only be pushed under its own digest %s", digest);
        if (make_url(c, "manifests", reference, &url) < 0 || asprintf(&what, "manifest %s", reference) < 0 ||
            asprintf(&ct, "Content-Type: %s", media_type) < 0)
                return -ENOMEM;
        const char *hdr[] = { ct, NULL };
        Request q = { .method = "PUT", .url = url, .headers = hdr, .data = body, .fd = -1, .length = size,
                      .has_body = true, .body_max = ERROR_BODY_MAX };
        r = request(c, &q, &resp, what, ret_error);
        if (r >= 0 && resp.status != 201 && resp.status != 200)
                r = unexpected(c, &resp, "PUT", what, ret_error);
        if (r >= 0 && resp.digest && !streq(resp.digest, digest))
                r = error_set(ret_error, -EBADMSG, WHERE_FMT ": the registry stored the manifest as %s, expected %s",
                              WHERE(c), resp.digest, digest);
        response_done(&resp);
        if (r < 0)
                return r;
        memcpy(ret_digest, digest, OCI_DIGEST_SIZE);
        return 0;
}

int oci_blob_exists(OciClient *c, const char *digest, uint64_t *ret_size, char **ret_error) {
        _cleanup_free_ char *url = NULL, *what = NULL;
        Response resp = {};
        int r;

        if (oci_blob_url(c, digest, &url) < 0 || asprintf(&what, "blob %s", digest) < 0)
                return oci_digest_is_valid(digest) ? -ENOMEM : -EINVAL;
        Request q = { .method = "HEAD", .url = url, .fd = -1, .follow = true };
        r = request(c, &q, &resp, what, ret_error);
        if (r >= 0) {
                if (resp.status == 200) {
                        if (ret_size) {
                                curl_off_t cl = -1;
                                (void) curl_easy_getinfo(c->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
                                *ret_size = cl >= 0 ? (uint64_t) cl : 0;
                        }
                        r = 1;
                } else if (resp.status == 404)
                        r = 0;
                else
                        r = unexpected(c, &resp, "HEAD", what, ret_error);
        }
        response_done(&resp);
        return r;
}

int oci_blob_get(OciClient *c, const char *digest, size_t max, void **ret_data, size_t *ret_size, char **ret_error) {
        _cleanup_free_ char *url = NULL, *what = NULL;
        char got[OCI_DIGEST_SIZE];
        Response resp = {};
        int r;

        if (oci_blob_url(c, digest, &url) < 0 || asprintf(&what, "blob %s", digest) < 0)
                return oci_digest_is_valid(digest) ? -ENOMEM : -EINVAL;
        Request q = { .method = "GET", .url = url, .fd = -1, .body_max = max, .follow = true };
        r = request(c, &q, &resp, what, ret_error);
        if (r >= 0 && resp.status != 200)
                r = unexpected(c, &resp, "GET", what, ret_error);
        if (r >= 0) {
                oci_digest_data(resp.body ?: "", resp.size, got);
                if (!streq(got, digest))
                        r = error_set(ret_error, -EBADMSG, WHERE_FMT ": blob %s hashes to %s: refused", WHERE(c), digest,
                                      got);
        }
        if (r >= 0) {
                *ret_data = resp.body ? TAKE_PTR(resp.body) : strdup("");
                *ret_size = resp.size;
                r = *ret_data ? 0 : -ENOMEM;
        }
        response_done(&resp);
        return r;
}

/* Resolve an upload Location (absolute or relative) against the registry,
 * optionally appending "digest=..." to its query. */
static int upload_url(OciClient *c, const char *location, const char *digest, char **ret, char **ret_error) {
        _cleanup_(curl_url_cleanupp) CURLU *u = curl_url();
        _cleanup_free_ char *base = NULL, *q = NULL;
        _cleanup_(curl_freep) char *s = NULL;

        if (!u)
                return -ENOMEM;
        if (!location)
                return error_set(ret_error, -ECOMM, WHERE_FMT ": the registry sent no upload location", WHERE(c));
        if (asprintf(&base, "%s://%s/v2/", c->scheme, c->registry) < 0)
                return -ENOMEM;
        if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
            curl_url_set(u, CURLUPART_URL, location, 0) != CURLUE_OK)
                return error_set(ret_error, -ECOMM, WHERE_FMT ": the registry sent a malformed upload location", WHERE(c));
        if (digest) {
                if (asprintf(&q, "digest=%s", digest) < 0)
                        return -ENOMEM;
                if (curl_url_set(u, CURLUPART_QUERY, q, CURLU_APPENDQUERY | CURLU_URLENCODE) != CURLUE_OK)
                        return -ENOMEM;
        }
        if (curl_url_get(u, CURLUPART_URL, &s, 0) != CURLUE_OK)
                return -ENOMEM;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int upload(OciClient *c, int fd, const void *data, uint64_t offset, uint64_t size, const char *digest,
                  uint64_t chunk_size, char **ret_error) {
        _cleanup_free_ char *url = NULL, *what = NULL, *loc = NULL;
        static const char *const octet[] = { "Content-Type: application/octet-stream", NULL };
        Response resp = {};
        int r;

        if (!oci_digest_is_valid(digest))
                return -EINVAL;
        if (asprintf(&url, "%s://%s/v2/%s/blobs/uploads/", c->scheme, c->registry, c->repository) < 0 ||
            asprintf(&what, "blob %s", digest) < 0)
                return -ENOMEM;
        Request q = { .method = "POST", .url = url, .fd = -1, .body_max = ERROR_BODY_MAX };
        r = request(c, &q, &resp, what, ret_error);
        if (r >= 0 && resp.status != 202)
                r = unexpected(c, &resp, "POST", "upload", ret_error);
        if (r >= 0)
                r = upload_url(c, resp.location, NULL, &loc, ret_error);
        response_done(&resp);
        if (r < 0)
                return r;

        chunk_size = chunk_size ?: OCI_CHUNK_SIZE_DEFAULT;
        if (size > chunk_size) {
                for (uint64_t done = 0; done < size;) {
                        uint64_t n = MIN(chunk_size, size - done);
                        char range[64];
                        snprintf(range, sizeof(range), "Content-Range: %" PRIu64 "-%" PRIu64, done, done + n - 1);
                        const char *hdr[] = { "Content-Type: application/octet-stream", range, NULL };
                        Request p = { .method = "PATCH", .url = loc, .headers = hdr, .fd = fd, .data = data ? (const uint8_t *) data + done : NULL,
                                      .offset = offset + done, .length = n, .has_body = true, .body_max = ERROR_BODY_MAX };
                        r = request(c, &p, &resp, what, ret_error);
                        if (r >= 0 && resp.status != 202)
                                r = unexpected(c, &resp, "PATCH", what, ret_error);
                        if (r >= 0) {
                                free(loc);
                                loc = NULL;
                                r = upload_url(c, resp.location, NULL, &loc, ret_error);
                        }
                        response_done(&resp);
                        if (r < 0)
                                return r;
                        done += n;
                }
                _cleanup_free_ char *put = NULL;
                r = upload_url(c, loc, digest, &put, ret_error);
                if (r < 0)
                        return r;
                Request p = { .method = "PUT", .url = put, .headers = octet, .fd = -1, .body_max = ERROR_BODY_MAX };
                r = request(c, &p, &resp, what, ret_error);
        } else {
                _cleanup_free_ char *put = NULL;
                r = upload_url(c, loc, digest, &put, ret_error);
                if (r < 0)
                        return r;
                Request p = { .method = "PUT", .url = put, .headers = octet, .fd = fd, .data = data, .offset = offset,
                              .length = size, .has_body = true, .body_max = ERROR_BODY_MAX };
                r = request(c, &p, &resp, what, ret_error);
        }
        if (r >= 0 && resp.status != 201)
                r = resp.status == 400 ?
                        error_set(ret_error, -EBADMSG, WHERE_FMT ": the registry refused %s (HTTP 400: does the content "
                                  "match the digest?)", WHERE(c), what) :
                        unexpected(c, &resp, "PUT", what, ret_error);
        if (r >= 0 && resp.digest && !streq(resp.digest, digest))
                r = error_set(ret_error, -EBADMSG, WHERE_FMT ": the registry stored %s as %s", WHERE(c), what, resp.digest);
        response_done(&resp);
        return r;
}

int oci_blob_upload_fd(OciClient *c, int fd, uint64_t offset, uint64_t size, const char *digest, uint64_t chunk_size,
                       char **ret_error) {
        if (fd < 0)
                return -EBADF;
        return upload(c, fd, NULL, offset, size, digest, chunk_size, ret_error);
}

int oci_blob_upload_data(OciClient *c, const void *data, size_t size, const char *digest, char **ret_error) {
        return upload(c, -1, data, 0, size, digest, UINT64_MAX, ret_error);
}

int oci_auth_default_path(char **ret) {
        const char *e = getenv("REGISTRY_AUTH_FILE");
        char *p = NULL;

        *ret = NULL;
        if (!isempty(e))
                return (*ret = strdup(e)) ? 0 : -ENOMEM;
        e = getenv("DOCKER_CONFIG");
        if (!isempty(e))
                p = path_join(e, "config.json");
        else if (!isempty(getenv("HOME")))
                p = path_join(getenv("HOME"), ".docker/config.json");
        else
                return 0;
        if (!p)
                return -ENOMEM;
        if (access(p, F_OK) < 0) {
                free(p);
                return 0;
        }
        *ret = p;
        return 0;
}

