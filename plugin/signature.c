/* signature.c - "t=<t>,v1=<hex HMAC-SHA256>" for billing requests (see signature.h). */
#include "signature.h"

#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

char *paystream_signature_header(const char *secret, gint64 t, const char *body, size_t len) {
	if(secret == NULL || secret[0] == '\0' || (body == NULL && len > 0))
		return NULL;
	/* The signed text is "<t>." then the body: one buffer, one HMAC call. */
	char prefix[32];
	int plen = g_snprintf(prefix, sizeof(prefix), "%" G_GINT64_FORMAT ".", t);
	if(plen <= 0 || (size_t)plen >= sizeof(prefix) || len > G_MAXSIZE - (size_t)plen)
		return NULL;
	guint8 *signed_text = g_malloc((size_t)plen + len + 1);
	memcpy(signed_text, prefix, (size_t)plen);
	if(len > 0)
		memcpy(signed_text + plen, body, len);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	unsigned char *done = HMAC(EVP_sha256(), secret, (int)strlen(secret), signed_text,
		(size_t)plen + len, mac, &mac_len);
	g_free(signed_text);
	if(done == NULL || mac_len != 32)
		return NULL;
	GString *header = g_string_sized_new(3 + plen + 4 + 2 * mac_len);
	g_string_append_printf(header, "t=%" G_GINT64_FORMAT ",v1=", t);
	for(unsigned int i = 0; i < mac_len; i++)
		g_string_append_printf(header, "%02x", mac[i]);
	return g_string_free(header, FALSE);
}
