/* test_spool.c - the durable spool: replay, batches, acks, compaction,
 * damaged journals, the size limit, tips, and a 10,000 record round trip.
 * Each case runs in a fresh folder from g_dir_make_tmp(). */
#include "unit.h"

#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <jansson.h>

#include "../../plugin/checksum.h"
#include "../../plugin/ids.h"
#include "../../plugin/spool.h"

static char *journal(const char *dir) {
	return g_build_filename(dir, "paystream.spool", NULL);
}

static guint64 file_size(const char *dir) {
	char *path = journal(dir);
	struct stat st;
	guint64 size = stat(path, &st) == 0 ? (guint64)st.st_size : 0;
	g_free(path);
	return size;
}

/* The records of a batch text, parsed back: a JSON array. */
static json_t *parse_records(const paystream_spool_batch_text *b) {
	char *text = g_strdup_printf("[%s]", b->records->str);
	json_t *records = json_loads(text, JSON_ALLOW_NUL, NULL);
	g_free(text);
	if(json_array_size(records) != b->count)
		diag("batch %s: count %u but %zu records parse", b->batch_id, b->count, json_array_size(records));
	return records;
}

/* begin_batch with a fresh id, the records parsed back (both NULL when
 * nothing was taken). */
static int begin(paystream_spool *s, guint max, char **id, json_t **records) {
	paystream_spool_batch_text b = { paystream_random_uuid(), g_string_new(NULL), 0 };
	int rc = paystream_spool_begin_batch(s, b.batch_id, max, b.records, &b.count);
	*id = rc == PAYSTREAM_SPOOL_OK ? g_strdup(b.batch_id) : NULL;
	*records = rc == PAYSTREAM_SPOOL_OK ? parse_records(&b) : NULL;
	if(rc != PAYSTREAM_SPOOL_OK && b.records->len > 0)
		diag("begin_batch failed but wrote records");
	g_free(b.batch_id);
	g_string_free(b.records, TRUE);
	return rc;
}

/* The unacked batches as [{"batch_id": U, "records": [...]}, ...]. */
static json_t *unacked_json(paystream_spool *s) {
	GPtrArray *list = paystream_spool_unacked_batches(s);
	json_t *out = json_array();
	for(guint i = 0; i < list->len; i++) {
		paystream_spool_batch_text *b = g_ptr_array_index(list, i);
		json_array_append_new(out, json_pack("{s:s, s:o}", "batch_id", b->batch_id, "records", parse_records(b)));
	}
	g_ptr_array_unref(list);
	return out;
}

/* A journal line with its checksum. */
static char *line(const char *body) {
	return g_strdup_printf("%08x %s\n", paystream_crc32c(0, body, strlen(body)), body);
}

static json_t *tick(int n) {
	return json_pack("{s:s, s:s, s:i, s:i}", "type", "tick", "record_id", "r", "n", n, "amount", 7);
}

static paystream_spool *reopen(paystream_spool *s, const char *dir, guint64 max, paystream_spool_report *report) {
	if(s != NULL)
		paystream_spool_close(s);
	paystream_spool_report_clear(report);
	GError *error = NULL;
	paystream_spool *again = paystream_spool_open(dir, max, report, &error);
	if(again == NULL) {
		diag("open failed: %s", error ? error->message : "?");
		g_clear_error(&error);
	}
	return again;
}

static void rm_dir(const char *dir) {
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *name;
	while(d != NULL && (name = g_dir_read_name(d)) != NULL) {
		char *path = g_build_filename(dir, name, NULL);
		g_unlink(path);
		g_free(path);
	}
	if(d != NULL)
		g_dir_close(d);
	g_rmdir(dir);
}

static char *fresh_dir(void) {
	return g_dir_make_tmp("paystream-spool-XXXXXX", NULL);
}

/* Three records committed, one batch of two begun: the common start. */
static paystream_spool *three_and_batch(const char *dir, char **batch_id) {
	paystream_spool *s = paystream_spool_open(dir, 0, NULL, NULL);
	for(int i = 1; i <= 3; i++) {
		json_t *r = tick(i);
		paystream_spool_append(s, r, NULL);
		json_decref(r);
	}
	paystream_spool_commit(s);
	json_t *records = NULL;
	begin(s, 2, batch_id, &records);
	json_decref(records);
	return s;
}

/* A commit with the journal's size limited to limit bytes (and SIGXFSZ
 * ignored): its writes fail where they would pass the limit. -1: no limit. */
static int commit_within(paystream_spool *s, guint64 limit) {
	struct rlimit old_limit, low;
	getrlimit(RLIMIT_FSIZE, &old_limit);
	low = old_limit;
	low.rlim_cur = (rlim_t)limit;
	void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
	int rc = -1;
	if(setrlimit(RLIMIT_FSIZE, &low) == 0) {
		rc = paystream_spool_commit(s);
		setrlimit(RLIMIT_FSIZE, &old_limit);
	}
	signal(SIGXFSZ, old_handler);
	return rc;
}

/* One batch of every pending record: are they expected records whose "n"
 * go first, first + 1, ...? */
static gboolean pending_in_order(paystream_spool *s, int expected, int first) {
	GString *all = g_string_new(NULL);
	guint count = 0;
	char *id = paystream_random_uuid();
	gboolean good = s != NULL && paystream_spool_begin_batch(s, id, 100000, all, &count) == PAYSTREAM_SPOOL_OK;
	char *wrapped = g_strdup_printf("[%s]", all->str);
	json_t *arr = good ? json_loads(wrapped, 0, NULL) : NULL;
	good = arr != NULL && (int)json_array_size(arr) == expected;
	for(size_t i = 0; good && i < json_array_size(arr); i++)
		good = json_integer_value(json_object_get(json_array_get(arr, i), "n")) == (json_int_t)(first + (int)i);
	json_decref(arr);
	g_free(wrapped);
	g_free(id);
	g_string_free(all, TRUE);
	return good;
}

/* Append one record, commit it, batch it and ack it: the ack's line waits
 * in the spool's buffer for the next commit. */
