/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fetch-internal.h"
#include "strutil.h"

/* Several byte ranges of one resource: the part of a delta update that
 * the node does not have. Servers answer a request for several ranges in
 * one of three ways (RFC 9110 14.2, 15.3.7): a multipart/byteranges body
 * with one part per range (or per group of ranges they merged), a single
 * 206 range covering them all, or the whole resource with 200. The first
 * two are taken apart here; the third is -ERANGE, for the caller to decide
 * (one range at a time, or a full download). */

#define BACKOFF_FIRST_MSEC 500
#define BACKOFF_MAX_MSEC 10000
#define RETRY_AFTER_MAX_SEC 60
#define PROGRESS_RESETS_RETRIES (1024 * 1024)
#define LINE_MAX_LEN 1024
#define BOUNDARY_MAX 70

typedef enum PartState {
        PART_BOUNDARY,  /* looking for "--boundary" */
        PART_HEADERS,
        PART_DATA,
        PART_END,
} PartState;

typedef struct Ranges {
        const FetchOptions *o;
        const FetchRange *r;
        size_t n;
        uint64_t *got;          /* bytes of each range the sink has, from its start */
        uint64_t total;
        FetchRangeSink sink;
        void *userdata;
        char **ret_error;
        uint64_t delivered;     /* in this attempt */

        /* The response being received (reset at each status line). */
        long status;
        bool headers_done, body_ok, multipart, have_range;
        unsigned retry_after;
        uint64_t seen_total;    /* the size a Content-Range gave, when it was not 'total' */
        char boundary[BOUNDARY_MAX + 1];
        uint64_t pos, end;      /* resource offsets: next body byte, end of the current part */

        PartState state;
        char line[LINE_MAX_LEN];
        size_t line_len;
        bool part_has_range;

        int error;
} Ranges;

static bool cancelled(const Ranges *g) {
        return g->o->cancel && *g->o->cancel != 0;
}

/* "bytes S-E/T" or "bytes S-E/(star)": sets pos and end. */
static int parse_content_range(Ranges *g, const char *v) {
        uint64_t start, last, total;

        if (strncasecmp(v, "bytes", 5) != 0)
                return -EINVAL;
        v += 5;
        v += strspn(v, " ");
        if (fetch_parse_u64(&v, &start) < 0 || *v++ != '-' || fetch_parse_u64(&v, &last) < 0 || last < start || *v++ != '/')
                return -EINVAL;
        if (*v == '*')
                v++;
        else {
                if (fetch_parse_u64(&v, &total) < 0 || last >= total)
                        return -EINVAL;
                if (g->total > 0 && total != g->total) {
                        g->seen_total = total;
                        return -ESTALE;
                }
        }
        if (*v != '\0' || last == UINT64_MAX)
                return -EINVAL;
        g->pos = start;
        g->end = last + 1;
        return 0;
}

/* 'boundary=X' or 'boundary="X"' from a Content-Type value. */
static int parse_boundary(Ranges *g, const char *v) {
        const char *b = strcasestr(v, "boundary=");
        size_t l;

        if (!b)
                return -EINVAL;
        b += strlen("boundary=");
        if (*b == '"') {
                b++;
                l = strcspn(b, "\"");
                if (b[l] != '"')
                        return -EINVAL;
        } else
                l = strcspn(b, " ;\t");
        if (l == 0 || l > BOUNDARY_MAX)
                return -EINVAL;
        memcpy(g->boundary, b, l);
        g->boundary[l] = '\0';
        return 0;
}

static void response_reset(Ranges *g) {
        g->status = 0;
        g->headers_done = g->body_ok = g->multipart = g->have_range = false;
        g->retry_after = 0;
        g->boundary[0] = '\0';
        g->pos = g->end = 0;
        g->state = PART_BOUNDARY;
        g->line_len = 0;
        g->part_has_range = false;
}

/* Hand the bytes at resource offset 'off' to every range they continue. */
static int deliver(Ranges *g, uint64_t off, const uint8_t *data, size_t len) {
        uint64_t stop = off + len;
        size_t lo = 0, hi = g->n;

        /* The first range that ends after 'off' (ranges are sorted). */
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (g->r[mid].start + g->r[mid].length <= off)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        for (size_t i = lo; i < g->n && g->r[i].start < stop; i++) {
                uint64_t want = g->r[i].start + g->got[i], rend = g->r[i].start + g->r[i].length;
                if (want < off || want >= MIN(stop, rend))
                        continue; /* a gap before these bytes, or nothing new: asked for again later */
                uint64_t b = MIN(stop, rend);
                int r = g->sink(i, g->got[i], data + (want - off), (size_t) (b - want), g->userdata);
                if (r < 0)
                        return r;
                g->got[i] += b - want;
                g->delivered += b - want;
        }
        return 0;
}

