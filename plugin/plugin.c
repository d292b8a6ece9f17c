/* plugin.c - the Janus glue: the plugin descriptor and callback table,
 * init and destroy, handles coming and going, and the handler thread that
 * runs asynchronous requests in arrival order.
 *
 * Nothing here knows what a room or a viewer does: requests are validated
 * (request.c) and dispatched to admin.c (room management, answered at once),
 * performer.c or viewer.c (answered by events); media callbacks go to
 * relay.c. The shape follows Janus's own plugins: sessions refcounted so a
 * hang-up racing with a request is harmless, one queue, one thread. */
#include "plugin.h"

#include <string.h>

#include <debug.h>
#include <utils.h>

#include "billing.h"
#include "errors.h"
#include "handlers.h"
#include "metering.h"
#include "relay.h"
#include "request.h"
#include "session.h"
#include "store.h"
#include "tips.h"

#if JANUS_PLUGIN_API_VERSION < 100
#error "paystream needs Janus 1.0 or later (plugin API 100+)"
#endif

janus_callbacks *paystream_gateway = NULL;
paystream_general_settings paystream_general;

static volatile gint paystream_initialized = 0, paystream_stopping = 0;
static GThread *paystream_handler_thread;
static GAsyncQueue *paystream_messages;
/* Pushed to the queue to stop the handler thread. */
static paystream_message paystream_exit_message;

gboolean paystream_running(void) {
	return g_atomic_int_get(&paystream_initialized) && !g_atomic_int_get(&paystream_stopping);
}

/* Janus calls destroy() without waiting for request threads that are
 * already inside one of our callbacks (it frees its request pool without
 * waiting), so a callback that passed the running check could still be
 * using the message queue, the rooms or the spool while destroy frees them.
 * Every callback but the media ones counts itself in; destroy raises
 * "stopping", then waits for the count to drop to zero before it tears
 * anything down. (Both sides use full-barrier atomics: either the callback
 * sees "stopping", or destroy sees it counted.) The media callbacks stay
 * off this shared counter: they touch only their session and its role,
 * which destroy marks and leaves to the process's exit (session.c). */
static volatile gint paystream_callbacks_inside = 0;

static gboolean paystream_enter(void) {
	g_atomic_int_inc(&paystream_callbacks_inside);
	if(paystream_running())
		return TRUE;
	g_atomic_int_dec_and_test(&paystream_callbacks_inside);
	return FALSE;
}

static void paystream_leave(void) {
	g_atomic_int_dec_and_test(&paystream_callbacks_inside);
}

static void paystream_wait_for_callbacks(void) {
	gint64 start = janus_get_monotonic_time();
	gboolean told = FALSE;
	while(g_atomic_int_get(&paystream_callbacks_inside) > 0) {
		if(!told && janus_get_monotonic_time() - start > G_USEC_PER_SEC) {
			JANUS_LOG(LOG_WARN, "[paystream] waiting for %d request(s) in progress before stopping\n",
				g_atomic_int_get(&paystream_callbacks_inside));
			told = TRUE;
		}
		g_usleep(1000);
	}
}

static void paystream_message_free(paystream_message *msg) {
	if(msg == NULL || msg == &paystream_exit_message)
		return;
	janus_refcount_decrease(&msg->session->ref);
	g_free(msg->transaction);
	if(msg->body)
		json_decref(msg->body);
	if(msg->jsep)
		json_decref(msg->jsep);
	g_free(msg);
}

