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
    cfg->wbuf_size = 16 * 1024;   /* memcached's default: one maximal record */
}

enum tls_listen_mode tls_listen_prefix(const char *entry, size_t *skip)
{
    static const struct {
        const char *name;
        enum tls_listen_mode mode;
    } prefixes[] = {
        {"notls:", TLS_LISTEN_OFF},
        {"btls:", TLS_LISTEN_NOPEER},
        {"mtls:", TLS_LISTEN_PEER},
    };
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t n = strlen(prefixes[i].name);
        if (strncmp(entry, prefixes[i].name, n) == 0) {
            *skip = n;
            return prefixes[i].mode;
        }
    }
    *skip = 0;
    return TLS_LISTEN_DEFAULT;
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
