/* spool.c - the journal of billing records, batches and tips (see spool.h
 * for the format and the guarantees). */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "checksum.h"
#include "digits.h"

#define PAYSTREAM_SPOOL_FILE "paystream.spool"
#define PAYSTREAM_SPOOL_VERSION 2
/* "xxxxxxxx ": the checksum and its space. */
#define PAYSTREAM_SPOOL_SUM_LEN 9
/* Seqs stay far from any overflow, whatever a journal says. */
#define PAYSTREAM_SPOOL_MAX_SEQ ((guint64)G_MAXINT64 / 2)

/* Records' memory: a record is kept as its journal line, appended to the
 * lines before it in a slab of PAYSTREAM_SPOOL_SLAB_BYTES (the longest
 * records get a slab of their own), with its header at the slab's other
 * end. A commit writes the slabs' new lines from there (a few writev
 * calls), then the spool's buffer (batches, acks, tips): a record's text
 * is written into memory once. A slab is released when its last record is
 * acked and it is no longer the one being filled: one allocation per slab
 * instead of one per record, and records sent together lie next to each
 * other. A released slab of the usual size is kept as a spare for the
 * next one, up to the most slabs that were in use at once since the
 * compaction before the last (and at most PAYSTREAM_SPOOL_SPARES_MAX): at a
 * steady load the same memory is refilled every second instead of being
 * handed back to the system and faulted in again page by page. Slabs are
 * small enough that the memory refilled is still in the cache at a
 * thousand records a second (docs/PERFORMANCE.md). */
#define PAYSTREAM_SPOOL_SLAB_BYTES (64 * 1024)
#define PAYSTREAM_SPOOL_SPARES_MAX 1024	/* 64 MiB */

typedef struct paystream_spool_slab {
	struct paystream_spool *spool;
	struct paystream_spool_slab *next_spare;
	struct paystream_spool_slab *next_unwritten;	/* the next slab with lines not written yet */
	gsize used;				/* lines: [0, used) */
	gsize written;			/* of which [0, written) are in the journal */
	gsize headers;			/* records' headers: [headers, size) */
	gsize size;
	guint live;				/* records in it not yet freed */
	gboolean retired;		/* no longer filled: freed with its last record */
	char data[] __attribute__((aligned(16)));
} paystream_spool_slab;

/* A record: its seq and JSON text, which is inside its journal line in the
 * same slab. Records are chained in seq order: the pending ones, and each
 * batch's. */
typedef struct paystream_spool_rec {
	struct paystream_spool_rec *next;
	paystream_spool_slab *slab;
	guint64 seq;
	gsize len;
	const char *text;
} paystream_spool_rec;

typedef struct paystream_spool_chain {
	paystream_spool_rec *head, *tail;
	guint count;
} paystream_spool_chain;

typedef struct paystream_spool_batch {
	char *id;
	paystream_spool_chain recs;
	GList *link;			/* in batches */
} paystream_spool_batch;

typedef struct paystream_spool_tip {
	char *id;
	json_t *tip;
	GList *link;			/* in tips */
} paystream_spool_tip;

struct paystream_spool {
	GMutex mutex;
	char *dir, *path, *tmp_path;
	int fd, lock_fd;
	guint64 max_bytes;
	guint64 file_bytes;		/* written to the journal */
	GString *buf;			/* lines not written yet, but records' (in their slabs) */
	gboolean broken;
	guint64 next_seq;
	guint64 last_seq;		/* of the last record replayed or appended */
	paystream_spool_chain pending;
	GHashTable *batch_by_id;	/* id -> batch (owned) */
	GQueue batches;			/* batch, oldest first */
	GHashTable *tip_by_id;	/* id -> tip (owned) */
	GQueue tips;
	paystream_spool_slab *slab;	/* where the next record goes */
	/* Slabs whose lines are not all in the journal yet, in order; those
	 * lines come first in the next write, before buf's. */
	paystream_spool_slab *unwritten_head, *unwritten_tail;
	guint64 unwritten_bytes;
	paystream_spool_slab *spares;	/* released slabs kept for reuse */
	guint spare_count;
	guint slabs_in_use;
	guint slabs_high;			/* the most in use at once since the last compaction */
	guint slabs_high_before;	/* and between the two compactions before it */
};

G_DEFINE_QUARK(paystream-spool-error-quark, paystream_spool_error)

static const char *const paystream_spool_names[] = {
	[PAYSTREAM_SPOOL_OK] = "ok",
	[PAYSTREAM_SPOOL_ERR_FULL] = "spool_full",
	[PAYSTREAM_SPOOL_ERR_IO] = "io_error",
	[PAYSTREAM_SPOOL_ERR_BROKEN] = "spool_broken",
	[PAYSTREAM_SPOOL_ERR_INVALID] = "invalid",
	[PAYSTREAM_SPOOL_ERR_UNKNOWN] = "unknown_id",
	[PAYSTREAM_SPOOL_ERR_DUPLICATE] = "duplicate_id",
	[PAYSTREAM_SPOOL_ERR_EMPTY] = "nothing_pending",
	[PAYSTREAM_SPOOL_ERR_BUSY] = "spool_busy",
	[PAYSTREAM_SPOOL_ERR_VERSION] = "spool_version",
};

const char *paystream_spool_status_name(int status) {
	if(status < 0 || (size_t)status >= G_N_ELEMENTS(paystream_spool_names))
		return "unknown";
	return paystream_spool_names[status];
}

void paystream_spool_report_clear(paystream_spool_report *report) {
	if(report == NULL)
		return;
	g_free(report->dropped_path);
	memset(report, 0, sizeof(*report));
}

/* A slab to fill: a spare, or a new one. */
static paystream_spool_slab *paystream_spool_slab_take(paystream_spool *s, gsize bytes) {
	paystream_spool_slab *slab = NULL;
	if(bytes == PAYSTREAM_SPOOL_SLAB_BYTES && s->spares != NULL) {
		slab = s->spares;
		s->spares = slab->next_spare;
		s->spare_count--;
	} else {
		slab = g_malloc(sizeof(*slab) + bytes);
	}
	slab->spool = s;
	slab->next_spare = NULL;
	slab->next_unwritten = NULL;
	slab->used = 0;
	slab->written = 0;
	slab->headers = bytes;
	slab->size = bytes;
	slab->live = 0;
	slab->retired = FALSE;
	if(++s->slabs_in_use > s->slabs_high)
		s->slabs_high = s->slabs_in_use;
	return slab;
}

