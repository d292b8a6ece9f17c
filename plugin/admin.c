/* admin.c - room management: create, edit, destroy, exists, list,
 * listparticipants, kick. These are synchronous: they answer in the reply
 * to the request, from a client's handle or from the Admin API's
 * message_plugin, and never wait on a PeerConnection.
 *
 * Changes to the set of rooms are serialized by one mutex, so that a check
 * ("no such room yet") and the action that depends on it ("save it to the
 * config file") cannot interleave with another request's. */
#include <string.h>

#include <debug.h>

#include "billing.h"
#include "handlers.h"
#include "ids.h"
#include "metering.h"
#include "plugin.h"
#include "relay.h"
#include "store.h"

static janus_mutex paystream_admin_mutex = JANUS_MUTEX_INITIALIZER;

int paystream_fail(paystream_result *result, int code, const char *format, ...) {
	va_list args;
	va_start(args, format);
	g_vsnprintf(result->text, sizeof(result->text), format, args);
	va_end(args);
	result->code = code;
	return code;
}

/* The room named in body, with a reference, checked against its secret. */
paystream_room *paystream_room_named(json_t *body, paystream_result *result) {
	const char *room_id = json_string_value(json_object_get(body, "room"));
	paystream_room *room = paystream_rooms_find(room_id);
	if(room == NULL)
		paystream_fail(result, PAYSTREAM_ERROR_NO_SUCH_ROOM, "No such room '%s'", room_id);
	return room;
}

static paystream_room *paystream_room_for_manager(json_t *body, paystream_result *result) {
	paystream_room *room = paystream_room_named(body, result);
	if(room == NULL)
		return NULL;
	janus_mutex_lock(&room->mutex);
	gboolean ok = paystream_secret_matches(room->settings.secret, json_string_value(json_object_get(body, "secret")));
	janus_mutex_unlock(&room->mutex);
	if(!ok) {
		paystream_fail(result, PAYSTREAM_ERROR_UNAUTHORIZED, "Wrong or missing secret for room '%s'", room->id);
		janus_refcount_decrease(&room->ref);
		return NULL;
	}
	return room;
}

/* create and stats need the admin_key when the config sets one. */
static gboolean paystream_admin_key_ok(json_t *body, paystream_result *result) {
	if(paystream_general.admin_key != NULL &&
			!paystream_secret_matches(paystream_general.admin_key, json_string_value(json_object_get(body, "admin_key")))) {
		paystream_fail(result, PAYSTREAM_ERROR_UNAUTHORIZED, "Wrong or missing admin_key");
		return FALSE;
	}
	return TRUE;
}

static json_t *paystream_create(json_t *body, paystream_result *result) {
	if(!paystream_admin_key_ok(body, result))
		return NULL;
	paystream_room_settings settings;
	gboolean key_generated = FALSE;
	int rc = paystream_settings_from_create(body, &settings, &key_generated, result->text, sizeof(result->text));
	if(rc != 0) {
		result->code = rc;
		return NULL;
	}
	json_t *reply = NULL;
	janus_mutex_lock(&paystream_admin_mutex);
	paystream_room *existing = paystream_rooms_find(settings.room);
	if(existing != NULL)
		janus_refcount_decrease(&existing->ref);
	if(existing != NULL) {
		paystream_fail(result, PAYSTREAM_ERROR_ROOM_EXISTS, "Room '%s' already exists", settings.room);
	} else if(settings.permanent && paystream_store_save_room(&settings) != 0) {
		paystream_fail(result, PAYSTREAM_ERROR_CONFIG, "Could not save room '%s' to the config file", settings.room);
	} else {
		paystream_room *room = paystream_room_new(&settings);
		paystream_rooms_add(room);
		janus_refcount_decrease(&room->ref);
		reply = paystream_event_new("created", settings.room);
		json_object_set_new(reply, "permanent", json_boolean(settings.permanent));
		if(key_generated)
			json_object_set_new(reply, "stream_key", json_string(settings.stream_key));
		JANUS_LOG(LOG_INFO, "[paystream] created room %s%s\n", settings.room, settings.permanent ? " (permanent)" : "");
		paystream_notify(NULL, "room_created", settings.room, json_pack("{sb}", "permanent", settings.permanent));
	}
	janus_mutex_unlock(&paystream_admin_mutex);
	paystream_settings_clear(&settings);
	return reply;
}

