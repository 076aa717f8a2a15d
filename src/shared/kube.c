/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Kubernetes REST client: requests, Status bodies, list, watch,
 * eviction, events and the helpers for raw objects. kubeconfig and the
 * in-cluster configuration are in kube-config.c, the informer and the
 * leader elector in kube-informer.c and kube-leader.c. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "fileio.h"
#include "kube-internal.h"
#include "kube.h"

#if LIBCURL_VERSION_NUM < 0x075500
#error "libcurl >= 7.85 is needed"
#endif

#define TIMEOUT_DEFAULT_MSEC 15000L
#define CONNECT_TIMEOUT_SEC 10L
#define TOKEN_MAX (64U * 1024U)
#define TOKEN_REREAD_USEC (60ULL * 1000000ULL)
/* The stream of a watch is allowed this long past timeoutSeconds without a
 * byte before it counts as stalled. */
#define WATCH_STALL_GRACE_SEC 30
/* How often a blocked transfer looks at its cancel flag. */
#define POLL_MSEC 100
#define UPDATE_RETRIES 10
#define EVENT_TIMEOUT_MSEC 5000L
#define EVENT_NOTE_MAX 1024
/* Raw text of a non-JSON error body kept as the message. */
#define ERROR_TEXT_MAX 512

struct KubeClient {
        KubeConfig *config;
        CURL *curl;
        CURLM *multi;
        long timeout_ms;
        char *user_agent;
        const volatile int *cancel;
        char *token;
        uint64_t token_read_usec;
        unsigned connects;
};

struct KubeWatchParser {
        KubeWatchFn fn;
        void *userdata;
        char *buf;
        size_t size, alloc;
};

/* ---- small helpers ---- */

uint64_t kube_random_u64(void) {
        uint64_t v;
        static __thread uint64_t state;

        if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t) sizeof(v))
                return v;
        /* xorshift fallback, seeded from the clocks. */
        if (state == 0)
                state = kube_now_usec() ^ ((uint64_t) getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return state;
}

uint64_t kube_now_usec(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

uint64_t kube_backoff_usec(unsigned attempt, uint64_t rnd) {
        uint64_t d = KUBE_BACKOFF_FIRST_USEC;

        for (unsigned i = 0; i < attempt && d < KUBE_BACKOFF_MAX_USEC; i++)
                d *= 2;
        if (d > KUBE_BACKOFF_MAX_USEC)
                d = KUBE_BACKOFF_MAX_USEC;
        /* Jitter in [0, d): many clients that failed together do not come
         * back together. */
        return d + rnd % d;
}

unsigned kube_watch_timeout_pick(uint64_t rnd) {
        return 300U + (unsigned) (rnd % 301U);
}

int kube_sleeper_init(KubeSleeper *s) {
        pthread_condattr_t a;
        int r;

        s->stop = 0;
        r = pthread_mutex_init(&s->lock, NULL);
        if (r != 0)
                return -r;
        r = pthread_condattr_init(&a);
        if (r != 0)
                goto fail;
        (void) pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        r = pthread_cond_init(&s->cond, &a);
        (void) pthread_condattr_destroy(&a);
        if (r != 0)
                goto fail;
        return 0;
fail:
        (void) pthread_mutex_destroy(&s->lock);
        return -r;
}

void kube_sleeper_done(KubeSleeper *s) {
        (void) pthread_cond_destroy(&s->cond);
        (void) pthread_mutex_destroy(&s->lock);
}

bool kube_sleeper_wait(KubeSleeper *s, uint64_t usec) {
        struct timespec ts;
        bool stop;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t) ts.tv_nsec + (usec % 1000000ULL) * 1000ULL;
        ts.tv_sec += (time_t) (usec / 1000000ULL + ns / 1000000000ULL);
        ts.tv_nsec = (long) (ns % 1000000000ULL);

        (void) pthread_mutex_lock(&s->lock);
        while (!s->stop)
                if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) == ETIMEDOUT)
                        break;
        stop = s->stop != 0;
        (void) pthread_mutex_unlock(&s->lock);
        return stop;
}

void kube_sleeper_stop(KubeSleeper *s) {
        (void) pthread_mutex_lock(&s->lock);
        s->stop = 1;
        (void) pthread_cond_broadcast(&s->cond);
        (void) pthread_mutex_unlock(&s->lock);
}

void kube_notify(int fd) {
        uint64_t one = 1;

        if (fd < 0)
                return;
        /* An eventfd counter or a pipe: either way the reader wakes. EAGAIN
         * means a wakeup is already pending. */
        while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
                ;
}

/* ---- errors and Status ---- */

int kube_errno_from_status(long status, const char *reason) {
        if (status >= 200 && status < 300)
                return 0;
        switch (status) {
        case 0:
                return -EIO;
        case 400:
                return -EINVAL;
        case 401:
        case 403:
                return -EACCES;
        case 404:
                return -ENOENT;
        case 409:
                return reason && streq(reason, "AlreadyExists") ? -EEXIST : -ESTALE;
        case 410:
                return -EXPIRED;
        case 415:
                return -EOPNOTSUPP;
        case 422:
                return -EINVAL;
        case 429:
                return -EAGAIN;
        default:
                if (status >= 500 && status < 600)
                        return -EAGAIN;
                return -EPROTO;
        }
}

static char *strdup_or_null(const char *s) {
        return s ? strdup(s) : NULL;
}

void kube_response_parse_status(KubeResponse *r, json_t *body) {
        json_t *causes;

        r->reason = mfree(r->reason);
        r->message = mfree(r->message);
        r->cause = mfree(r->cause);
        if (!json_is_object(body))
                return;
        r->reason = strdup_or_null(json_string_value(json_object_get(body, "reason")));
        r->message = strdup_or_null(json_string_value(json_object_get(body, "message")));
        causes = json_object_get(json_object_get(body, "details"), "causes");
        r->cause = strdup_or_null(json_string_value(json_object_get(json_array_get(causes, 0), "reason")));
}

void kube_response_done(KubeResponse *r) {
        if (!r)
                return;
        json_decref(r->body);
        free(r->reason);
        free(r->message);
        free(r->cause);
        *r = (KubeResponse) {};
}

char *kube_response_error(const KubeResponse *r, int err) {
        char *s = NULL;

        if (r && r->status > 0) {
                if (asprintf(&s, "%ld %s: %s", r->status, r->reason ?: "-", r->message ?: "") < 0)
                        return NULL;
        } else if (asprintf(&s, "request failed: %s", strerror(-err)) < 0)
                return NULL;
        return s;
}

static void set_error(char **ret_error, const KubeResponse *r, int err) {
        if (!ret_error)
                return;
        free(*ret_error);
        *ret_error = kube_response_error(r, err);
}

