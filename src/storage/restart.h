/*
 * Warm restart (internal to storage): the metadata that lets item memory in
 * a file (-e) be found again by the next process, and the rebuild of the
 * store from it. See restart.c for the design and what is trusted.
 */
#ifndef KIOKU_RESTART_H
#define KIOKU_RESTART_H

#include <stddef.h>
#include <stdint.h>

#include "storage/slab.h"

struct restart_meta {
    uint64_t mem_limit;
    uint32_t header_size;
    int64_t epoch_ms;
    struct slab_layout layout;
    uint32_t *pages[STORAGE_CLASS_MAX + 1];     /* owned; restart_meta_free() */
};

/* ---- pure: encode, decode and check (unit-tested without files) ---- */
size_t restart_meta_size(const struct slab_layout *l);
/* Write the metadata into buf (restart_meta_size() bytes); returns its size. */
size_t restart_meta_encode(char *buf, const struct slab_layout *l, uint32_t *const *pages,
                           uint64_t mem_limit, uint32_t header_size, int64_t epoch_ms);
/* 0, or -1 with the reason (format, version, size, checksum) in why. */
int restart_meta_decode(const char *buf, size_t n, struct restart_meta *out, char *why,
                        size_t whylen);
void restart_meta_free(struct restart_meta *m);
/* Whether metadata fits this start's settings (memory, CAS, classes). */
int restart_meta_check(const struct restart_meta *m, const struct slab_layout *now,
                       uint64_t mem_limit, uint32_t header_size, char *why, size_t whylen);

/* ---- files ---- */
/* Read and remove PATH.meta. 0, or -1 with the reason. */
int restart_meta_read(const char *path, struct restart_meta *out, char *why, size_t whylen);
/* Flush the region and write PATH.meta (atomically, by rename). */
int restart_save(const char *path, uint64_t mem_limit, uint32_t header_size, int64_t epoch_ms,
                 char *err, size_t errlen);

/* Link every valid unexpired item of the restored pages into the (empty)
 * table and list every other carved chunk as free. Returns the items. No
 * other thread may run. */
uint64_t restart_rebuild(const struct restart_meta *m, int64_t now);

#endif
