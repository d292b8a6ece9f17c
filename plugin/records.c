/* records.c - writing usage records as JSON text (see records.h). */
#include "records.h"

#include <string.h>
#include <jansson.h>

#include "digits.h"

char *paystream_record_quote(const char *s) {
	char *valid = g_utf8_make_valid(s != NULL ? s : "", -1);
	json_t *string = json_string(valid);
	char *text = string != NULL ? json_dumps(string, JSON_ENCODE_ANY) : NULL;
	char *quoted = g_strdup(text != NULL ? text : "\"\"");
	free(text);
	json_decref(string);
	g_free(valid);
	return quoted;
}

void paystream_record_source_init(paystream_record_source *src, const paystream_record_ids *ids, const char *currency) {
	char *session = paystream_record_quote(ids->session);
	char *room = paystream_record_quote(ids->room);
	char *viewer = paystream_record_quote(ids->viewer);
	src->session = g_strndup(session + 1, strlen(session) - 2);
	src->ids = g_strdup_printf("\"session\":%s,\"room\":%s,\"viewer\":%s", session, room, viewer);
	src->currency = paystream_record_quote(currency);
	src->tick_head = g_strdup_printf("{\"type\":\"tick\",\"record_id\":\"%s:", src->session);
	src->tick_ids = g_strdup_printf("\",%s,\"start\":", src->ids);
	src->tick_tail = g_strdup_printf(",\"currency\":%s}", src->currency);
	src->session_len = strlen(src->session);
	src->ids_len = strlen(src->ids);
	src->currency_len = strlen(src->currency);
	src->tick_head_len = strlen(src->tick_head);
	src->tick_ids_len = strlen(src->tick_ids);
	src->tick_tail_len = strlen(src->tick_tail);
	g_free(session);
	g_free(room);
	g_free(viewer);
}

void paystream_record_source_clear(paystream_record_source *src) {
	g_free(src->session);
	g_free(src->ids);
	g_free(src->currency);
	g_free(src->tick_head);
	g_free(src->tick_ids);
	g_free(src->tick_tail);
	memset(src, 0, sizeof(*src));
}

/* Records are written straight into out's memory, after out's text: room
 * for the longest record of a kind is made first (only when out lacks it:
 * without g_string_set_size's bookkeeping for every record), then the
 * record's end sets out's length. */
#define PAYSTREAM_RECORD_FIXED 256	/* keys, punctuation, 6 numbers, a suffix */

static char *paystream_record_reserve(GString *out, const paystream_record_source *src, gsize extra) {
	gsize need = PAYSTREAM_RECORD_FIXED + src->session_len + src->ids_len + src->currency_len + extra;
	if(out->len + need >= out->allocated_len) {
		gsize len = out->len;
		g_string_set_size(out, len + need);
		g_string_truncate(out, len);	/* (keeps the memory) */
	}
	return out->str + out->len;
}

static void paystream_record_done(GString *out, char *end) {
	*end = '\0';
	out->len = (gsize)(end - out->str);
}

#define PAYSTREAM_RECORD_PUT(p, literal) \
	(memcpy((p), (literal), sizeof(literal) - 1), (p) + sizeof(literal) - 1)

static char *paystream_record_put(char *p, const char *text, gsize len) {
	memcpy(p, text, len);
	return p + len;
}

/* {"type":"<type>","record_id":"<session>:<suffix>",<ids> (session_start, session_end) */
static char *paystream_record_begin(char *p, const paystream_record_source *src, const char *type,
		const char *suffix) {
	p = PAYSTREAM_RECORD_PUT(p, "{\"type\":\"");
	p = paystream_record_put(p, type, strlen(type));
	p = PAYSTREAM_RECORD_PUT(p, "\",\"record_id\":\"");
	p = paystream_record_put(p, src->session, src->session_len);
	*p++ = ':';
	p = paystream_record_put(p, suffix, strlen(suffix));
	p = PAYSTREAM_RECORD_PUT(p, "\",");
	return paystream_record_put(p, src->ids, src->ids_len);
}

void paystream_record_session_start(GString *out, const paystream_record_source *src, gint64 at_ms,
		gint64 price_per_second) {
	char *p = paystream_record_begin(paystream_record_reserve(out, src, 0), src, "session_start", "start");
	p = PAYSTREAM_RECORD_PUT(p, ",\"at\":");
	p = paystream_digits_i64(p, at_ms);
	p = PAYSTREAM_RECORD_PUT(p, ",\"price_per_second\":");
	p = paystream_digits_i64(p, price_per_second);
	p = PAYSTREAM_RECORD_PUT(p, ",\"currency\":");
	p = paystream_record_put(p, src->currency, src->currency_len);
	*p++ = '}';
	paystream_record_done(out, p);
}

/* A start time's digits, from the clock when it has them (the fixed-size
 * copy stays within the room reserved for a number). */
static char *paystream_record_put_ms(char *p, gint64 ms, paystream_record_clock *clock) {
	if(clock == NULL)
		return paystream_digits_i64(p, ms);
	if(clock->len == 0 || clock->ms != ms) {
		clock->len = (gsize)(paystream_digits_i64(clock->digits, ms) - clock->digits);
		clock->ms = ms;
	}
	memcpy(p, clock->digits, PAYSTREAM_DIGITS_MAX);
	return p + clock->len;
}

void paystream_record_tick(GString *out, const paystream_record_source *src, const paystream_meter_record *r,
		paystream_record_clock *clock) {
	char *p = paystream_record_put(paystream_record_reserve(out, src, 0), src->tick_head, src->tick_head_len);
	p = paystream_digits_u64(p, r->seq);
	p = paystream_record_put(p, src->tick_ids, src->tick_ids_len);
	p = paystream_record_put_ms(p, r->start_ms, clock);
	p = PAYSTREAM_RECORD_PUT(p, ",\"seconds\":");
	p = paystream_digits_i64(p, r->seconds);
	p = PAYSTREAM_RECORD_PUT(p, ",\"amount\":");
	p = paystream_digits_i64(p, r->amount);
	p = paystream_record_put(p, src->tick_tail, src->tick_tail_len);
	paystream_record_done(out, p);
}

void paystream_record_session_end(GString *out, const paystream_record_source *src, const paystream_meter *m,
		const char *reason) {
	char *quoted = paystream_record_quote(reason);
	gsize quoted_len = strlen(quoted);
	char *p = paystream_record_begin(paystream_record_reserve(out, src, quoted_len), src, "session_end", "end");
	p = PAYSTREAM_RECORD_PUT(p, ",\"seconds\":");
	p = paystream_digits_i64(p, m->total_seconds);
	p = PAYSTREAM_RECORD_PUT(p, ",\"amount\":");
	p = paystream_digits_i64(p, m->total_amount);
	p = PAYSTREAM_RECORD_PUT(p, ",\"currency\":");
	p = paystream_record_put(p, src->currency, src->currency_len);
	p = PAYSTREAM_RECORD_PUT(p, ",\"reason\":");
	p = paystream_record_put(p, quoted, quoted_len);
	*p++ = '}';
	paystream_record_done(out, p);
	g_free(quoted);
}