/* ---- client ---- */

int kube_global_init(void) {
        return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

/* Reads the token file (if the config has one) when forced or when the last
 * read is more than 60 s old. A failed read keeps the token we have. */
static int client_token_refresh(KubeClient *c, bool force) {
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        int r;

        if (!c->config->token_file)
                return 0;
        if (!force && c->token && kube_now_usec() - c->token_read_usec < TOKEN_REREAD_USEC)
                return 0;
        r = read_full_file(c->config->token_file, TOKEN_MAX, &data, &size);
        if (r < 0)
                return c->token ? 0 : r;
        while (size > 0 && isspace((unsigned char) data[size - 1]))
                data[--size] = '\0';
        if (size == 0 || memchr(data, '\n', size) || memchr(data, '\r', size))
                return c->token ? 0 : -EBADMSG;
        free(c->token);
        c->token = TAKE_PTR(data);
        c->token_read_usec = kube_now_usec();
        return 0;
}

int kube_client_new(KubeConfig *config, KubeClient **ret) {
        KubeClient *c;
        int r;

        if (!config || !config->server || !ret)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->timeout_ms = TIMEOUT_DEFAULT_MSEC;
        c->config = kube_config_ref(config);
        c->curl = curl_easy_init();
        c->multi = curl_multi_init();
        if (!c->curl || !c->multi) {
                kube_client_free(c);
                return -ENOMEM;
        }
        if (config->token) {
                c->token = strdup(config->token);
                if (!c->token) {
                        kube_client_free(c);
                        return -ENOMEM;
                }
        }
        r = client_token_refresh(c, true);
        if (r < 0) {
                kube_client_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

KubeClient *kube_client_free(KubeClient *c) {
        if (!c)
                return NULL;
        if (c->curl)
                curl_easy_cleanup(c->curl);
        if (c->multi)
                curl_multi_cleanup(c->multi);
        kube_config_unref(c->config);
        free(c->user_agent);
        if (c->token)
                explicit_bzero(c->token, strlen(c->token));
        free(c->token);
        free(c);
        return NULL;
}

void kube_client_set_timeout(KubeClient *c, long timeout_ms) {
        c->timeout_ms = timeout_ms > 0 ? timeout_ms : TIMEOUT_DEFAULT_MSEC;
}

int kube_client_set_user_agent(KubeClient *c, const char *ua) {
        char *s = strdup(ua);
        if (!s)
                return -ENOMEM;
        free(c->user_agent);
        c->user_agent = s;
        return 0;
}

void kube_client_set_cancel(KubeClient *c, const volatile int *cancel) {
        c->cancel = cancel;
}

unsigned kube_client_connects(KubeClient *c) {
        return c->connects;
}

static bool client_cancelled(const KubeClient *c) {
        return c->cancel && *c->cancel != 0;
}

/* ---- one transfer ---- */

typedef struct Transfer {
        KubeClient *c;
        long status;
        char *buf;
        size_t size, alloc;
        unsigned retry_after;
        KubeWatchParser *parser; /* watch: a 2xx body goes here, not to buf */
        int error;               /* ours or the parser's; wins over curl's */
} Transfer;

static void transfer_reset(Transfer *t) {
        t->status = 0;
        t->size = 0;
        t->retry_after = 0;
        t->error = 0;
}

static void transfer_done(Transfer *t) {
        free(t->buf);
        t->buf = NULL;
        t->size = t->alloc = 0;
}

static size_t header_cb(char *data, size_t size, size_t n, void *userdata) {
        Transfer *t = userdata;
        size_t len = size * n;
        char line[256];

        if (len >= sizeof(line))
                return len; /* nothing we read is that long */
        memcpy(line, data, len);
        line[len] = '\0';
        if (strncmp(line, "HTTP/", 5) == 0) {
                /* A new response (also after 100 Continue): forget the last. */
                const char *sp = strchr(line, ' ');
                transfer_reset(t);
                if (sp) {
                        char *end;
                        long s = strtol(sp + 1, &end, 10);
                        if (end != sp + 1 && s >= 100 && s <= 999)
                                t->status = s;
                }
        } else if (strncasecmp(line, "Retry-After:", 12) == 0) {
                const char *v = line + 12;
                char *end;
                while (*v == ' ' || *v == '\t')
                        v++;
                errno = 0;
                unsigned long s = strtoul(v, &end, 10);
                /* Only the delay-seconds form; an HTTP date counts as absent. */
                if (errno == 0 && end != v && *v != '-' && (*end == '\r' || *end == '\n' || *end == '\0'))
                        t->retry_after = (unsigned) MIN(s, 3600UL);
        }
        return len;
}

static size_t write_cb(char *data, size_t size, size_t n, void *userdata) {
        Transfer *t = userdata;
        size_t len = size * n;
        int r;

        if (t->parser && t->status >= 200 && t->status < 300) {
                r = kube_watch_parser_feed(t->parser, data, len);
                if (r < 0) {
                        t->error = r;
                        return 0;
                }
                return len;
        }
        if (len > KUBE_BODY_MAX - t->size) {
                t->error = -E2BIG;
                return 0;
        }
        if (t->size + len + 1 > t->alloc) {
                size_t a = MAX(t->alloc * 2, (size_t) 16384);
                while (a < t->size + len + 1)
                        a *= 2;
                a = MIN(a, (size_t) KUBE_BODY_MAX + 1);
                char *b = realloc(t->buf, a);
                if (!b) {
                        t->error = -ENOMEM;
                        return 0;
                }
                t->buf = b;
                t->alloc = a;
        }
        memcpy(t->buf + t->size, data, len);
        t->size += len;
        t->buf[t->size] = '\0';
        return len;
}

static int xferinfo_cb(void *userdata, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln) {
        Transfer *t = userdata;
        if (client_cancelled(t->c)) {
                t->error = -ECANCELED;
                return 1;
        }
        return 0;
}

static int curl_code_to_errno(CURLcode code) {
        switch (code) {
        case CURLE_OK:
                return 0;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -ECONNREFUSED;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_ENGINE_NOTFOUND:
        case CURLE_SSL_ENGINE_SETFAILED:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_USE_SSL_FAILED:
                return -EPROTO;
        default:
                return -EIO;
        }
}

typedef struct Request {
        const char *method;
        const char *path;
        const char *query;
        const char *content_type;
        const char *body;
        size_t body_len;
        long timeout_ms;        /* 0: the client's */
        unsigned watch_seconds; /* non-zero: a watch with this timeoutSeconds */
} Request;

#define SETOPT(opt, val)                                               \
        do {                                                           \
                if (curl_easy_setopt(c->curl, opt, val) != CURLE_OK) { \
                        r = -EIO;                                      \
                        goto finish;                                   \
                }                                                      \
        } while (0)

static int perform_once(KubeClient *c, const Request *q, Transfer *t) {
        _cleanup_free_ char *url = NULL, *auth = NULL;
        struct curl_slist *headers = NULL, *h;
        KubeConfig *cfg = c->config;
        CURLcode res = CURLE_OK;
        bool added = false;
        int running = 1, r = 0;

        transfer_reset(t);
        if (client_cancelled(c))
                return -ECANCELED;
        if (asprintf(&url, "%s%s%s%s", cfg->server, q->path, q->query ? "?" : "", q->query ?: "") < 0)
                return -ENOMEM;

        curl_easy_reset(c->curl); /* keeps the connection cache */
        SETOPT(CURLOPT_URL, url);
        SETOPT(CURLOPT_PROTOCOLS_STR, "https,http");
        SETOPT(CURLOPT_NOSIGNAL, 1L);
        SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
        SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
        SETOPT(CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_SEC);
        SETOPT(CURLOPT_USERAGENT, c->user_agent ?: c->config->user_agent ?: "hull/" HULL_VERSION);
        SETOPT(CURLOPT_HEADERFUNCTION, header_cb);
        SETOPT(CURLOPT_HEADERDATA, t);
        SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
        SETOPT(CURLOPT_WRITEDATA, t);
        SETOPT(CURLOPT_NOPROGRESS, 0L);
        SETOPT(CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
        SETOPT(CURLOPT_XFERINFODATA, t);

        /* TLS: the blobs are copied by curl, no temporary files. */
        if (cfg->ca_data) {
                struct curl_blob b = { .data = cfg->ca_data, .len = cfg->ca_size, .flags = CURL_BLOB_COPY };
                SETOPT(CURLOPT_CAINFO_BLOB, &b);
        } else if (cfg->ca_file)
                SETOPT(CURLOPT_CAINFO, cfg->ca_file);
        if (cfg->cert_data) {
                struct curl_blob b = { .data = cfg->cert_data, .len = cfg->cert_size, .flags = CURL_BLOB_COPY };
                SETOPT(CURLOPT_SSLCERT_BLOB, &b);
                SETOPT(CURLOPT_SSLCERTTYPE, "PEM");
        } else if (cfg->cert_file)
                SETOPT(CURLOPT_SSLCERT, cfg->cert_file);
        if (cfg->key_data) {
                struct curl_blob b = { .data = cfg->key_data, .len = cfg->key_size, .flags = CURL_BLOB_COPY };
                SETOPT(CURLOPT_SSLKEY_BLOB, &b);
                SETOPT(CURLOPT_SSLKEYTYPE, "PEM");
        } else if (cfg->key_file)
                SETOPT(CURLOPT_SSLKEY, cfg->key_file);
        if (cfg->insecure) {
                SETOPT(CURLOPT_SSL_VERIFYPEER, 0L);
                SETOPT(CURLOPT_SSL_VERIFYHOST, 0L);
        }

        if (q->watch_seconds > 0) {
                /* The server ends the watch at timeoutSeconds; a stream that
                 * is silent well past that, or still open at twice that, has
                 * stalled (a dead peer behind a NAT, a half-open socket). */
                SETOPT(CURLOPT_LOW_SPEED_LIMIT, 1L);
                SETOPT(CURLOPT_LOW_SPEED_TIME, (long) q->watch_seconds + WATCH_STALL_GRACE_SEC);
                SETOPT(CURLOPT_TIMEOUT, 2L * (long) q->watch_seconds);
        } else
                SETOPT(CURLOPT_TIMEOUT_MS, q->timeout_ms > 0 ? q->timeout_ms : c->timeout_ms);

        h = curl_slist_append(headers, "Accept: application/json");
        if (!h) {
                r = -ENOMEM;
                goto finish;
        }
        headers = h;
        if (c->token) {
                if (asprintf(&auth, "Authorization: Bearer %s", c->token) < 0) {
                        auth = NULL;
                        r = -ENOMEM;
                        goto finish;
                }
                h = curl_slist_append(headers, auth);
                if (!h) {
                        r = -ENOMEM;
                        goto finish;
                }
                headers = h;
        }
        if (q->body) {
                _cleanup_free_ char *ct = NULL;
                if (asprintf(&ct, "Content-Type: %s", q->content_type ?: "application/json") < 0) {
                        r = -ENOMEM;
                        goto finish;
                }
                h = curl_slist_append(headers, ct);
                if (!h) {
                        r = -ENOMEM;
                        goto finish;
                }
                headers = h;
        }
        /* No "Expect: 100-continue" round trip for bodies. */
        h = curl_slist_append(headers, "Expect:");
        if (!h) {
                r = -ENOMEM;
                goto finish;
        }
        headers = h;
        SETOPT(CURLOPT_HTTPHEADER, headers);

        if (streq(q->method, "GET"))
                SETOPT(CURLOPT_HTTPGET, 1L);
        else {
                if (q->body || streq(q->method, "POST")) {
                        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) (q->body ? q->body_len : 0));
                        SETOPT(CURLOPT_POSTFIELDS, q->body ?: "");
                }
                SETOPT(CURLOPT_CUSTOMREQUEST, q->method);
        }

        /* Through the client's multi handle, so that the connection is kept
         * in one cache and a blocked transfer notices the cancel flag within
         * POLL_MSEC. */
        if (curl_multi_add_handle(c->multi, c->curl) != CURLM_OK) {
                r = -EIO;
                goto finish;
        }
        added = true;
        for (;;) {
                if (curl_multi_perform(c->multi, &running) != CURLM_OK) {
                        r = -EIO;
                        goto finish;
                }
                if (!running)
                        break;
                if (client_cancelled(c)) {
                        r = -ECANCELED;
                        goto finish;
                }
                if (curl_multi_poll(c->multi, NULL, 0, POLL_MSEC, NULL) != CURLM_OK) {
                        r = -EIO;
                        goto finish;
                }
        }
        for (;;) {
                int left;
                CURLMsg *m = curl_multi_info_read(c->multi, &left);
                if (!m)
                        break;
                if (m->msg == CURLMSG_DONE)
                        res = m->data.result;
        }
        long nc = 0;
        if (curl_easy_getinfo(c->curl, CURLINFO_NUM_CONNECTS, &nc) == CURLE_OK && nc > 0)
                c->connects += (unsigned) nc;
        if (t->error < 0)
                r = t->error;
        else if (res != CURLE_OK)
                r = curl_code_to_errno(res);
        else {
                long code = 0;
                (void) curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
                if (code > 0)
                        t->status = code;
                r = t->status > 0 ? 0 : -EPROTO;
        }

finish:
        if (added)
                (void) curl_multi_remove_handle(c->multi, c->curl);
        if (r < 0 && t->error < 0)
                r = t->error;
        /* Do not leave pointers into freed memory in the handle. */
        (void) curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
        curl_slist_free_all(headers);
        if (auth)
                explicit_bzero(auth, strlen(auth));
        return r;
}

/* Runs q, retrying once after a 401 with a freshly read token. Returns 0
 * when an answer arrived (t->status set) or a transport errno. */
static int perform(KubeClient *c, const Request *q, Transfer *t) {
        int r;

        (void) client_token_refresh(c, false);
        r = perform_once(c, q, t);
        if (r >= 0 && t->status == 401 && c->config->token_file) {
                r = client_token_refresh(c, true);
                if (r < 0)
                        return 0; /* keep the 401 */
                r = perform_once(c, q, t);
        }
        return r;
}

/* Fills *resp from a finished transfer; returns the mapped errno. */
static int response_fill(Transfer *t, int r, KubeResponse *resp) {
        json_t *body = NULL;

        *resp = (KubeResponse) {};
        if (r < 0)
                return r;
        resp->status = t->status;
        resp->retry_after = t->retry_after;
        if (t->size > 0) {
                json_error_t e;
                body = json_loadb(t->buf, t->size, 0, &e);
        }
        resp->body = body;
        if (t->status < 200 || t->status >= 300) {
                kube_response_parse_status(resp, body);
                if (!body && t->size > 0 && !resp->message) {
                        /* Not a Status (a proxy's error page): keep its start. */
                        size_t n = MIN(t->size, (size_t) ERROR_TEXT_MAX);
                        resp->message = strndup(t->buf, n);
                        if (resp->message)
                                for (char *p = resp->message; *p; p++)
                                        if (!isprint((unsigned char) *p))
                                                *p = ' ';
                }
                return kube_errno_from_status(t->status, resp->reason);
        }
        if (t->size > 0 && !body)
                return -EBADMSG; /* a 2xx whose body is not JSON */
        return 0;
}

static int request_full(KubeClient *c, const char *method, const char *path, const char *query,
                        const char *content_type, json_t *body, long timeout_ms, KubeResponse *ret) {
        _cleanup_free_ char *text = NULL;
        Transfer t = { .c = c };
        KubeResponse resp;
        int r;

        if (!c || !method || !path || path[0] != '/')
                return -EINVAL;
        if (body) {
                text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
                if (!text)
                        return -ENOMEM;
        }
        Request q = {
                .method = method,
                .path = path,
                .query = query,
                .content_type = content_type,
                .body = text,
                .body_len = text ? strlen(text) : 0,
                .timeout_ms = timeout_ms,
        };
        r = perform(c, &q, &t);
        r = response_fill(&t, r, &resp);
        transfer_done(&t);
        if (ret)
                *ret = resp;
        else
                kube_response_done(&resp);
        return r;
}

int kube_request(KubeClient *c, const char *method, const char *path, const char *query,
                 const char *content_type, json_t *body, KubeResponse *ret) {
        return request_full(c, method, path, query, content_type, body, 0, ret);
}

/* A request whose answer body is the object. */
static int request_object(KubeClient *c, const char *method, const char *path, const char *ctype,
                          json_t *body, json_t **ret_obj, char **ret_error) {
        KubeResponse resp;
        int r;

        r = kube_request(c, method, path, NULL, ctype, body, &resp);
        if (r < 0) {
                set_error(ret_error, &resp, r);
                kube_response_done(&resp);
                return r;
        }
        if (ret_obj)
                *ret_obj = TAKE_PTR(resp.body);
        kube_response_done(&resp);
        return 0;
}

int kube_get(KubeClient *c, const char *path, json_t **ret_obj, char **ret_error) {
        return request_object(c, "GET", path, NULL, NULL, ret_obj, ret_error);
}

int kube_create(KubeClient *c, const char *collection_path, json_t *obj, json_t **ret_obj, char **ret_error) {
        return request_object(c, "POST", collection_path, NULL, obj, ret_obj, ret_error);
}

int kube_replace(KubeClient *c, const char *path, json_t *obj, json_t **ret_obj, char **ret_error) {
        return request_object(c, "PUT", path, NULL, obj, ret_obj, ret_error);
}

int kube_merge_patch(KubeClient *c, const char *path, json_t *patch, json_t **ret_obj, char **ret_error) {
        return request_object(c, "PATCH", path, "application/merge-patch+json", patch, ret_obj, ret_error);
}

int kube_json_patch(KubeClient *c, const char *path, json_t *ops, json_t **ret_obj, char **ret_error) {
        if (!json_is_array(ops))
                return -EINVAL;
        return request_object(c, "PATCH", path, "application/json-patch+json", ops, ret_obj, ret_error);
}

int kube_delete(KubeClient *c, const char *path, char **ret_error) {
        return request_object(c, "DELETE", path, NULL, NULL, NULL, ret_error);
}

int kube_update_retry(KubeClient *c, const char *path, KubeMutateFn mutate, void *userdata, json_t **ret_obj,
                      char **ret_error) {
        _cleanup_free_ char *get_path = NULL;
        size_t l;
        int r;

        if (!path || !mutate)
                return -EINVAL;
        get_path = strdup(path);
        if (!get_path)
                return -ENOMEM;
        l = strlen(get_path);
        if (l > 7 && streq(get_path + l - 7, "/status"))
                get_path[l - 7] = '\0';

        for (unsigned i = 0; i < UPDATE_RETRIES; i++) {
                _cleanup_(json_decrefp) json_t *obj = NULL, *updated = NULL;

                /* Always from a fresh GET: the object we held is what lost. */
                r = kube_get(c, get_path, &obj, ret_error);
                if (r < 0)
                        return r;
                if (!kube_resource_version(obj))
                        return -EBADMSG;
                r = mutate(obj, userdata);
                if (r < 0)
                        return r;
                if (r > 0) {
                        if (ret_obj)
                                *ret_obj = TAKE_PTR(obj);
                        return 0;
                }
                r = kube_replace(c, path, obj, &updated, ret_error);
                if (r == -ESTALE)
                        continue;
                if (r < 0)
                        return r;
                if (ret_obj)
                        *ret_obj = TAKE_PTR(updated);
                return 0;
        }
        if (ret_error) {
                free(*ret_error);
                *ret_error = strdup("409 Conflict: still conflicting after 10 attempts");
        }
        return -ESTALE;
}

char *kube_escape(const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        size_t n = strlen(s);
        char *out, *p;

        if (n > (SIZE_MAX - 1) / 3)
                return NULL;
        out = p = malloc(n * 3 + 1);
        if (!out)
                return NULL;
        for (const unsigned char *i = (const unsigned char *) s; *i; i++) {
                if (isalnum(*i) || *i == '-' || *i == '.' || *i == '_' || *i == '~')
                        *p++ = (char) *i;
                else {
                        *p++ = '%';
                        *p++ = hex[*i >> 4];
                        *p++ = hex[*i & 15];
                }
        }
        *p = '\0';
        return out;
}

/* Appends "&name=escaped(value)" (without the & when q is empty). */
static int query_add(char **q, const char *name, const char *value) {
        _cleanup_free_ char *e = NULL;
        char *n;

        if (!value)
                return 0;
        e = kube_escape(value);
        if (!e)
                return -ENOMEM;
        if (asprintf(&n, "%s%s%s=%s", *q ?: "", *q && **q ? "&" : "", name, e) < 0)
                return -ENOMEM;
        free(*q);
        *q = n;
        return 0;
}

static int query_add_uint(char **q, const char *name, unsigned v) {
        char buf[16];
        (void) snprintf(buf, sizeof(buf), "%u", v);
        return query_add(q, name, buf);
}

/* ---- list ---- */

int kube_list(KubeClient *c, const char *path, const KubeListOptions *o, KubeItemFn item, KubeResetFn reset,
              void *userdata, char **ret_resource_version, char **ret_error) {
        _cleanup_free_ char *rv = NULL, *cont = NULL;
        bool restarted = false;
        int r;

        if (!c || !path || !item)
                return -EINVAL;

        for (;;) {
                _cleanup_free_ char *q = NULL;
                KubeResponse resp;
                json_t *items, *meta;
                const char *next;

                if ((r = query_add_uint(&q, "limit", o && o->limit ? o->limit : 500)) < 0 ||
                    (r = query_add(&q, "continue", cont)) < 0 ||
                    (r = query_add(&q, "labelSelector", o && !isempty(o->label_selector) ? o->label_selector : NULL)) < 0 ||
                    (r = query_add(&q, "fieldSelector", o && !isempty(o->field_selector) ? o->field_selector : NULL)) < 0)
                        return r;

                r = kube_request(c, "GET", path, q, NULL, NULL, &resp);
                if (r == -EXPIRED && cont && !restarted) {
                        /* The continue token outlived etcd's compaction:
                         * start over once, from a fresh snapshot. */
                        kube_response_done(&resp);
                        restarted = true;
                        cont = mfree(cont);
                        rv = mfree(rv);
                        if (reset)
                                reset(userdata);
                        continue;
                }
                if (r < 0) {
                        set_error(ret_error, &resp, r);
                        kube_response_done(&resp);
                        return r;
                }
                items = json_object_get(resp.body, "items");
                meta = json_object_get(resp.body, "metadata");
                if (!json_is_array(items) && !json_is_null(items) && items) {
                        kube_response_done(&resp);
                        return -EBADMSG;
                }
                /* The watch starts at the list's RV from the first page (the
                 * snapshot all pages belong to), never at an item's. */
                if (!rv) {
                        const char *s = json_string_value(json_object_get(meta, "resourceVersion"));
                        if (!s) {
                                kube_response_done(&resp);
                                if (ret_error) {
                                        free(*ret_error);
                                        *ret_error = strdup("list without metadata.resourceVersion");
                                }
                                return -EBADMSG;
                        }
                        rv = strdup(s);
                        if (!rv) {
                                kube_response_done(&resp);
                                return -ENOMEM;
                        }
                }
                size_t idx;
                json_t *it;
                json_array_foreach(items, idx, it) {
                        r = item(it, userdata);
                        if (r < 0) {
                                kube_response_done(&resp);
                                return r;
                        }
                }
                next = json_string_value(json_object_get(meta, "continue"));
                bool more = !isempty(next);
                free(cont);
                cont = more ? strdup(next) : NULL;
                kube_response_done(&resp); /* next pointed into it */
                if (more && !cont)
                        return -ENOMEM;
                if (!cont)
                        break;
        }
        if (ret_resource_version)
                *ret_resource_version = TAKE_PTR(rv);
        return 0;
}

/* ---- watch stream parser ---- */

const char *kube_event_type_to_string(KubeEventType t) {
        static const char *const names[] = {
                [KUBE_ADDED] = "ADDED",       [KUBE_MODIFIED] = "MODIFIED", [KUBE_DELETED] = "DELETED",
                [KUBE_BOOKMARK] = "BOOKMARK", [KUBE_ERROR] = "ERROR",
        };
        if ((unsigned) t >= ELEMENTSOF(names))
                return NULL;
        return names[t];
}

KubeWatchParser *kube_watch_parser_new(KubeWatchFn fn, void *userdata) {
        KubeWatchParser *p;

        if (!fn)
                return NULL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        p->fn = fn;
        p->userdata = userdata;
        return p;
}

KubeWatchParser *kube_watch_parser_free(KubeWatchParser *p) {
        if (!p)
                return NULL;
        free(p->buf);
        free(p);
        return NULL;
}

size_t kube_watch_parser_pending(KubeWatchParser *p) {
        return p->size;
}

static int parse_line(KubeWatchParser *p, const char *line, size_t len) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        json_error_t e;
        const char *type;
        json_t *obj;
        KubeEventType t;

        while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
                len--;
        if (len == 0)
                return 0; /* tolerated: a keep-alive blank line */
        j = json_loadb(line, len, 0, &e);
        if (!json_is_object(j))
                return -EBADMSG;
        type = json_string_value(json_object_get(j, "type"));
        obj = json_object_get(j, "object");
        if (!type || !json_is_object(obj))
                return -EBADMSG;
        if (streq(type, "ADDED"))
                t = KUBE_ADDED;
        else if (streq(type, "MODIFIED"))
                t = KUBE_MODIFIED;
        else if (streq(type, "DELETED"))
                t = KUBE_DELETED;
        else if (streq(type, "BOOKMARK"))
                t = KUBE_BOOKMARK;
        else if (streq(type, "ERROR"))
                t = KUBE_ERROR;
        else
                return -EBADMSG;
        return p->fn(t, obj, p->userdata);
}

static int parser_append(KubeWatchParser *p, const char *data, size_t len) {
        if (len > KUBE_WATCH_LINE_MAX - p->size)
                return -E2BIG;
        if (p->size + len > p->alloc) {
                size_t a = MAX(p->alloc * 2, (size_t) 4096);
                while (a < p->size + len)
                        a *= 2;
                a = MIN(a, (size_t) KUBE_WATCH_LINE_MAX);
                char *b = realloc(p->buf, a);
                if (!b)
                        return -ENOMEM;
                p->buf = b;
                p->alloc = a;
        }
        memcpy(p->buf + p->size, data, len);
        p->size += len;
        return 0;
}

int kube_watch_parser_feed(KubeWatchParser *p, const void *data, size_t len) {
        const char *d = data;
        int r;

        if (!p || (!d && len > 0))
                return -EINVAL;
        while (len > 0) {
                const char *nl = memchr(d, '\n', len);
                if (!nl) {
                        r = parser_append(p, d, len);
                        if (r < 0) {
                                p->size = 0; /* drop the line; the caller ends the stream */
                                return r;
                        }
                        return 0;
                }
                size_t n = (size_t) (nl - d);
                if (p->size == 0) {
                        if (n > KUBE_WATCH_LINE_MAX)
                                return -E2BIG;
                        r = parse_line(p, d, n);
                } else {
                        r = parser_append(p, d, n);
                        if (r >= 0)
                                r = parse_line(p, p->buf, p->size);
                        p->size = 0;
                }
                if (r < 0)
                        return r;
                d = nl + 1;
                len -= n + 1;
        }
        return 0;
}

/* ---- watch ---- */

typedef struct WatchCtx {
        KubeWatchFn fn;
        void *userdata;
        char *rv;
        char *error;
        unsigned events;
} WatchCtx;

static int watch_event(KubeEventType type, json_t *object, void *userdata) {
        WatchCtx *w = userdata;
        const char *rv = kube_resource_version(object);

        if (type == KUBE_ERROR) {
                /* A Status: 410 means our RV is too old (the 200 + ERROR
                 * form of "Expired"); anything else ends the watch too. */
                json_int_t code = json_integer_value(json_object_get(object, "code"));
                const char *reason = json_string_value(json_object_get(object, "reason"));
                const char *message = json_string_value(json_object_get(object, "message"));
                free(w->error);
                if (asprintf(&w->error, "%lld %s: %s", (long long) code, reason ?: "-", message ?: "") < 0)
                        w->error = NULL;
                if (code == 410)
                        return -EXPIRED;
                int r = kube_errno_from_status((long) code, reason);
                return r < 0 ? r : -EPROTO;
        }
        if (rv) {
                char *s = strdup(rv);
                if (!s)
                        return -ENOMEM;
                free(w->rv);
                w->rv = s;
        }
        if (type == KUBE_BOOKMARK)
                return 0;
        w->events++;
        int r = w->fn(type, object, w->userdata);
        return r < 0 ? r : 0;
}

int kube_watch(KubeClient *c, const char *path, const KubeWatchOptions *o, KubeWatchFn fn, void *userdata,
               char **ret_resource_version, char **ret_error) {
        _cleanup_(kube_watch_parser_freep) KubeWatchParser *parser = NULL;
        _cleanup_free_ char *q = NULL;
        WatchCtx w = { .fn = fn, .userdata = userdata };
        Transfer t = { .c = c };
        KubeResponse resp = {};
        unsigned timeout;
        int r;

        if (!c || !path || !o || isempty(o->resource_version) || !fn)
                return -EINVAL;
        timeout = o->timeout_seconds > 0 ? o->timeout_seconds : kube_watch_timeout_pick(kube_random_u64());

        if ((r = query_add(&q, "watch", "1")) < 0 || (r = query_add(&q, "allowWatchBookmarks", "true")) < 0 ||
            (r = query_add(&q, "resourceVersion", o->resource_version)) < 0 ||
            (r = query_add_uint(&q, "timeoutSeconds", timeout)) < 0 ||
            (r = query_add(&q, "labelSelector", !isempty(o->label_selector) ? o->label_selector : NULL)) < 0 ||
            (r = query_add(&q, "fieldSelector", !isempty(o->field_selector) ? o->field_selector : NULL)) < 0)
                return r;

        parser = kube_watch_parser_new(watch_event, &w);
        if (!parser)
                return -ENOMEM;
        t.parser = parser;

        const volatile int *saved = c->cancel;
        if (o->cancel)
                c->cancel = o->cancel;
        Request req = { .method = "GET", .path = path, .query = q, .watch_seconds = timeout };
        r = perform(c, &req, &t);
        c->cancel = saved;

        if (r == -ECANCELED || (r < 0 && o->cancel && *o->cancel))
                r = -ECANCELED;
        else if (r >= 0 && (t.status < 200 || t.status >= 300)) {
                r = response_fill(&t, 0, &resp);
                if (ret_error) {
                        free(*ret_error);
                        *ret_error = kube_response_error(&resp, r);
                }
        } else if (r >= 0 && kube_watch_parser_pending(parser) > 0)
                r = -EPROTO; /* the stream ended inside an event */
        else if (r < 0 && w.error && ret_error) {
                free(*ret_error);
                *ret_error = TAKE_PTR(w.error);
        } else if (r < 0 && ret_error) {
                free(*ret_error);
                *ret_error = kube_response_error(NULL, r);
        }
        kube_response_done(&resp);
        transfer_done(&t);
        free(w.error);
        if (w.rv && ret_resource_version) {
                free(*ret_resource_version);
                *ret_resource_version = TAKE_PTR(w.rv);
        }
        free(w.rv);
        return r;
}

/* ---- eviction and events ---- */

int kube_evict(KubeClient *c, const char *ns, const char *pod, long grace_seconds, KubeResponse *ret) {
        _cleanup_(json_decrefp) json_t *body = NULL;
        _cleanup_free_ char *path = NULL;
        KubeResponse resp;
        int r;

        if (!c || isempty(ns) || isempty(pod))
                return -EINVAL;
        if (asprintf(&path, "/api/v1/namespaces/%s/pods/%s/eviction", ns, pod) < 0)
                return -ENOMEM;
        body = grace_seconds >= 0
                ? json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:I}}", "apiVersion", "policy/v1", "kind", "Eviction",
                            "metadata", "name", pod, "namespace", ns, "deleteOptions", "gracePeriodSeconds",
                            (json_int_t) grace_seconds)
                : json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "policy/v1", "kind", "Eviction", "metadata",
                            "name", pod, "namespace", ns);
        if (!body)
                return -ENOMEM;
        r = kube_request(c, "POST", path, NULL, NULL, body, &resp);
        if (r == -EAGAIN && resp.status == 429 && resp.retry_after == 0)
                resp.retry_after = 5;
        if (ret)
                *ret = resp;
        else
                kube_response_done(&resp);
        return r;
}

