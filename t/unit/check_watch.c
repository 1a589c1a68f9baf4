/*
 * Unit tests for `watch` log streaming (src/util/watch.c): parsing the
 * stream names as memcached does, the line formats byte for byte (but the
 * time and gid), URI-encoded keys, the bounded buffer that skips and then
 * says "skipped=N", the wake-up contract, the watcher limit, the stats,
 * and concurrent producers never splitting a line. No sockets.
 */
#include <check.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/watch.h"

#define BUF 4096   /* watcher buffer in these tests (-o watcher_logbuf_size) */

static int wakes;
static void count_wake(void *arg)
{
    (void)arg;
    __atomic_add_fetch(&wakes, 1, __ATOMIC_RELAXED);
}

static void setup(void)
{
    watch_setup(BUF);
    wakes = 0;
}

static void teardown(void)
{
    watch_teardown();
}

static struct watcher *add(unsigned flags)
{
    enum watch_add_result why;
    struct watcher *w = watch_add(flags, count_wake, NULL, &why);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(why, WATCH_ADD_OK);
    return w;
}

/* Everything buffered, NUL-terminated. */
static char *drain(struct watcher *w)
{
    static char out[BUF * 2];
    size_t n = watch_read(w, out, sizeof(out) - 1);
    out[n] = '\0';
    return out;
}

/* The line with its "ts=... gid=... " head checked and cut off. */
static const char *body(const char *line)
{
    regex_t re;
    regmatch_t m;
    ck_assert_int_eq(regcomp(&re, "^ts=[0-9]+\\.[0-9]+ gid=[0-9]+ ", REG_EXTENDED), 0);
    int rc = regexec(&re, line, 1, &m, 0);
    regfree(&re);
    ck_assert_msg(rc == 0, "no ts/gid head: %s", line);
    return line + m.rm_eo;
}

START_TEST(test_stream_names_parse_as_memcached_prefixes_included)
{
    unsigned f;
    ck_assert(watch_parse_flags("", 0, &f));
    ck_assert_uint_eq(f, WATCH_FETCHERS);   /* bare `watch` */
    const char *a = "fetchers mutations evictions connevents deletions";
    ck_assert(watch_parse_flags(a, strlen(a), &f));
    ck_assert_uint_eq(f, WATCH_FETCHERS | WATCH_MUTATIONS | WATCH_EVICTIONS |
                             WATCH_CONNEVENTS | WATCH_DELETIONS);
    a = "proxyreqs proxyevents proxyuser rawcmds sysevents";
    ck_assert(watch_parse_flags(a, strlen(a), &f));
    ck_assert_uint_eq(f, WATCH_PROXYREQS | WATCH_PROXYEVENTS | WATCH_PROXYUSER |
                             WATCH_RAWCMDS | WATCH_SYSEVENTS);
    /* memcached compares only the word's length: "e" is evictions */
    ck_assert(watch_parse_flags("mut e", 5, &f));
    ck_assert_uint_eq(f, WATCH_MUTATIONS | WATCH_EVICTIONS);
    ck_assert(!watch_parse_flags("foo", 3, &f));
    ck_assert(!watch_parse_flags("fetchers fetchersx", 18, &f));
}
END_TEST

START_TEST(test_keys_are_uri_encoded_like_memcached)
{
    char out[3 * 16];
    size_t n = watch_uriencode(out, "a-Z.0_~/ ,\x80", 11);
    ck_assert_uint_eq(n, 7 + 4 * 3);
    ck_assert_mem_eq(out, "a-Z.0_~%2F%20%2C%80", n);
}
END_TEST

START_TEST(test_event_lines_have_memcached_fields_in_order)
{
    struct watcher *w = add(WATCH_FETCHERS | WATCH_MUTATIONS | WATCH_EVICTIONS |
                            WATCH_DELETIONS | WATCH_CONNEVENTS);
    char *lines[7], *save = NULL;

    watch_item_get("k,1", 3, WATCH_GET_NOT_FOUND, 0, 17, 0);
    watch_item_store("k", 1, WATCH_STORED, WATCH_CMD_SET, 100, 3, 17, 5);
    watch_item_store("k", 1, WATCH_EXISTS, WATCH_CMD_CAS, 0, 3, 17, 5);
    watch_eviction("old", 3, true, -1, 42, 9, 11000);
    watch_deletion("k", 1, "md", 3, 4);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(5000)};
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    watch_conn_new((struct sockaddr *)&in, sizeof(in), 21);
    watch_conn_close(NULL, 0, 22, WATCH_CLOSE_ERROR);

    char *all = drain(w);
    for (int i = 0; i < 7; i++) {
        lines[i] = strtok_r(i == 0 ? all : NULL, "\n", &save);
        ck_assert_ptr_nonnull(lines[i]);
    }
    ck_assert_ptr_null(strtok_r(NULL, "\n", &save));
    ck_assert_str_eq(body(lines[0]),
                     "type=item_get key=k%2C1 status=not_found clsid=0 cfd=17 size=0");
    ck_assert_str_eq(body(lines[1]), "type=item_store key=k status=stored cmd=set ttl=100 "
                                     "clsid=3 cfd=17 size=5");
    ck_assert_str_eq(body(lines[2]), "type=item_store key=k status=exists cmd=cas ttl=0 "
                                     "clsid=3 cfd=17 size=5");
    ck_assert_str_eq(body(lines[3]),
                     "type=eviction key=old fetch=yes ttl=-1 la=42 clsid=9 size=11000");
    ck_assert_str_eq(body(lines[4]), "type=deleted key=k cmd=md clsid=3 size=4");
    ck_assert_str_eq(body(lines[5]),
                     "type=conn_new rip=127.0.0.1 rport=5000 transport=tcp cfd=21");
    ck_assert_str_eq(body(lines[6]), "type=conn_close rip=unix rport=0 transport=local "
                                     "reason=error cfd=22");
    watch_remove(w);
}
END_TEST

