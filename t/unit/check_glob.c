/*
 * Unit tests for util/glob: each rule, the edge cases as redis-server 7's
 * KEYS answers them (recorded over a socket against 7.0.15), the documented
 * differences, agreement with a naive recursive matcher on many small
 * inputs, and the step bound on patterns that blow up naive matchers.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "util/glob.h"

/* Match NUL-terminated pattern and string. */
static bool
m(const char *pat, const char *str)
{
    return glob_match(pat, strlen(pat), str, strlen(str), false);
}

static bool
mi(const char *pat, const char *str)
{
    return glob_match(pat, strlen(pat), str, strlen(str), true);
}

START_TEST(test_literal_matches_only_itself)
{
    ck_assert(m("hello", "hello"));
    ck_assert(!m("hello", "hell"));
    ck_assert(!m("hello", "helloo"));
    ck_assert(!m("hello", "Hello"));
    ck_assert(m("", ""));
    ck_assert(!m("", "a"));
    ck_assert(!m("a", ""));
}
END_TEST

START_TEST(test_star_matches_any_run_including_empty)
{
    ck_assert(m("*", "anything"));
    ck_assert(m("*", ""));
    ck_assert(m("h*o", "ho"));
    ck_assert(m("h*o", "hello"));
    ck_assert(!m("h*o", "hellx"));
    ck_assert(m("*llo", "hello"));
    ck_assert(m("he*", "he"));
    ck_assert(m("a*b*c", "aXXbYYc"));
    ck_assert(!m("a*b*c", "aXXcYYb"));
    ck_assert(m("a**b", "ab"));
    /* Backtracking: the first 'b' is not the right one. */
    ck_assert(m("*b?d", "abxdbcd"));
    ck_assert(m("a*bc", "abbbc"));
}
END_TEST

START_TEST(test_question_mark_matches_exactly_one_byte)
{
    ck_assert(m("h?llo", "hello"));
    ck_assert(m("h?llo", "hallo"));
    ck_assert(!m("h?llo", "hllo"));
    ck_assert(!m("h?llo", "heello"));
    ck_assert(m("???", "abc"));
    ck_assert(!m("???", "ab"));
}
END_TEST

START_TEST(test_set_matches_one_listed_byte)
{
    ck_assert(m("h[ae]llo", "hello"));
    ck_assert(m("h[ae]llo", "hallo"));
    ck_assert(!m("h[ae]llo", "hillo"));
    ck_assert(!m("h[ae]llo", "hllo"));
    /* '*' and '?' are literal inside a set. */
    ck_assert(m("[*?]", "*"));
    ck_assert(m("[*?]", "?"));
    ck_assert(!m("[*?]", "a"));
}
END_TEST

START_TEST(test_range_matches_bytes_between_ends_in_either_order)
{
    ck_assert(m("[a-c]", "a"));
    ck_assert(m("[a-c]", "b"));
    ck_assert(m("[a-c]", "c"));
    ck_assert(!m("[a-c]", "d"));
    ck_assert(m("[z-a]", "x"));         /* reversed ends */
    ck_assert(!m("[z-a]", "A"));
    ck_assert(m("[0-9x]", "5"));
    ck_assert(m("[0-9x]", "x"));
    ck_assert(m("[a-c-]", "-"));        /* '-' after a range is literal */
    ck_assert(m("[-a]", "-"));          /* leading '-' is literal */
    ck_assert(m("[-a]", "a"));
}
END_TEST

START_TEST(test_caret_negates_the_set)
{
    ck_assert(m("h[^e]llo", "hallo"));
    ck_assert(!m("h[^e]llo", "hello"));
    ck_assert(!m("[^a-c]", "b"));
    ck_assert(m("[^a-c]", "d"));
    ck_assert(!m("[^a]", ""));          /* still needs one byte */
    ck_assert(m("[!a]", "!"));          /* '!' is not a negation in Redis */
    ck_assert(!m("[!a]", "b"));
}
END_TEST

