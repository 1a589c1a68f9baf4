/*
 * memcached's UDP frame header, as pure functions (no socket, no state).
 *
 * Every datagram starts with eight bytes, four 16-bit big-endian fields:
 * the request id (chosen by the client, echoed in every datagram of the
 * reply), the sequence number (0..total-1), the total number of datagrams
 * in the message, and a reserved field. A request must fit one datagram;
 * a reply is cut into datagrams of UDP_FRAME_DATA payload bytes, so that
 * header and payload make at most 1400 bytes, as memcached sends them.
 */
#ifndef KIOKU_UDP_FRAME_H
#define KIOKU_UDP_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define UDP_FRAME_HEADER 8
#define UDP_FRAME_MAX 1400                               /* header + payload */
#define UDP_FRAME_DATA (UDP_FRAME_MAX - UDP_FRAME_HEADER)   /* 1392 */
#define UDP_FRAME_MAX_TOTAL 65535                        /* the field is 16 bits */

struct udp_frame {
    uint16_t request_id;
    uint16_t seq;
    uint16_t total;
    uint16_t reserved;
};

enum udp_frame_status {
    UDP_FRAME_OK,       /* a request: header and a payload follow */
    UDP_FRAME_SHORT,    /* no payload after the header, or not even a header */
    UDP_FRAME_MULTI,    /* total is not 1: a request spread over datagrams */
};

/* Decode the header of a received datagram of n bytes. The fields are
 * filled whenever n holds a header (so a refusal can still be counted
 * against its request id). memcached ignores seq and reserved in a
 * request; so does this. */
enum udp_frame_status udp_frame_decode(const uint8_t *p, size_t n, struct udp_frame *f);

/* Write f's eight bytes at out. */
void udp_frame_encode(uint8_t out[UDP_FRAME_HEADER], const struct udp_frame *f);

/* Datagrams needed for a reply of n bytes (0 for none); may exceed
 * UDP_FRAME_MAX_TOTAL, which the caller must refuse. */
size_t udp_frame_count(size_t n);

#endif
