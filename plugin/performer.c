/* performer.c - the performer's requests: publish (with takeover),
 * configure, unpublish, leave, and what a performer's PeerConnection coming
 * up or going away means for the room.
 *
 * A performer is the room's live performer from the moment its offer is
 * answered until it unpublishes, leaves, hangs up, is kicked or replaced.
 * Viewers are told in the same critical section that swaps the room's
 * performer, so none of them can miss the switch. */
#include <string.h>

#include <debug.h>

#include "handlers.h"
#include "ids.h"
#include "metering.h"
#include "negotiate.h"
#include "plugin.h"
#include "relay.h"

static void paystream_notify_performer_live(paystream_performer *performer) {
	if(!paystream_notify_enabled())
		return;
	json_t *fields = json_object();
	json_object_set_new(fields, "display", performer->display ? json_string(performer->display) : json_null());
	json_object_set_new(fields, "audiocodec", performer->media.acodec != JANUS_AUDIOCODEC_NONE ?
		json_string(janus_audiocodec_name(performer->media.acodec)) : json_null());
	json_object_set_new(fields, "videocodec", performer->media.vcodec != JANUS_VIDEOCODEC_NONE ?
		json_string(janus_videocodec_name(performer->media.vcodec)) : json_null());
	json_object_set_new(fields, "simulcast", json_boolean(performer->simulcast));
	paystream_notify(performer->session, "performer_live", performer->room->id, fields);
}

void paystream_performer_offline(paystream_performer *performer, const char *reason) {
	paystream_room *room = performer->room;
	paystream_outbox box = PAYSTREAM_OUTBOX_INIT;
	gboolean was_live = FALSE;
	janus_mutex_lock(&room->mutex);
	if(room->performer == performer) {
		room->performer = NULL;
		was_live = TRUE;
		GHashTableIter iter;
		gpointer value;
		g_hash_table_iter_init(&iter, room->viewers);
		while(g_hash_table_iter_next(&iter, NULL, &value)) {
			paystream_viewer *viewer = value;
			paystream_outbox_add(&box, viewer->session, paystream_event_new("offline", room->id), NULL, FALSE);
		}
	}
	g_atomic_int_set(&performer->live, 0);
	janus_mutex_unlock(&room->mutex);
	paystream_outbox_flush(&box);
	if(was_live) {
		JANUS_LOG(LOG_INFO, "[paystream] room %s is offline (%s)\n", room->id, reason);
		paystream_notify(performer->session, "performer_offline", room->id,
			json_pack("{ss}", "reason", reason));
		/* The room's reference. */
		janus_refcount_decrease(&performer->ref);
	}
}