/* How many spares to keep: as many slabs as were in use at once lately. */
static guint paystream_spool_spares_wanted(paystream_spool *s) {
	return MIN(MAX(s->slabs_high, s->slabs_high_before), PAYSTREAM_SPOOL_SPARES_MAX);
}

static void paystream_spool_spares_trim(paystream_spool *s, guint keep) {
	while(s->spare_count > keep) {
		paystream_spool_slab *slab = s->spares;
		s->spares = slab->next_spare;
		s->spare_count--;
		g_free(slab);
	}
}

/* The slab holds no record and is not being filled any more. */
static void paystream_spool_slab_release(paystream_spool_slab *slab) {
	paystream_spool *s = slab->spool;
	s->slabs_in_use--;
	if(slab->size == PAYSTREAM_SPOOL_SLAB_BYTES && s->spare_count < paystream_spool_spares_wanted(s)) {
		slab->next_spare = s->spares;
		s->spares = slab;
		s->spare_count++;
	} else {
		g_free(slab);
	}
}

static void paystream_spool_slab_retire(paystream_spool_slab *slab) {
	if(slab == NULL)
		return;
	slab->retired = TRUE;
	if(slab->live == 0)
		paystream_spool_slab_release(slab);
}

static void paystream_spool_chain_free(paystream_spool_chain *chain) {
	paystream_spool_rec *rec = chain->head;
	while(rec != NULL) {
		paystream_spool_rec *next = rec->next;
		paystream_spool_slab *slab = rec->slab;
		if(--slab->live == 0 && slab->retired)
			paystream_spool_slab_release(slab);
		rec = next;
	}
	memset(chain, 0, sizeof(*chain));
}

static void paystream_spool_batch_free(gpointer data) {
	paystream_spool_batch *batch = data;
	paystream_spool_chain_free(&batch->recs);
	g_free(batch->id);
	g_free(batch);
}

static void paystream_spool_tip_free(gpointer data) {
	paystream_spool_tip *tip = data;
	json_decref(tip->tip);
	g_free(tip->id);
	g_free(tip);
}

void paystream_spool_batch_text_free(paystream_spool_batch_text *batch) {
	if(batch == NULL)
		return;
	g_free(batch->batch_id);
	if(batch->records != NULL)
		g_string_free(batch->records, TRUE);
	g_free(batch);
}

/* ---- lines ---- */

/* Start a line in out: room for the checksum. Returns where it starts. */
static gsize paystream_spool_line_begin(GString *out, char kind) {
	gsize at = out->len;
	g_string_append_len(out, "00000000 ", PAYSTREAM_SPOOL_SUM_LEN);
	g_string_append_c(out, kind);
	return at;
}

/* The checksum's 8 hex digits at at, a byte (two digits) at a time. */
static void paystream_spool_sum_hex(char *at, uint32_t sum) {
	static const char pairs[513] =
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
		"202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
		"404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
		"606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
		"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
		"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
		"c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
		"e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
	memcpy(at, pairs + 2 * (sum >> 24), 2);
	memcpy(at + 2, pairs + 2 * ((sum >> 16) & 0xff), 2);
	memcpy(at + 4, pairs + 2 * ((sum >> 8) & 0xff), 2);
	memcpy(at + 6, pairs + 2 * (sum & 0xff), 2);
}

/* End the line that starts at out[at]: its checksum and "\n". Returns the
 * line's length. */
static gsize paystream_spool_line_end(GString *out, gsize at) {
	const char *body = out->str + at + PAYSTREAM_SPOOL_SUM_LEN;
	paystream_spool_sum_hex(out->str + at, paystream_crc32c(0, body, out->len - at - PAYSTREAM_SPOOL_SUM_LEN));
	g_string_append_c(out, '\n');
	return out->len - at;
}

/* Write " <n>" at p (at most 21 bytes); returns the end. */
static char *paystream_spool_write_uint(char *p, guint64 n) {
	*p++ = ' ';
	return paystream_digits_u64(p, n);
}

static void paystream_spool_put_uint(GString *out, guint64 n) {
	char text[24];
	g_string_append_len(out, text, paystream_spool_write_uint(text, n) - text);
}

static void paystream_spool_put_text(GString *out, const char *text, gsize len) {
	g_string_append_c(out, ' ');
	g_string_append_len(out, text, (gssize)len);
}

static void paystream_spool_head_line(GString *out, guint64 next_seq) {
	gsize at = paystream_spool_line_begin(out, 'H');
	paystream_spool_put_uint(out, PAYSTREAM_SPOOL_VERSION);
	paystream_spool_put_uint(out, next_seq);
	paystream_spool_line_end(out, at);
}

/* Room for need more bytes after out's text (its length unchanged); returns
 * where they start: a line is written there, then ended by _wrote. */
static char *paystream_spool_reserve(GString *out, gsize need) {
	if(out->len + need >= out->allocated_len) {
		gsize len = out->len;
		g_string_set_size(out, len + need);
		g_string_truncate(out, len);	/* (keeps the memory) */
	}
	return out->str + out->len;
}

static void paystream_spool_wrote(GString *out, char *end) {
	out->len = (gsize)(end - out->str);
	*end = '\0';
}

/* How many digits n has. */
static guint paystream_spool_uint_digits(guint64 n) {
	guint digits = 0;
	while(n > G_MAXUINT32) {
		n /= 1000000000;
		digits += 9;
	}
	return digits + paystream_digits_count32((guint32)n);
}

/* The length of a record's line, "xxxxxxxx R<seq> <text>\n". */
static gsize paystream_spool_rec_line_len(guint64 seq, gsize len) {
	return PAYSTREAM_SPOOL_SUM_LEN + 3 + paystream_spool_uint_digits(seq) + len + 1;
}

/* The most common line, written straight into memory at line (room for
 * paystream_spool_rec_line_len): returns its end; *at (if not NULL): where
 * its text is. */
static char *paystream_spool_write_rec_line(char *line, guint64 seq, const char *text, gsize len, char **at) {
	char *p = line + PAYSTREAM_SPOOL_SUM_LEN;
	*p++ = 'R';
	p = paystream_spool_write_uint(p, seq);
	*p++ = ' ';
	memcpy(p, text, len);
	if(at != NULL)
		*at = p;
	p += len;
	line[PAYSTREAM_SPOOL_SUM_LEN - 1] = ' ';
	paystream_spool_sum_hex(line, paystream_crc32c(0, line + PAYSTREAM_SPOOL_SUM_LEN,
		(gsize)(p - line) - PAYSTREAM_SPOOL_SUM_LEN));
	*p++ = '\n';
	return p;
}

