/* viewer.c - the viewer's requests: watch, start, pause, resume,
 * configure (simulcast layer), leave; and what a performer going live means
 * for each viewer (a first offer, a renegotiation, or just an event).
 *
 * A viewer's negotiation state (viewer_state.c) and relay contexts are
 * guarded by its room's mutex; the relay reads them under the same lock. */
#include <string.h>

#include <debug.h>

#include "handlers.h"
#include "ids.h"
#include "metering.h"
#include "negotiate.h"
#include "plugin.h"
#include "relay.h"
#include "tips.h"

static json_t *paystream_offer_jsep(char *sdp) {
	json_t *jsep = json_pack("{ssss}", "type", "offer", "sdp", sdp);
	g_free(sdp);
	return jsep;
}

void paystream_viewers_performer_live(paystream_room *room, paystream_performer *performer, paystream_outbox *box) {
	GHashTableIter iter;
	gpointer value;
	g_hash_table_iter_init(&iter, room->viewers);
	while(g_hash_table_iter_next(&iter, NULL, &value)) {
		paystream_viewer *viewer = value;
		paystream_relay_viewer_follow(viewer, performer);
		json_t *jsep = NULL;
		if(viewer->state.phase == PAYSTREAM_VIEWER_WAITING ||
				!paystream_media_compatible(&viewer->media, viewer->has_audio, viewer->has_video, &performer->media)) {
			jsep = paystream_offer_jsep(paystream_negotiate_viewer_offer(viewer, &performer->media, &room->settings));
			paystream_viewer_state_apply(&viewer->state, PAYSTREAM_VIEWER_EV_OFFER);
		}
		paystream_outbox_add(box, viewer->session, paystream_event_new("live", room->id), jsep, FALSE);
	}
}

void paystream_viewer_remove(paystream_viewer *viewer, const char *reason) {
	paystream_room *room = viewer->room;
	paystream_outbox box = PAYSTREAM_OUTBOX_INIT;
	janus_mutex_lock(&room->mutex);
	gboolean removed = g_hash_table_lookup(room->viewers, viewer->viewer_id) == viewer;
	if(removed) {
		if(strcmp(reason, "kicked") == 0)
			paystream_metering_stop_locked(viewer, reason, &box);
		paystream_metering_finish_locked(viewer, reason);
		janus_refcount_increase(&viewer->ref);
		g_hash_table_remove(room->viewers, viewer->viewer_id);
		g_atomic_int_set(&viewer->destroyed, 1);
	}
	janus_mutex_unlock(&room->mutex);
	paystream_outbox_flush(&box);
	paystream_session_clear_viewer(viewer->session, viewer);
	if(removed) {
		JANUS_LOG(LOG_VERB, "[paystream] viewer %s left room %s (%s)\n", viewer->viewer_id, room->id, reason);
		paystream_notify(viewer->session, "viewer_left", room->id,
			json_pack("{ssss}", "viewer_id", viewer->viewer_id, "reason", reason));
		janus_refcount_decrease(&viewer->ref);
	}
}

