/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "tzfile.h"

/* RFC 8536 section 3.2: utoff SHOULD lie in [-89999, 93599]; we insist, so
 * that sums of times and offsets stay small. A POSIX TZ offset is at most
 * 24:59:59 either way, which fits too. */
#define UTOFF_MIN (-89999)
#define UTOFF_MAX 93599
/* A zone needs at most 256 types: a transition names its type in a byte. */
#define TYPES_MAX 256
#define HEADER_SIZE 44

typedef enum RuleKind {
        RULE_JULIAN, /* Jn: 1..365, February 29 never counted */
        RULE_DAY,    /* n: 0..365, February 29 counted */
        RULE_MONTH,  /* Mm.w.d: day d (0 = Sunday) of week w (5 = last) of month m */
} RuleKind;

typedef struct TzRule {
        RuleKind kind;
        int day;
        int week;
        int month;
        int32_t time; /* seconds after local midnight, in the time in effect before the change */
} TzRule;

/* The POSIX TZ string at the end of a version 2+ file. */
typedef struct TzFooter {
        bool present; /* non-empty */
        bool has_dst;
        int32_t std_offset, dst_offset; /* seconds east of UTC */
        TzRule start, end;              /* DST starts / ends */
        char std_name[TZ_ABBR_MAX + 1];
        char dst_name[TZ_ABBR_MAX + 1];
} TzFooter;

typedef struct TzType {
        int32_t offset;
        bool isdst;
        uint32_t abbr; /* index into chars, NUL-terminated there */
} TzType;

struct TimeZone {
        int64_t *times; /* strictly increasing */
        uint8_t *type_of; /* per transition, < n_types */
        size_t n_times;
        TzType *types;
        size_t n_types;
        char *chars;
        TzFooter footer;
        int32_t min_offset, max_offset; /* over all types and the footer */
};

typedef struct TzHeader {
        int version; /* 1, 2, 3, ... */
        uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} TzHeader;

/* ---- calendar ---- */

static int64_t floor_div(int64_t a, int64_t b) {
        int64_t q = a / b;
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        int64_t yoe = y - era * 400;
        int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
}

static int64_t year_of_day(int64_t day) {
        int64_t zd = day + 719468;
        int64_t era = (zd >= 0 ? zd : zd - 146096) / 146097;
        int64_t doe = zd - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        int64_t mp = (5 * doy + 2) / 153;
        int64_t m = mp < 10 ? mp + 3 : mp - 9;
        return yoe + era * 400 + (m <= 2);
}

static bool is_leap_year(int64_t y) {
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int m) {
        static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        return days[m - 1] + (m == 2 && is_leap_year(y));
}

/* 0 = Sunday; 1970-01-01 was a Thursday. */
static int weekday_of_day(int64_t day) {
        int64_t w = (day + 4) % 7;
        return (int) (w < 0 ? w + 7 : w);
}

/* Days after January 1 of 'year' on which the rule's date falls. */
static int64_t rule_day(const TzRule *r, int64_t year) {
        switch (r->kind) {
        case RULE_JULIAN:
                return r->day - 1 + (is_leap_year(year) && r->day >= 60);
        case RULE_DAY:
                return r->day;
        case RULE_MONTH: {
                int64_t first = days_from_civil(year, r->month, 1);
                int64_t d = (r->day - weekday_of_day(first) + 7) % 7 + (int64_t) (r->week - 1) * 7;
                while (d >= month_days(year, r->month))
                        d -= 7;
                return first - days_from_civil(year, 1, 1) + d;
        }
        }
        return 0;
}

/* The instant of a rule's change in 'year', given the offset in effect
 * before it (rule times are local times of the old offset). */
static int64_t rule_instant(const TzRule *r, int64_t year, int32_t offset_before) {
        return (days_from_civil(year, 1, 1) + rule_day(r, year)) * 86400 + r->time - offset_before;
}

/* ---- the POSIX TZ footer ---- */

typedef struct Cursor {
        const char *p, *end;
} Cursor;

static bool at_end(const Cursor *c) {
        return c->p >= c->end;
}