static void paystream_dispatch(paystream_message *msg) {
	paystream_result result = { 0 };
	switch(msg->spec->type) {
		case PAYSTREAM_REQUEST_PUBLISH:
		case PAYSTREAM_REQUEST_WATCH:
			if(paystream_session_closing(msg->session)) {
				paystream_fail(&result, PAYSTREAM_ERROR_WRONG_STATE,
					"This handle's previous PeerConnection is still closing: wait for Janus's hangup event");
				break;
			}
			if(msg->spec->type == PAYSTREAM_REQUEST_PUBLISH)
				paystream_performer_request(msg, &result);
			else
				paystream_viewer_request(msg, &result);
			break;
		case PAYSTREAM_REQUEST_UNPUBLISH:
			paystream_performer_request(msg, &result);
			break;
		case PAYSTREAM_REQUEST_START:
		case PAYSTREAM_REQUEST_PAUSE:
		case PAYSTREAM_REQUEST_RESUME:
		case PAYSTREAM_REQUEST_REFRESH:
		case PAYSTREAM_REQUEST_TIP:
			paystream_viewer_request(msg, &result);
			break;
		case PAYSTREAM_REQUEST_CONFIGURE:
		case PAYSTREAM_REQUEST_LEAVE:
			/* Shared names: the handle's role decides. */
			if(paystream_session_role(msg->session) == PAYSTREAM_ROLE_PERFORMER)
				paystream_performer_request(msg, &result);
			else
				paystream_viewer_request(msg, &result);
			break;
		default:
			paystream_fail(&result, PAYSTREAM_ERROR_INVALID_REQUEST, "'%s' is synchronous", msg->spec->name);
			break;
	}
	if(result.code != 0) {
		JANUS_LOG(LOG_VERB, "[paystream] %s refused: %d %s\n", msg->spec->name, result.code, result.text);
		paystream_push_error(msg->session, msg->transaction, result.code, result.text);
		/* The core set up ICE for the refused offer: close it, so the handle
		 * can publish again once Janus reports the hang-up. */
		if(msg->spec->type == PAYSTREAM_REQUEST_PUBLISH && msg->jsep != NULL &&
				paystream_session_role(msg->session) == PAYSTREAM_ROLE_NONE) {	/* else: keep its PC */
			g_atomic_int_set(&msg->session->has_pc, 1);
			paystream_push_close(msg->session);
		}
	}
}

static gpointer paystream_handler(gpointer data) {
	JANUS_LOG(LOG_VERB, "[paystream] handler thread started\n");
	while(g_atomic_int_get(&paystream_initialized) && !g_atomic_int_get(&paystream_stopping)) {
		/* Wake up now and then to push simulcast layer changes the relay flagged. */
		paystream_message *msg = g_async_queue_timeout_pop(paystream_messages, 250 * 1000);
		paystream_viewers_push_layer_events();
		if(msg == NULL)
			continue;
		if(msg == &paystream_exit_message)
			break;
		if(!g_atomic_int_get(&msg->session->destroyed))
			paystream_dispatch(msg);
		paystream_message_free(msg);
	}
	JANUS_LOG(LOG_VERB, "[paystream] handler thread leaving\n");
	return NULL;
}

static int paystream_init(janus_callbacks *callback, const char *config_path) {
	if(g_atomic_int_get(&paystream_stopping))
		return -1;
	if(callback == NULL || config_path == NULL)
		return -1;
	if(paystream_store_open(config_path) != 0)
		return -1;
	json_t *general = paystream_store_general();
	char error[PAYSTREAM_ERROR_TEXT_LEN];
	int rc = paystream_general_from_config(general, &paystream_general, error, sizeof(error));
	json_decref(general);
	if(rc != 0) {
		JANUS_LOG(LOG_FATAL, "[paystream] bad general section in %s.jcfg: %s\n", PAYSTREAM_PACKAGE, error);
		paystream_store_close();
		return -1;
	}
	paystream_sessions_init();
	paystream_rooms_init();
	paystream_tips_init();
	paystream_metering_init();
	paystream_gateway = callback;
	int loaded = paystream_admin_load_rooms();
	static const paystream_billing_callbacks billing_callbacks = {
		.stop_sessions = paystream_metering_stop_sessions,
		.tip_result = paystream_tips_result,
	};
	if(paystream_billing_start(&paystream_general, &billing_callbacks, error, sizeof(error)) != 0) {
		JANUS_LOG(LOG_FATAL, "[paystream] %s\n", error);
		goto no_billing;
	}
	json_t *spooled_tips = paystream_billing_spooled_tips();
	paystream_tips_adopt_spooled(spooled_tips);
	json_decref(spooled_tips);
	if(paystream_general.billing_url == NULL)
		JANUS_LOG(LOG_WARN, "[paystream] no billing_url configured: only free rooms can be watched\n");
	if(paystream_push_threads_start(paystream_general.offer_threads, error, sizeof(error)) != 0) {
		JANUS_LOG(LOG_FATAL, "[paystream] %s\n", error);
		goto no_push_threads;
	}
	paystream_messages = g_async_queue_new_full((GDestroyNotify)paystream_message_free);
	g_atomic_int_set(&paystream_initialized, 1);
	GError *thread_error = NULL;
	paystream_handler_thread = g_thread_try_new("paystream handler", paystream_handler, NULL, &thread_error);
	if(thread_error != NULL) {
		JANUS_LOG(LOG_FATAL, "[paystream] cannot start the handler thread: %s\n", thread_error->message);
		g_error_free(thread_error);
		g_atomic_int_set(&paystream_initialized, 0);
		g_async_queue_unref(paystream_messages);
		goto no_handler_thread;
	}
	paystream_ticker_start();
	JANUS_LOG(LOG_INFO, "[paystream] %s initialized, %d permanent room(s)%s, %u offer thread(s)\n",
		PAYSTREAM_VERSION_STRING, loaded, paystream_general.admin_key ? ", admin_key required to create rooms" : "",
		paystream_general.offer_threads);
	return 0;

no_handler_thread:
	paystream_push_threads_stop();
no_push_threads:
	paystream_billing_stop();
no_billing:
	paystream_tips_deinit();
	paystream_rooms_deinit();
	paystream_sessions_deinit();
	paystream_general_clear(&paystream_general);
	paystream_store_close();
	paystream_gateway = NULL;
	return -1;
}

