/* viewer_state.h - the viewer's negotiation state machine.
 *
 * A viewer goes none -> waiting (room offline) or offered (an offer was
 * sent) -> started (its answer arrived). A renegotiation (the performer came
 * back with other codecs) takes a started viewer back to offered. `paused`
 * is orthogonal: it is only meaningful once started and survives a
 * renegotiation. Whether media actually flows also needs the PeerConnection
 * up and a live performer; those live elsewhere (viewer.c, relay.c).
 * Pure: no Janus, no I/O. */
#ifndef PAYSTREAM_VIEWER_STATE_H
#define PAYSTREAM_VIEWER_STATE_H

#include <glib.h>

typedef enum paystream_viewer_phase {
	PAYSTREAM_VIEWER_NONE = 0,
	PAYSTREAM_VIEWER_WAITING,
	PAYSTREAM_VIEWER_OFFERED,
	PAYSTREAM_VIEWER_STARTED,
} paystream_viewer_phase;

typedef enum paystream_viewer_event {
	PAYSTREAM_VIEWER_EV_WAIT,		/* watch while the room is offline */
	PAYSTREAM_VIEWER_EV_OFFER,		/* an offer is sent (watch, live, renegotiation) */
	PAYSTREAM_VIEWER_EV_START,		/* the answer arrived */
	PAYSTREAM_VIEWER_EV_PAUSE,
	PAYSTREAM_VIEWER_EV_RESUME,
} paystream_viewer_event;

typedef struct paystream_viewer_state {
	paystream_viewer_phase phase;
	gboolean paused;
} paystream_viewer_state;

/* Apply ev to s. Returns TRUE and updates s if ev is allowed in s, else
 * returns FALSE and leaves s as it was. */
gboolean paystream_viewer_state_apply(paystream_viewer_state *s, paystream_viewer_event ev);

/* The state as shown to clients: "none", "waiting", "offered", "started" or
 * "paused". */
const char *paystream_viewer_state_name(const paystream_viewer_state *s);

/* Started and not paused: the viewer wants media. */
gboolean paystream_viewer_state_wants_media(const paystream_viewer_state *s);

#endif
