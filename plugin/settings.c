/* settings.c - room and general settings from requests and config (see settings.h). */
#include "settings.h"

#include <string.h>

#include "errors.h"
#include "ids.h"
#include "request.h"

/* Half a spool at its smallest holds the longest line (settings.h). */
G_STATIC_ASSERT(2 * PAYSTREAM_LONGEST_TIP_LINE < PAYSTREAM_MIN_SPOOL_MAX_BYTES);
G_STATIC_ASSERT(2 * PAYSTREAM_LONGEST_RECORD_LINE < PAYSTREAM_MIN_SPOOL_MAX_BYTES);

static const char *const paystream_audio_codecs[] = {
	"opus", "multiopus", "g722", "pcmu", "pcma", "isac32", "isac16", "l16-48", "l16", NULL
};
static const char *const paystream_video_codecs[] = {
	"vp8", "vp9", "h264", "av1", "h265", NULL
};

static gboolean paystream_name_in(const char *name, const char *const *names) {
	for(; *names; names++) {
		if(strcmp(*names, name) == 0)
			return TRUE;
	}
	return FALSE;
}

char *paystream_codec_list_normalize(const char *list, gboolean video, char *error, size_t errlen) {
	const char *const *known = video ? paystream_video_codecs : paystream_audio_codecs;
	const char *kind = video ? "video" : "audio";
	gchar **parts = g_strsplit(list ? list : "", ",", -1);
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	gboolean valid = TRUE;
	for(gchar **p = parts; *p && valid; p++) {
		gchar *name = g_ascii_strdown(g_strstrip(*p), -1);
		valid = FALSE;
		if(*name == '\0' || !paystream_name_in(name, known))
			g_snprintf(error, errlen, "Unknown %s codec '%.32s'", kind, name);
		else if(names->len >= PAYSTREAM_MAX_CODECS)
			g_snprintf(error, errlen, "At most %d %s codecs", PAYSTREAM_MAX_CODECS, kind);
		else if(g_ptr_array_find_with_equal_func(names, name, g_str_equal, NULL))
			g_snprintf(error, errlen, "The %s codec '%s' is listed twice", kind, name);
		else
			valid = TRUE;
		if(valid)
			g_ptr_array_add(names, name);
		else
			g_free(name);
	}
	g_strfreev(parts);
	if(valid && names->len == 0) {
		g_snprintf(error, errlen, "Empty %s codec list", kind);
		valid = FALSE;
	}
	char *normalized = NULL;
	if(valid) {
		g_ptr_array_add(names, NULL);
		normalized = g_strjoinv(",", (gchar **)names->pdata);
	}
	g_ptr_array_free(names, TRUE);
	return normalized;
}

static char *paystream_dup_field(json_t *body, const char *name, const char *fallback) {
	const char *v = json_string_value(json_object_get(body, name));
	return g_strdup(v ? v : fallback);
}

static guint32 paystream_uint_field(json_t *body, const char *name, guint32 fallback) {
	json_t *v = json_object_get(body, name);
	return json_is_integer(v) ? (guint32)json_integer_value(v) : fallback;
}