static void paystream_watch(paystream_message *msg, paystream_result *result) {
	paystream_session *session = msg->session;
	json_t *body = msg->body;
	paystream_role role = paystream_session_role(session);
	if(role != PAYSTREAM_ROLE_NONE) {
		paystream_fail(result, PAYSTREAM_ERROR_WRONG_STATE, role == PAYSTREAM_ROLE_VIEWER ? "Already watching: leave first" :
			"This handle publishes: leave first, or watch from another handle");
		return;
	}
	if(msg->jsep != NULL) {
		paystream_fail(result, PAYSTREAM_ERROR_INVALID_JSEP, "watch takes no JSEP: the plugin sends the offer");
		return;
	}
	paystream_room *room = paystream_room_named(body, result);
	if(room == NULL)
		return;
	/* A token is the viewer's billable identity: needed in a priced room. */
	const char *jwt = json_string_value(json_object_get(body, "token"));
	const char *given_id = json_string_value(json_object_get(body, "viewer_id"));
	paystream_token token;
	memset(&token, 0, sizeof(token));
	if(jwt != NULL) {
		result->code = paystream_metering_check_token(jwt, room->id, PAYSTREAM_TOKEN_ROLE_VIEWER, &token,
			result->text, sizeof(result->text));
		if(result->code == 0 && !paystream_viewer_id_valid(token.sub))
			paystream_fail(result, PAYSTREAM_ERROR_INVALID_TOKEN,
				"Token refused: its sub must be 1 to 128 characters of A-Z a-z 0-9 . _ @ : -");
		if(result->code == 0 && given_id != NULL && strcmp(given_id, token.sub) != 0)
			paystream_fail(result, PAYSTREAM_ERROR_INVALID_ELEMENT, "'viewer_id' must be the token's sub ('%s')", token.sub);
		if(result->code != 0) {
			paystream_token_clear(&token);
			janus_refcount_decrease(&room->ref);
			return;
		}
		given_id = token.sub;
	}
	char *viewer_id = given_id ? g_strdup(given_id) : paystream_random_uuid();
	paystream_viewer *viewer = paystream_viewer_new(session, room, viewer_id,
		json_string_value(json_object_get(body, "display")));
	g_free(viewer_id);
	json_t *jsep = NULL, *event = NULL;
	janus_mutex_lock(&room->mutex);
	if(g_atomic_int_get(&room->destroyed)) {
		paystream_fail(result, PAYSTREAM_ERROR_NO_SUCH_ROOM, "Room '%s' was destroyed", room->id);
	} else if(!paystream_secret_matches(room->settings.pin, json_string_value(json_object_get(body, "pin")))) {
		paystream_fail(result, PAYSTREAM_ERROR_WRONG_PIN, "Wrong or missing pin");
	} else if(room->settings.max_viewers > 0 && g_hash_table_size(room->viewers) >= room->settings.max_viewers) {
		paystream_fail(result, PAYSTREAM_ERROR_ROOM_FULL, "Room '%s' is full (%u viewers)", room->id,
			room->settings.max_viewers);
	} else if(g_hash_table_contains(room->viewers, viewer->viewer_id)) {
		paystream_fail(result, PAYSTREAM_ERROR_VIEWER_ID_TAKEN, "Another viewer of room '%s' is '%s'",
			room->id, viewer->viewer_id);
	} else if(room->settings.price_per_second > 0 && !paystream_general_can_bill(&paystream_general)) {
		paystream_fail(result, PAYSTREAM_ERROR_BILLING_UNAVAILABLE,
			"Room '%s' is priced but this server has no billing configured", room->id);
	} else if(room->settings.price_per_second > 0 && jwt == NULL) {
		paystream_fail(result, PAYSTREAM_ERROR_TOKEN_REQUIRED, "Room '%s' is priced: watch with a viewer token", room->id);
	} else if(jwt != NULL && (result->code = paystream_metering_begin_locked(viewer, &token)) != 0) {
		g_snprintf(result->text, sizeof(result->text), "%s", result->code == PAYSTREAM_ERROR_INVALID_TOKEN ?
			"Token refused: its budget does not pay for one second" : "The billing spool cannot take new sessions now (full, or the disk failing): try again later");
	} else {
		janus_refcount_increase(&viewer->ref);	/* the room's */
		g_hash_table_insert(room->viewers, viewer->viewer_id, viewer);
		paystream_performer *performer = room->performer;
		if(performer != NULL) {
			paystream_relay_viewer_follow(viewer, performer);
			jsep = paystream_offer_jsep(paystream_negotiate_viewer_offer(viewer, &performer->media, &room->settings));
			paystream_viewer_state_apply(&viewer->state, PAYSTREAM_VIEWER_EV_OFFER);
		} else {
			paystream_viewer_state_apply(&viewer->state, PAYSTREAM_VIEWER_EV_WAIT);
		}
		event = paystream_event_new("watching", room->id);
		json_object_set_new(event, "viewer_id", json_string(viewer->viewer_id));
		json_object_set_new(event, "status", json_string(jsep ? "live" : "waiting"));
		if(viewer->session_id != NULL)
			json_object_set_new(event, "session", json_string(viewer->session_id));
		json_object_set_new(event, "price_per_second", json_integer(room->settings.price_per_second));
		json_object_set_new(event, "currency", json_string(room->settings.currency));
	}
	janus_mutex_unlock(&room->mutex);
	if(result->code == 0) {
		paystream_session_set_viewer(session, viewer);
		if(g_atomic_int_get(&session->destroyed)) {
			/* The handle went away while we worked: its hang-up cleanup may
			 * have run before the viewer was attached, so undo it here. */
			paystream_viewer_remove(viewer, "hangup");
			json_decref(event);
			if(jsep != NULL)
				json_decref(jsep);
			paystream_token_clear(&token);
			janus_refcount_decrease(&viewer->ref);
			janus_refcount_decrease(&room->ref);
			return;
		}
		paystream_push(session, msg->transaction, event, jsep);
		json_t *fields = json_pack("{ss}", "viewer_id", viewer->viewer_id);
		json_object_set_new(fields, "display", viewer->display ? json_string(viewer->display) : json_null());
		paystream_notify(session, "viewer_watching", room->id, fields);
	}
	paystream_token_clear(&token);
	janus_refcount_decrease(&viewer->ref);
	janus_refcount_decrease(&room->ref);
}

