/* fuzz_spool.c - libFuzzer target for spool.c's replay (see README.md here).
 *
 * The input becomes paystream.spool in a scratch folder (under $TMPDIR; use
 * a tmpfs such as /dev/shm, the spool fsyncs). The first byte picks the mode:
 *	even: the rest is written as it is (checksums, torn lines, garbage);
 *	odd:  each line of the rest gets its correct checksum prefix, so that
 *	      the entries' fields and their consistency checks are reached.
 * Then the spool is opened, and when it opens, these must hold: closing and
 * opening again drops nothing and finds the same unacked batches, tips and
 * pending records (compaction keeps exactly the replayed state); batching,
 * acking and compacting still work on it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <jansson.h>

#include "checksum.h"
#include "spool.h"

static char *dir = NULL;

static void clean(void) {
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *name;
	while(d != NULL && (name = g_dir_read_name(d)) != NULL) {
		char *path = g_build_filename(dir, name, NULL);
		g_unlink(path);
		g_free(path);
	}
	if(d != NULL)
		g_dir_close(d);
}

/* The unacked batches in one string, to compare two opens. */
static GString *batches_text(paystream_spool *s, guint *count) {
	GPtrArray *list = paystream_spool_unacked_batches(s);
	GString *out = g_string_new(NULL);
	for(guint i = 0; i < list->len; i++) {
		paystream_spool_batch_text *b = g_ptr_array_index(list, i);
		g_string_append_printf(out, "%s %u [%s]\n", b->batch_id, b->count, b->records->str);
	}
	*count = list->len;
	g_ptr_array_unref(list);
	return out;
}

static paystream_spool *open_spool(paystream_spool_report *report) {
	GError *error = NULL;
	paystream_spool *s = paystream_spool_open(dir, 0, report, &error);
	if(s == NULL) {
		/* Only a newer version may refuse to open; never a busy folder. */
		if(!g_error_matches(error, PAYSTREAM_SPOOL_ERROR, PAYSTREAM_SPOOL_ERR_VERSION))
			abort();
		g_error_free(error);
	}
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if(dir == NULL)
		dir = g_dir_make_tmp("fuzz-spool-XXXXXX", NULL);
	if(dir == NULL || size == 0)
		return 0;
	clean();
	GString *file = g_string_new(NULL);
	if((data[0] & 1) == 0) {
		g_string_append_len(file, (const char *)data + 1, (gssize)(size - 1));
	} else {
		const char *p = (const char *)data + 1, *end = (const char *)data + size;
		while(p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
			g_string_append_printf(file, "%08x ", paystream_crc32c(0, p, n));
			g_string_append_len(file, p, (gssize)n);
			if(nl != NULL)
				g_string_append_c(file, '\n');
			p += n + 1;
		}
	}
	char *path = g_build_filename(dir, "paystream.spool", NULL);
	if(!g_file_set_contents(path, file->str, (gssize)file->len, NULL))
		abort();
	g_free(path);
	g_string_free(file, TRUE);

	paystream_spool_report r1 = { 0 }, r2 = { 0 };
	paystream_spool *s = open_spool(&r1);
	if(s == NULL) {
		paystream_spool_report_clear(&r1);
		return 0;
	}
	if(r1.dropped_bytes > r1.bytes_before || (r1.dropped_bytes > 0) != (r1.dropped_lines > 0))
		abort();
	guint nbatches = 0, nbatches2 = 0;
	GString *batches = batches_text(s, &nbatches);
	json_t *tips = paystream_spool_unacked_tips(s);
	guint pending = paystream_spool_pending_count(s);
	if(paystream_spool_bytes(s) != r1.bytes_after || nbatches != r1.unacked_batches)
		abort();
	if(paystream_spool_close(s) != PAYSTREAM_SPOOL_OK)
		abort();

	s = open_spool(&r2);
	if(s == NULL || r2.dropped_bytes != 0 || r2.bytes_before != r1.bytes_after || r2.bytes_after != r1.bytes_after)
		abort();
	GString *batches2 = batches_text(s, &nbatches2);
	json_t *tips2 = paystream_spool_unacked_tips(s);
	if(strcmp(batches->str, batches2->str) != 0 || !json_equal(tips, tips2) || paystream_spool_pending_count(s) != pending)
		abort();

	/* Still usable: drain everything. */
	if(pending > 0) {
		GString *records = g_string_new(NULL);
		guint count = 0;
		if(paystream_spool_begin_batch(s, "fuzz-batch", 1000, records, &count) != PAYSTREAM_SPOOL_OK ||
				count != MIN(pending, 1000) || records->len == 0)
			abort();
		if(paystream_spool_ack_batch(s, "fuzz-batch") != PAYSTREAM_SPOOL_OK)
			abort();
		g_string_free(records, TRUE);
	}
	GPtrArray *list = paystream_spool_unacked_batches(s);
	for(guint i = 0; i < list->len; i++)
		if(paystream_spool_ack_batch(s, ((paystream_spool_batch_text *)g_ptr_array_index(list, i))->batch_id) != PAYSTREAM_SPOOL_OK)
			abort();
	g_ptr_array_unref(list);
	for(size_t i = 0; i < json_array_size(tips2); i++)
		if(paystream_spool_ack_tip(s, json_string_value(json_object_get(json_array_get(tips2, i), "tip_id"))) != PAYSTREAM_SPOOL_OK)
			abort();
	if(paystream_spool_compact(s) != PAYSTREAM_SPOOL_OK || (pending <= 1000 && paystream_spool_pending_count(s) != 0))
		abort();
	g_string_free(batches, TRUE);
	g_string_free(batches2, TRUE);
	json_decref(tips);
	json_decref(tips2);
	paystream_spool_close(s);
	paystream_spool_report_clear(&r1);
	paystream_spool_report_clear(&r2);
	return 0;
}
