/* request.c - the request table and field validation (see request.h). */
#include "request.h"

#include <string.h>

#include "errors.h"
#include "ids.h"

#define STR(n, req, lo, hi) { n, PAYSTREAM_FIELD_STRING, req, lo, hi }
#define BOOL(n) { n, PAYSTREAM_FIELD_BOOL, FALSE, 0, 0 }
#define UINT(n, hi) { n, PAYSTREAM_FIELD_UINT, FALSE, 0, hi }
#define ROOM(req) { "room", PAYSTREAM_FIELD_ROOM_ID, req, 0, 0 }

/* Bounds shared by create, edit and config entries. */
#define MAX_TEXT 256
#define MAX_VIEWERS_LIMIT 1000000
#define MAX_BITRATE 1000000000
#define MAX_FIR_FREQ 3600
#define MAX_PRICE G_GINT64_CONSTANT(1000000000000)
#define MAX_TICK_NOTIFY 3600
#define MAX_TOKEN 8192
#define MAX_TIP_MESSAGE 800	/* bytes; tips.c also limits it to 200 characters */

static const paystream_field create_fields[] = {
	ROOM(FALSE),
	STR("description", FALSE, 0, MAX_TEXT),
	STR("secret", FALSE, 1, MAX_TEXT),
	STR("stream_key", FALSE, 8, MAX_TEXT),
	STR("pin", FALSE, 1, MAX_TEXT),
	BOOL("is_private"),
	BOOL("permanent"),
	UINT("max_viewers", MAX_VIEWERS_LIMIT),
	STR("audiocodec", FALSE, 1, MAX_TEXT),
	STR("videocodec", FALSE, 1, MAX_TEXT),
	UINT("bitrate", MAX_BITRATE),
	UINT("fir_freq", MAX_FIR_FREQ),
	UINT("price_per_second", MAX_PRICE),
	{ "currency", PAYSTREAM_FIELD_CURRENCY, FALSE, 0, 0 },
	UINT("tick_notify", MAX_TICK_NOTIFY),
	UINT("min_tip", MAX_PRICE),
	UINT("max_tip", MAX_PRICE),
	STR("admin_key", FALSE, 0, MAX_TEXT),
};
static const paystream_field edit_fields[] = {
	ROOM(TRUE),
	STR("secret", FALSE, 0, MAX_TEXT),
	STR("new_description", FALSE, 0, MAX_TEXT),
	STR("new_secret", FALSE, 1, MAX_TEXT),
	STR("new_stream_key", FALSE, 8, MAX_TEXT),
	STR("new_pin", FALSE, 0, MAX_TEXT),
	BOOL("new_is_private"),
	UINT("new_max_viewers", MAX_VIEWERS_LIMIT),
	UINT("new_bitrate", MAX_BITRATE),
	UINT("new_fir_freq", MAX_FIR_FREQ),
	UINT("new_price_per_second", MAX_PRICE),
	{ "new_currency", PAYSTREAM_FIELD_CURRENCY, FALSE, 0, 0 },
	UINT("new_tick_notify", MAX_TICK_NOTIFY),
	UINT("new_min_tip", MAX_PRICE),
	UINT("new_max_tip", MAX_PRICE),
	BOOL("permanent"),
};
static const paystream_field destroy_fields[] = {
	ROOM(TRUE),
	STR("secret", FALSE, 0, MAX_TEXT),
	BOOL("permanent"),
};
static const paystream_field room_only_fields[] = {
	ROOM(TRUE),
};
static const paystream_field kick_fields[] = {
	ROOM(TRUE),
	STR("secret", FALSE, 0, MAX_TEXT),
	{ "viewer_id", PAYSTREAM_FIELD_VIEWER_ID, FALSE, 0, 0 },
	BOOL("performer"),
};
static const paystream_field publish_fields[] = {
	ROOM(TRUE),
	STR("stream_key", FALSE, 0, MAX_TEXT),
	STR("token", FALSE, 1, MAX_TOKEN),
	STR("display", FALSE, 0, MAX_TEXT),
	BOOL("takeover"),
	UINT("bitrate", MAX_BITRATE),
};
static const paystream_field configure_fields[] = {
	UINT("bitrate", MAX_BITRATE),
	BOOL("keyframe"),
	UINT("substream", 2),
	UINT("temporal", 2),
};
static const paystream_field watch_fields[] = {
	ROOM(TRUE),
	STR("pin", FALSE, 0, MAX_TEXT),
	STR("display", FALSE, 0, MAX_TEXT),
	{ "viewer_id", PAYSTREAM_FIELD_VIEWER_ID, FALSE, 0, 0 },
	STR("token", FALSE, 1, MAX_TOKEN),
};
static const paystream_field stats_fields[] = {
	STR("admin_key", FALSE, 0, MAX_TEXT),
};
static const paystream_field refresh_fields[] = {
	STR("token", TRUE, 1, MAX_TOKEN),
};
static const paystream_field tip_fields[] = {
	{ "amount", PAYSTREAM_FIELD_UINT, TRUE, 0, MAX_PRICE },
	{ "message", PAYSTREAM_FIELD_STRING, FALSE, 0, MAX_TIP_MESSAGE },
	{ "tip_id", PAYSTREAM_FIELD_VIEWER_ID, FALSE, 0, 0 },
};