int paystream_settings_from_create(json_t *body, paystream_room_settings *s,
		gboolean *key_generated, char *error, size_t errlen) {
	memset(s, 0, sizeof(*s));
	*key_generated = FALSE;
	s->audiocodec = paystream_codec_list_normalize(
		json_string_value(json_object_get(body, "audiocodec")) ?: PAYSTREAM_DEFAULT_AUDIOCODEC,
		FALSE, error, errlen);
	if(s->audiocodec == NULL)
		return PAYSTREAM_ERROR_INVALID_ELEMENT;
	s->videocodec = paystream_codec_list_normalize(
		json_string_value(json_object_get(body, "videocodec")) ?: PAYSTREAM_DEFAULT_VIDEOCODEC,
		TRUE, error, errlen);
	if(s->videocodec == NULL) {
		paystream_settings_clear(s);
		return PAYSTREAM_ERROR_INVALID_ELEMENT;
	}
	const char *room = json_string_value(json_object_get(body, "room"));
	s->room = room ? g_strdup(room) : paystream_random_uuid();
	s->description = paystream_dup_field(body, "description", s->room);
	s->secret = paystream_dup_field(body, "secret", NULL);
	s->stream_key = paystream_dup_field(body, "stream_key", NULL);
	if(s->stream_key == NULL) {
		s->stream_key = paystream_random_key();
		if(s->stream_key == NULL) {
			paystream_settings_clear(s);
			g_snprintf(error, errlen, "Could not generate a stream key");
			return PAYSTREAM_ERROR_INTERNAL;
		}
		*key_generated = TRUE;
	}
	s->pin = paystream_dup_field(body, "pin", NULL);
	s->is_private = json_is_true(json_object_get(body, "is_private"));
	s->permanent = json_is_true(json_object_get(body, "permanent"));
	s->max_viewers = paystream_uint_field(body, "max_viewers", 0);
	s->bitrate = paystream_uint_field(body, "bitrate", 0);
	s->fir_freq = paystream_uint_field(body, "fir_freq", PAYSTREAM_DEFAULT_FIR_FREQ);
	json_t *price = json_object_get(body, "price_per_second");
	s->price_per_second = json_is_integer(price) ? json_integer_value(price) : 0;
	s->currency = paystream_dup_field(body, "currency", PAYSTREAM_DEFAULT_CURRENCY);
	s->tick_notify = paystream_uint_field(body, "tick_notify", PAYSTREAM_DEFAULT_TICK_NOTIFY);
	if(s->tick_notify == 0)
		s->tick_notify = PAYSTREAM_DEFAULT_TICK_NOTIFY;
	json_t *tip = json_object_get(body, "min_tip");
	s->min_tip = json_is_integer(tip) ? json_integer_value(tip) : PAYSTREAM_DEFAULT_MIN_TIP;
	tip = json_object_get(body, "max_tip");
	s->max_tip = json_is_integer(tip) ? json_integer_value(tip) : 0;
	int rc = paystream_settings_check(s, error, errlen);
	if(rc != 0)
		paystream_settings_clear(s);
	return rc;
}

int paystream_settings_check(const paystream_room_settings *s, char *error, size_t errlen) {
	if(s->min_tip < 1) {
		g_snprintf(error, errlen, "'min_tip' must be at least 1");
		return PAYSTREAM_ERROR_INVALID_ELEMENT;
	}
	if(s->max_tip != 0 && s->max_tip < s->min_tip) {
		g_snprintf(error, errlen, "'max_tip' must be 0 (no limit) or at least 'min_tip' (%" G_GINT64_FORMAT ")",
			s->min_tip);
		return PAYSTREAM_ERROR_INVALID_ELEMENT;
	}
	return 0;
}

int paystream_settings_apply_edit(paystream_room_settings *s, json_t *body,
		char *error, size_t errlen) {
	/* Every field was type-checked by request.c; the caller edits a copy, so
	 * a refusal by the final cross-field check leaves the room as it was. */
	const char *v;
	if((v = json_string_value(json_object_get(body, "new_description")))) {
		g_free(s->description);
		s->description = g_strdup(v);
	}
	if((v = json_string_value(json_object_get(body, "new_secret")))) {
		g_free(s->secret);
		s->secret = g_strdup(v);
	}
	if((v = json_string_value(json_object_get(body, "new_stream_key")))) {
		g_free(s->stream_key);
		s->stream_key = g_strdup(v);
	}
	if((v = json_string_value(json_object_get(body, "new_pin")))) {
		g_free(s->pin);
		s->pin = *v ? g_strdup(v) : NULL;
	}
	json_t *b = json_object_get(body, "new_is_private");
	if(json_is_boolean(b))
		s->is_private = json_is_true(b);
	s->max_viewers = paystream_uint_field(body, "new_max_viewers", s->max_viewers);
	s->bitrate = paystream_uint_field(body, "new_bitrate", s->bitrate);
	s->fir_freq = paystream_uint_field(body, "new_fir_freq", s->fir_freq);
	json_t *price = json_object_get(body, "new_price_per_second");
	if(json_is_integer(price))
		s->price_per_second = json_integer_value(price);
	if((v = json_string_value(json_object_get(body, "new_currency")))) {
		g_free(s->currency);
		s->currency = g_strdup(v);
	}
	s->tick_notify = paystream_uint_field(body, "new_tick_notify", s->tick_notify);
	if(s->tick_notify == 0)
		s->tick_notify = PAYSTREAM_DEFAULT_TICK_NOTIFY;
	json_t *tip = json_object_get(body, "new_min_tip");
	if(json_is_integer(tip))
		s->min_tip = json_integer_value(tip);
	tip = json_object_get(body, "new_max_tip");
	if(json_is_integer(tip))
		s->max_tip = json_integer_value(tip);
	return paystream_settings_check(s, error, errlen);
}