/* Apply a state event under the room's lock; FALSE if not allowed now. */
static gboolean paystream_viewer_apply(paystream_viewer *viewer, paystream_viewer_event ev) {
	janus_mutex_lock(&viewer->room->mutex);
	gboolean ok = !g_atomic_int_get(&viewer->destroyed) && paystream_viewer_state_apply(&viewer->state, ev);
	janus_mutex_unlock(&viewer->room->mutex);
	return ok;
}

static void paystream_viewer_keyframe(paystream_viewer *viewer, const char *reason) {
	paystream_performer *performer = paystream_room_performer(viewer->room);
	if(performer != NULL) {
		paystream_relay_keyframe(performer, FALSE, reason);
		janus_refcount_decrease(&performer->ref);
	}
}

static void paystream_start(paystream_message *msg, paystream_viewer *viewer, paystream_result *result) {
	const char *type = json_string_value(json_object_get(msg->jsep, "type"));
	if(type == NULL || strcasecmp(type, "answer") != 0) {
		paystream_fail(result, PAYSTREAM_ERROR_INVALID_JSEP, "start needs the JSEP answer to the plugin's offer");
		return;
	}
	if(!paystream_viewer_apply(viewer, PAYSTREAM_VIEWER_EV_START)) {
		paystream_fail(result, PAYSTREAM_ERROR_WRONG_STATE, "No offer is waiting for an answer");
		return;
	}
	paystream_push(msg->session, msg->transaction, paystream_event_new("started", viewer->room->id), NULL);
	paystream_notify(msg->session, "viewer_started", viewer->room->id, json_pack("{ss}", "viewer_id", viewer->viewer_id));
	if(g_atomic_int_get(&msg->session->pc_up))
		paystream_viewer_keyframe(viewer, "viewer renegotiated");
}

static void paystream_pause_resume(paystream_message *msg, paystream_viewer *viewer, gboolean pause,
		paystream_result *result) {
	if(!pause && g_atomic_int_get(&viewer->stopped)) {
		paystream_fail(result, PAYSTREAM_ERROR_STOPPED, "This viewing session was stopped (%s)",
			viewer->meter.stop_reason ? viewer->meter.stop_reason : "stopped");
		return;
	}
	if(!paystream_viewer_apply(viewer, pause ? PAYSTREAM_VIEWER_EV_PAUSE : PAYSTREAM_VIEWER_EV_RESUME)) {
		paystream_fail(result, PAYSTREAM_ERROR_WRONG_STATE, "'%s' needs a started viewer", msg->spec->name);
		return;
	}
	paystream_push(msg->session, msg->transaction, paystream_event_new(pause ? "paused" : "resumed", viewer->room->id), NULL);
	if(!pause)
		paystream_viewer_keyframe(viewer, "viewer resumed");
}

static void paystream_viewer_configure(paystream_message *msg, paystream_viewer *viewer, paystream_result *result) {
	json_t *substream = json_object_get(msg->body, "substream");
	json_t *temporal = json_object_get(msg->body, "temporal");
	if(json_object_get(msg->body, "bitrate") || json_object_get(msg->body, "keyframe")) {
		paystream_fail(result, PAYSTREAM_ERROR_WRONG_STATE, "'bitrate' and 'keyframe' are performer settings");
		return;
	}
	janus_mutex_lock(&viewer->room->mutex);
	if(json_is_integer(substream)) {
		viewer->substream_target = (int)json_integer_value(substream);
		viewer->sim_context.substream_target = viewer->substream_target;
	}
	if(json_is_integer(temporal)) {
		viewer->temporal_target = (int)json_integer_value(temporal);
		viewer->sim_context.templayer_target = viewer->temporal_target;
	}
	json_t *event = paystream_event_new("configured", viewer->room->id);
	json_object_set_new(event, "substream", json_integer(viewer->substream_target));
	json_object_set_new(event, "temporal", json_integer(viewer->temporal_target));
	janus_mutex_unlock(&viewer->room->mutex);
	paystream_push(msg->session, msg->transaction, event, NULL);
	if(substream != NULL)
		paystream_viewer_keyframe(viewer, "viewer changed substream");
}

