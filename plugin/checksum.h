/* checksum.h - CRC-32C (Castagnoli), the spool's line checksum.
 *
 * Why not zlib's crc32 or OpenSSL: a spool line is checksummed once per
 * record every billing interval, and at ~230 bytes zlib's CRC-32 takes about
 * 220 ns and SHA-256 about 1.2 µs on the benchmark machine (docs/PERFORMANCE.md),
 * more than the whole metering budget. CRC-32C has an instruction on x86-64
 * (SSE 4.2) and on ARMv8 (CRC extension): ~32 ns for a 250-byte line, ~18 ns
 * on x86-64 with three lanes at once joined by carry-less multiplication
 * (PCLMULQDQ; checksum.c), measured one after the other. Where
 * neither exists a table-driven loop gives the same values, so a journal
 * written on one machine replays on any other. It detects torn writes and
 * damaged bytes; it is not a defence against someone who can write the
 * spool folder (docs/SECURITY.md). Pure: no dependencies. */
#ifndef PAYSTREAM_CHECKSUM_H
#define PAYSTREAM_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of len bytes, continuing from crc (0 to start):
 * paystream_crc32c(0, "123456789", 9) == 0xe3069283. */
uint32_t paystream_crc32c(uint32_t crc, const void *data, size_t len);
/* The same, always with the portable table (for tests). */
uint32_t paystream_crc32c_portable(uint32_t crc, const void *data, size_t len);
/* Which one paystream_crc32c uses: "sse4.2+pclmul" (three lanes at once),
 * "sse4.2", "armv8-crc" or "table" (the unit test checks the choice against
 * the CPU). */
const char *paystream_crc32c_implementation(void);

#endif
