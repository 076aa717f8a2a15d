/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "agent-client.h"

struct AgentClient {
        CURL *curl;
        struct curl_slist *headers;
        char *socket_path;
        long timeout;
        bool curl_initialized;
        bool unreachable;
        char errbuf[CURL_ERROR_SIZE];
        char error[CURL_ERROR_SIZE + 128];
};

typedef struct Buffer {
        char *data;
        size_t size;
        bool overflow;
} Buffer;

void agent_response_done(AgentResponse *r) {
        if (!r)
                return;
        free(r->raw);
        json_decref(r->body);
        *r = (AgentResponse) {};
}

AgentClient *agent_client_free(AgentClient *c) {
        if (!c)
                return NULL;
        if (c->curl)
                curl_easy_cleanup(c->curl);
        curl_slist_free_all(c->headers);
        if (c->curl_initialized)
                curl_global_cleanup();
        free(c->socket_path);
        free(c);
        return NULL;
}

int agent_client_new(const char *socket_path, AgentClient **ret) {
        _cleanup_(agent_client_freep) AgentClient *c = NULL;
        struct curl_slist *l;

        c = calloc(1, sizeof(AgentClient));
        if (!c)
                return -ENOMEM;
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return -EIO;
        c->curl_initialized = true;
        c->timeout = 300;
        c->socket_path = strdup(socket_path);
        if (!c->socket_path)
                return -ENOMEM;
        c->curl = curl_easy_init();
        if (!c->curl)
                return -ENOMEM;

        /* "Expect:" turns off curl's 100-continue dance for larger bodies,
         * which would only add a round trip on a local socket. */
        static const char *const headers[] = {
                "Content-Type: application/json",
                "Accept: application/json",
                "Expect:",
        };
        for (size_t i = 0; i < ELEMENTSOF(headers); i++) {
                l = curl_slist_append(c->headers, headers[i]);
                if (!l)
                        return -ENOMEM;
                c->headers = l;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

void agent_client_set_timeout(AgentClient *c, long seconds) {
        c->timeout = seconds;
}

bool agent_client_unreachable(const AgentClient *c) {
        return c->unreachable;
}

const char *agent_client_error(const AgentClient *c) {
        return c->error;
}

const char *agent_client_socket(const AgentClient *c) {
        return c->socket_path;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
        Buffer *b = userdata;
        size_t n = size * nmemb;

        if (n > AGENT_BODY_MAX - b->size) {
                b->overflow = true;
                return 0; /* makes curl fail with CURLE_WRITE_ERROR */
        }
        char *d = realloc(b->data, b->size + n + 1);
        if (!d)
                return 0;
        memcpy(d + b->size, ptr, n);
        b->data = d;
        b->size += n;
        b->data[b->size] = '\0';
        return n;
}

static int setup(AgentClient *c, const char *method, const char *url, const char *body, Buffer *buf) {
        CURL *h = c->curl;
        bool ok = true;

        curl_easy_reset(h);
        ok = ok && curl_easy_setopt(h, CURLOPT_URL, url) == CURLE_OK;
        ok = ok && curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->socket_path) == CURLE_OK;
        /* An http_proxy in the environment must not reroute a local call. */
        ok = ok && curl_easy_setopt(h, CURLOPT_PROXY, "") == CURLE_OK;
        ok = ok && curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http") == CURLE_OK;
        ok = ok && curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
        ok = ok && curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L) == CURLE_OK;
        ok = ok && curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout) == CURLE_OK;
        ok = ok && curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers) == CURLE_OK;
        ok = ok && curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf) == CURLE_OK;
        ok = ok && curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb) == CURLE_OK;
        ok = ok && curl_easy_setopt(h, CURLOPT_WRITEDATA, buf) == CURLE_OK;
        ok = ok && curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) AGENT_BODY_MAX) == CURLE_OK;

        if (streq(method, "GET"))
                ok = ok && curl_easy_setopt(h, CURLOPT_HTTPGET, 1L) == CURLE_OK;
        else {
                ok = ok && curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ?: "") == CURLE_OK;
                ok = ok && curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                                            (curl_off_t) (body ? strlen(body) : 0)) == CURLE_OK;
                if (!streq(method, "POST"))
                        ok = ok && curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK;
        }
        return ok ? 0 : -EIO;
}

