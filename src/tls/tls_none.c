/*
 * TLS left out (configure --disable-tls, or OpenSSL not found): the options
 * still parse, so the same command line gives a clear refusal rather than
 * "unknown option", and refresh_certs answers as memcached does without TLS.
 */
#include "tls/tls.h"

#include <stdio.h>
#include <string.h>

const struct transport *tls_setup(const struct tls_config *cfg, char *err, size_t errlen)
{
    (void)cfg;
    snprintf(err, errlen, "this kioku was built without TLS (configure --enable-tls, with OpenSSL)");
    return NULL;
}

int tls_refresh_certs(char *err, size_t errlen)
{
    snprintf(err, errlen, "TLS not enabled");
    return -1;
}

int64_t tls_certs_loaded_ms(void)
{
    return 0;
}

uint64_t tls_new_sessions(void)
{
    return 0;
}

void tls_teardown(void)
{
}
