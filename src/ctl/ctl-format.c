/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-format.h"
#include "strutil.h"

#define MIB (1024.0 * 1024.0)

/* Print s with C0 controls and DEL replaced by '?'; returns the number of
 * bytes printed, for padding columns. */
static size_t put_safe(FILE *f, const char *s) {
        size_t n = 0;

        for (; *s; s++, n++)
                (void) fputc((unsigned char) *s < 0x20 || *s == 0x7f ? '?' : *s, f);
        return n;
}

static void put_cell(FILE *f, const char *s, size_t width) {
        size_t n = put_safe(f, s);
        for (; n < width; n++)
                (void) fputc(' ', f);
}

static const char *str_or(json_t *j, const char *key, const char *fallback) {
        const char *s = json_string_value(json_object_get(j, key));
        return s ?: fallback;
}

/* Integer field as text, "-" if missing. buf must hold 24 bytes. */
static const char *int_or_dash(json_t *j, const char *key, char *buf, size_t size) {
        json_t *v = json_object_get(j, key);
        if (!json_is_integer(v))
                return "-";
        (void) snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
}

/* An error, as the documented {"code", "message", "errno"} object or a bare
 * string: " MESSAGE (CODE)". */
static void put_error(FILE *f, json_t *error) {
        const char *message = json_is_string(error) ? json_string_value(error) : str_or(error, "message", NULL);
        const char *code = json_string_value(json_object_get(error, "code"));

        put_safe(f, message ?: "(no message)");
        if (code) {
                (void) fputs(" (", f);
                put_safe(f, code);
                (void) fputc(')', f);
        }
}

static void put_label(FILE *f, const char *label) {
        (void) fprintf(f, "%-*s", CTL_LABEL_WIDTH, label);
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

int ctl_operation_percent(json_t *op) {
        json_t *done = json_object_get(op, "done"), *total = json_object_get(op, "total");

        if (!json_is_integer(done) || !json_is_integer(total) || json_integer_value(total) <= 0)
                return -1;
        json_int_t d = json_integer_value(done), t = json_integer_value(total);
        if (d <= 0)
                return 0;
        if (d >= t)
                return 100;
        /* Floor, so that 100% only shows when it is done. */
        return (int) ((double) d * 100.0 / (double) t);
}

/* "118.0/345.1 MiB" for byte counts (stage), "3/5" for steps. */
static void put_amounts(json_t *op, FILE *f) {
        json_t *done = json_object_get(op, "done"), *total = json_object_get(op, "total");
        bool bytes = streq(str_or(op, "type", ""), "stage");

        if (!json_is_integer(done))
                return;
        if (bytes && json_is_integer(total) && json_integer_value(total) > 0)
                (void) fprintf(f, "%.1f/%.1f MiB", json_integer_value(done) / MIB, json_integer_value(total) / MIB);
        else if (bytes)
                (void) fprintf(f, "%.1f MiB", json_integer_value(done) / MIB);
        else if (json_is_integer(total) && json_integer_value(total) > 0)
                (void) fprintf(f, "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT, json_integer_value(done),
                               json_integer_value(total));
        else
                (void) fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(done));
}

