/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Internals of the Kubernetes client shared by kube*.c and the unit tests. */

#include <pthread.h>
#include <stdint.h>

#include "kube.h"

/* client-go's reflector backoff: 0.8 s doubling to 30 s, each delay
 * stretched by a random factor in [1, 2) (wait.Jitter with factor 1.0). */
#define KUBE_BACKOFF_FIRST_USEC 800000ULL
#define KUBE_BACKOFF_MAX_USEC 30000000ULL

/* Delay before retry number `attempt` (0 for the first retry); rnd is any
 * random 64-bit value (the jitter). Pure, so the unit test can check it. */
uint64_t kube_backoff_usec(unsigned attempt, uint64_t rnd);

/* The randomised watch timeoutSeconds in [300, 600]. */
unsigned kube_watch_timeout_pick(uint64_t rnd);

uint64_t kube_random_u64(void);
uint64_t kube_now_usec(void); /* CLOCK_MONOTONIC */

/* metav1.MicroTime: "2026-11-30T17:00:00.123456Z"; buf of >= 28. */
char *kube_format_micro_time(uint64_t realtime_usec, char buf[static 40]);

/* Parses one metav1.Status (body may be NULL or not a Status) into r's
 * reason/message/cause, replacing what they held. */
void kube_response_parse_status(KubeResponse *r, json_t *body);

/* "<status> <reason>: <message>" or a transport error text; NULL on OOM. */
char *kube_response_error(const KubeResponse *r, int err);

/* Stop flag + condition to sleep on, shared by the informer and leader
 * threads: kube_sleep_wait() returns true early when *stop was set. */
typedef struct KubeSleeper {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        volatile int stop;
} KubeSleeper;

int kube_sleeper_init(KubeSleeper *s);
void kube_sleeper_done(KubeSleeper *s);
/* Returns true if stop was requested (before or during the wait). */
bool kube_sleeper_wait(KubeSleeper *s, uint64_t usec);
void kube_sleeper_stop(KubeSleeper *s);

/* Writes 1 to an eventfd (or any fd), ignoring EAGAIN; no-op for fd < 0. */
void kube_notify(int fd);

/* Bytes of an unfinished line the parser holds. */
size_t kube_watch_parser_pending(KubeWatchParser *p);

/* Decodes standard base64 (whitespace ignored, padding required as in
 * kubeconfig's *-data fields). -EBADMSG if malformed. */
int kube_base64_decode(const char *s, void **ret, size_t *ret_size);

/* New connections the client's transfers opened so far (for the test that
 * connections are reused). */
unsigned kube_client_connects(KubeClient *c);
