/* test_settings.c - room settings from create, edit and config agree. */
#include "unit.h"

#include <string.h>

#include <glib/gstdio.h>

#include "../../plugin/checksum.h"
#include "../../plugin/errors.h"
#include "../../plugin/ids.h"
#include "../../plugin/records.h"
#include "../../plugin/settings.h"
#include "../../plugin/spool.h"

/* tips.h (a Janus header) says: a tip message has at most 200 characters. */
#define TIP_MESSAGE_MAX 200
/* spool.c: the highest seq a record gets, so the longest seq field. */
#define SPOOL_MAX_SEQ ((guint64)G_MAXINT64 / 2)

static json_t *load(const char *text) {
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);
	if(j == NULL)
		bail_out("bad test JSON %s: %s", text, jerr.text);
	return j;
}

/* What the line just added to the spool took: its length. */
static guint64 line_added(paystream_spool *spool, guint64 *bytes) {
	guint64 before = *bytes;
	*bytes = paystream_spool_bytes(spool);
	return *bytes - before;
}

/* The longest lines the plugin can write (every field at its limit, seqs of
 * 19 digits) fit within settings.h's bounds, and a spool of the smallest
 * spool_max_bytes takes each of them. */
static void test_longest_lines(void) {
	char *dir = g_dir_make_tmp("paystream-settings-XXXXXX", NULL);
	if(!ok(dir != NULL, "a temporary folder"))
		return;
	/* A journal whose next seq is near the highest: 19-digit seqs. */
	char *head_body = g_strdup_printf("H 2 %" G_GUINT64_FORMAT, SPOOL_MAX_SEQ - 10);
	char *journal = g_strdup_printf("%08x %s\n", paystream_crc32c(0, head_body, strlen(head_body)), head_body);
	char *path = g_build_filename(dir, "paystream.spool", NULL);
	ok(g_file_set_contents(path, journal, -1, NULL), "a journal with a high next seq");
	GError *gerror = NULL;
	paystream_spool *spool = paystream_spool_open(dir, PAYSTREAM_MIN_SPOOL_MAX_BYTES, NULL, &gerror);
	if(!ok(spool != NULL, "a spool of the smallest spool_max_bytes opens")) {
		diag("%s", gerror ? gerror->message : "?");
		g_clear_error(&gerror);
	} else {
		char room[PAYSTREAM_ROOM_ID_MAX + 1], viewer[PAYSTREAM_VIEWER_ID_MAX + 1], currency[PAYSTREAM_CURRENCY_MAX + 1];
		char reason[65], tip_id[PAYSTREAM_VIEWER_ID_MAX + 1];
		memset(room, 'r', sizeof(room) - 1);
		room[sizeof(room) - 1] = '\0';
		memset(viewer, 'v', sizeof(viewer) - 1);
		viewer[sizeof(viewer) - 1] = '\0';
		memset(currency, 'c', sizeof(currency) - 1);
		currency[sizeof(currency) - 1] = '\0';
		memset(reason, 'x', sizeof(reason) - 1);	/* metering.c: at most 64 of a-z _ */
		reason[sizeof(reason) - 1] = '\0';
		memset(tip_id, 't', sizeof(tip_id) - 1);
		tip_id[sizeof(tip_id) - 1] = '\0';
		ok(paystream_room_id_valid(room) && paystream_viewer_id_valid(viewer) && paystream_currency_valid(currency) &&
			paystream_viewer_id_valid(tip_id), "the ids are the longest valid ones");
		char *session = paystream_random_uuid();
		paystream_record_ids ids = { session, room, viewer };
		paystream_record_source src;
		paystream_record_source_init(&src, &ids, currency);
		guint64 bytes = paystream_spool_bytes(spool);
		GString *text = g_string_new(NULL);
		paystream_record_session_start(text, &src, G_MININT64, G_MININT64);
		is_int(paystream_spool_append_text(spool, text->str, text->len, NULL), PAYSTREAM_SPOOL_OK, "the longest session_start is taken");
		guint64 start_line = line_added(spool, &bytes);
		/* Every number at its widest when printed: 20 characters. */
		paystream_meter_record r = { (guint64)G_MININT64, G_MININT64, G_MININT64, G_MININT64, G_MININT64 };
		g_string_truncate(text, 0);
		paystream_record_tick(text, &src, &r, NULL);
		is_int(paystream_spool_append_text(spool, text->str, text->len, NULL), PAYSTREAM_SPOOL_OK, "the longest tick is taken");
		guint64 tick_line = line_added(spool, &bytes);
		paystream_meter m;
		memset(&m, 0, sizeof(m));
		m.total_seconds = m.total_amount = G_MININT64;
		g_string_truncate(text, 0);
		paystream_record_session_end(text, &src, &m, reason);
		is_int(paystream_spool_append_text(spool, text->str, text->len, NULL), PAYSTREAM_SPOOL_OK, "the longest session_end is taken");
		guint64 end_line = line_added(spool, &bytes);
		diag("longest lines: session_start %" G_GUINT64_FORMAT ", tick %" G_GUINT64_FORMAT ", session_end %"
			G_GUINT64_FORMAT, start_line, tick_line, end_line);
		ok(MAX(MAX(start_line, tick_line), end_line) <= PAYSTREAM_LONGEST_RECORD_LINE,
			"no record line is longer than PAYSTREAM_LONGEST_RECORD_LINE");
		is_int((int)end_line, PAYSTREAM_LONGEST_RECORD_LINE, "the longest is a session_end's, as settings.h says");
		/* A tip as tips.c makes it, its message all control characters. */
		GString *message = g_string_new(NULL);
		for(int i = 0; i < TIP_MESSAGE_MAX; i++)
			g_string_append_c(message, '\x01');
		json_t *tip = json_pack("{sssssssssIssss}", "tip_id", tip_id, "room", room, "viewer", viewer, "session", session,
			"amount", (json_int_t)G_MININT64, "currency", currency, "message", message->str);
		is_int(paystream_spool_append_tip(spool, tip_id, tip), PAYSTREAM_SPOOL_OK, "the longest tip is taken");
		guint64 tip_line = line_added(spool, &bytes);
		diag("longest tip line %" G_GUINT64_FORMAT, tip_line);
		is_int((int)tip_line, PAYSTREAM_LONGEST_TIP_LINE, "the longest tip line is PAYSTREAM_LONGEST_TIP_LINE");
		ok(2 * MAX(tip_line, end_line) < PAYSTREAM_MIN_SPOOL_MAX_BYTES,
			"half of the smallest spool holds the longest line");
		ok(bytes <= PAYSTREAM_MIN_SPOOL_MAX_BYTES, "all of them fit in the smallest spool");
		json_decref(tip);
		g_string_free(message, TRUE);
		g_string_free(text, TRUE);
		paystream_record_source_clear(&src);
		g_free(session);
		paystream_spool_close(spool);
	}
	char *lock = g_strconcat(path, ".lock", NULL);
	g_unlink(lock);
	g_unlink(path);
	g_rmdir(dir);
	g_free(lock);
	g_free(path);
	g_free(journal);
	g_free(head_body);
	g_free(dir);
}

