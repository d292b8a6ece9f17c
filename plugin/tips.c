/* tips.c - tip requests, their outcomes and the room-wide broadcast (see tips.h). */
#include "tips.h"

#include <string.h>

#include <debug.h>
#include <utils.h>

#include "billing.h"
#include "ids.h"
#include "plugin.h"

#define PAYSTREAM_TIPS_REMEMBERED 10000

/* Tips in flight: tip_id -> who to tell (NULL for a tip spooled by the
 * server's previous run: its tipper is gone). Settled tips: tip_id ->
 * outcome, so a repeated tip_id is answered without being sent or shown
 * again. A tip_id is reserved in flight when its request is checked, in
 * the same critical section, so two requests with one id cannot both pass. */
typedef struct paystream_tip_origin {
	paystream_session *session;	/* the tipper's handle, a reference */
	char *display;
} paystream_tip_origin;

static GHashTable *paystream_tips_inflight;
static GHashTable *paystream_tips_settled;
static GQueue paystream_tips_settled_order = G_QUEUE_INIT;
static janus_mutex paystream_tips_mutex = JANUS_MUTEX_INITIALIZER;

static void paystream_tip_origin_free(gpointer data) {
	paystream_tip_origin *origin = data;
	if(origin == NULL)
		return;
	janus_refcount_decrease(&origin->session->ref);
	g_free(origin->display);
	g_free(origin);
}

void paystream_tips_init(void) {
	paystream_tips_inflight = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, paystream_tip_origin_free);
	paystream_tips_settled = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
}

void paystream_tips_adopt_spooled(json_t *spooled) {
	size_t i;
	json_t *entry;
	janus_mutex_lock(&paystream_tips_mutex);
	json_array_foreach(spooled, i, entry) {
		const char *tip_id = json_string_value(json_object_get(entry, "tip_id"));
		/* The tips thread may have settled it already: then it stays settled. */
		if(tip_id != NULL && !g_hash_table_contains(paystream_tips_settled, tip_id) &&
				!g_hash_table_contains(paystream_tips_inflight, tip_id))
			g_hash_table_insert(paystream_tips_inflight, g_strdup(tip_id), NULL);
	}
	janus_mutex_unlock(&paystream_tips_mutex);
}

void paystream_tips_deinit(void) {
	janus_mutex_lock(&paystream_tips_mutex);
	g_hash_table_destroy(paystream_tips_inflight);
	g_hash_table_destroy(paystream_tips_settled);
	g_queue_clear(&paystream_tips_settled_order);
	paystream_tips_inflight = paystream_tips_settled = NULL;
	janus_mutex_unlock(&paystream_tips_mutex);
}

static json_t *paystream_tip_result_event(const char *room, const char *tip_id, const char *status, const char *reason) {
	json_t *event = paystream_event_new("tip_result", room);
	json_object_set_new(event, "tip_id", json_string(tip_id));
	json_object_set_new(event, "status", json_string(status));
	if(reason != NULL)
		json_object_set_new(event, "reason", json_string(reason));
	return event;
}

/* The rate limit, as a virtual schedule: each tip moves the viewer's next
 * allowed time one interval on; up to BURST tips may run ahead of now. */
static gboolean paystream_tip_allowed_locked(paystream_viewer *viewer, gint64 now_ms) {
	gint64 next = MAX(viewer->tip_allowance_ms, now_ms);
	if(next - now_ms > (PAYSTREAM_TIP_BURST - 1) * PAYSTREAM_TIP_INTERVAL_MS)
		return FALSE;
	viewer->tip_allowance_ms = next + PAYSTREAM_TIP_INTERVAL_MS;
	return TRUE;
}