static int peek(const Cursor *c) {
        return at_end(c) ? -1 : (unsigned char) *c->p;
}

static bool is_ascii_alpha(int ch) {
        return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

static bool is_ascii_digit(int ch) {
        return ch >= '0' && ch <= '9';
}

/* "CET" (three or more letters) or "<+0530>" (three or more of
 * [A-Za-z0-9+-] in angle brackets). */
static bool parse_name(Cursor *c, char ret[static TZ_ABBR_MAX + 1]) {
        size_t n = 0;

        if (peek(c) == '<') {
                c->p++;
                while (!at_end(c) && *c->p != '>') {
                        int ch = (unsigned char) *c->p;
                        if (!is_ascii_alpha(ch) && !is_ascii_digit(ch) && ch != '+' && ch != '-')
                                return false;
                        if (n >= TZ_ABBR_MAX)
                                return false;
                        ret[n++] = (char) ch;
                        c->p++;
                }
                if (peek(c) != '>')
                        return false;
                c->p++;
        } else
                while (is_ascii_alpha(peek(c))) {
                        if (n >= TZ_ABBR_MAX)
                                return false;
                        ret[n++] = *c->p++;
                }
        if (n < 3)
                return false;
        ret[n] = '\0';
        return true;
}

/* Up to max_digits decimal digits, at least one. */
static bool parse_number(Cursor *c, int max_digits, int *ret) {
        int v = 0, n = 0;

        while (is_ascii_digit(peek(c))) {
                if (n >= max_digits)
                        return false;
                v = v * 10 + (*c->p++ - '0');
                n++;
        }
        if (n == 0)
                return false;
        *ret = v;
        return true;
}

/* [+|-]hh[:mm[:ss]] with hh <= max_hours; a sign only if allowed. */
static bool parse_hms(Cursor *c, bool allow_sign, int max_hours, int32_t *ret) {
        int sign = 1, h, m = 0, s = 0;

        if (peek(c) == '+' || peek(c) == '-') {
                if (!allow_sign)
                        return false;
                sign = *c->p++ == '-' ? -1 : 1;
        }
        if (!parse_number(c, 3, &h) || h > max_hours)
                return false;
        if (peek(c) == ':') {
                c->p++;
                if (!parse_number(c, 2, &m) || m > 59)
                        return false;
                if (peek(c) == ':') {
                        c->p++;
                        if (!parse_number(c, 2, &s) || s > 59)
                                return false;
                }
        }
        *ret = sign * (h * 3600 + m * 60 + s);
        return true;
}

/* ",date[/time]" with the date forms Jn, n and Mm.w.d. Version 3 allows
 * times from -167:00:00 to 167:00:00 (RFC 8536 section 3.3.1). */
static bool parse_rule(Cursor *c, int version, TzRule *ret) {
        TzRule r = { .time = 2 * 3600 };

        if (peek(c) != ',')
                return false;
        c->p++;
        if (peek(c) == 'J') {
                c->p++;
                r.kind = RULE_JULIAN;
                if (!parse_number(c, 3, &r.day) || r.day < 1 || r.day > 365)
                        return false;
        } else if (peek(c) == 'M') {
                c->p++;
                r.kind = RULE_MONTH;
                if (!parse_number(c, 2, &r.month) || r.month < 1 || r.month > 12 || peek(c) != '.')
                        return false;
                c->p++;
                if (!parse_number(c, 1, &r.week) || r.week < 1 || r.week > 5 || peek(c) != '.')
                        return false;
                c->p++;
                if (!parse_number(c, 1, &r.day) || r.day > 6)
                        return false;
        } else {
                r.kind = RULE_DAY;
                if (!parse_number(c, 3, &r.day) || r.day > 365)
                        return false;
        }
        if (peek(c) == '/') {
                c->p++;
                if (!parse_hms(c, version >= 3, version >= 3 ? 167 : 24, &r.time))
                        return false;
        }
        *ret = r;
        return true;
}

/* std offset [dst [offset] ,rule,rule]. A DST name without rules leaves
 * the changes to the implementation in POSIX; zic never writes that, so
 * it is refused. */
static int parse_footer(const char *s, size_t len, int version, TzFooter *ret) {
        Cursor c = { s, s + len };
        TzFooter f = {};
        int32_t off;

        if (len == 0) {
                *ret = f;
                return 0;
        }
        if (!parse_name(&c, f.std_name) || !parse_hms(&c, true, 24, &off))
                return -EBADMSG;
        f.std_offset = -off; /* POSIX counts west of Greenwich */
        f.present = true;
        if (!at_end(&c)) {
                if (!parse_name(&c, f.dst_name))
                        return -EBADMSG;
                f.dst_offset = f.std_offset + 3600;
                if (peek(&c) != ',') {
                        if (!parse_hms(&c, true, 24, &off))
                                return -EBADMSG;
                        f.dst_offset = -off;
                }
                if (!parse_rule(&c, version, &f.start) || !parse_rule(&c, version, &f.end))
                        return -EBADMSG;
                f.has_dst = true;
        }
        if (!at_end(&c))
                return -EBADMSG;
        *ret = f;
        return 0;
}

/* Whether DST is in effect at t by the footer's rules, and the next change
 * after t (INT64_MAX without DST). The changes of the years around t's
 * (UTC) year are laid out in order; the last one at or before t decides.
 * Two years either side cover any rule time of +-167 hours; on a tie, the
 * later year's change wins, so "J1/0,J365/25" is DST all year. */
static bool footer_dst_at(const TzFooter *f, int64_t t, int64_t *ret_next) {
        int64_t year = year_of_day(floor_div(t, 86400)), best = 0, next = INT64_MAX;
        bool found = false, dst = false;

        if (!f->has_dst) {
                *ret_next = INT64_MAX;
                return false;
        }
        for (int64_t y = year - 2; y <= year + 2; y++) {
                int64_t ev[2] = { rule_instant(&f->start, y, f->std_offset), rule_instant(&f->end, y, f->dst_offset) };
                for (int k = 0; k < 2; k++) {
                        if (ev[k] <= t) {
                                if (!found || ev[k] >= best) {
                                        best = ev[k];
                                        dst = k == 0;
                                        found = true;
                                }
                        } else if (ev[k] < next)
                                next = ev[k];
                }
        }
        *ret_next = next;
        return dst;
}

/* ---- lookup ---- */

typedef struct TzState {
        int32_t offset;
        bool isdst;
        const char *abbr;
} TzState;

static void state_of_type(const TimeZone *z, size_t i, TzState *ret) {
        *ret = (TzState) { z->types[i].offset, z->types[i].isdst, z->chars + z->types[i].abbr };
}

static void state_of_footer(const TimeZone *z, int64_t t, TzState *ret, int64_t *ret_next) {
        const TzFooter *f = &z->footer;
        if (footer_dst_at(f, t, ret_next))
                *ret = (TzState) { f->dst_offset, true, f->dst_name };
        else
                *ret = (TzState) { f->std_offset, false, f->std_name };
}

/* The state at t and the next transition after t (INT64_MAX: none). Before
 * the first transition type 0 applies, after the last one the footer (or,
 * without one, the last transition's type), RFC 8536 section 3.2. */
static void lookup(const TimeZone *z, int64_t t, TzState *ret, int64_t *ret_next) {
        size_t lo = 0, hi = z->n_times;

        /* lo = the number of transitions at or before t */
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (z->times[mid] <= t)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo == z->n_times) {
                if (z->footer.present) {
                        state_of_footer(z, t, ret, ret_next);
                        return;
                }
                state_of_type(z, z->n_times > 0 ? z->type_of[z->n_times - 1] : 0, ret);
                *ret_next = INT64_MAX;
                return;
        }
        state_of_type(z, lo == 0 ? 0 : z->type_of[lo - 1], ret);
        *ret_next = z->times[lo];
}

