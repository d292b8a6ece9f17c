/* checksum.c - CRC-32C with the CPU's instruction when it has one (see
 * checksum.h). */
#include "checksum.h"

#include <string.h>

/* The reflected Castagnoli polynomial. */
#define PAYSTREAM_CRC32C_POLY 0x82f63b78u

static uint32_t paystream_crc32c_table[256];

static void paystream_crc32c_make_table(void) {
	for(uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;
		for(int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ PAYSTREAM_CRC32C_POLY : c >> 1;
		paystream_crc32c_table[n] = c;
	}
}

uint32_t paystream_crc32c_portable(uint32_t crc, const void *data, size_t len) {
	/* Written before any thread could race on it: see the constructor below. */
	if(paystream_crc32c_table[1] == 0)
		paystream_crc32c_make_table();
	const unsigned char *p = data;
	uint32_t c = ~crc;
	while(len--)
		c = paystream_crc32c_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return ~c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PAYSTREAM_CRC32C_HW 1
__attribute__((target("sse4.2")))
static uint32_t paystream_crc32c_hw(uint32_t crc, const void *data, size_t len) {
	const unsigned char *p = data;
	uint64_t c = ~crc;
	for(; len >= 8; p += 8, len -= 8) {
		uint64_t word;
		memcpy(&word, p, sizeof(word));
		c = __builtin_ia32_crc32di(c, word);
	}
	uint32_t c32 = (uint32_t)c;
	while(len--)
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	return ~c32;
}
static int paystream_crc32c_have_hw(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("sse4.2");
}
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#define PAYSTREAM_CRC32C_HW 1
#include <arm_acle.h>
static uint32_t paystream_crc32c_hw(uint32_t crc, const void *data, size_t len) {
	const unsigned char *p = data;
	uint32_t c = ~crc;
	for(; len >= 8; p += 8, len -= 8) {
		uint64_t word;
		memcpy(&word, p, sizeof(word));
		c = __crc32cd(c, word);
	}
	while(len--)
		c = __crc32cb(c, *p++);
	return ~c;
}
static int paystream_crc32c_have_hw(void) {
	return 1;
}
#endif

static uint32_t (*paystream_crc32c_impl)(uint32_t, const void *, size_t) = paystream_crc32c_portable;

/* Pick the implementation once, when the library is loaded. */
__attribute__((constructor))
static void paystream_crc32c_init(void) {
	paystream_crc32c_make_table();
#ifdef PAYSTREAM_CRC32C_HW
	if(paystream_crc32c_have_hw())
		paystream_crc32c_impl = paystream_crc32c_hw;
#endif
}

uint32_t paystream_crc32c(uint32_t crc, const void *data, size_t len) {
	return paystream_crc32c_impl(crc, data, len);
}
