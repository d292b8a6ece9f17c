/* billing_http.h - one signed POST to the billing service, as libcurl
 * options: the headers of docs/BILLING.md (Content-Type, Idempotency-Key,
 * X-Paystream-Signature) and the reply collected with a size cap.
 *
 * billing.c's delivery threads and the delivery benchmark set up their
 * calls here, so the benchmark measures the plugin's own request. Pure:
 * GLib and libcurl; the caller signs (signature.h) and performs. */
#ifndef PAYSTREAM_BILLING_HTTP_H
#define PAYSTREAM_BILLING_HTTP_H

#include <glib.h>
#include <curl/curl.h>

/* A reply's stop list names sessions: leave room for many thousands. */
#define PAYSTREAM_RESPONSE_MAX (16 * 1024 * 1024)

/* Set curl up to POST body (len bytes, which must outlive the call) to url
 * with key and the signature header value, collecting the reply in
 * response (emptied first; a reply over PAYSTREAM_RESPONSE_MAX fails the
 * call). Returns the header list: free it with curl_slist_free_all after
 * curl_easy_perform. */
struct curl_slist *paystream_billing_http_prepare(CURL *curl, const char *url, const char *key,
	const char *signature, const char *body, size_t len, long timeout_s, GString *response);

#endif