static bool time_ok(int64_t t) {
        return t >= -TZ_TIME_LIMIT && t <= TZ_TIME_LIMIT;
}

int tz_lookup(const TimeZone *z, int64_t t, int32_t *ret_offset, bool *ret_isdst, const char **ret_abbreviation) {
        TzState s;
        int64_t next;

        if (!z)
                return -EINVAL;
        if (!time_ok(t))
                return -ERANGE;
        lookup(z, t, &s, &next);
        if (ret_offset)
                *ret_offset = s.offset;
        if (ret_isdst)
                *ret_isdst = s.isdst;
        if (ret_abbreviation)
                *ret_abbreviation = s.abbr;
        return 0;
}

int tz_utc_offset(const TimeZone *z, int64_t t, int32_t *ret_offset) {
        return tz_lookup(z, t, ret_offset, NULL, NULL);
}

int tz_next_transition(const TimeZone *z, int64_t t, int64_t *ret) {
        TzState s;
        int64_t next;

        if (!z || !ret)
                return -EINVAL;
        if (!time_ok(t))
                return -ERANGE;
        lookup(z, t, &s, &next);
        if (next == INT64_MAX)
                return -ENOENT;
        if (!time_ok(next))
                return -ERANGE;
        *ret = next;
        return 0;
}

