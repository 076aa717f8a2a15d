/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tzfile.c against glibc: this test is single-threaded, so it may set TZ
 * and ask localtime_r() what the wall clock reads, then check that the
 * reader gives the same offset, DST flag and designation for many zones and
 * instants from 1970 to 2100 and beyond, around every change in 2024-2030
 * and 2090-2100 (the latter from the footer rule, as fat files list
 * transitions only up to 2037), for "slim" files compiled with zic (where
 * the footer gives everything after 1996 or so), for version 1 and 4 files,
 * and for footer strings on their own. Local -> UTC conversions are checked
 * against the offsets glibc reports on both sides of each change. Then
 * malformed files, each refused with -EBADMSG. */
#include <dirent.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fileio.h"
#include "spawn.h"
#include "tests.h"
#include "tzfile.h"

static const char *const zones[] = {
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe", /* 30-minute DST */
        "Asia/Kolkata",
        "Pacific/Chatham",     /* +12:45/+13:45, changes at 02:45 and 03:45 */
        "America/Sao_Paulo",   /* DST abolished in 2019 */
        "UTC",
        "Etc/GMT+5",
        "Asia/Jerusalem",      /* version 3: a change at 26:00 */
        "America/Nuuk",        /* version 3: a change at -1:00 */
        "Europe/Dublin",       /* "negative DST": winter is the DST type */
};

static int64_t utc(int y, int mo, int d, int h, int mi) {
        struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi };
        return (int64_t) timegm(&tm);
}

static void glibc_zone(const char *tz) {
        ASSERT_TRUE(setenv("TZ", tz, 1) == 0);
        tzset();
}

typedef struct GState {
        long offset;
        int isdst;
        char abbr[TZ_ABBR_MAX + 1];
} GState;

static GState glibc_at(int64_t t) {
        time_t tt = (time_t) t;
        struct tm tm;
        GState g = {};

        ASSERT_TRUE(localtime_r(&tt, &tm) != NULL);
        g.offset = tm.tm_gmtoff;
        g.isdst = tm.tm_isdst > 0;
        (void) snprintf(g.abbr, sizeof g.abbr, "%s", tm.tm_zone ?: "");
        return g;
}

static bool gstate_eq(const GState *a, const GState *b) {
        return a->offset == b->offset && a->isdst == b->isdst && streq(a->abbr, b->abbr);
}

static unsigned long n_checked;

/* The reader at t must say what glibc says. */
static void check_at(const TimeZone *z, const char *what, int64_t t) {
        GState g = glibc_at(t);
        int32_t off;
        bool dst;
        const char *abbr;

        ASSERT_OK(tz_lookup(z, t, &off, &dst, &abbr));
        if (off != g.offset || dst != (bool) g.isdst || !streq(abbr, g.abbr)) {
                fprintf(stderr, "%s at %" PRId64 ": tzfile %d %d %s, glibc %ld %d %s\n", what, t, off, dst, abbr,
                        g.offset, g.isdst, g.abbr);
                abort();
        }
        /* Back from the wall clock: t is one of the instants found. */
        int64_t e, l;
        int n = tz_local_to_utc(z, t + off, &e, &l);
        ASSERT_TRUE(n >= 1);
        ASSERT_TRUE(t == e || t == l);
        n_checked++;
}

/* glibc's view of the instants with wall clock 'local' near a change from
 * offset o1 to o2, compared with tz_local_to_utc(); T is the change. */
static void check_local(const TimeZone *z, const char *what, int64_t local, long o1, long o2, int64_t T) {
        int64_t exp[2];
        int n_exp = 0, n;
        int64_t e, l;
        long offs[2] = { o1 > o2 ? o1 : o2, o1 > o2 ? o2 : o1 }; /* larger offset: earlier instant */

        for (int k = 0; k < (o1 == o2 ? 1 : 2); k++) {
                int64_t c = local - offs[k];
                if (glibc_at(c).offset == offs[k])
                        exp[n_exp++] = c;
        }
        n = tz_local_to_utc(z, local, &e, &l);
        if (n != n_exp || (n_exp > 0 && (e != exp[0] || l != exp[n_exp - 1])) || (n_exp == 0 && e != T)) {
                fprintf(stderr, "%s: local %" PRId64 " near change at %" PRId64 " (%ld -> %ld): tzfile %d [%" PRId64
                        ", %" PRId64 "], glibc %d\n", what, local, T, o1, o2, n, e, l, n_exp);
                abort();
        }
}

/* Every change glibc sees in [from, to) (found hourly, then to the second),
 * checked on both sides, as the reader's next transition, and from the
 * wall clock's side. Returns how many changes there were. */
