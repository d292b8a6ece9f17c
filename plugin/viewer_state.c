/* viewer_state.c - transitions of the viewer state machine (see viewer_state.h). */
#include "viewer_state.h"

gboolean paystream_viewer_state_apply(paystream_viewer_state *s, paystream_viewer_event ev) {
	switch(ev) {
		case PAYSTREAM_VIEWER_EV_WAIT:
			if(s->phase != PAYSTREAM_VIEWER_NONE)
				return FALSE;
			s->phase = PAYSTREAM_VIEWER_WAITING;
			return TRUE;
		case PAYSTREAM_VIEWER_EV_OFFER:
			/* Re-offering while an offer is pending replaces it. */
			s->phase = PAYSTREAM_VIEWER_OFFERED;
			return TRUE;
		case PAYSTREAM_VIEWER_EV_START:
			if(s->phase != PAYSTREAM_VIEWER_OFFERED)
				return FALSE;
			s->phase = PAYSTREAM_VIEWER_STARTED;
			return TRUE;
		case PAYSTREAM_VIEWER_EV_PAUSE:
			if(s->phase != PAYSTREAM_VIEWER_STARTED)
				return FALSE;
			s->paused = TRUE;
			return TRUE;
		case PAYSTREAM_VIEWER_EV_RESUME:
			if(s->phase != PAYSTREAM_VIEWER_STARTED)
				return FALSE;
			s->paused = FALSE;
			return TRUE;
	}
	return FALSE;
}

const char *paystream_viewer_state_name(const paystream_viewer_state *s) {
	switch(s->phase) {
		case PAYSTREAM_VIEWER_NONE:
			return "none";
		case PAYSTREAM_VIEWER_WAITING:
			return "waiting";
		case PAYSTREAM_VIEWER_OFFERED:
			return "offered";
		case PAYSTREAM_VIEWER_STARTED:
			return s->paused ? "paused" : "started";
	}
	return "none";
}

gboolean paystream_viewer_state_wants_media(const paystream_viewer_state *s) {
	return s->phase == PAYSTREAM_VIEWER_STARTED && !s->paused;
}