int tz_local_to_utc(const TimeZone *z, int64_t local_seconds, int64_t *ret_earliest, int64_t *ret_latest) {
        int64_t t, last, earliest = 0, latest = 0, first_at_or_after = 0;
        bool have_first = false;
        int n = 0;

        if (!z)
                return -EINVAL;
        if (!time_ok(local_seconds))
                return -ERANGE;

        /* Any instant whose wall clock reads local_seconds lies in
         * [local - max_offset, local - min_offset]: walk the stretches of
         * constant offset there in order (a handful for real zones, at
         * most a few per hour of the 51-hour span for any valid file).
         * A stretch [t, next) with offset o holds a solution iff
         * t <= local - o < next. */
        t = local_seconds - z->max_offset;
        last = local_seconds - z->min_offset;
        while (t <= last) {
                TzState s;
                int64_t next, c;

                lookup(z, t, &s, &next);
                c = local_seconds - s.offset;
                if (c >= t && c < next) {
                        if (n == 0)
                                earliest = c;
                        latest = c;
                        if (n < INT32_MAX)
                                n++;
                        if (!have_first) {
                                first_at_or_after = c;
                                have_first = true;
                        }
                } else if (!have_first && c < t) {
                        /* The wall clock jumped past local_seconds at t. */
                        first_at_or_after = t;
                        have_first = true;
                }
                if (next == INT64_MAX)
                        break;
                t = next;
        }
        if (n == 0) {
                /* The last stretch always reaches local_seconds: at
                 * local - min_offset the wall clock reads local or later. */
                if (!have_first)
                        return -ERANGE; /* cannot happen */
                earliest = latest = first_at_or_after;
        }
        if (ret_earliest)
                *ret_earliest = earliest;
        if (ret_latest)
                *ret_latest = latest;
        return n;
}

/* ---- parsing ---- */

static uint32_t be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p) {
        return (int64_t) ((uint64_t) be32(p) << 32 | be32(p + 4));
}

static int64_t read_time(const uint8_t *p, size_t timesize) {
        return timesize == 8 ? be64(p) : (int64_t) (int32_t) be32(p);
}

static int parse_header(const uint8_t *p, size_t size, TzHeader *ret) {
        TzHeader h = {};

        if (size < HEADER_SIZE || memcmp(p, "TZif", 4) != 0)
                return -EBADMSG;
        /* 0 for version 1, else the ASCII digit; later versions are
         * compatible extensions (RFC 8536 section 3.1). */
        if (p[4] == 0)
                h.version = 1;
        else if (p[4] >= '2' && p[4] <= '9')
                h.version = p[4] - '0';
        else
                return -EBADMSG;
        h.isutcnt = be32(p + 20);
        h.isstdcnt = be32(p + 24);
        h.leapcnt = be32(p + 28);
        h.timecnt = be32(p + 32);
        h.typecnt = be32(p + 36);
        h.charcnt = be32(p + 40);
        *ret = h;
        return 0;
}

