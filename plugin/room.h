/* room.h - rooms, their one performer and their viewers.
 *
 * A room is the unit of everything: settings (settings.h), at most one live
 * performer, and a table of viewers by viewer_id. Each room has its own
 * mutex; it guards the performer pointer, the viewer table, the settings and
 * every viewer's negotiation state and relay contexts, which is what lets
 * the relay (relay.c) walk the viewers of one room without any plugin-wide
 * lock. The registry of rooms (a table by id) has a mutex of its own that the
 * media path never takes. Lock order: registry, then room. */
#ifndef PAYSTREAM_ROOM_H
#define PAYSTREAM_ROOM_H

#include <glib.h>
#include <jansson.h>

#include <mutex.h>
#include <refcount.h>
#include <rtp.h>
#include <utils.h>

#include "meter.h"
#include "records.h"
#include "session.h"
#include "settings.h"
#include "viewer_state.h"

struct paystream_room;

/* What the performer publishes: negotiated once per publish. */
typedef struct paystream_media {
	janus_audiocodec acodec;	/* JANUS_AUDIOCODEC_NONE: no audio */
	janus_videocodec vcodec;	/* JANUS_VIDEOCODEC_NONE: no video */
	char audio_fmtp[64];		/* opus options kept end to end */
	char video_profile[64];		/* H.264 profile-level-id or VP9 profile, "" if none */
} paystream_media;

typedef struct paystream_performer {
	paystream_session *session;	/* holds a reference */
	struct paystream_room *room;	/* holds a reference */
	char *display;
	gint64 since;				/* real time of publish, us */
	paystream_media media;
	int audio_mindex, video_mindex;	/* in the performer's PeerConnection, -1 if none */
	/* Simulcast: either SSRCs or rids identify the substreams. */
	gboolean simulcast;
	uint32_t ssrc[3];
	char *rid[3];
	int rid_ext_id;
	janus_mutex rid_mutex;
	/* Keyframe requests and REMB, touched only on the media path of this
	 * performer or under the room mutex. */
	gint64 last_keyframe_request;	/* monotonic us, read and written atomically */
	volatile gint keyframe_pending;	/* a request was throttled: send it when allowed */
	gint64 last_remb;
	volatile gint bitrate;		/* 0: the room's */
	volatile gint live;			/* the room's performer: media is relayed */
	volatile gint destroyed;
	janus_refcount ref;
} paystream_performer;

typedef struct paystream_viewer {
	paystream_session *session;	/* holds a reference */
	struct paystream_room *room;	/* holds a reference */
	char *viewer_id;
	char *display;
	gint64 joined;				/* real time, us */
	/* Below: guarded by room->mutex. */
	paystream_viewer_state state;
	paystream_media media;		/* what this viewer's last offer carried */
	gboolean has_audio, has_video;	/* m-lines active in that offer */
	int audio_pt, video_pt;		/* payload types of that offer: the relay rewrites to them */
	janus_rtp_switching_context audio_context, video_context;
	janus_rtp_simulcasting_context sim_context;
	janus_vp8_simulcast_context vp8_context;
	int substream_target, temporal_target;
	volatile gint layer_changed;	/* the relayed simulcast layer changed: tell the viewer */
	/* Metering (metering.c), for viewers with a token; guarded by room->mutex. */
	gboolean metered;			/* a priced room: seconds are billed */
	gboolean finished;			/* session_end recorded */
	char *session_id;			/* this viewing session, in every record */
	char *billing_id;			/* who pays: the token's sub */
	gint64 token_exp;			/* unix seconds */
	paystream_meter meter;
	paystream_record_source record_source;	/* the session's ids as JSON text (metered only) */
	gint64 last_record_ms;		/* when the last tick record was taken */
	guint32 ticks_since_event;	/* counted seconds since the last `tick` event */
	gint64 tip_allowance_ms;	/* tips' rate limit (tips.c) */
	paystream_media_marks media_marks;	/* the seconds the relay sent media in (meter.h): marked by
									 * the relay, read by the ticker, both under the room's mutex */
	guint64 ticked_to;			/* the ticker's seconds [.., ticked_to) are accounted for */
	guint64 relay_until;		/* metered: the relay sends only in seconds before this one
								 * (what the budget and the token's expiry still pay for),
								 * so a late ticker cannot let a session overrun them */
	volatile gint stopped;		/* metering stopped: no more media */
	volatile gint destroyed;
	janus_refcount ref;
} paystream_viewer;

/* Audio is always m-line 0 and video m-line 1 of a viewer's PeerConnection. */
#define PAYSTREAM_VIEWER_AUDIO_MINDEX 0
#define PAYSTREAM_VIEWER_VIDEO_MINDEX 1

typedef struct paystream_room {
	char *id;
	janus_mutex mutex;
	paystream_room_settings settings;
	paystream_performer *performer;	/* the live performer, holds a reference */
	GHashTable *viewers;			/* viewer_id -> paystream_viewer (a reference) */
	gint64 created;
	/* This show (since the performer went live), for `earnings`; room->mutex.
	 * Amounts are in the room's currency; sessions that started before a
	 * new_currency edit are billed in theirs, summed apart by currency in
	 * the *_other objects ({"<currency>": amount}, NULL when none). */
	gint64 show_seconds, show_amount;
	json_t *show_other;
	gint64 usage_seconds, usage_amount;	/* since the last summary to event handlers */
	json_t *usage_other;
	guint32 ticks_since_earnings;
	volatile gint destroyed;
	janus_refcount ref;
} paystream_room;

void paystream_rooms_init(void);
void paystream_rooms_deinit(void);

/* A new room from settings (copied); not yet registered. */
paystream_room *paystream_room_new(const paystream_room_settings *settings);
/* Register a room; returns 0, or PAYSTREAM_ERROR_ROOM_EXISTS. */
int paystream_rooms_add(paystream_room *room);
/* The room with that id, with a reference taken, or NULL. */
paystream_room *paystream_rooms_find(const char *id);
/* Unregister a room (after this no one finds it); returns TRUE if it was there. */
gboolean paystream_rooms_remove(paystream_room *room);
/* Every registered room, each with a reference taken; free with
 * g_list_free_full(list, paystream_room_unref_cb). */
GList *paystream_rooms_list(void);
void paystream_room_unref_cb(gpointer room);

/* Call visit for every viewer of every room, with that room's lock held;
 * events queued in box are pushed after each room's lock is released. */
struct paystream_outbox;
typedef void (*paystream_viewer_visit)(paystream_viewer *viewer, gpointer data, struct paystream_outbox *box);
void paystream_rooms_foreach_viewer(paystream_viewer_visit visit, gpointer data);

/* Constructors and reference helpers for participants. */
paystream_performer *paystream_performer_new(paystream_session *session, paystream_room *room, const char *display);
paystream_viewer *paystream_viewer_new(paystream_session *session, paystream_room *room,
	const char *viewer_id, const char *display);

/* The room's live performer with a reference taken, or NULL. */
paystream_performer *paystream_room_performer(paystream_room *room);

#endif