static unsigned check_changes(const TimeZone *z, const char *what, int64_t from, int64_t to) {
        unsigned n = 0;
        GState prev = glibc_at(from);

        for (int64_t t = from + 3600; t < to; t += 3600) {
                GState cur = glibc_at(t);
                if (gstate_eq(&prev, &cur)) {
                        prev = cur;
                        continue;
                }
                /* The first second of the new state lies in (t-3600, t]. */
                int64_t lo = t - 3600, hi = t;
                while (hi - lo > 1) {
                        int64_t mid = lo + (hi - lo) / 2;
                        GState m = glibc_at(mid);
                        if (gstate_eq(&m, &prev))
                                lo = mid;
                        else
                                hi = mid;
                }
                int64_t T = hi, next;
                check_at(z, what, T - 1);
                check_at(z, what, T);
                ASSERT_OK(tz_next_transition(z, T - 1, &next));
                ASSERT_EQ(next, T);

                long o1 = prev.offset, o2 = cur.offset;
                int64_t a = T + MIN(o1, o2), b = T + MAX(o1, o2);
                for (int64_t L = a - 7200; L <= b + 7200; L += 450)
                        check_local(z, what, L, o1, o2, T);
                const int64_t edges[] = { a - 1, a, a + 1, b - 1, b, b + 1 };
                for (size_t i = 0; i < ELEMENTSOF(edges); i++)
                        check_local(z, what, edges[i], o1, o2, T);
                n++;
                prev = cur;
        }
        return n;
}

/* z must read like glibc with TZ=glibc_tz over [from, to). */
static void compare_zone(const TimeZone *z, const char *what, const char *glibc_tz, int64_t from, int64_t to,
                         bool changes) {
        glibc_zone(glibc_tz);
        /* An odd step, so that the samples drift through every hour. */
        for (int64_t t = from; t < to; t += 26587)
                check_at(z, what, t);
        if (changes) {
                unsigned a = check_changes(z, what, MAX(from, utc(2024, 1, 1, 0, 0)), MIN(to, utc(2031, 1, 1, 0, 0)));
                unsigned b = check_changes(z, what, MAX(from, utc(2090, 1, 1, 0, 0)), MIN(to, utc(2101, 1, 1, 0, 0)));
                fprintf(stderr, "   %s: %u changes in 2024-2030, %u in 2090-2100\n", what, a, b);
        }
}

static void test_zones_against_glibc(void) {
        for (size_t i = 0; i < ELEMENTSOF(zones); i++) {
                _cleanup_(tz_freep) TimeZone *z = NULL;
                char tz[TZ_NAME_MAX + 2];

                ASSERT_OK(tz_load(zones[i], &z));
                (void) snprintf(tz, sizeof tz, ":%s", zones[i]);
                compare_zone(z, zones[i], tz, utc(1970, 1, 1, 0, 0), utc(2101, 1, 1, 0, 0), true);
                /* Far beyond the last transition of any file. */
                const int64_t far[] = { utc(2200, 7, 1, 12, 0), utc(2500, 1, 1, 0, 0), utc(3000, 3, 30, 1, 30),
                                        utc(9999, 12, 31, 23, 59), utc(1900, 6, 1, 0, 0) };
                for (size_t k = 0; k < ELEMENTSOF(far); k++)
                        check_at(z, zones[i], far[k]);
        }
        fprintf(stderr, "   %lu instants compared\n", n_checked);
        ASSERT_TRUE(unsetenv("TZ") == 0);
        tzset();
}

