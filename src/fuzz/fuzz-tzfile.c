/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tz_parse() on arbitrary bytes. A refusal is -EBADMSG (or -ENOMEM); a
 * zone that parses must answer for any instant in range with an offset
 * within RFC 8536's bounds, find every instant again from its wall clock,
 * give only instants whose wall clock is the one asked for, land on the
 * change for a skipped wall time, and report transitions in order. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tzfile.h"

static int32_t offset_at(const TimeZone *z, int64_t t) {
        int32_t off;
        if (tz_utc_offset(z, t, &off) < 0)
                abort(); /* t is in range */
        if (off < -89999 || off > 93599)
                abort();
        return off;
}

static void check_local(const TimeZone *z, int64_t local) {
        int64_t e, l;
        int n;

        if (local < -TZ_TIME_LIMIT + 200000 || local > TZ_TIME_LIMIT - 200000)
                return;
        n = tz_local_to_utc(z, local, &e, &l);
        if (n < 0)
                abort();
        if (e > l)
                abort();
        if (n == 0) {
                /* The change: the wall clock reads later than 'local'
                 * from e on, and earlier just before. */
                if (e != l || e + offset_at(z, e) <= local || e - 1 + offset_at(z, e - 1) >= local)
                        abort();
                return;
        }
        if (e + offset_at(z, e) != local || l + offset_at(z, l) != local)
                abort();
        if ((n == 1) != (e == l))
                abort();
}

static void check_instant(const TimeZone *z, int64_t t) {
        int32_t off;
        bool dst;
        const char *abbr;
        int64_t e, l, next;
        int n, r;

        if (t < -TZ_TIME_LIMIT + 200000 || t > TZ_TIME_LIMIT - 200000)
                return;
        if (tz_lookup(z, t, &off, &dst, &abbr) < 0 || !abbr)
                abort();
        if (off != offset_at(z, t))
                abort();
        (void) strlen(abbr); /* NUL-terminated inside z */

        n = tz_local_to_utc(z, t + off, &e, &l);
        if (n < 1 || t < e || t > l || (n <= 2 && t != e && t != l))
                abort();
        check_local(z, t + off);
        check_local(z, t + off - 1800);
        check_local(z, t + off + 1800);

        r = tz_next_transition(z, t, &next);
        if (r == 0) {
                if (next <= t)
                        abort();
                /* Nothing changes in between. */
                if (next <= TZ_TIME_LIMIT && offset_at(z, next - 1) != off)
                        abort();
        } else if (r != -ENOENT && r != -ERANGE)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(tz_freep) TimeZone *z = NULL;
        int r;

        if (size > TZ_FILE_MAX)
                return 0;
        r = tz_parse(data, size, &z);
        if (r < 0) {
                if (r != -EBADMSG && r != -ENOMEM)
                        abort();
                if (z)
                        abort();
                return 0;
        }
        if (!z)
                abort();

        static const int64_t fixed[] = {
                -(INT64_C(1) << 40), -2208988800 /* 1900 */, -1, 0, 1, 1000000000, 1711846800, 1729990800,
                2147483647, 2147483648, 4102444800 /* 2100 */, 32503680000 /* 3000 */, INT64_C(1) << 40,
        };
        for (size_t i = 0; i < ELEMENTSOF(fixed); i++)
                check_instant(z, fixed[i]);

        /* Walk the transitions from 2000 on, a bounded number of them,
         * checking each and the seconds around it. */
        int64_t t = 946684800;
        for (int i = 0; i < 64; i++) {
                int64_t next;
                if (tz_next_transition(z, t, &next) < 0)
                        break;
                check_instant(z, next - 1);
                check_instant(z, next);
                check_local(z, next + offset_at(z, next - 1));
                check_local(z, next + offset_at(z, next));
                t = next;
        }

        /* And some transitions before that, from the data itself: the
         * instants the file names are as good as any. */
        for (size_t i = 0; i + 8 <= size && i < 4096; i += 37) {
                uint64_t x = 0;
                for (int k = 0; k < 8; k++)
                        x = x << 8 | data[i + k];
                check_instant(z, (int64_t) x);
                check_instant(z, (int64_t) (int32_t) (uint32_t) (x >> 32));
        }

        /* Out of range is refused, not misread. */
        int32_t off;
        if (tz_utc_offset(z, INT64_MAX, &off) != -ERANGE || tz_local_to_utc(z, INT64_MIN, NULL, NULL) != -ERANGE)
                abort();
        return 0;
}