START_TEST(test_backslash_makes_the_next_byte_literal)
{
    ck_assert(m("\\*", "*"));
    ck_assert(!m("\\*", "a"));
    ck_assert(m("\\?", "?"));
    ck_assert(!m("\\?", "x"));
    ck_assert(m("a\\[b", "a[b"));
    ck_assert(m("\\\\", "\\"));
    ck_assert(m("\\a", "a"));
    ck_assert(m("[\\]]", "]"));         /* escaped ']' inside a set */
    ck_assert(m("[\\^]", "^"));
    ck_assert(!m("[\\^]", "a"));
    ck_assert(m("[a\\-z]", "-"));       /* escaped '-' is no range */
    ck_assert(!m("[a\\-z]", "b"));
}
END_TEST

START_TEST(test_nocase_folds_ascii_letters_only)
{
    ck_assert(mi("HeLLo", "hello"));
    ck_assert(mi("h*O", "HELLO"));
    ck_assert(mi("[A-C]", "b"));
    ck_assert(mi("[a-c]", "B"));
    ck_assert(!mi("[A-C]", "_"));       /* both range ends fold, not just one */
    ck_assert(!mi("[a-c]", "_"));
    ck_assert(mi("[^a]", "b"));
    ck_assert(!mi("[^a]", "A"));
    ck_assert(mi("\\A", "a"));
    ck_assert(!m("HeLLo", "hello"));
    ck_assert(!mi("\xc3\xa9", "\xc3\x89")); /* no folding beyond ASCII */
    ck_assert(!mi("[", "["));
}
END_TEST

START_TEST(test_binary_safe_with_nul_and_high_bytes)
{
    const char pat[] = "a\0*\xff";
    const char yes[] = "a\0xyz\xff";
    const char no[] = "a\1xyz\xff";

    ck_assert(glob_match(pat, 4, yes, 6, false));
    ck_assert(!glob_match(pat, 4, no, 6, false));
    /* Length, not NUL, ends the pattern. */
    ck_assert(!glob_match("ab", 1, "ab", 2, false));
    ck_assert(glob_match("ab", 1, "ab", 1, false));
    ck_assert(glob_match("[\x80-\xff]", 5, "\x90", 1, false));
    ck_assert(!glob_match("[\x80-\xff]", 5, "a", 1, false));
}
END_TEST

/*
 * KEYS results recorded from redis-server 7.0.15 with these keys set.
 * Each row lists which keys the pattern returned.
 */
static const char *const redis_keys[] = {
    "a", "b", "c", "-", "]", "[", "^", "_", "`", "\\", "ab", "abc", "A",
    "B", "x", "z", "*", "?", "a]", "a-", "aa", "ba", "\xff", "\x80", "{",
};

struct redis_row {
    const char *pattern;
    const char *matches[24];
};

static const struct redis_row redis_rows[] = {
    { "[a-]", { "]", "^", "_", "`", "a" } },   /* range ']'..'a', unterminated */
    { "[]]", { NULL } },                       /* empty set, then ']' */
    { "[]", { NULL } },
    { "[]a]", { NULL } },
    { "[abc", { "a", "b", "c" } },             /* unterminated set */
    { "[^a", { "*", "-", "?", "A", "B", "[", "\\", "]", "^", "_", "`", "b",
               "c", "x", "z", "{", "\x80", "\xff" } },
    { "[^", { "*", "-", "?", "A", "B", "[", "\\", "]", "^", "_", "`", "a",
              "b", "c", "x", "z", "{", "\x80", "\xff" } },
    { "[^]", { "*", "-", "?", "A", "B", "[", "\\", "]", "^", "_", "`", "a",
               "b", "c", "x", "z", "{", "\x80", "\xff" } },
    { "[^]]", { "a]" } },
    { "[", { NULL } },
    { "a[", { NULL } },
    { "a[]", { NULL } },
    { "a\\", { NULL } },                       /* trailing '\' is a literal '\' */
    { "\\", { "\\" } },
    { "[\\", { "\\" } },
    { "[\\]]", { "]" } },
    { "[a\\]", { "]", "a" } },
    { "[a-\\]", { "\\", "]", "^", "_", "`", "a" } },
    { "[z-a]", { "a", "b", "c", "x", "z" } },
    { "[^a-c]", { "*", "-", "?", "A", "B", "[", "\\", "]", "^", "_", "`",
                  "x", "z", "{", "\x80", "\xff" } },
    { "[-a]", { "-", "a" } },
    { "[a-c-]", { "-", "a", "b", "c" } },
    { "[]-a]", { NULL } },
    { "[!a]", { "a" } },
    { "\\*", { "*" } },
    { "\\?", { "?" } },
    { "a*", { "a", "a-", "a]", "aa", "ab", "abc" } },
    { "a]", { "a]" } },
    { "[\x80-\xff]", { "\x80", "\xff" } },
};

