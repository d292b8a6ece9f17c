/* spool.c - the journal of billing records, batches and tips (see spool.h
 * for the format and the guarantees). */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ids.h"

#define PAYSTREAM_SPOOL_FILE "paystream.spool"
#define PAYSTREAM_SPOOL_VERSION 1
#define PAYSTREAM_SPOOL_SUM_LEN 16
/* Seqs stay far from any overflow, whatever a journal says. */
#define PAYSTREAM_SPOOL_MAX_SEQ ((guint64)G_MAXINT64 / 2)

struct paystream_spool_batch;

typedef struct paystream_spool_rec {
	guint64 seq;
	json_t *record;
	struct paystream_spool_batch *batch;	/* NULL: pending */
	GList *link;							/* in pending, while batch is NULL */
} paystream_spool_rec;

typedef struct paystream_spool_batch {
	char *id;
	GPtrArray *recs;		/* paystream_spool_rec, in seq order */
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
	GString *buf;			/* lines not written yet */
	gboolean broken;
	guint64 next_seq;
	GHashTable *recs;		/* &seq -> rec (owned) */
	GQueue pending;			/* rec, oldest first */
	GHashTable *batch_by_id;	/* id -> batch (owned) */
	GQueue batches;			/* batch, oldest first */
	GHashTable *tip_by_id;	/* id -> tip (owned) */
	GQueue tips;
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

static void paystream_spool_rec_free(gpointer data) {
	paystream_spool_rec *rec = data;
	json_decref(rec->record);
	g_free(rec);
}

static void paystream_spool_batch_free(gpointer data) {
	paystream_spool_batch *batch = data;
	g_ptr_array_free(batch->recs, TRUE);
	g_free(batch->id);
	g_free(batch);
}

static void paystream_spool_tip_free(gpointer data) {
	paystream_spool_tip *tip = data;
	json_decref(tip->tip);
	g_free(tip->id);
	g_free(tip);
}

/* ---- lines ---- */

/* Append entry as a line to out (entry is consumed); returns its length, 0
 * if it could not be serialized. */
static gsize paystream_spool_line(GString *out, json_t *entry) {
	char *text = entry != NULL ? json_dumps(entry, JSON_COMPACT) : NULL;
	json_decref(entry);
	if(text == NULL)
		return 0;
	size_t n = strlen(text);
	char *sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)text, n);
	gsize before = out->len;
	g_string_append_len(out, sum, PAYSTREAM_SPOOL_SUM_LEN);
	g_string_append_c(out, ' ');
	g_string_append_len(out, text, (gssize)n);
	g_string_append_c(out, '\n');
	g_free(sum);
	free(text);
	return out->len - before;
}

/* A copy of value made by a serialization round trip: what a replay will
 * read back. NULL if it does not survive one. */
static json_t *paystream_spool_copy(json_t *value) {
	char *text = json_dumps(value, JSON_COMPACT);
	if(text == NULL)
		return NULL;
	json_t *copy = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
	free(text);
	if(copy != NULL && !json_is_object(copy)) {
		json_decref(copy);
		return NULL;
	}
	return copy;
}

static json_t *paystream_spool_rec_entry(const paystream_spool_rec *rec) {
	return json_pack("{s:s, s:I, s:O}", "e", "rec", "seq", (json_int_t)rec->seq, "rec", rec->record);
}

static json_t *paystream_spool_batch_entry(const paystream_spool_batch *batch) {
	json_t *seqs = json_array();
	for(guint i = 0; i < batch->recs->len; i++) {
		paystream_spool_rec *rec = g_ptr_array_index(batch->recs, i);
		json_array_append_new(seqs, json_integer((json_int_t)rec->seq));
	}
	return json_pack("{s:s, s:s, s:o}", "e", "batch", "id", batch->id, "seqs", seqs);
}

static json_t *paystream_spool_tip_entry(const paystream_spool_tip *tip) {
	return json_pack("{s:s, s:s, s:O}", "e", "tip", "id", tip->id, "tip", tip->tip);
}

static gboolean paystream_spool_id_valid(const char *id) {
	if(id == NULL)
		return FALSE;
	size_t n = strnlen(id, PAYSTREAM_SPOOL_MAX_ID + 1);
	return n > 0 && n <= PAYSTREAM_SPOOL_MAX_ID;
}

