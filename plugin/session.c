/* session.c - the table of handles and their role pointers (see session.h).
 *
 * The table is only used on the signalling path (create, destroy, requests);
 * the media path reaches its session through handle->plugin_handle. */
#include "session.h"

#include <debug.h>

#include "plugin.h"
#include "room.h"

static GHashTable *paystream_sessions;	/* janus_plugin_session -> paystream_session */
static janus_mutex paystream_sessions_mutex = JANUS_MUTEX_INITIALIZER;

static void paystream_session_free(const janus_refcount *ref) {
	paystream_session *session = janus_refcount_containerof(ref, paystream_session, ref);
	janus_refcount_decrease(&session->handle->ref);
	g_free(session);
}

static void paystream_session_table_unref(gpointer data) {
	paystream_session *session = data;
	janus_refcount_decrease(&session->ref);
}

void paystream_sessions_init(void) {
	paystream_sessions = g_hash_table_new_full(NULL, NULL, NULL, paystream_session_table_unref);
}

void paystream_sessions_deinit(void) {
	janus_mutex_lock(&paystream_sessions_mutex);
	/* Janus's handle threads run until the process exits and may still be
	 * inside a media callback that passed its running check (plugin.c):
	 * each session is marked destroyed and its memory left to the exit, not
	 * freed under that callback. */
	GHashTableIter iter;
	gpointer value;
	g_hash_table_iter_init(&iter, paystream_sessions);
	while(g_hash_table_iter_next(&iter, NULL, &value)) {
		g_atomic_int_set(&((paystream_session *)value)->destroyed, 1);
		g_hash_table_iter_steal(&iter);
	}
	g_hash_table_destroy(paystream_sessions);
	paystream_sessions = NULL;
	janus_mutex_unlock(&paystream_sessions_mutex);
}

int paystream_session_create(janus_plugin_session *handle) {
	paystream_session *session = g_malloc0(sizeof(paystream_session));
	session->handle = handle;
	janus_mutex_init(&session->mutex);
	janus_mutex_init(&session->push_mutex);
	g_queue_init(&session->pushes);
	janus_refcount_init(&session->ref, paystream_session_free);
	janus_refcount_increase(&handle->ref);
	handle->plugin_handle = session;
	janus_mutex_lock(&paystream_sessions_mutex);
	g_hash_table_insert(paystream_sessions, handle, session);
	janus_mutex_unlock(&paystream_sessions_mutex);
	return 0;
}

paystream_session *paystream_session_get(janus_plugin_session *handle) {
	janus_mutex_lock(&paystream_sessions_mutex);
	paystream_session *session = paystream_sessions ? g_hash_table_lookup(paystream_sessions, handle) : NULL;
	if(session != NULL && !g_atomic_int_get(&session->destroyed)) {
		janus_refcount_increase(&session->ref);
	} else {
		session = NULL;
	}
	janus_mutex_unlock(&paystream_sessions_mutex);
	return session;
}

paystream_session *paystream_session_remove(janus_plugin_session *handle) {
	janus_mutex_lock(&paystream_sessions_mutex);
	paystream_session *session = paystream_sessions ? g_hash_table_lookup(paystream_sessions, handle) : NULL;
	if(session != NULL && g_atomic_int_compare_and_exchange(&session->destroyed, 0, 1)) {
		/* The caller gets the table's reference. */
		g_hash_table_steal(paystream_sessions, handle);
	} else {
		session = NULL;
	}
	janus_mutex_unlock(&paystream_sessions_mutex);
	return session;
}

paystream_role paystream_session_role(paystream_session *session) {
	janus_mutex_lock(&session->mutex);
	paystream_role role = session->performer ? PAYSTREAM_ROLE_PERFORMER :
		(session->viewer ? PAYSTREAM_ROLE_VIEWER : PAYSTREAM_ROLE_NONE);
	janus_mutex_unlock(&session->mutex);
	return role;
}

paystream_performer *paystream_session_performer(paystream_session *session) {
	janus_mutex_lock(&session->mutex);
	paystream_performer *performer = session->performer;
	if(performer != NULL)
		janus_refcount_increase(&performer->ref);
	janus_mutex_unlock(&session->mutex);
	return performer;
}

paystream_viewer *paystream_session_viewer(paystream_session *session) {
	janus_mutex_lock(&session->mutex);
	paystream_viewer *viewer = session->viewer;
	if(viewer != NULL)
		janus_refcount_increase(&viewer->ref);
	janus_mutex_unlock(&session->mutex);
	return viewer;
}

gboolean paystream_session_clear_performer(paystream_session *session, paystream_performer *performer) {
	janus_mutex_lock(&session->mutex);
	gboolean was = (session->performer == performer && performer != NULL);
	if(was)
		session->performer = NULL;
	janus_mutex_unlock(&session->mutex);
	if(was)
		janus_refcount_decrease(&performer->ref);
	return was;
}

gboolean paystream_session_clear_viewer(paystream_session *session, paystream_viewer *viewer) {
	janus_mutex_lock(&session->mutex);
	gboolean was = (session->viewer == viewer && viewer != NULL);
	if(was)
		session->viewer = NULL;
	janus_mutex_unlock(&session->mutex);
	if(was)
		janus_refcount_decrease(&viewer->ref);
	return was;
}

void paystream_session_close_pc(paystream_session *session) {
	if(g_atomic_int_get(&session->destroyed))
		return;
	if(g_atomic_int_get(&session->has_pc))
		g_atomic_int_set(&session->pc_closing, 1);
	paystream_gateway->close_pc(session->handle);
}

gboolean paystream_session_closing(paystream_session *session) {
	return g_atomic_int_get(&session->pc_closing);
}

void paystream_session_set_performer(paystream_session *session, paystream_performer *performer) {
	janus_refcount_increase(&performer->ref);
	janus_mutex_lock(&session->mutex);
	paystream_performer *old = session->performer;
	session->performer = performer;
	janus_mutex_unlock(&session->mutex);
	/* A new role on a new PeerConnection: its hang-up must be seen. */
	g_atomic_int_set(&session->hangingup, 0);
	if(old != NULL)
		janus_refcount_decrease(&old->ref);
}

void paystream_session_set_viewer(paystream_session *session, paystream_viewer *viewer) {
	janus_refcount_increase(&viewer->ref);
	janus_mutex_lock(&session->mutex);
	paystream_viewer *old = session->viewer;
	session->viewer = viewer;
	janus_mutex_unlock(&session->mutex);
	g_atomic_int_set(&session->hangingup, 0);
	if(old != NULL)
		janus_refcount_decrease(&old->ref);
}