static bool
listed(const struct redis_row *row, const char *key)
{
    size_t i;

    for (i = 0; i < 24 && row->matches[i] != NULL; i++) {
        if (strcmp(row->matches[i], key) == 0) {
            return true;
        }
    }
    return false;
}

START_TEST(test_edge_cases_match_redis_keys)
{
    size_t r, k;

    for (r = 0; r < sizeof(redis_rows) / sizeof(redis_rows[0]); r++) {
        for (k = 0; k < sizeof(redis_keys) / sizeof(redis_keys[0]); k++) {
            bool want = listed(&redis_rows[r], redis_keys[k]);
            bool got = m(redis_rows[r].pattern, redis_keys[k]);

            ck_assert_msg(got == want, "pattern '%s' key '%s': got %d want %d",
                          redis_rows[r].pattern, redis_keys[k], got, want);
        }
    }
}
END_TEST

START_TEST(test_documented_differences_from_redis)
{
    /* Unsigned bytes: [a-\xff] is 'a'..0xff (Redis: 0xff and 0..'a'). */
    ck_assert(m("[a-\xff]", "z"));
    ck_assert(m("[a-\xff]", "\x80"));
    ck_assert(!m("[a-\xff]", "A"));
    /* A leading star matches the empty string (Redis's "**" does not). */
    ck_assert(m("**", ""));
    ck_assert(m("*", ""));
}
END_TEST

/*
 * Naive recursive reference with the same element rules, exponential in the
 * worst case: only for small inputs.
 */
static bool
ref_match(const char *p, size_t plen, const char *s, size_t slen)
{
    size_t i;

    if (plen == 0) {
        return slen == 0;
    }
    if (p[0] == '*') {
        for (i = 0; i <= slen; i++) {
            if (ref_match(p + 1, plen - 1, s + i, slen - i)) {
                return true;
            }
        }
        return false;
    }
    if (slen == 0) {
        return false;
    }
    if (p[0] == '?') {
        return ref_match(p + 1, plen - 1, s + 1, slen - 1);
    }
    if (p[0] == '\\' && plen >= 2) {
        return p[1] == s[0] && ref_match(p + 2, plen - 2, s + 1, slen - 1);
    }
    if (p[0] == '[') {
        size_t j = 1;
        bool neg = false, hit = false;

        if (j < plen && p[j] == '^') {
            neg = true;
            j++;
        }
        while (j < plen && p[j] != ']') {
            if (p[j] == '\\' && j + 1 < plen) {
                hit |= p[j + 1] == s[0];
                j += 2;
            } else if (plen - j >= 3 && p[j + 1] == '-') {
                unsigned char a = (unsigned char)p[j], b = (unsigned char)p[j + 2];
                unsigned char c = (unsigned char)s[0];

                hit |= (a <= b) ? (c >= a && c <= b) : (c >= b && c <= a);
                j += 3;
            } else {
                hit |= p[j] == s[0];
                j++;
            }
        }
        if (j < plen) {
            j++;        /* the ']' */
        }
        return hit != neg && ref_match(p + j, plen - j, s + 1, slen - 1);
    }
    return p[0] == s[0] && ref_match(p + 1, plen - 1, s + 1, slen - 1);
}

