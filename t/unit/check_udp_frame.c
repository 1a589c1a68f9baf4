/*
 * Unit tests for memcached's UDP frame header (src/core/udp_frame.c):
 * the eight bytes every datagram starts with, and how many datagrams a
 * reply takes.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/udp_frame.h"

START_TEST(test_encode_writes_four_big_endian_fields)
{
    uint8_t out[UDP_FRAME_HEADER];
    struct udp_frame f = {.request_id = 0x1234, .seq = 0x0102, .total = 0xfffe, .reserved = 0};
    udp_frame_encode(out, &f);
    const uint8_t want[] = {0x12, 0x34, 0x01, 0x02, 0xff, 0xfe, 0x00, 0x00};
    ck_assert_mem_eq(out, want, sizeof(want));
}
END_TEST

START_TEST(test_decode_reads_what_encode_wrote)
{
    uint8_t buf[UDP_FRAME_HEADER + 5];
    struct udp_frame f = {.request_id = 65535, .seq = 0, .total = 1, .reserved = 0};
    udp_frame_encode(buf, &f);
    memcpy(buf + UDP_FRAME_HEADER, "get a", 5);
    struct udp_frame g;
    ck_assert_int_eq(udp_frame_decode(buf, sizeof(buf), &g), UDP_FRAME_OK);
    ck_assert_uint_eq(g.request_id, 65535);
    ck_assert_uint_eq(g.seq, 0);
    ck_assert_uint_eq(g.total, 1);
    ck_assert_uint_eq(g.reserved, 0);
}
END_TEST

START_TEST(test_decode_refuses_a_datagram_without_payload)
{
    const uint8_t hdr[UDP_FRAME_HEADER] = {0, 7, 0, 0, 0, 1, 0, 0};
    struct udp_frame g;
    for (size_t n = 0; n <= UDP_FRAME_HEADER; n++)
        ck_assert_msg(udp_frame_decode(hdr, n, &g) == UDP_FRAME_SHORT, "%zu bytes", n);
    /* a header alone is still read, so the refusal knows its request id */
    ck_assert_uint_eq(g.request_id, 7);
}
END_TEST

START_TEST(test_decode_refuses_a_request_over_several_datagrams)
{
    const uint8_t two[] = {0, 7, 0, 0, 0, 2, 0, 0, 'x'};
    const uint8_t none[] = {0, 7, 0, 0, 0, 0, 0, 0, 'x'};
    const uint8_t big[] = {0, 7, 0, 0, 1, 1, 0, 0, 'x'};
    struct udp_frame g;
    ck_assert_int_eq(udp_frame_decode(two, sizeof(two), &g), UDP_FRAME_MULTI);
    ck_assert_int_eq(udp_frame_decode(none, sizeof(none), &g), UDP_FRAME_MULTI);
    ck_assert_int_eq(udp_frame_decode(big, sizeof(big), &g), UDP_FRAME_MULTI);
}
END_TEST

/* As memcached: its sequence number and reserved field are not checked. */
START_TEST(test_decode_takes_any_seq_and_reserved_in_a_request)
{
    const uint8_t p[] = {0, 9, 0, 3, 0, 1, 0xab, 0xcd, 'x'};
    struct udp_frame g;
    ck_assert_int_eq(udp_frame_decode(p, sizeof(p), &g), UDP_FRAME_OK);
    ck_assert_uint_eq(g.seq, 3);
    ck_assert_uint_eq(g.reserved, 0xabcd);
}
END_TEST

START_TEST(test_count_cuts_replies_into_1392_byte_payloads)
{
    ck_assert_int_eq(UDP_FRAME_DATA, 1392);
    ck_assert_uint_eq(udp_frame_count(0), 0);
    ck_assert_uint_eq(udp_frame_count(1), 1);
    ck_assert_uint_eq(udp_frame_count(1392), 1);
    ck_assert_uint_eq(udp_frame_count(1393), 2);
    /* memcached's reply to a 3000-byte get: three datagrams */
    ck_assert_uint_eq(udp_frame_count(strlen("VALUE big 0 3000\r\n") + 3000 + 2), 3);
    ck_assert_uint_eq(udp_frame_count((size_t)UDP_FRAME_DATA * UDP_FRAME_MAX_TOTAL),
                      UDP_FRAME_MAX_TOTAL);
    ck_assert_uint_gt(udp_frame_count((size_t)UDP_FRAME_DATA * UDP_FRAME_MAX_TOTAL + 1),
                      UDP_FRAME_MAX_TOTAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("udp_frame");
    TCase *tc = tcase_create("udp_frame");
    tcase_add_test(tc, test_encode_writes_four_big_endian_fields);
    tcase_add_test(tc, test_decode_reads_what_encode_wrote);
    tcase_add_test(tc, test_decode_refuses_a_datagram_without_payload);
    tcase_add_test(tc, test_decode_refuses_a_request_over_several_datagrams);
    tcase_add_test(tc, test_decode_takes_any_seq_and_reserved_in_a_request);
    tcase_add_test(tc, test_count_cuts_replies_into_1392_byte_payloads);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