static void one_acked_record(paystream_spool *s, const char *text, gsize len) {
	gsize taken = 0;
	is_int(paystream_spool_append_text(s, text, len, &taken), PAYSTREAM_SPOOL_OK, "a first record");
	is_int(paystream_spool_commit(s), PAYSTREAM_SPOOL_OK, "committed");
	char *id = NULL;
	json_t *records = NULL;
	is_int(begin(s, 10, &id, &records), PAYSTREAM_SPOOL_OK, "a batch of it");
	json_decref(records);
	is_int(paystream_spool_ack_batch(s, id), PAYSTREAM_SPOOL_OK, "acked (its line waits in the buffer)");
	g_free(id);
}

/* A commit that fails part way (the file size limit, past limit bytes
 * more, here) is cut off and written again whole by the next one: record
 * lines (kept in the spool's slabs) and the other lines keep their order,
 * and the journal replays every record once. count records of pad bytes:
 * with 40 KB, a slab each, a commit writes more slabs than one system call
 * takes. */
static void test_commit_failing_part_way(int count, int pad, guint64 limit, const char *what) {
	paystream_spool_report rep = { 0 };
	gsize taken = 0;
	char *dir = fresh_dir();
	paystream_spool *s = paystream_spool_open(dir, 0, NULL, NULL);
	const char *first = "{\"type\":\"tick\",\"n\":0}";
	one_acked_record(s, first, strlen(first));
	GString *wave = g_string_new(NULL);
	for(int i = 1; i <= count; i++)
		g_string_append_printf(wave, "{\"type\":\"tick\",\"n\":%d,\"pad\":\"%0*d\"}\n", i, pad, i);
	is_int(paystream_spool_append_text(s, wave->str, wave->len, &taken), PAYSTREAM_SPOOL_OK, "%s: appended", what);
	guint64 before = file_size(dir);
	is_int(commit_within(s, before + limit), PAYSTREAM_SPOOL_ERR_IO, "%s: the commit fails part way", what);
	is_int((int)file_size(dir), (int)before, "%s: cut back to the last commit", what);
	g_string_truncate(wave, 0);
	for(int i = count + 1; i <= count + 10; i++)
		g_string_append_printf(wave, "{\"type\":\"tick\",\"n\":%d}\n", i);
	is_int(paystream_spool_append_text(s, wave->str, wave->len, &taken), PAYSTREAM_SPOOL_OK, "%s: more meanwhile", what);
	is_int(paystream_spool_commit(s), PAYSTREAM_SPOOL_OK, "%s: the next commit writes it all", what);
	ok(file_size(dir) == paystream_spool_bytes(s), "%s: the journal is as long as the spool counts", what);
	s = reopen(s, dir, 0, &rep);
	ok(s != NULL && rep.dropped_bytes == 0 && (int)rep.pending_records == count + 10 && rep.unacked_batches == 0,
		"%s: the journal replays every record but the acked one, the ack too (%u pending, %zu bytes dropped)", what,
		s != NULL ? rep.pending_records : 0, s != NULL ? (size_t)rep.dropped_bytes : 0);
	ok(pending_in_order(s, count + 10, 1), "%s: in order, each once", what);
	g_string_free(wave, TRUE);
	paystream_spool_close(s);
	paystream_spool_report_clear(&rep);
	rm_dir(dir);
	g_free(dir);
}

/* Replay releases the slabs of acked records as it goes, among them
 * the slab of its own that the longest record takes: nothing of them is
 * written again, or read, once released. */
static void test_replay_releases_acked_slabs(void) {
	paystream_spool_report rep = { 0 };
	gsize taken = 0;
	guint count = 0;
	char *dir = fresh_dir();
	paystream_spool *s = paystream_spool_open(dir, 0, NULL, NULL);
	GString *acked = g_string_new(NULL);
	/* Its line, "xxxxxxxx R1 <text>\n", is PAYSTREAM_SPOOL_MAX_ENTRY long;
	 * the text is 30 bytes and the padding. */
	g_string_append_printf(acked, "{\"type\":\"tick\",\"n\":0,\"pad\":\"%0*d\"}\n",
		PAYSTREAM_SPOOL_MAX_ENTRY - 14 - 30 + 1, 0);
	is_int(paystream_spool_append_text(s, acked->str, acked->len, &taken), PAYSTREAM_SPOOL_ERR_INVALID,
		"a record line a byte over PAYSTREAM_SPOOL_MAX_ENTRY is refused");
	g_string_truncate(acked, 0);
	g_string_append_printf(acked, "{\"type\":\"tick\",\"n\":0,\"pad\":\"%0*d\"}\n",
		PAYSTREAM_SPOOL_MAX_ENTRY - 14 - 30, 0);
	for(int i = 1; i <= 1200; i++)
		g_string_append_printf(acked, "{\"type\":\"tick\",\"n\":%d,\"pad\":\"%0200d\"}\n", i, i);
	gsize acked_at = 0;
	for(int round = 0; round < 2; round++) {
		/* The long record alone, then the rest: two batches, both acked. */
		gsize upto = round == 0 ? (gsize)(strchr(acked->str, '\n') - acked->str + 1) : acked->len;
		is_int(paystream_spool_append_text(s, acked->str + acked_at, upto - acked_at, &taken), PAYSTREAM_SPOOL_OK,
			round == 0 ? "the longest record is taken" : "1200 more, over several slabs");
		acked_at += taken;
		is_int(paystream_spool_commit(s), PAYSTREAM_SPOOL_OK, "committed");
		char *acked_id = g_strdup_printf("acked-%d", round);
		GString *acked_body = g_string_new(NULL);
		is_int(paystream_spool_begin_batch(s, acked_id, 100000, acked_body, &count), PAYSTREAM_SPOOL_OK, "a batch of them");
		is_int(paystream_spool_ack_batch(s, acked_id), PAYSTREAM_SPOOL_OK, "acked");
		g_string_free(acked_body, TRUE);
		g_free(acked_id);
	}
	g_string_truncate(acked, 0);
	for(int i = 1201; i <= 1203; i++)
		g_string_append_printf(acked, "{\"type\":\"tick\",\"n\":%d}\n", i);
	is_int(paystream_spool_append_text(s, acked->str, acked->len, &taken), PAYSTREAM_SPOOL_OK, "three not acked");
	is_int(paystream_spool_commit(s), PAYSTREAM_SPOOL_OK, "committed");
	s = reopen(s, dir, 0, &rep);
	ok(s != NULL && rep.pending_records == 3 && rep.dropped_bytes == 0, "replayed: the three pending (%u)",
		s != NULL ? rep.pending_records : 0);
	ok(pending_in_order(s, 3, 1201), "the three, in order");
	s = reopen(s, dir, 0, &rep);
	ok(s != NULL && rep.pending_records == 0 && rep.unacked_batches == 1 && rep.dropped_bytes == 0,
		"and again from the compacted journal: now one batch of them");
	g_string_free(acked, TRUE);
	paystream_spool_close(s);
	paystream_spool_report_clear(&rep);
	rm_dir(dir);
	g_free(dir);
}