/* A clean shutdown ends every viewing session, so each gets its last
 * seconds and session_end spooled (a crash leaves that to the next start:
 * what was committed is re-sent; the seconds of the last tick are lost). */
static void paystream_finish_session(paystream_viewer *viewer, gpointer data, paystream_outbox *box) {
	paystream_metering_finish_locked(viewer, "shutdown");
}

static void paystream_finish_all_sessions(void) {
	paystream_rooms_foreach_viewer(paystream_finish_session, NULL);
	paystream_metering_flush();
}

static void paystream_destroy_plugin(void) {
	if(!g_atomic_int_get(&paystream_initialized))
		return;
	g_atomic_int_set(&paystream_stopping, 1);
	paystream_wait_for_callbacks();
	g_async_queue_push(paystream_messages, &paystream_exit_message);
	if(paystream_handler_thread != NULL) {
		g_thread_join(paystream_handler_thread);
		paystream_handler_thread = NULL;
	}
	g_async_queue_unref(paystream_messages);
	paystream_messages = NULL;
	paystream_ticker_stop();
	/* The last offers and events the handler thread and the ticker queued. */
	paystream_push_threads_stop();
	paystream_finish_all_sessions();
	paystream_billing_stop();
	paystream_metering_deinit();
	paystream_tips_deinit();
	paystream_rooms_deinit();
	paystream_sessions_deinit();
	paystream_store_close();
	paystream_general_clear(&paystream_general);
	g_atomic_int_set(&paystream_initialized, 0);
	g_atomic_int_set(&paystream_stopping, 0);
	JANUS_LOG(LOG_INFO, "[paystream] destroyed\n");
}

static int paystream_get_api_compatibility(void) {
	return JANUS_PLUGIN_API_VERSION;
}
static int paystream_get_version(void) {
	return PAYSTREAM_VERSION;
}
static const char *paystream_get_version_string(void) {
	return PAYSTREAM_VERSION_STRING;
}
static const char *paystream_get_description(void) {
	return "Pay-per-second live streaming: one performer, many paying viewers.";
}
static const char *paystream_get_name(void) {
	return PAYSTREAM_NAME;
}
static const char *paystream_get_author(void) {
	return "The paystream authors";
}
static const char *paystream_get_package(void) {
	return PAYSTREAM_PACKAGE;
}

static void paystream_create_session(janus_plugin_session *handle, int *error) {
	if(!paystream_enter()) {
		*error = -1;
		return;
	}
	*error = paystream_session_create(handle);
	paystream_leave();
}

/* What a handle going away or hanging up means for its role. */
static void paystream_session_hangup(paystream_session *session) {
	g_atomic_int_set(&session->pc_up, 0);
	g_atomic_int_set(&session->has_pc, 0);
	g_atomic_int_set(&session->pc_closing, 0);
	g_atomic_int_inc(&session->hangups);
	paystream_performer_hangup(session);
	paystream_viewer_hangup(session);
}

static void paystream_destroy_session(janus_plugin_session *handle, int *error) {
	if(!paystream_enter()) {
		*error = -1;
		return;
	}
	paystream_session *session = paystream_session_remove(handle);
	if(session == NULL) {
		*error = -2;
		paystream_leave();
		return;
	}
	paystream_session_hangup(session);
	handle->plugin_handle = NULL;
	janus_refcount_decrease(&session->ref);	/* the table's */
	*error = 0;
	paystream_leave();
}