int kube_event(KubeClient *c, json_t *regarding, const char *type, const char *reason, const char *action,
               const char *controller, const char *instance, const char *note) {
        _cleanup_(json_decrefp) json_t *ev = NULL, *ref = NULL;
        _cleanup_free_ char *path = NULL, *name = NULL, *short_note = NULL;
        struct timespec now;
        char when[40];
        const char *oname, *ons, *uid, *api, *kind;
        int r;

        if (!c || !regarding || !type || !reason || !controller || !instance)
                return -EINVAL;
        oname = kube_name(regarding);
        ons = kube_namespace(regarding);
        uid = json_string_value(json_object_get(json_object_get(regarding, "metadata"), "uid"));
        api = json_string_value(json_object_get(regarding, "apiVersion"));
        kind = json_string_value(json_object_get(regarding, "kind"));
        if (!oname || !kind)
                return -EINVAL;

        (void) clock_gettime(CLOCK_REALTIME, &now);
        uint64_t ns_now = (uint64_t) now.tv_sec * 1000000000ULL + (uint64_t) now.tv_nsec;
        /* client-go's naming: <object>.<hex nanoseconds>, within 253. */
        if (asprintf(&name, "%.200s.%" PRIx64, oname, ns_now) < 0)
                return -ENOMEM;
        if (!ons)
                ons = "default"; /* events about cluster-scoped objects */
        if (asprintf(&path, "/apis/events.k8s.io/v1/namespaces/%s/events", ons) < 0)
                return -ENOMEM;

        if (note && strlen(note) > EVENT_NOTE_MAX) {
                size_t n = EVENT_NOTE_MAX;
                /* Do not cut a UTF-8 sequence in half. */
                while (n > 0 && ((unsigned char) note[n] & 0xC0) == 0x80)
                        n--;
                short_note = strndup(note, n);
                if (!short_note)
                        return -ENOMEM;
                note = short_note;
        }

        ref = json_pack("{s:s, s:s}", "kind", kind, "name", oname);
        if (!ref)
                return -ENOMEM;
        if ((api && json_object_set_new(ref, "apiVersion", json_string(api)) < 0) ||
            (kube_namespace(regarding) && json_object_set_new(ref, "namespace", json_string(ons)) < 0) ||
            (uid && json_object_set_new(ref, "uid", json_string(uid)) < 0))
                return -ENOMEM;

        ev = json_pack("{s:s, s:s, s:{s:s, s:s}, s:s, s:s, s:s, s:s, s:s, s:O, s:s}", "apiVersion",
                       "events.k8s.io/v1", "kind", "Event", "metadata", "name", name, "namespace", ons, "eventTime",
                       kube_format_micro_time((uint64_t) now.tv_sec * 1000000ULL + (uint64_t) now.tv_nsec / 1000ULL,
                                              when),
                       "reportingController", controller, "reportingInstance", instance, "action", action ?: reason,
                       "reason", reason, "regarding", ref, "type", type);
        if (!ev)
                return -ENOMEM;
        if (note && json_object_set_new(ev, "note", json_string(note)) < 0)
                return -ENOMEM;

        /* Best effort: an event never holds a controller up for long. */
        r = request_full(c, "POST", path, NULL, NULL, ev, MIN(c->timeout_ms, EVENT_TIMEOUT_MSEC), NULL);
        return r;
}