static int part_line(Ranges *g) {
        char *l = g->line;
        size_t n = g->line_len;

        while (n > 0 && (l[n - 1] == '\n' || l[n - 1] == '\r'))
                n--;
        l[n] = '\0';
        g->line_len = 0;

        if (g->state == PART_BOUNDARY) {
                if (l[0] == '-' && l[1] == '-' && strncmp(l + 2, g->boundary, strlen(g->boundary)) == 0) {
                        const char *rest = l + 2 + strlen(g->boundary);
                        if (streq(rest, "--"))
                                g->state = PART_END;
                        else if (rest[0] == '\0') {
                                g->state = PART_HEADERS;
                                g->part_has_range = false;
                        }
                }
                return 0; /* preamble and the CRLF before a boundary */
        }
        /* PART_HEADERS */
        if (n == 0) {
                if (!g->part_has_range)
                        return error_set_first(g->ret_error, -ECOMM, "downloading %s failed: a part of the multipart answer has no Content-Range",
                                    g->o->url);
                g->state = PART_DATA;
                return 0;
        }
        char *colon = strchr(l, ':');
        if (colon && (size_t) (colon - l) == strlen("Content-Range") && strncasecmp(l, "Content-Range", 13) == 0) {
                const char *v = colon + 1 + strspn(colon + 1, " \t");
                int r = parse_content_range(g, v);
                if (r == -ESTALE)
                        return error_set_first(g->ret_error, r, "downloading %s failed: the file on the server has %" PRIu64 " bytes, not %" PRIu64 ": it was truncated or replaced",
                                    g->o->url, g->seen_total, g->total);
                if (r < 0)
                        return error_set_first(g->ret_error, -ECOMM, "downloading %s failed: a malformed Content-Range in a multipart part",
                                    g->o->url);
                g->part_has_range = true;
        }
        return 0;
}

