/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* A reader of compiled time-zone files (TZif, RFC 8536, versions 1 to 4)
 * that converts between UTC and a zone's wall clock without touching the
 * process environment: glibc converts only through the process-wide TZ
 * variable, and setenv() is not safe while other threads call getenv()
 * (libcurl does, on every transfer). A TimeZone is immutable once loaded,
 * so any number of threads may use one at the same time.
 *
 * Times are POSIX seconds (no leap seconds). Leap-second records of the
 * "right/" zones are checked and then ignored, so those zones read like
 * their plain counterparts shifted by the leap seconds the file counts.
 *
 * Errors are negative errno values; nothing logs. */

#define TZ_ZONEINFO_DIR "/usr/share/zoneinfo"
#define TZ_NAME_MAX 255
/* Zone files are a few KiB; anything larger than this is refused (-E2BIG). */
#define TZ_FILE_MAX (256U * 1024U)
/* Instants and local times are accepted within +-2^50 seconds (about 35
 * million years) of the epoch; beyond that the functions give -ERANGE. This
 * keeps every sum of a time and an offset far from overflow. */
#define TZ_TIME_LIMIT (INT64_C(1) << 50)
/* The designation (abbreviation) of a type, e.g. "CEST" or "+0530". */
#define TZ_ABBR_MAX 32

typedef struct TimeZone TimeZone;

/* A name tz_load() may look up: "UTC", or a relative path below
 * TZ_ZONEINFO_DIR of at most TZ_NAME_MAX characters out of [A-Za-z0-9/_+-.],
 * without "..", "//", or a leading or trailing "/". Says nothing about
 * whether the file exists. */
bool tz_name_is_valid(const char *name);

/* Load the zone 'name': "UTC" is built in and needs no file; every other
 * valid name is read from TZ_ZONEINFO_DIR/<name> (symlinks followed; it
 * must be a regular file of at most TZ_FILE_MAX bytes). Returns 0, or
 * -EINVAL (a name tz_name_is_valid() refuses), -ENOENT and other open()
 * errors, -EISDIR (a directory such as "Europe"), -E2BIG, -EBADMSG (not a
 * valid TZif file), -ENOMEM. */
int tz_load(const char *name, TimeZone **ret) _warn_unused_result_;

/* Parse a TZif file held in memory (any size; the caller caps reads).
 * Versions 2 and later use the 64-bit data and the POSIX TZ footer, which
 * gives local time after the last transition ("slim" files hold little
 * else). Every count, index, offset and the footer are checked: -EBADMSG
 * for anything malformed, -ENOMEM. Data after the footer is ignored. */
int tz_parse(const void *data, size_t size, TimeZone **ret) _warn_unused_result_;

/* Accepts NULL; returns NULL. */
TimeZone *tz_free(TimeZone *z);
DEFINE_TRIVIAL_CLEANUP_FUNC(TimeZone *, tz_free);

/* The offset of local time from UTC at instant t (seconds east of
 * Greenwich: +3600 for CET), so that local = t + offset. -ERANGE if t is
 * beyond TZ_TIME_LIMIT. */
int tz_utc_offset(const TimeZone *z, int64_t t, int32_t *ret_offset) _warn_unused_result_;

/* Like tz_utc_offset(), also telling whether daylight-saving time is in
 * effect and the designation ("CEST"; valid as long as z). Any ret_* may be
 * NULL. */
int tz_lookup(const TimeZone *z, int64_t t, int32_t *ret_offset, bool *ret_isdst, const char **ret_abbreviation)
        _warn_unused_result_;

/* The instants at which the wall clock of z reads local_seconds (seconds
 * since 1970-01-01 00:00 of that wall clock). Returns how many there are:
 *   1  the usual case: *ret_earliest == *ret_latest;
 *   2  a repeated wall time (the autumn change, a "fold"): the first and
 *      the second occurrence;
 *   0  a wall time that does not exist (skipped by a forward change, a
 *      "gap"): both get the first instant whose wall clock reads
 *      local_seconds or later, i.e. the instant of the change;
 *  >2  only for odd zone data with several backward changes close
 *      together: the first and the last occurrence.
 * -ERANGE if local_seconds is beyond TZ_TIME_LIMIT. Either ret_* may be
 * NULL. */
int tz_local_to_utc(const TimeZone *z, int64_t local_seconds, int64_t *ret_earliest, int64_t *ret_latest)
        _warn_unused_result_;

/* The first instant after t at which the zone changes its type (offset,
 * daylight-saving flag or designation, though a change may leave all three
 * as they were). -ENOENT if the zone never changes after t; -ERANGE if t or
 * the change lies beyond TZ_TIME_LIMIT. */
int tz_next_transition(const TimeZone *z, int64_t t, int64_t *ret) _warn_unused_result_;
