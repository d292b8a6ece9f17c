/* room.c - the registry of rooms and the life of rooms and participants
 * (see room.h). What happens *in* a room (publish, watch, relay) lives in
 * performer.c, viewer.c and relay.c. */
#include "room.h"

#include <string.h>

#include "errors.h"
#include "notify.h"

static GHashTable *paystream_rooms;		/* id -> paystream_room (a reference) */
static janus_mutex paystream_rooms_mutex = JANUS_MUTEX_INITIALIZER;

static void paystream_room_free(const janus_refcount *ref) {
	paystream_room *room = janus_refcount_containerof(ref, paystream_room, ref);
	g_hash_table_destroy(room->viewers);
	paystream_settings_clear(&room->settings);
	json_decref(room->show_other);
	json_decref(room->usage_other);
	g_free(room->id);
	g_free(room);
}

void paystream_room_unref_cb(gpointer room) {
	janus_refcount_decrease(&((paystream_room *)room)->ref);
}

static void paystream_viewer_unref_cb(gpointer viewer) {
	janus_refcount_decrease(&((paystream_viewer *)viewer)->ref);
}

void paystream_rooms_init(void) {
	paystream_rooms = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, paystream_room_unref_cb);
}

void paystream_rooms_deinit(void) {
	janus_mutex_lock(&paystream_rooms_mutex);
	g_hash_table_destroy(paystream_rooms);
	paystream_rooms = NULL;
	janus_mutex_unlock(&paystream_rooms_mutex);
}

paystream_room *paystream_room_new(const paystream_room_settings *settings) {
	paystream_room *room = g_malloc0(sizeof(paystream_room));
	paystream_settings_copy(&room->settings, settings);
	room->id = g_strdup(settings->room);
	janus_mutex_init(&room->mutex);
	room->viewers = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, paystream_viewer_unref_cb);
	room->created = janus_get_real_time();
	janus_refcount_init(&room->ref, paystream_room_free);
	return room;
}

int paystream_rooms_add(paystream_room *room) {
	int rc = 0;
	janus_mutex_lock(&paystream_rooms_mutex);
	if(g_hash_table_contains(paystream_rooms, room->id)) {
		rc = PAYSTREAM_ERROR_ROOM_EXISTS;
	} else {
		janus_refcount_increase(&room->ref);
		g_hash_table_insert(paystream_rooms, room->id, room);
	}
	janus_mutex_unlock(&paystream_rooms_mutex);
	return rc;
}

paystream_room *paystream_rooms_find(const char *id) {
	if(id == NULL)
		return NULL;
	janus_mutex_lock(&paystream_rooms_mutex);
	paystream_room *room = paystream_rooms ? g_hash_table_lookup(paystream_rooms, id) : NULL;
	if(room != NULL)
		janus_refcount_increase(&room->ref);
	janus_mutex_unlock(&paystream_rooms_mutex);
	return room;
}

gboolean paystream_rooms_remove(paystream_room *room) {
	janus_mutex_lock(&paystream_rooms_mutex);
	gboolean found = paystream_rooms && g_hash_table_lookup(paystream_rooms, room->id) == room;
	if(found) {
		g_atomic_int_set(&room->destroyed, 1);
		g_hash_table_remove(paystream_rooms, room->id);
	}
	janus_mutex_unlock(&paystream_rooms_mutex);
	return found;
}

GList *paystream_rooms_list(void) {
	GList *list = NULL;
	janus_mutex_lock(&paystream_rooms_mutex);
	GHashTableIter iter;
	gpointer value;
	g_hash_table_iter_init(&iter, paystream_rooms);
	while(g_hash_table_iter_next(&iter, NULL, &value)) {
		paystream_room *room = value;
		janus_refcount_increase(&room->ref);
		list = g_list_prepend(list, room);
	}
	janus_mutex_unlock(&paystream_rooms_mutex);
	return list;
}

void paystream_rooms_foreach_viewer(paystream_viewer_visit visit, gpointer data) {
	GList *rooms = paystream_rooms_list();
	for(GList *l = rooms; l; l = l->next) {
		paystream_room *room = l->data;
		paystream_outbox box = PAYSTREAM_OUTBOX_INIT;
		janus_mutex_lock(&room->mutex);
		GHashTableIter iter;
		gpointer value;
		g_hash_table_iter_init(&iter, room->viewers);
		while(g_hash_table_iter_next(&iter, NULL, &value))
			visit(value, data, &box);
		janus_mutex_unlock(&room->mutex);
		paystream_outbox_flush(&box);
	}
	g_list_free_full(rooms, paystream_room_unref_cb);
}

static void paystream_performer_free(const janus_refcount *ref) {
	paystream_performer *performer = janus_refcount_containerof(ref, paystream_performer, ref);
	janus_rtp_simulcasting_cleanup(NULL, performer->ssrc, performer->rid, NULL);
	janus_refcount_decrease(&performer->session->ref);
	janus_refcount_decrease(&performer->room->ref);
	g_free(performer->display);
	g_free(performer);
}

paystream_performer *paystream_performer_new(paystream_session *session, paystream_room *room, const char *display) {
	paystream_performer *performer = g_malloc0(sizeof(paystream_performer));
	janus_refcount_increase(&session->ref);
	janus_refcount_increase(&room->ref);
	performer->session = session;
	performer->room = room;
	performer->display = g_strdup(display);
	performer->audio_mindex = -1;
	performer->video_mindex = -1;
	janus_mutex_init(&performer->rid_mutex);
	janus_refcount_init(&performer->ref, paystream_performer_free);
	return performer;
}

static void paystream_viewer_free(const janus_refcount *ref) {
	paystream_viewer *viewer = janus_refcount_containerof(ref, paystream_viewer, ref);
	janus_refcount_decrease(&viewer->session->ref);
	janus_refcount_decrease(&viewer->room->ref);
	paystream_meter_clear(&viewer->meter);
	paystream_record_source_clear(&viewer->record_source);
	g_free(viewer->session_id);
	g_free(viewer->billing_id);
	g_free(viewer->viewer_id);
	g_free(viewer->display);
	g_free(viewer);
}

paystream_viewer *paystream_viewer_new(paystream_session *session, paystream_room *room,
		const char *viewer_id, const char *display) {
	paystream_viewer *viewer = g_malloc0(sizeof(paystream_viewer));
	janus_refcount_increase(&session->ref);
	janus_refcount_increase(&room->ref);
	viewer->session = session;
	viewer->room = room;
	viewer->viewer_id = g_strdup(viewer_id);
	viewer->display = g_strdup(display);
	viewer->joined = janus_get_real_time();
	janus_rtp_switching_context_reset(&viewer->audio_context);
	janus_rtp_switching_context_reset(&viewer->video_context);
	janus_rtp_simulcasting_context_reset(&viewer->sim_context);
	janus_vp8_simulcast_context_reset(&viewer->vp8_context);
	viewer->substream_target = 2;
	viewer->temporal_target = 2;
	viewer->sim_context.substream_target = 2;
	viewer->sim_context.templayer_target = 2;
	janus_refcount_init(&viewer->ref, paystream_viewer_free);
	return viewer;
}

paystream_performer *paystream_room_performer(paystream_room *room) {
	janus_mutex_lock(&room->mutex);
	paystream_performer *performer = room->performer;
	if(performer != NULL)
		janus_refcount_increase(&performer->ref);
	janus_mutex_unlock(&room->mutex);
	return performer;
}