START_TEST(test_gids_increase_line_by_line)
{
    struct watcher *w = add(WATCH_FETCHERS);
    for (int i = 0; i < 3; i++)
        watch_item_get("k", 1, WATCH_GET_FOUND, 1, 5, 1);
    char *all = drain(w);
    unsigned long long g[3];
    char *p = all;
    for (int i = 0; i < 3; i++) {
        p = strstr(p, "gid=");
        ck_assert_ptr_nonnull(p);
        g[i] = strtoull(p + 4, &p, 10);
    }
    ck_assert_uint_eq(g[1], g[0] + 1);
    ck_assert_uint_eq(g[2], g[1] + 1);
    watch_remove(w);
}
END_TEST

START_TEST(test_a_watcher_sees_only_its_streams)
{
    struct watcher *f = add(WATCH_FETCHERS);
    struct watcher *m = add(WATCH_MUTATIONS);
    ck_assert(watch_on(WATCH_FETCHERS));
    ck_assert(watch_on(WATCH_MUTATIONS));
    ck_assert(!watch_on(WATCH_EVICTIONS | WATCH_CONNEVENTS));
    watch_item_get("g", 1, WATCH_GET_FOUND, 1, 5, 1);
    watch_item_store("s", 1, WATCH_STORED, WATCH_CMD_ADD, 0, 1, 5, 1);
    char *a = drain(f);
    ck_assert_ptr_nonnull(strstr(a, "type=item_get key=g "));
    ck_assert_ptr_null(strstr(a, "item_store"));
    a = drain(m);
    ck_assert_ptr_nonnull(strstr(a, "type=item_store key=s status=stored cmd=add "));
    ck_assert_ptr_null(strstr(a, "item_get"));
    watch_remove(f);
    ck_assert(!watch_on(WATCH_FETCHERS));
    watch_remove(m);
    ck_assert(!watch_on(~0u));
}
END_TEST

START_TEST(test_a_full_buffer_skips_lines_then_reports_how_many)
{
    struct watcher *w = add(WATCH_FETCHERS);
    struct watch_stats before, after;
    watch_stats_get(&before);
    char key[200];
    memset(key, 'k', sizeof(key));
    int made = 0;
    for (; made < 100; made++)   /* ~270 bytes a line: 4 KiB holds 15 */
        watch_item_get(key, sizeof(key), WATCH_GET_FOUND, 1, 5, 1);
    watch_stats_get(&after);
    uint64_t sent = after.watcher_sent - before.watcher_sent;
    uint64_t skipped = after.watcher_skipped - before.watcher_skipped;
    ck_assert_uint_eq(sent + skipped, (uint64_t)made);
    ck_assert_uint_gt(skipped, 0);
    ck_assert_uint_eq(after.worker_written - before.worker_written, (uint64_t)made);

    char *all = drain(w);
    ck_assert_uint_le(strlen(all), BUF);
    ck_assert_ptr_null(strstr(all, "skipped="));   /* nothing fitted since */
    watch_item_get("next", 4, WATCH_GET_FOUND, 1, 5, 1);
    all = drain(w);
    char want[64];
    snprintf(want, sizeof(want), "skipped=%llu\n", (unsigned long long)skipped);
    ck_assert_msg(strncmp(all, want, strlen(want)) == 0, "got %s", all);
    ck_assert_str_eq(body(all + strlen(want)),
                     "type=item_get key=next status=found clsid=1 cfd=5 size=1\n");
    watch_remove(w);
}
END_TEST

START_TEST(test_wake_only_when_the_buffer_turns_nonempty)
{
    struct watcher *w = add(WATCH_FETCHERS);
    watch_item_get("a", 1, WATCH_GET_FOUND, 1, 5, 1);
    watch_item_get("b", 1, WATCH_GET_FOUND, 1, 5, 1);
    ck_assert_int_eq(wakes, 1);
    char small[10];
    ck_assert_uint_eq(watch_read(w, small, sizeof(small)), sizeof(small));
    watch_item_get("c", 1, WATCH_GET_FOUND, 1, 5, 1);
    ck_assert_int_eq(wakes, 1);   /* not emptied yet: the reader comes back */
    drain(w);
    watch_item_get("d", 1, WATCH_GET_FOUND, 1, 5, 1);
    ck_assert_int_eq(wakes, 2);
    watch_remove(w);
}
END_TEST