int ctl_format_operation(json_t *op, unsigned indent, FILE *f) {
        if (json_is_null(op)) {
                (void) fputs("none\n", f);
                return 0;
        }
        if (!json_is_object(op))
                return -EBADMSG;

        const char *state = str_or(op, "state", "-");
        const char *phase = json_string_value(json_object_get(op, "phase"));
        const char *version = json_string_value(json_object_get(op, "version"));
        const char *slot = json_string_value(json_object_get(op, "slot"));
        const char *finished = json_string_value(json_object_get(op, "finished"));
        json_t *id = json_object_get(op, "id");
        int pct = ctl_operation_percent(op);

        json_t *hook = json_object_get(op, "hook");
        json_t *exit_code = json_object_get(hook, "exit_code");

        if (json_is_integer(id))
                (void) fprintf(f, "#%" JSON_INTEGER_FORMAT " ", json_integer_value(id));
        put_safe(f, str_or(op, "type", "operation"));
        if (json_is_object(hook)) {
                /* "hook ceph-noout (stage pre-drain)" */
                (void) fputc(' ', f);
                put_safe(f, str_or(hook, "name", "-"));
                (void) fputs(" (stage ", f);
                put_safe(f, str_or(hook, "stage", "-"));
                (void) fputc(')', f);
        } else if (version || slot) {
                (void) fputs(" (", f);
                if (version) {
                        (void) fputs("version ", f);
                        put_safe(f, version);
                }
                if (version && slot)
                        (void) fputs(", ", f);
                if (slot) {
                        (void) fputs("slot ", f);
                        put_safe(f, slot);
                }
                (void) fputc(')', f);
        }
        (void) fputs(": ", f);
        put_safe(f, state);

        if (streq(state, "running")) {
                if (phase) {
                        (void) fputs(", phase ", f);
                        put_safe(f, phase);
                }
                if (pct >= 0)
                        (void) fprintf(f, ", %d%%", pct);
                if (json_is_integer(json_object_get(op, "done")) && !json_is_object(hook)) {
                        (void) fputs(" (", f);
                        put_amounts(op, f);
                        (void) fputc(')', f);
                }
        } else if (streq(state, "failed")) {
                if (phase) {
                        (void) fputs(" in phase ", f);
                        put_safe(f, phase);
                }
                if (pct >= 0)
                        (void) fprintf(f, " at %d%%", pct);
        }
        if (!streq(state, "running") && json_is_integer(exit_code))
                (void) fprintf(f, ", exit status %" JSON_INTEGER_FORMAT, json_integer_value(exit_code));
        if (!streq(state, "running") && finished) {
                (void) fputs(", finished ", f);
                put_safe(f, finished);
        }
        (void) fputc('\n', f);

        json_t *error = json_object_get(op, "error");
        if (json_is_object(error) || json_is_string(error)) {
                (void) fprintf(f, "%*serror: ", (int) indent, "");
                put_error(f, error);
                (void) fputc('\n', f);
        }
        const char *notice = json_string_value(json_object_get(op, "notice"));
        if (notice) {
                (void) fprintf(f, "%*snotice: ", (int) indent, "");
                put_safe(f, notice);
                (void) fputc('\n', f);
        }
        /* What a download cost (docs/DELTA.md). */
        json_t *t = json_object_get(op, "transfer");
        json_int_t bundle = json_integer_value(json_object_get(t, "bundle")),
                   fetched = json_integer_value(json_object_get(t, "fetched")),
                   reused = json_integer_value(json_object_get(t, "reused")),
                   resumed = json_integer_value(json_object_get(t, "resumed"));
        if (json_is_object(t) && bundle > 0 && fetched >= 0 && reused >= 0 && resumed >= 0) {
                char a[32], b[32], c[32];
                (void) fprintf(f, "%*sdownload: %s of %s (%.1f%%)", (int) indent, "",
                               format_bytes(a, sizeof(a), (uint64_t) fetched), format_bytes(b, sizeof(b), (uint64_t) bundle),
                               100.0 * (double) fetched / (double) bundle);
                if (json_is_true(json_object_get(t, "full")))
                        (void) fputs(", the whole bundle", f);
                else
                        (void) fprintf(f, ", %s already on this node", format_bytes(c, sizeof(c), (uint64_t) reused));
                if (resumed > 0)
                        (void) fprintf(f, " (%s of it from an interrupted stage)",
                                       format_bytes(a, sizeof(a), (uint64_t) resumed));
                (void) fputc('\n', f);
        }
        return 0;
}

/* "kubelet v1.32.0, containerd 1.6.20, runc 1.1.5, kernel 6.1.0-28-amd64":
 * the ones Kubernetes cares about first, then any this hullctl does not
 * know yet, in the agent's order. */
static void put_components(json_t *c, FILE *f) {
        static const char *const order[] = { "kubelet", "containerd", "runc", "kernel" };
        const char *key;
        json_t *v;
        bool first = true;

        for (size_t i = 0; i < ELEMENTSOF(order); i++) {
                const char *s = json_string_value(json_object_get(c, order[i]));
                if (!s)
                        continue;
                (void) fprintf(f, "%s%s ", first ? "" : ", ", order[i]);
                put_safe(f, s);
                first = false;
        }
        json_object_foreach(c, key, v) {
                bool known = false;
                for (size_t i = 0; i < ELEMENTSOF(order); i++)
                        known = known || streq(key, order[i]);
                if (known || !json_is_string(v))
                        continue;
                (void) fputs(first ? "" : ", ", f);
                put_safe(f, key);
                (void) fputc(' ', f);
                put_safe(f, json_string_value(v));
                first = false;
        }
        if (first)
                (void) fputc('-', f);
}

static bool has_components(json_t *slot) {
        json_t *c = json_object_get(slot, "components");
        return json_is_object(c) && json_object_size(c) > 0;
}