START_TEST(test_agrees_with_naive_matcher_on_random_inputs)
{
    static const char palpha[] = "ab*?[]^-\\";
    static const char salpha[] = "ab]-^\\";
    unsigned seed = 12345;
    int iter;

    for (iter = 0; iter < 200000; iter++) {
        char pat[8], str[8];
        size_t plen, slen, i;

        seed = seed * 1103515245u + 12345u;
        plen = (seed >> 16) % 8;
        seed = seed * 1103515245u + 12345u;
        slen = (seed >> 16) % 8;
        for (i = 0; i < plen; i++) {
            seed = seed * 1103515245u + 12345u;
            pat[i] = palpha[(seed >> 16) % (sizeof(palpha) - 1)];
        }
        for (i = 0; i < slen; i++) {
            seed = seed * 1103515245u + 12345u;
            str[i] = salpha[(seed >> 16) % (sizeof(salpha) - 1)];
        }
        /* Asserts only on a mismatch: Check sends each passing assertion
         * to its parent. */
        if (glob_match(pat, plen, str, slen, false) != ref_match(pat, plen, str, slen))
            ck_abort_msg("pattern '%.*s' string '%.*s'", (int)plen, pat, (int)slen, str);
    }
}
END_TEST

START_TEST(test_many_stars_against_long_string_stay_within_step_bound)
{
    /* "a*a*...a*b" against "aaa...a": a naive matcher explores C(n, k) splits. */
    enum { STARS = 40, SLEN = 20000 };
    char *pat = malloc(2 * STARS + 1);
    char *str = malloc(SLEN);
    size_t plen = 0, steps = 0;
    int i;

    ck_assert_ptr_nonnull(pat);
    ck_assert_ptr_nonnull(str);
    for (i = 0; i < STARS; i++) {
        pat[plen++] = 'a';
        pat[plen++] = '*';
    }
    pat[plen++] = 'b';
    memset(str, 'a', SLEN);
    ck_assert(!glob_match_steps(pat, plen, str, SLEN, false, &steps));
    ck_assert_uint_gt(steps, 0);
    ck_assert_uint_le(steps, (plen + 1) * (SLEN + 1));

    /* And with sets and '?' in between, which must not change the bound. */
    steps = 0;
    ck_assert(!glob_match_steps("*[a-z]*?*[^b]*[ab]*c", 20, str, SLEN, false,
                                &steps));
    ck_assert_uint_le(steps, (20 + 1) * (SLEN + 1));
    /* A match is still found at the far end. */
    str[SLEN - 1] = 'b';
    steps = 0;
    ck_assert(glob_match_steps(pat, plen, str, SLEN, false, &steps));
    ck_assert_uint_le(steps, (plen + 1) * (SLEN + 1));
    free(pat);
    free(str);
}
END_TEST

START_TEST(test_steps_accumulate_into_caller_counter)
{
    size_t steps = 100;

    ck_assert(glob_match_steps("abc", 3, "abc", 3, false, &steps));
    ck_assert_uint_eq(steps, 103);
    ck_assert(glob_match_steps("abc", 3, "abc", 3, false, NULL));
}
END_TEST

static Suite *
glob_suite(void)
{
    Suite *s = suite_create("glob");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_literal_matches_only_itself);
    tcase_add_test(tc, test_star_matches_any_run_including_empty);
    tcase_add_test(tc, test_question_mark_matches_exactly_one_byte);
    tcase_add_test(tc, test_set_matches_one_listed_byte);
    tcase_add_test(tc, test_range_matches_bytes_between_ends_in_either_order);
    tcase_add_test(tc, test_caret_negates_the_set);
    tcase_add_test(tc, test_backslash_makes_the_next_byte_literal);
    tcase_add_test(tc, test_nocase_folds_ascii_letters_only);
    tcase_add_test(tc, test_binary_safe_with_nul_and_high_bytes);
    tcase_add_test(tc, test_edge_cases_match_redis_keys);
    tcase_add_test(tc, test_documented_differences_from_redis);
    tcase_add_test(tc, test_agrees_with_naive_matcher_on_random_inputs);
    tcase_add_test(tc, test_many_stars_against_long_string_stay_within_step_bound);
    tcase_add_test(tc, test_steps_accumulate_into_caller_counter);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(glob_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
