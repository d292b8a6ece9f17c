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

/* Release what a push would have sent. */
static void paystream_push_discard(json_t *event, json_t *jsep) {
	if(event != NULL)
		json_decref(event);
	if(jsep != NULL)
		json_decref(jsep);
}

/* The push itself, on the calling thread. */
static void paystream_push_now(paystream_session *session, const char *transaction, json_t *event, json_t *jsep) {
	if(jsep != NULL)
		g_atomic_int_set(&session->has_pc, 1);	/* Janus sets up ICE for this SDP */
	/* Once the plugin stops nothing is pushed: Janus has closed its
	 * transports before it destroys plugins, and a billing stop or a tip's
	 * outcome met while the billing threads are joined would be pushed to
	 * them. */
	if(!g_atomic_int_get(&session->destroyed) && paystream_gateway != NULL && paystream_running()) {
		int rc = paystream_gateway->push_event(session->handle, &paystream_plugin, transaction, event, jsep);
		if(rc != 0)
			JANUS_LOG(LOG_VERB, "[paystream] push_event failed (%d)\n", rc);
	}
	paystream_push_discard(event, jsep);
}

/* A push waiting its turn in a session's queue. */
typedef struct paystream_push_item {
	char *transaction;
	json_t *event;		/* NULL: nothing to push */
	json_t *jsep;
	gboolean close_pc;	/* then close the PeerConnection */
} paystream_push_item;

static void paystream_push_item_run(paystream_session *session, const char *transaction, json_t *event,
		json_t *jsep, gboolean close_pc) {
	if(event != NULL)
		paystream_push_now(session, transaction, event, jsep);
	else
		paystream_push_discard(NULL, jsep);
	if(close_pc)
		paystream_session_close_pc(session);
}

/* The threads that push JSEPs; NULL when there are none (offer_threads 0,
 * or stopped). The pointer is set and cleared under the mutex, which is
 * also held while a session is handed to the pool, so that no session is
 * handed to a pool being freed. */
static GThreadPool *paystream_push_pool;
static janus_mutex paystream_push_pool_mutex = JANUS_MUTEX_INITIALIZER;
/* Set while the plugin stops: what is still queued is dropped, not pushed
 * (Janus has closed its transports by then, and pushing an offer would wait
 * for a gathering nobody needs). */
static volatile gint paystream_push_dropping;

/* Push what is queued for session, in order, until its queue is empty. */
static void paystream_push_drain(paystream_session *session) {
	for(;;) {
		janus_mutex_lock(&session->push_mutex);
		paystream_push_item *item = g_queue_pop_head(&session->pushes);
		if(item == NULL)
			session->pushing = FALSE;
		janus_mutex_unlock(&session->push_mutex);
		if(item == NULL)
			return;
		if(g_atomic_int_get(&paystream_push_dropping))
			paystream_push_discard(item->event, item->jsep);
		else
			paystream_push_item_run(session, item->transaction, item->event, item->jsep, item->close_pc);
		g_free(item->transaction);
		g_free(item);
	}
}

static void paystream_push_worker(gpointer data, gpointer user_data) {
	paystream_session *session = data;
	paystream_push_drain(session);
	janus_refcount_decrease(&session->ref);	/* taken by paystream_push_hand_over */
}

/* Give session's queue to the pool; FALSE if there is no pool. */
static gboolean paystream_push_hand_over(paystream_session *session) {
	gboolean handed = FALSE;
	janus_mutex_lock(&paystream_push_pool_mutex);
	if(paystream_push_pool != NULL) {
		janus_refcount_increase(&session->ref);
		/* The pool's threads all exist (exclusive): this cannot fail. */
		g_thread_pool_push(paystream_push_pool, session, NULL);
		handed = TRUE;
	}
	janus_mutex_unlock(&paystream_push_pool_mutex);
	return handed;
}

static void paystream_push_ordered(paystream_session *session, const char *transaction, json_t *event,
		json_t *jsep, gboolean close_pc) {
	gboolean queued = FALSE, first = FALSE;
	janus_mutex_lock(&session->push_mutex);
	if(session->pushing || (jsep != NULL && g_atomic_pointer_get(&paystream_push_pool) != NULL)) {
		paystream_push_item *item = g_malloc0(sizeof(paystream_push_item));
		item->transaction = g_strdup(transaction);
		item->event = event;
		item->jsep = jsep;
		item->close_pc = close_pc;
		g_queue_push_tail(&session->pushes, item);
		queued = TRUE;
		first = !session->pushing;
		session->pushing = TRUE;
		/* What the handle's state must say from now on, not only once the
		 * push is made: a request handled meanwhile sees a PeerConnection
		 * that is about to exist, or about to close (see session.h). */
		if(jsep != NULL)
			g_atomic_int_set(&session->has_pc, 1);
		if(close_pc && g_atomic_int_get(&session->has_pc))
			g_atomic_int_set(&session->pc_closing, 1);
	}
	janus_mutex_unlock(&session->push_mutex);
	if(!queued)
		paystream_push_item_run(session, transaction, event, jsep, close_pc);
	else if(first && !paystream_push_hand_over(session))
		paystream_push_drain(session);	/* no pool (any more): push it here */
}

void paystream_push(paystream_session *session, const char *transaction, json_t *event, json_t *jsep) {
	if(session == NULL) {
		paystream_push_discard(event, jsep);
		return;
	}
	paystream_push_ordered(session, transaction, event, jsep, FALSE);
}

void paystream_push_close(paystream_session *session) {
	paystream_push_ordered(session, NULL, NULL, NULL, TRUE);
}

int paystream_push_threads_start(guint threads, char *error, size_t errlen) {
	if(threads == 0)
		return 0;
	GError *pool_error = NULL;
	GThreadPool *pool = g_thread_pool_new(paystream_push_worker, NULL, (gint)threads, TRUE, &pool_error);
	if(pool == NULL || pool_error != NULL) {
		g_snprintf(error, errlen, "cannot start %u offer threads: %s", threads,
			pool_error ? pool_error->message : "unknown error");
		if(pool_error != NULL)
			g_error_free(pool_error);
		if(pool != NULL)
			g_thread_pool_free(pool, TRUE, TRUE);
		return -1;
	}
	janus_mutex_lock(&paystream_push_pool_mutex);
	g_atomic_pointer_set(&paystream_push_pool, pool);
	janus_mutex_unlock(&paystream_push_pool_mutex);
	return 0;
}

void paystream_push_threads_stop(void) {
	janus_mutex_lock(&paystream_push_pool_mutex);
	GThreadPool *pool = paystream_push_pool;
	g_atomic_pointer_set(&paystream_push_pool, NULL);
	janus_mutex_unlock(&paystream_push_pool_mutex);
	if(pool == NULL)
		return;
	/* Every session handed over is still drained (not immediate), but what
	 * it holds is dropped: no queued push and no reference is left behind.
	 * A push already under way finishes first. */
	g_atomic_int_set(&paystream_push_dropping, 1);
	g_thread_pool_free(pool, FALSE, TRUE);
	g_atomic_int_set(&paystream_push_dropping, 0);
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
		paystream_push_ordered(item->session, NULL, item->event, item->jsep, item->close_pc);
		janus_refcount_decrease(&item->session->ref);
		g_free(item);
	}
	g_list_free(box->items);
	box->items = NULL;
}
