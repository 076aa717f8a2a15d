/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <jansson.h>
#include <stddef.h>

#include "macro.h"

/* Convert one YAML document into the JSON value it spells, so that documents
 * people write by hand (node configs, specs) can go wherever JSON is
 * expected. Deliberately a small, predictable subset of YAML, because the
 * result is sent to programs that reject unknown or mistyped fields and a
 * surprise type must show up here, with a line number, rather than there:
 *
 *   mapping                        -> object (keys are strings; duplicates are errors)
 *   sequence                       -> array
 *   plain -?[0-9]+                 -> integer (out of int64 range: error;
 *                                     leading zeros such as 0644: error,
 *                                     since YAML 1.1 reads them as octal)
 *   plain true / false             -> boolean
 *   plain null, ~ or empty         -> null
 *   any other plain scalar         -> string ("1.5", "yes" and "on" stay strings)
 *   quoted or block (| >) scalar   -> string
 *
 * Anchors, aliases and tags (!!str, !foo) are rejected, as are more than one
 * document, an input without a document, NUL bytes in scalars and nesting
 * deeper than YAML_JSON_DEPTH_MAX.
 *
 * Returns 0 and the value in *ret, or -EBADMSG for input that is not
 * acceptable, with "LINE:COLUMN: message" (1-based) in *ret_error if
 * ret_error is not NULL (free() it), or -ENOMEM. */

#define YAML_JSON_DEPTH_MAX 64

int yaml_to_json(const char *data, size_t len, json_t **ret, char **ret_error) _warn_unused_result_;

/* Every key of 'obj' must be one of table[0..n): otherwise -EBADMSG with
 * *error set to "<where>: unknown key "k" (known keys: ...)" ("where" may be
 * ""). Shared by the strict document parsers (node config, provisioning). */
int json_check_keys(json_t *obj, const char *const *table, size_t n, const char *where, char **error) _warn_unused_result_;