START_TEST(test_reads_across_the_ring_end_keep_bytes_in_order)
{
    struct watcher *w = add(WATCH_DELETIONS);
    char want[64], got[BUF];
    for (int round = 0; round < 200; round++) {
        watch_deletion("key", 3, round % 2 ? "md" : "delete", (unsigned)round, 1);
        size_t n = watch_read(w, got, sizeof(got) - 1);
        got[n] = '\0';
        snprintf(want, sizeof(want), "type=deleted key=key cmd=%s clsid=%d size=1\n",
                 round % 2 ? "md" : "delete", round);
        ck_assert_str_eq(body(got), want);
    }
    watch_remove(w);
}
END_TEST

START_TEST(test_twenty_watchers_at_most)
{
    struct watcher *w[WATCH_MAX];
    enum watch_add_result why;
    for (int i = 0; i < WATCH_MAX; i++)
        w[i] = add(WATCH_FETCHERS);
    struct watch_stats st;
    watch_stats_get(&st);
    ck_assert_uint_eq(st.watchers, WATCH_MAX);
    ck_assert_ptr_null(watch_add(WATCH_FETCHERS, count_wake, NULL, &why));
    ck_assert_int_eq(why, WATCH_ADD_TOO_MANY);
    watch_remove(w[3]);
    w[3] = add(WATCH_MUTATIONS);
    for (int i = 0; i < WATCH_MAX; i++)
        watch_remove(w[i]);
    watch_stats_get(&st);
    ck_assert_uint_eq(st.watchers, 0);
}
END_TEST

/* Producers on several threads, a reader on another: every line arrives
 * whole or is counted skipped. */
#define PRODUCERS 4
#define PER_PRODUCER 5000
static int finished;

static void *produce(void *arg)
{
    char key[32];
    int id = (int)(long)arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        int n = snprintf(key, sizeof(key), "t%d-%d", id, i);
        watch_item_get(key, (size_t)n, WATCH_GET_FOUND, 1, id, 1);
    }
    __atomic_add_fetch(&finished, 1, __ATOMIC_RELEASE);
    return NULL;
}

START_TEST(test_concurrent_producers_never_split_a_line)
{
    struct watcher *w = add(WATCH_FETCHERS);
    struct watch_stats before, after;
    watch_stats_get(&before);
    finished = 0;
    pthread_t t[PRODUCERS];
    for (long i = 0; i < PRODUCERS; i++)
        pthread_create(&t[i], NULL, produce, (void *)i);
    /* Read while they write, in small bites that split lines. */
    static char acc[PRODUCERS * PER_PRODUCER * 100];
    size_t len = 0;
    while (__atomic_load_n(&finished, __ATOMIC_ACQUIRE) < PRODUCERS)
        len += watch_read(w, acc + len, 100);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(t[i], NULL);
    len += watch_read(w, acc + len, sizeof(acc) - 1 - len);
    acc[len] = '\0';
    watch_stats_get(&after);
    uint64_t sent = after.watcher_sent - before.watcher_sent;
    uint64_t lines = 0, skips = 0;
    char *save = NULL;
    for (char *l = strtok_r(acc, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        if (strncmp(l, "skipped=", 8) == 0) {
            skips += strtoull(l + 8, NULL, 10);
            continue;
        }
        const char *b = body(l);
        ck_assert_msg(strncmp(b, "type=item_get key=t", 19) == 0, "broken line: %s", l);
        lines++;
    }
    ck_assert_uint_eq(lines, sent);
    ck_assert_uint_eq(sent + (after.watcher_skipped - before.watcher_skipped),
                      (uint64_t)PRODUCERS * PER_PRODUCER);
    ck_assert_uint_le(skips, after.watcher_skipped - before.watcher_skipped);
    watch_remove(w);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("watch");
    TCase *tc = tcase_create("watch");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_stream_names_parse_as_memcached_prefixes_included);
    tcase_add_test(tc, test_keys_are_uri_encoded_like_memcached);
    tcase_add_test(tc, test_event_lines_have_memcached_fields_in_order);
    tcase_add_test(tc, test_gids_increase_line_by_line);
    tcase_add_test(tc, test_a_watcher_sees_only_its_streams);
    tcase_add_test(tc, test_a_full_buffer_skips_lines_then_reports_how_many);
    tcase_add_test(tc, test_wake_only_when_the_buffer_turns_nonempty);
    tcase_add_test(tc, test_reads_across_the_ring_end_keep_bytes_in_order);
    tcase_add_test(tc, test_twenty_watchers_at_most);
    tcase_add_test(tc, test_concurrent_producers_never_split_a_line);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
