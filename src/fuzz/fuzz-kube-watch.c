/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <jansson.h>
#include <string.h>

#include "fuzz.h"
#include "kube-internal.h"
#include "kube.h"

typedef struct Count {
        unsigned events;
} Count;

static int on_event(KubeEventType type, json_t *object, void *userdata) {
        Count *c = userdata;

        /* Only the five known types, each with an object. */
        if (!kube_event_type_to_string(type) || !json_is_object(object))
                abort();
        c->events++;
        /* Every accessor must cope with whatever the object holds. */
        (void) kube_name(object);
        (void) kube_namespace(object);
        (void) kube_resource_version(object);
        (void) kube_generation(object);
        (void) kube_label(object, "a");
        int m = kube_selector_matches("a=b,c in (d),!e", json_object_get(json_object_get(object, "metadata"), "labels"));
        if (m != 0 && m != 1) /* a valid selector matches or does not */
                abort();
        return 0;
}

/* The stream is fed twice, whole and cut where the first byte says: both
 * must deliver the same number of events and end the same way, since a
 * watch is split at arbitrary chunk boundaries. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Count whole = {}, split = {};
        int r1, r2 = 0;
        size_t step;

        if (size == 0)
                return 0;
        step = 1 + data[0] % 17;
        data++;
        size--;

        _cleanup_(kube_watch_parser_freep) KubeWatchParser *a = kube_watch_parser_new(on_event, &whole);
        _cleanup_(kube_watch_parser_freep) KubeWatchParser *b = kube_watch_parser_new(on_event, &split);
        if (!a || !b)
                return 0;
        r1 = kube_watch_parser_feed(a, data, size);
        for (size_t off = 0; off < size && r2 >= 0; off += step)
                r2 = kube_watch_parser_feed(b, data + off, MIN(step, size - off));
        if (r1 != -ENOMEM && r2 != -ENOMEM) {
                if (r1 != r2 || whole.events != split.events)
                        abort();
                if (r1 < 0 && r1 != -EBADMSG && r1 != -E2BIG)
                        abort();
                if (r1 >= 0 && kube_watch_parser_pending(a) != kube_watch_parser_pending(b))
                        abort();
        }
        return 0;
}
