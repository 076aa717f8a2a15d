/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hullctl: the operator's command line on the node (man/hullctl.1). A thin
 * client of hull-agent's API (docs/AGENT-API.md): every decision is the
 * agent's, so that the CLI, the operator and any other client get the same
 * checks and the same audit record. */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "agent-client.h"
#include "ctl-cluster.h"
#include "ctl-format.h"
#include "ctl-tty.h"
#include "fileio.h"
#include "log.h"
#include "strutil.h"
#include "yaml-json.h"

#ifndef HULL_VERSION
#define HULL_VERSION "unknown"
#endif

/* The agent refuses request bodies over 1 MiB (413); refusing a bigger file
 * here gives the better message. */
#define CONFIG_FILE_MAX (1024U * 1024U)

#define POLL_INTERVAL_NS 500000000L
/* The agent restarting under a running operation (it persists operations)
 * should not fail the wait at once: retry the socket for this many polls. */
#define POLL_UNREACHABLE_MAX 20

#define EXIT_USAGE 2

static const char *arg_socket = NULL;
static bool arg_json = false;
static const char *arg_sha256 = NULL;
static const char *arg_image_version = NULL;
static const char *arg_key_id = NULL;
static const char *arg_ca_file = NULL;
static const char *arg_client_cert = NULL;
static const char *arg_client_key = NULL;
static bool arg_no_wait = false;
static unsigned arg_tries = 0; /* 0: the image's default */
static bool arg_no_reboot = false;
static bool arg_force = false;
static unsigned arg_limit = 0; /* 0: the agent's default */
static const char *arg_hook_stage = NULL;
static unsigned arg_hook_timeout = 0; /* 0: the agent's default */
static const char *arg_hook_task = NULL;

static void help(void) {
        printf("hullctl — control hull-agent on this node\n\n"
               "Usage:\n"
               "  hullctl [OPTIONS] status\n"
               "  hullctl [OPTIONS] stage SOURCE [--sha256 HEX] [--version V] [--key-id ID]\n"
               "                    [--ca-file F] [--client-cert F --client-key F] [--no-wait]\n"
               "                    SOURCE: a bundle file, an https:// URL, or\n"
               "                    oci://HOST/REPO@sha256:D (a registry; docs/OCI.md)\n"
               "  hullctl [OPTIONS] activate [--tries N] [--no-reboot]\n"
               "  hullctl [OPTIONS] rollback [--no-reboot]\n"
               "  hullctl [OPTIONS] mark-good [--force]\n"
               "  hullctl [OPTIONS] reboot                  (e.g. for new kernel arguments)\n"
               "  hullctl [OPTIONS] config apply FILE.yaml|FILE.json\n"
               "  hullctl [OPTIONS] config show\n"
               "  hullctl [OPTIONS] debug [-- COMMAND...]   (no command: interactive shell)\n"
               "  hullctl [OPTIONS] audit [--limit N]\n"
               "  hullctl [OPTIONS] hook run NAME [--stage S] [--timeout SEC] [--task T]\n"
               "                    run a node hook (hooks.d) and print its output\n"
               "  hullctl cluster ...                       the fleet through Kubernetes\n"
               "                                            (see 'hullctl cluster --help')\n\n"
               "Options:\n"
               "      --socket PATH      hull-agent's socket (default: $HULL_AGENT_SOCKET or\n"
               "                         " AGENT_DEFAULT_SOCKET ")\n"
               "      --json             print the agent's JSON answers instead of text\n"
               "  -h, --help             this help\n"
               "      --version          print hullctl's version\n\n"
               "Stage options:\n"
               "      --sha256 HEX       SHA-256 of the whole bundle file\n"
               "      --version V        the bundle's image version must be V\n"
               "      --key-id ID        the bundle must be signed by this key\n"
               "      --ca-file F        CA certificates for an https SOURCE\n"
               "      --client-cert F, --client-key F\n"
               "                         client certificate and key for an https SOURCE\n"
               "      --no-wait          return once the agent accepted the operation\n\n"
               "Hook options:\n"
               "      --stage S          pre-drain, post-boot or manual (default)\n"
               "      --timeout SEC      1 to 86400 (default 300)\n"
               "      --task T           passed to the hook as HULL_HOOK_TASK\n\n"
               "SOURCE is an http(s) URL or a bundle file on this node. Exit status: 0 on\n"
               "success, 1 when the agent or the operation failed, 2 for bad usage.\n"
               "See hullctl(1) and docs/AGENT-API.md.\n");
}

/* ---- talking to the agent ---------------------------------------------- */

static void print_raw(const AgentResponse *resp) {
        (void) fputs(resp->raw, stdout);
        if (resp->raw_size == 0 || resp->raw[resp->raw_size - 1] != '\n')
                (void) fputc('\n', stdout);
}