/* The same line into out (the compaction's rewrite). */
static void paystream_spool_rec_line(GString *out, guint64 seq, const char *text, gsize len) {
	char *line = paystream_spool_reserve(out, paystream_spool_rec_line_len(seq, len));
	paystream_spool_wrote(out, paystream_spool_write_rec_line(line, seq, text, len, NULL));
}

static void paystream_spool_batch_line(GString *out, const paystream_spool_batch *batch) {
	gsize at = paystream_spool_line_begin(out, 'B');
	paystream_spool_put_uint(out, batch->recs.head->seq);
	paystream_spool_put_uint(out, batch->recs.count);
	paystream_spool_put_text(out, batch->id, strlen(batch->id));
	paystream_spool_line_end(out, at);
}

static void paystream_spool_id_line(GString *out, char kind, const char *id) {
	gsize at = paystream_spool_line_begin(out, kind);
	paystream_spool_put_text(out, id, strlen(id));
	paystream_spool_line_end(out, at);
}

/* The tip's line, or FALSE if its JSON cannot be written. */
static gboolean paystream_spool_tip_line(GString *out, const char *id, json_t *tip) {
	char *text = json_dumps(tip, JSON_COMPACT);
	if(text == NULL)
		return FALSE;
	gsize at = paystream_spool_line_begin(out, 'T');
	paystream_spool_put_uint(out, strlen(id));
	paystream_spool_put_text(out, id, strlen(id));
	paystream_spool_put_text(out, text, strlen(text));
	paystream_spool_line_end(out, at);
	free(text);
	return TRUE;
}

/* Ids are 1 to PAYSTREAM_SPOOL_MAX_ID bytes with no line break or NUL. */
static gboolean paystream_spool_id_valid(const char *id, gsize len) {
	return id != NULL && len > 0 && len <= PAYSTREAM_SPOOL_MAX_ID && memchr(id, '\n', len) == NULL &&
		memchr(id, '\0', len) == NULL;
}

/* What the spool accepts as a record: "{" ... "}" (both callers cut text
 * at line breaks, so it holds none). */
static gboolean paystream_spool_record_valid(const char *text, gsize len) {
	return len >= 2 && text[0] == '{' && text[len - 1] == '}';
}

/* ---- state changes, shared by the API and the replay ---- */

static void paystream_spool_chain_push(paystream_spool_chain *chain, paystream_spool_rec *rec) {
	rec->next = NULL;
	if(chain->tail != NULL)
		chain->tail->next = rec;
	else
		chain->head = rec;
	chain->tail = rec;
	chain->count++;
}

/* Bytes in the journal and waiting to be written to it. */
static guint64 paystream_spool_size(const paystream_spool *s) {
	return s->file_bytes + s->buf->len + s->unwritten_bytes;
}

/* Would extra more bytes take the spool over max_bytes? */
static gboolean paystream_spool_over(const paystream_spool *s, gsize extra) {
	return s->max_bytes > 0 && paystream_spool_size(s) + extra > s->max_bytes;
}

/* A record with its journal line, written into the slab being filled.
 * A line read back from the journal (replayed) is already written, and
 * does not count against max_bytes; a new one joins the lines to write.
 * Refused, with nothing changed, when the line is too long, or when new
 * and it would take the spool over max_bytes. */
static int paystream_spool_add_rec(paystream_spool *s, guint64 seq, const char *text, gsize len, gboolean replayed) {
	gsize line_len = paystream_spool_rec_line_len(seq, len);
	if(line_len > PAYSTREAM_SPOOL_MAX_ENTRY)
		return PAYSTREAM_SPOOL_ERR_INVALID;
	if(!replayed && paystream_spool_over(s, line_len))
		return PAYSTREAM_SPOOL_ERR_FULL;
	gsize header = (sizeof(paystream_spool_rec) + 7) & ~(gsize)7;
	paystream_spool_slab *slab = s->slab;
	if(slab == NULL || slab->headers - slab->used < line_len + header) {
		paystream_spool_slab_retire(slab);
		slab = s->slab = paystream_spool_slab_take(s, MAX(PAYSTREAM_SPOOL_SLAB_BYTES, (line_len + header + 15) & ~(gsize)15));
	}
	char *line = slab->data + slab->used, *at = NULL;
	paystream_spool_write_rec_line(line, seq, text, len, &at);
	slab->used += line_len;
	slab->headers -= header;
	paystream_spool_rec *rec = (paystream_spool_rec *)(slab->data + slab->headers);
	slab->live++;
	rec->slab = slab;
	rec->seq = seq;
	rec->len = len;
	rec->text = at;
	paystream_spool_chain_push(&s->pending, rec);
	if(replayed) {
		/* (Replay comes before any new line: none waits in this slab.) */
		slab->written = slab->used;
	} else {
		if(s->unwritten_tail == NULL)
			s->unwritten_head = s->unwritten_tail = slab;
		else if(s->unwritten_tail != slab) {
			s->unwritten_tail->next_unwritten = slab;
			s->unwritten_tail = slab;
		}
		s->unwritten_bytes += line_len;
	}
	s->last_seq = seq;
	if(seq >= s->next_seq)
		s->next_seq = seq + 1;
	return PAYSTREAM_SPOOL_OK;
}

/* Every record line is in the journal now. */
static void paystream_spool_all_written(paystream_spool *s) {
	for(paystream_spool_slab *slab = s->unwritten_head, *next; slab != NULL; slab = next) {
		next = slab->next_unwritten;
		slab->written = slab->used;
		slab->next_unwritten = NULL;
	}
	s->unwritten_head = s->unwritten_tail = NULL;
	s->unwritten_bytes = 0;
}

/* A new batch of the count oldest pending records (count <= pending). */
static paystream_spool_batch *paystream_spool_add_batch(paystream_spool *s, const char *id, guint count) {
	paystream_spool_batch *batch = g_new0(paystream_spool_batch, 1);
	batch->id = g_strdup(id);
	paystream_spool_rec *last = s->pending.head;
	for(guint i = 1; i < count; i++)
		last = last->next;
	batch->recs.head = s->pending.head;
	batch->recs.tail = last;
	batch->recs.count = count;
	s->pending.head = last->next;
	s->pending.count -= count;
	if(s->pending.head == NULL)
		s->pending.tail = NULL;
	last->next = NULL;
	g_hash_table_insert(s->batch_by_id, batch->id, batch);
	g_queue_push_tail(&s->batches, batch);
	batch->link = s->batches.tail;
	return batch;
}

