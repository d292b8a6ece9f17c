/* bench_checksum.c - the journal's line checksum (plugin/checksum.c) alone.
 *
 * Times paystream_crc32c over a session_start's, a tick's and a
 * session_end's journal line length (60, 250, 540 bytes), each call taking
 * the previous result as its start, so the calls run one after the other
 * as in a journal, and prints ns per call with the implementation the
 * library chose for this CPU. Built against two core libraries (a commit
 * and the one before), it compares them side by side.
 *
 *   bench_checksum [--calls N]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checksum.h"
#include "bench_common.h"

int main(int argc, char **argv) {
	long calls = 5000000;
	if(argc == 3 && strcmp(argv[1], "--calls") == 0)
		calls = strtol(argv[2], NULL, 10);
	if(calls <= 0) {
		fprintf(stderr, "usage: bench_checksum [--calls N]\n");
		return 2;
	}
	static unsigned char line[4096];
	for(size_t i = 0; i < sizeof(line); i++)
		line[i] = (unsigned char)(i * 7);
	const size_t lengths[] = { 60, 250, 540 };
	for(size_t l = 0; l < G_N_ELEMENTS(lengths); l++) {
		uint32_t crc = 0;
		gint64 t0 = bench_now_ns();
		for(long i = 0; i < calls; i++)
			crc = paystream_crc32c(crc, line + (i & 63), lengths[l]);
		gint64 t1 = bench_now_ns();
		printf("RESULT checksum implementation=%s bytes=%zu ns=%.1f crc=%08x\n", paystream_crc32c_implementation(),
			lengths[l], (double)(t1 - t0) / (double)calls, crc);
	}
	return 0;
}