int agent_client_call(AgentClient *c, const char *method, const char *path, json_t *body, AgentResponse *ret) {
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ char *url = NULL;
        Buffer buf = {};
        CURLcode cc;
        long status = 0;
        int r;

        c->unreachable = false;
        c->error[0] = c->errbuf[0] = '\0';

        /* curl would report an over-long path as a resolver failure; say what
         * it is instead. */
        if (strlen(c->socket_path) >= sizeof(((struct sockaddr_un *) NULL)->sun_path)) {
                c->unreachable = true;
                (void) snprintf(c->error, sizeof(c->error), "%s", strerror(ENAMETOOLONG));
                return -ENAMETOOLONG;
        }

        if (body) {
                text = json_dumps(body, JSON_COMPACT);
                if (!text)
                        return -ENOMEM;
        }
        if (asprintf(&url, "http://localhost%s", path) < 0) {
                url = NULL;
                return -ENOMEM;
        }
        r = setup(c, method, url, text, &buf);
        if (r < 0) {
                (void) snprintf(c->error, sizeof(c->error), "cannot set up the HTTP request");
                return r;
        }

        cc = curl_easy_perform(c->curl);
        if (cc != CURLE_OK) {
                long os_errno = 0;

                if (buf.overflow || cc == CURLE_FILESIZE_EXCEEDED) {
                        r = -E2BIG;
                        (void) snprintf(c->error, sizeof(c->error), "response body larger than %u MiB",
                                        AGENT_BODY_MAX >> 20);
                } else if (cc == CURLE_COULDNT_CONNECT) {
                        (void) curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
                        c->unreachable = true;
                        r = os_errno > 0 ? (int) -os_errno : -ECONNREFUSED;
                        (void) snprintf(c->error, sizeof(c->error), "%s",
                                        os_errno > 0 ? strerror((int) os_errno)
                                                     : (c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc)));
                } else if (cc == CURLE_OUT_OF_MEMORY) {
                        r = -ENOMEM;
                        (void) snprintf(c->error, sizeof(c->error), "%s", strerror(ENOMEM));
                } else {
                        r = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
                        (void) snprintf(c->error, sizeof(c->error), "%s",
                                        c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
                }
                free(buf.data);
                return r;
        }
        (void) curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);

        AgentResponse resp = {
                .status = status,
                .raw = buf.data ?: strdup(""),
                .raw_size = buf.size,
        };
        if (!resp.raw)
                return -ENOMEM;
        if (resp.raw_size > 0) {
                json_error_t e;
                resp.body = json_loadb(resp.raw, resp.raw_size, JSON_DECODE_ANY, &e);
                if (!resp.body) {
                        (void) snprintf(c->error, sizeof(c->error),
                                        "hull-agent sent a response that is not JSON (HTTP %ld): %s", status, e.text);
                        agent_response_done(&resp);
                        return -EBADMSG;
                }
        }
        *ret = resp;
        return 0;
}

void agent_response_error(const AgentResponse *r, const char **ret_code, const char **ret_message) {
        json_t *e = json_is_object(r->body) ? json_object_get(r->body, "error") : NULL;

        const char *code, *message;

        /* Tolerate {"error": "text"} as well as the documented object. */
        if (json_is_string(e)) {
                code = NULL;
                message = json_string_value(e);
        } else {
                code = json_string_value(json_object_get(e, "code"));
                message = json_string_value(json_object_get(e, "message"));
        }
        if (ret_code)
                *ret_code = code;
        if (ret_message)
                *ret_message = message;
}