/* Known answers, independent of glibc. */
static void test_known(void) {
        _cleanup_(tz_freep) TimeZone *berlin = NULL, *lh = NULL, *utcz = NULL, *kolkata = NULL, *gmt5 = NULL;
        int32_t off;
        int64_t e, l, next;
        const char *abbr;
        bool dst;

        ASSERT_OK(tz_load("Europe/Berlin", &berlin));
        ASSERT_OK(tz_lookup(berlin, utc(2024, 1, 15, 12, 0), &off, &dst, &abbr));
        ASSERT_EQ(off, 3600);
        ASSERT_TRUE(!dst);
        ASSERT_STREQ(abbr, "CET");
        ASSERT_OK(tz_lookup(berlin, utc(2024, 7, 15, 12, 0), &off, &dst, &abbr));
        ASSERT_EQ(off, 7200);
        ASSERT_TRUE(dst);
        ASSERT_STREQ(abbr, "CEST");
        /* 2024-03-31 02:00 CET -> 03:00 CEST at 01:00 UTC: 02:30 does not
         * exist; the first instant at or after it is the change. */
        ASSERT_EQ(tz_local_to_utc(berlin, utc(2024, 3, 31, 2, 30), &e, &l), 0);
        ASSERT_EQ(e, utc(2024, 3, 31, 1, 0));
        ASSERT_EQ(l, utc(2024, 3, 31, 1, 0));
        ASSERT_EQ(tz_local_to_utc(berlin, utc(2024, 3, 31, 3, 0), &e, &l), 1);
        ASSERT_EQ(e, utc(2024, 3, 31, 1, 0));
        ASSERT_EQ(tz_local_to_utc(berlin, utc(2024, 3, 31, 1, 59), &e, &l), 1);
        ASSERT_EQ(e, utc(2024, 3, 31, 0, 59));
        /* 2024-10-27 03:00 CEST -> 02:00 CET at 01:00 UTC: 02:30 twice. */
        ASSERT_EQ(tz_local_to_utc(berlin, utc(2024, 10, 27, 2, 30), &e, &l), 2);
        ASSERT_EQ(e, utc(2024, 10, 27, 0, 30));
        ASSERT_EQ(l, utc(2024, 10, 27, 1, 30));
        ASSERT_EQ(tz_local_to_utc(berlin, utc(2024, 10, 27, 3, 0), &e, &l), 1);
        ASSERT_EQ(e, utc(2024, 10, 27, 2, 0));
        ASSERT_OK(tz_next_transition(berlin, utc(2024, 6, 1, 0, 0), &next));
        ASSERT_EQ(next, utc(2024, 10, 27, 1, 0));
        /* From the footer rule, past the fat file's 2037: the last Sunday
         * of March 2099 is the 29th. */
        ASSERT_OK(tz_next_transition(berlin, utc(2099, 1, 1, 0, 0), &next));
        ASSERT_EQ(next, utc(2099, 3, 29, 1, 0));
        ASSERT_EQ(tz_local_to_utc(berlin, utc(2099, 3, 29, 2, 0), &e, NULL), 0);
        ASSERT_EQ(e, utc(2099, 3, 29, 1, 0));

        /* Lord Howe: +11 -> +10:30 at 02:00 local on 2024-04-07, so
         * 01:30-02:00 happens twice, half an hour apart. */
        ASSERT_OK(tz_load("Australia/Lord_Howe", &lh));
        ASSERT_EQ(tz_local_to_utc(lh, utc(2024, 4, 7, 1, 45), &e, &l), 2);
        ASSERT_EQ(e, utc(2024, 4, 6, 14, 45));
        ASSERT_EQ(l, utc(2024, 4, 6, 15, 15));

        ASSERT_OK(tz_load("Asia/Kolkata", &kolkata));
        ASSERT_OK(tz_utc_offset(kolkata, utc(2030, 1, 1, 0, 0), &off));
        ASSERT_EQ(off, 19800);
        ASSERT_ERROR(tz_next_transition(kolkata, utc(2030, 1, 1, 0, 0), &next), ENOENT);
        ASSERT_OK(tz_load("Etc/GMT+5", &gmt5));
        ASSERT_OK(tz_lookup(gmt5, 0, &off, NULL, &abbr));
        ASSERT_EQ(off, -18000);
        ASSERT_STREQ(abbr, "-05");

        /* UTC is built in. */
        ASSERT_OK(tz_load("UTC", &utcz));
        ASSERT_OK(tz_lookup(utcz, utc(2024, 7, 1, 0, 0), &off, &dst, &abbr));
        ASSERT_EQ(off, 0);
        ASSERT_TRUE(!dst);
        ASSERT_STREQ(abbr, "UTC");
        ASSERT_EQ(tz_local_to_utc(utcz, 1234567, &e, &l), 1);
        ASSERT_EQ(e, 1234567);
        ASSERT_ERROR(tz_next_transition(utcz, 0, &next), ENOENT);

        /* Limits. */
        ASSERT_ERROR(tz_utc_offset(berlin, INT64_MAX, &off), ERANGE);
        ASSERT_ERROR(tz_utc_offset(berlin, INT64_MIN, &off), ERANGE);
        ASSERT_ERROR(tz_local_to_utc(berlin, INT64_MIN, &e, &l), ERANGE);
        ASSERT_OK(tz_utc_offset(berlin, TZ_TIME_LIMIT, &off));
        ASSERT_OK(tz_local_to_utc(berlin, -TZ_TIME_LIMIT, &e, &l));

        /* The process's TZ plays no part. */
        ASSERT_TRUE(setenv("TZ", "America/New_York", 1) == 0);
        tzset();
        ASSERT_OK(tz_utc_offset(berlin, utc(2024, 7, 15, 12, 0), &off));
        ASSERT_EQ(off, 7200);
        ASSERT_TRUE(unsetenv("TZ") == 0);
        tzset();
}

