/*
 * Status codes shared by kioku's pure protocol parsers (mc_text, mc_meta,
 * mc_bin, resp). A parser sees only bytes: it never touches a connection,
 * a socket or a global, so every case is testable on a buffer.
 */
#ifndef KIOKU_PARSE_H
#define KIOKU_PARSE_H

enum parse_status {
    PARSE_OK = 0,       /* one request parsed; *used bytes consumed */
    PARSE_AGAIN,        /* incomplete: call again with more bytes */
    PARSE_UNKNOWN,      /* unknown command (text: "ERROR") */
    PARSE_INVALID,      /* malformed request; *used says how much to skip */
    PARSE_TOO_LONG,     /* a line or header exceeds its limit: unrecoverable */
    PARSE_STREAM,       /* resp: a large argument follows; the caller reads it */
};

#endif