/* ---- state changes, shared by the API and the replay ---- */

static paystream_spool_rec *paystream_spool_add_rec(paystream_spool *s, guint64 seq, json_t *record) {
	paystream_spool_rec *rec = g_new0(paystream_spool_rec, 1);
	rec->seq = seq;
	rec->record = record;
	g_hash_table_insert(s->recs, &rec->seq, rec);
	g_queue_push_tail(&s->pending, rec);
	rec->link = s->pending.tail;
	if(seq >= s->next_seq)
		s->next_seq = seq + 1;
	return rec;
}

static paystream_spool_batch *paystream_spool_add_batch(paystream_spool *s, const char *id) {
	paystream_spool_batch *batch = g_new0(paystream_spool_batch, 1);
	batch->id = g_strdup(id);
	batch->recs = g_ptr_array_new();
	g_hash_table_insert(s->batch_by_id, batch->id, batch);
	g_queue_push_tail(&s->batches, batch);
	batch->link = s->batches.tail;
	return batch;
}

static void paystream_spool_batch_take(paystream_spool_batch *batch, paystream_spool *s, paystream_spool_rec *rec) {
	g_queue_delete_link(&s->pending, rec->link);
	rec->link = NULL;
	rec->batch = batch;
	g_ptr_array_add(batch->recs, rec);
}

/* Acked: the batch and its records go. */
static void paystream_spool_drop_batch(paystream_spool *s, paystream_spool_batch *batch) {
	for(guint i = 0; i < batch->recs->len; i++) {
		paystream_spool_rec *rec = g_ptr_array_index(batch->recs, i);
		g_hash_table_remove(s->recs, &rec->seq);
	}
	g_queue_delete_link(&s->batches, batch->link);
	g_hash_table_remove(s->batch_by_id, batch->id);
}