#define SPEC(t, n, sync, f) { t, n, sync, f, G_N_ELEMENTS(f) }
#define SPEC_EMPTY(t, n, sync) { t, n, sync, NULL, 0 }

static const paystream_request_spec paystream_requests[] = {
	SPEC(PAYSTREAM_REQUEST_CREATE, "create", TRUE, create_fields),
	SPEC(PAYSTREAM_REQUEST_EDIT, "edit", TRUE, edit_fields),
	SPEC(PAYSTREAM_REQUEST_DESTROY, "destroy", TRUE, destroy_fields),
	SPEC(PAYSTREAM_REQUEST_EXISTS, "exists", TRUE, room_only_fields),
	SPEC_EMPTY(PAYSTREAM_REQUEST_LIST, "list", TRUE),
	SPEC(PAYSTREAM_REQUEST_LISTPARTICIPANTS, "listparticipants", TRUE, room_only_fields),
	SPEC(PAYSTREAM_REQUEST_KICK, "kick", TRUE, kick_fields),
	SPEC(PAYSTREAM_REQUEST_PUBLISH, "publish", FALSE, publish_fields),
	SPEC(PAYSTREAM_REQUEST_CONFIGURE, "configure", FALSE, configure_fields),
	SPEC_EMPTY(PAYSTREAM_REQUEST_UNPUBLISH, "unpublish", FALSE),
	SPEC_EMPTY(PAYSTREAM_REQUEST_LEAVE, "leave", FALSE),
	SPEC(PAYSTREAM_REQUEST_WATCH, "watch", FALSE, watch_fields),
	SPEC_EMPTY(PAYSTREAM_REQUEST_START, "start", FALSE),
	SPEC_EMPTY(PAYSTREAM_REQUEST_PAUSE, "pause", FALSE),
	SPEC_EMPTY(PAYSTREAM_REQUEST_RESUME, "resume", FALSE),
	SPEC(PAYSTREAM_REQUEST_REFRESH, "refresh", FALSE, refresh_fields),
	SPEC(PAYSTREAM_REQUEST_TIP, "tip", FALSE, tip_fields),
	SPEC(PAYSTREAM_REQUEST_STATS, "stats", TRUE, stats_fields),
};

const paystream_request_spec *paystream_request_lookup(const char *name) {
	if(name == NULL)
		return NULL;
	for(size_t i = 0; i < G_N_ELEMENTS(paystream_requests); i++) {
		if(strcmp(paystream_requests[i].name, name) == 0)
			return &paystream_requests[i];
	}
	return NULL;
}

static gboolean paystream_text_clean(const char *s, size_t len) {
	/* Jansson accepts "\u0000" inside strings: refuse it, and every other
	 * control character, so nothing downstream (logs, config file, pages)
	 * has to think about them. */
	if(strlen(s) != len)
		return FALSE;
	for(size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if(c < 0x20 || c == 0x7f)
			return FALSE;
	}
	return TRUE;
}

