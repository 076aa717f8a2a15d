/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <curl/curl.h>

#include "fetch.h"
#include "macro.h"

/* Shared by fetch.c and fetch-ranges.c, not part of the library's API. */

/* -EINVAL with a message for a URL or TLS files that cannot work. */
int fetch_check_options(const FetchOptions *o, char **ret_error) _warn_unused_result_;
/* URL, protocols, redirects, TLS, timeouts and o->headers on a new handle. */
int fetch_setup_common(CURL *curl, const FetchOptions *o, char *errbuf) _warn_unused_result_;
/* curl_easy_cleanup() plus what fetch_setup_common() attached. */
void fetch_curl_cleanup(CURL *curl);

/* How a curl failure is classified, the same for every download and the
 * registry client: TLS (not worth retrying: EPROTO), or a failure of the
 * network or of a busy or restarting server (worth another connection). */
bool fetch_curl_code_is_tls(CURLcode c);
bool fetch_curl_code_is_transient(CURLcode c);
DEFINE_TRIVIAL_CLEANUP_FUNC(CURL *, fetch_curl_cleanup);
/* Digits only, no sign, no overflow; *p is left after the number. */
int fetch_parse_u64(const char **p, uint64_t *ret) _warn_unused_result_;
/* Sleep between retries, but notice *cancel within 100 ms: -ECANCELED. */
int fetch_sleep(const volatile int *cancel, unsigned msec) _warn_unused_result_;