int main(void) {
	no_plan();
	paystream_spool_report rep = { 0 };
	GError *error = NULL;

	/* append + commit + reopen keeps records */
	char *dir = fresh_dir();
	paystream_spool *s = paystream_spool_open(dir, 0, &rep, &error);
	if(!ok(s != NULL, "open a fresh folder"))
		bail_out("cannot open a spool: %s", error ? error->message : "?");
	is_int(rep.entries, 0, "empty journal");
	ok(file_size(dir) > 0 && file_size(dir) == paystream_spool_bytes(s), "head written; bytes tracked");
	paystream_spool *twice = paystream_spool_open(dir, 0, NULL, &error);
	ok(twice == NULL && g_error_matches(error, PAYSTREAM_SPOOL_ERROR, PAYSTREAM_SPOOL_ERR_BUSY), "a second open of the folder is refused");
	g_clear_error(&error);
	guint64 seq = 0;
	json_t *r = tick(1);
	is_int(paystream_spool_append(s, r, &seq), PAYSTREAM_SPOOL_OK, "append");
	is_int(seq, 1, "first seq is 1");
	json_object_set_new(r, "amount", json_integer(999));
	json_t *bad = json_pack("{s:i}", "amount", 1);
	is_int(paystream_spool_append(s, bad, NULL), PAYSTREAM_SPOOL_ERR_INVALID, "a record without type is refused");
	json_decref(bad);
	bad = json_array();
	is_int(paystream_spool_append(s, bad, NULL), PAYSTREAM_SPOOL_ERR_INVALID, "a non-object is refused");
	json_decref(bad);
	guint64 before_commit = file_size(dir);
	is_int(paystream_spool_append(s, r, &seq), PAYSTREAM_SPOOL_OK, "append a second");
	is_int(seq, 2, "seq 2");
	json_decref(r);
	is_int(file_size(dir), before_commit, "appends stay in memory until commit");
	is_int(paystream_spool_commit(s), PAYSTREAM_SPOOL_OK, "commit");
	is_int(file_size(dir), paystream_spool_bytes(s), "commit wrote everything");
	s = reopen(s, dir, 0, &rep);
	is_int(rep.pending_records, 2, "reopen: two pending records");
	is_int(rep.dropped_bytes, 0, "nothing dropped");
	is_int(paystream_spool_pending_count(s), 2, "pending count");
	r = tick(3);
	paystream_spool_append(s, r, &seq);
	json_decref(r);
	is_int(seq, 3, "seqs continue after a reopen");
	char *id = NULL;
	json_t *records = NULL;
	is_int(begin(s, 10, &id, &records), PAYSTREAM_SPOOL_OK, "batch of everything");
	is_int(json_array_size(records), 3, "three records, the uncommitted one included");
	is_int(json_integer_value(json_object_get(json_array_get(records, 0), "amount")), 7,
		"the spool kept a copy: the caller's later change is not in it");
	is_int(json_integer_value(json_object_get(json_array_get(records, 1), "amount")), 999, "second record as appended");
	json_decref(records);
	is_int(paystream_spool_ack_batch(s, id), PAYSTREAM_SPOOL_OK, "ack");
	g_free(id);
	is_int(paystream_spool_compact(s), PAYSTREAM_SPOOL_OK, "compact");
	r = tick(4);
	paystream_spool_append(s, r, &seq);
	json_decref(r);
	is_int(seq, 4, "seqs survive a compaction that emptied the spool");
	paystream_spool_close(s);
	s = reopen(NULL, dir, 0, &rep);
	is_int(rep.pending_records, 1, "close commits what was buffered");
	paystream_spool_close(s);
	rm_dir(dir);
	g_free(dir);

	/* begin_batch, then reopen: the same batch id and the same records */
	dir = fresh_dir();
	char *batch_id = NULL;
	s = three_and_batch(dir, &batch_id);
	ok(batch_id != NULL && strlen(batch_id) == 36 && batch_id[8] == '-' && batch_id[14] == '4', "batch id is a v4 UUID");
	is_int(paystream_spool_pending_count(s), 1, "one record left pending");
	/* Simulate kill -9 after the batch was sent: reopen without close would
	 * keep the lock, so copy the journal to a new folder instead. */
	char *dir2 = fresh_dir();
	char *contents = NULL;
	gsize len = 0;
	char *src = journal(dir), *dst = journal(dir2);
	g_file_get_contents(src, &contents, &len, NULL);
	g_file_set_contents(dst, contents, (gssize)len, NULL);
	g_free(contents);
	paystream_spool *crashed = reopen(NULL, dir2, 0, &rep);
	is_int(rep.unacked_batches, 1, "after a crash: one unacked batch");
	is_int(rep.pending_records, 1, "and one pending record");
	is_int(paystream_spool_unacked_count(crashed), 3, "unacked count: the batch's two and the pending one");
	json_t *unacked = unacked_json(crashed);
	json_t *b0 = json_array_get(unacked, 0);
	is_str(json_string_value(json_object_get(b0, "batch_id")), batch_id, "same batch id after a crash");
	json_t *b0_records = json_object_get(b0, "records");
	is_int(json_array_size(b0_records), 2, "same number of records");
	is_int(json_integer_value(json_object_get(json_array_get(b0_records, 0), "n")), 1, "same first record");
	is_int(json_integer_value(json_object_get(json_array_get(b0_records, 1), "n")), 2, "same second record");
	json_decref(unacked);
	is_int(begin(crashed, 10, &id, &records), PAYSTREAM_SPOOL_OK, "a new batch for the pending one");
	ok(strcmp(id, batch_id) != 0, "with another id");
	is_int(json_array_size(records), 1, "only the pending record");
	is_int(paystream_spool_pending_count(crashed), 0, "none pending after the second batch");
	is_int(paystream_spool_unacked_count(crashed), 3, "still three unacked: two batches in flight");
	json_decref(records);
	g_free(id);
	paystream_spool_close(crashed);
	g_free(src);
	g_free(dst);
	rm_dir(dir2);
	g_free(dir2);

	/* ack then reopen: gone */
	is_int(paystream_spool_ack_batch(s, batch_id), PAYSTREAM_SPOOL_OK, "ack the batch");
	is_int(paystream_spool_ack_batch(s, batch_id), PAYSTREAM_SPOOL_ERR_UNKNOWN, "a second ack: unknown");
	is_int(paystream_spool_ack_batch(s, "nope"), PAYSTREAM_SPOOL_ERR_UNKNOWN, "ack of an unknown batch");
	s = reopen(s, dir, 0, &rep);
	is_int(rep.unacked_batches, 0, "acked batch gone after reopen");
	is_int(rep.pending_records, 1, "the pending record stays");
	is_int(paystream_spool_unacked_count(s), 1, "unacked count after the ack: the pending one");
	unacked = unacked_json(s);
	is_int(json_array_size(unacked), 0, "no unacked batches");
	json_decref(unacked);
	is_int(begin(s, 0, &id, &records), PAYSTREAM_SPOOL_ERR_INVALID, "max_records 0 refused");
	is_int(begin(s, 5, &id, &records), PAYSTREAM_SPOOL_OK, "batch the last one");
	json_decref(records);
	g_free(id);
	is_int(begin(s, 5, &id, &records), PAYSTREAM_SPOOL_ERR_EMPTY,
		"nothing pending: empty");
	ok(id == NULL && records == NULL, "outputs NULL when nothing was taken");
	paystream_spool_close(s);
	g_free(batch_id);
	rm_dir(dir);
	g_free(dir);

	/* compaction shrinks the file and keeps only what is unacked */
	dir = fresh_dir();
	s = paystream_spool_open(dir, 0, NULL, NULL);
	for(int i = 0; i < 100; i++) {
		r = tick(i);
		paystream_spool_append(s, r, NULL);
		json_decref(r);
	}
	char *first = NULL, *second = NULL;
	begin(s, 60, &first, &records);
	json_decref(records);
	begin(s, 30, &second, &records);
	json_decref(records);
	paystream_spool_ack_batch(s, first);
	paystream_spool_commit(s);
	guint64 big = file_size(dir);
	is_int(paystream_spool_compact(s), PAYSTREAM_SPOOL_OK, "compact");
	guint64 small = file_size(dir);
	ok(small < big / 2, "compaction shrank the journal (%" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT ")", big, small);
	is_int(paystream_spool_bytes(s), small, "bytes follow the compaction");
	char *tmp = g_build_filename(dir, "paystream.spool.tmp", NULL);
	ok(!g_file_test(tmp, G_FILE_TEST_EXISTS), "no temporary file left");
	g_free(tmp);
	s = reopen(s, dir, 0, &rep);
	is_int(rep.unacked_batches, 1, "the unacked batch is kept");
	is_int(rep.pending_records, 10, "the pending records are kept");
	is_int(rep.bytes_after, rep.bytes_before, "a compacted journal compacts to the same size");
	unacked = unacked_json(s);
	is_str(json_string_value(json_object_get(json_array_get(unacked, 0), "batch_id")), second, "it is the second batch");
	is_int(json_integer_value(json_object_get(json_array_get(json_object_get(json_array_get(unacked, 0), "records"), 0), "n")),
		60, "starting at record 60");
	json_decref(unacked);
	g_free(first);
	g_free(second);
	paystream_spool_close(s);

	/* A journal cut in the middle of its last line. */
	char *path = journal(dir);
	g_file_get_contents(path, &contents, &len, NULL);
	g_file_set_contents(path, contents, (gssize)(len - 20), NULL);
	s = reopen(NULL, dir, 0, &rep);
	ok(s != NULL, "a torn journal still opens");
	is_int(rep.dropped_bytes, (len - 20) - (g_strrstr_len(contents, (gssize)(len - 20), "\n") - contents + 1),
		"the torn part of the last line is reported");
	is_int(rep.dropped_lines, 1, "one line dropped");
	ok(rep.dropped_path == NULL, "a torn last write is not kept aside");
	is_int(rep.pending_records, 9, "the readable prefix is kept: 9 of 10 pending records");
	is_int(rep.unacked_batches, 1, "and the batch");
	paystream_spool_close(s);
	g_free(contents);

	/* A flipped byte in a middle entry: the prefix before it is kept, the
	 * rest is reported and saved aside, the spool still opens. */
	g_file_get_contents(path, &contents, &len, NULL);
	char *third = contents;
	for(int i = 0; i < 3; i++)
		third = strchr(third, '\n') + 1;	/* head, then two records of the batch */
	size_t third_at = (size_t)(third - contents);
	char *damaged = g_memdup2(contents, len);
	damaged[third_at + 30] ^= 0x01;
	g_file_set_contents(path, damaged, (gssize)len, NULL);
	s = reopen(NULL, dir, 0, &rep);
	ok(s != NULL, "a damaged journal still opens");
	is_int(rep.entries, 3, "three entries read before the damage");
	is_int(rep.dropped_bytes, len - third_at, "everything from the damaged line on is reported");
	ok(rep.dropped_lines > 1, "several lines dropped (%" G_GUINT64_FORMAT ")", rep.dropped_lines);
	is_int(rep.unacked_batches, 0, "the batch line was after the damage");
	is_int(rep.pending_records, 2, "the two records before it are pending");
	char *saved = NULL;
	gsize saved_len = 0;
	ok(rep.dropped_path != NULL && g_file_get_contents(rep.dropped_path, &saved, &saved_len, NULL), "the dropped tail is saved aside");
	ok(saved != NULL && saved_len == len - third_at && memcmp(saved, damaged + third_at, saved_len) == 0,
		"byte for byte");
	g_free(saved);
	g_free(damaged);
	g_free(contents);
	paystream_spool_close(s);
	s = reopen(NULL, dir, 0, &rep);
	is_int(rep.dropped_bytes, 0, "the rewritten journal is clean");
	paystream_spool_close(s);

	/* A head of a newer version is never dropped. */
	char *old_dir_journal = NULL;
	g_file_get_contents(path, &old_dir_journal, &len, NULL);
	{
		char *head = line("H 3 1");
		g_file_set_contents(path, head, -1, NULL);
		g_free(head);
	}
	ok(paystream_spool_open(dir, 0, NULL, &error) == NULL &&
		g_error_matches(error, PAYSTREAM_SPOOL_ERROR, PAYSTREAM_SPOOL_ERR_VERSION), "a newer version refuses to open");
	g_clear_error(&error);
	/* A version 1 journal (paystream 0.1: SHA-256 prefix, JSON lines) is
	 * refused as well, never dropped as damage. */
	g_file_set_contents(path, "0123456789abcdef {\"e\":\"head\",\"v\":1,\"next_seq\":1}\n"
		"0123456789abcdef {\"e\":\"rec\",\"seq\":1,\"rec\":{\"type\":\"tick\"}}\n", -1, NULL);
	ok(paystream_spool_open(dir, 0, NULL, &error) == NULL &&
		g_error_matches(error, PAYSTREAM_SPOOL_ERROR, PAYSTREAM_SPOOL_ERR_VERSION), "a version 1 journal refuses to open");
	g_clear_error(&error);
	gsize v1_len = 0;
	char *v1 = NULL;
	ok(g_file_get_contents(path, &v1, &v1_len, NULL) && v1_len > 100, "and is left as it was");
	g_free(v1);
	g_free(old_dir_journal);
	g_free(path);
	paystream_spool_report_clear(&rep);
	rm_dir(dir);
	g_free(dir);

	/* max_bytes: refused with its own code, accepted again after ack + compact */
	dir = fresh_dir();
	s = paystream_spool_open(dir, 4096, NULL, NULL);
	int appended = 0, rc = PAYSTREAM_SPOOL_OK;
	while(rc == PAYSTREAM_SPOOL_OK && appended < 1000) {
		r = tick(appended);
		rc = paystream_spool_append(s, r, NULL);
		json_decref(r);
		if(rc == PAYSTREAM_SPOOL_OK)
			appended++;
	}
	is_int(rc, PAYSTREAM_SPOOL_ERR_FULL, "append refused when full");
	is_str(paystream_spool_status_name(rc), "spool_full", "its name");
	ok(appended > 10 && paystream_spool_bytes(s) <= 4096, "%d records fit in 4096 bytes", appended);
	json_t *t = json_pack("{s:i}", "amount", 5);
	is_int(paystream_spool_append_tip(s, "tip-1", t), PAYSTREAM_SPOOL_ERR_FULL, "a tip is refused too");
	is_int(begin(s, 1000, &id, &records), PAYSTREAM_SPOOL_OK, "a batch is still written when full");
	json_decref(records);
	is_int(paystream_spool_ack_batch(s, id), PAYSTREAM_SPOOL_OK, "its ack too");
	g_free(id);
	r = tick(0);
	is_int(paystream_spool_append(s, r, NULL), PAYSTREAM_SPOOL_ERR_FULL, "still full before compaction");
	is_int(paystream_spool_compact(s), PAYSTREAM_SPOOL_OK, "compact");
	is_int(paystream_spool_append(s, r, NULL), PAYSTREAM_SPOOL_OK, "accepted again after ack + compact");
	json_decref(r);

	/* tips, acked on their own */
	is_int(paystream_spool_append_tip(s, "tip-1", t), PAYSTREAM_SPOOL_OK, "tip written and committed");
	is_int(paystream_spool_append_tip(s, "tip-1", t), PAYSTREAM_SPOOL_ERR_DUPLICATE, "same tip id while unacked");
	is_int(paystream_spool_append_tip(s, "", t), PAYSTREAM_SPOOL_ERR_INVALID, "empty tip id");
	is_int(paystream_spool_append_tip(s, "tip-2", t), PAYSTREAM_SPOOL_OK, "second tip");
	json_decref(t);
	is_int(paystream_spool_pending_count(s), 1, "tips are not pending records");
	s = reopen(s, dir, 4096, &rep);
	is_int(rep.unacked_tips, 2, "two unacked tips after reopen");
	is_int(rep.pending_records, 1, "records untouched by tips");
	is_int(paystream_spool_ack_tip(s, "tip-1"), PAYSTREAM_SPOOL_OK, "ack tip-1");
	is_int(paystream_spool_ack_tip(s, "tip-1"), PAYSTREAM_SPOOL_ERR_UNKNOWN, "ack tip-1 again: unknown");
	s = reopen(s, dir, 4096, &rep);
	is_int(rep.unacked_tips, 1, "one unacked tip left");
	json_t *tips = paystream_spool_unacked_tips(s);
	is_str(json_string_value(json_object_get(json_array_get(tips, 0), "tip_id")), "tip-2", "it is tip-2");
	is_int(json_integer_value(json_object_get(json_object_get(json_array_get(tips, 0), "tip"), "amount")), 5, "with its body");
	json_decref(tips);
	/* An id that is not UTF-8 (only a journal written by hand has one: the
	 * plugin checks clients' ids) is still listed, for billing.c to drop. */
	json_t *t2 = json_pack("{s:i}", "amount", 6);
	is_int(paystream_spool_append_tip(s, "\xff\xfe", t2), PAYSTREAM_SPOOL_OK, "a tip id that is not UTF-8 is kept");
	json_decref(t2);
	s = reopen(s, dir, 4096, &rep);
	tips = paystream_spool_unacked_tips(s);
	ok(json_array_size(tips) == 2 && strcmp(json_string_value(json_object_get(json_array_get(tips, 1), "tip_id")),
		"\xff\xfe") == 0, "and listed with its bytes, after a reopen too");
	json_decref(tips);
	is_int(paystream_spool_ack_tip(s, "\xff\xfe"), PAYSTREAM_SPOOL_OK, "and acked by them");
	is_int(rep.pending_records, 1, "the record is still pending");
	paystream_spool_close(s);
	rm_dir(dir);
	g_free(dir);

	/* kill -9: what was committed survives, what was only appended does not;
	 * a record with a newline and a NUL byte in a string replays as it was. */
	dir = fresh_dir();
	s = paystream_spool_open(dir, 0, NULL, NULL);
	json_t *odd = json_pack("{s:s, s:s%}", "type", "tick", "note", "a\nb\0c", (size_t)5);
	paystream_spool_append(s, odd, NULL);
	r = tick(2);
	paystream_spool_append(s, r, NULL);
	paystream_spool_commit(s);
	paystream_spool_append(s, r, NULL);
	json_decref(r);
	dir2 = fresh_dir();
	src = journal(dir);
	dst = journal(dir2);
	g_file_get_contents(src, &contents, &len, NULL);
	g_file_set_contents(dst, contents, (gssize)len, NULL);
	g_free(contents);
	crashed = reopen(NULL, dir2, 0, &rep);
	is_int(rep.pending_records, 2, "after kill -9: the two committed records, not the uncommitted one");
	begin(crashed, 10, &id, &records);
	ok(json_equal(json_array_get(records, 0), odd), "a string with a newline and a NUL byte survives a replay");
	json_decref(records);
	g_free(id);
	json_decref(odd);
	paystream_spool_close(crashed);
	paystream_spool_close(s);
	g_free(src);
	g_free(dst);
	rm_dir(dir2);
	g_free(dir2);
	rm_dir(dir);
	g_free(dir);

	/* 10,000 records: append, commit, batch, ack, round trip. */
	dir = fresh_dir();
	s = paystream_spool_open(dir, 0, NULL, NULL);
	gboolean all_ok = TRUE;
	for(int i = 0; i < 10000; i++) {
		r = json_pack("{s:s, s:s, s:i, s:i}", "type", "tick", "session", "s-1", "n", i, "amount", 3);
		if(paystream_spool_append(s, r, NULL) != PAYSTREAM_SPOOL_OK)
			all_ok = FALSE;
		json_decref(r);
		if(i % 100 == 99 && paystream_spool_commit(s) != PAYSTREAM_SPOOL_OK)
			all_ok = FALSE;
	}
	ok(all_ok, "10,000 appends in 100 commits");
	/* The seqs the journal spells (counted up as text, past 9, 99, 999, 9999). */
	char *journal_path = journal(dir), *journal_text = NULL;
	g_file_get_contents(journal_path, &journal_text, NULL, NULL);
	char **lines = g_strsplit(journal_text != NULL ? journal_text : "", "\n", -1);
	guint64 want = 1;
	gboolean seqs_ok = TRUE;
	for(char **l = lines; *l != NULL && seqs_ok; l++) {
		if(strlen(*l) > 11 && (*l)[9] == 'R') {
			char *end = NULL;
			seqs_ok = g_ascii_strtoull(*l + 11, &end, 10) == want++ && end != NULL && *end == ' ' &&
				(*l)[11] != '0';
		}
	}
	ok(seqs_ok && want == 10001, "the journal's R lines are seqs 1 to 10,000 (at %" G_GUINT64_FORMAT ")", want - 1);
	g_strfreev(lines);
	g_free(journal_text);
	g_free(journal_path);
	s = reopen(s, dir, 0, &rep);
	is_int(rep.pending_records, 10000, "10,000 pending after reopen");
	int next = 0, batches = 0;
	gboolean in_order = TRUE;
	while(begin(s, 500, &id, &records) == PAYSTREAM_SPOOL_OK) {
		for(size_t i = 0; i < json_array_size(records); i++)
			if(json_integer_value(json_object_get(json_array_get(records, i), "n")) != next++)
				in_order = FALSE;
		if(batches % 2 == 0)
			paystream_spool_ack_batch(s, id);
		batches++;
		json_decref(records);
		g_free(id);
	}
	is_int(batches, 20, "20 batches of 500");
	is_int(next, 10000, "every record sent once");
	ok(in_order, "in append order");
	s = reopen(s, dir, 0, &rep);
	is_int(rep.unacked_batches, 10, "the 10 unacked batches survive");
	is_int(rep.pending_records, 0, "nothing pending");
	unacked = unacked_json(s);
	for(size_t i = 0; i < json_array_size(unacked); i++) {
		json_t *b = json_array_get(unacked, i);
		paystream_spool_ack_batch(s, json_string_value(json_object_get(b, "batch_id")));
	}
	json_decref(unacked);
	paystream_spool_compact(s);
	s = reopen(s, dir, 0, &rep);
	is_int(rep.unacked_batches + rep.pending_records + rep.unacked_tips, 0, "all acked: the spool is empty");
	ok(rep.bytes_after < 100, "and tiny (%" G_GUINT64_FORMAT " bytes)", rep.bytes_after);
	r = tick(0);
	paystream_spool_append(s, r, &seq);
	json_decref(r);
	is_int(seq, 10001, "seqs still go on");
	paystream_spool_close(s);
	paystream_spool_report_clear(&rep);
	rm_dir(dir);
	g_free(dir);

	/* Records as text: several per call, kept byte for byte, refused ones
	 * reported with how much was taken. */
	dir = fresh_dir();
	s = paystream_spool_open(dir, 0, NULL, NULL);
	const char *texts = "{\"type\":\"tick\",\"n\":1}\n{\"type\":\"tick\",\"n\":2,\"s\":\"a b\"}\n{\"type\":\"tick\",\"n\":3}";
	gsize taken = 0;
	is_int(paystream_spool_append_text(s, texts, strlen(texts), &taken), PAYSTREAM_SPOOL_OK, "three records in one call");
	is_int(taken, strlen(texts), "all taken (the last one needs no line break)");
	const char *bad_texts = "{\"type\":\"tick\",\"n\":4}\n[1,2]\n{\"type\":\"tick\",\"n\":5}\n";
	is_int(paystream_spool_append_text(s, bad_texts, strlen(bad_texts), &taken), PAYSTREAM_SPOOL_ERR_INVALID,
		"a text that is not an object is refused");
	is_int(taken, strlen("{\"type\":\"tick\",\"n\":4}\n"), "the record before it was taken");
	is_int(paystream_spool_append_text(s, "{}\n\n", 3, &taken), PAYSTREAM_SPOOL_OK, "an empty object is a record");
	is_int(paystream_spool_append_text(s, "\n", 1, &taken), PAYSTREAM_SPOOL_ERR_INVALID, "an empty line is not");
	GString *body = g_string_new("[");
	guint count = 0;
	is_int(paystream_spool_begin_batch(s, "b 1", 10, body, &count), PAYSTREAM_SPOOL_OK, "batch them");
	is_str(body->str, "[{\"type\":\"tick\",\"n\":1},{\"type\":\"tick\",\"n\":2,\"s\":\"a b\"},"
		"{\"type\":\"tick\",\"n\":3},{\"type\":\"tick\",\"n\":4},{}",
		"the records' texts, joined by commas, appended to what the buffer held");
	is_int(count, 5, "five records");
	char *kept_id = g_strdup("b 1");
	is_int(paystream_spool_append_text(s, "{}", 2, NULL), PAYSTREAM_SPOOL_OK, "one more pending");
	is_int(paystream_spool_begin_batch(s, "b 1", 10, body, &count), PAYSTREAM_SPOOL_ERR_DUPLICATE, "a batch id in use is refused");
	is_int(paystream_spool_begin_batch(s, "b\n2", 10, body, &count), PAYSTREAM_SPOOL_ERR_INVALID, "a batch id with a line break is refused");
	is_int(count, 0, "nothing counted");
	g_string_free(body, TRUE);
	s = reopen(s, dir, 0, &rep);
	GPtrArray *list = paystream_spool_unacked_batches(s);
	ok(list->len == 1 && strcmp(((paystream_spool_batch_text *)g_ptr_array_index(list, 0))->batch_id, kept_id) == 0 &&
		strcmp(((paystream_spool_batch_text *)g_ptr_array_index(list, 0))->records->str,
			"{\"type\":\"tick\",\"n\":1},{\"type\":\"tick\",\"n\":2,\"s\":\"a b\"},{\"type\":\"tick\",\"n\":3},"
			"{\"type\":\"tick\",\"n\":4},{}") == 0, "after a reopen: the same batch, byte for byte");
	g_ptr_array_unref(list);
	g_free(kept_id);
	paystream_spool_close(s);
	rm_dir(dir);
	g_free(dir);

	/* Records' memory comes in slabs: ~2 MiB of 4 KiB records spans several,
	 * and batches acked out of order free them in any order (ASan's leak
	 * and use-after-free checks run this too); every text stays intact. */
	dir = fresh_dir();
	s = paystream_spool_open(dir, 0, NULL, NULL);
	GString *padded = g_string_new(NULL);
	GString *per_batch[5];
	for(int b = 0; b < 5; b++)
		per_batch[b] = g_string_new(NULL);
	for(int i = 0; i < 500; i++) {
		GString *one = g_string_new(NULL);
		g_string_append_printf(one, "{\"type\":\"tick\",\"n\":%d,\"pad\":\"", i);
		for(int k = 0; k < 4000; k++)
			g_string_append_c(one, (char)('a' + (i + k) % 26));
		g_string_append(one, "\"}");
		g_string_append_printf(padded, "%s\n", one->str);
		g_string_append_printf(per_batch[i / 100], "%s%s", i % 100 ? "," : "", one->str);
		g_string_free(one, TRUE);
	}
	is_int(paystream_spool_append_text(s, padded->str, padded->len, &taken), PAYSTREAM_SPOOL_OK, "500 records of 4 KiB");
	is_int(paystream_spool_commit(s), PAYSTREAM_SPOOL_OK, "committed");
	char *ids[5];
	gboolean same = TRUE;
	for(int b = 0; b < 5; b++) {
		ids[b] = g_strdup_printf("slab-batch-%d", b);
		GString *got = g_string_new(NULL);
		is_int(paystream_spool_begin_batch(s, ids[b], 100, got, &count), PAYSTREAM_SPOOL_OK, "batch %d of 100", b);
		same = same && strcmp(got->str, per_batch[b]->str) == 0;
		g_string_free(got, TRUE);
	}
	ok(same, "the five batches hold the 500 texts byte for byte");
	static const int ack_order[] = { 3, 0, 4, 1 };
	for(size_t i = 0; i < G_N_ELEMENTS(ack_order); i++)
		is_int(paystream_spool_ack_batch(s, ids[ack_order[i]]), PAYSTREAM_SPOOL_OK, "ack batch %d", ack_order[i]);
	list = paystream_spool_unacked_batches(s);
	paystream_spool_batch_text *left = list->len == 1 ? g_ptr_array_index(list, 0) : NULL;
	ok(left != NULL && strcmp(left->batch_id, ids[2]) == 0 && left->count == 100 &&
		strcmp(left->records->str, per_batch[2]->str) == 0, "the batch left unacked still reads back intact");
	g_ptr_array_unref(list);
	is_int(paystream_spool_ack_batch(s, ids[2]), PAYSTREAM_SPOOL_OK, "ack the last one");
	is_int(paystream_spool_pending_count(s), 0, "nothing pending");
	/* The released slabs are kept and filled again: rounds of the same
	 * records, with a compaction (which lets spares go) between two, read
	 * back intact every time. */
	gboolean rounds_same = TRUE;
	for(int round = 0; round < 3; round++) {
		rounds_same = rounds_same && paystream_spool_append_text(s, padded->str, padded->len, &taken) == PAYSTREAM_SPOOL_OK &&
			paystream_spool_commit(s) == PAYSTREAM_SPOOL_OK;
		for(int b = 0; b < 5; b++) {
			char *id = g_strdup_printf("slab-round-%d-%d", round, b);
			GString *got = g_string_new(NULL);
			rounds_same = rounds_same && paystream_spool_begin_batch(s, id, 100, got, &count) == PAYSTREAM_SPOOL_OK &&
				strcmp(got->str, per_batch[b]->str) == 0 && paystream_spool_ack_batch(s, id) == PAYSTREAM_SPOOL_OK;
			g_string_free(got, TRUE);
			g_free(id);
		}
		if(round == 1)
			rounds_same = rounds_same && paystream_spool_compact(s) == PAYSTREAM_SPOOL_OK;
	}
	ok(rounds_same, "three more rounds in reused slabs (a compaction between two) read back byte for byte");
	for(int b = 0; b < 5; b++) {
		g_free(ids[b]);
		g_string_free(per_batch[b], TRUE);
	}
	g_string_free(padded, TRUE);
	paystream_spool_close(s);
	rm_dir(dir);
	g_free(dir);

	/* max_bytes with text: the records that fit are taken, the rest is left
	 * to the caller. */
	dir = fresh_dir();
	s = paystream_spool_open(dir, 300, NULL, NULL);
	GString *many = g_string_new(NULL);
	for(int i = 0; i < 20; i++)
		g_string_append_printf(many, "{\"type\":\"tick\",\"n\":%d}\n", i);
	is_int(paystream_spool_append_text(s, many->str, many->len, &taken), PAYSTREAM_SPOOL_ERR_FULL, "full part way");
	ok(taken > 0 && taken < many->len && many->str[taken - 1] == '\n', "whole records taken (%zu of %zu bytes)",
		(size_t)taken, (size_t)many->len);
	ok(paystream_spool_bytes(s) <= 300, "within max_bytes");
	int lines_taken = 0;
	for(gsize i = 0; i < taken; i++)
		lines_taken += many->str[i] == '\n';
	is_int(paystream_spool_pending_count(s), lines_taken, "one pending record per line taken");
	g_string_free(many, TRUE);
	paystream_spool_close(s);
	rm_dir(dir);
	g_free(dir);

	/* Replay checks entries against what came before: each of these
	 * journals is cut where the history stops making sense. */
	struct {
		const char *lines[5];
		int entries, pending, batches;
		const char *what;
	} cases[] = {
		{ { "H 2 1", "R 1 {\"type\":\"a\"}", "R 1 {\"type\":\"b\"}" }, 2, 1, 0, "a seq seen twice" },
		{ { "H 2 1", "R 2 {}", "R 1 {}" }, 2, 1, 0, "a seq going back" },
		{ { "H 2 1", "R 1 {}", "R 2 {}", "B 2 1 x" }, 3, 2, 0, "a batch not starting at the oldest pending record" },
		{ { "H 2 1", "R 1 {}", "B 1 2 x" }, 2, 1, 0, "a batch of more records than are pending" },
		{ { "H 2 1", "R 1 {}", "B 1 1 x", "B 1 1 y" }, 3, 0, 1, "a batch of records already batched" },
		{ { "H 2 1", "R 1 {}", "B 1 1 x", "A y" }, 3, 0, 1, "an ack of an unknown batch" },
		{ { "H 2 1", "R 1 {}", "B 1 1 x", "A x", "A x" }, 4, 0, 0, "a second ack" },
		{ { "H 2 1", "R 1 not json" }, 1, 0, 0, "a record that is not an object" },
		{ { "H 2 1", "R 01 {}" }, 1, 0, 0, "a number with a leading zero" },
		{ { "H 2 1", "R 1  {}" }, 1, 0, 0, "two spaces" },
		{ { "R 1 {}" }, 0, 0, 0, "no head" },
		{ { "H 2 1", "H 2 1" }, 1, 0, 0, "a second head" },
		{ { "H 2 1", "T 3 ab {}" }, 1, 0, 0, "a tip whose id is shorter than it says" },
		{ { "H 2 1", "T 2 ab [1]" }, 1, 0, 0, "a tip that is not an object" },
		{ { "H 2 1", "T 4 a bc {\"x\":1}", "K a bc", "Z" }, 3, 0, 0, "an unknown kind (after a tip with a space in its id)" },
	};
	for(size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		dir = fresh_dir();
		GString *file = g_string_new(NULL);
		for(int j = 0; j < 5 && cases[i].lines[j] != NULL; j++) {
			char *l = line(cases[i].lines[j]);
			g_string_append(file, l);
			g_free(l);
		}
		char *p = journal(dir);
		g_file_set_contents(p, file->str, (gssize)file->len, NULL);
		s = reopen(NULL, dir, 0, &rep);
		ok(s != NULL && (int)rep.entries == cases[i].entries && (int)rep.pending_records == cases[i].pending &&
			(int)rep.unacked_batches == cases[i].batches && rep.dropped_bytes > 0,
			"replay stops at %s (%d entries, %u pending, %u batches)", cases[i].what, (int)rep.entries,
			rep.pending_records, rep.unacked_batches);
		paystream_spool_close(s);
		g_free(p);
		g_string_free(file, TRUE);
		rm_dir(dir);
		g_free(dir);
	}
	paystream_spool_report_clear(&rep);

	test_commit_failing_part_way(2999, 200, 400 * 1024, "~700 KB over several slabs");
	test_commit_failing_part_way(130, 40000, 80 * 40 * 1024, "130 records of 40 KB, failing past the first 64");
	test_replay_releases_acked_slabs();

	ok(paystream_spool_open(NULL, 0, NULL, &error) == NULL && error != NULL, "no folder: error");
	g_clear_error(&error);
	is_str(paystream_spool_status_name(99), "unknown", "unknown status name");
	return done_testing();
}