static int status_to_errno(long status) {
        switch (status) {
        case 400:
        case 413:
        case 422:
                return -EINVAL;
        case 401:
        case 403:
                return -EACCES;
        case 404:
                return -ENOENT;
        case 405:
                return -EOPNOTSUPP;
        case 409:
                return -EBUSY;
        default:
                return status >= 500 ? -EAGAIN : -EPROTO;
        }
}

static int log_unreachable(AgentClient *c, int r) {
        return log_error_errno(r, "cannot reach hull-agent at %s: %s (is hull-agent running? are you root or in its group?)",
                               agent_client_socket(c), agent_client_error(c));
}

static int log_api_error(const AgentResponse *resp, const char *verb) {
        const char *code, *message;
        int r = status_to_errno(resp->status);

        agent_response_error(resp, &code, &message);
        if (message)
                (void) log_error_errno(r, "%s (%s)", message, code ?: "no code");
        else
                (void) log_error_errno(r, "hull-agent answered HTTP %ld without an error message", resp->status);

        if (resp->status == 403) {
                if (streq(verb, "debug"))
                        log_error("hint: debug access needs root or hull-agent's socket group, and must be enabled in the node config");
                else
                        log_error("hint: hull-agent accepts only root and members of its socket group; try sudo");
        }
        return r;
}

/* A request whose answer is a 2xx: anything else is reported here, once, and
 * turned into a negative errno. */
static int call(AgentClient *c, const char *verb, const char *method, const char *path, json_t *body, AgentResponse *ret) {
        AgentResponse resp = {};
        int r;

        r = agent_client_call(c, method, path, body, &resp);
        if (r < 0 && agent_client_unreachable(c))
                return log_unreachable(c, r);
        if (r < 0)
                return log_error_errno(r, "%s %s failed: %s", method, path, agent_client_error(c));

        if (resp.status < 200 || resp.status > 299) {
                /* Scripts using --json get the error document as well. */
                if (arg_json && resp.body)
                        print_raw(&resp);
                r = log_api_error(&resp, verb);
                agent_response_done(&resp);
                return r;
        }
        *ret = resp;
        return 0;
}

/* ---- waiting for an operation ------------------------------------------ */