int main(void) {
	no_plan();
	char error[256];
	paystream_room_settings s;
	gboolean generated = FALSE;

	json_t *body = load("{\"request\": \"create\"}");
	is_int(paystream_settings_from_create(body, &s, &generated, error, sizeof(error)), 0, "defaults");
	ok(s.room != NULL && strlen(s.room) == 36, "room id generated");
	ok(generated && s.stream_key && strlen(s.stream_key) == 32, "stream key generated and flagged");
	is_str(s.audiocodec, "opus", "default audio codec");
	is_str(s.videocodec, "vp8,h264", "default video codecs");
	is_str(s.currency, "credits", "default currency");
	is_int(s.fir_freq, 10, "default fir_freq");
	ok(s.secret == NULL && s.pin == NULL, "no secret, no pin");
	is_str(s.description, s.room, "description defaults to the id");
	paystream_settings_clear(&s);
	json_decref(body);

	body = load("{\"room\": \"show\", \"stream_key\": \"abcdefgh\", \"videocodec\": \" H264 , vp9\", "
		"\"price_per_second\": 3, \"currency\": \"EUR\", \"pin\": \"1234\", \"max_viewers\": 2}");
	is_int(paystream_settings_from_create(body, &s, &generated, error, sizeof(error)), 0, "explicit settings");
	ok(!generated, "a given key is not flagged as generated");
	is_str(s.videocodec, "h264,vp9", "codec list normalized");
	is_int((int)s.price_per_second, 3, "price kept");
	json_decref(body);

	/* Round trip through the config file's representation. */
	json_t *entry = paystream_settings_to_config(&s);
	ok(json_object_get(entry, "secret") == NULL, "no secret: no config entry");
	paystream_room_settings back;
	is_int(paystream_settings_from_config(entry, &back, error, sizeof(error)), 0, "config entry reads back");
	is_str(back.room, "show", "room survives");
	is_str(back.stream_key, "abcdefgh", "stream key survives");
	is_str(back.pin, "1234", "pin survives");
	is_str(back.videocodec, "h264,vp9", "codecs survive");
	is_int(back.max_viewers, 2, "max_viewers survives");
	is_int((int)back.price_per_second, 3, "price survives");
	ok(back.permanent, "a config room is permanent");
	paystream_settings_clear(&back);
	json_decref(entry);

	/* Edit applies whole. */
	body = load("{\"new_pin\": \"\", \"new_price_per_second\": 9, \"new_description\": \"Late show\"}");
	is_int(paystream_settings_apply_edit(&s, body, error, sizeof(error)), 0, "edit");
	ok(s.pin == NULL, "empty new_pin removes the pin");
	is_int((int)s.price_per_second, 9, "price edited");
	is_str(s.description, "Late show", "description edited");
	is_str(s.stream_key, "abcdefgh", "untouched fields stay");
	json_decref(body);
	paystream_settings_clear(&s);

	/* Bad codec lists. */
	body = load("{\"audiocodec\": \"mp3\"}");
	is_int(paystream_settings_from_create(body, &s, &generated, error, sizeof(error)), PAYSTREAM_ERROR_INVALID_ELEMENT, "unknown audio codec");
	ok(strstr(error, "mp3") != NULL, "the error names the codec");
	json_decref(body);
	char *list = paystream_codec_list_normalize("vp8,vp8", TRUE, error, sizeof(error));
	ok(list == NULL, "repeated codec refused");
	list = paystream_codec_list_normalize(",", TRUE, error, sizeof(error));
	ok(list == NULL, "empty names refused");
	list = paystream_codec_list_normalize("vp8,vp9,h264,av1,h265", TRUE, error, sizeof(error));
	ok(list != NULL, "five codecs accepted");
	g_free(list);

	/* Config entries that must be refused. */
	entry = load("{\"room\": \"x\", \"stream_key\": \"abcdefgh\", \"max_viewers\": \"many\"}");
	is_int(paystream_settings_from_config(entry, &s, error, sizeof(error)), PAYSTREAM_ERROR_INVALID_ELEMENT, "non-numeric max_viewers");
	json_decref(entry);
	entry = load("{\"room\": \"x\"}");
	is_int(paystream_settings_from_config(entry, &s, error, sizeof(error)), PAYSTREAM_ERROR_MISSING_ELEMENT, "config room needs a stream key");
	json_decref(entry);
	entry = load("{\"room\": \"a b\", \"stream_key\": \"abcdefgh\"}");
	is_int(paystream_settings_from_config(entry, &s, error, sizeof(error)), PAYSTREAM_ERROR_INVALID_ELEMENT, "bad id in config");
	json_decref(entry);
	entry = load("{\"room\": \"x\", \"stream_key\": \"abcdefgh\", \"is_private\": \"maybe\"}");
	is_int(paystream_settings_from_config(entry, &s, error, sizeof(error)), PAYSTREAM_ERROR_INVALID_ELEMENT, "bad boolean in config");
	json_decref(entry);

	/* The list description carries no secrets. */
	body = load("{\"room\": \"r\", \"secret\": \"S\", \"stream_key\": \"KKKKKKKK\", \"pin\": \"P\"}");
	paystream_settings_from_create(body, &s, &generated, error, sizeof(error));
	json_t *d = paystream_settings_describe(&s);
	char *text = json_dumps(d, 0);
	ok(strstr(text, "KKKKKKKK") == NULL && strstr(text, "\"S\"") == NULL && strstr(text, "\"P\"") == NULL,
		"describe leaks no secret, key or pin");
	ok(json_is_true(json_object_get(d, "pin_required")), "describe says a pin is required");
	free(text);
	json_decref(d);
	json_decref(body);
	paystream_settings_clear(&s);

	paystream_general_settings g;
	entry = load("{\"admin_key\": \"\"}");
	is_int(paystream_general_from_config(entry, &g, error, sizeof(error)), PAYSTREAM_ERROR_INVALID_ELEMENT, "empty admin_key refused");
	json_decref(entry);
	entry = load("{\"admin_key\": \"k\"}");
	is_int(paystream_general_from_config(entry, &g, error, sizeof(error)), 0, "admin_key read");
	is_str(g.admin_key, "k", "admin_key kept");
	paystream_general_clear(&g);
	json_decref(entry);
	/* Tips and tick events. */
	body = load("{\"min_tip\": 10, \"max_tip\": 5}");
	is_int(paystream_settings_from_create(body, &s, &generated, error, sizeof(error)), PAYSTREAM_ERROR_INVALID_ELEMENT, "max_tip below min_tip");
	json_decref(body);
	body = load("{\"min_tip\": 0}");
	is_int(paystream_settings_from_create(body, &s, &generated, error, sizeof(error)), PAYSTREAM_ERROR_INVALID_ELEMENT, "min_tip 0");
	json_decref(body);
	body = load("{\"room\": \"t\", \"stream_key\": \"abcdefgh\", \"tick_notify\": 5, \"min_tip\": 2, \"max_tip\": 500}");
	is_int(paystream_settings_from_create(body, &s, &generated, error, sizeof(error)), 0, "tip bounds and tick_notify");
	json_decref(body);
	entry = paystream_settings_to_config(&s);
	is_int(paystream_settings_from_config(entry, &back, error, sizeof(error)), 0, "they survive the config file");
	is_int(back.tick_notify, 5, "tick_notify survives");
	is_int((int)back.max_tip, 500, "max_tip survives");
	paystream_settings_clear(&back);
	json_decref(entry);
	body = load("{\"new_max_tip\": 1}");
	is_int(paystream_settings_apply_edit(&s, body, error, sizeof(error)), PAYSTREAM_ERROR_INVALID_ELEMENT, "an edit below min_tip is refused");
	json_decref(body);
	paystream_settings_clear(&s);

	/* The general section's billing keys. */
	entry = load("{\"billing_url\": \"http://127.0.0.1:8090\"}");
	is_int(paystream_general_from_config(entry, &g, error, sizeof(error)), PAYSTREAM_ERROR_MISSING_ELEMENT, "billing_url needs billing_secret");
	json_decref(entry);
	entry = load("{\"billing_url\": \"ftp://x\", \"billing_secret\": \"s\", \"spool_dir\": \"/tmp/x\"}");
	is_int(paystream_general_from_config(entry, &g, error, sizeof(error)), PAYSTREAM_ERROR_INVALID_ELEMENT, "billing_url must be http(s)");
	json_decref(entry);
	entry = load("{\"billing_interval\": \"0\"}");
	is_int(paystream_general_from_config(entry, &g, error, sizeof(error)), PAYSTREAM_ERROR_INVALID_ELEMENT, "billing_interval 0 refused");
	json_decref(entry);
	entry = load("{\"billing_url\": \"http://127.0.0.1:8090/\", \"billing_secret\": \"s\", \"spool_dir\": \"/tmp/x\", "
		"\"token_secret\": \"t\", \"billing_interval\": \"2\", \"spool_max_bytes\": \"100000\"}");
	is_int(paystream_general_from_config(entry, &g, error, sizeof(error)), 0, "a billing configuration");
	ok(paystream_general_can_bill(&g), "it can bill");
	is_int(g.billing_interval, 2, "billing_interval read");
	is_int((int)g.spool_max_bytes, 100000, "spool_max_bytes read");
	is_int(g.tip_timeout, 30, "tip_timeout defaults to 30 s");
	is_int(g.offer_threads, 4, "offer_threads defaults to 4");
	is_int(g.billing_batch_max, 5000, "billing_batch_max defaults to 5000");
	paystream_general_clear(&g);
	json_decref(entry);

	/* Records per usage batch: 1 to 50 000. */
	static const struct { const char *value; int rc; } batch_cases[] = {
		{ "0", PAYSTREAM_ERROR_INVALID_ELEMENT }, { "1", 0 }, { "50000", 0 }, { "50001", PAYSTREAM_ERROR_INVALID_ELEMENT },
	};
	for(size_t i = 0; i < G_N_ELEMENTS(batch_cases); i++) {
		char *text = g_strdup_printf("{\"billing_batch_max\": \"%s\"}", batch_cases[i].value);
		entry = load(text);
		int rc = paystream_general_from_config(entry, &g, error, sizeof(error));
		ok(rc == batch_cases[i].rc && (rc != 0 || g.billing_batch_max == (guint32)atoi(batch_cases[i].value)) &&
			(rc == 0 || strstr(error, "billing_batch_max") != NULL),
			"billing_batch_max %s: %s", batch_cases[i].value, rc == 0 ? "read" : "refused, named in the error");
		paystream_general_clear(&g);
		json_decref(entry);
		g_free(text);
	}

	/* The threads that push offers: 0 (the caller's thread) to 64. */
	entry = load("{\"offer_threads\": \"0\"}");
	is_int(paystream_general_from_config(entry, &g, error, sizeof(error)), 0, "offer_threads 0 accepted");
	is_int(g.offer_threads, 0, "offer_threads 0 read");
	json_decref(entry);
	entry = load("{\"offer_threads\": \"65\"}");
	is_int(paystream_general_from_config(entry, &g, error, sizeof(error)), PAYSTREAM_ERROR_INVALID_ELEMENT, "offer_threads 65 refused");
	ok(strstr(error, "offer_threads") != NULL, "the error names offer_threads");
	json_decref(entry);

	/* spool_max_bytes: from PAYSTREAM_MIN_SPOOL_MAX_BYTES, refused below it. */
	entry = load("{\"spool_max_bytes\": \"4095\"}");
	is_int(paystream_general_from_config(entry, &g, error, sizeof(error)), PAYSTREAM_ERROR_INVALID_ELEMENT,
		"spool_max_bytes 4095 refused");
	ok(strstr(error, "'spool_max_bytes' must be a whole number of bytes from 4096 to") != NULL &&
		strstr(error, "1822 bytes") != NULL, "the error says the smallest value and why");
	diag("%s", error);
	paystream_general_clear(&g);
	json_decref(entry);
	entry = load("{\"spool_max_bytes\": \"0\"}");
	is_int(paystream_general_from_config(entry, &g, error, sizeof(error)), PAYSTREAM_ERROR_INVALID_ELEMENT,
		"spool_max_bytes 0 refused (there is no 'no limit')");
	paystream_general_clear(&g);
	json_decref(entry);
	entry = load("{\"spool_max_bytes\": \"4096\"}");
	is_int(paystream_general_from_config(entry, &g, error, sizeof(error)), 0, "spool_max_bytes 4096 accepted");
	is_int((int)g.spool_max_bytes, PAYSTREAM_MIN_SPOOL_MAX_BYTES, "spool_max_bytes 4096 read");
	paystream_general_clear(&g);
	json_decref(entry);
	entry = load("{}");
	is_int(paystream_general_from_config(entry, &g, error, sizeof(error)), 0, "no general keys");
	is_int((int)g.spool_max_bytes, PAYSTREAM_DEFAULT_SPOOL_MAX_BYTES, "spool_max_bytes defaults to 64 MiB");
	paystream_general_clear(&g);
	json_decref(entry);
	test_longest_lines();
	return done_testing();
}