static int paystream_field_check(const paystream_field *f, json_t *value, char *error, size_t errlen) {
	switch(f->type) {
		case PAYSTREAM_FIELD_BOOL:
			if(!json_is_boolean(value)) {
				g_snprintf(error, errlen, "'%s' must be a boolean", f->name);
				return PAYSTREAM_ERROR_INVALID_ELEMENT;
			}
			return 0;
		case PAYSTREAM_FIELD_UINT:
			if(!json_is_integer(value) || json_integer_value(value) < 0 || json_integer_value(value) > f->max) {
				g_snprintf(error, errlen, "'%s' must be an integer from 0 to %" G_GINT64_FORMAT, f->name, f->max);
				return PAYSTREAM_ERROR_INVALID_ELEMENT;
			}
			return 0;
		default:
			break;
	}
	if(!json_is_string(value)) {
		g_snprintf(error, errlen, "'%s' must be a string", f->name);
		return PAYSTREAM_ERROR_INVALID_ELEMENT;
	}
	const char *s = json_string_value(value);
	size_t len = json_string_length(value);
	switch(f->type) {
		case PAYSTREAM_FIELD_ROOM_ID:
			if(strlen(s) != len || !paystream_room_id_valid(s)) {
				g_snprintf(error, errlen, "'%s' must be 1 to 64 characters of A-Z a-z 0-9 . _ -", f->name);
				return PAYSTREAM_ERROR_INVALID_ELEMENT;
			}
			return 0;
		case PAYSTREAM_FIELD_VIEWER_ID:
			if(strlen(s) != len || !paystream_viewer_id_valid(s)) {
				g_snprintf(error, errlen, "'%s' must be 1 to 128 characters of A-Z a-z 0-9 . _ @ : -", f->name);
				return PAYSTREAM_ERROR_INVALID_ELEMENT;
			}
			return 0;
		case PAYSTREAM_FIELD_CURRENCY:
			if(strlen(s) != len || !paystream_currency_valid(s)) {
				g_snprintf(error, errlen, "'%s' must be 1 to 16 characters of A-Z a-z 0-9 _ -", f->name);
				return PAYSTREAM_ERROR_INVALID_ELEMENT;
			}
			return 0;
		default:
			break;
	}
	if((gint64)len < f->min_len || (gint64)len > f->max) {
		g_snprintf(error, errlen, "'%s' must be %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT " bytes long",
			f->name, f->min_len, f->max);
		return PAYSTREAM_ERROR_INVALID_ELEMENT;
	}
	if(!paystream_text_clean(s, len)) {
		g_snprintf(error, errlen, "'%s' must not contain control characters", f->name);
		return PAYSTREAM_ERROR_INVALID_ELEMENT;
	}
	return 0;
}

int paystream_fields_validate(json_t *body, const paystream_field *fields, size_t n,
		char *error, size_t errlen) {
	for(size_t i = 0; i < n; i++) {
		const paystream_field *f = &fields[i];
		json_t *value = json_object_get(body, f->name);
		if(value == NULL || json_is_null(value)) {
			if(f->required) {
				g_snprintf(error, errlen, "Missing mandatory element '%s'", f->name);
				return PAYSTREAM_ERROR_MISSING_ELEMENT;
			}
			continue;
		}
		int rc = paystream_field_check(f, value, error, errlen);
		if(rc != 0)
			return rc;
	}
	return 0;
}

int paystream_request_parse(json_t *body, const paystream_request_spec **spec,
		char *error, size_t errlen) {
	*spec = NULL;
	if(body == NULL || !json_is_object(body)) {
		g_snprintf(error, errlen, "The message body must be a JSON object");
		return PAYSTREAM_ERROR_INVALID_JSON;
	}
	json_t *request = json_object_get(body, "request");
	if(request == NULL) {
		g_snprintf(error, errlen, "Missing 'request'");
		return PAYSTREAM_ERROR_INVALID_REQUEST;
	}
	if(!json_is_string(request)) {
		g_snprintf(error, errlen, "'request' must be a string");
		return PAYSTREAM_ERROR_INVALID_REQUEST;
	}
	const paystream_request_spec *found = paystream_request_lookup(json_string_value(request));
	if(found == NULL) {
		g_snprintf(error, errlen, "Unknown request '%.64s'", json_string_value(request));
		return PAYSTREAM_ERROR_INVALID_REQUEST;
	}
	int rc = paystream_fields_validate(body, found->fields, found->n_fields, error, errlen);
	if(rc != 0)
		return rc;
	*spec = found;
	return 0;
}