static int multipart_feed(Ranges *g, const uint8_t *p, size_t len) {
        while (len > 0) {
                if (g->state == PART_END)
                        return 0;
                if (g->state == PART_DATA) {
                        size_t take = (size_t) MIN((uint64_t) len, g->end - g->pos);
                        int r = deliver(g, g->pos, p, take);
                        if (r < 0)
                                return r;
                        g->pos += take;
                        p += take;
                        len -= take;
                        if (g->pos == g->end)
                                g->state = PART_BOUNDARY;
                        continue;
                }
                const uint8_t *nl = memchr(p, '\n', len);
                size_t take = nl ? (size_t) (nl - p) + 1 : len;
                if (g->line_len + take >= sizeof(g->line))
                        return error_set_first(g->ret_error, -ECOMM, "downloading %s failed: a malformed multipart answer", g->o->url);
                memcpy(g->line + g->line_len, p, take);
                g->line_len += take;
                p += take;
                len -= take;
                if (nl) {
                        int r = part_line(g);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *userdata) {
        Ranges *g = userdata;
        size_t len = size * nitems, l = len;
        char line[512];

        if (cancelled(g)) {
                g->error = -ECANCELED;
                return 0;
        }
        while (l > 0 && (buf[l - 1] == '\n' || buf[l - 1] == '\r'))
                l--;
        if (l >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
                const char *p;
                uint64_t code;

                response_reset(g);
                snprintf(line, sizeof(line), "%.*s", (int) MIN(l, sizeof(line) - 1), buf);
                p = strchr(line, ' ');
                if (p && (p++, fetch_parse_u64(&p, &code) >= 0) && code < 1000)
                        g->status = (long) code;
                return len;
        }
        if (g->headers_done)
                return len;
        if (l == 0) {
                g->headers_done = true;
                if (g->status == 200) {
                        /* The whole file: stop before it comes. */
                        g->error = -ERANGE;
                        return 0;
                }
                if (g->status != 206)
                        return len;
                if (!g->multipart && !g->have_range) {
                        g->error = error_set_first(g->ret_error, -ECOMM, "downloading %s failed: HTTP 206 without a valid Content-Range",
                                        g->o->url);
                        return 0;
                }
                g->body_ok = true;
                return len;
        }
        if (l >= sizeof(line))
                return len;
        memcpy(line, buf, l);
        line[l] = '\0';
        char *colon = strchr(line, ':');
        if (!colon)
                return len;
        *colon = '\0';
        char *v = colon + 1;
        v += strspn(v, " \t");

        if (strcasecmp(line, "Content-Range") == 0) {
                int r = parse_content_range(g, v);
                if (r == -ESTALE) {
                        g->error = error_set_first(g->ret_error, r, "downloading %s failed: the file on the server has %" PRIu64 " bytes, not %" PRIu64 ": it was truncated or replaced",
                                        g->o->url, g->seen_total, g->total);
                        return 0;
                }
                g->have_range = r >= 0;
        } else if (strcasecmp(line, "Content-Type") == 0 && strncasecmp(v, "multipart/byteranges", 20) == 0) {
                if (parse_boundary(g, v) < 0) {
                        g->error = error_set_first(g->ret_error, -ECOMM, "downloading %s failed: a multipart answer without a usable boundary",
                                        g->o->url);
                        return 0;
                }
                g->multipart = true;
        } else if (strcasecmp(line, "Retry-After") == 0) {
                const char *p = v;
                uint64_t s;
                if (fetch_parse_u64(&p, &s) >= 0)
                        g->retry_after = (unsigned) MIN(s, (uint64_t) RETRY_AFTER_MAX_SEC);
        }
        return len;
}

static size_t write_cb(char *data, size_t size, size_t nitems, void *userdata) {
        Ranges *g = userdata;
        size_t len = size * nitems;
        int r;

        if (cancelled(g)) {
                g->error = -ECANCELED;
                return 0;
        }
        if (!g->body_ok)
                return len;
        if (g->multipart)
                r = multipart_feed(g, (const uint8_t *) data, len);
        else {
                if ((uint64_t) len > g->end - g->pos) {
                        g->error = error_set_first(g->ret_error, -ECOMM, "downloading %s failed: the server sent more than the range it announced",
                                        g->o->url);
                        return 0;
                }
                r = deliver(g, g->pos, (const uint8_t *) data, len);
                g->pos += len;
        }
        if (r < 0) {
                g->error = r;
                return 0;
        }
        return len;
}

/* "a-b,c-d,..." for up to 'max' of the ranges still missing, from *next on. */
static int range_header(const Ranges *g, size_t *next, size_t max, char **ret) {
        size_t cap = 64 + max * 42, len = 0, count = 0;
        char *s = malloc(cap);

        if (!s)
                return -ENOMEM;
        s[0] = '\0';
        for (; *next < g->n && count < max; (*next)++) {
                const FetchRange *r = &g->r[*next];
                if (g->got[*next] >= r->length)
                        continue;
                len += (size_t) snprintf(s + len, cap - len, "%s%" PRIu64 "-%" PRIu64, count ? "," : "",
                                         r->start + g->got[*next], r->start + r->length - 1);
                count++;
        }
        *ret = s;
        return (int) count;
}

static bool all_done(const Ranges *g) {
        for (size_t i = 0; i < g->n; i++)
                if (g->got[i] < g->r[i].length)
                        return false;
        return true;
}

typedef enum Verdict { VERDICT_OK, VERDICT_RETRY, VERDICT_FAIL } Verdict;

static Verdict judge(Ranges *g, CURLcode c, const char *errbuf, int *ret_r, char *why, size_t why_size) {
        const char *url = g->o->url;
        const char *msg = errbuf[0] ? errbuf : curl_easy_strerror(c);

        if (g->error < 0) {
                *ret_r = g->error;
                if (g->error == -ECANCELED)
                        (void) error_set_first(g->ret_error, -ECANCELED, "downloading %s was cancelled", url);
                return VERDICT_FAIL;
        }
        if (g->status >= 400) {
                long s = g->status;
                if (s == 404 || s == 410)
                        *ret_r = error_set_first(g->ret_error, -ENOENT, "downloading %s failed: HTTP %ld (not found)", url, s);
                else if (s == 401 || s == 403)
                        *ret_r = error_set_first(g->ret_error, -EACCES, "downloading %s failed: HTTP %ld (access denied)", url, s);
                else if (s == 416)
                        *ret_r = error_set_first(g->ret_error, -ESTALE, "downloading %s failed: HTTP 416, the file on the server is shorter than expected",
                                      url);
                else if (s == 408 || s == 429 || s >= 500) {
                        *ret_r = -ECOMM;
                        snprintf(why, why_size, "HTTP %ld", s);
                        return VERDICT_RETRY;
                } else
                        *ret_r = error_set_first(g->ret_error, -ECOMM, "downloading %s failed: HTTP %ld", url, s);
                return VERDICT_FAIL;
        }
        if (c != CURLE_OK) {
                if (fetch_curl_code_is_tls(c) || c == CURLE_UNSUPPORTED_PROTOCOL) {
                        *ret_r = error_set_first(g->ret_error, -EPROTO, "downloading %s failed: %s", url, msg);
                        return VERDICT_FAIL;
                }
                switch (c) {
                case CURLE_OUT_OF_MEMORY:
                        *ret_r = -ENOMEM;
                        return VERDICT_FAIL;
                case CURLE_URL_MALFORMAT:
                        *ret_r = error_set_first(g->ret_error, -EINVAL, "cannot download %s: %s", url, msg);
                        return VERDICT_FAIL;
                default:
                        *ret_r = c == CURLE_PARTIAL_FILE ? -ENODATA : -ECOMM;
                        snprintf(why, why_size, "%s", msg);
                        return VERDICT_RETRY;
                }
        }
        if (g->status != 206) {
                *ret_r = error_set_first(g->ret_error, -ECOMM, "downloading %s failed: unexpected HTTP status %ld", url, g->status);
                return VERDICT_FAIL;
        }
        return VERDICT_OK;
}

int fetch_ranges(const FetchOptions *o, const FetchRange *ranges, size_t n, bool multi, uint64_t total,
                 FetchRangeSink sink, void *userdata, char **ret_error) {
        _cleanup_(fetch_curl_cleanupp) CURL *curl = NULL;
        _cleanup_free_ uint64_t *got = NULL;
        char errbuf[CURL_ERROR_SIZE], why[CURL_ERROR_SIZE + 64] = "";
        unsigned failures = 0;
        int r;

        if (!o || !sink || (n > 0 && !ranges))
                return -EINVAL;
        r = fetch_check_options(o, ret_error);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (ranges[i].length == 0 || ranges[i].start > UINT64_MAX - ranges[i].length ||
                    (i > 0 && ranges[i].start < ranges[i - 1].start + ranges[i - 1].length) ||
                    (total > 0 && ranges[i].start + ranges[i].length > total))
                        return error_set_first(ret_error, -EINVAL, "cannot download %s: the ranges are not sorted, disjoint and inside the file",
                                    o->url);
        if (n == 0)
                return 0;
        got = calloc(n, sizeof(uint64_t));
        if (!got)
                return -ENOMEM;

        Ranges g = {
                .o = o, .r = ranges, .n = n, .got = got, .total = total,
                .sink = sink, .userdata = userdata, .ret_error = ret_error,
        };
        curl = curl_easy_init();
        if (!curl)
                return -ENOMEM;
        r = fetch_setup_common(curl, o, errbuf);
        if (r >= 0 && (curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, header_cb) != CURLE_OK ||
                       curl_easy_setopt(curl, CURLOPT_HEADERDATA, &g) != CURLE_OK ||
                       curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK ||
                       curl_easy_setopt(curl, CURLOPT_WRITEDATA, &g) != CURLE_OK))
                r = -EINVAL;
        if (r < 0)
                return error_set_first(ret_error, r, "cannot download %s: libcurl refused an option", o->url);

        for (unsigned attempt = 1;;) {
                size_t next = 0;
                bool retry = false;
                int err = 0;

                g.delivered = 0;
                /* One pass over what is missing, a request at a time. */
                while (!retry) {
                        _cleanup_free_ char *hdr = NULL;
                        int count = range_header(&g, &next, multi ? FETCH_RANGES_PER_REQUEST : 1, &hdr);
                        if (count < 0)
                                return count;
                        if (count == 0)
                                break;
                        if (cancelled(&g))
                                return error_set_first(ret_error, -ECANCELED, "downloading %s was cancelled", o->url);
                        response_reset(&g);
                        g.error = 0;
                        errbuf[0] = '\0';
                        if (curl_easy_setopt(curl, CURLOPT_RANGE, hdr) != CURLE_OK)
                                return -EINVAL;
                        CURLcode c = curl_easy_perform(curl);
                        switch (judge(&g, c, errbuf, &err, why, sizeof(why))) {
                        case VERDICT_FAIL:
                                return err;
                        case VERDICT_RETRY:
                                retry = true;
                                break;
                        case VERDICT_OK:
                                break;
                        }
                }
                if (all_done(&g))
                        return 0;
                /* Some servers serve only the first of several ranges:
                 * a pass that brought bytes without a failure goes on
                 * at once with what is left. */
                if (!retry && g.delivered > 0)
                        continue;
                if (!retry) {
                        /* Every request succeeded and still bytes are
                         * missing: the server left some ranges out. */
                        err = -ENODATA;
                        snprintf(why, sizeof(why), "the server's answers left out some of the ranges asked for");
                }
                if (g.delivered >= PROGRESS_RESETS_RETRIES)
                        failures = 0;
                if (failures >= o->max_retries)
                        return error_set_first(ret_error, err, "downloading %s failed: %s (%u attempt%s)", o->url, why, attempt,
                                    attempt == 1 ? "" : "s");
                unsigned msec = g.retry_after > 0 ? g.retry_after * 1000U
                                                  : MIN((unsigned) BACKOFF_FIRST_MSEC << MIN(failures, 5u),
                                                        (unsigned) BACKOFF_MAX_MSEC);
                r = fetch_sleep(o->cancel, msec);
                if (r < 0)
                        return error_set_first(ret_error, r, "downloading %s was cancelled", o->url);
                failures++;
                attempt++;
        }
}