static void format_slots(json_t *slots, FILE *f) {
        const char *keys[16];
        size_t n = 0, w_slot = 4, w_state = 5, w_version = 7;
        const char *key;
        json_t *v;

        json_object_foreach(slots, key, v) {
                if (n >= ELEMENTSOF(keys))
                        break;
                keys[n++] = key;
                w_slot = MAX(w_slot, strlen(key));
                w_state = MAX(w_state, strlen(str_or(v, "state", "-")));
                w_version = MAX(w_version, strlen(str_or(v, "version", "-")));
        }
        /* Slots print in name order (a, b), whatever order the agent used. */
        qsort(keys, n, sizeof(keys[0]), cmp_str);

        (void) fputc('\n', f);
        put_cell(f, "SLOT", w_slot + 2);
        put_cell(f, "STATE", w_state + 2);
        put_cell(f, "VERSION", w_version + 2);
        (void) fputs("PRIORITY  TRIES  BOOTED\n", f);
        for (size_t i = 0; i < n; i++) {
                json_t *s = json_object_get(slots, keys[i]);
                char prio[24], tries[24];

                put_cell(f, keys[i], w_slot + 2);
                put_cell(f, str_or(s, "state", "-"), w_state + 2);
                put_cell(f, str_or(s, "version", "-"), w_version + 2);
                (void) fprintf(f, "%8s  %5s%s\n", int_or_dash(s, "priority", prio, sizeof(prio)),
                               int_or_dash(s, "tries", tries, sizeof(tries)),
                               json_is_true(json_object_get(s, "booted")) ? "  *" : "");
        }

        /* What each slot's image holds, if the agent says (an older agent,
         * or images built without the record, do not). */
        bool any = false;
        for (size_t i = 0; i < n; i++)
                any = any || has_components(json_object_get(slots, keys[i]));
        if (!any)
                return;
        (void) fputc('\n', f);
        put_cell(f, "SLOT", w_slot + 2);
        (void) fputs("COMPONENTS\n", f);
        for (size_t i = 0; i < n; i++) {
                json_t *s = json_object_get(slots, keys[i]);
                put_cell(f, keys[i], w_slot + 2);
                put_components(has_components(s) ? json_object_get(s, "components") : NULL, f);
                (void) fputc('\n', f);
        }
}

int ctl_format_status(json_t *status, FILE *f) {
        if (!json_is_object(status))
                return -EBADMSG;

        json_t *os = json_object_get(status, "os");
        json_t *boot = json_object_get(status, "boot");
        json_t *health = json_object_get(status, "health");
        json_t *config = json_object_get(status, "config");
        json_t *reboot = json_object_get(status, "reboot_required");
        json_t *slots = json_object_get(status, "slots");

        put_label(f, "OS:");
        put_safe(f, str_or(os, "name", "-"));
        (void) fputc(' ', f);
        put_safe(f, str_or(os, "version", "-"));
        (void) fputc('\n', f);

        put_label(f, "Booted slot:");
        put_safe(f, str_or(boot, "slot", "-"));
        if (json_is_true(json_object_get(boot, "degraded")))
                (void) fputs(" (degraded: booted by fallback)", f);
        if (json_is_true(json_object_get(boot, "first_boot")))
                (void) fputs(" (first boot)", f);
        (void) fputc('\n', f);

        put_label(f, "Health:");
        put_safe(f, str_or(health, "state", "-"));
        const char *hmsg = json_string_value(json_object_get(health, "message"));
        if (hmsg) {
                (void) fputs(": ", f);
                put_safe(f, hmsg);
        }
        (void) fputc('\n', f);

        put_label(f, "Config:");
        json_t *gen = json_object_get(config, "generation");
        if (!json_is_integer(gen))
                (void) fputs("-\n", f);
        else if (json_integer_value(gen) == 0)
                (void) fputs("none applied (generation 0)\n", f);
        else
                (void) fprintf(f, "generation %" JSON_INTEGER_FORMAT "\n", json_integer_value(gen));

        put_label(f, "Reboot required:");
        (void) fputs(json_is_boolean(reboot) ? (json_is_true(reboot) ? "yes\n" : "no\n") : "-\n", f);

        if (json_is_object(slots) && json_object_size(slots) > 0)
                format_slots(slots, f);

        (void) fputc('\n', f);
        put_label(f, "Last operation:");
        json_t *op = json_object_get(status, "operation");
        if (!op || ctl_format_operation(op, CTL_LABEL_WIDTH, f) < 0)
                (void) fputs("-\n", f);
        return 0;
}

