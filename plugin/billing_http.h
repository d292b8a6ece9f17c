/* billing_http.h - one signed POST to the billing service, as libcurl
 * options: the headers of docs/BILLING.md (Content-Type, Idempotency-Key,
 * X-Paystream-Signature) and the reply collected with a size cap.
 *
 * Also the usage batch's body, built around the records' JSON text as the
 * spool keeps it (no parse, no re-serialization).
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

/* The body of POST /v1/usage, built in one buffer around the records:
 *	{"batch_id":"<id>","instance":<instance_json>,"sent_at":<ms>,"records":[
 * (begin: body is emptied first), then the records' texts joined by ","
 * (the spool appends them), then "]}" (end). batch_id is a UUID,
 * instance_json a JSON string (records.h's paystream_record_quote). */
void paystream_billing_batch_body_begin(GString *body, const char *batch_id, const char *instance_json,
	gint64 sent_at_ms);
void paystream_billing_batch_body_end(GString *body);

#endif