/* Not sent after all: the batch goes, its records are pending again, first. */
static void paystream_spool_undo_batch(paystream_spool *s, paystream_spool_batch *batch) {
	for(guint i = batch->recs->len; i > 0; i--) {
		paystream_spool_rec *rec = g_ptr_array_index(batch->recs, i - 1);
		rec->batch = NULL;
		g_queue_push_head(&s->pending, rec);
		rec->link = s->pending.head;
	}
	g_ptr_array_set_size(batch->recs, 0);
	g_queue_delete_link(&s->batches, batch->link);
	g_hash_table_remove(s->batch_by_id, batch->id);
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

static gboolean paystream_spool_write_all(int fd, const char *data, size_t len) {
	while(len > 0) {
		ssize_t n = write(fd, data, len);
		if(n < 0 && errno == EINTR)
			continue;
		if(n <= 0)
			return FALSE;
		data += n;
		len -= (size_t)n;
	}
	return TRUE;
}

static gboolean paystream_spool_sync_dir(const char *dir) {
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if(fd < 0)
		return FALSE;
	gboolean done = fsync(fd) == 0;
	close(fd);
	return done;
}

/* Write and flush the buffer (lock held). */
static int paystream_spool_flush(paystream_spool *s) {
	if(s->broken)
		return PAYSTREAM_SPOOL_ERR_BROKEN;
	if(s->buf->len == 0)
		return PAYSTREAM_SPOOL_OK;
	if(!paystream_spool_write_all(s->fd, s->buf->str, s->buf->len)) {
		/* Cut a partial write off, so that later lines never follow a torn one. */
		if(ftruncate(s->fd, (off_t)s->file_bytes) != 0)
			s->broken = TRUE;
		return PAYSTREAM_SPOOL_ERR_IO;
	}
	if(fdatasync(s->fd) != 0) {
		s->broken = TRUE;
		return PAYSTREAM_SPOOL_ERR_IO;
	}
	s->file_bytes += s->buf->len;
	g_string_truncate(s->buf, 0);
	return PAYSTREAM_SPOOL_OK;
}

/* Write what is still needed to the temporary file, flush it and rename it
 * over the journal (lock held). */
static int paystream_spool_rewrite(paystream_spool *s) {
	if(s->broken)
		return PAYSTREAM_SPOOL_ERR_BROKEN;
	GString *out = g_string_sized_new(4096);
	gboolean ok = paystream_spool_line(out, json_pack("{s:s, s:i, s:I}", "e", "head",
		"v", PAYSTREAM_SPOOL_VERSION, "next_seq", (json_int_t)s->next_seq)) > 0;
	for(GList *l = s->batches.head; l != NULL && ok; l = l->next) {
		paystream_spool_batch *batch = l->data;
		for(guint i = 0; i < batch->recs->len && ok; i++)
			ok = paystream_spool_line(out, paystream_spool_rec_entry(g_ptr_array_index(batch->recs, i))) > 0;
		ok = ok && paystream_spool_line(out, paystream_spool_batch_entry(batch)) > 0;
	}
	for(GList *l = s->pending.head; l != NULL && ok; l = l->next)
		ok = paystream_spool_line(out, paystream_spool_rec_entry(l->data)) > 0;
	for(GList *l = s->tips.head; l != NULL && ok; l = l->next)
		ok = paystream_spool_line(out, paystream_spool_tip_entry(l->data)) > 0;
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
	g_string_truncate(s->buf, 0);
	g_string_free(out, TRUE);
	return s->broken ? PAYSTREAM_SPOOL_ERR_BROKEN : PAYSTREAM_SPOOL_OK;
}

/* ---- replay ---- */

static gboolean paystream_spool_json_uint(json_t *v, guint64 min, guint64 max, guint64 *out) {
	if(!json_is_integer(v) || json_integer_value(v) < 0)
		return FALSE;
	guint64 n = (guint64)json_integer_value(v);
	if(n < min || n > max)
		return FALSE;
	*out = n;
	return TRUE;
}

/* The entry's "id", or NULL when absent or not a valid id. */
static const char *paystream_spool_entry_id(json_t *entry) {
	json_t *v = json_object_get(entry, "id");
	const char *id = json_string_value(v);
	if(id == NULL || strlen(id) != json_string_length(v) || !paystream_spool_id_valid(id))
		return NULL;
	return id;
}

/* Apply one entry. 1: applied, 0: not to be trusted, -1: a newer version. */
static int paystream_spool_apply(paystream_spool *s, json_t *entry, gboolean first) {
	const char *e = json_string_value(json_object_get(entry, "e"));
	const char *id = paystream_spool_entry_id(entry);
	if(e == NULL)
		return 0;
	if(strcmp(e, "head") == 0) {
		guint64 v = 0, next = 0;
		if(!first || !paystream_spool_json_uint(json_object_get(entry, "v"), 1, G_MAXINT64, &v))
			return 0;
		if(v != PAYSTREAM_SPOOL_VERSION)
			return -1;
		if(!paystream_spool_json_uint(json_object_get(entry, "next_seq"), 1, PAYSTREAM_SPOOL_MAX_SEQ, &next))
			return 0;
		s->next_seq = MAX(s->next_seq, next);
		return 1;
	}
	if(strcmp(e, "rec") == 0) {
		guint64 seq = 0;
		json_t *record = json_object_get(entry, "rec");
		if(!paystream_spool_json_uint(json_object_get(entry, "seq"), 1, PAYSTREAM_SPOOL_MAX_SEQ, &seq) ||
				!json_is_object(record) || !json_is_string(json_object_get(record, "type")) ||
				g_hash_table_contains(s->recs, &seq))
			return 0;
		paystream_spool_add_rec(s, seq, json_incref(record));
		return 1;
	}
	if(strcmp(e, "batch") == 0) {
		json_t *seqs = json_object_get(entry, "seqs");
		if(!paystream_spool_id_valid(id) || g_hash_table_contains(s->batch_by_id, id) ||
				!json_is_array(seqs) || json_array_size(seqs) == 0)
			return 0;
		/* Every seq must be a pending record, once: check before changing anything. */
		GHashTable *seen = g_hash_table_new(g_int64_hash, g_int64_equal);
		gboolean good = TRUE;
		for(size_t i = 0; i < json_array_size(seqs) && good; i++) {
			guint64 seq = 0;
			paystream_spool_rec *rec = NULL;
			good = paystream_spool_json_uint(json_array_get(seqs, i), 1, PAYSTREAM_SPOOL_MAX_SEQ, &seq) &&
				(rec = g_hash_table_lookup(s->recs, &seq)) != NULL && rec->batch == NULL &&
				g_hash_table_add(seen, &rec->seq);
		}
		g_hash_table_destroy(seen);
		if(!good)
			return 0;
		paystream_spool_batch *batch = paystream_spool_add_batch(s, id);
		for(size_t i = 0; i < json_array_size(seqs); i++) {
			guint64 seq = (guint64)json_integer_value(json_array_get(seqs, i));
			paystream_spool_batch_take(batch, s, g_hash_table_lookup(s->recs, &seq));
		}
		return 1;
	}
	if(strcmp(e, "ack") == 0) {
		paystream_spool_batch *batch = id != NULL ? g_hash_table_lookup(s->batch_by_id, id) : NULL;
		if(batch == NULL)
			return 0;
		paystream_spool_drop_batch(s, batch);
		return 1;
	}
	if(strcmp(e, "tip") == 0) {
		json_t *tip = json_object_get(entry, "tip");
		if(!paystream_spool_id_valid(id) || !json_is_object(tip) || g_hash_table_contains(s->tip_by_id, id))
			return 0;
		paystream_spool_add_tip(s, id, json_incref(tip));
		return 1;
	}
	if(strcmp(e, "tipack") == 0) {
		paystream_spool_tip *tip = id != NULL ? g_hash_table_lookup(s->tip_by_id, id) : NULL;
		if(tip == NULL)
			return 0;
		paystream_spool_drop_tip(s, tip);
		return 1;
	}
	return 0;
}

/* Parse and apply one line (without its "\n"): as paystream_spool_apply. */
static int paystream_spool_replay_line(paystream_spool *s, const char *line, size_t len, gboolean first) {
	if(len < PAYSTREAM_SPOOL_SUM_LEN + 3 || len > PAYSTREAM_SPOOL_MAX_ENTRY || line[PAYSTREAM_SPOOL_SUM_LEN] != ' ')
		return 0;
	const char *text = line + PAYSTREAM_SPOOL_SUM_LEN + 1;
	size_t text_len = len - PAYSTREAM_SPOOL_SUM_LEN - 1;
	char *sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)text, text_len);
	gboolean sum_ok = memcmp(sum, line, PAYSTREAM_SPOOL_SUM_LEN) == 0;
	g_free(sum);
	if(!sum_ok)
		return 0;
	json_t *entry = json_loadb(text, text_len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
	int applied = json_is_object(entry) ? paystream_spool_apply(s, entry, first) : 0;
	json_decref(entry);
	return applied;
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
	g_hash_table_destroy(s->batch_by_id);	/* batches first: they point at records */
	g_hash_table_destroy(s->recs);
	g_hash_table_destroy(s->tip_by_id);
	g_queue_clear(&s->pending);
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
	s->recs = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, paystream_spool_rec_free);
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
	const char *failed = rc == PAYSTREAM_SPOOL_ERR_IO ? "cannot save the unreadable tail" : "journal of a newer version";
	if(rc == PAYSTREAM_SPOOL_OK && paystream_spool_rewrite(s) != PAYSTREAM_SPOOL_OK) {
		rc = PAYSTREAM_SPOOL_ERR_IO;
		failed = "cannot compact";
	}
	found.bytes_after = s->file_bytes;
	found.pending_records = g_queue_get_length(&s->pending);
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

