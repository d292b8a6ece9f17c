/* session.h - one Janus handle attached to the plugin.
 *
 * A session is created by create_session and lives until destroy_session,
 * refcounted so that a hang-up racing with a request never frees it under a
 * reader. It has at most one role: performer or viewer (room.h). The role
 * pointers are guarded by the session's own mutex, which is never held while
 * a room's mutex is taken (and vice versa), so the two never deadlock. */
#ifndef PAYSTREAM_SESSION_H
#define PAYSTREAM_SESSION_H

#include <glib.h>

#include <mutex.h>
#include <refcount.h>
#include <plugins/plugin.h>

struct paystream_performer;
struct paystream_viewer;

typedef struct paystream_session {
	janus_plugin_session *handle;
	janus_mutex mutex;				/* guards performer and viewer */
	struct paystream_performer *performer;	/* holds a reference */
	struct paystream_viewer *viewer;		/* holds a reference */
	guint32 sdp_version;			/* o= version of offers we send */
	volatile gint pc_up;			/* setup_media seen, no hang-up since */
	volatile gint has_pc;			/* a JSEP was exchanged: Janus has a PeerConnection */
	volatile gint pc_closing;		/* we asked Janus to close it; its hang-up is still due */
	volatile gint hangups;			/* hangup_media calls so far */
	volatile gint hangingup;
	volatile gint destroyed;
	/* Pushes waiting their turn (notify.c): while pushing is set, every
	 * push to this handle queues here and one thread sends them in order. */
	janus_mutex push_mutex;			/* guards pushes and pushing */
	GQueue pushes;
	gboolean pushing;
	janus_refcount ref;
} paystream_session;

void paystream_sessions_init(void);
void paystream_sessions_deinit(void);

/* Create the session of a new handle; returns 0 or -1. */
int paystream_session_create(janus_plugin_session *handle);
/* The session of a handle with a reference taken, or NULL if gone. */
paystream_session *paystream_session_get(janus_plugin_session *handle);
/* Remove the handle's session from the table (destroy_session). */
paystream_session *paystream_session_remove(janus_plugin_session *handle);

typedef enum paystream_role {
	PAYSTREAM_ROLE_NONE,
	PAYSTREAM_ROLE_PERFORMER,
	PAYSTREAM_ROLE_VIEWER,
} paystream_role;

/* What the handle is now. */
paystream_role paystream_session_role(paystream_session *session);

/* The session's role objects with a reference taken, or NULL. */
struct paystream_performer *paystream_session_performer(paystream_session *session);
struct paystream_viewer *paystream_session_viewer(paystream_session *session);

/* Clear the session's role if it is still this object (drops the
 * session's reference); returns TRUE if it was. */
gboolean paystream_session_clear_performer(paystream_session *session, struct paystream_performer *performer);
gboolean paystream_session_clear_viewer(paystream_session *session, struct paystream_viewer *viewer);
/* Ask Janus to close the handle's PeerConnection now. Until Janus reports
 * the hang-up the handle takes no new role (see paystream_session_closing),
 * so that late hang-up cannot tear down a role taken meanwhile. Use
 * paystream_push_close (notify.h), which waits for the pushes before it. */
void paystream_session_close_pc(paystream_session *session);
/* TRUE while a close asked by the plugin has not been reported yet. */
gboolean paystream_session_closing(paystream_session *session);

/* Give the session a role object (takes a new reference). */
void paystream_session_set_performer(paystream_session *session, struct paystream_performer *performer);
void paystream_session_set_viewer(paystream_session *session, struct paystream_viewer *viewer);

#endif