static json_t *paystream_edit(json_t *body, paystream_result *result) {
	paystream_room *room = paystream_room_for_manager(body, result);
	if(room == NULL)
		return NULL;
	json_t *reply = NULL;
	janus_mutex_lock(&paystream_admin_mutex);
	paystream_room_settings edited;
	janus_mutex_lock(&room->mutex);
	paystream_settings_copy(&edited, &room->settings);
	janus_mutex_unlock(&room->mutex);
	int rc = paystream_settings_apply_edit(&edited, body, result->text, sizeof(result->text));
	if(rc != 0) {
		result->code = rc;
	} else if(json_is_true(json_object_get(body, "permanent")) && (edited.permanent = TRUE) &&
			paystream_store_save_room(&edited) != 0) {
		paystream_fail(result, PAYSTREAM_ERROR_CONFIG, "Could not save room '%s' to the config file", room->id);
	} else {
		janus_mutex_lock(&room->mutex);
		paystream_room_settings old = room->settings;
		room->settings = edited;
		memset(&edited, 0, sizeof(edited));
		paystream_performer *performer = room->performer;
		if(performer != NULL && old.bitrate != room->settings.bitrate)
			paystream_relay_send_remb(performer, room->settings.bitrate);
		paystream_metering_currency_changed_locked(room, old.currency);
		janus_mutex_unlock(&room->mutex);
		paystream_settings_clear(&old);
		reply = paystream_event_new("edited", room->id);
	}
	janus_mutex_unlock(&paystream_admin_mutex);
	paystream_settings_clear(&edited);
	janus_refcount_decrease(&room->ref);
	return reply;
}

static json_t *paystream_destroy(json_t *body, paystream_result *result) {
	paystream_room *room = paystream_room_for_manager(body, result);
	if(room == NULL)
		return NULL;
	json_t *reply = NULL;
	janus_mutex_lock(&paystream_admin_mutex);
	if(json_is_true(json_object_get(body, "permanent")) && paystream_store_remove_room(room->id) != 0) {
		paystream_fail(result, PAYSTREAM_ERROR_CONFIG, "Could not remove room '%s' from the config file", room->id);
	} else if(!paystream_rooms_remove(room)) {
		paystream_fail(result, PAYSTREAM_ERROR_NO_SUCH_ROOM, "Room '%s' was destroyed meanwhile", room->id);
	} else {
		/* Empty the room under its lock, then tell everyone outside it. */
		paystream_outbox box = PAYSTREAM_OUTBOX_INIT;
		janus_mutex_lock(&room->mutex);
		paystream_performer *performer = room->performer;
		room->performer = NULL;
		GList *viewers = g_hash_table_get_values(room->viewers);
		for(GList *l = viewers; l; l = l->next) {
			paystream_viewer *viewer = l->data;
			janus_refcount_increase(&viewer->ref);
			paystream_metering_stop_locked(viewer, "room_destroyed", &box);
			paystream_metering_finish_locked(viewer, "room_destroyed");
		}
		g_hash_table_remove_all(room->viewers);
		janus_mutex_unlock(&room->mutex);
		if(performer != NULL) {
			g_atomic_int_set(&performer->live, 0);
			paystream_outbox_add(&box, performer->session, paystream_event_new("destroyed", room->id), NULL, TRUE);
			paystream_session_clear_performer(performer->session, performer);
			paystream_notify(performer->session, "performer_offline", room->id, json_pack("{ss}", "reason", "destroyed"));
			janus_refcount_decrease(&performer->ref);
		}
		for(GList *l = viewers; l; l = l->next) {
			paystream_viewer *viewer = l->data;
			g_atomic_int_set(&viewer->destroyed, 1);
			paystream_outbox_add(&box, viewer->session, paystream_event_new("destroyed", room->id), NULL, TRUE);
			paystream_session_clear_viewer(viewer->session, viewer);
			paystream_notify(viewer->session, "viewer_left", room->id,
				json_pack("{ssss}", "viewer_id", viewer->viewer_id, "reason", "destroyed"));
			janus_refcount_decrease(&viewer->ref);
		}
		g_list_free(viewers);
		paystream_outbox_flush(&box);
		JANUS_LOG(LOG_INFO, "[paystream] destroyed room %s\n", room->id);
		paystream_notify(NULL, "room_destroyed", room->id, NULL);
		reply = paystream_event_new("destroyed", room->id);
	}
	janus_mutex_unlock(&paystream_admin_mutex);
	janus_refcount_decrease(&room->ref);
	return reply;
}