/* Serialize entry and buffer it, unless it is too big or (when counted) would
 * pass max_bytes. */
static int paystream_spool_buffer(paystream_spool *s, json_t *entry, gboolean counted) {
	GString *line = g_string_new(NULL);
	int rc = PAYSTREAM_SPOOL_OK;
	if(paystream_spool_line(line, entry) == 0 || line->len > PAYSTREAM_SPOOL_MAX_ENTRY)
		rc = PAYSTREAM_SPOOL_ERR_INVALID;
	else if(counted && s->max_bytes > 0 && s->file_bytes + s->buf->len + line->len > s->max_bytes)
		rc = PAYSTREAM_SPOOL_ERR_FULL;
	else
		g_string_append_len(s->buf, line->str, (gssize)line->len);
	g_string_free(line, TRUE);
	return rc;
}

int paystream_spool_append(paystream_spool *s, json_t *record, guint64 *seq) {
	if(s == NULL || !json_is_object(record) || !json_is_string(json_object_get(record, "type")))
		return PAYSTREAM_SPOOL_ERR_INVALID;
	json_t *copy = paystream_spool_copy(record);
	if(copy == NULL)
		return PAYSTREAM_SPOOL_ERR_INVALID;
	g_mutex_lock(&s->mutex);
	int rc = s->broken ? PAYSTREAM_SPOOL_ERR_BROKEN : PAYSTREAM_SPOOL_OK;
	paystream_spool_rec probe = { .seq = s->next_seq, .record = copy };
	if(rc == PAYSTREAM_SPOOL_OK && probe.seq > PAYSTREAM_SPOOL_MAX_SEQ)
		rc = PAYSTREAM_SPOOL_ERR_FULL;
	if(rc == PAYSTREAM_SPOOL_OK)
		rc = paystream_spool_buffer(s, paystream_spool_rec_entry(&probe), TRUE);
	if(rc == PAYSTREAM_SPOOL_OK) {
		paystream_spool_add_rec(s, probe.seq, copy);
		if(seq != NULL)
			*seq = probe.seq;
	} else {
		json_decref(copy);
	}
	g_mutex_unlock(&s->mutex);
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

static json_t *paystream_spool_batch_records(const paystream_spool_batch *batch) {
	json_t *records = json_array();
	for(guint i = 0; i < batch->recs->len; i++) {
		paystream_spool_rec *rec = g_ptr_array_index(batch->recs, i);
		json_array_append_new(records, json_deep_copy(rec->record));
	}
	return records;
}

int paystream_spool_begin_batch(paystream_spool *s, guint max_records, char **batch_id, json_t **records) {
	if(batch_id != NULL)
		*batch_id = NULL;
	if(records != NULL)
		*records = NULL;
	if(s == NULL || max_records == 0 || batch_id == NULL || records == NULL)
		return PAYSTREAM_SPOOL_ERR_INVALID;
	g_mutex_lock(&s->mutex);
	int rc = PAYSTREAM_SPOOL_OK;
	char *id = NULL;
	if(s->broken)
		rc = PAYSTREAM_SPOOL_ERR_BROKEN;
	else if(g_queue_is_empty(&s->pending))
		rc = PAYSTREAM_SPOOL_ERR_EMPTY;
	else if((id = paystream_random_uuid()) == NULL)
		rc = PAYSTREAM_SPOOL_ERR_IO;
	if(rc != PAYSTREAM_SPOOL_OK) {
		g_mutex_unlock(&s->mutex);
		return rc;
	}
	paystream_spool_batch *batch = paystream_spool_add_batch(s, id);
	g_free(id);
	while(batch->recs->len < max_records && !g_queue_is_empty(&s->pending))
		paystream_spool_batch_take(batch, s, g_queue_peek_head(&s->pending));
	gsize before = s->buf->len;
	paystream_spool_line(s->buf, paystream_spool_batch_entry(batch));
	rc = paystream_spool_flush(s);
	if(rc == PAYSTREAM_SPOOL_OK) {
		*batch_id = g_strdup(batch->id);
		*records = paystream_spool_batch_records(batch);
	} else if(!s->broken) {
		/* Not on disk: as if never asked (the records' lines stay buffered). */
		g_string_truncate(s->buf, before);
		paystream_spool_undo_batch(s, batch);
	}
	g_mutex_unlock(&s->mutex);
	return rc;
}

int paystream_spool_ack_batch(paystream_spool *s, const char *batch_id) {
	if(s == NULL || batch_id == NULL)
		return PAYSTREAM_SPOOL_ERR_INVALID;
	g_mutex_lock(&s->mutex);
	paystream_spool_batch *batch = g_hash_table_lookup(s->batch_by_id, batch_id);
	int rc = PAYSTREAM_SPOOL_OK;
	if(s->broken)
		rc = PAYSTREAM_SPOOL_ERR_BROKEN;
	else if(batch == NULL)
		rc = PAYSTREAM_SPOOL_ERR_UNKNOWN;
	else
		rc = paystream_spool_buffer(s, json_pack("{s:s, s:s}", "e", "ack", "id", batch_id), FALSE);
	if(rc == PAYSTREAM_SPOOL_OK)
		paystream_spool_drop_batch(s, batch);
	g_mutex_unlock(&s->mutex);
	return rc;
}

json_t *paystream_spool_unacked_batches(paystream_spool *s) {
	json_t *list = json_array();
	if(s == NULL)
		return list;
	g_mutex_lock(&s->mutex);
	for(GList *l = s->batches.head; l != NULL; l = l->next) {
		paystream_spool_batch *batch = l->data;
		json_array_append_new(list, json_pack("{s:s, s:o}", "batch_id", batch->id,
			"records", paystream_spool_batch_records(batch)));
	}
	g_mutex_unlock(&s->mutex);
	return list;
}

int paystream_spool_append_tip(paystream_spool *s, const char *tip_id, json_t *tip) {
	if(s == NULL || !paystream_spool_id_valid(tip_id) || !json_is_object(tip))
		return PAYSTREAM_SPOOL_ERR_INVALID;
	json_t *copy = paystream_spool_copy(tip);
	if(copy == NULL)
		return PAYSTREAM_SPOOL_ERR_INVALID;
	g_mutex_lock(&s->mutex);
	int rc = PAYSTREAM_SPOOL_OK;
	gsize before = s->buf->len;
	paystream_spool_tip probe = { .id = (char *)tip_id, .tip = copy };
	if(s->broken)
		rc = PAYSTREAM_SPOOL_ERR_BROKEN;
	else if(g_hash_table_contains(s->tip_by_id, tip_id))
		rc = PAYSTREAM_SPOOL_ERR_DUPLICATE;
	else
		rc = paystream_spool_buffer(s, paystream_spool_tip_entry(&probe), TRUE);
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
	if(s == NULL || tip_id == NULL)
		return PAYSTREAM_SPOOL_ERR_INVALID;
	g_mutex_lock(&s->mutex);
	paystream_spool_tip *tip = g_hash_table_lookup(s->tip_by_id, tip_id);
	int rc = PAYSTREAM_SPOOL_OK;
	if(s->broken)
		rc = PAYSTREAM_SPOOL_ERR_BROKEN;
	else if(tip == NULL)
		rc = PAYSTREAM_SPOOL_ERR_UNKNOWN;
	else
		rc = paystream_spool_buffer(s, json_pack("{s:s, s:s}", "e", "tipack", "id", tip_id), FALSE);
	if(rc == PAYSTREAM_SPOOL_OK)
		paystream_spool_drop_tip(s, tip);
	g_mutex_unlock(&s->mutex);
	return rc;
}

json_t *paystream_spool_unacked_tips(paystream_spool *s) {
	json_t *list = json_array();
	if(s == NULL)
		return list;
	g_mutex_lock(&s->mutex);
	for(GList *l = s->tips.head; l != NULL; l = l->next) {
		paystream_spool_tip *tip = l->data;
		json_array_append_new(list, json_pack("{s:s, s:o}", "tip_id", tip->id, "tip", json_deep_copy(tip->tip)));
	}
	g_mutex_unlock(&s->mutex);
	return list;
}

guint64 paystream_spool_bytes(paystream_spool *s) {
	if(s == NULL)
		return 0;
	g_mutex_lock(&s->mutex);
	guint64 bytes = s->file_bytes + s->buf->len;
	g_mutex_unlock(&s->mutex);
	return bytes;
}

guint paystream_spool_pending_count(paystream_spool *s) {
	if(s == NULL)
		return 0;
	g_mutex_lock(&s->mutex);
	guint n = g_queue_get_length(&s->pending);
	g_mutex_unlock(&s->mutex);
	return n;
}

int paystream_spool_compact(paystream_spool *s) {
	if(s == NULL)
		return PAYSTREAM_SPOOL_ERR_INVALID;
	g_mutex_lock(&s->mutex);
	int rc = paystream_spool_rewrite(s);
	g_mutex_unlock(&s->mutex);
	return rc;
}
