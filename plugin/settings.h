/* settings.h - a room's settings and the plugin's general settings.
 *
 * Room settings come from three places that must agree: a `create` request,
 * an `edit` request, and a permanent room's entry in
 * janus.plugin.paystream.jcfg. This module turns each into the same struct,
 * with the same checks, and turns the struct back into config entries and
 * into the public description used by `list`. It owns the codec lists' syntax
 * but not their negotiation (negotiate.c). Pure: GLib and Jansson only. */
#ifndef PAYSTREAM_SETTINGS_H
#define PAYSTREAM_SETTINGS_H

#include <glib.h>
#include <jansson.h>

#define PAYSTREAM_DEFAULT_AUDIOCODEC "opus"
#define PAYSTREAM_DEFAULT_VIDEOCODEC "vp8,h264"
#define PAYSTREAM_DEFAULT_CURRENCY "credits"
#define PAYSTREAM_DEFAULT_FIR_FREQ 10
#define PAYSTREAM_MAX_CODECS 5
#define PAYSTREAM_DEFAULT_TICK_NOTIFY 1
#define PAYSTREAM_DEFAULT_MIN_TIP 1
#define PAYSTREAM_DEFAULT_BILLING_INTERVAL 1
/* Records per usage batch: a batch is one round trip, and one batch is in
 * flight at a time, so this bounds what a far service can take (5000 per
 * round trip: 250 000 records/s at 20 ms). At most 50 000 (~11 MB bodies:
 * the reference service reads up to 16 MB). */
#define PAYSTREAM_DEFAULT_BATCH_MAX 5000
#define PAYSTREAM_MAX_BATCH_MAX 50000
#define PAYSTREAM_DEFAULT_SPOOL_MAX_BYTES (64 * 1024 * 1024)
/* The longest journal lines the plugin writes (spool.h's format: checksum,
 * kind, seq or tip id, JSON), from the limits it enforces on what they
 * hold: a room id of 64 characters, a viewer (a token's sub) and a tip_id
 * of 128, a currency of 16, a stop reason of 64 (metering.c), a session id
 * of 36, numbers of up to 20 characters, a tip message of 200 characters
 * that JSON may escape to 6 bytes each. test_settings.c writes such lines
 * into a spool and checks these bounds. */
#define PAYSTREAM_LONGEST_RECORD_LINE 539	/* a session_end */
#define PAYSTREAM_LONGEST_TIP_LINE 1822
/* The smallest spool_max_bytes. A full spool takes new lines again once it
 * drained below half its size, so half of it must hold the longest line,
 * with room to spare: else a record longer than what the spool can ever
 * take would wait in memory, and the spool stay full, for ever. */
#define PAYSTREAM_MIN_SPOOL_MAX_BYTES 4096
#define PAYSTREAM_DEFAULT_TIP_TIMEOUT 30
#define PAYSTREAM_DEFAULT_BILLING_TIMEOUT 5
#define PAYSTREAM_DEFAULT_RETRY_MAX 30
#define PAYSTREAM_DEFAULT_OFFER_THREADS 4
#define PAYSTREAM_MAX_OFFER_THREADS 64

typedef struct paystream_room_settings {
	char *room;
	char *description;
	char *secret;		/* NULL: none */
	char *stream_key;
	char *pin;			/* NULL: none */
	gboolean is_private;
	gboolean permanent;
	guint32 max_viewers;	/* 0: no limit */
	char *audiocodec;	/* normalized: "opus" or "opus,g722" */
	char *videocodec;
	guint32 bitrate;		/* 0: no cap */
	guint32 fir_freq;		/* seconds, 0: no periodic keyframe request */
	gint64 price_per_second;
	char *currency;
	guint32 tick_notify;	/* seconds between `tick` events to a viewer */
	gint64 min_tip, max_tip;	/* max_tip 0: no limit */
} paystream_room_settings;

typedef struct paystream_general_settings {
	char *admin_key;	/* NULL: create is open to any client */
	char *token_secret;	/* NULL: no tokens, only free rooms */
	char *token_secret_previous;	/* also accepted, during a rotation */
	char *billing_url;	/* NULL: no billing, only free rooms */
	char *billing_secret;
	char *instance;		/* names this server in usage batches */
	guint32 billing_interval;	/* seconds between usage batches */
	guint32 billing_batch_max;	/* records per usage batch, at most */
	guint32 billing_timeout;	/* seconds one billing call may take */
	guint32 retry_max;	/* seconds: the cap of the retry backoff */
	char *spool_dir;
	guint64 spool_max_bytes;
	guint32 tip_timeout;	/* seconds a tip is retried before it fails */
	guint32 offer_threads;	/* threads pushing offers and answers; 0: the caller's thread */
} paystream_general_settings;

/* TRUE when priced rooms can work: tokens can be checked and usage billed. */
gboolean paystream_general_can_bill(const paystream_general_settings *g);

/* Fill s from a validated `create` body (request.h checked the types).
 * Generates the room id and stream key when absent; *key_generated tells the
 * caller to return the key once. Returns 0 or an error code with text. */
int paystream_settings_from_create(json_t *body, paystream_room_settings *s,
	gboolean *key_generated, char *error, size_t errlen);

/* The checks that involve several fields (min_tip <= max_tip). */
int paystream_settings_check(const paystream_room_settings *s, char *error, size_t errlen);

/* Apply the new_* fields of a validated `edit` body to s; all or nothing. */
int paystream_settings_apply_edit(paystream_room_settings *s, json_t *body,
	char *error, size_t errlen);

/* Fill s from a config category flattened to a JSON object of strings
 * ({"room": "demo", "max_viewers": "10", "is_private": "yes"}). */
int paystream_settings_from_config(json_t *entry, paystream_room_settings *s,
	char *error, size_t errlen);

/* The config entries (a JSON object of strings) that recreate s. */
json_t *paystream_settings_to_config(const paystream_room_settings *s);

/* The public description of a room for `list` (no secrets). */
json_t *paystream_settings_describe(const paystream_room_settings *s);

void paystream_settings_copy(paystream_room_settings *dst, const paystream_room_settings *src);
void paystream_settings_clear(paystream_room_settings *s);

/* Normalize a comma-separated codec list against the known names; returns a
 * new string or NULL (with text) if a name is unknown, repeated, or the list
 * is empty or too long. */
char *paystream_codec_list_normalize(const char *list, gboolean video, char *error, size_t errlen);

/* Read the general section (a JSON object of strings, as above). */
int paystream_general_from_config(json_t *general, paystream_general_settings *g,
	char *error, size_t errlen);
void paystream_general_clear(paystream_general_settings *g);

#endif