/* Acked: the batch and its records go. */
static void paystream_spool_drop_batch(paystream_spool *s, paystream_spool_batch *batch) {
	g_queue_delete_link(&s->batches, batch->link);
	g_hash_table_remove(s->batch_by_id, batch->id);
}

/* Not sent after all: the batch goes, its records are pending again, first. */
static void paystream_spool_undo_batch(paystream_spool *s, paystream_spool_batch *batch) {
	batch->recs.tail->next = s->pending.head;
	if(s->pending.head == NULL)
		s->pending.tail = batch->recs.tail;
	s->pending.head = batch->recs.head;
	s->pending.count += batch->recs.count;
	memset(&batch->recs, 0, sizeof(batch->recs));
	paystream_spool_drop_batch(s, batch);
}

static paystream_spool_tip *paystream_spool_add_tip(paystream_spool *s, const char *id, json_t *body) {
	paystream_spool_tip *tip = g_new0(paystream_spool_tip, 1);
	tip->id = g_strdup(id);
	tip->tip = body;
	g_hash_table_insert(s->tip_by_id, tip->id, tip);
	g_queue_push_tail(&s->tips, tip);
	tip->link = s->tips.tail;
	return tip;
}

static void paystream_spool_drop_tip(paystream_spool *s, paystream_spool_tip *tip) {
	g_queue_delete_link(&s->tips, tip->link);
	g_hash_table_remove(s->tip_by_id, tip->id);
}

/* ---- files ---- */

/* Write the count pieces in iov, whole (iov is used up). */
static gboolean paystream_spool_writev_all(int fd, struct iovec *iov, int count) {
	while(count > 0) {
		if(iov->iov_len == 0) {
			iov++;
			count--;
			continue;
		}
		ssize_t n = writev(fd, iov, count);
		if(n < 0 && errno == EINTR)
			continue;
		if(n <= 0)
			return FALSE;
		for(size_t done = (size_t)n; done > 0; ) {
			size_t step = MIN(done, iov->iov_len);
			iov->iov_base = (char *)iov->iov_base + step;
			iov->iov_len -= step;
			done -= step;
			if(iov->iov_len == 0) {
				iov++;
				count--;
			}
		}
	}
	return TRUE;
}

static gboolean paystream_spool_write_all(int fd, const char *data, size_t len) {
	struct iovec iov = { (void *)data, len };
	return paystream_spool_writev_all(fd, &iov, 1);
}

static gboolean paystream_spool_sync_dir(const char *dir) {
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if(fd < 0)
		return FALSE;
	gboolean done = fsync(fd) == 0;
	close(fd);
	return done;
}

/* Pieces written by one system call in a flush (at most IOV_MAX). */
#define PAYSTREAM_SPOOL_FLUSH_PIECES 64

/* Write and flush the record lines not written yet, then the buffer (lock
 * held). Record lines go first: the buffer's lines (batches, acks) only
 * ever name records before them, and a tip's line is flushed at once. */
static int paystream_spool_flush(paystream_spool *s) {
	if(s->broken)
		return PAYSTREAM_SPOOL_ERR_BROKEN;
	if(s->buf->len == 0 && s->unwritten_head == NULL)
		return PAYSTREAM_SPOOL_OK;
	/* A few system calls for all the slabs' lines, then the buffer's. */
	struct iovec iov[PAYSTREAM_SPOOL_FLUSH_PIECES];
	int count = 0;
	gboolean wrote = TRUE;
	for(paystream_spool_slab *slab = s->unwritten_head; slab != NULL && wrote; slab = slab->next_unwritten) {
		iov[count++] = (struct iovec){ slab->data + slab->written, slab->used - slab->written };
		if(count == PAYSTREAM_SPOOL_FLUSH_PIECES) {
			wrote = paystream_spool_writev_all(s->fd, iov, count);
			count = 0;
		}
	}
	if(wrote) {
		iov[count++] = (struct iovec){ s->buf->str, s->buf->len };
		wrote = paystream_spool_writev_all(s->fd, iov, count);
	}
	if(!wrote) {
		/* Cut a partial write off, so that later lines never follow a torn
		 * one; then the same lines can be written again later. */
		if(ftruncate(s->fd, (off_t)s->file_bytes) != 0) {
			s->broken = TRUE;
			return PAYSTREAM_SPOOL_ERR_BROKEN;
		}
		return PAYSTREAM_SPOOL_ERR_IO;
	}
	/* A failed flush may have lost pages already written: nothing written
	 * since the last good flush can be trusted any more. */
	if(fdatasync(s->fd) != 0) {
		s->broken = TRUE;
		return PAYSTREAM_SPOOL_ERR_BROKEN;
	}
	s->file_bytes += s->unwritten_bytes + s->buf->len;
	paystream_spool_all_written(s);
	g_string_truncate(s->buf, 0);
	return PAYSTREAM_SPOOL_OK;
}

/* Write what is still needed to the temporary file, flush it and rename it
 * over the journal (lock held). */
static int paystream_spool_rewrite(paystream_spool *s) {
	if(s->broken)
		return PAYSTREAM_SPOOL_ERR_BROKEN;
	GString *out = g_string_sized_new(4096);
	paystream_spool_head_line(out, s->next_seq);
	for(GList *l = s->batches.head; l != NULL; l = l->next) {
		paystream_spool_batch *batch = l->data;
		for(paystream_spool_rec *rec = batch->recs.head; rec != NULL; rec = rec->next)
			paystream_spool_rec_line(out, rec->seq, rec->text, rec->len);
		paystream_spool_batch_line(out, batch);
	}
	for(paystream_spool_rec *rec = s->pending.head; rec != NULL; rec = rec->next)
		paystream_spool_rec_line(out, rec->seq, rec->text, rec->len);
	gboolean ok = TRUE;
	for(GList *l = s->tips.head; l != NULL && ok; l = l->next) {
		paystream_spool_tip *tip = l->data;
		ok = paystream_spool_tip_line(out, tip->id, tip->tip);
	}
	int fd = ok ? open(s->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600) : -1;
	if(fd < 0 || !paystream_spool_write_all(fd, out->str, out->len) || fsync(fd) != 0 ||
			rename(s->tmp_path, s->path) != 0) {
		if(fd >= 0) {
			close(fd);
			unlink(s->tmp_path);
		}
		g_string_free(out, TRUE);
		return PAYSTREAM_SPOOL_ERR_IO;
	}
	/* The new journal is in place: use it even if the folder's flush fails,
	 * but then nothing proves the rename is durable. */
	if(!paystream_spool_sync_dir(s->dir))
		s->broken = TRUE;
	if(s->fd >= 0)
		close(s->fd);
	s->fd = fd;
	s->file_bytes = out->len;
	paystream_spool_all_written(s);
	g_string_truncate(s->buf, 0);
	g_string_free(out, TRUE);
	return s->broken ? PAYSTREAM_SPOOL_ERR_BROKEN : PAYSTREAM_SPOOL_OK;
}

