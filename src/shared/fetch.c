/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/ssl.h>

#include "fetch-internal.h"
#include "fetch.h"
#include "strutil.h"

/* CURLOPT_PROTOCOLS_STR and CURLOPT_REDIR_PROTOCOLS_STR appeared in 7.85. */
#if LIBCURL_VERSION_NUM < 0x075500
#error "libcurl >= 7.85 is needed"
#endif

#define CONNECT_TIMEOUT_DEFAULT_SEC 30
#define STALL_TIMEOUT_DEFAULT_SEC 60
#define MAX_REDIRECTS 5
#define BACKOFF_FIRST_MSEC 500
#define BACKOFF_MAX_MSEC 10000
/* Bigger than curl's 16 KiB default: fewer sink calls for a bundle of
 * hundreds of MiB, still nothing that could be called buffering. */
#define RECEIVE_BUFFER_SIZE (256 * 1024)
/* A connection that delivered this much worked: the retry count starts
 * again. Less (a server that trickles a few bytes per connection) does not
 * earn a fresh set of retries, or it could hold the agent forever. */
#define PROGRESS_RESETS_RETRIES (1024 * 1024)
/* Longer ETags are not compared; no real server makes them this long. */
#define ETAG_MAX 128



typedef struct Fetch {
        const FetchOptions *o;
        FetchSink sink;
        FetchSizeCallback size_cb;
        void *userdata;

        uint64_t next;          /* offset in the resource of the next byte the sink gets */
        uint64_t total;         /* size of the resource, 0 until a server told it */
        bool have_first;        /* a response was accepted; 'etag' is from it */
        char etag[ETAG_MAX];    /* its strong ETag, "" if it had none */

        /* The response being received. Reset at each status line, because
         * redirects and interim responses come through the same callbacks. */
        long status;
        bool headers_done;
        bool body_ok;           /* a 200/206 that was accepted: its body goes to the sink */
        uint64_t pos;           /* offset in the resource of the next body byte */
        int64_t content_length; /* -1: not sent */
        bool have_range;        /* Content-Range parsed */
        bool range_unsatisfied; /* "bytes (star)/T" (the form of a 416) */
        uint64_t range_start;
        bool range_total_known;
        uint64_t range_total;
        char resp_etag[ETAG_MAX];

        bool cert_requested;    /* this attempt's TLS handshake asked for a client certificate */

        int error;              /* ours, the sink's or -ECANCELED: wins over curl's result */
        bool sink_failed;
        char **ret_error;
} Fetch;

