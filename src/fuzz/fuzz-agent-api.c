/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Every api_parse_*() on arbitrary bytes. A refusal must come with a
 * message and leave *ret alone; what is accepted must meet the documented
 * rules, and a stage request written back as JSON must parse to the same
 * request (the agent persists and re-reads what it was asked). Every
 * message must make a valid error document. Any violation aborts. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent-api.h"
#include "bootcount.h"
#include "fuzz.h"
#include "strutil.h"

static bool hex_lower(const char *s, size_t len) {
        if (strlen(s) != len)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

static bool control_free(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

static bool path_ok(const char *p) {
        return p[0] == '/' && strlen(p) <= API_PATH_MAX && control_free(p) && !strstr(p, "//") &&
               !strstr(p, "/./") && !strstr(p, "/../") && p[strlen(p) - 1] != '/' &&
               !(strlen(p) >= 2 && streq(p + strlen(p) - 2, "/.")) &&
               !(strlen(p) >= 3 && streq(p + strlen(p) - 3, "/.."));
}

/* A refusal: the right errors, a message, ret untouched; the message makes
 * a valid, single-line error document. */
static void check_refusal(int r, char *err, const void *ret, const void *before, size_t size) {
        if (r != -EBADMSG && r != -E2BIG && r != -ENOMEM)
                abort();
        if (memcmp(ret, before, size) != 0)
                abort();
        if (r != -ENOMEM && !err)
                abort();
        if (err) {
                _cleanup_free_ char *doc = NULL;
                if (api_format_error(api_error_code_from_errno(r), err, r, &doc) < 0)
                        abort();
                if (strchr(doc, '\n'))
                        abort();
                json_t *j = json_loads(doc, 0, NULL);
                if (!json_is_object(j))
                        abort();
                json_decref(j);
        }
}

static void set_if(json_t *j, const char *key, const char *s) {
        if (s && json_object_set_new(j, key, json_string(s)) < 0)
                abort();
}

static void check_stage(const char *data, size_t size) {
        StageRequest req, before, again;
        _cleanup_free_ char *err = NULL, *err2 = NULL, *back = NULL;

        memset(&req, 0x5a, sizeof(req));
        before = req;
        int r = api_parse_stage(data, size, &req, &err);
        if (r < 0) {
                check_refusal(r, err, &req, &before, sizeof(req));
                return;
        }
        if (err || !req.source)
                abort();
        bool https = string_has_prefix(req.source, "https://");
        if (https) {
                if (strlen(req.source) > API_URL_MAX || !control_free(req.source) || strchr(req.source, ' '))
                        abort();
        } else if (!path_ok(req.source))
                abort();
        if (req.sha256 && !hex_lower(req.sha256, 64))
                abort();
        if (req.key_id && !hex_lower(req.key_id, 16))
                abort();
        if (req.version && (strlen(req.version) < 1 || strlen(req.version) > API_VERSION_MAX ||
                            !string_is_safe_token(req.version, "._+~-")))
                abort();
        if ((req.ca_file || req.client_cert || req.client_key) && !https)
                abort();
        if (!req.client_cert != !req.client_key)
                abort();
        const char *tls[] = { req.ca_file, req.client_cert, req.client_key };
        for (size_t i = 0; i < ELEMENTSOF(tls); i++)
                if (tls[i] && !path_ok(tls[i]))
                        abort();

        /* Written back, it parses to the same thing. */
        json_t *j = json_object();
        if (!j)
                abort();
        set_if(j, "source", req.source);
        set_if(j, "sha256", req.sha256);
        set_if(j, "version", req.version);
        set_if(j, "key_id", req.key_id);
        set_if(j, "ca_file", req.ca_file);
        set_if(j, "client_cert", req.client_cert);
        set_if(j, "client_key", req.client_key);
        back = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (!back)
                abort();
        if (api_parse_stage(back, strlen(back), &again, &err2) < 0)
                abort();
        const char *a[] = { req.source, req.sha256, req.version, req.key_id, req.ca_file, req.client_cert,
                            req.client_key };
        const char *b[] = { again.source, again.sha256, again.version, again.key_id, again.ca_file,
                            again.client_cert, again.client_key };
        for (size_t i = 0; i < ELEMENTSOF(a); i++)
                if (!a[i] != !b[i] || (a[i] && !streq(a[i], b[i])))
                        abort();
        stage_request_done(&again);
        stage_request_done(&req);
}

static void check_activate(const char *data, size_t size) {
        ActivateRequest req, before;
        _cleanup_free_ char *err = NULL;

        memset(&req, 0x5a, sizeof(req));
        before = req;
        int r = api_parse_activate(data, size, &req, &err);
        if (r < 0) {
                check_refusal(r, err, &req, &before, sizeof(req));
                return;
        }
        if (err || req.tries > BOOT_TRIES_MAX)
                abort();
}

static void check_rollback(const char *data, size_t size) {
        RollbackRequest req, before;
        _cleanup_free_ char *err = NULL;

        memset(&req, 0x5a, sizeof(req));
        before = req;
        int r = api_parse_rollback(data, size, &req, &err);
        if (r < 0)
                check_refusal(r, err, &req, &before, sizeof(req));
        else if (err)
                abort();
}

/* reboot takes no fields: accepted means empty or "{}" (with whitespace). */
static void check_reboot(const char *data, size_t size) {
        _cleanup_free_ char *err = NULL;
        int r = api_parse_reboot(data, size, &err);
        if (r < 0) {
                int dummy = 0, before = 0;
                check_refusal(r, err, &dummy, &before, sizeof(dummy));
                return;
        }
        if (err)
                abort();
        if (size > 0) {
                json_t *j = json_loadb(data, size, 0, NULL);
                if (!json_is_object(j) || json_object_size(j) != 0)
                        abort();
                json_decref(j);
        }
}

static void check_mark_good(const char *data, size_t size) {
        MarkGoodRequest req, before;
        _cleanup_free_ char *err = NULL;

        memset(&req, 0x5a, sizeof(req));
        before = req;
        int r = api_parse_mark_good(data, size, &req, &err);
        if (r < 0)
                check_refusal(r, err, &req, &before, sizeof(req));
        else if (err)
                abort();
}

static void check_debug(const char *data, size_t size) {
        DebugRequest req, before;
        _cleanup_free_ char *err = NULL;

        memset(&req, 0x5a, sizeof(req));
        before = req;
        int r = api_parse_debug(data, size, &req, &err);
        if (r < 0) {
                check_refusal(r, err, &req, &before, sizeof(req));
                return;
        }
        if (err)
                abort();
        if (req.command) {
                size_t n = strv_length(req.command);
                if (n < 1 || n > API_COMMAND_ARGS_MAX)
                        abort();
                for (size_t i = 0; i < n; i++)
                        if (strlen(req.command[i]) < 1 || strlen(req.command[i]) > API_COMMAND_ARG_MAX)
                                abort();
        }
        debug_request_done(&req);
}

static void check_hook(const char *data, size_t size) {
        HookRequest req, before, again;
        _cleanup_free_ char *err = NULL, *err2 = NULL, *back = NULL;

        memset(&req, 0x5a, sizeof(req));
        before = req;
        int r = api_parse_hook(data, size, &req, &err);
        if (r < 0) {
                check_refusal(r, err, &req, &before, sizeof(req));
                return;
        }
        if (err || !req.name || !req.stage)
                abort();
        /* A plain file name: never a path, never hidden. */
        if (!api_hook_name_is_valid(req.name) || strchr(req.name, '/') || req.name[0] == '.' ||
            strlen(req.name) > API_HOOK_NAME_MAX)
                abort();
        if (!streq(req.stage, "pre-drain") && !streq(req.stage, "post-boot") && !streq(req.stage, "manual"))
                abort();
        if (req.timeout_sec < 1 || req.timeout_sec > API_HOOK_TIMEOUT_MAX)
                abort();
        if (req.task && (strlen(req.task) < 1 || strlen(req.task) > API_HOOK_TASK_MAX || !control_free(req.task)))
                abort();

        /* Written back, it parses to the same thing. */
        json_t *j = json_pack("{s:s, s:s, s:I}", "name", req.name, "stage", req.stage, "timeout_seconds",
                              (json_int_t) req.timeout_sec);
        if (!j)
                abort();
        set_if(j, "task", req.task);
        back = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (!back)
                abort();
        if (api_parse_hook(back, strlen(back), &again, &err2) < 0)
                abort();
        if (!streq(req.name, again.name) || !streq(req.stage, again.stage) || req.timeout_sec != again.timeout_sec ||
            !req.task != !again.task || (req.task && !streq(req.task, again.task)))
                abort();
        hook_request_done(&again);
        hook_request_done(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *d = data ? (const char *) data : "";

        check_stage(d, size);
        check_activate(d, size);
        check_rollback(d, size);
        check_reboot(d, size);
        check_mark_good(d, size);
        check_debug(d, size);
        check_hook(d, size);

        /* The sanitiser takes anything (up to a NUL) and jansson takes what
         * it makes of it. */
        _cleanup_free_ char *copy = malloc(size + 1), *clean = NULL;
        if (!copy)
                return 0;
        memcpy(copy, d, size);
        copy[size] = '\0';
        clean = api_utf8_sanitize(copy, size > 0 ? (unsigned char) copy[0] : 0);
        if (!clean)
                abort();
        json_t *j = json_string(clean);
        if (!j)
                abort();
        json_decref(j);
        _cleanup_free_ char *all = api_utf8_sanitize(copy, SIZE_MAX);
        if (!all || !(j = json_string(all)))
                abort();
        json_decref(j);
        return 0;
}
