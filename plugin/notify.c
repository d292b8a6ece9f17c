/* notify.c - pushing events to handles and to event handlers (see notify.h). */
#include "notify.h"

#include <debug.h>

#include "errors.h"
#include "plugin.h"

json_t *paystream_event_new(const char *name, const char *room) {
	json_t *event = json_object();
	json_object_set_new(event, "paystream", json_string(name));
	if(room != NULL)
		json_object_set_new(event, "room", json_string(room));
	return event;
}

void paystream_push(paystream_session *session, const char *transaction, json_t *event, json_t *jsep) {
	if(session != NULL && jsep != NULL)
		g_atomic_int_set(&session->has_pc, 1);	/* Janus sets up ICE for this SDP */
	if(session != NULL && !g_atomic_int_get(&session->destroyed) && paystream_gateway != NULL) {
		int rc = paystream_gateway->push_event(session->handle, &paystream_plugin, transaction, event, jsep);
		if(rc != 0)
			JANUS_LOG(LOG_VERB, "[paystream] push_event failed (%d)\n", rc);
	}
	json_decref(event);
	if(jsep != NULL)
		json_decref(jsep);
}

void paystream_push_error(paystream_session *session, const char *transaction, int code, const char *text) {
	paystream_push(session, transaction, paystream_error_json(code, text), NULL);
}

gboolean paystream_notify_enabled(void) {
	return paystream_gateway != NULL && paystream_gateway->events_is_enabled();
}

void paystream_notify(paystream_session *session, const char *name, const char *room, json_t *fields) {
	if(!paystream_notify_enabled()) {
		if(fields != NULL)
			json_decref(fields);
		return;
	}
	json_t *event = json_object();
	json_object_set_new(event, "event", json_string(name));
	if(room != NULL)
		json_object_set_new(event, "room", json_string(room));
	if(fields != NULL) {
		json_object_update(event, fields);
		json_decref(fields);
	}
	/* notify_event takes ownership of the event. */
	paystream_gateway->notify_event(&paystream_plugin, session ? session->handle : NULL, event);
}

typedef struct paystream_outbox_item {
	paystream_session *session;
	json_t *event;
	json_t *jsep;
	gboolean close_pc;
} paystream_outbox_item;

void paystream_outbox_add(paystream_outbox *box, paystream_session *session, json_t *event, json_t *jsep,
		gboolean close_pc) {
	paystream_outbox_item *item = g_malloc0(sizeof(paystream_outbox_item));
	janus_refcount_increase(&session->ref);
	item->session = session;
	item->event = event;
	item->jsep = jsep;
	item->close_pc = close_pc;
	box->items = g_list_prepend(box->items, item);
}

void paystream_outbox_flush(paystream_outbox *box) {
	box->items = g_list_reverse(box->items);
	for(GList *l = box->items; l; l = l->next) {
		paystream_outbox_item *item = l->data;
		if(item->event != NULL)
			paystream_push(item->session, NULL, item->event, item->jsep);
		else if(item->jsep != NULL)
			json_decref(item->jsep);
		if(item->close_pc)
			paystream_session_close_pc(item->session);
		janus_refcount_decrease(&item->session->ref);
		g_free(item);
	}
	g_list_free(box->items);
	box->items = NULL;
}
