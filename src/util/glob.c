/*
 * Glob matching; the rules and their Redis edge cases are in glob.h.
 *
 * Every element other than '*' consumes exactly one byte of the string, so
 * a mismatch after a '*' only ever needs to retry that '*' one byte further
 * on: remembering the latest '*' (where it ends in the pattern, and where
 * its run started in the string) replaces recursion. Each retry walks the
 * pattern forward from that '*' at most once, so the work is at most
 * (slen + 1) passes over the pattern.
 */
#include "util/glob.h"

#include <stdint.h>

static unsigned char
fold(unsigned char c, bool nocase)
{
    return nocase && c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/*
 * The set starting at p[pi] == '['. Sets *next past its ']' (or to plen if
 * it is unterminated) and returns whether byte c belongs to it. Reads the
 * set once: O(length of the set).
 */
static bool
set_match(const unsigned char *p, size_t plen, size_t pi, unsigned char c,
          bool nocase, size_t *next)
{
    size_t i = pi + 1;
    bool neg = false, hit = false;
    unsigned char fc = fold(c, nocase);

    if (i < plen && p[i] == '^') {
        neg = true;
        i++;
    }
    for (;;) {
        if (i >= plen) {
            *next = plen;
            break;
        }
        if (p[i] == '\\' && i + 1 < plen) {
            hit = hit || fold(p[i + 1], nocase) == fc;
            i += 2;
        } else if (p[i] == ']') {
            *next = i + 1;
            break;
        } else if (plen - i >= 3 && p[i + 1] == '-') {
            unsigned char lo = p[i], hi = p[i + 2];

            if (lo > hi) {
                unsigned char t = lo;
                lo = hi;
                hi = t;
            }
            /* As Redis: order the ends first, then fold them. */
            lo = fold(lo, nocase);
            hi = fold(hi, nocase);
            hit = hit || (fc >= lo && fc <= hi);
            i += 3;
        } else {
            hit = hit || fold(p[i], nocase) == fc;
            i++;
        }
    }
    return hit != neg;
}

/* The one-byte element at p[pi] (not '*') against c; *next is past it. */
static bool
elem_match(const unsigned char *p, size_t plen, size_t pi, unsigned char c,
           bool nocase, size_t *next)
{
    switch (p[pi]) {
    case '?':
        *next = pi + 1;
        return true;
    case '[':
        return set_match(p, plen, pi, c, nocase, next);
    case '\\':
        /* The escaped byte is literal; a trailing '\' is itself. */
        if (pi + 1 < plen) {
            pi++;
        }
        break;
    default:
        break;
    }
    *next = pi + 1;
    return fold(p[pi], nocase) == fold(c, nocase);
}

bool
glob_match_steps(const char *pattern, size_t plen, const char *str,
                 size_t slen, bool nocase, size_t *steps)
{
    const unsigned char *p = (const unsigned char *)pattern;
    const unsigned char *s = (const unsigned char *)str;
    size_t pi = 0, si = 0, next = 0, count = 0;
    size_t star_p = SIZE_MAX, star_s = 0;
    bool match;

    while (si < slen) {
        if (pi < plen && p[pi] == '*') {
            while (pi < plen && p[pi] == '*') {
                pi++;
                count++;
            }
            if (pi == plen) {
                match = true;
                goto out;
            }
            star_p = pi;
            star_s = si;
            continue;
        }
        if (pi < plen) {
            bool ok = elem_match(p, plen, pi, s[si], nocase, &next);

            count += next - pi;
            if (ok) {
                pi = next;
                si++;
                continue;
            }
        }
        if (star_p == SIZE_MAX) {
            match = false;
            goto out;
        }
        /* Let the latest '*' swallow one more byte and retry after it. */
        pi = star_p;
        si = ++star_s;
    }
    while (pi < plen && p[pi] == '*') {
        pi++;
        count++;
    }
    match = pi == plen;
out:
    if (steps != NULL) {
        *steps += count;
    }
    return match;
}

bool
glob_match(const char *pattern, size_t plen, const char *str, size_t slen,
           bool nocase)
{
    return glob_match_steps(pattern, plen, str, slen, nocase, NULL);
}
