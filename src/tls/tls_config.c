/*
 * TLS options: defaults and value parsing, without OpenSSL, so settings
 * parse the same whether or not kioku was built with TLS.
 */
#include "tls/tls.h"

#include <string.h>

void tls_config_default(struct tls_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->min_version = 2;
    cfg->handshake_timeout = 10;
}

/* memcached takes the index of its version table (2, 3); its value names
 * (what `stats settings` shows) are accepted too. Versions before 1.2 are
 * refused: they are broken and OpenSSL 3 disables them anyway. */
int tls_parse_min_version(const char *val)
{
    if (val == NULL)
        return -1;
    if (strcmp(val, "2") == 0 || strcmp(val, "tlsv1.2") == 0)
        return 2;
    if (strcmp(val, "3") == 0 || strcmp(val, "tlsv1.3") == 0)
        return 3;
    return -1;
}