static json_t *paystream_query_session_entered(janus_plugin_session *handle) {
	paystream_session *session = paystream_session_get(handle);
	if(session == NULL)
		return NULL;
	json_t *info = json_object();
	paystream_performer *performer = paystream_session_performer(session);
	paystream_viewer *viewer = paystream_session_viewer(session);
	if(performer != NULL) {
		json_object_set_new(info, "role", json_string("performer"));
		json_object_set_new(info, "room", json_string(performer->room->id));
		json_object_set_new(info, "state", json_string(g_atomic_int_get(&performer->live) ? "live" : "offline"));
		json_object_set_new(info, "live", json_boolean(g_atomic_int_get(&performer->live)));
		json_object_set_new(info, "display", performer->display ? json_string(performer->display) : json_null());
		json_object_set_new(info, "audiocodec", json_string(janus_audiocodec_name(performer->media.acodec)));
		json_object_set_new(info, "videocodec", json_string(janus_videocodec_name(performer->media.vcodec)));
		json_object_set_new(info, "simulcast", json_boolean(performer->simulcast));
		janus_refcount_decrease(&performer->ref);
	} else if(viewer != NULL) {
		json_object_set_new(info, "role", json_string("viewer"));
		json_object_set_new(info, "room", json_string(viewer->room->id));
		json_object_set_new(info, "viewer_id", json_string(viewer->viewer_id));
		json_object_set_new(info, "display", viewer->display ? json_string(viewer->display) : json_null());
		janus_mutex_lock(&viewer->room->mutex);
		json_object_set_new(info, "state", json_string(paystream_viewer_state_name(&viewer->state)));
		json_object_set_new(info, "substream", json_integer(viewer->substream_target));
		json_object_set_new(info, "temporal", json_integer(viewer->temporal_target));
		janus_mutex_unlock(&viewer->room->mutex);
		janus_refcount_decrease(&viewer->ref);
	} else {
		json_object_set_new(info, "role", json_string("none"));
	}
	json_object_set_new(info, "pc_up", json_boolean(g_atomic_int_get(&session->pc_up)));
	janus_refcount_decrease(&session->ref);
	return info;
}

static json_t *paystream_query_session(janus_plugin_session *handle) {
	if(!paystream_enter())
		return NULL;
	json_t *info = paystream_query_session_entered(handle);
	paystream_leave();
	return info;
}

static struct janus_plugin_result *paystream_handle_message(janus_plugin_session *handle, char *transaction,
		json_t *message, json_t *jsep) {
	janus_plugin_result *result = NULL;
	if(!paystream_enter()) {
		result = janus_plugin_result_new(JANUS_PLUGIN_ERROR, "Shutting down", NULL);
		g_free(transaction);
		if(message)
			json_decref(message);
		if(jsep)
			json_decref(jsep);
		return result;
	}
	paystream_session *session = paystream_session_get(handle);
	if(session == NULL) {
		result = janus_plugin_result_new(JANUS_PLUGIN_ERROR, "No session for this handle", NULL);
		goto done;
	}
	const paystream_request_spec *spec = NULL;
	char error[PAYSTREAM_ERROR_TEXT_LEN];
	int rc = paystream_request_parse(message, &spec, error, sizeof(error));
	if(rc == 0 && spec->synchronous && jsep != NULL) {
		rc = PAYSTREAM_ERROR_INVALID_JSEP;
		g_snprintf(error, sizeof(error), "'%s' takes no JSEP", spec->name);
	}
	if(rc != 0) {
		result = janus_plugin_result_new(JANUS_PLUGIN_OK, NULL, paystream_error_json(rc, error));
		janus_refcount_decrease(&session->ref);
		goto done;
	}
	if(spec->synchronous) {
		result = janus_plugin_result_new(JANUS_PLUGIN_OK, NULL, paystream_admin_request(spec, message));
		janus_refcount_decrease(&session->ref);
		goto done;
	}
	if(jsep != NULL)
		g_atomic_int_set(&session->has_pc, 1);	/* the core took the SDP: a PeerConnection exists */
	/* Asynchronous: the message takes the session's reference and ownership
	 * of transaction, body and jsep. */
	paystream_message *msg = g_malloc0(sizeof(paystream_message));
	msg->session = session;
	msg->transaction = transaction;
	msg->body = message;
	msg->jsep = jsep;
	msg->spec = spec;
	g_async_queue_push(paystream_messages, msg);
	paystream_leave();
	return janus_plugin_result_new(JANUS_PLUGIN_OK_WAIT, NULL, NULL);
done:
	g_free(transaction);
	if(message)
		json_decref(message);
	if(jsep)
		json_decref(jsep);
	paystream_leave();
	return result;
}

static json_t *paystream_handle_admin_message(json_t *message) {
	if(!paystream_enter())
		return paystream_error_json(PAYSTREAM_ERROR_INTERNAL, "Shutting down");
	const paystream_request_spec *spec = NULL;
	char error[PAYSTREAM_ERROR_TEXT_LEN];
	json_t *reply;
	int rc = paystream_request_parse(message, &spec, error, sizeof(error));
	if(rc != 0) {
		reply = paystream_error_json(rc, error);
	} else if(!spec->synchronous) {
		g_snprintf(error, sizeof(error), "'%s' needs a handle: only room management goes through the Admin API", spec->name);
		reply = paystream_error_json(PAYSTREAM_ERROR_INVALID_REQUEST, error);
	} else {
		reply = paystream_admin_request(spec, message);
	}
	paystream_leave();
	return reply;
}