int fetch_global_init(void) {
        return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

static bool cancelled(const Fetch *f) {
        return f->o->cancel && *f->o->cancel != 0;
}

/* Digits only, no sign, no overflow; *p is left after the number. */
int fetch_parse_u64(const char **p, uint64_t *ret) {
        const char *s = *p;
        uint64_t v = 0;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        for (; *s >= '0' && *s <= '9'; s++) {
                if (v > (UINT64_MAX - (uint64_t) (*s - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        *p = s;
        *ret = v;
        return 0;
}

/* "bytes S-E/T", "bytes S-E/(star)" or "bytes (star)/T" (RFC 9110 14.4). */
static int parse_content_range(Fetch *f, const char *v) {
        uint64_t start, end, total;

        if (strncasecmp(v, "bytes", 5) != 0)
                return -EINVAL;
        v += 5;
        while (*v == ' ')
                v++;
        if (*v == '*') {
                v++;
                if (*v++ != '/' || fetch_parse_u64(&v, &total) < 0 || *v != '\0')
                        return -EINVAL;
                f->range_unsatisfied = true;
                f->range_total_known = true;
                f->range_total = total;
                f->have_range = true;
                return 0;
        }
        if (fetch_parse_u64(&v, &start) < 0 || *v++ != '-' || fetch_parse_u64(&v, &end) < 0 || end < start || *v++ != '/')
                return -EINVAL;
        if (*v == '*') {
                v++;
                f->range_total_known = false;
        } else {
                if (fetch_parse_u64(&v, &total) < 0 || end >= total)
                        return -EINVAL;
                f->range_total_known = true;
                f->range_total = total;
        }
        if (*v != '\0')
                return -EINVAL;
        f->range_start = start;
        f->have_range = true;
        return 0;
}

static void response_reset(Fetch *f) {
        f->status = 0;
        f->headers_done = false;
        f->body_ok = false;
        f->pos = 0;
        f->content_length = -1;
        f->have_range = f->range_unsatisfied = f->range_total_known = false;
        f->range_start = f->range_total = 0;
        f->resp_etag[0] = '\0';
}

/* Only strong validators say "the same bytes" (RFC 9110 8.8.1). */
static bool etag_is_strong(const char *e) {
        return e[0] == '"';
}

/* The headers of a response are complete: decide whether its body is the
 * continuation we asked for. */
static int response_begin(Fetch *f) {
        uint64_t start, total = 0;

        f->headers_done = true;
        /* Interim and redirect responses are followed by curl; a final 3xx or
         * an error status is judged after the transfer, and its body (an
         * error page) never reaches the sink. */
        if (f->status != 200 && f->status != 206)
                return 0;

        if (f->status == 206) {
                if (!f->have_range || f->range_unsatisfied)
                        return error_set_first(f->ret_error, -ECOMM,
                                    "downloading %s failed: HTTP 206 without a valid Content-Range", f->o->url);
                start = f->range_start;
                if (start != f->next)
                        return error_set_first(f->ret_error, -ECOMM,
                                    "downloading %s failed: asked for bytes from %" PRIu64 ", the server sent them from %" PRIu64,
                                    f->o->url, f->next, start);
                if (f->range_total_known)
                        total = f->range_total;
                else if (f->content_length >= 0)
                        total = start + (uint64_t) f->content_length;
        } else {
                /* A server that ignores Range starts at 0 again; write_cb()
                 * skips what the sink already has. */
                start = 0;
                if (f->content_length >= 0)
                        total = (uint64_t) f->content_length;
        }

        if (f->have_first && etag_is_strong(f->etag) && etag_is_strong(f->resp_etag) &&
            !streq(f->etag, f->resp_etag))
                return error_set_first(f->ret_error, -ESTALE, "downloading %s failed: the file changed on the server (ETag %s, now %s)",
                            f->o->url, f->etag, f->resp_etag);
        if (total > 0) {
                if (f->total > 0 && total != f->total)
                        return error_set_first(f->ret_error, -ESTALE,
                                    "downloading %s failed: the file changed on the server (%" PRIu64 " bytes, now %" PRIu64 ")",
                                    f->o->url, f->total, total);
                if (f->next > total)
                        return error_set_first(f->ret_error, -ECOMM,
                                    "downloading %s failed: offset %" PRIu64 " is beyond its end (%" PRIu64 " bytes)",
                                    f->o->url, f->next, total);
                f->total = total;
        }
        if (!f->have_first) {
                f->have_first = true;
                memcpy(f->etag, f->resp_etag, sizeof(f->etag));
        }

        f->pos = start;
        f->body_ok = true;
        if (f->size_cb)
                f->size_cb(f->total, f->userdata);
        return 0;
}

static size_t header_cb(char *buf, size_t size, size_t n, void *userdata) {
        Fetch *f = userdata;
        size_t len = size * n, l = len;
        char line[512];

        if (cancelled(f)) {
                f->error = -ECANCELED;
                return 0;
        }
        while (l > 0 && (buf[l - 1] == '\n' || buf[l - 1] == '\r'))
                l--;

        if (l >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
                /* "HTTP/1.1 206 Partial Content", "HTTP/2 200" */
                const char *p;
                uint64_t code;

                response_reset(f);
                snprintf(line, sizeof(line), "%.*s", (int) MIN(l, sizeof(line) - 1), buf);
                p = strchr(line, ' ');
                if (p) {
                        p++;
                        if (fetch_parse_u64(&p, &code) >= 0 && code < 1000)
                                f->status = (long) code;
                }
                return len;
        }
        if (f->headers_done) /* trailers of a chunked body */
                return len;
        if (l == 0) {
                int r = response_begin(f);
                if (r < 0) {
                        f->error = r;
                        return 0;
                }
                return len;
        }
        if (l >= sizeof(line)) /* none of the headers we read is that long */
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

        if (strcasecmp(line, "Content-Length") == 0) {
                const char *p = v;
                uint64_t cl;
                if (fetch_parse_u64(&p, &cl) >= 0 && *p == '\0' && cl <= INT64_MAX)
                        f->content_length = (int64_t) cl;
        } else if (strcasecmp(line, "Content-Range") == 0) {
                /* A malformed one is remembered as missing, which a 206 may not be. */
                if (parse_content_range(f, v) < 0)
                        f->have_range = false;
        } else if (strcasecmp(line, "ETag") == 0 && strlen(v) < sizeof(f->resp_etag))
                memcpy(f->resp_etag, v, strlen(v) + 1);
        return len;
}

static size_t write_cb(char *data, size_t size, size_t n, void *userdata) {
        Fetch *f = userdata;
        size_t len = size * n, left = len;
        const char *p = data;
        int r;

        if (cancelled(f)) {
                f->error = -ECANCELED;
                return 0;
        }
        if (!f->body_ok)
                return len;

        if (f->pos < f->next) {
                size_t skip = (size_t) MIN((uint64_t) left, f->next - f->pos);
                p += skip;
                left -= skip;
                f->pos += skip;
        }
        if (left == 0)
                return len;
        /* curl holds a 200 to its Content-Length, but nothing holds a 206 to
         * the total in its Content-Range: a sink must never see more bytes
         * than the file has, so check here. */
        if (f->total > 0 && (uint64_t) left > f->total - f->next) {
                f->error = error_set_first(f->ret_error, -ECOMM, "downloading %s failed: the server sent more than the %" PRIu64 " bytes it announced",
                                f->o->url, f->total);
                return 0;
        }
        r = f->sink(p, left, f->userdata);
        if (r < 0) {
                f->error = r;
                f->sink_failed = true;
                return 0;
        }
        f->pos += left;
        f->next += left;
        return len;
}

static int xferinfo_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
        Fetch *f = userdata;

        /* Called about once a second even while nothing arrives, so a
         * stalled transfer is cancelled promptly too. */
        if (cancelled(f)) {
                f->error = -ECANCELED;
                return 1;
        }
        return 0;
}

/* In TLS 1.3 the client's handshake is complete before the server has
 * looked at the client certificate. A server that refuses it (or requires
 * one and got none) sends a fatal alert and closes; if the alert is read,
 * curl reports it in its message (see recv_error_is_tls_alert()), but
 * often the HTTP request is already on its way, the server's kernel answers
 * it with a reset and the alert is lost: a send error or connection reset,
 * like any network failure. Noting that the server asked for a certificate
 * lets judge() tell the two apart. */
static void tls_msg_cb(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg) {
        Fetch *f = arg;

        if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
            ((const uint8_t *) buf)[0] == SSL3_MT_CERTIFICATE_REQUEST)
                f->cert_requested = true;
}

static CURLcode ssl_ctx_cb(CURL *curl, void *ssl_ctx, void *userdata) {
        /* curl installs its own message callback only for verbose tracing,
         * which we never turn on. */
        SSL_CTX_set_msg_callback(ssl_ctx, tls_msg_cb);
        SSL_CTX_set_msg_callback_arg(ssl_ctx, userdata);
        return CURLE_OK;
}

bool fetch_curl_code_is_tls(CURLcode c) {
        switch (c) {
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_ENGINE_NOTFOUND:
        case CURLE_SSL_ENGINE_SETFAILED:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_ENGINE_INITFAILED:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_SHUTDOWN_FAILED:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_SSL_CLIENTCERT:
        case CURLE_USE_SSL_FAILED:
                return true;
        default:
                return false;
        }
}

/* Failures of the network or of a server that is busy or restarting: worth
 * another connection. */
bool fetch_curl_code_is_transient(CURLcode c) {
        switch (c) {
        case CURLE_PARTIAL_FILE:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_GOT_NOTHING:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_HTTP3:
        case CURLE_QUIC_CONNECT_ERROR:
        case CURLE_PROXY:
                return true;
        default:
                return false;
        }
}

/* With TLS 1.3 the client's handshake is done before the server has looked
 * at the client certificate, so a refused (or missing) certificate arrives
 * as a fatal alert on the first read, which curl reports as a receive error.
 * A fatal alert is the peer's deliberate answer, never a network glitch,
 * and retrying cannot change it. curl gives no code for it, only the
 * OpenSSL reason in its message. */
static bool recv_error_is_tls_alert(const char *errbuf) {
        return strstr(errbuf, "SSL_read") && strstr(errbuf, " alert ");
}

typedef enum Outcome {
        OUTCOME_DONE,
        OUTCOME_FAILED,         /* final: return the error */
        OUTCOME_RETRY,          /* transient: reconnect and resume */
} Outcome;

/* Judge one transfer. For OUTCOME_RETRY, *ret_r is the error to return if
 * the retries run out and 'why' says what happened. */
static Outcome judge(Fetch *f, CURL *curl, CURLcode c, const char *errbuf, int *ret_r, char *why, size_t why_size) {
        const char *url = f->o->url;
        const char *curl_msg = errbuf[0] ? errbuf : curl_easy_strerror(c);

        if (f->error < 0) {
                *ret_r = f->error;
                if (f->error == -ECANCELED)
                        (void) error_set_first(f->ret_error, -ECANCELED, "downloading %s was cancelled", url);
                return OUTCOME_FAILED;
        }
        if (c == CURLE_ABORTED_BY_CALLBACK) {
                *ret_r = error_set_first(f->ret_error, -ECANCELED, "downloading %s was cancelled", url);
                return OUTCOME_FAILED;
        }

        /* An HTTP error status decides, even when its body was then cut off. */
        if (f->status >= 400) {
                long s = f->status;

                if (s == 404 || s == 410)
                        *ret_r = error_set_first(f->ret_error, -ENOENT, "downloading %s failed: HTTP %ld (not found)", url, s);
                else if (s == 401 || s == 403)
                        *ret_r = error_set_first(f->ret_error, -EACCES, "downloading %s failed: HTTP %ld (access denied)", url, s);
                else if (s == 408 || s == 429 || s >= 500) {
                        *ret_r = -ECOMM;
                        snprintf(why, why_size, "HTTP %ld", s);
                        return OUTCOME_RETRY;
                } else if (s == 416 && f->range_unsatisfied && f->next == f->range_total && f->next > 0) {
                        /* We asked for the bytes after the last one: the
                         * earlier connection died right at the end. */
                        if (f->total > 0 && f->total != f->range_total) {
                                *ret_r = error_set_first(f->ret_error, -ESTALE,
                                              "downloading %s failed: the file changed on the server (%" PRIu64 " bytes, now %" PRIu64 ")",
                                              url, f->total, f->range_total);
                                return OUTCOME_FAILED;
                        }
                        if (f->size_cb)
                                f->size_cb(f->range_total, f->userdata);
                        return OUTCOME_DONE;
                } else
                        *ret_r = error_set_first(f->ret_error, -ECOMM, "downloading %s failed: HTTP %ld", url, s);
                return OUTCOME_FAILED;
        }

        if (c != CURLE_OK) {
                if (c == CURLE_RECV_ERROR && recv_error_is_tls_alert(errbuf))
                        c = CURLE_SSL_CONNECT_ERROR;
                if (fetch_curl_code_is_tls(c)) {
                        *ret_r = error_set_first(f->ret_error, -EPROTO, "downloading %s failed: TLS: %s", url, curl_msg);
                        return OUTCOME_FAILED;
                }
                if (c == CURLE_UNSUPPORTED_PROTOCOL) {
                        /* fetch_stream() checked the URL's scheme: this is a
                         * redirect to one we refuse, e.g. https -> http. */
                        *ret_r = error_set_first(f->ret_error, -EPROTO, "downloading %s failed: %s", url, curl_msg);
                        return OUTCOME_FAILED;
                }
                if (c == CURLE_URL_MALFORMAT) {
                        *ret_r = error_set_first(f->ret_error, -EINVAL, "cannot download %s: %s", url, curl_msg);
                        return OUTCOME_FAILED;
                }
                if (c == CURLE_OUT_OF_MEMORY) {
                        *ret_r = -ENOMEM;
                        return OUTCOME_FAILED;
                }
                if (fetch_curl_code_is_transient(c)) {
                        /* A connection that ended inside a body is a
                         * truncated file, whether or not the server said
                         * goodbye in TLS. */
                        bool truncated = c == CURLE_PARTIAL_FILE ||
                                (c == CURLE_RECV_ERROR && f->body_ok && (f->total == 0 || f->next < f->total));

                        /* Probably a refused client certificate whose alert
                         * got lost (see tls_msg_cb()). Still retried, as it
                         * may be a network failure after all, but if it
                         * persists, say what it most likely is. */
                        if (f->cert_requested && f->status == 0 &&
                            (c == CURLE_SEND_ERROR || c == CURLE_RECV_ERROR || c == CURLE_GOT_NOTHING)) {
                                *ret_r = -EPROTO;
                                snprintf(why, why_size,
                                         "the server asked for a client certificate and closed the connection: %s (%s)",
                                         f->o->client_cert ? "it refused ours" : "none is configured", curl_msg);
                                return OUTCOME_RETRY;
                        }
                        *ret_r = truncated ? -ENODATA : -ECOMM;
                        snprintf(why, why_size, "%s", curl_msg);
                        return OUTCOME_RETRY;
                }
                *ret_r = error_set_first(f->ret_error, -ECOMM, "downloading %s failed: %s", url, curl_msg);
                return OUTCOME_FAILED;
        }

        if (!f->body_ok) {
                long s = f->status;
                if (s == 0)
                        (void) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &s);
                *ret_r = error_set_first(f->ret_error, -ECOMM, "downloading %s failed: unexpected HTTP status %ld", url, s);
                return OUTCOME_FAILED;
        }
        /* A chunked body or a short 206 can end cleanly before the end. */
        if (f->total > 0 && f->next < f->total) {
                *ret_r = -ENODATA;
                snprintf(why, why_size, "the server closed the connection at byte %" PRIu64 " of %" PRIu64, f->next, f->total);
                return OUTCOME_RETRY;
        }
        return OUTCOME_DONE;
}

/* Sleep, but notice a cancellation within 100 ms. */
int fetch_sleep(const volatile int *cancel, unsigned msec) {
        while (msec > 0) {
                unsigned step = MIN(msec, 100u);

                if (cancel && *cancel)
                        return -ECANCELED;
                (void) nanosleep(&(struct timespec) { .tv_nsec = (long) step * 1000000L }, NULL);
                msec -= step;
        }
        return cancel && *cancel ? -ECANCELED : 0;
}

static int check_file(const char *what, const char *path, const char *url, char **ret_error) {
        if (access(path, R_OK) < 0) {
                errno = errno > 0 ? errno : EIO;
                return error_set_first(ret_error, -EINVAL, "cannot download %s: the %s %s is not readable: %m", url, what, path);
        }
        return 0;
}

#define SETOPT(curl, opt, val)                                  \
        do {                                                    \
                if (curl_easy_setopt(curl, opt, val) != CURLE_OK) \
                        return -EINVAL;                         \
        } while (0)

/* What every transfer of this module sets: protocols, redirects, TLS,
 * timeouts (fetch-internal.h). */
int fetch_setup_common(CURL *curl, const FetchOptions *o, char *errbuf) {
        SETOPT(curl, CURLOPT_URL, o->url);
        SETOPT(curl, CURLOPT_PROTOCOLS_STR, o->allow_http ? "https,http" : "https");
        SETOPT(curl, CURLOPT_REDIR_PROTOCOLS_STR, o->allow_http ? "https,http" : "https");
        SETOPT(curl, CURLOPT_FOLLOWLOCATION, 1L);
        SETOPT(curl, CURLOPT_MAXREDIRS, (long) MAX_REDIRECTS);
        SETOPT(curl, CURLOPT_NOSIGNAL, 1L); /* threads, and no SIGALRM in the agent */
        SETOPT(curl, CURLOPT_USERAGENT, "hull-agent/" HULL_VERSION);
        SETOPT(curl, CURLOPT_ERRORBUFFER, errbuf);
        SETOPT(curl, CURLOPT_SSL_VERIFYPEER, 1L);
        SETOPT(curl, CURLOPT_SSL_VERIFYHOST, 2L);
        SETOPT(curl, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
        if (o->ca_file)
                SETOPT(curl, CURLOPT_CAINFO, o->ca_file);
        if (o->client_cert) {
                SETOPT(curl, CURLOPT_SSLCERT, o->client_cert);
                SETOPT(curl, CURLOPT_SSLCERTTYPE, "PEM");
                SETOPT(curl, CURLOPT_SSLKEY, o->client_key);
                SETOPT(curl, CURLOPT_SSLKEYTYPE, "PEM");
        }
        SETOPT(curl, CURLOPT_CONNECTTIMEOUT, (long) (o->connect_timeout_sec ?: CONNECT_TIMEOUT_DEFAULT_SEC));
        SETOPT(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
        SETOPT(curl, CURLOPT_LOW_SPEED_TIME, (long) (o->stall_timeout_sec ?: STALL_TIMEOUT_DEFAULT_SEC));
        SETOPT(curl, CURLOPT_TCP_KEEPALIVE, 1L);
        SETOPT(curl, CURLOPT_BUFFERSIZE, (long) RECEIVE_BUFFER_SIZE);
        /* A proxy's "200 Connection established" must not pass for ours. */
        SETOPT(curl, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
        /* The headers (credentials) are never sent to another host after a
         * redirect: libcurl's default, relied on for registry tokens. */
        if (o->headers) {
                struct curl_slist *l = NULL;
                /* Kept for the handle's lifetime: fetch_curl_cleanup() frees it. */
                for (const char *const *h = o->headers; *h; h++) {
                        struct curl_slist *n = curl_slist_append(l, *h);
                        if (!n) {
                                curl_slist_free_all(l);
                                return -ENOMEM;
                        }
                        l = n;
                }
                if (curl_easy_setopt(curl, CURLOPT_HTTPHEADER, l) != CURLE_OK) {
                        curl_slist_free_all(l);
                        return -EINVAL;
                }
                if (curl_easy_setopt(curl, CURLOPT_PRIVATE, l) != CURLE_OK) {
                        curl_slist_free_all(l);
                        return -EINVAL;
                }
        }
        return 0;
}

void fetch_curl_cleanup(CURL *curl) {
        struct curl_slist *l = NULL;
        if (!curl)
                return;
        (void) curl_easy_getinfo(curl, CURLINFO_PRIVATE, (char **) &l);
        curl_easy_cleanup(curl);
        curl_slist_free_all(l);
}

static int setup(CURL *curl, const FetchOptions *o, Fetch *f, char *errbuf) {
        int r = fetch_setup_common(curl, o, errbuf);
        if (r < 0)
                return r;
        /* Only for a clearer error; a libcurl on another TLS library lacks
         * it (CURLE_NOT_BUILT_IN) and works as well. */
        (void) curl_easy_setopt(curl, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
        (void) curl_easy_setopt(curl, CURLOPT_SSL_CTX_DATA, f);
        SETOPT(curl, CURLOPT_HEADERFUNCTION, header_cb);
        SETOPT(curl, CURLOPT_HEADERDATA, f);
        SETOPT(curl, CURLOPT_WRITEFUNCTION, write_cb);
        SETOPT(curl, CURLOPT_WRITEDATA, f);
        SETOPT(curl, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
        SETOPT(curl, CURLOPT_XFERINFODATA, f);
        SETOPT(curl, CURLOPT_NOPROGRESS, 0L);
        return 0;
}

int fetch_check_options(const FetchOptions *o, char **ret_error) {
        int r;

        if (isempty(o->url))
                return error_set_first(ret_error, -EINVAL, "no URL to download");
        if (strncasecmp(o->url, "https://", 8) != 0 && !(o->allow_http && strncasecmp(o->url, "http://", 7) == 0))
                return error_set_first(ret_error, -EINVAL, "cannot download %s: only https:// URLs are allowed", o->url);
        if (!o->client_cert != !o->client_key)
                return error_set_first(ret_error, -EINVAL, "cannot download %s: a client certificate needs its key and vice versa",
                            o->url);
        /* Tell a missing file from a TLS failure: curl reports both alike. */
        if (o->ca_file && (r = check_file("CA file", o->ca_file, o->url, ret_error)) < 0)
                return r;
        if (o->client_cert && (r = check_file("client certificate", o->client_cert, o->url, ret_error)) < 0)
                return r;
        if (o->client_key && (r = check_file("client key", o->client_key, o->url, ret_error)) < 0)
                return r;
        return 0;
}

int fetch_stream(const FetchOptions *o, FetchSink sink, FetchSizeCallback size_cb, void *userdata, char **ret_error) {
        _cleanup_(fetch_curl_cleanupp) CURL *curl = NULL;
        char errbuf[CURL_ERROR_SIZE], why[CURL_ERROR_SIZE + 256] = "";
        unsigned failures = 0;
        int r;

        if (!o || !sink)
                return -EINVAL;
        r = fetch_check_options(o, ret_error);
        if (r < 0)
                return r;

        Fetch f = {
                .o = o,
                .sink = sink,
                .size_cb = size_cb,
                .userdata = userdata,
                .next = o->offset,
                .ret_error = ret_error,
        };

        curl = curl_easy_init();
        if (!curl)
                return -ENOMEM;
        r = setup(curl, o, &f, errbuf);
        if (r < 0)
                return error_set_first(ret_error, r, "cannot download %s: libcurl refused an option", o->url);

        for (unsigned attempt = 1;; attempt++) {
                uint64_t before = f.next;
                char range[32];
                CURLcode c;
                int err = 0;

                if (cancelled(&f))
                        return error_set_first(ret_error, -ECANCELED, "downloading %s was cancelled", o->url);

                response_reset(&f);
                f.error = 0;
                f.cert_requested = false;
                errbuf[0] = '\0';
                if (f.next > 0) {
                        snprintf(range, sizeof(range), "%" PRIu64 "-", f.next);
                        SETOPT(curl, CURLOPT_RANGE, range);
                } else
                        SETOPT(curl, CURLOPT_RANGE, NULL);

                c = curl_easy_perform(curl);
                switch (judge(&f, curl, c, errbuf, &err, why, sizeof(why))) {
                case OUTCOME_DONE:
                        return 0;
                case OUTCOME_FAILED:
                        return err;
                case OUTCOME_RETRY:
                        break;
                }

                /* Count failures in a row: a connection that brought a
                 * good amount of new bytes proves the server is there and
                 * the file still the same, so a long download is not lost
                 * to drops spread over hours. */
                if (f.next - before >= PROGRESS_RESETS_RETRIES)
                        failures = 0;
                if (failures >= o->max_retries)
                        return error_set_first(ret_error, err, "downloading %s failed: %s (%u attempt%s, at byte %" PRIu64 ")", o->url,
                                    why, attempt, attempt == 1 ? "" : "s", f.next);
                r = fetch_sleep(o->cancel, MIN((unsigned) BACKOFF_FIRST_MSEC << MIN(failures, 5u), (unsigned) BACKOFF_MAX_MSEC));
                if (r < 0)
                        return error_set_first(ret_error, r, "downloading %s was cancelled", o->url);
                failures++;
        }
}