static double now_seconds(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void sleep_poll_interval(void) {
        struct timespec ts = { .tv_nsec = POLL_INTERVAL_NS };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static unsigned terminal_width(void) {
        struct winsize ws;
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
                return ws.ws_col;
        return 80;
}

/* Fetch the current operation. GET /v1/operation is the cheap call; the
 * document also allows reading it from /v1/status, which is the fallback
 * when an agent does not serve the former. ret_raw gets the operation as
 * JSON text, for --json. */
static int fetch_operation(AgentClient *c, bool *use_status, json_t **ret, char **ret_raw, unsigned *unreachable) {
        AgentResponse resp = {};
        int r;

        r = agent_client_call(c, "GET", *use_status ? "/v1/status" : "/v1/operation", NULL, &resp);
        if (r < 0 && agent_client_unreachable(c) && ++*unreachable < POLL_UNREACHABLE_MAX)
                return 0; /* try again at the next poll */
        if (r < 0 && agent_client_unreachable(c))
                return log_unreachable(c, r);
        if (r < 0)
                return log_error_errno(r, "Failed to read the operation's progress: %s", agent_client_error(c));
        *unreachable = 0;

        if (resp.status == 404 && !*use_status) {
                agent_response_done(&resp);
                *use_status = true;
                return fetch_operation(c, use_status, ret, ret_raw, unreachable);
        }
        if (resp.status < 200 || resp.status > 299) {
                r = log_api_error(&resp, "status");
                agent_response_done(&resp);
                return r;
        }

        json_t *op = *use_status ? json_object_get(resp.body, "operation") : resp.body;
        if (!json_is_object(op)) {
                agent_response_done(&resp);
                return log_error_errno(EBADMSG, "hull-agent reports no current operation");
        }
        char *raw = *use_status ? json_dumps(op, JSON_INDENT(2)) : strdup(resp.raw);
        if (!raw) {
                agent_response_done(&resp);
                return log_oom();
        }
        json_incref(op);
        agent_response_done(&resp);
        *ret = op;
        *ret_raw = raw;
        return 1;
}

static void print_failed_operation(json_t *op) {
        json_t *error = json_object_get(op, "error");
        const char *type = json_string_value(json_object_get(op, "type")) ?: "operation";
        const char *phase = json_string_value(json_object_get(op, "phase"));
        const char *code = json_string_value(json_object_get(error, "code"));
        const char *message = json_string_value(json_object_get(error, "message"));

        if (json_is_string(error))
                message = json_string_value(error);
        log_error("%s failed%s%s: %s (%s)", type, phase ? " in phase " : "", phase ?: "",
                  message ?: "no message", code ?: "no code");
}

/* Follow the operation the agent accepted (op, from the 202) until it is no
 * longer running: a redrawn progress bar on a terminal, a line per phase
 * otherwise, nothing but the final document with --json. */
static int wait_operation(AgentClient *c, json_t *accepted) {
        json_t *idj = json_object_get(accepted, "id");
        bool have_id = json_is_integer(idj), use_status = false, tty = !arg_json && isatty(STDOUT_FILENO);
        json_int_t id = have_id ? json_integer_value(idj) : 0;
        _cleanup_free_ char *last_phase = NULL, *raw = NULL;
        double rate = 0, prev_time = 0;
        json_int_t prev_done = -1;
        unsigned unreachable = 0;
        json_t *op = NULL;
        int r;

        for (;;) {
                json_decref(op);
                op = NULL;
                free(raw);
                raw = NULL;

                r = fetch_operation(c, &use_status, &op, &raw, &unreachable);
                if (r < 0)
                        goto finish;
                if (r == 0) {
                        sleep_poll_interval();
                        continue;
                }

                json_t *opid = json_object_get(op, "id");
                if (have_id && json_is_integer(opid) && json_integer_value(opid) != id) {
                        r = log_error_errno(ESTALE,
                                            "operation #%" JSON_INTEGER_FORMAT " was replaced by #%" JSON_INTEGER_FORMAT
                                            " before it could be followed; see 'hullctl audit'",
                                            id, json_integer_value(opid));
                        goto finish;
                }

                const char *state = json_string_value(json_object_get(op, "state")) ?: "";
                const char *phase = json_string_value(json_object_get(op, "phase")) ?: "";
                json_t *donej = json_object_get(op, "done");
                json_int_t done = json_is_integer(donej) ? json_integer_value(donej) : -1;
                double t = now_seconds();
                bool phase_changed = !last_phase || !streq(last_phase, phase);

                /* The rate is smoothed over polls and starts over with each
                 * phase, since "done" counts within a phase. */
                if (phase_changed || done < prev_done || prev_done < 0)
                        rate = 0;
                else if (t > prev_time) {
                        double inst = (double) (done - prev_done) / (t - prev_time);
                        rate = rate > 0 ? 0.7 * rate + 0.3 * inst : inst;
                }
                prev_done = done;
                prev_time = t;

                if (streq(state, "running")) {
                        if (tty) {
                                (void) fputc('\r', stdout);
                                ctl_format_progress(op, rate, terminal_width(), stdout);
                                (void) fputs("\033[K", stdout);
                                (void) fflush(stdout);
                        } else if (!arg_json && phase_changed && phase[0]) {
                                const char *type = json_string_value(json_object_get(op, "type")) ?: "operation";
                                if (have_id)
                                        printf("%s #%" JSON_INTEGER_FORMAT ": %s\n", type, id, phase);
                                else
                                        printf("%s: %s\n", type, phase);
                                (void) fflush(stdout);
                        }
                        if (phase_changed) {
                                free(last_phase);
                                last_phase = strdup(phase);
                                if (!last_phase) {
                                        r = log_oom();
                                        goto finish;
                                }
                        }
                        sleep_poll_interval();
                        continue;
                }

                /* Done, one way or the other. */
                if (tty)
                        (void) fputs("\r\033[K", stdout);
                /* What a hook printed comes first, as if it ran here. */
                if (!arg_json)
                        (void) ctl_format_hook_output(op, stdout);
                if (arg_json) {
                        (void) fputs(raw, stdout);
                        if (!raw[0] || raw[strlen(raw) - 1] != '\n')
                                (void) fputc('\n', stdout);
                }
                if (streq(state, "succeeded")) {
                        if (!arg_json)
                                (void) ctl_format_operation(op, 0, stdout);
                        r = 0;
                } else {
                        print_failed_operation(op);
                        r = -EIO;
                }
                goto finish;
        }
finish:
        json_decref(op);
        (void) fflush(stdout);
        return r;
}

/* A POST that may start a background operation: a 202 with an operation
 * object is followed (unless --no-wait), anything else is printed with
 * done_message. Returns 1 if an operation was followed to success. */
static int finish_post(AgentClient *c, AgentResponse *resp, const char *done_message) {
        json_t *op = resp->body;
        bool is_op = resp->status == 202 && json_is_object(op) && json_object_get(op, "state");
        int r;

        if (is_op && !arg_no_wait) {
                r = wait_operation(c, op);
                return r < 0 ? r : 1;
        }

        if (arg_json)
                print_raw(resp);
        else if (is_op) {
                json_t *id = json_object_get(op, "id");
                printf("Started %s", json_string_value(json_object_get(op, "type")) ?: "operation");
                if (json_is_integer(id))
                        printf(" #%" JSON_INTEGER_FORMAT, json_integer_value(id));
                printf("; follow it with 'hullctl status'.\n");
        } else
                printf("%s\n", done_message);
        return 0;
}

/* ---- commands ----------------------------------------------------------- */

static int cmd_status(AgentClient *c, char **args) {
        _cleanup_(agent_response_done) AgentResponse resp = {};
        int r;

        r = call(c, "status", "GET", "/v1/status", NULL, &resp);
        if (r < 0)
                return r;
        if (arg_json || ctl_format_status(resp.body, stdout) < 0)
                print_raw(&resp);
        return 0;
}

static bool is_url(const char *s) {
        return strstr(s, "://") != NULL;
}

static int json_set_string(json_t *o, const char *key, const char *value) {
        if (!value)
                return 0;
        if (json_object_set_new(o, key, json_string(value)) < 0)
                return log_oom();
        return 0;
}

static int cmd_stage(AgentClient *c, char **args) {
        _cleanup_(agent_response_done) AgentResponse resp = {};
        _cleanup_(json_decrefp) json_t *body = json_object();
        _cleanup_free_ char *abs = NULL;
        const char *source = args[0];
        int r;

        if (!body)
                return log_oom();

        /* The agent resolves paths in its own working directory, not ours. */
        if (!is_url(source) && source[0] != '/') {
                abs = realpath(source, NULL);
                if (!abs)
                        return log_error_errno(errno, "Cannot find bundle '%s': %m", source);
                source = abs;
        }

        if ((r = json_set_string(body, "source", source)) < 0 ||
            (r = json_set_string(body, "sha256", arg_sha256)) < 0 ||
            (r = json_set_string(body, "version", arg_image_version)) < 0 ||
            (r = json_set_string(body, "key_id", arg_key_id)) < 0 ||
            (r = json_set_string(body, "ca_file", arg_ca_file)) < 0 ||
            (r = json_set_string(body, "client_cert", arg_client_cert)) < 0 ||
            (r = json_set_string(body, "client_key", arg_client_key)) < 0)
                return r;

        r = call(c, "stage", "POST", "/v1/stage", body, &resp);
        if (r < 0)
                return r;
        r = finish_post(c, &resp, "Staged.");
        if (r > 0 && !arg_json)
                printf("Boot it with 'hullctl activate'.\n");
        return r;
}

/* activate and rollback answer {"operation": {...}, "reboot_required": true,
 * "rebooting": BOOL}, the operation naming the slot that boots next. */
static int print_slot_change(const AgentResponse *resp, const char *done, const char *fallback) {
        json_t *op = json_object_get(resp->body, "operation");
        const char *slot = json_string_value(json_object_get(op, "slot"));
        const char *version = json_string_value(json_object_get(op, "version"));
        json_t *rebooting = json_object_get(resp->body, "rebooting");
        bool reboot = json_is_boolean(rebooting) ? json_is_true(rebooting) : !arg_no_reboot;

        if (arg_json) {
                print_raw(resp);
                return 0;
        }
        if (slot && !isempty(version))
                printf("%s slot %s (version %s)", done, slot, version);
        else if (slot)
                printf("%s slot %s", done, slot);
        else
                printf("%s", fallback);
        printf(reboot ? "; hull-agent is rebooting the node now.\n"
                      : "; it boots at the next reboot (reboot required).\n");
        return 0;
}

static int cmd_activate(AgentClient *c, char **args) {
        _cleanup_(agent_response_done) AgentResponse resp = {};
        _cleanup_(json_decrefp) json_t *body = json_object();
        int r;

        if (!body)
                return log_oom();
        if (arg_tries > 0 && json_object_set_new(body, "tries", json_integer(arg_tries)) < 0)
                return log_oom();
        if (json_object_set_new(body, "reboot", json_boolean(!arg_no_reboot)) < 0)
                return log_oom();

        r = call(c, "activate", "POST", "/v1/activate", body, &resp);
        if (r < 0)
                return r;
        return print_slot_change(&resp, "Activated", "Activated the staged slot");
}

static int cmd_rollback(AgentClient *c, char **args) {
        _cleanup_(agent_response_done) AgentResponse resp = {};
        _cleanup_(json_decrefp) json_t *body = json_pack("{s:b}", "reboot", !arg_no_reboot);
        int r;

        if (!body)
                return log_oom();
        r = call(c, "rollback", "POST", "/v1/rollback", body, &resp);
        if (r < 0)
                return r;
        return print_slot_change(&resp, "Rolled back to", "Rolled back to the other slot");
}

static int cmd_reboot(AgentClient *c, char **args) {
        _cleanup_(agent_response_done) AgentResponse resp = {};
        int r = call(c, "reboot", "POST", "/v1/reboot", NULL, &resp);
        if (r < 0)
                return r;
        if (arg_json)
                print_raw(&resp);
        else
                printf("Rebooting (the audit log has the request).\n");
        return 0;
}

static int cmd_mark_good(AgentClient *c, char **args) {
        _cleanup_(agent_response_done) AgentResponse resp = {};
        _cleanup_(json_decrefp) json_t *body = json_pack("{s:b}", "force", arg_force);
        _cleanup_free_ char *msg = NULL;
        int r;

        if (!body)
                return log_oom();
        r = call(c, "mark-good", "POST", "/v1/mark-good", body, &resp);
        if (r < 0)
                return r;

        /* The health checks run in the background (202 and an operation to
         * follow); --force answers at once with the finished operation. The
         * API text also allows the status' health as the answer. */
        json_t *health = json_object_get(resp.body, "health");
        if (!health && !json_object_get(resp.body, "type"))
                health = resp.body;
        const char *state = json_string_value(json_object_get(health, "state"));
        if (asprintf(&msg, "The booted slot is marked good%s%s%s.", state ? " (health: " : "", state ?: "",
                     state ? ")" : "") < 0)
                return log_oom();
        r = finish_post(c, &resp, msg);
        if (r > 0 && !arg_json)
                printf("The booted slot is marked good.\n");
        return r;
}

/* A config file: JSON if it says so (name or first character), else YAML.
 * JSON goes through jansson for its own error messages. */
static int load_config_file(const char *path, json_t **ret) {
        _cleanup_free_ char *data = NULL, *error = NULL;
        size_t size;
        json_t *doc = NULL;
        int r;

        r = read_full_file(path, CONFIG_FILE_MAX, &data, &size);
        if (r == -E2BIG)
                return log_error_errno(r, "'%s' is larger than %u KiB, hull-agent's limit for a config", path,
                                       CONFIG_FILE_MAX / 1024);
        if (r < 0)
                return log_error_errno(r, "Cannot read '%s': %m", path);

        size_t l = strlen(path), i = 0;
        while (i < size && strchr(" \t\r\n", data[i]))
                i++;
        if ((l >= 5 && streq(path + l - 5, ".json")) || (i < size && data[i] == '{')) {
                json_error_t e;
                doc = json_loadb(data, size, 0, &e);
                if (!doc)
                        return log_error_errno(EBADMSG, "%s:%d:%d: %s", path, e.line, e.column, e.text);
        } else {
                r = yaml_to_json(data, size, &doc, &error);
                if (r == -EBADMSG)
                        return log_error_errno(r, "%s:%s", path, error);
                if (r < 0)
                        return log_error_errno(r, "Failed to convert '%s' to JSON: %m", path);
        }
        if (!json_is_object(doc)) {
                json_decref(doc);
                return log_error_errno(EBADMSG, "%s: a node config must be a mapping (an object) at the top", path);
        }
        *ret = doc;
        return 0;
}

static int cmd_config(AgentClient *c, char **args) {
        _cleanup_(agent_response_done) AgentResponse resp = {};
        int r;

        if (streq(args[0], "show")) {
                r = call(c, "config", "GET", "/v1/config", NULL, &resp);
                if (r < 0)
                        return r;
                _cleanup_free_ char *text = arg_json ? NULL : json_dumps(resp.body, JSON_INDENT(2) | JSON_ENCODE_ANY);
                if (text)
                        printf("%s\n", text);
                else
                        print_raw(&resp);
                return 0;
        }

        _cleanup_(json_decrefp) json_t *doc = NULL;
        r = load_config_file(args[1], &doc);
        if (r < 0)
                return r;
        r = call(c, "config", "POST", "/v1/config", doc, &resp);
        if (r < 0)
                return r;
        if (arg_json) {
                print_raw(&resp);
                return 0;
        }

        json_t *gen = json_object_get(resp.body, "generation");
        json_int_t g = json_is_integer(gen) ? json_integer_value(gen) : -1;
        if (json_is_false(json_object_get(resp.body, "changed")))
                printf("Config generation %" JSON_INTEGER_FORMAT " is already applied; nothing changed.\n", g);
        else
                printf("Config generation %" JSON_INTEGER_FORMAT " applied.\n", g);
        if (json_is_true(json_object_get(resp.body, "reboot_required")))
                printf("A reboot is required for all of it to take effect.\n");
        return 0;
}

static int remote_exit_status = EXIT_SUCCESS;

static int cmd_debug(AgentClient *c, char **args) {
        _cleanup_(agent_response_done) AgentResponse resp = {};
        _cleanup_(json_decrefp) json_t *body = json_object();
        int r;

        if (!body)
                return log_oom();
        if (!args[0]) {
                /* No command: an interactive shell in the admin container. */
                _cleanup_(agent_response_done) AgentResponse tresp = {};
                int status = 255;
                r = ctl_tty_session(agent_client_socket(c), "{}", &tresp, &status);
                if (r < 0)
                        return log_error_errno(r, "cannot reach hull-agent at %s: %m (is hull-agent running? are you root or in its group?)",
                                               agent_client_socket(c));
                if (tresp.status != 101)
                        return log_api_error(&tresp, "debug");
                remote_exit_status = status;
                return 0;
        }
        if (args[0]) {
                json_t *cmd = json_array();
                if (!cmd || json_object_set_new(body, "command", cmd) < 0)
                        return log_oom();
                for (char **a = args; *a; a++)
                        if (json_array_append_new(cmd, json_string(*a)) < 0)
                                return log_oom();
        }

        /* A debug command may take as long as it takes. */
        agent_client_set_timeout(c, 0);
        r = call(c, "debug", "POST", "/v1/debug", body, &resp);
        if (r < 0)
                return r;

        /* The command's own output, as it printed it, and its exit status
         * as hullctl's, like ssh or kubectl exec. */
        const char *output = json_string_value(json_object_get(resp.body, "output"));
        json_int_t status = json_integer_value(json_object_get(resp.body, "exit_status"));
        if (output && !arg_json) {
                (void) fputs(output, stdout);
                if (json_is_true(json_object_get(resp.body, "truncated")))
                        log_error("(output cut at 1 MiB)");
                if (json_is_true(json_object_get(resp.body, "timed_out")))
                        log_error("the command was killed: it ran longer than the agent's time limit");
        } else
                print_raw(&resp);
        remote_exit_status = status > 0 && status < 256 ? (int) status : EXIT_SUCCESS;
        return 0;
}

static int cmd_hook(AgentClient *c, char **args) {
        _cleanup_(agent_response_done) AgentResponse resp = {};
        _cleanup_(json_decrefp) json_t *body = json_object();
        int r;

        if (!body)
                return log_oom();
        if ((r = json_set_string(body, "name", args[1])) < 0 ||
            (r = json_set_string(body, "stage", arg_hook_stage)) < 0 ||
            (r = json_set_string(body, "task", arg_hook_task)) < 0)
                return r;
        if (arg_hook_timeout > 0 && json_object_set_new(body, "timeout_seconds", json_integer(arg_hook_timeout)) < 0)
                return log_oom();
        r = call(c, "hook", "POST", "/v1/hook", body, &resp);
        if (r < 0)
                return r;
        r = finish_post(c, &resp, "Done.");
        return r < 0 ? r : 0;
}

static int cmd_audit(AgentClient *c, char **args) {
        _cleanup_(agent_response_done) AgentResponse resp = {};
        char path[64] = "/v1/audit";
        int r;

        if (arg_limit > 0)
                (void) snprintf(path, sizeof(path), "/v1/audit?limit=%u", arg_limit);
        r = call(c, "audit", "GET", path, NULL, &resp);
        if (r < 0)
                return r;
        if (arg_json || ctl_format_audit(resp.body, stdout) < 0)
                print_raw(&resp);
        return 0;
}

/* ---- command line -------------------------------------------------------- */

enum {
        VERB_STATUS = 1 << 0,
        VERB_STAGE = 1 << 1,
        VERB_ACTIVATE = 1 << 2,
        VERB_ROLLBACK = 1 << 3,
        VERB_MARK_GOOD = 1 << 4,
        VERB_CONFIG = 1 << 5,
        VERB_DEBUG = 1 << 6,
        VERB_AUDIT = 1 << 7,
        VERB_REBOOT = 1 << 8,
        VERB_HOOK = 1 << 9,
        VERB_ALL = (1 << 10) - 1,
};

typedef struct Verb {
        const char *name;
        unsigned mask;
        int min_args, max_args;
        int (*run)(AgentClient *c, char **args);
} Verb;

static const Verb verbs[] = {
        { "status", VERB_STATUS, 0, 0, cmd_status },
        { "stage", VERB_STAGE, 1, 1, cmd_stage },
        { "activate", VERB_ACTIVATE, 0, 0, cmd_activate },
        { "rollback", VERB_ROLLBACK, 0, 0, cmd_rollback },
        { "mark-good", VERB_MARK_GOOD, 0, 0, cmd_mark_good },
        { "reboot", VERB_REBOOT, 0, 0, cmd_reboot },
        { "config", VERB_CONFIG, 1, 2, cmd_config },
        { "debug", VERB_DEBUG, 0, INT_MAX, cmd_debug },
        { "audit", VERB_AUDIT, 0, 0, cmd_audit },
        { "hook", VERB_HOOK, 2, 2, cmd_hook },
};

enum {
        ARG_VERSION = 0x100,
        ARG_SOCKET,
        ARG_JSON,
        ARG_SHA256,
        ARG_IMAGE_VERSION,
        ARG_KEY_ID,
        ARG_CA_FILE,
        ARG_CLIENT_CERT,
        ARG_CLIENT_KEY,
        ARG_NO_WAIT,
        ARG_TRIES,
        ARG_NO_REBOOT,
        ARG_FORCE,
        ARG_LIMIT,
        ARG_HOOK_STAGE,
        ARG_HOOK_TIMEOUT,
        ARG_HOOK_TASK,
};

/* Options after the command: the global ones everywhere, each command's own
 * only with it. "--version" names the image version for stage and means
 * hullctl's version elsewhere. */
static const struct {
        struct option opt;
        unsigned verbs;
} verb_options[] = {
        { { "help", no_argument, NULL, 'h' }, VERB_ALL },
        { { "socket", required_argument, NULL, ARG_SOCKET }, VERB_ALL },
        { { "json", no_argument, NULL, ARG_JSON }, VERB_ALL },
        { { "version", no_argument, NULL, ARG_VERSION }, VERB_ALL & ~VERB_STAGE },
        { { "version", required_argument, NULL, ARG_IMAGE_VERSION }, VERB_STAGE },
        { { "sha256", required_argument, NULL, ARG_SHA256 }, VERB_STAGE },
        { { "key-id", required_argument, NULL, ARG_KEY_ID }, VERB_STAGE },
        { { "ca-file", required_argument, NULL, ARG_CA_FILE }, VERB_STAGE },
        { { "client-cert", required_argument, NULL, ARG_CLIENT_CERT }, VERB_STAGE },
        { { "client-key", required_argument, NULL, ARG_CLIENT_KEY }, VERB_STAGE },
        { { "no-wait", no_argument, NULL, ARG_NO_WAIT }, VERB_STAGE | VERB_MARK_GOOD | VERB_HOOK },
        { { "tries", required_argument, NULL, ARG_TRIES }, VERB_ACTIVATE },
        { { "no-reboot", no_argument, NULL, ARG_NO_REBOOT }, VERB_ACTIVATE | VERB_ROLLBACK },
        { { "force", no_argument, NULL, ARG_FORCE }, VERB_MARK_GOOD },
        { { "limit", required_argument, NULL, ARG_LIMIT }, VERB_AUDIT },
        { { "stage", required_argument, NULL, ARG_HOOK_STAGE }, VERB_HOOK },
        { { "timeout", required_argument, NULL, ARG_HOOK_TIMEOUT }, VERB_HOOK },
        { { "task", required_argument, NULL, ARG_HOOK_TASK }, VERB_HOOK },
};

static bool valid_sha256(const char *s) {
        if (strlen(s) != 64)
                return false;
        for (; *s; s++)
                if (!strchr("0123456789abcdefABCDEF", *s))
                        return false;
        return true;
}

/* Returns 1 to go on, 0 to exit successfully (--help, --version), -EINVAL
 * for bad usage (already reported). */
static int parse_option(int c, const char *verb) {
        switch (c) {
        case 'h':
                help();
                return 0;
        case ARG_VERSION:
                printf("hullctl %s\n", HULL_VERSION);
                return 0;
        case ARG_SOCKET:
                if (isempty(optarg))
                        return log_error_errno(EINVAL, "--socket needs a path");
                arg_socket = optarg;
                return 1;
        case ARG_JSON:
                arg_json = true;
                return 1;
        case ARG_SHA256:
                if (!valid_sha256(optarg))
                        return log_error_errno(EINVAL, "--sha256 needs 64 hex digits, not '%s'", optarg);
                arg_sha256 = optarg;
                return 1;
        case ARG_IMAGE_VERSION:
                arg_image_version = optarg;
                return 1;
        case ARG_KEY_ID:
                arg_key_id = optarg;
                return 1;
        case ARG_CA_FILE:
                arg_ca_file = optarg;
                return 1;
        case ARG_CLIENT_CERT:
                arg_client_cert = optarg;
                return 1;
        case ARG_CLIENT_KEY:
                arg_client_key = optarg;
                return 1;
        case ARG_NO_WAIT:
                arg_no_wait = true;
                return 1;
        case ARG_TRIES:
                if (safe_atou(optarg, &arg_tries) < 0 || arg_tries == 0)
                        return log_error_errno(EINVAL, "--tries needs a number of boot attempts of at least 1, not '%s'", optarg);
                return 1;
        case ARG_NO_REBOOT:
                arg_no_reboot = true;
                return 1;
        case ARG_FORCE:
                arg_force = true;
                return 1;
        case ARG_LIMIT:
                if (safe_atou(optarg, &arg_limit) < 0 || arg_limit == 0 || arg_limit > 1000)
                        return log_error_errno(EINVAL, "--limit needs a number from 1 to 1000, not '%s'", optarg);
                return 1;
        case ARG_HOOK_STAGE:
                if (!streq(optarg, "pre-drain") && !streq(optarg, "post-boot") && !streq(optarg, "manual"))
                        return log_error_errno(EINVAL, "--stage must be pre-drain, post-boot or manual, not '%s'",
                                               optarg);
                arg_hook_stage = optarg;
                return 1;
        case ARG_HOOK_TIMEOUT:
                if (safe_atou(optarg, &arg_hook_timeout) < 0 || arg_hook_timeout == 0 || arg_hook_timeout > 86400)
                        return log_error_errno(EINVAL, "--timeout needs 1 to 86400 seconds, not '%s'", optarg);
                return 1;
        case ARG_HOOK_TASK:
                arg_hook_task = optarg;
                return 1;
        default:
                /* getopt printed what was wrong; name the command it was for. */
                if (verb)
                        log_error("see 'hullctl --help' for the options of '%s'", verb);
                else
                        log_error("see 'hullctl --help'");
                return -EINVAL;
        }
}

/* Returns the verb and its arguments in *ret_verb / *ret_args, 1 to go on, 0
 * to exit successfully, -EINVAL for bad usage. */
static int parse_argv(int argc, char **argv, const Verb **ret_verb, char ***ret_args) {
        static const struct option global_options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "json", no_argument, NULL, ARG_JSON },
                {},
        };
        struct option options[ELEMENTSOF(verb_options) + 1];
        const Verb *verb = NULL;
        int c, r;

        /* Options before the command: "+" stops at the command name. */
        while ((c = getopt_long(argc, argv, "+h", global_options, NULL)) >= 0) {
                r = parse_option(c, NULL);
                if (r <= 0)
                        return r;
        }
        if (optind >= argc) {
                help();
                return -EINVAL;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(argv[optind], verbs[i].name))
                        verb = &verbs[i];
        if (!verb)
                return log_error_errno(EINVAL,
                                       "Unknown command '%s' (commands: status, stage, activate, rollback, mark-good, "
                                       "reboot, config, debug, audit, hook, cluster; see --help)",
                                       argv[optind]);

        size_t n = 0;
        for (size_t i = 0; i < ELEMENTSOF(verb_options); i++)
                if (verb_options[i].verbs & verb->mask)
                        options[n++] = verb_options[i].opt;
        options[n] = (struct option) {};

        /* The command's own options, anywhere among its arguments, except
         * for debug, whose arguments after the first are the command's. */
        int sub_argc = argc - optind;
        char **sub_argv = argv + optind;
        optind = 0; /* glibc: start afresh on a new argv */
        while ((c = getopt_long(sub_argc, sub_argv, verb->mask == VERB_DEBUG ? "+h" : "h", options, NULL)) >= 0) {
                r = parse_option(c, verb->name);
                if (r <= 0)
                        return r;
        }
        char **args = sub_argv + optind;
        int n_args = sub_argc - optind;

        if (n_args < verb->min_args || n_args > verb->max_args) {
                if (verb->mask == VERB_STAGE)
                        return log_error_errno(EINVAL, "Usage: hullctl stage SOURCE [--sha256 HEX] [--version V] ... "
                                                       "(SOURCE: an http(s) URL or a bundle file)");
                if (verb->mask == VERB_CONFIG)
                        return log_error_errno(EINVAL, "Usage: hullctl config apply FILE | hullctl config show");
                if (verb->mask == VERB_HOOK)
                        return log_error_errno(EINVAL, "Usage: hullctl hook run NAME [--stage S] [--timeout SEC] "
                                                       "[--task T]");
                return log_error_errno(EINVAL, "'%s' takes no arguments, got '%s'", verb->name, args[0]);
        }
        if (verb->mask == VERB_CONFIG) {
                if (streq(args[0], "apply") && n_args != 2)
                        return log_error_errno(EINVAL, "Usage: hullctl config apply FILE (YAML or JSON)");
                if (streq(args[0], "show") && n_args != 1)
                        return log_error_errno(EINVAL, "Usage: hullctl config show");
                if (!streq(args[0], "apply") && !streq(args[0], "show"))
                        return log_error_errno(EINVAL, "Unknown config command '%s' (apply, show)", args[0]);
        }
        if (verb->mask == VERB_HOOK && !streq(args[0], "run"))
                return log_error_errno(EINVAL, "Unknown hook command '%s' (run)", args[0]);
        if (!arg_client_cert != !arg_client_key)
                return log_error_errno(EINVAL, "--client-cert and --client-key go together");

        *ret_verb = verb;
        *ret_args = args;
        return 1;
}

int main(int argc, char **argv) {
        _cleanup_(agent_client_freep) AgentClient *client = NULL;
        const Verb *verb = NULL;
        char **args = NULL;
        int r;

        log_set_prefix("hullctl");
        /* The fleet commands talk to Kubernetes, not to this node's agent,
         * and have options of their own. */
        if (argc > 1 && streq(argv[1], "cluster"))
                return cluster_main(argc - 1, argv + 1);
        r = parse_argv(argc, argv, &verb, &args);
        if (r < 0)
                return EXIT_USAGE;
        if (r == 0)
                return EXIT_SUCCESS;

        const char *socket_path = arg_socket ?: getenv("HULL_AGENT_SOCKET");
        if (isempty(socket_path))
                socket_path = AGENT_DEFAULT_SOCKET;

        r = agent_client_new(socket_path, &client);
        if (r < 0) {
                (void) log_error_errno(r, "Failed to set up the HTTP client: %m");
                return EXIT_FAILURE;
        }
        r = verb->run(client, args);
        /* debug passes on the remote command's exit status. */
        return r < 0 ? EXIT_FAILURE : remote_exit_status;
}
