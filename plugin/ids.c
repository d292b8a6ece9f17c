/* ids.c - identifier syntax, random ids and keys, secret comparison (see ids.h). */
#include "ids.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

static gboolean paystream_id_chars_valid(const char *id, size_t max, const char *extra) {
	if(id == NULL)
		return FALSE;
	size_t len = strlen(id);
	if(len == 0 || len > max)
		return FALSE;
	for(size_t i = 0; i < len; i++) {
		char c = id[i];
		if(!g_ascii_isalnum(c) && strchr(extra, c) == NULL)
			return FALSE;
	}
	return TRUE;
}

gboolean paystream_room_id_valid(const char *id) {
	return paystream_id_chars_valid(id, PAYSTREAM_ROOM_ID_MAX, "._-");
}

gboolean paystream_viewer_id_valid(const char *id) {
	return paystream_id_chars_valid(id, PAYSTREAM_VIEWER_ID_MAX, "._@:-");
}

gboolean paystream_currency_valid(const char *currency) {
	return paystream_id_chars_valid(currency, PAYSTREAM_CURRENCY_MAX, "_-");
}

char *paystream_random_uuid(void) {
	/* GLib's generator is not a CSPRNG; ids are not secrets, but using the
	 * same source for both keeps one place to reason about randomness. */
	guint8 b[16];
	if(RAND_bytes(b, sizeof(b)) != 1)
		return g_uuid_string_random();
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	return g_strdup_printf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
		b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

char *paystream_random_key(void) {
	guint8 b[16];
	if(RAND_bytes(b, sizeof(b)) != 1)
		return NULL;
	GString *key = g_string_sized_new(33);
	for(size_t i = 0; i < sizeof(b); i++)
		g_string_append_printf(key, "%02x", b[i]);
	return g_string_free(key, FALSE);
}

gboolean paystream_secret_matches(const char *expected, const char *given) {
	if(expected == NULL)
		return TRUE;
	if(given == NULL)
		return FALSE;
	/* Compare digests, so neither the content nor the length of the
	 * expected secret shows in the time taken. */
	unsigned char de[EVP_MAX_MD_SIZE], dg[EVP_MAX_MD_SIZE];
	unsigned int le = 0, lg = 0;
	if(!EVP_Digest(expected, strlen(expected), de, &le, EVP_sha256(), NULL) ||
			!EVP_Digest(given, strlen(given), dg, &lg, EVP_sha256(), NULL) || le != lg)
		return FALSE;
	return CRYPTO_memcmp(de, dg, le) == 0;
}