static void test_load_names(void) {
        TimeZone *z = NULL;

        ASSERT_TRUE(tz_name_is_valid("UTC"));
        ASSERT_TRUE(tz_name_is_valid("Europe/Berlin"));
        ASSERT_TRUE(tz_name_is_valid("Etc/GMT+5"));
        ASSERT_TRUE(!tz_name_is_valid(NULL));
        ASSERT_TRUE(!tz_name_is_valid(""));
        ASSERT_TRUE(!tz_name_is_valid("/etc/localtime"));
        ASSERT_TRUE(!tz_name_is_valid("Europe/"));
        ASSERT_TRUE(!tz_name_is_valid("Europe//Berlin"));
        ASSERT_TRUE(!tz_name_is_valid("Europe/../Europe/Berlin"));
        ASSERT_TRUE(!tz_name_is_valid("../../etc/passwd"));
        ASSERT_TRUE(!tz_name_is_valid("Europe/Berlin "));
        ASSERT_TRUE(!tz_name_is_valid("CET-1CEST,M3.5.0,M10.5.0/3"));

        ASSERT_ERROR(tz_load("../../etc/passwd", &z), EINVAL);
        ASSERT_ERROR(tz_load("/etc/localtime", &z), EINVAL);
        ASSERT_ERROR(tz_load(NULL, &z), EINVAL);
        ASSERT_ERROR(tz_load("Nowhere/Atlantis", &z), ENOENT);
        ASSERT_ERROR(tz_load("Europe", &z), EISDIR);
        ASSERT_ERROR(tz_load("zone.tab", &z), EBADMSG);
        ASSERT_ERROR(tz_load("CET-1CEST", &z), ENOENT);
        ASSERT_TRUE(z == NULL); /* untouched on failure */
        ASSERT_TRUE(tz_free(NULL) == NULL);
}

/* ---- building TZif files ---- */

typedef struct TType {
        int32_t off;
        uint8_t dst;
        uint8_t abbr;
} TType;

typedef struct ZSpec {
        char version; /* 0, '2', '3', '4' */
        size_t n_times;
        const int64_t *times;
        const uint8_t *idx;
        size_t n_types;
        const TType *types;
        const char *chars;
        size_t n_chars;
        size_t n_leaps;
        const int64_t *leaps; /* occurrence; corrections count up */
        bool indicators;      /* isstd/isut arrays present (all 0) */
        const char *footer;   /* without the newlines; NULL: "" */
} ZSpec;

typedef struct Buf {
        uint8_t data[8192];
        size_t n;
} Buf;

static void put(Buf *b, const void *p, size_t n) {
        ASSERT_TRUE(b->n + n <= sizeof b->data);
        memcpy(b->data + b->n, p, n);
        b->n += n;
}

static void put32(Buf *b, uint32_t v) {
        uint8_t x[4] = { v >> 24, v >> 16, v >> 8, v };
        put(b, x, 4);
}

static void put64(Buf *b, uint64_t v) {
        put32(b, (uint32_t) (v >> 32));
        put32(b, (uint32_t) v);
}

static void put_header(Buf *b, char version, size_t isut, size_t isstd, size_t leap, size_t time, size_t type,
                       size_t chars) {
        uint8_t zero[15] = {};
        put(b, "TZif", 4);
        put(b, &version, 1);
        put(b, zero, sizeof zero);
        put32(b, isut);
        put32(b, isstd);
        put32(b, leap);
        put32(b, time);
        put32(b, type);
        put32(b, chars);
}

static void put_block(Buf *b, const ZSpec *s, size_t timesize) {
        size_t nind = s->indicators ? s->n_types : 0;

        put_header(b, s->version, nind, nind, s->n_leaps, s->n_times, s->n_types, s->n_chars);
        for (size_t i = 0; i < s->n_times; i++)
                timesize == 8 ? put64(b, (uint64_t) s->times[i]) : put32(b, (uint32_t) s->times[i]);
        if (s->n_times > 0)
                put(b, s->idx, s->n_times);
        for (size_t i = 0; i < s->n_types; i++) {
                put32(b, (uint32_t) s->types[i].off);
                put(b, &s->types[i].dst, 1);
                put(b, &s->types[i].abbr, 1);
        }
        put(b, s->chars, s->n_chars);
        for (size_t i = 0; i < s->n_leaps; i++) {
                timesize == 8 ? put64(b, (uint64_t) s->leaps[i]) : put32(b, (uint32_t) s->leaps[i]);
                put32(b, (uint32_t) (i + 1));
        }
        for (size_t i = 0; i < 2 * nind; i++)
                put(b, "", 1);
}

static void build(Buf *b, const ZSpec *s) {
        b->n = 0;
        if (s->version == 0) {
                put_block(b, s, 4);
                return;
        }
        /* A minimal version 1 block, as zic -b slim writes it. */
        put_header(b, s->version, 0, 0, 0, 0, 1, 1);
        put(b, "\0\0\0\0\0\0\0", 7);
        put_block(b, s, 8);
        put(b, "\n", 1);
        if (s->footer)
                put(b, s->footer, strlen(s->footer));
        put(b, "\n", 1);
}