static void paystream_publish(paystream_message *msg, paystream_result *result) {
	paystream_session *session = msg->session;
	json_t *body = msg->body;
	/* A hang-up of this offer's PeerConnection while we work is noticed below. */
	gint hangups = g_atomic_int_get(&session->hangups);
	if(paystream_session_role(session) == PAYSTREAM_ROLE_VIEWER) {
		paystream_fail(result, PAYSTREAM_ERROR_WRONG_STATE, "This handle is watching: leave first, or publish from another handle");
		return;
	}
	paystream_performer *current = paystream_session_performer(session);
	if(current != NULL) {
		gboolean live = g_atomic_int_get(&current->live);
		janus_refcount_decrease(&current->ref);
		if(live) {
			paystream_fail(result, PAYSTREAM_ERROR_WRONG_STATE, "Already publishing");
			return;
		}
	}
	const char *type = json_string_value(json_object_get(msg->jsep, "type"));
	const char *sdp = json_string_value(json_object_get(msg->jsep, "sdp"));
	if(type == NULL || strcasecmp(type, "offer") != 0 || sdp == NULL) {
		paystream_fail(result, PAYSTREAM_ERROR_INVALID_JSEP, "publish needs a JSEP offer");
		return;
	}
	paystream_room *room = paystream_room_named(body, result);
	if(room == NULL)
		return;
	paystream_room_settings settings;
	janus_mutex_lock(&room->mutex);
	paystream_settings_copy(&settings, &room->settings);
	gboolean present = (room->performer != NULL);
	janus_mutex_unlock(&room->mutex);
	gboolean takeover = json_is_true(json_object_get(body, "takeover"));
	paystream_performer *performer = NULL;
	char *answer = NULL;
	/* The stream key, or a publisher token for this room standing in for it. */
	const char *stream_key = json_string_value(json_object_get(body, "stream_key"));
	const char *jwt = json_string_value(json_object_get(body, "token"));
	if(stream_key == NULL && jwt == NULL) {
		paystream_fail(result, PAYSTREAM_ERROR_MISSING_ELEMENT, "publish needs 'stream_key' or a publisher 'token'");
		goto done;
	}
	if(stream_key != NULL && !paystream_secret_matches(settings.stream_key, stream_key)) {
		paystream_fail(result, PAYSTREAM_ERROR_WRONG_STREAM_KEY, "Wrong stream key");
		goto done;
	}
	if(stream_key == NULL) {
		paystream_token token;
		result->code = paystream_metering_check_token(jwt, room->id, PAYSTREAM_TOKEN_ROLE_PUBLISHER, &token,
			result->text, sizeof(result->text));
		paystream_token_clear(&token);
		if(result->code != 0)
			goto done;
	}
	if(present && !takeover) {
		paystream_fail(result, PAYSTREAM_ERROR_PERFORMER_PRESENT,
			"Room '%s' already has a live performer (publish with \"takeover\": true to replace it)", room->id);
		goto done;
	}
	performer = paystream_performer_new(session, room, json_string_value(json_object_get(body, "display")));
	json_t *bitrate = json_object_get(body, "bitrate");
	if(json_is_integer(bitrate))
		g_atomic_int_set(&performer->bitrate, (gint)json_integer_value(bitrate));
	int rc = paystream_negotiate_publish(performer, &settings, sdp, json_object_get(msg->jsep, "simulcast"),
		&answer, result->text, sizeof(result->text));
	if(rc != 0) {
		result->code = rc;
		goto done;
	}

	paystream_outbox box = PAYSTREAM_OUTBOX_INIT;
	janus_mutex_lock(&room->mutex);
	paystream_performer *old = room->performer;
	if(g_atomic_int_get(&room->destroyed) || (old != NULL && !takeover)) {
		janus_mutex_unlock(&room->mutex);
		if(old != NULL)
			paystream_fail(result, PAYSTREAM_ERROR_PERFORMER_PRESENT, "Room '%s' already has a live performer", room->id);
		else
			paystream_fail(result, PAYSTREAM_ERROR_NO_SUCH_ROOM, "Room '%s' was destroyed", room->id);
		goto done;
	}
	janus_refcount_increase(&performer->ref);	/* the room's */
	if(old == NULL) {
		/* A new show (a takeover continues the current one). */
		room->show_seconds = 0;
		room->show_amount = 0;
		g_clear_pointer(&room->show_other, json_decref);
	}
	room->performer = performer;
	performer->since = janus_get_real_time();
	g_atomic_int_set(&performer->live, 1);
	if(old != NULL)
		g_atomic_int_set(&old->live, 0);
	paystream_viewers_performer_live(room, performer, &box);
	janus_mutex_unlock(&room->mutex);

	paystream_session_set_performer(session, performer);
	if(g_atomic_int_get(&session->destroyed) || g_atomic_int_get(&session->hangups) != hangups) {
		/* As in watch: the handle's hang-up may have missed this performer. */
		paystream_performer_offline(performer, "hangup");
		paystream_session_clear_performer(session, performer);
	}
	json_t *event = paystream_event_new("published", room->id);
	json_object_set_new(event, "audiocodec", performer->media.acodec != JANUS_AUDIOCODEC_NONE ?
		json_string(janus_audiocodec_name(performer->media.acodec)) : json_null());
	json_object_set_new(event, "videocodec", performer->media.vcodec != JANUS_VIDEOCODEC_NONE ?
		json_string(janus_videocodec_name(performer->media.vcodec)) : json_null());
	json_object_set_new(event, "simulcast", json_boolean(performer->simulcast));
	paystream_push(session, msg->transaction, event, json_pack("{ssss}", "type", "answer", "sdp", answer));
	if(old != NULL) {
		JANUS_LOG(LOG_INFO, "[paystream] performer of room %s taken over\n", room->id);
		paystream_outbox_add(&box, old->session, paystream_event_new("replaced", room->id), NULL, TRUE);
		paystream_session_clear_performer(old->session, old);
		paystream_notify(old->session, "performer_offline", room->id, json_pack("{ss}", "reason", "replaced"));
		janus_refcount_decrease(&old->ref);	/* was the room's */
	}
	paystream_outbox_flush(&box);
	JANUS_LOG(LOG_INFO, "[paystream] room %s is live (%s/%s%s)\n", room->id,
		janus_audiocodec_name(performer->media.acodec), janus_videocodec_name(performer->media.vcodec),
		performer->simulcast ? ", simulcast" : "");
	paystream_notify_performer_live(performer);
	if(g_atomic_int_get(&session->pc_up))
		paystream_performer_setup_media(session);
done:
	g_free(answer);
	if(performer != NULL)
		janus_refcount_decrease(&performer->ref);
	paystream_settings_clear(&settings);
	janus_refcount_decrease(&room->ref);
}