void paystream_tip_request(paystream_message *msg, paystream_viewer *viewer, paystream_result *result) {
	paystream_room *room = viewer->room;
	json_t *body = msg->body;
	if(!paystream_billing_enabled()) {
		paystream_fail(result, PAYSTREAM_ERROR_BILLING_UNAVAILABLE, "This server has no billing service: no tips");
		return;
	}
	gint64 amount = json_integer_value(json_object_get(body, "amount"));
	const char *message = json_string_value(json_object_get(body, "message"));
	if(message != NULL && g_utf8_strlen(message, -1) > PAYSTREAM_TIP_MESSAGE_MAX) {
		paystream_fail(result, PAYSTREAM_ERROR_INVALID_TIP, "A tip message has at most %d characters", PAYSTREAM_TIP_MESSAGE_MAX);
		return;
	}
	const char *given_id = json_string_value(json_object_get(body, "tip_id"));
	char *tip_id = given_id ? g_strdup(given_id) : paystream_random_uuid();

	paystream_tip_origin *origin = g_malloc0(sizeof(paystream_tip_origin));
	janus_refcount_increase(&msg->session->ref);
	origin->session = msg->session;
	janus_mutex_lock(&room->mutex);
	origin->display = g_strdup(viewer->display);
	janus_mutex_unlock(&room->mutex);
	janus_mutex_lock(&paystream_tips_mutex);
	const char *settled = g_hash_table_lookup(paystream_tips_settled, tip_id);
	char *settled_status = g_strdup(settled);
	gboolean inflight = g_hash_table_contains(paystream_tips_inflight, tip_id);
	if(settled_status == NULL && !inflight) {
		g_hash_table_insert(paystream_tips_inflight, g_strdup(tip_id), origin);	/* reserved */
		origin = NULL;
	}
	janus_mutex_unlock(&paystream_tips_mutex);
	paystream_tip_origin_free(origin);
	if(settled_status != NULL || inflight) {
		/* A repeat: answered, never sent or shown again. */
		paystream_push(msg->session, msg->transaction,
			paystream_tip_result_event(room->id, tip_id, settled_status ? settled_status : "pending", "repeated_tip_id"), NULL);
		g_free(settled_status);
		g_free(tip_id);
		return;
	}

	json_t *tip = NULL;
	janus_mutex_lock(&room->mutex);
	if(viewer->session_id == NULL) {
		paystream_fail(result, PAYSTREAM_ERROR_TOKEN_REQUIRED, "Tipping needs a viewer token (a billable identity)");
	} else if(amount < room->settings.min_tip || (room->settings.max_tip > 0 && amount > room->settings.max_tip)) {
		paystream_fail(result, PAYSTREAM_ERROR_INVALID_TIP, "A tip in room '%s' is from %" G_GINT64_FORMAT " to %s",
			room->id, room->settings.min_tip, room->settings.max_tip > 0 ? "max_tip" : "any amount");
	} else if(!paystream_tip_allowed_locked(viewer, janus_get_monotonic_time() / 1000)) {
		paystream_fail(result, PAYSTREAM_ERROR_RATE_LIMITED, "Too many tips: at most %d in a row, then one a second",
			PAYSTREAM_TIP_BURST);
	} else {
		tip = json_object();
		json_object_set_new(tip, "tip_id", json_string(tip_id));
		json_object_set_new(tip, "room", json_string(room->id));
		json_object_set_new(tip, "viewer", json_string(viewer->billing_id));
		json_object_set_new(tip, "session", json_string(viewer->session_id));
		json_object_set_new(tip, "amount", json_integer(amount));
		json_object_set_new(tip, "currency", json_string(room->settings.currency));
		json_object_set_new(tip, "message", json_string(message ? message : ""));
	}
	janus_mutex_unlock(&room->mutex);
	if(tip == NULL) {
		janus_mutex_lock(&paystream_tips_mutex);
		g_hash_table_remove(paystream_tips_inflight, tip_id);
		janus_mutex_unlock(&paystream_tips_mutex);
		g_free(tip_id);
		return;
	}
	int rc = paystream_billing_tip(tip_id, tip);
	if(rc != 0) {
		janus_mutex_lock(&paystream_tips_mutex);
		g_hash_table_remove(paystream_tips_inflight, tip_id);
		janus_mutex_unlock(&paystream_tips_mutex);
		if(rc == PAYSTREAM_ERROR_INVALID_TIP) {
			/* The spool still holds this tip_id (settled long ago, its ack
			 * not written): a repeat all the same. */
			paystream_push(msg->session, msg->transaction,
				paystream_tip_result_event(room->id, tip_id, "pending", "repeated_tip_id"), NULL);
		} else {
			paystream_fail(result, rc, "Tips cannot be taken now (the billing spool is full, or the disk failing)");
		}
	} else {
		paystream_push(msg->session, msg->transaction, paystream_tip_result_event(room->id, tip_id, "pending", NULL), NULL);
	}
	json_decref(tip);
	g_free(tip_id);
}