static void paystream_refresh(paystream_message *msg, paystream_viewer *viewer, paystream_result *result) {
	paystream_token token;
	const char *jwt = json_string_value(json_object_get(msg->body, "token"));
	if(viewer->session_id == NULL) {
		paystream_fail(result, PAYSTREAM_ERROR_WRONG_STATE, "refresh needs a viewer who watches with a token");
		return;
	}
	result->code = paystream_metering_check_token(jwt, viewer->room->id, PAYSTREAM_TOKEN_ROLE_VIEWER, &token,
		result->text, sizeof(result->text));
	if(result->code != 0)
		return;
	if(strcmp(token.sub, viewer->billing_id) != 0) {
		paystream_fail(result, PAYSTREAM_ERROR_INVALID_TOKEN, "Token refused: it is for another viewer");
		paystream_token_clear(&token);
		return;
	}
	paystream_outbox box = PAYSTREAM_OUTBOX_INIT;
	janus_mutex_lock(&viewer->room->mutex);
	gboolean restarted = paystream_metering_refresh_locked(viewer, &token, &box);
	janus_mutex_unlock(&viewer->room->mutex);
	json_t *event = paystream_event_new("refreshed", viewer->room->id);
	json_object_set_new(event, "exp", json_integer(token.exp));
	json_object_set_new(event, "budget", token.has_budget ? json_integer(token.budget) : json_null());
	json_object_set_new(event, "resumed", json_boolean(restarted));
	paystream_push(msg->session, msg->transaction, event, NULL);
	paystream_outbox_flush(&box);	/* a stop by the new budget, after the answer */
	if(restarted)
		paystream_viewer_keyframe(viewer, "viewer refreshed its token");
	paystream_token_clear(&token);
}

void paystream_viewer_request(paystream_message *msg, paystream_result *result) {
	if(msg->spec->type == PAYSTREAM_REQUEST_WATCH) {
		paystream_watch(msg, result);
		return;
	}
	paystream_viewer *viewer = paystream_session_viewer(msg->session);
	if(viewer == NULL) {
		paystream_fail(result, PAYSTREAM_ERROR_WRONG_STATE, "'%s' needs a handle that watches", msg->spec->name);
		return;
	}
	switch(msg->spec->type) {
		case PAYSTREAM_REQUEST_START:
			paystream_start(msg, viewer, result);
			break;
		case PAYSTREAM_REQUEST_PAUSE:
			paystream_pause_resume(msg, viewer, TRUE, result);
			break;
		case PAYSTREAM_REQUEST_RESUME:
			paystream_pause_resume(msg, viewer, FALSE, result);
			break;
		case PAYSTREAM_REQUEST_CONFIGURE:
			paystream_viewer_configure(msg, viewer, result);
			break;
		case PAYSTREAM_REQUEST_REFRESH:
			paystream_refresh(msg, viewer, result);
			break;
		case PAYSTREAM_REQUEST_TIP:
			paystream_tip_request(msg, viewer, result);
			break;
		case PAYSTREAM_REQUEST_LEAVE:
			paystream_viewer_remove(viewer, "left");
			paystream_push(msg->session, msg->transaction, paystream_event_new("left", viewer->room->id), NULL);
			paystream_push_close(msg->session);
			break;
		default:
			paystream_fail(result, PAYSTREAM_ERROR_WRONG_STATE, "'%s' is not a viewer request", msg->spec->name);
			break;
	}
	janus_refcount_decrease(&viewer->ref);
}

void paystream_viewer_setup_media(paystream_session *session) {
	paystream_viewer *viewer = paystream_session_viewer(session);
	if(viewer == NULL)
		return;
	paystream_viewer_keyframe(viewer, "viewer connected");
	janus_refcount_decrease(&viewer->ref);
}

void paystream_viewer_hangup(paystream_session *session) {
	paystream_viewer *viewer = paystream_session_viewer(session);
	if(viewer == NULL)
		return;
	paystream_viewer_remove(viewer, "hangup");
	janus_refcount_decrease(&viewer->ref);
}

static void paystream_push_layer_event(paystream_viewer *viewer, gpointer data, paystream_outbox *box) {
	if(!g_atomic_int_compare_and_exchange(&viewer->layer_changed, 1, 0))
		return;
	json_t *event = paystream_event_new("simulcast", viewer->room->id);
	json_object_set_new(event, "substream", json_integer(viewer->sim_context.substream));
	json_object_set_new(event, "temporal", json_integer(viewer->sim_context.templayer));
	paystream_outbox_add(box, viewer->session, event, NULL, FALSE);
}

void paystream_viewers_push_layer_events(void) {
	if(g_atomic_int_compare_and_exchange(&paystream_relay_layer_events, 1, 0))
		paystream_rooms_foreach_viewer(paystream_push_layer_event, NULL);
}