static json_t *paystream_list(void) {
	json_t *list = json_array();
	GList *rooms = paystream_rooms_list();
	for(GList *l = rooms; l; l = l->next) {
		paystream_room *room = l->data;
		janus_mutex_lock(&room->mutex);
		if(!room->settings.is_private) {
			json_t *d = paystream_settings_describe(&room->settings);
			json_object_set_new(d, "live", json_boolean(room->performer != NULL));
			json_object_set_new(d, "viewers", json_integer(g_hash_table_size(room->viewers)));
			json_array_append_new(list, d);
		}
		janus_mutex_unlock(&room->mutex);
	}
	g_list_free_full(rooms, paystream_room_unref_cb);
	json_t *reply = paystream_event_new("success", NULL);
	json_object_set_new(reply, "list", list);
	return reply;
}

static json_t *paystream_participants(json_t *body, paystream_result *result) {
	paystream_room *room = paystream_room_named(body, result);
	if(room == NULL)
		return NULL;
	json_t *reply = paystream_event_new("participants", room->id);
	json_t *viewers = json_array();
	janus_mutex_lock(&room->mutex);
	paystream_performer *performer = room->performer;
	if(performer != NULL) {
		json_t *p = json_object();
		json_object_set_new(p, "display", performer->display ? json_string(performer->display) : json_null());
		json_object_set_new(p, "live", json_boolean(g_atomic_int_get(&performer->live)));
		json_object_set_new(p, "since", json_integer(performer->since));
		json_object_set_new(reply, "performer", p);
	} else {
		json_object_set_new(reply, "performer", json_null());
	}
	GHashTableIter iter;
	gpointer value;
	g_hash_table_iter_init(&iter, room->viewers);
	while(g_hash_table_iter_next(&iter, NULL, &value)) {
		paystream_viewer *viewer = value;
		json_t *v = json_object();
		json_object_set_new(v, "viewer_id", json_string(viewer->viewer_id));
		json_object_set_new(v, "display", viewer->display ? json_string(viewer->display) : json_null());
		json_object_set_new(v, "state", json_string(paystream_viewer_state_name(&viewer->state)));
		json_object_set_new(v, "joined", json_integer(viewer->joined));
		json_t *metering = paystream_metering_describe_locked(viewer);
		if(metering != NULL) {
			json_object_update(v, metering);
			json_decref(metering);
		}
		json_array_append_new(viewers, v);
	}
	janus_mutex_unlock(&room->mutex);
	json_object_set_new(reply, "viewers", viewers);
	janus_refcount_decrease(&room->ref);
	return reply;
}

