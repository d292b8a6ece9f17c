/* spool.h - the durable spool of billing records and tips.
 *
 * Nothing billable is lost or billed twice, even when the billing service
 * is down or Janus is killed: every record is on disk before it counts as
 * emitted, every batch is on disk before it is sent, and a batch is re-sent
 * after a restart exactly as it was (same batch_id, same records) until the
 * billing service acknowledges it. The billing service deduplicates by
 * batch_id (and by the records' own ids), so "at least once" here becomes
 * "exactly once" there. Each record must carry its own unique id, made by
 * the plugin.
 *
 * Records are JSON text: the spool stores and returns each record's compact
 * JSON object exactly as it was appended, never parsing or re-serializing
 * it, so a record costs one copy in and one copy out (docs/PERFORMANCE.md).
 * It checks only that a record looks like one object ("{" ... "}", no line
 * break): records.c builds them and the unit tests parse what it builds.
 *
 * Files in the spool folder:
 *	paystream.spool			the journal, append-only between compactions
 *	paystream.spool.lock		flock()ed while open: one process per folder
 *	paystream.spool.tmp		a compaction in progress (ignored and replaced)
 *	paystream.spool.dropped.<us>	an unreadable tail set aside at open
 *
 * The journal is one entry per line: the CRC-32C (checksum.h) of the rest of
 * the line in 8 lowercase hex digits, a space, a kind letter, its fields
 * separated by single spaces, "\n". Numbers are plain decimals.
 *	H <version> <next_seq>		first line of every rewritten file (version 2)
 *	R <seq> <record>		a usage record (its JSON), seq > 0, increasing
 *	B <first_seq> <count> <id>	the <count> oldest pending records, the
 *					first of them <first_seq>, handed out as batch <id>
 *	A <id>				batch <id> acknowledged
 *	T <id length> <id> <tip>	a tip (its JSON; sent at once, not batched)
 *	K <id>				tip <id> acknowledged
 * Ids run to the end of the line (or for T, are as long as they say), so
 * they may hold spaces but not line breaks. Version 1 journals (JSON lines
 * with a SHA-256 prefix, paystream 0.1) are refused, not dropped, with
 * PAYSTREAM_SPOOL_ERR_VERSION: drain one with the release that wrote it.
 *
 * Writing: append, ack_batch and ack_tip only add lines to a memory buffer;
 * commit writes the buffer and fdatasync()s it, so many appends cost one
 * disk flush (group commit). A record counts as emitted once a commit after
 * its append returned OK; the ticker appends one round of records and
 * commits once. begin_batch and append_tip commit by themselves, because
 * what they return is about to be sent. An ack is not flushed on its own:
 * lost in a crash, it only makes the batch be re-sent with its batch_id,
 * which the billing service must deduplicate anyway (a lost HTTP response
 * does the same). A failed write is cut off again with ftruncate() and may
 * be retried; a failed fsync (or a failed cut) leaves the file in an unknown
 * state, so the spool refuses everything with PAYSTREAM_SPOOL_ERR_BROKEN
 * from then on: close it and open it again (the replay is the truth).
 *
 * Opening replays the journal: records in no batch are pending, batches with
 * no ack are unacked (to be re-sent first, as they are), tips with no
 * tipack are unacked. Replay stops at the first line that cannot be trusted:
 * no "\n" (a write cut by a crash), a wrong checksum, a line that is not one
 * of the entries above, or an entry that contradicts what came before (a
 * seq not above the last one, a batch that does not start at the oldest
 * pending record or takes more than are pending, an ack of an unknown
 * batch). Everything before it is kept; everything from it on
 * is dropped and reported (bytes and lines). We stop rather than skip:
 * after one damaged line nothing proves the following ones belong to the
 * same history (a lost batch line would make its records look pending and
 * be billed again under a new batch_id). When the dropped part holds at
 * least one complete line it is not a mere torn last write, so it is saved
 * to paystream.spool.dropped.<us> for an operator before anything is
 * rewritten. A head with another version refuses to open
 * (PAYSTREAM_SPOOL_ERR_VERSION): a newer format is never dropped.
 *
 * Compaction (at every open, and on paystream_spool_compact) writes only
 * what is still needed (head, the unacked batches with their records,
 * pending records, unacked tips) to paystream.spool.tmp, fsyncs it, renames
 * it over the journal and fsyncs the folder; a crash at any point leaves
 * either the old or the new journal, both complete. It also flushes the
 * buffer. Seqs survive compaction.
 *
 * Size: paystream_spool_bytes() is the journal plus the buffer. Appending a
 * record or a tip that would take it over max_bytes (0: no limit) is
 * refused with PAYSTREAM_SPOOL_ERR_FULL (then refuse new priced sessions
 * until acks and a compaction make room); batch and ack lines are always
 * written, as they are what drains the spool.
 *
 * Thread-safety: every function takes the spool's own mutex, so the ticker
 * may append while the billing thread batches. commit, begin_batch,
 * append_tip and compact hold it during their fsync: an append waits for a
 * flush in progress (milliseconds), so never call them from the media path.
 * Pure: GLib, Jansson (tips only) and POSIX files; no Janus, no logging. */
#ifndef PAYSTREAM_SPOOL_H
#define PAYSTREAM_SPOOL_H

#include <glib.h>
#include <jansson.h>

/* Longest line, in bytes: a bigger record or tip is refused. */
#define PAYSTREAM_SPOOL_MAX_ENTRY 65536
/* Longest tip id. */
#define PAYSTREAM_SPOOL_MAX_ID 128

