/*
 * The version kioku reports to memcached clients. Clients parse the VERSION
 * reply as major.minor.micro and turn features on or off by it (libmemcached
 * refuses a major version of 0), so kioku states the memcached release whose
 * protocol it follows, then its own name and version.
 */
#ifndef KIOKU_VERSION_H
#define KIOKU_VERSION_H

#include "config.h"

#define KIOKU_PROTOCOL_VERSION MC_COMPAT_VERSION "-kioku-" PACKAGE_VERSION

#endif
