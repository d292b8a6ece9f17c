/* signature.c - "t=<t>,v1=<hex HMAC-SHA256>" for billing requests (see signature.h). */
#include "signature.h"

#include <string.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

char *paystream_signature_header(const char *secret, gint64 t, const char *body, size_t len) {
	if(secret == NULL || secret[0] == '\0' || (body == NULL && len > 0))
		return NULL;
	/* The signed text is "<t>." then the body, fed in two pieces: a batch
	 * body is hundreds of kilobytes, not worth copying to sign. */
	char prefix[32];
	int plen = g_snprintf(prefix, sizeof(prefix), "%" G_GINT64_FORMAT ".", t);
	if(plen <= 0 || (size_t)plen >= sizeof(prefix))
		return NULL;
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t mac_len = 0;
	EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = hmac != NULL ? EVP_MAC_CTX_new(hmac) : NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	gboolean done = ctx != NULL &&
		EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) == 1 &&
		EVP_MAC_update(ctx, (const unsigned char *)prefix, (size_t)plen) == 1 &&
		(len == 0 || EVP_MAC_update(ctx, (const unsigned char *)body, len) == 1) &&
		EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac)) == 1;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(hmac);
	if(!done || mac_len != 32)
		return NULL;
	static const char hex[] = "0123456789abcdef";
	GString *header = g_string_sized_new(3 + (gsize)plen + 4 + 2 * mac_len);
	g_string_append_printf(header, "t=%" G_GINT64_FORMAT ",v1=", t);
	for(size_t i = 0; i < mac_len; i++) {
		g_string_append_c(header, hex[mac[i] >> 4]);
		g_string_append_c(header, hex[mac[i] & 0xf]);
	}
	return g_string_free(header, FALSE);
}