/* ---- replay ---- */

/* A line being read: [p, end). */
typedef struct paystream_spool_cursor {
	const char *p, *end;
} paystream_spool_cursor;

/* " <decimal>" with no sign, no leading zero (but "0"), within [min, max]. */
static gboolean paystream_spool_take_uint(paystream_spool_cursor *c, guint64 min, guint64 max, guint64 *out) {
	if(c->p >= c->end || *c->p != ' ')
		return FALSE;
	const char *d = ++c->p;
	guint64 n = 0;
	while(c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		if(n > (max - (guint64)(*c->p - '0')) / 10)
			return FALSE;
		n = n * 10 + (guint64)(*c->p - '0');
		c->p++;
	}
	if(c->p == d || (*d == '0' && c->p - d > 1) || n < min)
		return FALSE;
	*out = n;
	return TRUE;
}

/* " <rest of the line>", non-empty: returns its length, *text where it starts. */
static gsize paystream_spool_take_rest(paystream_spool_cursor *c, const char **text) {
	if(c->p >= c->end || *c->p != ' ' || c->end - c->p < 2)
		return 0;
	*text = c->p + 1;
	gsize n = (gsize)(c->end - c->p - 1);
	c->p = c->end;
	return n;
}

/* A copy of an id read from a line, or NULL if it is not a valid id. */
static char *paystream_spool_take_id(const char *text, gsize len) {
	return paystream_spool_id_valid(text, len) ? g_strndup(text, len) : NULL;
}

/* Apply one line's entry (after its checksum). 1: applied, 0: not to be
 * trusted, -1: a journal of another version. */
static int paystream_spool_apply(paystream_spool *s, paystream_spool_cursor *c, gboolean first) {
	char kind = *c->p++;
	const char *text = NULL;
	gsize len = 0;
	guint64 a = 0, b = 0;
	if(first != (kind == 'H'))
		return 0;
	switch(kind) {
	case 'H':
		if(!paystream_spool_take_uint(c, 1, G_MAXINT64, &a))
			return 0;
		if(a != PAYSTREAM_SPOOL_VERSION)
			return -1;
		if(!paystream_spool_take_uint(c, 1, PAYSTREAM_SPOOL_MAX_SEQ, &b) || c->p != c->end)
			return 0;
		s->next_seq = MAX(s->next_seq, b);
		return 1;
	case 'R':
		if(!paystream_spool_take_uint(c, s->last_seq + 1, PAYSTREAM_SPOOL_MAX_SEQ, &a) ||
				(len = paystream_spool_take_rest(c, &text)) == 0 || !paystream_spool_record_valid(text, len))
			return 0;
		return paystream_spool_add_rec(s, a, text, len, TRUE) == PAYSTREAM_SPOOL_OK ? 1 : 0;
	case 'B': {
		if(!paystream_spool_take_uint(c, 1, PAYSTREAM_SPOOL_MAX_SEQ, &a) ||
				!paystream_spool_take_uint(c, 1, G_MAXUINT, &b) || (len = paystream_spool_take_rest(c, &text)) == 0)
			return 0;
		/* Batches always take the oldest pending records. */
		if(s->pending.head == NULL || s->pending.head->seq != a || s->pending.count < b)
			return 0;
		char *id = paystream_spool_take_id(text, len);
		gboolean good = id != NULL && !g_hash_table_contains(s->batch_by_id, id);
		if(good)
			paystream_spool_add_batch(s, id, (guint)b);
		g_free(id);
		return good;
	}
	case 'A':
	case 'K': {
		char *id = (len = paystream_spool_take_rest(c, &text)) > 0 ? paystream_spool_take_id(text, len) : NULL;
		gpointer found = id == NULL ? NULL :
			g_hash_table_lookup(kind == 'A' ? s->batch_by_id : s->tip_by_id, id);
		g_free(id);
		if(found == NULL)
			return 0;
		if(kind == 'A')
			paystream_spool_drop_batch(s, found);
		else
			paystream_spool_drop_tip(s, found);
		return 1;
	}
	case 'T': {
		if(!paystream_spool_take_uint(c, 1, PAYSTREAM_SPOOL_MAX_ID, &a) || c->p >= c->end ||
				*c->p != ' ' || (guint64)(c->end - c->p) < a + 3)
			return 0;
		char *id = paystream_spool_take_id(c->p + 1, (gsize)a);
		c->p += 1 + a;
		json_t *tip = NULL;
		if(id != NULL && !g_hash_table_contains(s->tip_by_id, id) &&
				(len = paystream_spool_take_rest(c, &text)) > 0)
			tip = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
		gboolean good = json_is_object(tip);
		if(good)
			paystream_spool_add_tip(s, id, json_incref(tip));
		json_decref(tip);
		g_free(id);
		return good;
	}
	default:
		return 0;
	}
}

/* Check and apply one line (without its "\n"): as paystream_spool_apply. */
static int paystream_spool_replay_line(paystream_spool *s, const char *line, size_t len, gboolean first) {
	/* A version 1 journal: 16 hex digits, a space, a JSON object. */
	if(first && len > 18 && line[16] == ' ' && line[17] == '{')
		return -1;
	if(len < PAYSTREAM_SPOOL_SUM_LEN + 1 || len + 1 > PAYSTREAM_SPOOL_MAX_ENTRY ||
			line[PAYSTREAM_SPOOL_SUM_LEN - 1] != ' ')
		return 0;
	uint32_t sum = 0;
	for(int i = 0; i < 8; i++) {
		char h = line[i];
		int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : -1;
		if(v < 0)
			return 0;
		sum = sum << 4 | (uint32_t)v;
	}
	const char *body = line + PAYSTREAM_SPOOL_SUM_LEN;
	size_t body_len = len - PAYSTREAM_SPOOL_SUM_LEN;
	if(paystream_crc32c(0, body, body_len) != sum)
		return 0;
	paystream_spool_cursor c = { body, body + body_len };
	return paystream_spool_apply(s, &c, first);
}

