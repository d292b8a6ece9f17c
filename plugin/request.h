/* request.h - what a well-formed request looks like.
 *
 * One table lists every request the plugin accepts, whether it is answered
 * synchronously (room management) or on the handler thread (anything that
 * touches a PeerConnection), and the fields it takes with their types and
 * bounds. paystream_request_parse() checks a message body against that table
 * before any handler sees it, so handlers read fields without re-checking
 * types. Semantic checks (does the room exist, is the key right) belong to
 * the handlers. Pure: GLib and Jansson only. */
#ifndef PAYSTREAM_REQUEST_H
#define PAYSTREAM_REQUEST_H

#include <glib.h>
#include <jansson.h>

typedef enum paystream_request_type {
	PAYSTREAM_REQUEST_CREATE,
	PAYSTREAM_REQUEST_EDIT,
	PAYSTREAM_REQUEST_DESTROY,
	PAYSTREAM_REQUEST_EXISTS,
	PAYSTREAM_REQUEST_LIST,
	PAYSTREAM_REQUEST_LISTPARTICIPANTS,
	PAYSTREAM_REQUEST_KICK,
	PAYSTREAM_REQUEST_PUBLISH,
	PAYSTREAM_REQUEST_CONFIGURE,
	PAYSTREAM_REQUEST_UNPUBLISH,
	PAYSTREAM_REQUEST_LEAVE,
	PAYSTREAM_REQUEST_WATCH,
	PAYSTREAM_REQUEST_START,
	PAYSTREAM_REQUEST_PAUSE,
	PAYSTREAM_REQUEST_RESUME,
	PAYSTREAM_REQUEST_REFRESH,
	PAYSTREAM_REQUEST_TIP,
	PAYSTREAM_REQUEST_STATS,
} paystream_request_type;

typedef enum paystream_field_type {
	PAYSTREAM_FIELD_STRING,		/* bounded length, no NUL, no control characters */
	PAYSTREAM_FIELD_BOOL,
	PAYSTREAM_FIELD_UINT,		/* integer from 0 to max */
	PAYSTREAM_FIELD_ROOM_ID,
	PAYSTREAM_FIELD_VIEWER_ID,
	PAYSTREAM_FIELD_CURRENCY,
} paystream_field_type;

typedef struct paystream_field {
	const char *name;
	paystream_field_type type;
	gboolean required;
	/* STRING: length bounds in bytes; UINT: max value (min_len unused). */
	gint64 min_len;
	gint64 max;
} paystream_field;

typedef struct paystream_request_spec {
	paystream_request_type type;
	const char *name;
	gboolean synchronous;
	const paystream_field *fields;
	size_t n_fields;
} paystream_request_spec;

/* The spec for a request name, or NULL if there is no such request. */
const paystream_request_spec *paystream_request_lookup(const char *name);

/* Check body against its request's spec. On success returns 0 and sets
 * *spec; otherwise returns an error code (errors.h) and writes a readable
 * reason to error. */
int paystream_request_parse(json_t *body, const paystream_request_spec **spec,
	char *error, size_t errlen);

/* Check only the listed fields of body (used for config entries too). */
int paystream_fields_validate(json_t *body, const paystream_field *fields, size_t n,
	char *error, size_t errlen);

#endif