/* The config keys of a permanent room, and how each is typed in `create`. */
static const char *const paystream_config_bools[] = { "is_private", NULL };
static const char *const paystream_config_uints[] = {
	"max_viewers", "bitrate", "fir_freq", "price_per_second", "tick_notify", "min_tip", "max_tip", NULL
};
static const char *const paystream_config_strings[] = {
	"room", "description", "secret", "stream_key", "pin", "audiocodec", "videocodec", "currency", NULL
};

static gboolean paystream_parse_bool(const char *v, gboolean *out) {
	if(!g_ascii_strcasecmp(v, "true") || !g_ascii_strcasecmp(v, "yes") || !strcmp(v, "1")) {
		*out = TRUE;
		return TRUE;
	}
	if(!g_ascii_strcasecmp(v, "false") || !g_ascii_strcasecmp(v, "no") || !strcmp(v, "0")) {
		*out = FALSE;
		return TRUE;
	}
	return FALSE;
}

int paystream_settings_from_config(json_t *entry, paystream_room_settings *s,
		char *error, size_t errlen) {
	memset(s, 0, sizeof(*s));
	/* Turn the strings into the types `create` takes, then reuse its checks. */
	json_t *body = json_object();
	int rc = 0;
	const char *key;
	json_t *value;
	json_object_foreach(entry, key, value) {
		const char *v = json_string_value(value);
		if(v == NULL)
			continue;
		if(paystream_name_in(key, paystream_config_bools)) {
			gboolean b;
			if(!paystream_parse_bool(v, &b)) {
				g_snprintf(error, errlen, "'%s' must be true or false", key);
				rc = PAYSTREAM_ERROR_INVALID_ELEMENT;
				break;
			}
			json_object_set_new(body, key, json_boolean(b));
		} else if(paystream_name_in(key, paystream_config_uints)) {
			guint64 n;
			if(!g_ascii_string_to_unsigned(v, 10, 0, G_MAXINT64, &n, NULL)) {
				g_snprintf(error, errlen, "'%s' must be a whole number", key);
				rc = PAYSTREAM_ERROR_INVALID_ELEMENT;
				break;
			}
			json_object_set_new(body, key, json_integer((json_int_t)n));
		} else if(paystream_name_in(key, paystream_config_strings)) {
			json_object_set_new(body, key, json_string(v));
		}
	}
	if(rc == 0 && json_object_get(body, "room") == NULL) {
		g_snprintf(error, errlen, "Missing mandatory element 'room'");
		rc = PAYSTREAM_ERROR_MISSING_ELEMENT;
	}
	if(rc == 0 && json_object_get(body, "stream_key") == NULL) {
		/* A key generated here would be lost at the next start. */
		g_snprintf(error, errlen, "Missing mandatory element 'stream_key'");
		rc = PAYSTREAM_ERROR_MISSING_ELEMENT;
	}
	if(rc == 0) {
		const paystream_request_spec *create = paystream_request_lookup("create");
		rc = paystream_fields_validate(body, create->fields, create->n_fields, error, errlen);
	}
	if(rc == 0) {
		gboolean generated = FALSE;
		rc = paystream_settings_from_create(body, s, &generated, error, errlen);
		s->permanent = TRUE;
	}
	json_decref(body);
	return rc;
}

json_t *paystream_settings_to_config(const paystream_room_settings *s) {
	json_t *entry = json_object();
	json_object_set_new(entry, "room", json_string(s->room));
	json_object_set_new(entry, "description", json_string(s->description));
	if(s->secret)
		json_object_set_new(entry, "secret", json_string(s->secret));
	json_object_set_new(entry, "stream_key", json_string(s->stream_key));
	if(s->pin)
		json_object_set_new(entry, "pin", json_string(s->pin));
	json_object_set_new(entry, "is_private", json_string(s->is_private ? "true" : "false"));
	json_object_set_new(entry, "audiocodec", json_string(s->audiocodec));
	json_object_set_new(entry, "videocodec", json_string(s->videocodec));
	json_object_set_new(entry, "currency", json_string(s->currency));
	char num[32];
	g_snprintf(num, sizeof(num), "%u", s->max_viewers);
	json_object_set_new(entry, "max_viewers", json_string(num));
	g_snprintf(num, sizeof(num), "%u", s->bitrate);
	json_object_set_new(entry, "bitrate", json_string(num));
	g_snprintf(num, sizeof(num), "%u", s->fir_freq);
	json_object_set_new(entry, "fir_freq", json_string(num));
	g_snprintf(num, sizeof(num), "%" G_GINT64_FORMAT, s->price_per_second);
	json_object_set_new(entry, "price_per_second", json_string(num));
	g_snprintf(num, sizeof(num), "%u", s->tick_notify);
	json_object_set_new(entry, "tick_notify", json_string(num));
	g_snprintf(num, sizeof(num), "%" G_GINT64_FORMAT, s->min_tip);
	json_object_set_new(entry, "min_tip", json_string(num));
	g_snprintf(num, sizeof(num), "%" G_GINT64_FORMAT, s->max_tip);
	json_object_set_new(entry, "max_tip", json_string(num));
	return entry;
}