static json_t *paystream_kick(json_t *body, paystream_result *result) {
	const char *viewer_id = json_string_value(json_object_get(body, "viewer_id"));
	gboolean kick_performer = json_is_true(json_object_get(body, "performer"));
	if(viewer_id == NULL && !kick_performer) {
		paystream_fail(result, PAYSTREAM_ERROR_MISSING_ELEMENT, "kick needs 'viewer_id' or \"performer\": true");
		return NULL;
	}
	paystream_room *room = paystream_room_for_manager(body, result);
	if(room == NULL)
		return NULL;
	paystream_outbox box = PAYSTREAM_OUTBOX_INIT;
	if(kick_performer) {
		paystream_performer *performer = paystream_room_performer(room);
		if(performer == NULL) {
			paystream_fail(result, PAYSTREAM_ERROR_NO_SUCH_PARTICIPANT, "Room '%s' has no live performer", room->id);
		} else {
			paystream_outbox_add(&box, performer->session, paystream_event_new("kicked", room->id), NULL, TRUE);
			paystream_performer_offline(performer, "kicked");
			paystream_session_clear_performer(performer->session, performer);
			janus_refcount_decrease(&performer->ref);
		}
	} else {
		janus_mutex_lock(&room->mutex);
		paystream_viewer *viewer = g_hash_table_lookup(room->viewers, viewer_id);
		if(viewer != NULL)
			janus_refcount_increase(&viewer->ref);
		janus_mutex_unlock(&room->mutex);
		if(viewer == NULL) {
			paystream_fail(result, PAYSTREAM_ERROR_NO_SUCH_PARTICIPANT, "No viewer '%s' in room '%s'", viewer_id, room->id);
		} else {
			paystream_outbox_add(&box, viewer->session, paystream_event_new("kicked", room->id), NULL, TRUE);
			paystream_viewer_remove(viewer, "kicked");
			janus_refcount_decrease(&viewer->ref);
		}
	}
	paystream_outbox_flush(&box);
	janus_refcount_decrease(&room->ref);
	return result->code == 0 ? paystream_event_new("success", NULL) : NULL;
}

json_t *paystream_admin_request(const paystream_request_spec *spec, json_t *body) {
	paystream_result result = { 0 };
	json_t *reply = NULL;
	switch(spec->type) {
		case PAYSTREAM_REQUEST_CREATE:
			reply = paystream_create(body, &result);
			break;
		case PAYSTREAM_REQUEST_EDIT:
			reply = paystream_edit(body, &result);
			break;
		case PAYSTREAM_REQUEST_DESTROY:
			reply = paystream_destroy(body, &result);
			break;
		case PAYSTREAM_REQUEST_EXISTS: {
			const char *room_id = json_string_value(json_object_get(body, "room"));
			paystream_room *room = paystream_rooms_find(room_id);
			reply = paystream_event_new("success", room_id);
			json_object_set_new(reply, "exists", json_boolean(room != NULL));
			if(room != NULL)
				janus_refcount_decrease(&room->ref);
			break;
		}
		case PAYSTREAM_REQUEST_LIST:
			reply = paystream_list();
			break;
		case PAYSTREAM_REQUEST_LISTPARTICIPANTS:
			reply = paystream_participants(body, &result);
			break;
		case PAYSTREAM_REQUEST_KICK:
			reply = paystream_kick(body, &result);
			break;
		case PAYSTREAM_REQUEST_STATS:
			if(paystream_admin_key_ok(body, &result)) {
				reply = paystream_event_new("stats", NULL);
				json_object_set_new(reply, "billing", paystream_billing_stats());
				GList *rooms = paystream_rooms_list();
				json_object_set_new(reply, "rooms", json_integer(g_list_length(rooms)));
				g_list_free_full(rooms, paystream_room_unref_cb);
			}
			break;
		default:
			paystream_fail(&result, PAYSTREAM_ERROR_INVALID_REQUEST, "'%s' is not a room management request", spec->name);
			break;
	}
	if(reply == NULL)
		reply = paystream_error_json(result.code ? result.code : PAYSTREAM_ERROR_INTERNAL, result.text);
	return reply;
}

int paystream_admin_load_rooms(void) {
	json_t *entries = paystream_store_rooms();
	size_t i;
	json_t *entry;
	int loaded = 0;
	json_array_foreach(entries, i, entry) {
		paystream_room_settings settings;
		char error[PAYSTREAM_ERROR_TEXT_LEN];
		if(paystream_settings_from_config(entry, &settings, error, sizeof(error)) != 0) {
			JANUS_LOG(LOG_ERR, "[paystream] skipping a room in the config file: %s\n", error);
			continue;
		}
		paystream_room *room = paystream_room_new(&settings);
		if(paystream_rooms_add(room) != 0)
			JANUS_LOG(LOG_ERR, "[paystream] skipping a second room '%s' in the config file\n", settings.room);
		else
			loaded++;
		janus_refcount_decrease(&room->ref);
		paystream_settings_clear(&settings);
	}
	json_decref(entries);
	return loaded;
}