/* ---- raw object helpers ---- */

static json_t *metadata(json_t *obj) {
        return json_object_get(obj, "metadata");
}

const char *kube_name(json_t *obj) {
        return json_string_value(json_object_get(metadata(obj), "name"));
}

const char *kube_namespace(json_t *obj) {
        const char *s = json_string_value(json_object_get(metadata(obj), "namespace"));
        return isempty(s) ? NULL : s;
}

const char *kube_resource_version(json_t *obj) {
        return json_string_value(json_object_get(metadata(obj), "resourceVersion"));
}

const char *kube_label(json_t *obj, const char *key) {
        return json_string_value(json_object_get(json_object_get(metadata(obj), "labels"), key));
}

json_t *kube_condition(json_t *obj, const char *type) {
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(json_object_get(obj, "status"), "conditions"), i, c) {
                const char *t = json_string_value(json_object_get(c, "type"));
                if (t && streq(t, type))
                        return c;
        }
        return NULL;
}

const char *kube_annotation(json_t *obj, const char *key) {
        return json_string_value(json_object_get(json_object_get(metadata(obj), "annotations"), key));
}

int64_t kube_generation(json_t *obj) {
        return (int64_t) json_integer_value(json_object_get(metadata(obj), "generation"));
}

char *kube_format_time(int64_t unix_seconds, char buf[static 32]) {
        struct tm tm;
        time_t t = (time_t) unix_seconds;

        if (!gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                buf[0] = '\0';
        return buf;
}

char *kube_format_micro_time(uint64_t realtime_usec, char buf[static 40]) {
        struct tm tm;
        time_t t = (time_t) (realtime_usec / 1000000ULL);
        char s[32];

        if (!gmtime_r(&t, &tm) || strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
                buf[0] = '\0';
        else
                (void) snprintf(buf, 40, "%s.%06uZ", s, (unsigned) (realtime_usec % 1000000ULL));
        return buf;
}

static int digits(const char **p, unsigned n, int *ret) {
        int v = 0;
        for (unsigned i = 0; i < n; i++) {
                char ch = (*p)[i];
                if (ch < '0' || ch > '9')
                        return -EINVAL;
                v = v * 10 + (ch - '0');
        }
        *p += n;
        *ret = v;
        return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        unsigned yoe = (unsigned) (y - era * 400);
        unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t) doe - 719468;
}

int kube_parse_time(const char *s, int64_t *ret) {
        static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        int Y, M, D, h, m, sec, oh = 0, om = 0, sign = 0;
        const char *p = s;

        if (!s)
                return -EINVAL;
        if (digits(&p, 4, &Y) < 0 || *p++ != '-' || digits(&p, 2, &M) < 0 || *p++ != '-' ||
            digits(&p, 2, &D) < 0 || (*p != 'T' && *p != 't'))
                return -EINVAL;
        p++;
        if (digits(&p, 2, &h) < 0 || *p++ != ':' || digits(&p, 2, &m) < 0 || *p++ != ':' ||
            digits(&p, 2, &sec) < 0)
                return -EINVAL;
        if (*p == '.') {
                p++;
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                while (*p >= '0' && *p <= '9')
                        p++;
        }
        if (*p == 'Z' || *p == 'z')
                p++;
        else if (*p == '+' || *p == '-') {
                sign = *p == '-' ? -1 : 1;
                p++;
                if (digits(&p, 2, &oh) < 0 || *p++ != ':' || digits(&p, 2, &om) < 0 || oh > 23 || om > 59)
                        return -EINVAL;
        } else
                return -EINVAL;
        if (*p != '\0')
                return -EINVAL;
        if (M < 1 || M > 12 || D < 1 || (unsigned) D > mdays[M - 1] || h > 23 || m > 59 || sec > 60)
                return -EINVAL;
        bool leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
        if (M == 2 && D == 29 && !leap)
                return -EINVAL;
        int64_t t = days_from_civil(Y, (unsigned) M, (unsigned) D) * 86400 + h * 3600 + m * 60 + MIN(sec, 59);
        t -= (int64_t) sign * (oh * 3600 + om * 60);
        *ret = t;
        return 0;
}

/* ---- label selectors ---- */

typedef enum SelOp { SEL_EQ, SEL_NEQ, SEL_IN, SEL_NOTIN, SEL_EXISTS, SEL_NOT_EXISTS, SEL_GT, SEL_LT } SelOp;

static bool name_char(char c) {
        return isalnum((unsigned char) c) || c == '-' || c == '_' || c == '.';
}

/* A label name segment: <= 63, alphanumeric at both ends. */
static bool valid_name(const char *s, size_t n) {
        if (n == 0 || n > 63 || !isalnum((unsigned char) s[0]) || !isalnum((unsigned char) s[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!name_char(s[i]))
                        return false;
        return true;
}

static bool valid_key(const char *s, size_t n) {
        const char *slash = memchr(s, '/', n);
        if (!slash)
                return valid_name(s, n);
        size_t pn = (size_t) (slash - s);
        if (pn == 0 || pn > 253)
                return false;
        for (size_t i = 0; i < pn; i++)
                if (!isalnum((unsigned char) s[i]) && s[i] != '-' && s[i] != '.')
                        return false;
        return valid_name(slash + 1, n - pn - 1);
}

static bool valid_value(const char *s, size_t n) {
        return n == 0 || valid_name(s, n);
}

static void skip_spaces(const char **p) {
        while (**p == ' ' || **p == '\t')
                (*p)++;
}

static size_t span_token(const char *p) {
        size_t n = 0;
        while (name_char(p[n]) || p[n] == '/')
                n++;
        return n;
}

static bool value_is(json_t *labels, const char *key, size_t kn, const char *v, size_t vn, bool *ret_exists) {
        char k[320];
        const char *have;

        if (kn >= sizeof(k)) {
                *ret_exists = false;
                return false;
        }
        memcpy(k, key, kn);
        k[kn] = '\0';
        have = json_string_value(json_object_get(labels, k));
        *ret_exists = have != NULL;
        return have && strlen(have) == vn && memcmp(have, v, vn) == 0;
}

static int parse_int(const char *s, size_t n, long long *ret) {
        char buf[24];
        char *end;

        if (n == 0 || n >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s, n);
        buf[n] = '\0';
        errno = 0;
        long long v = strtoll(buf, &end, 10);
        if (errno != 0 || *end != '\0')
                return -EINVAL;
        *ret = v;
        return 0;
}

int kube_selector_matches(const char *selector, json_t *labels) {
        const char *p = selector;
        bool all = true, first = true;

        if (!selector)
                return 1;
        skip_spaces(&p);
        if (*p == '\0')
                return 1; /* empty selector: everything */

        for (;;) {
                bool neg = false, exists, eq = false, match;
                const char *key;
                size_t kn;
                SelOp op;

                skip_spaces(&p);
                if (!first && *p == '\0')
                        return -EINVAL; /* trailing comma */
                first = false;
                if (*p == '!') {
                        neg = true;
                        p++;
                        skip_spaces(&p);
                }
                key = p;
                kn = span_token(p);
                if (!valid_key(key, kn))
                        return -EINVAL;
                p += kn;
                skip_spaces(&p);

                if (neg) {
                        if (*p != ',' && *p != '\0')
                                return -EINVAL;
                        (void) value_is(labels, key, kn, "", 0, &exists);
                        match = !exists;
                } else if (*p == ',' || *p == '\0') {
                        (void) value_is(labels, key, kn, "", 0, &exists);
                        match = exists;
                } else if (*p == '=' || (p[0] == '!' && p[1] == '=') || *p == '>' || *p == '<') {
                        const char *v;
                        size_t vn;

                        if (p[0] == '!') {
                                op = SEL_NEQ;
                                p += 2;
                        } else if (p[0] == '=') {
                                op = SEL_EQ;
                                p += p[1] == '=' ? 2 : 1;
                        } else {
                                op = *p == '>' ? SEL_GT : SEL_LT;
                                p++;
                        }
                        skip_spaces(&p);
                        v = p;
                        vn = span_token(p);
                        if (memchr(v, '/', vn))
                                return -EINVAL;
                        p += vn;
                        if (op == SEL_GT || op == SEL_LT) {
                                long long want, have;
                                char k[320];
                                const char *hv;

                                if (parse_int(v, vn, &want) < 0 || kn >= sizeof(k))
                                        return -EINVAL;
                                memcpy(k, key, kn);
                                k[kn] = '\0';
                                hv = json_string_value(json_object_get(labels, k));
                                match = hv && parse_int(hv, strlen(hv), &have) >= 0 &&
                                        (op == SEL_GT ? have > want : have < want);
                        } else {
                                if (!valid_value(v, vn))
                                        return -EINVAL;
                                eq = value_is(labels, key, kn, v, vn, &exists);
                                match = op == SEL_EQ ? eq : !eq;
                        }
                } else if ((strncmp(p, "in", 2) == 0 && (p[2] == ' ' || p[2] == '(')) ||
                           (strncmp(p, "notin", 5) == 0 && (p[5] == ' ' || p[5] == '('))) {
                        bool any = false, values = false;

                        op = p[0] == 'i' ? SEL_IN : SEL_NOTIN;
                        p += op == SEL_IN ? 2 : 5;
                        skip_spaces(&p);
                        if (*p++ != '(')
                                return -EINVAL;
                        for (;;) {
                                const char *v;
                                size_t vn;

                                skip_spaces(&p);
                                v = p;
                                vn = span_token(p);
                                if (memchr(v, '/', vn) || !valid_value(v, vn))
                                        return -EINVAL;
                                p += vn;
                                skip_spaces(&p);
                                if (value_is(labels, key, kn, v, vn, &exists))
                                        any = true;
                                values = values || vn > 0;
                                if (*p == ',') {
                                        p++;
                                        continue;
                                }
                                if (*p == ')') {
                                        p++;
                                        break;
                                }
                                return -EINVAL;
                        }
                        if (!values)
                                return -EINVAL; /* "in ()" */
                        match = op == SEL_IN ? any : !any;
                } else
                        return -EINVAL;

                all = all && match;
                skip_spaces(&p);
                if (*p == '\0')
                        break;
                if (*p != ',')
                        return -EINVAL;
                p++;
        }
        return all ? 1 : 0;
}