/* Replay data; *good is the length of the trusted prefix. */
static int paystream_spool_replay(paystream_spool *s, const char *data, size_t len, size_t *good,
		guint64 *entries) {
	size_t pos = 0;
	while(pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		if(nl == NULL)
			break;
		size_t line_len = (size_t)(nl - (data + pos));
		int applied = paystream_spool_replay_line(s, data + pos, line_len, *entries == 0);
		if(applied < 0)
			return PAYSTREAM_SPOOL_ERR_VERSION;
		if(applied == 0)
			break;
		(*entries)++;
		pos += line_len + 1;
	}
	*good = pos;
	return PAYSTREAM_SPOOL_OK;
}

/* Keep an unreadable tail for an operator; returns its path or NULL. */
static char *paystream_spool_save_tail(const char *dir, const char *data, size_t len) {
	gint64 now = g_get_real_time();
	for(int attempt = 0; attempt < 100; attempt++) {
		char *path = attempt == 0 ?
			g_strdup_printf("%s/%s.dropped.%" G_GINT64_FORMAT, dir, PAYSTREAM_SPOOL_FILE, now) :
			g_strdup_printf("%s/%s.dropped.%" G_GINT64_FORMAT "-%d", dir, PAYSTREAM_SPOOL_FILE, now, attempt);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if(fd < 0 && errno == EEXIST) {
			g_free(path);
			continue;
		}
		gboolean saved = fd >= 0 && paystream_spool_write_all(fd, data, len) && fsync(fd) == 0;
		if(fd >= 0)
			close(fd);
		if(saved)
			return path;
		unlink(path);
		g_free(path);
		return NULL;
	}
	return NULL;
}

static void paystream_spool_free(paystream_spool *s) {
	if(s->fd >= 0)
		close(s->fd);
	if(s->lock_fd >= 0)
		close(s->lock_fd);	/* releases the flock */
	g_hash_table_destroy(s->batch_by_id);
	paystream_spool_chain_free(&s->pending);
	paystream_spool_slab_retire(s->slab);
	paystream_spool_spares_trim(s, 0);
	g_hash_table_destroy(s->tip_by_id);
	g_queue_clear(&s->batches);
	g_queue_clear(&s->tips);
	g_string_free(s->buf, TRUE);
	g_free(s->dir);
	g_free(s->path);
	g_free(s->tmp_path);
	g_mutex_clear(&s->mutex);
	g_free(s);
}

static paystream_spool *paystream_spool_fail(paystream_spool *s, GError **error, int code, const char *what) {
	int err = errno;
	g_set_error(error, PAYSTREAM_SPOOL_ERROR, code, "spool %s: %s: %s", s->dir, what,
		code == PAYSTREAM_SPOOL_ERR_IO ? g_strerror(err) : paystream_spool_status_name(code));
	paystream_spool_free(s);
	return NULL;
}

paystream_spool *paystream_spool_open(const char *dir, guint64 max_bytes, paystream_spool_report *report,
		GError **error) {
	if(report != NULL)
		memset(report, 0, sizeof(*report));
	if(dir == NULL || dir[0] == '\0') {
		g_set_error(error, PAYSTREAM_SPOOL_ERROR, PAYSTREAM_SPOOL_ERR_INVALID, "spool: no folder");
		return NULL;
	}
	paystream_spool *s = g_new0(paystream_spool, 1);
	g_mutex_init(&s->mutex);
	s->dir = g_strdup(dir);
	s->path = g_build_filename(dir, PAYSTREAM_SPOOL_FILE, NULL);
	s->tmp_path = g_strconcat(s->path, ".tmp", NULL);
	s->fd = -1;
	s->max_bytes = max_bytes;
	s->buf = g_string_new(NULL);
	s->next_seq = 1;
	s->batch_by_id = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, paystream_spool_batch_free);
	s->tip_by_id = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, paystream_spool_tip_free);
	char *lock_path = g_strconcat(s->path, ".lock", NULL);
	if(g_mkdir_with_parents(dir, 0700) != 0)
		s->lock_fd = -1;
	else
		s->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	g_free(lock_path);
	if(s->lock_fd < 0)
		return paystream_spool_fail(s, error, PAYSTREAM_SPOOL_ERR_IO, "cannot create the lock file");
	if(flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0)
		return paystream_spool_fail(s, error, errno == EWOULDBLOCK ? PAYSTREAM_SPOOL_ERR_BUSY : PAYSTREAM_SPOOL_ERR_IO,
			"cannot lock");

	GError *map_error = NULL;
	GMappedFile *map = g_mapped_file_new(s->path, FALSE, &map_error);
	if(map == NULL && !g_error_matches(map_error, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
		g_set_error(error, PAYSTREAM_SPOOL_ERROR, PAYSTREAM_SPOOL_ERR_IO, "spool %s: %s", dir, map_error->message);
		g_error_free(map_error);
		paystream_spool_free(s);
		return NULL;
	}
	g_clear_error(&map_error);
	const char *data = map != NULL ? g_mapped_file_get_contents(map) : NULL;
	size_t len = map != NULL ? g_mapped_file_get_length(map) : 0;
	size_t good = 0;
	paystream_spool_report found = { 0 };
	int rc = paystream_spool_replay(s, data, len, &good, &found.entries);
	found.bytes_before = len;
	found.dropped_bytes = len - good;
	if(rc == PAYSTREAM_SPOOL_OK && good < len) {
		const char *tail = data + good;
		size_t tail_len = len - good;
		for(size_t i = 0; i < tail_len; i++)
			found.dropped_lines += tail[i] == '\n';
		if(tail[tail_len - 1] != '\n')
			found.dropped_lines++;
		/* More than a torn last write: keep it before the rewrite erases it. */
		if(memchr(tail, '\n', tail_len) != NULL &&
				(found.dropped_path = paystream_spool_save_tail(dir, tail, tail_len)) == NULL)
			rc = PAYSTREAM_SPOOL_ERR_IO;
	}
	if(map != NULL)
		g_mapped_file_unref(map);
	const char *failed = rc == PAYSTREAM_SPOOL_ERR_IO ? "cannot save the unreadable tail" : "a journal of another format version (docs/BILLING.md, The spool on disk)";
	if(rc == PAYSTREAM_SPOOL_OK && paystream_spool_rewrite(s) != PAYSTREAM_SPOOL_OK) {
		rc = PAYSTREAM_SPOOL_ERR_IO;
		failed = "cannot compact";
	}
	found.bytes_after = s->file_bytes;
	found.pending_records = s->pending.count;
	found.unacked_batches = g_queue_get_length(&s->batches);
	found.unacked_tips = g_queue_get_length(&s->tips);
	if(report != NULL)
		*report = found;
	else
		paystream_spool_report_clear(&found);
	return rc == PAYSTREAM_SPOOL_OK ? s : paystream_spool_fail(s, error, rc, failed);
}

