/* checksum.c - CRC-32C with the CPU's instruction when it has one (see
 * checksum.h). */
#include "checksum.h"

#include <string.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#include <wmmintrin.h>
#endif

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

/* Each CPU's instruction is compiled for that function only (a target
 * attribute), whatever the build's baseline, and used only where the CPU
 * running the plugin says it has it; elsewhere the table gives the same
 * values. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PAYSTREAM_CRC32C_HW "sse4.2"
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

/* The instruction's latency is three cycles and it can start one a cycle:
 * one chain of 8-byte steps waits on itself, so three chains over three
 * lanes of a buffer run about three times as fast, and carry-less
 * multiplication (PCLMULQDQ) joins them. A lane's register r, followed by
 * n bytes of the others, is worth r * x^(8n) mod P: the product of r and
 * x^(8n - 33) mod P, reduced by the CRC instruction itself (the 33 is the
 * instruction's 64-bit step less the bit that bit-reflected products are
 * shifted by). At ~250 bytes, a journal line: ~50 cycles instead of ~90. */
#define PAYSTREAM_CRC32C_HW3 "sse4.2+pclmul"
#define PAYSTREAM_CRC32C_LANE_MAX 256	/* bytes a lane, at most (a multiple of 8) */
/* [n / 8]: x^(8n - 33) mod P, bit-reflected, for n bytes (n = 8 ... 2 * LANE_MAX). */
static uint32_t paystream_crc32c_shift[2 * PAYSTREAM_CRC32C_LANE_MAX / 8 + 1];

/* v * x^k mod P, bit-reflected. */
static uint32_t paystream_crc32c_times_xpow(uint32_t v, unsigned k) {
	while(k--)
		v = (v & 1) ? (v >> 1) ^ PAYSTREAM_CRC32C_POLY : v >> 1;
	return v;
}

/* One walk up the powers of x (~4 000 steps at load), each entry 64 on. */
static void paystream_crc32c_make_shifts(void) {
	uint32_t v = paystream_crc32c_times_xpow(0x80000000u, 8 * 8 - 33);	/* x^0 times x^31 */
	for(unsigned n = 8; n <= 2 * PAYSTREAM_CRC32C_LANE_MAX; n += 8, v = paystream_crc32c_times_xpow(v, 64))
		paystream_crc32c_shift[n / 8] = v;
}

/* r * x^(8 * bytes) mod P, as a 64-bit value the CRC instruction reduces. */
__attribute__((target("sse4.2,pclmul")))
static inline uint64_t paystream_crc32c_times(uint64_t r, size_t bytes) {
	__m128i a = _mm_cvtsi64_si128((long long)r);
	__m128i k = _mm_cvtsi32_si128((int)paystream_crc32c_shift[bytes / 8]);
	return (uint64_t)_mm_cvtsi128_si64(_mm_clmulepi64_si128(a, k, 0));
}

__attribute__((target("sse4.2,pclmul")))
static uint32_t paystream_crc32c_hw3(uint32_t crc, const void *data, size_t len) {
	const unsigned char *p = data;
	uint64_t c = (uint32_t)~crc;
	while(len >= 6 * 8) {
		size_t lane = len / 24 * 8;
		if(lane > PAYSTREAM_CRC32C_LANE_MAX)
			lane = PAYSTREAM_CRC32C_LANE_MAX;
		uint64_t c1 = 0, c2 = 0;
		for(size_t i = 0; i < lane; i += 8) {
			uint64_t w0, w1, w2;
			memcpy(&w0, p + i, 8);
			memcpy(&w1, p + lane + i, 8);
			memcpy(&w2, p + 2 * lane + i, 8);
			c = _mm_crc32_u64(c, w0);
			c1 = _mm_crc32_u64(c1, w1);
			c2 = _mm_crc32_u64(c2, w2);
		}
		/* (The instruction is linear: one reduction serves both products.) */
		c = _mm_crc32_u64(0, paystream_crc32c_times(c, 2 * lane) ^ paystream_crc32c_times(c1, lane)) ^ c2;
		p += 3 * lane;
		len -= 3 * lane;
	}
	/* The rest (under 48 bytes) in one lane. */
	return paystream_crc32c_hw(~(uint32_t)c, p, len);
}

static int paystream_crc32c_have_hw3(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul");
}
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__)) && \
		(defined(__ARM_FEATURE_CRC32) || defined(__linux__))
/* The CRC instructions are optional in ARMv8.0 (most cores have them, some
 * do not) and mandatory from ARMv8.1: a build for plain armv8-a (Debian's
 * arm64) asks the kernel (getauxval), a build whose baseline has them
 * (__ARM_FEATURE_CRC32: -march=armv8.1-a or +crc) needs not. The compiler's
 * builtins, not arm_acle.h: older arm_acle.h define __crc32cd only when the
 * whole file is built with +crc. */
#define PAYSTREAM_CRC32C_HW "armv8-crc"
#if defined(__clang__)
#define PAYSTREAM_CRC32C_TARGET __attribute__((target("crc")))
#define PAYSTREAM_CRC32C_U64(c, v) __builtin_arm_crc32cd((c), (v))
#define PAYSTREAM_CRC32C_U8(c, v) __builtin_arm_crc32cb((c), (v))
#else
#define PAYSTREAM_CRC32C_TARGET __attribute__((target("+crc")))
#define PAYSTREAM_CRC32C_U64(c, v) __builtin_aarch64_crc32cx((c), (v))
#define PAYSTREAM_CRC32C_U8(c, v) __builtin_aarch64_crc32cb((c), (v))
#endif
PAYSTREAM_CRC32C_TARGET
static uint32_t paystream_crc32c_hw(uint32_t crc, const void *data, size_t len) {
	const unsigned char *p = data;
	uint32_t c = ~crc;
	for(; len >= 8; p += 8, len -= 8) {
		uint64_t word;
		memcpy(&word, p, sizeof(word));
		c = PAYSTREAM_CRC32C_U64(c, word);
	}
	while(len--)
		c = PAYSTREAM_CRC32C_U8(c, *p++);
	return ~c;
}
#if defined(__ARM_FEATURE_CRC32)
static int paystream_crc32c_have_hw(void) {
	return 1;
}
#else
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)	/* the kernel's arm64 hwcap bit, for old libc headers */
#endif
static int paystream_crc32c_have_hw(void) {
	return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0;
}
#endif
#endif

static uint32_t (*paystream_crc32c_impl)(uint32_t, const void *, size_t) = paystream_crc32c_portable;
static const char *paystream_crc32c_impl_name = "table";

/* Pick the implementation once, when the library is loaded. */
__attribute__((constructor))
static void paystream_crc32c_init(void) {
	paystream_crc32c_make_table();
#ifdef PAYSTREAM_CRC32C_HW
	if(paystream_crc32c_have_hw()) {
		paystream_crc32c_impl = paystream_crc32c_hw;
		paystream_crc32c_impl_name = PAYSTREAM_CRC32C_HW;
	}
#endif
#ifdef PAYSTREAM_CRC32C_HW3
	if(paystream_crc32c_have_hw3()) {
		paystream_crc32c_make_shifts();
		paystream_crc32c_impl = paystream_crc32c_hw3;
		paystream_crc32c_impl_name = PAYSTREAM_CRC32C_HW3;
	}
#endif
}

const char *paystream_crc32c_implementation(void) {
	return paystream_crc32c_impl_name;
}

uint32_t paystream_crc32c(uint32_t crc, const void *data, size_t len) {
	return paystream_crc32c_impl(crc, data, len);
}
