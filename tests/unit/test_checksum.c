/* test_checksum.c - CRC-32C: the published check values, the
 * implementation chosen for this CPU, and the CPU's instruction agreeing
 * with the portable table on every length and alignment (a journal must
 * replay on any machine). */
#include "unit.h"

#include <string.h>
#include <glib.h>
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
#endif

#include "../../plugin/checksum.h"

/* What paystream_crc32c should use on this CPU, asked independently. */
static const char *expected_implementation(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	__builtin_cpu_init();
	if(__builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul"))
		return "sse4.2+pclmul";
	return __builtin_cpu_supports("sse4.2") ? "sse4.2" : "table";
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
	return "armv8-crc";
#elif defined(__aarch64__) && defined(__linux__)
	return (getauxval(AT_HWCAP) & HWCAP_CRC32) ? "armv8-crc" : "table";
#else
	return "table";
#endif
}

int main(void) {
	no_plan();
	const char *impl = paystream_crc32c_implementation();
	is_str(impl, expected_implementation(), "the CPU's instruction is used where it has one, else the table");
	diag("paystream_crc32c uses %s: the comparisons below are %s", impl,
		strcmp(impl, "table") == 0 ? "table against table (no instruction on this CPU)" : "the instruction against the table");
	is_int(paystream_crc32c(0, "123456789", 9), 0xe3069283u, "the standard check value of \"123456789\"");
	is_int(paystream_crc32c_portable(0, "123456789", 9), 0xe3069283u, "the same with the portable table");
	is_int(paystream_crc32c(0, "", 0), 0, "empty input");
	unsigned char zeros[32] = { 0 }, ones[32];
	memset(ones, 0xff, sizeof(ones));
	/* RFC 3720 (iSCSI), B.4: 32 bytes of zeros, of ones. */
	is_int(paystream_crc32c(0, zeros, sizeof(zeros)), 0x8a9136aau, "32 zero bytes (RFC 3720)");
	is_int(paystream_crc32c(0, ones, sizeof(ones)), 0x62a8ab43u, "32 0xff bytes (RFC 3720)");
	is_int(paystream_crc32c(paystream_crc32c(0, "12345", 5), "6789", 4), 0xe3069283u, "continues from a previous crc");

	unsigned char data[2100];
	GRand *rand = g_rand_new_with_seed(7);
	for(size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)g_rand_int(rand);
	g_rand_free(rand);
	int same = 0, cases = 0;
	for(size_t offset = 0; offset < 8; offset++) {
		for(size_t len = 0; len + offset <= sizeof(data); len += (len < 64 ? 1 : 37)) {
			cases++;
			same += paystream_crc32c(0, data + offset, len) == paystream_crc32c_portable(0, data + offset, len);
		}
	}
	is_int(same, cases, "fast and portable agree on %d lengths and alignments", cases);
	is_int(paystream_crc32c(paystream_crc32c(0, data, 700), data + 700, 1300), paystream_crc32c_portable(0, data, 2000),
		"continues from a previous crc over long inputs");
	data[100] ^= 0x10;
	ok(paystream_crc32c(0, data, 300) != paystream_crc32c_portable(0, data, 299), "a flipped bit or a lost byte changes it");
	return done_testing();
}