static int parse_buf(const Buf *b, TimeZone **ret) {
        return tz_parse(b->data, b->n, ret);
}

static const int64_t cet_times[] = { 1711846800 /* 2024-03-31 01:00Z */, 1729990800 /* 2024-10-27 01:00Z */ };
static const uint8_t cet_idx[] = { 1, 0 };
static const TType cet_types[] = { { 3600, 0, 0 }, { 7200, 1, 4 } };
static const char cet_chars[] = "CET\0CEST";

static ZSpec cet_spec(void) {
        return (ZSpec) {
                .version = '2', .n_times = 2, .times = cet_times, .idx = cet_idx, .n_types = 2, .types = cet_types,
                .chars = cet_chars, .n_chars = sizeof cet_chars, .footer = "CET-1CEST,M3.5.0,M10.5.0/3",
        };
}

/* A zone made of a footer alone must read like glibc given the same TZ
 * string (glibc parses POSIX TZ strings itself). */
static void check_footer_against_glibc(const char *footer, char version) {
        _cleanup_(tz_freep) TimeZone *z = NULL;
        TType t = { 0, 0, 0 };
        ZSpec s = { .version = version, .n_types = 1, .types = &t, .chars = "LMT", .n_chars = 4, .footer = footer };
        Buf b;

        build(&b, &s);
        ASSERT_OK(parse_buf(&b, &z));
        compare_zone(z, footer, footer, utc(1970, 1, 1, 0, 0), utc(2101, 1, 1, 0, 0), true);
}

static void test_footers(void) {
        check_footer_against_glibc("CET-1CEST,M3.5.0,M10.5.0/3", '2');
        check_footer_against_glibc("<+0330>-3:30", '2');
        check_footer_against_glibc("EST5EDT,M3.2.0,M11.1.0", '2');
        check_footer_against_glibc("AAA3BBB,J60/2,J300/3", '2');          /* Jn: never Feb 29 */
        check_footer_against_glibc("AAA-3BBB-4:15,59,300/1:30:15", '2');  /* n: Feb 29 counts */
        check_footer_against_glibc("<-03>3<-02>,M10.1.0/0,M2.3.0/0", '2'); /* southern */
        check_footer_against_glibc("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", '2');
        check_footer_against_glibc("IST-2IDT,M3.4.4/26,M10.5.0", '3');
        check_footer_against_glibc("<-02>2<-01>,M3.5.0/-1,M10.5.0/0", '3');
        check_footer_against_glibc("XXX-1YYY,M3.5.0/-167,M10.5.0/167", '4');
        check_footer_against_glibc("<+12>-12", '3');
        check_footer_against_glibc("IST-1GMT0,M10.5.0,M3.5.0/1", '2'); /* Dublin: DST is the lower offset */

        /* DST all year (RFC 8536 section 3.3.1's example): -4 always. */
        {
                _cleanup_(tz_freep) TimeZone *z = NULL;
                TType t = { -18000, 0, 0 };
                ZSpec s = { .version = '3', .n_types = 1, .types = &t, .chars = "EST", .n_chars = 4,
                            .footer = "EST5EDT,0/0,J365/25" };
                Buf b;
                int32_t off;

                build(&b, &s);
                ASSERT_OK(parse_buf(&b, &z));
                for (int64_t x = utc(2020, 1, 1, 0, 0) - 86400; x < utc(2030, 1, 1, 0, 0); x += 3001) {
                        ASSERT_OK(tz_utc_offset(z, x, &off));
                        ASSERT_EQ(off, -4 * 3600);
                }
        }

        /* Not a valid footer: each file is otherwise fine. */
        static const struct {
                char version;
                const char *footer;
        } bad[] = {
                { '2', "CET" },
                { '2', "CET-" },
                { '2', "CET-1CEST" },                   /* DST without rules */
                { '2', "CET-25" },
                { '2', "CE-1" },
                { '2', "CET-1:60" },
                { '2', "CET-1CEST,M13.1.0,M10.5.0" },
                { '2', "CET-1CEST,M3.6.0,M10.5.0" },
                { '2', "CET-1CEST,M3.5.7,M10.5.0" },
                { '2', "CET-1CEST,M3.5,M10.5.0" },
                { '2', "CET-1CEST,J0,J300" },
                { '2', "CET-1CEST,366,300" },
                { '2', "CET-1CEST,M3.5.0" },
                { '2', "CET-1CEST,M3.5.0,M10.5.0," },
                { '2', "CET-1CEST,M3.5.0/26,M10.5.0" }, /* needs version 3 */
                { '2', "CET-1CEST,M3.5.0/-1,M10.5.0" }, /* needs version 3 */
                { '3', "CET-1CEST,M3.5.0/168,M10.5.0" },
                { '2', "<+0330-3:30" },
                { '2', "<+03;30>-3:30" },
                { '2', "<+3>-3" },
                { '2', "CET-1 " },
                { '2', "CET-1\tX" },
                { '2', "<ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGH>-1" }, /* longer than TZ_ABBR_MAX */
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                TimeZone *z = NULL;
                ZSpec s = cet_spec();
                Buf b;

                s.version = bad[i].version;
                s.footer = bad[i].footer;
                build(&b, &s);
                if (parse_buf(&b, &z) != -EBADMSG) {
                        fprintf(stderr, "footer \"%s\" accepted\n", bad[i].footer);
                        abort();
                }
                ASSERT_TRUE(z == NULL);
        }
        /* The same files with good footers pass: the footer was the fault. */
        {
                _cleanup_(tz_freep) TimeZone *z = NULL, *z3 = NULL, *ze = NULL;
                ZSpec s = cet_spec();
                Buf b;

                build(&b, &s);
                ASSERT_OK(parse_buf(&b, &z));
                s.version = '3';
                s.footer = "CET-1CEST,M3.5.0/26,M10.5.0";
                build(&b, &s);
                ASSERT_OK(parse_buf(&b, &z3));
                s.footer = ""; /* empty: the last type stays */
                build(&b, &s);
                ASSERT_OK(parse_buf(&b, &ze));
                int32_t off;
                ASSERT_OK(tz_utc_offset(ze, utc(2030, 7, 1, 0, 0), &off));
                ASSERT_EQ(off, 3600);
                ASSERT_OK(tz_utc_offset(z, utc(2030, 7, 1, 0, 0), &off));
                ASSERT_EQ(off, 7200);
        }
}