static void paystream_setup_media(janus_plugin_session *handle) {
	if(!paystream_enter())
		return;
	paystream_session *session = paystream_session_get(handle);
	if(session != NULL) {
		g_atomic_int_set(&session->hangingup, 0);
		g_atomic_int_set(&session->pc_up, 1);
		JANUS_LOG(LOG_VERB, "[paystream] PeerConnection up\n");
		paystream_performer_setup_media(session);
		paystream_viewer_setup_media(session);
		janus_refcount_decrease(&session->ref);
	}
	paystream_leave();
}

static void paystream_hangup_media(janus_plugin_session *handle) {
	if(!paystream_enter())
		return;
	paystream_session *session = paystream_session_get(handle);
	if(session != NULL) {
		if(g_atomic_int_compare_and_exchange(&session->hangingup, 0, 1))
			paystream_session_hangup(session);
		janus_refcount_decrease(&session->ref);
	}
	paystream_leave();
}

/* The media callbacks reach the session through the handle, as Janus's own
 * plugins do: the table lookup and its mutex stay off the media path. */
static paystream_session *paystream_media_session(janus_plugin_session *handle) {
	if(handle == NULL || g_atomic_int_get(&handle->stopped) || !paystream_running())
		return NULL;
	paystream_session *session = handle->plugin_handle;
	if(session == NULL || g_atomic_int_get(&session->destroyed))
		return NULL;
	return session;
}

static void paystream_incoming_rtp(janus_plugin_session *handle, janus_plugin_rtp *packet) {
	paystream_session *session = paystream_media_session(handle);
	if(session == NULL)
		return;
	paystream_performer *performer = paystream_session_performer(session);
	if(performer == NULL)
		return;	/* viewers send no media */
	paystream_relay_rtp(performer, packet);
	janus_refcount_decrease(&performer->ref);
}

static void paystream_incoming_rtcp(janus_plugin_session *handle, janus_plugin_rtcp *packet) {
	paystream_session *session = paystream_media_session(handle);
	if(session == NULL)
		return;
	paystream_viewer *viewer = paystream_session_viewer(session);
	if(viewer == NULL)
		return;	/* the core answers the performer's RTCP itself */
	paystream_relay_viewer_rtcp(viewer, packet);
	janus_refcount_decrease(&viewer->ref);
}

static void paystream_incoming_data(janus_plugin_session *handle, janus_plugin_data *packet) {
	/* No data channels: the offer and answer never negotiate one. */
}

static void paystream_slow_link(janus_plugin_session *handle, int mindex, gboolean video, gboolean uplink) {
	paystream_session *session = paystream_media_session(handle);
	if(session == NULL)
		return;
	JANUS_LOG(LOG_VERB, "[paystream] slow %s link (%s, m-line %d)\n", uplink ? "outgoing" : "incoming",
		video ? "video" : "audio", mindex);
}

/* JANUS_PLUGIN_INIT sets every field to NULL before ours: expected overrides. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init"
janus_plugin paystream_plugin = JANUS_PLUGIN_INIT(
	.init = paystream_init,
	.destroy = paystream_destroy_plugin,
	.get_api_compatibility = paystream_get_api_compatibility,
	.get_version = paystream_get_version,
	.get_version_string = paystream_get_version_string,
	.get_description = paystream_get_description,
	.get_name = paystream_get_name,
	.get_author = paystream_get_author,
	.get_package = paystream_get_package,
	.create_session = paystream_create_session,
	.handle_message = paystream_handle_message,
	.handle_admin_message = paystream_handle_admin_message,
	.setup_media = paystream_setup_media,
	.incoming_rtp = paystream_incoming_rtp,
	.incoming_rtcp = paystream_incoming_rtcp,
	.incoming_data = paystream_incoming_data,
	.slow_link = paystream_slow_link,
	.hangup_media = paystream_hangup_media,
	.destroy_session = paystream_destroy_session,
	.query_session = paystream_query_session,
);
#pragma GCC diagnostic pop

/* The one symbol Janus looks up when it loads the plugin. */
__attribute__((visibility("default"))) janus_plugin *create(void);
janus_plugin *create(void) {
	JANUS_LOG(LOG_VERB, "[paystream] created\n");
	return &paystream_plugin;
}