static void paystream_tips_remember_locked(const char *tip_id, const char *status) {
	if(g_hash_table_contains(paystream_tips_settled, tip_id))
		return;
	char *key = g_strdup(tip_id);
	g_hash_table_insert(paystream_tips_settled, key, g_strdup(status));
	g_queue_push_tail(&paystream_tips_settled_order, key);
	while(g_queue_get_length(&paystream_tips_settled_order) > PAYSTREAM_TIPS_REMEMBERED)
		g_hash_table_remove(paystream_tips_settled, g_queue_pop_head(&paystream_tips_settled_order));
}

/* Everyone in the room: the performer and every viewer. */
static void paystream_tip_broadcast(paystream_room *room, json_t *event) {
	paystream_outbox box = PAYSTREAM_OUTBOX_INIT;
	janus_mutex_lock(&room->mutex);
	if(room->performer != NULL)
		paystream_outbox_add(&box, room->performer->session, json_deep_copy(event), NULL, FALSE);
	GHashTableIter iter;
	gpointer value;
	g_hash_table_iter_init(&iter, room->viewers);
	while(g_hash_table_iter_next(&iter, NULL, &value))
		paystream_outbox_add(&box, ((paystream_viewer *)value)->session, json_deep_copy(event), NULL, FALSE);
	janus_mutex_unlock(&room->mutex);
	paystream_outbox_flush(&box);
}

void paystream_tips_result(json_t *tip, const char *status, const char *reason) {
	const char *tip_id = json_string_value(json_object_get(tip, "tip_id"));
	const char *room_id = json_string_value(json_object_get(tip, "room"));
	if(tip_id == NULL || room_id == NULL)
		return;
	janus_mutex_lock(&paystream_tips_mutex);
	if(paystream_tips_inflight == NULL) {
		janus_mutex_unlock(&paystream_tips_mutex);
		return;
	}
	paystream_tip_origin *origin = NULL;
	char *key = NULL;
	g_hash_table_steal_extended(paystream_tips_inflight, tip_id, (gpointer *)&key, (gpointer *)&origin);
	g_free(key);
	paystream_tips_remember_locked(tip_id, status);
	janus_mutex_unlock(&paystream_tips_mutex);
	/* After a restart a spooled tip has no tipper handle any more: event
	 * handlers hear of it, and a room of the same id (a permanent one)
	 * still sees an accepted tip, with no display. */
	if(origin != NULL)
		paystream_push(origin->session, NULL, paystream_tip_result_event(room_id, tip_id, status, reason), NULL);
	json_t *fields = json_deep_copy(tip);
	json_object_set_new(fields, "status", json_string(status));
	if(reason != NULL)
		json_object_set_new(fields, "reason", json_string(reason));
	paystream_notify(origin ? origin->session : NULL, "tip", room_id, fields);
	if(strcmp(status, "accepted") == 0) {
		paystream_room *room = paystream_rooms_find(room_id);
		if(room != NULL) {
			json_t *event = paystream_event_new("tip", room_id);
			json_object_set_new(event, "tip_id", json_string(tip_id));
			json_object_set_new(event, "display", origin && origin->display ? json_string(origin->display) : json_null());
			json_object_set(event, "amount", json_object_get(tip, "amount"));
			json_object_set(event, "currency", json_object_get(tip, "currency"));
			json_object_set(event, "message", json_object_get(tip, "message"));
			paystream_tip_broadcast(room, event);
			json_decref(event);
			janus_refcount_decrease(&room->ref);
		}
	}
	if(origin != NULL)
		paystream_tip_origin_free(origin);
}