json_t *paystream_settings_describe(const paystream_room_settings *s) {
	json_t *d = json_object();
	json_object_set_new(d, "room", json_string(s->room));
	json_object_set_new(d, "description", json_string(s->description));
	json_object_set_new(d, "max_viewers", json_integer(s->max_viewers));
	json_object_set_new(d, "pin_required", json_boolean(s->pin != NULL));
	json_object_set_new(d, "audiocodec", json_string(s->audiocodec));
	json_object_set_new(d, "videocodec", json_string(s->videocodec));
	json_object_set_new(d, "price_per_second", json_integer(s->price_per_second));
	json_object_set_new(d, "currency", json_string(s->currency));
	json_object_set_new(d, "tick_notify", json_integer(s->tick_notify));
	json_object_set_new(d, "min_tip", json_integer(s->min_tip));
	json_object_set_new(d, "max_tip", json_integer(s->max_tip));
	return d;
}

void paystream_settings_copy(paystream_room_settings *dst, const paystream_room_settings *src) {
	*dst = *src;
	dst->room = g_strdup(src->room);
	dst->description = g_strdup(src->description);
	dst->secret = g_strdup(src->secret);
	dst->stream_key = g_strdup(src->stream_key);
	dst->pin = g_strdup(src->pin);
	dst->audiocodec = g_strdup(src->audiocodec);
	dst->videocodec = g_strdup(src->videocodec);
	dst->currency = g_strdup(src->currency);
}

void paystream_settings_clear(paystream_room_settings *s) {
	g_free(s->room);
	g_free(s->description);
	g_free(s->secret);
	g_free(s->stream_key);
	g_free(s->pin);
	g_free(s->audiocodec);
	g_free(s->videocodec);
	g_free(s->currency);
	memset(s, 0, sizeof(*s));
}

/* A general key: absent, or a non-empty string. */
static int paystream_general_string(json_t *general, const char *key, char **out, char *error, size_t errlen) {
	const char *v = json_string_value(json_object_get(general, key));
	if(v != NULL && *v == '\0') {
		g_snprintf(error, errlen, "'%s' must not be empty (leave it out instead)", key);
		return PAYSTREAM_ERROR_INVALID_ELEMENT;
	}
	*out = g_strdup(v);
	return 0;
}

static int paystream_general_number(json_t *general, const char *key, guint64 min, guint64 max,
		guint64 fallback, guint64 *out, char *error, size_t errlen) {
	const char *v = json_string_value(json_object_get(general, key));
	*out = fallback;
	if(v == NULL)
		return 0;
	if(!g_ascii_string_to_unsigned(v, 10, min, max, out, NULL)) {
		g_snprintf(error, errlen, "'%s' must be a whole number from %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT,
			key, min, max);
		return PAYSTREAM_ERROR_INVALID_ELEMENT;
	}
	return 0;
}

