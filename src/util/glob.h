/*
 * Glob-style pattern matching with Redis's rules, for KEYS, SCAN MATCH and
 * configuration names.
 *
 *   *        any run of bytes, including none
 *   ?        exactly one byte
 *   [abc]    one byte of the set; [a-z] a range (ends in either order);
 *            [^...] the complement; \x inside a set is a literal x
 *   \x       the byte x itself (a trailing lone \ is a literal \)
 *   other    the byte itself
 *
 * Patterns and strings are binary-safe (lengths, no NUL terminator). Edge
 * cases follow redis-server 7's KEYS, as checked over a socket:
 *   - "[]" is an empty set, so "[]]" and "[]a]" match nothing;
 *   - an unterminated set ("[abc", "[^") ends at the end of the pattern;
 *   - "-" is a range only when a byte follows it: "[a-]" is the range
 *     ']'..'a' and leaves the set unterminated, "[-a]" is '-' or 'a';
 *   - "[^]" matches any one byte.
 * Deliberate differences from Redis: bytes compare as unsigned, so
 * "[a-\xff]" is 'a'..0xff (Redis's signed char makes it 0xff and 0..'a');
 * a pattern starting with '*' matches the empty string (Redis's matcher
 * says no to "**" against "", while its KEYS special-cases a lone "*");
 * and with nocase an escaped letter inside a set ignores case too.
 *
 * The matcher is iterative: on a mismatch it resumes from the most recent
 * '*' one byte further on, which is enough because every other element
 * consumes exactly one byte. That bounds the work at O(plen * slen) with no
 * recursion, whatever the pattern (no "a*a*a*...b" blow-up).
 */
#ifndef KIOKU_GLOB_H
#define KIOKU_GLOB_H

#include <stdbool.h>
#include <stddef.h>

/*
 * True if str[0..slen) matches pattern[0..plen). nocase folds ASCII letters
 * only. Pure and allocation-free.
 */
bool glob_match(const char *pattern, size_t plen, const char *str, size_t slen,
                bool nocase);

/*
 * glob_match() that also adds to *steps (if not NULL) the number of pattern
 * bytes it examined, for callers (and tests) that want to see the bound:
 * never more than (plen + 1) * (slen + 1).
 */
bool glob_match_steps(const char *pattern, size_t plen, const char *str,
                      size_t slen, bool nocase, size_t *steps);

#endif
