/* test_settings.c - room settings from create, edit and config agree. */
#include "unit.h"

#include <string.h>

#include "../../plugin/errors.h"
#include "../../plugin/settings.h"

static json_t *load(const char *text) {
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);
	if(j == NULL)
		bail_out("bad test JSON %s: %s", text, jerr.text);
	return j;
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
	paystream_general_clear(&g);
	json_decref(entry);

	/* The threads that push offers: 0 (the caller's thread) to 64. */
	entry = load("{\"offer_threads\": \"0\"}");
	is_int(paystream_general_from_config(entry, &g, error, sizeof(error)), 0, "offer_threads 0 accepted");
	is_int(g.offer_threads, 0, "offer_threads 0 read");
	json_decref(entry);
	entry = load("{\"offer_threads\": \"65\"}");
	is_int(paystream_general_from_config(entry, &g, error, sizeof(error)), PAYSTREAM_ERROR_INVALID_ELEMENT, "offer_threads 65 refused");
	ok(strstr(error, "offer_threads") != NULL, "the error names offer_threads");
	json_decref(entry);
	return done_testing();
}
