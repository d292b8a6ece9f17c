/* billing_http.c - the billing service's request (see billing_http.h). */
#include "billing_http.h"

static size_t paystream_billing_http_write(char *data, size_t size, size_t nmemb, void *user) {
	GString *response = user;
	size_t n = size * nmemb;
	if(response->len + n > PAYSTREAM_RESPONSE_MAX)
		return 0;	/* a reply this large is not the contract's: fail the call */
	g_string_append_len(response, data, n);
	return n;
}

struct curl_slist *paystream_billing_http_prepare(CURL *curl, const char *url, const char *key,
		const char *signature, const char *body, size_t len, long timeout_s, GString *response) {
	char *h_key = g_strdup_printf("Idempotency-Key: %s", key);
	char *h_sig = g_strdup_printf("X-Paystream-Signature: %s", signature);
	struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
	headers = curl_slist_append(headers, h_key);
	headers = curl_slist_append(headers, h_sig);
	/* No "100 Continue" round trip before large batches. */
	headers = curl_slist_append(headers, "Expect:");
	g_free(h_sig);
	g_free(h_key);
	g_string_truncate(response, 0);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)len);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, paystream_billing_http_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, response);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, timeout_s);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "paystream/" PACKAGE_VERSION);
	return headers;
}

void paystream_billing_batch_body_begin(GString *body, const char *batch_id, const char *instance_json,
		gint64 sent_at_ms) {
	g_string_truncate(body, 0);
	g_string_append_printf(body, "{\"batch_id\":\"%s\",\"instance\":%s,\"sent_at\":%" G_GINT64_FORMAT ",\"records\":[",
		batch_id, instance_json, sent_at_ms);
}

void paystream_billing_batch_body_end(GString *body) {
	g_string_append(body, "]}");
}
