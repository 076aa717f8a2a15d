/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Strict decimal parse: the whole string must be a number that fits. */
int safe_atou64(const char *s, uint64_t *ret) _warn_unused_result_;
int safe_atou(const char *s, unsigned *ret) _warn_unused_result_;

/* Parse "512", "64K", "256M", "1G", "2T" (binary units, optional "iB"/"B"). */
int parse_size(const char *s, uint64_t *ret) _warn_unused_result_;

/* Format a byte count as "1.5 GiB" into buf. */
const char *format_bytes(char *buf, size_t l, uint64_t bytes);

/* Lower-case hex; ret must hold 2*len+1 bytes. */
void hex_encode(const uint8_t *data, size_t len, char *ret);
int hex_decode(const char *s, uint8_t *ret, size_t len) _warn_unused_result_;

bool string_has_prefix(const char *s, const char *prefix);

/* Shell-free token check for things we pass to tools or GRUB: package
 * names, versions, labels. */
bool string_is_safe_token(const char *s, const char *extra_allowed);

char **strv_append(char **l, const char *s);

/* For functions that hand a message back to their caller: sets *ret_error
 * (if ret_error is non-NULL) to the formatted message, replacing and
 * freeing one it held, and returns r; -ENOMEM if the message cannot be
 * made. */
int error_set(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);
/* The same, but a message already there is kept: the first failure is the
 * most specific one, callers up the stack only add generic ones. Out of
 * memory for the message leaves none. */
int error_set_first(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);

/* A user-supplied string, quoted, escaped (", \ and anything outside
 * printable ASCII as \xNN) and cut after STRING_QUOTE_CHARS characters, so
 * that a message can go into a log line, a condition or an HTTP response
 * whatever the input was. Returns buf. */
#define STRING_QUOTE_CHARS 64
#define STRING_QUOTE_SIZE (STRING_QUOTE_CHARS * 4 + 8)
const char *string_quote(char buf[static STRING_QUOTE_SIZE], const char *s);
size_t strv_length(char * const *l);
bool strv_contains(char * const *l, const char *s);