int ctl_format_hook_output(json_t *op, FILE *f) {
        json_t *hook = json_object_get(op, "hook");
        const char *out = json_string_value(json_object_get(hook, "output"));

        if (!json_is_object(hook))
                return -EBADMSG;
        if (isempty(out))
                return 0;
        /* Lines and tabs as they are; other controls (a colour escape)
         * replaced, as everywhere else. */
        for (const char *p = out; *p; p++)
                (void) fputc(*p == '\n' || *p == '\t' ? *p : (unsigned char) *p < 0x20 || *p == 0x7f ? '?' : *p, f);
        if (out[strlen(out) - 1] != '\n')
                (void) fputc('\n', f);
        return 0;
}

void ctl_format_progress(json_t *op, double rate, unsigned width, FILE *f) {
        char line[512], amounts[128] = "", tail[192];
        const char *phase = str_or(op, "phase", str_or(op, "state", "-"));
        int pct = ctl_operation_percent(op);
        size_t used;

        /* Built in memory first so it can be cut to the terminal width: a
         * wrapped line cannot be redrawn in place with '\r'. */
        FILE *m = fmemopen(amounts, sizeof(amounts), "w");
        if (m) {
                put_amounts(op, m);
                (void) fclose(m);
        }
        if (rate > 0)
                (void) snprintf(tail, sizeof(tail), "  %s  %.1f MiB/s", amounts, rate / MIB);
        else
                (void) snprintf(tail, sizeof(tail), "  %s", amounts);

        (void) snprintf(line, sizeof(line), "%-15.40s ", phase);
        for (char *p = line; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = '?';
        used = strlen(line);

        if (pct >= 0) {
                /* Room for "[", "]", " 100%" and the longest tail we
                 * expect, rather than this tail, so that the bar does not
                 * change length as the numbers do. */
                long room = (long) width - 1 - (long) used - 2 - 5 - (long) strlen("  9999.9/9999.9 MiB  999.9 MiB/s");
                long bar = MIN(room, 40L);
                if (bar >= 10) {
                        long fill = bar * pct / 100;
                        line[used++] = '[';
                        for (long i = 0; i < bar; i++)
                                line[used++] = i < fill ? '#' : '-';
                        line[used++] = ']';
                        line[used] = '\0';
                }
                (void) snprintf(line + used, sizeof(line) - used, " %3d%%", pct);
                used = strlen(line);
        }
        (void) snprintf(line + used, sizeof(line) - used, "%s", tail);
        if (width > 1 && strlen(line) > width - 1)
                line[width - 1] = '\0';
        (void) fputs(line, f);
}

int ctl_format_audit(json_t *records, FILE *f) {
        size_t i;
        json_t *rec;

        if (!json_is_array(records))
                return -EBADMSG;

        json_array_foreach(records, i, rec) {
                char uid[24], pid[24], status[24];

                put_safe(f, str_or(rec, "time", "-"));
                (void) fprintf(f, "  uid=%s pid=%s  ", int_or_dash(rec, "uid", uid, sizeof(uid)),
                               int_or_dash(rec, "pid", pid, sizeof(pid)));

                /* The record of an operation's outcome is the agent's own,
                 * not a request: hull-agent writes it with method "-" and
                 * the operation's type as path, and no HTTP status. */
                const char *method = json_string_value(json_object_get(rec, "method"));
                const char *path = json_string_value(json_object_get(rec, "path"));
                json_t *opid = json_object_get(rec, "op");
                if (method && !streq(method, "-")) {
                        put_safe(f, method);
                        (void) fputc(' ', f);
                        put_safe(f, path ?: "-");
                        if (json_is_integer(opid))
                                (void) fprintf(f, " (op %" JSON_INTEGER_FORMAT ")", json_integer_value(opid));
                } else if (json_is_integer(opid)) {
                        (void) fprintf(f, "op %" JSON_INTEGER_FORMAT, json_integer_value(opid));
                        if (path) {
                                (void) fputc(' ', f);
                                put_safe(f, path);
                        }
                } else
                        (void) fputc('-', f);

                json_t *st = json_object_get(rec, "status");
                const char *result = json_string_value(json_object_get(rec, "result"));
                (void) fputs("  ", f);
                if (json_is_integer(st))
                        (void) fprintf(f, "%s%s", int_or_dash(rec, "status", status, sizeof(status)), result ? " " : "");
                if (result)
                        put_safe(f, result);
                if (!json_is_integer(st) && !result)
                        (void) fputc('-', f);

                json_t *error = json_object_get(rec, "error");
                if (json_is_string(error) || json_is_object(error)) {
                        (void) fputs("  error: ", f);
                        put_error(f, error);
                }
                (void) fputc('\n', f);
        }
        return 0;
}