typedef struct paystream_spool paystream_spool;

typedef enum paystream_spool_status {
	PAYSTREAM_SPOOL_OK = 0,
	PAYSTREAM_SPOOL_ERR_FULL,		/* append refused: max_bytes reached */
	PAYSTREAM_SPOOL_ERR_IO,			/* a write or rename failed and was undone; retry later */
	PAYSTREAM_SPOOL_ERR_BROKEN,		/* an fsync (or the undoing of a failed write) failed,
									 * now or earlier: close and open again */
	PAYSTREAM_SPOOL_ERR_INVALID,	/* not a record (see above), bad id, too big */
	PAYSTREAM_SPOOL_ERR_UNKNOWN,	/* no such unacked batch or tip */
	PAYSTREAM_SPOOL_ERR_DUPLICATE,	/* a tip or batch with this id is already unacked */
	PAYSTREAM_SPOOL_ERR_EMPTY,		/* begin_batch: no pending record */
	PAYSTREAM_SPOOL_ERR_BUSY,		/* open: another process has the folder */
	PAYSTREAM_SPOOL_ERR_VERSION,	/* open: a journal of a newer format */
} paystream_spool_status;

/* What open found. */
typedef struct paystream_spool_report {
	guint64 entries;			/* lines replayed */
	guint64 bytes_before;		/* journal size found */
	guint64 bytes_after;		/* after compaction */
	guint64 dropped_bytes;		/* unreadable tail, not replayed */
	guint64 dropped_lines;		/* lines in it (the last maybe incomplete) */
	char *dropped_path;			/* where it was saved, or NULL */
	guint pending_records;
	guint unacked_batches;
	guint unacked_tips;
} paystream_spool_report;

/* Open (creating the folder, mode 0700, if needed), replay and compact.
 * report may be NULL; else free it with paystream_spool_report_clear().
 * NULL on failure, with error set in PAYSTREAM_SPOOL_ERROR (code: a
 * paystream_spool_status). */
paystream_spool *paystream_spool_open(const char *dir, guint64 max_bytes, paystream_spool_report *report,
	GError **error);
/* Commit what is buffered, then free; returns the commit's status. */
int paystream_spool_close(paystream_spool *s);

/* Buffer records given as text: one or more compact JSON objects, each
 * ended by "\n" (the last one may omit it). Each is copied and gets the
 * next seq; *taken (may be NULL) is set to the bytes of text accepted, so a
 * caller can keep what was refused (FULL: the rest of text) for later.
 * Emitted only after the next successful commit. */
int paystream_spool_append_text(paystream_spool *s, const char *text, gsize len, gsize *taken);
/* The same for one record given as a json_t (an object with a string
 * "type"), serialized here; sets *seq (may be NULL) to its seq. */
int paystream_spool_append(paystream_spool *s, json_t *record, guint64 *seq);
/* Write and fdatasync everything buffered. */
int paystream_spool_commit(paystream_spool *s);

/* An unacked batch to send again: its id, and its records' JSON texts
 * joined by "," (the inside of a JSON array), in seq order. */
typedef struct paystream_spool_batch_text {
	char *batch_id;
	GString *records;
	guint count;
} paystream_spool_batch_text;
void paystream_spool_batch_text_free(paystream_spool_batch_text *batch);

/* Take the oldest pending records (at most max_records > 0) as batch
 * batch_id (the caller's fresh random UUID), commit, then append their
 * texts joined by "," to records (the caller's buffer: the body being
 * built, so the records are copied once) and set *count (may be NULL). On
 * anything but OK nothing changed and records is untouched. */
int paystream_spool_begin_batch(paystream_spool *s, const char *batch_id, guint max_records, GString *records,
	guint *count);
/* The billing service took batch_id: forget it and its records. */
int paystream_spool_ack_batch(paystream_spool *s, const char *batch_id);
/* The unacked batches, oldest first, to re-send unchanged: a new array of
 * paystream_spool_batch_text (it frees them; g_ptr_array_unref). */
GPtrArray *paystream_spool_unacked_batches(paystream_spool *s);

/* Write a tip (copied; tip_id: 1 to PAYSTREAM_SPOOL_MAX_ID bytes, no line
 * break, unique) and commit: send it only after OK. */
int paystream_spool_append_tip(paystream_spool *s, const char *tip_id, json_t *tip);
int paystream_spool_ack_tip(paystream_spool *s, const char *tip_id);
/* [{"tip_id": T, "tip": {...}}, ...], oldest first (new array). */
json_t *paystream_spool_unacked_tips(paystream_spool *s);

/* Journal plus buffered bytes. */
guint64 paystream_spool_bytes(paystream_spool *s);
/* Records in no batch yet. */
guint paystream_spool_pending_count(paystream_spool *s);
/* Records not acknowledged: pending, and in every unacked batch. */
guint paystream_spool_unacked_count(paystream_spool *s);
/* Rewrite the journal with only what is still needed (see above). */
int paystream_spool_compact(paystream_spool *s);

/* "ok", "spool_full", "io_error", ... ; "unknown" otherwise. */
const char *paystream_spool_status_name(int status);
void paystream_spool_report_clear(paystream_spool_report *report);

#define PAYSTREAM_SPOOL_ERROR (paystream_spool_error_quark())
GQuark paystream_spool_error_quark(void);

#endif
