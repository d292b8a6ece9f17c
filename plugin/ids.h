/* ids.h - identifiers and secrets: what a valid room id, viewer id or
 * currency looks like, how fresh ids and stream keys are made, and how
 * secrets are compared.
 *
 * Generated stream keys come from OpenSSL's CSPRNG (they are credentials);
 * comparisons of secrets are constant-time so a wrong key leaks nothing
 * about the right one through timing. Pure: GLib and libcrypto only. */
#ifndef PAYSTREAM_IDS_H
#define PAYSTREAM_IDS_H

#include <glib.h>

#define PAYSTREAM_ROOM_ID_MAX 64
#define PAYSTREAM_VIEWER_ID_MAX 128
#define PAYSTREAM_CURRENCY_MAX 16

/* 1 to 64 characters of [A-Za-z0-9._-]. */
gboolean paystream_room_id_valid(const char *id);
/* 1 to 128 characters of [A-Za-z0-9._@:-]. */
gboolean paystream_viewer_id_valid(const char *id);
/* 1 to 16 characters of [A-Za-z0-9_-]. */
gboolean paystream_currency_valid(const char *currency);

/* A new random UUID string (RFC 4122 version 4); g_free it. */
char *paystream_random_uuid(void);
/* A new stream key: 32 lowercase hex characters from the CSPRNG; g_free it. */
char *paystream_random_key(void);

/* Constant-time equality of two secrets. A NULL expected secret means "none
 * is set" and matches anything; a NULL given secret never matches a set one. */
gboolean paystream_secret_matches(const char *expected, const char *given);

#endif
