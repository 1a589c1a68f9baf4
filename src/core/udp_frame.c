/*
 * The UDP frame header (see udp_frame.h). Kept apart from udp.c so that
 * the wire format is tested without sockets.
 */
#include "core/udp_frame.h"

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

enum udp_frame_status udp_frame_decode(const uint8_t *p, size_t n, struct udp_frame *f)
{
    if (n < UDP_FRAME_HEADER) {
        *f = (struct udp_frame){0, 0, 0, 0};
        return UDP_FRAME_SHORT;
    }
    f->request_id = get16(p);
    f->seq = get16(p + 2);
    f->total = get16(p + 4);
    f->reserved = get16(p + 6);
    if (n == UDP_FRAME_HEADER)
        return UDP_FRAME_SHORT;
    return f->total == 1 ? UDP_FRAME_OK : UDP_FRAME_MULTI;
}

void udp_frame_encode(uint8_t out[UDP_FRAME_HEADER], const struct udp_frame *f)
{
    put16(out, f->request_id);
    put16(out + 2, f->seq);
    put16(out + 4, f->total);
    put16(out + 6, f->reserved);
}

size_t udp_frame_count(size_t n)
{
    return n / UDP_FRAME_DATA + (n % UDP_FRAME_DATA != 0);
}