/* Counts are 32 bits each, so the sum cannot overflow 64 bits. */
static uint64_t block_size(const TzHeader *h, size_t timesize) {
        return (uint64_t) h->timecnt * timesize + h->timecnt + (uint64_t) h->typecnt * 6 + h->charcnt +
               (uint64_t) h->leapcnt * (timesize + 4) + h->isstdcnt + h->isutcnt;
}

static int parse_block(const uint8_t *p, const TzHeader *h, size_t timesize, TimeZone *z) {
        const uint8_t *times = p, *idx = times + (size_t) h->timecnt * timesize,
                      *types = idx + h->timecnt, *chars = types + (size_t) h->typecnt * 6,
                      *leaps = chars + h->charcnt, *isstd = leaps + (size_t) h->leapcnt * (timesize + 4),
                      *isut = isstd + h->isstdcnt;

        if (h->typecnt == 0 || h->typecnt > TYPES_MAX || h->charcnt == 0 ||
            (h->isutcnt != 0 && h->isutcnt != h->typecnt) || (h->isstdcnt != 0 && h->isstdcnt != h->typecnt))
                return -EBADMSG;

        z->n_times = h->timecnt;
        z->n_types = h->typecnt;
        z->times = malloc(MAX(z->n_times, (size_t) 1) * sizeof(int64_t));
        z->type_of = malloc(MAX(z->n_times, (size_t) 1));
        z->types = malloc(z->n_types * sizeof(TzType));
        z->chars = malloc((size_t) h->charcnt + 1);
        if (!z->times || !z->type_of || !z->types || !z->chars)
                return -ENOMEM;

        for (size_t i = 0; i < z->n_times; i++) {
                z->times[i] = read_time(times + i * timesize, timesize);
                if (i > 0 && z->times[i] <= z->times[i - 1])
                        return -EBADMSG;
                z->type_of[i] = idx[i];
                if (idx[i] >= h->typecnt)
                        return -EBADMSG;
        }

        memcpy(z->chars, chars, h->charcnt);
        z->chars[h->charcnt] = '\0';
        for (size_t i = 0; i < z->n_types; i++) {
                const uint8_t *t = types + i * 6;
                int32_t off = (int32_t) be32(t);

                if (off < UTOFF_MIN || off > UTOFF_MAX || t[4] > 1 || t[5] >= h->charcnt ||
                    !memchr(chars + t[5], '\0', h->charcnt - t[5]))
                        return -EBADMSG;
                z->types[i] = (TzType) { .offset = off, .isdst = t[4], .abbr = t[5] };
        }

        /* Leap-second records are not used (tzfile.h), but must be sane:
         * strictly increasing occurrences. */
        for (size_t i = 1; i < h->leapcnt; i++)
                if (read_time(leaps + i * (timesize + 4), timesize) <=
                    read_time(leaps + (i - 1) * (timesize + 4), timesize))
                        return -EBADMSG;

        for (size_t i = 0; i < h->isstdcnt; i++)
                if (isstd[i] > 1)
                        return -EBADMSG;
        for (size_t i = 0; i < h->isutcnt; i++)
                if (isut[i] > 1 || (isut[i] == 1 && (h->isstdcnt == 0 || isstd[i] != 1)))
                        return -EBADMSG;
        return 0;
}