int paystream_spool_close(paystream_spool *s) {
	if(s == NULL)
		return PAYSTREAM_SPOOL_OK;
	g_mutex_lock(&s->mutex);
	int rc = paystream_spool_flush(s);
	g_mutex_unlock(&s->mutex);
	paystream_spool_free(s);
	return rc;
}

/* ---- the API ---- */

/* The line at s->buf[at] was just buffered: keep it unless it is too big
 * or takes the spool over max_bytes. */
static int paystream_spool_keep_line(paystream_spool *s, gsize at) {
	gsize line_len = s->buf->len - at;
	int rc = PAYSTREAM_SPOOL_OK;
	if(line_len > PAYSTREAM_SPOOL_MAX_ENTRY)
		rc = PAYSTREAM_SPOOL_ERR_INVALID;
	else if(paystream_spool_over(s, 0))
		rc = PAYSTREAM_SPOOL_ERR_FULL;
	if(rc != PAYSTREAM_SPOOL_OK)
		g_string_truncate(s->buf, at);
	return rc;
}

/* Buffer the records in text (lock held); *taken: the bytes accepted. */
static int paystream_spool_append_locked(paystream_spool *s, const char *text, gsize len, gsize *taken) {
	int rc = s->broken ? PAYSTREAM_SPOOL_ERR_BROKEN : PAYSTREAM_SPOOL_OK;
	gsize pos = 0;
	while(rc == PAYSTREAM_SPOOL_OK && pos < len) {
		const char *record = text + pos;
		const char *nl = memchr(record, '\n', len - pos);
		gsize n = nl != NULL ? (gsize)(nl - record) : len - pos;
		if(!paystream_spool_record_valid(record, n)) {
			rc = PAYSTREAM_SPOOL_ERR_INVALID;
			break;
		}
		if(s->next_seq > PAYSTREAM_SPOOL_MAX_SEQ) {
			rc = PAYSTREAM_SPOOL_ERR_FULL;
			break;
		}
		if((rc = paystream_spool_add_rec(s, s->next_seq, record, n, FALSE)) != PAYSTREAM_SPOOL_OK)
			break;
		pos += n + (nl != NULL ? 1 : 0);
	}
	*taken = pos;
	return rc;
}

int paystream_spool_append_text(paystream_spool *s, const char *text, gsize len, gsize *taken) {
	gsize done = 0;
	int rc = PAYSTREAM_SPOOL_ERR_INVALID;
	if(s != NULL && (text != NULL || len == 0)) {
		g_mutex_lock(&s->mutex);
		rc = paystream_spool_append_locked(s, text, len, &done);
		g_mutex_unlock(&s->mutex);
	}
	if(taken != NULL)
		*taken = done;
	return rc;
}

int paystream_spool_append(paystream_spool *s, json_t *record, guint64 *seq) {
	if(s == NULL || !json_is_object(record) || !json_is_string(json_object_get(record, "type")))
		return PAYSTREAM_SPOOL_ERR_INVALID;
	char *text = json_dumps(record, JSON_COMPACT);
	if(text == NULL)
		return PAYSTREAM_SPOOL_ERR_INVALID;
	gsize taken = 0;
	g_mutex_lock(&s->mutex);
	int rc = paystream_spool_append_locked(s, text, strlen(text), &taken);
	if(rc == PAYSTREAM_SPOOL_OK && seq != NULL)
		*seq = s->last_seq;
	g_mutex_unlock(&s->mutex);
	free(text);
	return rc;
}

int paystream_spool_commit(paystream_spool *s) {
	if(s == NULL)
		return PAYSTREAM_SPOOL_ERR_INVALID;
	g_mutex_lock(&s->mutex);
	int rc = paystream_spool_flush(s);
	g_mutex_unlock(&s->mutex);
	return rc;
}

/* Append a batch's records' texts, joined by ",", to out. */
static void paystream_spool_batch_records(GString *out, const paystream_spool_batch *batch) {
	gsize at = out->len, bytes = 0;
	for(paystream_spool_rec *rec = batch->recs.head; rec != NULL; rec = rec->next)
		bytes += rec->len + 1;
	g_string_set_size(out, at + bytes);
	char *p = out->str + at;
	for(paystream_spool_rec *rec = batch->recs.head; rec != NULL; rec = rec->next) {
		if(rec != batch->recs.head)
			*p++ = ',';
		memcpy(p, rec->text, rec->len);
		p += rec->len;
	}
	g_string_truncate(out, (gsize)(p - out->str));
}

int paystream_spool_begin_batch(paystream_spool *s, const char *batch_id, guint max_records, GString *records,
		guint *count) {
	if(count != NULL)
		*count = 0;
	if(s == NULL || max_records == 0 || records == NULL || batch_id == NULL ||
			!paystream_spool_id_valid(batch_id, strnlen(batch_id, PAYSTREAM_SPOOL_MAX_ID + 1)))
		return PAYSTREAM_SPOOL_ERR_INVALID;
	g_mutex_lock(&s->mutex);
	int rc = PAYSTREAM_SPOOL_OK;
	if(s->broken)
		rc = PAYSTREAM_SPOOL_ERR_BROKEN;
	else if(s->pending.count == 0)
		rc = PAYSTREAM_SPOOL_ERR_EMPTY;
	else if(g_hash_table_contains(s->batch_by_id, batch_id))
		rc = PAYSTREAM_SPOOL_ERR_DUPLICATE;
	if(rc != PAYSTREAM_SPOOL_OK) {
		g_mutex_unlock(&s->mutex);
		return rc;
	}
	paystream_spool_batch *batch = paystream_spool_add_batch(s, batch_id, MIN(max_records, s->pending.count));
	gsize before = s->buf->len;
	paystream_spool_batch_line(s->buf, batch);
	rc = paystream_spool_flush(s);
	if(rc == PAYSTREAM_SPOOL_OK) {
		paystream_spool_batch_records(records, batch);
		if(count != NULL)
			*count = batch->recs.count;
	} else if(!s->broken) {
		/* Not on disk: as if never asked (the records' lines stay buffered). */
		g_string_truncate(s->buf, before);
		paystream_spool_undo_batch(s, batch);
	}
	g_mutex_unlock(&s->mutex);
	return rc;
}

