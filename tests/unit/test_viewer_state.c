/* test_viewer_state.c - the viewer's negotiation state machine. */
#include "unit.h"

#include "../../plugin/viewer_state.h"

int main(void) {
	no_plan();
	paystream_viewer_state s = { 0 };
	is_str(paystream_viewer_state_name(&s), "none", "starts at none");
	ok(!paystream_viewer_state_apply(&s, PAYSTREAM_VIEWER_EV_START), "no start before an offer");
	ok(!paystream_viewer_state_apply(&s, PAYSTREAM_VIEWER_EV_PAUSE), "no pause before start");
	ok(paystream_viewer_state_apply(&s, PAYSTREAM_VIEWER_EV_WAIT), "watch an offline room");
	is_str(paystream_viewer_state_name(&s), "waiting", "waiting");
	ok(!paystream_viewer_state_wants_media(&s), "a waiting viewer wants no media");
	ok(!paystream_viewer_state_apply(&s, PAYSTREAM_VIEWER_EV_WAIT), "cannot wait twice");
	ok(!paystream_viewer_state_apply(&s, PAYSTREAM_VIEWER_EV_START), "no start while waiting");
	ok(paystream_viewer_state_apply(&s, PAYSTREAM_VIEWER_EV_OFFER), "performer live: offer");
	is_str(paystream_viewer_state_name(&s), "offered", "offered");
	ok(!paystream_viewer_state_apply(&s, PAYSTREAM_VIEWER_EV_RESUME), "no resume before start");
	ok(paystream_viewer_state_apply(&s, PAYSTREAM_VIEWER_EV_START), "answer arrives");
	is_str(paystream_viewer_state_name(&s), "started", "started");
	ok(paystream_viewer_state_wants_media(&s), "a started viewer wants media");
	ok(!paystream_viewer_state_apply(&s, PAYSTREAM_VIEWER_EV_START), "a second answer is refused");
	ok(paystream_viewer_state_apply(&s, PAYSTREAM_VIEWER_EV_PAUSE), "pause");
	is_str(paystream_viewer_state_name(&s), "paused", "paused");
	ok(!paystream_viewer_state_wants_media(&s), "a paused viewer wants no media");
	ok(paystream_viewer_state_apply(&s, PAYSTREAM_VIEWER_EV_PAUSE), "pause is idempotent");
	/* A renegotiation while paused keeps the pause. */
	ok(paystream_viewer_state_apply(&s, PAYSTREAM_VIEWER_EV_OFFER), "renegotiation offer");
	ok(!paystream_viewer_state_wants_media(&s), "no media while the new offer is pending");
	ok(paystream_viewer_state_apply(&s, PAYSTREAM_VIEWER_EV_START), "renegotiation answer");
	is_str(paystream_viewer_state_name(&s), "paused", "still paused after renegotiation");
	ok(paystream_viewer_state_apply(&s, PAYSTREAM_VIEWER_EV_RESUME), "resume");
	ok(paystream_viewer_state_wants_media(&s), "media again after resume");
	return done_testing();
}