/* The bitrate cap by REMB, reading the room's under its lock. */
static void paystream_performer_send_remb(paystream_performer *performer) {
	janus_mutex_lock(&performer->room->mutex);
	guint32 room_bitrate = performer->room->settings.bitrate;
	janus_mutex_unlock(&performer->room->mutex);
	paystream_relay_send_remb(performer, room_bitrate);
}

/* unpublish and leave: the room goes offline and the PeerConnection closes. */
static void paystream_unpublish(paystream_message *msg, paystream_performer *performer, const char *reason) {
	paystream_performer_offline(performer, reason);
	paystream_session_clear_performer(msg->session, performer);
	paystream_push(msg->session, msg->transaction, paystream_event_new(reason, performer->room->id), NULL);
	paystream_push_close(msg->session);
}

static void paystream_performer_configure(paystream_message *msg, paystream_performer *performer) {
	json_t *bitrate = json_object_get(msg->body, "bitrate");
	if(json_is_integer(bitrate)) {
		g_atomic_int_set(&performer->bitrate, (gint)json_integer_value(bitrate));
		paystream_performer_send_remb(performer);
	}
	if(json_is_true(json_object_get(msg->body, "keyframe")))
		paystream_relay_keyframe(performer, TRUE, "asked by the performer");
	paystream_push(msg->session, msg->transaction, paystream_event_new("configured", performer->room->id), NULL);
}

void paystream_performer_request(paystream_message *msg, paystream_result *result) {
	if(msg->spec->type == PAYSTREAM_REQUEST_PUBLISH) {
		paystream_publish(msg, result);
		return;
	}
	paystream_performer *performer = paystream_session_performer(msg->session);
	if(performer == NULL) {
		paystream_fail(result, PAYSTREAM_ERROR_WRONG_STATE, "'%s' needs a handle that publishes", msg->spec->name);
		return;
	}
	switch(msg->spec->type) {
		case PAYSTREAM_REQUEST_CONFIGURE:
			paystream_performer_configure(msg, performer);
			break;
		case PAYSTREAM_REQUEST_UNPUBLISH:
			paystream_unpublish(msg, performer, "unpublished");
			break;
		case PAYSTREAM_REQUEST_LEAVE:
			paystream_unpublish(msg, performer, "left");
			break;
		default:
			paystream_fail(result, PAYSTREAM_ERROR_WRONG_STATE, "'%s' is not a performer request", msg->spec->name);
			break;
	}
	janus_refcount_decrease(&performer->ref);
}

void paystream_performer_setup_media(paystream_session *session) {
	paystream_performer *performer = paystream_session_performer(session);
	if(performer == NULL)
		return;
	paystream_performer_send_remb(performer);
	paystream_relay_keyframe(performer, TRUE, "performer connected");
	janus_refcount_decrease(&performer->ref);
}

void paystream_performer_hangup(paystream_session *session) {
	paystream_performer *performer = paystream_session_performer(session);
	if(performer == NULL)
		return;
	paystream_performer_offline(performer, "hangup");
	paystream_session_clear_performer(session, performer);
	janus_refcount_decrease(&performer->ref);
}