static void expect_bad(const Buf *b, const char *what) {
        TimeZone *z = NULL;
        int r = parse_buf(b, &z);
        if (r != -EBADMSG) {
                fprintf(stderr, "%s: tz_parse() returned %d, expected -EBADMSG\n", what, r);
                abort();
        }
        ASSERT_TRUE(z == NULL);
}

static void patch32(Buf *b, size_t at, uint32_t v) {
        b->data[at] = (uint8_t) (v >> 24);
        b->data[at + 1] = (uint8_t) (v >> 16);
        b->data[at + 2] = (uint8_t) (v >> 8);
        b->data[at + 3] = (uint8_t) v;
}

static void test_broken(void) {
        ZSpec s = cet_spec();
        Buf good, b;
        /* Layout of build(): v1 header (44) + v1 block (7), then the v2
         * header at 51. Counts at +20 isutcnt, +24 isstdcnt, +28 leapcnt,
         * +32 timecnt, +36 typecnt, +40 charcnt. */
        const size_t h2 = 44 + 7;

        build(&good, &s);
        {
                _cleanup_(tz_freep) TimeZone *z = NULL;
                ASSERT_OK(parse_buf(&good, &z));
        }

        /* Every truncation. */
        for (size_t n = 0; n < good.n; n++) {
                b = good;
                b.n = n;
                expect_bad(&b, "truncated");
        }
        b = good;
        b.data[0] = 'X';
        expect_bad(&b, "bad magic");
        b = good;
        b.data[h2 + 1] = 'z';
        expect_bad(&b, "bad magic of the second header");
        b = good;
        b.data[4] = b.data[h2 + 4] = '1';
        expect_bad(&b, "version '1'");
        b = good;
        b.data[h2 + 4] = '3';
        expect_bad(&b, "versions of the headers differ");
        b = good;
        patch32(&b, 32, 0xffffffffu);
        expect_bad(&b, "version 1 timecnt past the end");
        b = good;
        patch32(&b, h2 + 32, 0xffffffffu);
        expect_bad(&b, "timecnt past the end");
        b = good;
        patch32(&b, h2 + 32, 3);
        expect_bad(&b, "timecnt one too many");
        b = good;
        patch32(&b, h2 + 36, 0xffffffffu);
        expect_bad(&b, "typecnt past the end");
        b = good;
        patch32(&b, h2 + 40, 0x7fffffffu);
        expect_bad(&b, "charcnt past the end");
        b = good;
        patch32(&b, h2 + 28, 1000);
        expect_bad(&b, "leapcnt past the end");
        b = good;
        patch32(&b, h2 + 20, 2);
        expect_bad(&b, "isutcnt past the end");
        b = good;
        b.data[b.n - 1] = 'x';
        expect_bad(&b, "footer without its closing newline");
        b = good;
        b.data[b.n - strlen(s.footer) - 2] = ' ';
        expect_bad(&b, "footer without its opening newline");
        b = good;
        b.data[b.n - 3] = '\0';
        expect_bad(&b, "NUL in the footer");

        /* Coherent files with bad contents. */
        static const int64_t same[] = { 1000, 1000 }, down[] = { 2000, 1000 };
        static const uint8_t idx_out[] = { 0, 2 };
        ZSpec t;

        t = cet_spec();
        t.times = same;
        build(&b, &t);
        expect_bad(&b, "repeated transition time");
        t.times = down;
        build(&b, &t);
        expect_bad(&b, "decreasing transition times");
        t = cet_spec();
        t.idx = idx_out;
        build(&b, &t);
        expect_bad(&b, "type index out of range");

        TType types[2];
        memcpy(types, cet_types, sizeof types);
        t = cet_spec();
        t.types = types;
        types[1].abbr = sizeof cet_chars;
        build(&b, &t);
        expect_bad(&b, "abbreviation index out of range");
        types[1].abbr = 4;
        t.n_chars = sizeof cet_chars - 1; /* "CEST" loses its NUL */
        build(&b, &t);
        expect_bad(&b, "abbreviation without a NUL");
        t.n_chars = sizeof cet_chars;
        types[1].dst = 2;
        build(&b, &t);
        expect_bad(&b, "isdst 2");
        types[1].dst = 1;
        types[1].off = INT32_MIN;
        build(&b, &t);
        expect_bad(&b, "utoff -2^31");
        types[1].off = 100000;
        build(&b, &t);
        expect_bad(&b, "utoff beyond 26 hours");
        types[1].off = 7200;
        t.n_types = 0;
        t.n_times = 0;
        build(&b, &t);
        expect_bad(&b, "no types");
        t = cet_spec();
        t.n_chars = 0;
        build(&b, &t);
        expect_bad(&b, "no characters");

        static const int64_t leaps_ok[] = { 78796800, 94694401 }, leaps_bad[] = { 94694401, 78796800 };
        t = cet_spec();
        t.n_leaps = 2;
        t.leaps = leaps_ok;
        t.indicators = true;
        build(&b, &t);
        {
                _cleanup_(tz_freep) TimeZone *z = NULL;
                ASSERT_OK(parse_buf(&b, &z)); /* leap seconds and indicators are fine */
        }
        size_t ind = b.n - strlen(t.footer) - 2 - 1; /* the last isut byte */
        b.data[ind] = 1;                             /* isut without isstd */
        expect_bad(&b, "isut without isstd");
        b.data[ind - 2] = 1;                         /* isstd of that type */
        {
                _cleanup_(tz_freep) TimeZone *z = NULL;
                ASSERT_OK(parse_buf(&b, &z));
        }
        b.data[ind] = 2;
        expect_bad(&b, "isut 2");
        t.leaps = leaps_bad;
        build(&b, &t);
        expect_bad(&b, "leap seconds out of order");

        /* Version 1: no footer, 32-bit data. */
        t = cet_spec();
        t.version = 0;
        build(&b, &t);
        {
                _cleanup_(tz_freep) TimeZone *z = NULL;
                int32_t off;
                ASSERT_OK(parse_buf(&b, &z));
                ASSERT_OK(tz_utc_offset(z, utc(2024, 7, 1, 0, 0), &off));
                ASSERT_EQ(off, 7200);
                ASSERT_OK(tz_utc_offset(z, utc(2030, 7, 1, 0, 0), &off));
                ASSERT_EQ(off, 3600); /* the last type, no rule */
                ASSERT_OK(tz_utc_offset(z, utc(2000, 7, 1, 0, 0), &off));
                ASSERT_EQ(off, 3600); /* type 0 before the first transition */
        }
        b.n--;
        expect_bad(&b, "truncated version 1");
}