int tz_parse(const void *data, size_t size, TimeZone **ret) {
        _cleanup_(tz_freep) TimeZone *z = NULL;
        const uint8_t *p = data;
        TzHeader h;
        size_t pos = 0, timesize = 4;
        uint64_t bs;
        int r;

        if (!ret || (!data && size > 0))
                return -EINVAL;

        z = calloc(1, sizeof(TimeZone));
        if (!z)
                return -ENOMEM;

        r = parse_header(p, size, &h);
        if (r < 0)
                return r;
        pos = HEADER_SIZE;
        bs = block_size(&h, 4);
        if (bs > size - pos)
                return -EBADMSG;

        if (h.version >= 2) {
                /* Skip the 32-bit data of version 1 readers, then read the
                 * 64-bit header and data. */
                TzHeader h2;
                pos += (size_t) bs;
                r = parse_header(p + pos, size - pos, &h2);
                if (r < 0)
                        return r;
                if (h2.version != h.version)
                        return -EBADMSG;
                h = h2;
                pos += HEADER_SIZE;
                timesize = 8;
                bs = block_size(&h, 8);
                if (bs > size - pos)
                        return -EBADMSG;
        }

        r = parse_block(p + pos, &h, timesize, z);
        if (r < 0)
                return r;
        pos += (size_t) bs;

        if (h.version >= 2) {
                const uint8_t *nl;
                if (pos >= size || p[pos] != '\n')
                        return -EBADMSG;
                pos++;
                nl = memchr(p + pos, '\n', size - pos);
                if (!nl)
                        return -EBADMSG;
                r = parse_footer((const char *) p + pos, (size_t) (nl - (p + pos)), h.version, &z->footer);
                if (r < 0)
                        return r;
        }

        z->min_offset = z->max_offset = z->types[0].offset;
        for (size_t i = 1; i < z->n_types; i++) {
                z->min_offset = MIN(z->min_offset, z->types[i].offset);
                z->max_offset = MAX(z->max_offset, z->types[i].offset);
        }
        if (z->footer.present) {
                z->min_offset = MIN(z->min_offset, z->footer.std_offset);
                z->max_offset = MAX(z->max_offset, z->footer.std_offset);
                if (z->footer.has_dst) {
                        z->min_offset = MIN(z->min_offset, z->footer.dst_offset);
                        z->max_offset = MAX(z->max_offset, z->footer.dst_offset);
                }
        }

        *ret = TAKE_PTR(z);
        return 0;
}

TimeZone *tz_free(TimeZone *z) {
        if (!z)
                return NULL;
        free(z->times);
        free(z->type_of);
        free(z->types);
        free(z->chars);
        free(z);
        return NULL;
}

/* ---- loading ---- */

bool tz_name_is_valid(const char *name) {
        size_t l;

        if (!name)
                return false;
        if (streq(name, "UTC"))
                return true;
        l = strlen(name);
        if (l == 0 || l > TZ_NAME_MAX || name[0] == '/' || name[l - 1] == '/' || strstr(name, "..") ||
            strstr(name, "//"))
                return false;
        for (size_t i = 0; i < l; i++) {
                int ch = (unsigned char) name[i];
                if (!is_ascii_alpha(ch) && !is_ascii_digit(ch) && !strchr("/_+-.", ch))
                        return false;
        }
        return true;
}

static int tz_new_utc(TimeZone **ret) {
        static const uint8_t utc[] = {
                /* version 1, one type (offset 0, not DST, "UTC"), no transitions */
                'T', 'Z', 'i', 'f', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 0, /* isutcnt */ 0, 0, 0, 0, /* isstdcnt */ 0, 0, 0, 0, /* leapcnt */
                0, 0, 0, 0, /* timecnt */ 0, 0, 0, 1, /* typecnt */ 0, 0, 0, 4, /* charcnt */
                0, 0, 0, 0, 0, 0, 'U', 'T', 'C', 0,
        };
        return tz_parse(utc, sizeof utc, ret);
}

int tz_load(const char *name, TimeZone **ret) {
        _cleanup_free_ char *buf = NULL;
        _cleanup_close_ int fd = -EBADF;
        char path[sizeof(TZ_ZONEINFO_DIR) + TZ_NAME_MAX + 2];
        struct stat st;
        size_t size;
        int r;

        if (!ret || !tz_name_is_valid(name))
                return -EINVAL;
        if (streq(name, "UTC"))
                return tz_new_utc(ret);

        r = snprintf(path, sizeof path, "%s/%s", TZ_ZONEINFO_DIR, name);
        if (r < 0 || (size_t) r >= sizeof path)
                return -EINVAL;
        /* O_NONBLOCK: a FIFO planted in the tree must not hang us. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        r = read_full_fd(fd, TZ_FILE_MAX, &buf, &size);
        if (r < 0)
                return r;
        return tz_parse(buf, size, ret);
}
