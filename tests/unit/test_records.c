/* test_records.c - usage records are valid JSON with the contract's ids and
 * fields, whatever the ids hold. */
#include "unit.h"

#include <string.h>
#include <jansson.h>

#include "../../plugin/digits.h"
#include "../../plugin/records.h"

static const char *str(json_t *r, const char *k) {
	return json_string_value(json_object_get(r, k));
}

static json_int_t num(json_t *r, const char *k) {
	return json_integer_value(json_object_get(r, k));
}

/* The text the writer appended, parsed: one JSON object, no line break. */
static json_t *parsed(GString *out) {
	json_error_t error;
	json_t *r = json_loadb(out->str, out->len, JSON_REJECT_DUPLICATES, &error);
	if(!ok(json_is_object(r) && memchr(out->str, '\n', out->len) == NULL, "one JSON object on one line"))
		diag("%s: %s", out->str, error.text);
	g_string_truncate(out, 0);
	return r;
}

int main(void) {
	no_plan();
	GString *out = g_string_new(NULL);
	paystream_record_ids ids = { "s-1", "room.a", "alice" };
	paystream_record_source src;
	paystream_record_source_init(&src, &ids, "credits");
	paystream_record_session_start(out, &src, 1000, 3);
	json_t *r = parsed(out);
	is_str(str(r, "type"), "session_start", "session_start type");
	is_str(str(r, "record_id"), "s-1:start", "session_start id");
	is_str(str(r, "session"), "s-1", "session");
	is_str(str(r, "room"), "room.a", "room");
	is_str(str(r, "viewer"), "alice", "viewer");
	is_int(num(r, "at"), 1000, "at");
	is_int(num(r, "price_per_second"), 3, "price");
	is_str(str(r, "currency"), "credits", "currency");
	json_decref(r);

	paystream_meter m;
	paystream_meter_init(&m, 3, "credits", PAYSTREAM_METER_NO_BUDGET);
	for(int i = 1; i <= 4; i++)
		paystream_meter_tick(&m, TRUE, 2000 + i * 1000);
	paystream_meter_record mr;
	ok(paystream_meter_take_record(&m, &mr), "a record to build");
	paystream_record_tick(out, &src, &mr, NULL);
	r = parsed(out);
	is_str(str(r, "type"), "tick", "tick type");
	is_str(str(r, "record_id"), "s-1:1", "tick id is <session>:<seq>");
	is_int(num(r, "seconds"), 4, "tick seconds");
	is_int(num(r, "amount"), 12, "tick amount");
	is_int(num(r, "start"), mr.start_ms, "tick start");
	is_str(str(r, "currency"), "credits", "tick currency");
	is_str(str(r, "viewer"), "alice", "tick viewer");
	json_decref(r);

	paystream_record_session_end(out, &src, &m, "left");
	r = parsed(out);
	is_str(str(r, "record_id"), "s-1:end", "session_end id");
	is_int(num(r, "seconds"), 4, "session_end totals: seconds");
	is_int(num(r, "amount"), 12, "session_end totals: amount");
	is_str(str(r, "reason"), "left", "session_end reason");
	json_decref(r);
	paystream_record_source_clear(&src);

	/* Ids with quotes, backslashes, control characters, a line break,
	 * non-ASCII and invalid UTF-8 still make one valid JSON line. */
	paystream_record_ids odd = { "s\"2\\", "r\n\tü", "v\x01\xff" };
	paystream_record_source_init(&src, &odd, "cr\"edits");
	paystream_meter_record big = { .seq = G_MAXINT64, .seconds = 1, .amount = G_MAXINT64, .start_ms = -5 };
	paystream_record_tick(out, &src, &big, NULL);
	r = parsed(out);
	is_str(str(r, "session"), "s\"2\\", "a session id with a quote and a backslash");
	is_str(str(r, "record_id"), "s\"2\\:9223372036854775807", "record id with the largest seq");
	is_str(str(r, "room"), "r\n\tü", "a room with a line break, a tab and non-ASCII");
	ok(str(r, "viewer") != NULL && strncmp(str(r, "viewer"), "v\x01", 2) == 0, "invalid UTF-8 replaced, the rest kept");
	is_str(str(r, "currency"), "cr\"edits", "an escaped currency");
	is_int(num(r, "amount"), G_MAXINT64, "the largest amount");
	is_int(num(r, "start"), -5, "a negative number");
	json_decref(r);
	paystream_record_session_end(out, &src, &m, "a \"reason\"");
	r = parsed(out);
	is_str(str(r, "reason"), "a \"reason\"", "an escaped reason");
	json_decref(r);
	paystream_record_source_clear(&src);
	/* A clock kept across records writes the same text as none, whether the
	 * start time repeats or changes (the longest and a negative one too). */
	paystream_record_source_init(&src, &ids, "credits");
	paystream_record_clock clock = { 0 };
	const gint64 starts[] = { 1767225600000, 1767225600000, 1767225601000, -5, G_MININT64, G_MININT64, 7, 1767225601000 };
	gboolean same = TRUE;
	for(gsize i = 0; i < G_N_ELEMENTS(starts); i++) {
		paystream_meter_record rec = { .seq = i + 1, .seconds = 1, .amount = 3, .start_ms = starts[i] };
		GString *with = g_string_new(NULL), *without = g_string_new(NULL);
		paystream_record_tick(with, &src, &rec, &clock);
		paystream_record_tick(without, &src, &rec, NULL);
		if(strcmp(with->str, without->str) != 0) {
			diag("start %" G_GINT64_FORMAT ": %s against %s", starts[i], with->str, without->str);
			same = FALSE;
		}
		g_string_free(with, TRUE);
		g_string_free(without, TRUE);
	}
	ok(same, "a tick written with the ticker's clock is the tick written without it");
	paystream_record_source_clear(&src);
	char *quoted = paystream_record_quote(NULL);
	is_str(quoted, "\"\"", "NULL quotes as an empty string");
	g_free(quoted);

	/* The digit writer against printf, around every length boundary. */
	gboolean digits_ok = TRUE;
	for(int len = 1; len <= 20 && digits_ok; len++) {
		guint64 p10 = 1;
		for(int k = 1; k < len; k++)
			p10 *= 10;
		guint64 values[] = { p10 - 1, p10, p10 + 1, p10 * 5 + 3 };
		for(size_t v = 0; v < G_N_ELEMENTS(values); v++) {
			char buf[PAYSTREAM_DIGITS_MAX + 2], want[32];
			*paystream_digits_u64(buf, values[v]) = '\0';
			g_snprintf(want, sizeof(want), "%" G_GUINT64_FORMAT, values[v]);
			if(strcmp(buf, want) != 0) {
				diag("digits of %s: %s", want, buf);
				digits_ok = FALSE;
			}
		}
	}
	ok(digits_ok, "unsigned digits match printf from 0 to 10^19 boundaries");
	/* Every number below 100,000 (the small ones take a short cut). */
	digits_ok = TRUE;
	for(guint32 n = 0; n < 100000 && digits_ok; n++) {
		char buf[PAYSTREAM_DIGITS_MAX + 2], want[16];
		*paystream_digits_u32(buf, n) = '\0';
		g_snprintf(want, sizeof(want), "%u", n);
		if(strcmp(buf, want) != 0) {
			diag("digits of %s: %s", want, buf);
			digits_ok = FALSE;
		}
	}
	ok(digits_ok, "digits match printf for every number below 100,000");
	char dbuf[PAYSTREAM_DIGITS_MAX + 2];
	*paystream_digits_u64(dbuf, G_MAXUINT64) = '\0';
	is_str(dbuf, "18446744073709551615", "the largest guint64");
	*paystream_digits_i64(dbuf, G_MININT64) = '\0';
	is_str(dbuf, "-9223372036854775808", "the smallest gint64");
	*paystream_digits_i64(dbuf, 0) = '\0';
	is_str(dbuf, "0", "zero");
	*paystream_digits_i64(dbuf, -42) = '\0';
	is_str(dbuf, "-42", "a negative number");

	paystream_meter_clear(&m);
	g_string_free(out, TRUE);
	return done_testing();
}