/* Version 1 and 4 files made from the system's fat Europe/Berlin. */
static void test_versions(void) {
        _cleanup_free_ char *data = NULL;
        _cleanup_(tz_freep) TimeZone *v1 = NULL, *v4 = NULL;
        size_t size, v1size;
        uint32_t c[6];

        ASSERT_OK(read_full_file(TZ_ZONEINFO_DIR "/Europe/Berlin", TZ_FILE_MAX, &data, &size));
        ASSERT_TRUE(size > 44 && data[4] == '2');
        for (int i = 0; i < 6; i++) {
                const uint8_t *p = (const uint8_t *) data + 20 + 4 * i;
                c[i] = (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
        }
        /* isut, isstd, leap, time, type, char */
        v1size = 44 + c[3] * 5 + c[4] * 6 + c[5] + c[2] * 8 + c[1] + c[0];
        ASSERT_TRUE(v1size < size);

        data[4] = '4';
        data[v1size + 4] = '4';
        ASSERT_OK(tz_parse(data, size, &v4));
        compare_zone(v4, "Europe/Berlin as version 4", ":Europe/Berlin", utc(1970, 1, 1, 0, 0), utc(2101, 1, 1, 0, 0),
                     false);

        /* The version 1 part alone holds transitions up to 2037. */
        data[4] = 0;
        ASSERT_OK(tz_parse(data, v1size, &v1));
        compare_zone(v1, "Europe/Berlin as version 1", ":Europe/Berlin", utc(1970, 1, 1, 0, 0),
                     utc(2038, 1, 1, 0, 0), false);
        int32_t off;
        ASSERT_OK(tz_utc_offset(v1, utc(2050, 7, 1, 0, 0), &off));
        ASSERT_EQ(off, 3600);
        ASSERT_TRUE(unsetenv("TZ") == 0);
        tzset();
}

/* zic -b slim writes files in which the footer takes over from about 1996
 * (Berlin) or 2007 (New York): compile the system's tzdata source that way
 * and compare the slim files with glibc reading the fat ones. */
static void test_slim(void) {
        char dir[] = "/tmp/test-tzfile-XXXXXX";
        const char *zic = access("/usr/sbin/zic", X_OK) == 0 ? "/usr/sbin/zic" : "zic";
        const char *src = TZ_ZONEINFO_DIR "/tzdata.zi";

        if (access(src, R_OK) < 0) {
                fprintf(stderr, "   %s missing, skipping slim files\n", src);
                return;
        }
        ASSERT_TRUE(mkdtemp(dir) != NULL);
        char *argv[] = { (char *) zic, (char *) "-b", (char *) "slim", (char *) "-d", dir, (char *) src, NULL };
        int r = spawn_run(argv, &(SpawnOptions) { .output_fd = -1, .timeout_sec = 60 });
        if (r < 0) {
                fprintf(stderr, "   zic not available, skipping slim files\n");
                ASSERT_TRUE(rmdir(dir) == 0);
                return;
        }
        ASSERT_EQ(r, 0);

        for (size_t i = 0; i < ELEMENTSOF(zones); i++) {
                _cleanup_free_ char *path = path_join(dir, zones[i]), *data = NULL;
                _cleanup_(tz_freep) TimeZone *z = NULL;
                char what[TZ_NAME_MAX + 16], tz[TZ_NAME_MAX + 2];
                size_t size;

                ASSERT_TRUE(path != NULL);
                ASSERT_OK(read_full_file(path, TZ_FILE_MAX, &data, &size));
                ASSERT_OK(tz_parse(data, size, &z));
                (void) snprintf(what, sizeof what, "%s (slim)", zones[i]);
                (void) snprintf(tz, sizeof tz, ":%s", zones[i]);
                compare_zone(z, what, tz, utc(1970, 1, 1, 0, 0), utc(2101, 1, 1, 0, 0), true);
        }
        ASSERT_TRUE(unsetenv("TZ") == 0);
        tzset();

        char *rm[] = { (char *) "rm", (char *) "-rf", dir, NULL };
        ASSERT_EQ(spawn_run(rm, &(SpawnOptions) { .output_fd = -1 }), 0);
}

/* The fuzz corpus: real zone files parse, the broken ones ("bad-*") are
 * refused with -EBADMSG. */
static void test_corpus(void) {
        const char *root = getenv("HULL_SOURCE_ROOT");
        _cleanup_free_ char *dir = NULL;
        struct dirent **names;
        unsigned good = 0, bad = 0;
        int n;

        if (!root) {
                fprintf(stderr, "   HULL_SOURCE_ROOT not set, skipping the corpus\n");
                return;
        }
        dir = path_join(root, "src/fuzz/corpus/tzfile");
        ASSERT_TRUE(dir != NULL);
        n = scandir(dir, &names, NULL, alphasort);
        ASSERT_TRUE(n > 0);
        for (int i = 0; i < n; i++) {
                const char *name = names[i]->d_name;
                if (name[0] != '.') {
                        _cleanup_free_ char *path = path_join(dir, name), *data = NULL;
                        TimeZone *z = NULL;
                        size_t size;
                        int r;

                        ASSERT_TRUE(path != NULL);
                        ASSERT_OK(read_full_file(path, TZ_FILE_MAX, &data, &size));
                        r = tz_parse(data, size, &z);
                        if (strncmp(name, "bad-", 4) == 0) {
                                if (r != -EBADMSG) {
                                        fprintf(stderr, "%s: tz_parse() returned %d\n", name, r);
                                        abort();
                                }
                                bad++;
                        } else {
                                ASSERT_OK(r);
                                good++;
                        }
                        z = tz_free(z);
                }
                free(names[i]);
        }
        free(names);
        ASSERT_TRUE(good >= 5 && bad >= 10);
}

int main(void) {
        TEST_RUN(test_load_names);
        TEST_RUN(test_known);
        TEST_RUN(test_broken);
        TEST_RUN(test_corpus);
        TEST_RUN(test_footers);
        TEST_RUN(test_versions);
        TEST_RUN(test_zones_against_glibc);
        TEST_RUN(test_slim);
        return 0;
}