int paystream_general_from_config(json_t *general, paystream_general_settings *g,
		char *error, size_t errlen) {
	memset(g, 0, sizeof(*g));
	static const char *const strings[] = {
		"admin_key", "token_secret", "token_secret_previous", "billing_url", "billing_secret", "instance", "spool_dir"
	};
	char **targets[] = {
		&g->admin_key, &g->token_secret, &g->token_secret_previous, &g->billing_url, &g->billing_secret,
		&g->instance, &g->spool_dir
	};
	int rc = 0;
	for(size_t i = 0; i < G_N_ELEMENTS(strings) && rc == 0; i++)
		rc = paystream_general_string(general, strings[i], targets[i], error, errlen);
	guint64 interval = 0, timeout = 0, retry_max = 0, spool_max = 0, tip_timeout = 0, offer_threads = 0;
	guint64 batch_max = 0;
	if(rc == 0)
		rc = paystream_general_number(general, "billing_interval", 1, 3600, PAYSTREAM_DEFAULT_BILLING_INTERVAL,
			&interval, error, errlen);
	if(rc == 0)
		rc = paystream_general_number(general, "billing_batch_max", 1, PAYSTREAM_MAX_BATCH_MAX,
			PAYSTREAM_DEFAULT_BATCH_MAX, &batch_max, error, errlen);
	if(rc == 0)
		rc = paystream_general_number(general, "billing_timeout", 1, 300, PAYSTREAM_DEFAULT_BILLING_TIMEOUT,
			&timeout, error, errlen);
	if(rc == 0)
		rc = paystream_general_number(general, "billing_retry_max", 1, 3600, PAYSTREAM_DEFAULT_RETRY_MAX,
			&retry_max, error, errlen);
	if(rc == 0 && (rc = paystream_general_number(general, "spool_max_bytes", PAYSTREAM_MIN_SPOOL_MAX_BYTES,
			G_MAXINT64, PAYSTREAM_DEFAULT_SPOOL_MAX_BYTES, &spool_max, error, errlen)) != 0)
		g_snprintf(error, errlen, "'spool_max_bytes' must be a whole number of bytes from %d to %" G_GINT64_FORMAT
			" (default %d): a full spool must drain below half its size to take new lines, and a line can be "
			"%d bytes long", PAYSTREAM_MIN_SPOOL_MAX_BYTES, G_MAXINT64, PAYSTREAM_DEFAULT_SPOOL_MAX_BYTES,
			PAYSTREAM_LONGEST_TIP_LINE);
	if(rc == 0)
		rc = paystream_general_number(general, "tip_timeout", 1, 3600, PAYSTREAM_DEFAULT_TIP_TIMEOUT,
			&tip_timeout, error, errlen);
	if(rc == 0)
		rc = paystream_general_number(general, "offer_threads", 0, PAYSTREAM_MAX_OFFER_THREADS,
			PAYSTREAM_DEFAULT_OFFER_THREADS, &offer_threads, error, errlen);
	g->billing_interval = (guint32)interval;
	g->billing_batch_max = (guint32)batch_max;
	g->billing_timeout = (guint32)timeout;
	g->retry_max = (guint32)retry_max;
	g->spool_max_bytes = spool_max;
	g->tip_timeout = (guint32)tip_timeout;
	g->offer_threads = (guint32)offer_threads;
	if(rc == 0 && g->billing_url != NULL && g->billing_secret == NULL) {
		g_snprintf(error, errlen, "'billing_url' needs 'billing_secret' (the billing calls are signed)");
		rc = PAYSTREAM_ERROR_MISSING_ELEMENT;
	}
	if(rc == 0 && g->billing_url != NULL && g->spool_dir == NULL) {
		g_snprintf(error, errlen, "'billing_url' needs 'spool_dir' (records are kept on disk until acknowledged)");
		rc = PAYSTREAM_ERROR_MISSING_ELEMENT;
	}
	if(rc == 0 && g->billing_url != NULL && !g_str_has_prefix(g->billing_url, "http://") &&
			!g_str_has_prefix(g->billing_url, "https://")) {
		g_snprintf(error, errlen, "'billing_url' must start with http:// or https://");
		rc = PAYSTREAM_ERROR_INVALID_ELEMENT;
	}
	if(rc == 0 && g->token_secret_previous != NULL && g->token_secret == NULL) {
		g_snprintf(error, errlen, "'token_secret_previous' needs 'token_secret'");
		rc = PAYSTREAM_ERROR_MISSING_ELEMENT;
	}
	if(rc != 0)
		paystream_general_clear(g);
	return rc;
}

gboolean paystream_general_can_bill(const paystream_general_settings *g) {
	return g->billing_url != NULL && g->token_secret != NULL;
}

void paystream_general_clear(paystream_general_settings *g) {
	g_free(g->admin_key);
	g_free(g->token_secret);
	g_free(g->token_secret_previous);
	g_free(g->billing_url);
	g_free(g->billing_secret);
	g_free(g->instance);
	g_free(g->spool_dir);
	memset(g, 0, sizeof(*g));
}