/* Buffer an ack line of kind for id; the entry must exist. */
static int paystream_spool_ack(paystream_spool *s, char kind, const char *id) {
	if(s == NULL || id == NULL)
		return PAYSTREAM_SPOOL_ERR_INVALID;
	g_mutex_lock(&s->mutex);
	gpointer found = g_hash_table_lookup(kind == 'A' ? s->batch_by_id : s->tip_by_id, id);
	int rc = PAYSTREAM_SPOOL_OK;
	if(s->broken)
		rc = PAYSTREAM_SPOOL_ERR_BROKEN;
	else if(found == NULL)
		rc = PAYSTREAM_SPOOL_ERR_UNKNOWN;
	else
		paystream_spool_id_line(s->buf, kind, id);
	if(rc == PAYSTREAM_SPOOL_OK && kind == 'A')
		paystream_spool_drop_batch(s, found);
	else if(rc == PAYSTREAM_SPOOL_OK)
		paystream_spool_drop_tip(s, found);
	g_mutex_unlock(&s->mutex);
	return rc;
}

int paystream_spool_ack_batch(paystream_spool *s, const char *batch_id) {
	return paystream_spool_ack(s, 'A', batch_id);
}

GPtrArray *paystream_spool_unacked_batches(paystream_spool *s) {
	GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify)paystream_spool_batch_text_free);
	if(s == NULL)
		return list;
	g_mutex_lock(&s->mutex);
	for(GList *l = s->batches.head; l != NULL; l = l->next) {
		paystream_spool_batch *batch = l->data;
		paystream_spool_batch_text *out = g_new0(paystream_spool_batch_text, 1);
		out->batch_id = g_strdup(batch->id);
		out->records = g_string_new(NULL);
		paystream_spool_batch_records(out->records, batch);
		out->count = batch->recs.count;
		g_ptr_array_add(list, out);
	}
	g_mutex_unlock(&s->mutex);
	return list;
}

int paystream_spool_append_tip(paystream_spool *s, const char *tip_id, json_t *tip) {
	if(s == NULL || tip_id == NULL || !paystream_spool_id_valid(tip_id, strnlen(tip_id, PAYSTREAM_SPOOL_MAX_ID + 1)) ||
			!json_is_object(tip))
		return PAYSTREAM_SPOOL_ERR_INVALID;
	/* The copy kept is what a replay will read back. */
	char *text = json_dumps(tip, JSON_COMPACT);
	json_t *copy = text != NULL ? json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL) : NULL;
	free(text);
	if(copy == NULL)
		return PAYSTREAM_SPOOL_ERR_INVALID;
	g_mutex_lock(&s->mutex);
	int rc = PAYSTREAM_SPOOL_OK;
	gsize before = s->buf->len;
	if(s->broken)
		rc = PAYSTREAM_SPOOL_ERR_BROKEN;
	else if(g_hash_table_contains(s->tip_by_id, tip_id))
		rc = PAYSTREAM_SPOOL_ERR_DUPLICATE;
	else if(!paystream_spool_tip_line(s->buf, tip_id, copy))
		rc = PAYSTREAM_SPOOL_ERR_INVALID;
	else
		rc = paystream_spool_keep_line(s, before);
	if(rc != PAYSTREAM_SPOOL_OK) {
		json_decref(copy);
		g_mutex_unlock(&s->mutex);
		return rc;
	}
	paystream_spool_tip *added = paystream_spool_add_tip(s, tip_id, copy);
	rc = paystream_spool_flush(s);
	if(rc != PAYSTREAM_SPOOL_OK && !s->broken) {
		g_string_truncate(s->buf, before);
		paystream_spool_drop_tip(s, added);
	}
	g_mutex_unlock(&s->mutex);
	return rc;
}

int paystream_spool_ack_tip(paystream_spool *s, const char *tip_id) {
	return paystream_spool_ack(s, 'K', tip_id);
}

json_t *paystream_spool_unacked_tips(paystream_spool *s) {
	json_t *list = json_array();
	if(s == NULL)
		return list;
	g_mutex_lock(&s->mutex);
	for(GList *l = s->tips.head; l != NULL; l = l->next) {
		paystream_spool_tip *tip = l->data;
		/* (An id need not be UTF-8 here: the caller checks it, so it is
		 * listed as it is rather than left out.) */
		json_array_append_new(list, json_pack("{s:o, s:o}", "tip_id", json_stringn_nocheck(tip->id, strlen(tip->id)),
			"tip", json_deep_copy(tip->tip)));
	}
	g_mutex_unlock(&s->mutex);
	return list;
}

guint64 paystream_spool_bytes(paystream_spool *s) {
	if(s == NULL)
		return 0;
	g_mutex_lock(&s->mutex);
	guint64 bytes = paystream_spool_size(s);
	g_mutex_unlock(&s->mutex);
	return bytes;
}

guint paystream_spool_pending_count(paystream_spool *s) {
	if(s == NULL)
		return 0;
	g_mutex_lock(&s->mutex);
	guint n = s->pending.count;
	g_mutex_unlock(&s->mutex);
	return n;
}

guint paystream_spool_unacked_count(paystream_spool *s) {
	if(s == NULL)
		return 0;
	g_mutex_lock(&s->mutex);
	guint n = s->pending.count;
	for(GList *l = s->batches.head; l != NULL; l = l->next)
		n += ((paystream_spool_batch *)l->data)->recs.count;
	g_mutex_unlock(&s->mutex);
	return n;
}

int paystream_spool_compact(paystream_spool *s) {
	if(s == NULL)
		return PAYSTREAM_SPOOL_ERR_INVALID;
	g_mutex_lock(&s->mutex);
	int rc = paystream_spool_rewrite(s);
	/* (Usually just after a drain: spares kept for a backlog that is gone
	 * are let go once a whole period between compactions did not need them.) */
	s->slabs_high_before = s->slabs_high;
	s->slabs_high = s->slabs_in_use;
	paystream_spool_spares_trim(s, paystream_spool_spares_wanted(s));
	g_mutex_unlock(&s->mutex);
	return rc;
}
