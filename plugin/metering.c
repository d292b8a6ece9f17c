/* metering.c - viewing sessions, the ticker, and the records they spool
 * (see metering.h). */
#include "metering.h"

#include <string.h>
#include <time.h>

#include <debug.h>
#include <utils.h>

#include "billing.h"
#include "errors.h"
#include "records.h"
#include "ids.h"
#include "plugin.h"

static GThread *paystream_ticker_thread;
static GMutex paystream_ticker_mutex;
static GCond paystream_ticker_cond;
static gboolean paystream_ticker_running;
/* Records waiting for the spool, in order, as JSON text lines. They are
 * written under a room's lock, but the spool's mutex can be held through an
 * fsync by a billing thread, and the relay must never wait for a disk: so
 * under a room's lock records only join this buffer, and the ticker moves
 * them to the spool with no room lock held. Records the spool refuses
 * (full) wait here too. */
static GString *paystream_backlog;
static GMutex paystream_backlog_mutex;

/* ---- records -------------------------------------------------------- */

/* The record just appended to paystream_backlog ends its line; unlocks. */
static void paystream_backlog_end_record(void) {
	g_string_append_c(paystream_backlog, '\n');
	g_mutex_unlock(&paystream_backlog_mutex);
}

static GString *paystream_backlog_begin_record(void) {
	g_mutex_lock(&paystream_backlog_mutex);
	if(paystream_backlog == NULL)
		paystream_backlog = g_string_sized_new(64 * 1024);
	return paystream_backlog;
}

/* The queued records, taken out of the backlog (NULL: none queued). */
static GString *paystream_backlog_take(void) {
	g_mutex_lock(&paystream_backlog_mutex);
	GString *queued = paystream_backlog;
	paystream_backlog = NULL;
	g_mutex_unlock(&paystream_backlog_mutex);
	return queued;
}

/* Move queued records to the spool, in order, until it refuses one. Only
 * the ticker (and the shutdown after it) calls this, so order holds. */
static void paystream_backlog_flush(void) {
	GString *pending = paystream_backlog_take();
	if(pending == NULL)
		return;
	gsize taken = paystream_billing_records(pending->str, pending->len);
	if(taken < pending->len) {
		/* The spool is full: the rest goes back in front of what came meanwhile. */
		g_string_erase(pending, 0, (gssize)taken);
		g_mutex_lock(&paystream_backlog_mutex);
		if(paystream_backlog != NULL) {
			g_string_append_len(pending, paystream_backlog->str, (gssize)paystream_backlog->len);
			g_string_free(paystream_backlog, TRUE);
		}
		paystream_backlog = pending;
		g_mutex_unlock(&paystream_backlog_mutex);
		return;
	}
	/* Keep the buffer (and its capacity) for the next round, unless one came meanwhile. */
	g_string_truncate(pending, 0);
	g_mutex_lock(&paystream_backlog_mutex);
	if(paystream_backlog == NULL)
		paystream_backlog = pending;
	else
		g_string_free(pending, TRUE);
	g_mutex_unlock(&paystream_backlog_mutex);
}

/* Turn the counted seconds not yet recorded into a tick record (clock: the
 * ticker's pass's, or NULL). */
static void paystream_take_tick_record(paystream_viewer *viewer, paystream_record_clock *clock) {
	paystream_meter_record r;
	if(!paystream_meter_take_record(&viewer->meter, &r))
		return;
	paystream_record_tick(paystream_backlog_begin_record(), &viewer->record_source, &r, clock);
	paystream_backlog_end_record();
}

/* ---- sessions ------------------------------------------------------- */

static void paystream_account_locked(paystream_viewer *viewer, guint64 upto, gint64 now_ms, paystream_outbox *box);
static void paystream_relay_cutoff_locked(paystream_viewer *viewer, guint64 now_second, gint64 now_s);

int paystream_metering_begin_locked(paystream_viewer *viewer, const paystream_token *token) {
	paystream_room *room = viewer->room;
	viewer->session_id = paystream_random_uuid();
	viewer->billing_id = g_strdup(token->sub);
	viewer->token_exp = token->exp;
	if(room->settings.price_per_second <= 0)
		return 0;	/* free room: an identity, no meter */
	if(!paystream_billing_accepting())
		return PAYSTREAM_ERROR_BILLING_UNAVAILABLE;
	paystream_meter_init(&viewer->meter, room->settings.price_per_second, room->settings.currency,
		token->has_budget ? token->budget : PAYSTREAM_METER_NO_BUDGET);
	if(viewer->meter.stopped) {
		/* A budget below one second's price: nothing could be watched. */
		paystream_meter_clear(&viewer->meter);
		return PAYSTREAM_ERROR_INVALID_TOKEN;
	}
	viewer->metered = TRUE;
	viewer->ticked_to = paystream_ticker_second(janus_get_monotonic_time());
	paystream_relay_cutoff_locked(viewer, viewer->ticked_to, janus_get_real_time() / G_USEC_PER_SEC);
	viewer->last_record_ms = janus_get_real_time() / 1000;
	paystream_record_ids ids = { viewer->session_id, room->id, viewer->billing_id };
	paystream_record_source_init(&viewer->record_source, &ids, viewer->meter.currency);
	paystream_record_session_start(paystream_backlog_begin_record(), &viewer->record_source, viewer->last_record_ms,
		room->settings.price_per_second);
	paystream_backlog_end_record();
	json_t *fields = json_pack("{ssssss}", "viewer_id", viewer->viewer_id, "session", viewer->session_id,
		"viewer", viewer->billing_id);
	json_object_set_new(fields, "price_per_second", json_integer(room->settings.price_per_second));
	json_object_set_new(fields, "currency", json_string(room->settings.currency));
	paystream_notify(viewer->session, "session_started", room->id, fields);
	return 0;
}

static json_t *paystream_stopped_event(paystream_viewer *viewer, const char *reason) {
	json_t *event = paystream_event_new("stopped", viewer->room->id);
	json_object_set_new(event, "reason", json_string(reason));
	json_object_set_new(event, "seconds", json_integer(viewer->meter.total_seconds));
	json_object_set_new(event, "amount", json_integer(viewer->meter.total_amount));
	json_object_set_new(event, "currency", json_string(viewer->meter.currency ? viewer->meter.currency : ""));
	return event;
}

/* Reasons from the billing service's replies (the plugin's own are static
 * strings), kept for the process's life since a meter keeps the pointer: at
 * most this many different ones, so a service that sends a new reason every
 * time cannot grow memory without end. */
#define PAYSTREAM_STOP_REASONS_MAX 64
static GHashTable *paystream_stop_reasons;	/* reason -> itself (owned) */
static GMutex paystream_stop_reasons_mutex;

static const char *paystream_stop_reason(const char *reason) {
	/* budget_exhausted is the plugin's own: a session it stops can be
	 * resumed by a refresh with a new budget, a stop from the service not. */
	if(strlen(reason) == 0 || strlen(reason) > 64 || strspn(reason, "abcdefghijklmnopqrstuvwxyz_") != strlen(reason) ||
			strcmp(reason, PAYSTREAM_METER_BUDGET_EXHAUSTED) == 0)
		return "stopped_by_billing";
	g_mutex_lock(&paystream_stop_reasons_mutex);
	if(paystream_stop_reasons == NULL)
		paystream_stop_reasons = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	const char *kept = g_hash_table_lookup(paystream_stop_reasons, reason);
	if(kept == NULL && g_hash_table_size(paystream_stop_reasons) < PAYSTREAM_STOP_REASONS_MAX) {
		char *copy = g_strdup(reason);
		g_hash_table_insert(paystream_stop_reasons, copy, copy);
		kept = copy;
	}
	g_mutex_unlock(&paystream_stop_reasons_mutex);
	return kept != NULL ? kept : "stopped_by_billing";
}

/* Bill what the relay marked up to now, the second in progress included:
 * for a stop or an end decided between two visits of the ticker (which
 * skips a stopped or finished viewer from then on). */
static void paystream_account_now_locked(paystream_viewer *viewer, paystream_outbox *box) {
	paystream_account_locked(viewer, paystream_ticker_second(janus_get_monotonic_time()) + 1,
		janus_get_real_time() / 1000, box);
}

/* The viewer and event handlers hear why the session stopped. */
static void paystream_tell_stopped(paystream_viewer *viewer, const char *reason, paystream_outbox *box) {
	paystream_outbox_add(box, viewer->session, paystream_stopped_event(viewer, reason), NULL, FALSE);
	json_t *fields = json_pack("{ssssss}", "viewer_id", viewer->viewer_id, "session", viewer->session_id, "reason", reason);
	json_object_set_new(fields, "seconds", json_integer(viewer->meter.total_seconds));
	json_object_set_new(fields, "amount", json_integer(viewer->meter.total_amount));
	paystream_notify(viewer->session, "viewer_stopped", viewer->room->id, fields);
}

/* Stop the meter and the media; what it counted is taken as a record. */
static void paystream_stop_now_locked(paystream_viewer *viewer, const char *reason, paystream_outbox *box) {
	/* A meter stopped by its budget (before, or by the seconds just billed
	 * for this stop) takes a later reason: any other stop is final, so a
	 * refresh must not restart the session. */
	gboolean replaced = FALSE;
	if(viewer->meter.stopped && viewer->meter.stop_reason != NULL &&
			strcmp(viewer->meter.stop_reason, PAYSTREAM_METER_BUDGET_EXHAUSTED) == 0 &&
			strcmp(reason, PAYSTREAM_METER_BUDGET_EXHAUSTED) != 0) {
		viewer->meter.stop_reason = reason;
		replaced = TRUE;
	}
	if(g_atomic_int_get(&viewer->stopped)) {
		/* Told budget_exhausted before: now told that a refresh will not help. */
		if(replaced) {
			JANUS_LOG(LOG_INFO, "[paystream] viewer %s of room %s, stopped by its budget, now stopped (%s)\n",
				viewer->viewer_id, viewer->room->id, reason);
			paystream_tell_stopped(viewer, reason, box);
		}
		return;
	}
	paystream_meter_stop(&viewer->meter, reason);
	g_atomic_int_set(&viewer->stopped, 1);
	paystream_take_tick_record(viewer, NULL);
	JANUS_LOG(LOG_INFO, "[paystream] viewer %s of room %s stopped (%s)\n", viewer->viewer_id, viewer->room->id, reason);
	paystream_tell_stopped(viewer, reason, box);
}

void paystream_metering_stop_locked(paystream_viewer *viewer, const char *reason, paystream_outbox *box) {
	/* A finished session (left, ended at shutdown) has sent its totals. */
	if(!viewer->metered || viewer->finished)
		return;
	if(!g_atomic_int_get(&viewer->stopped))
		paystream_account_now_locked(viewer, box);
	paystream_stop_now_locked(viewer, reason, box);
}

void paystream_metering_finish_locked(paystream_viewer *viewer, const char *reason) {
	if(!viewer->metered || viewer->finished)
		return;
	if(!g_atomic_int_get(&viewer->stopped))
		paystream_account_now_locked(viewer, NULL);	/* no `tick` to a viewer that is leaving */
	viewer->finished = TRUE;
	paystream_meter_stop(&viewer->meter, reason);
	paystream_take_tick_record(viewer, NULL);
	paystream_record_session_end(paystream_backlog_begin_record(), &viewer->record_source, &viewer->meter, reason);
	paystream_backlog_end_record();
	json_t *fields = json_pack("{ssssss}", "viewer_id", viewer->viewer_id, "session", viewer->session_id, "reason", reason);
	json_object_set_new(fields, "seconds", json_integer(viewer->meter.total_seconds));
	json_object_set_new(fields, "amount", json_integer(viewer->meter.total_amount));
	json_object_set_new(fields, "currency", json_string(viewer->meter.currency));
	paystream_notify(viewer->session, "session_ended", viewer->room->id, fields);
}

gboolean paystream_metering_refresh_locked(paystream_viewer *viewer, const paystream_token *token,
		paystream_outbox *box) {
	if(!viewer->metered || viewer->finished) {
		viewer->token_exp = token->exp;
		return FALSE;
	}
	gboolean was_stopped = g_atomic_int_get(&viewer->stopped);
	gint64 new_budget = token->has_budget ? token->budget : PAYSTREAM_METER_NO_BUDGET;
	gboolean raises = new_budget < 0 || (viewer->meter.budget >= 0 && new_budget >= viewer->meter.budget);
	gboolean runs = !viewer->meter.stopped;
	if(was_stopped || raises)
		runs = paystream_meter_refresh(&viewer->meter, new_budget);
	if(!was_stopped) {
		/* The whole seconds watched up to now are billed under the old
		 * token's expiry and the larger budget: a raised budget pays for
		 * seconds a late ticker has not billed yet, a lowered one applies
		 * from now on. The second in progress is left to the ticker (billed
		 * here, the rest of it would be free: a viewer could refresh at the
		 * start of every second). Seconds after the old token's expiry (a
		 * late ticker) are not billed under the new one. */
		gint64 mono = janus_get_monotonic_time(), now_ms = janus_get_real_time() / 1000;
		guint64 now_second = paystream_ticker_second(mono);
		gint64 into_ms = ((mono - __atomic_load_n(&paystream_ticker_epoch_us, __ATOMIC_RELAXED)) % G_USEC_PER_SEC) / 1000;
		paystream_account_locked(viewer, now_second, now_ms - into_ms, box);
		viewer->ticked_to = MAX(viewer->ticked_to, now_second);
		/* A lowered budget that ends the session bills the second in
		 * progress if it already had media (else leaving right after would
		 * make it free); one without media yet stays where it is, billed if
		 * a refresh resumes the session and media comes in it. */
		if(!raises && !viewer->meter.stopped && !paystream_meter_budget_fits(&viewer->meter, new_budget) &&
				paystream_meter_marked(&viewer->media_marks, now_second))
			paystream_account_locked(viewer, now_second + 1, now_ms, box);
		runs = raises ? !viewer->meter.stopped : paystream_meter_refresh(&viewer->meter, new_budget);
	}
	viewer->token_exp = token->exp;
	paystream_relay_cutoff_locked(viewer, paystream_ticker_second(janus_get_monotonic_time()),
		janus_get_real_time() / G_USEC_PER_SEC);
	if(!was_stopped && !runs) {
		/* A budget that cannot pay the next second: the media stops now,
		 * not at the next tick. The second in progress is not billed here:
		 * ticked_to stays at its start, so what was relayed in it is billed
		 * if a refresh resumes the session (and lost, less than a second,
		 * if none does). */
		paystream_stop_now_locked(viewer, viewer->meter.stop_reason, box);
		return FALSE;
	}
	if(was_stopped && runs) {
		/* ticked_to stays: the seconds while stopped have no marks, and the
		 * part of the stop's second that had media is billed by the next
		 * visit (moving it on would make that part free: a viewer could
		 * stop and resume around every second boundary). */
		g_atomic_int_set(&viewer->stopped, 0);
		return TRUE;
	}
	return FALSE;
}

json_t *paystream_metering_describe_locked(const paystream_viewer *viewer) {
	if(viewer->session_id == NULL)
		return NULL;
	json_t *d = json_object();
	json_object_set_new(d, "session", json_string(viewer->session_id));
	json_object_set_new(d, "seconds", json_integer(viewer->metered ? viewer->meter.total_seconds : 0));
	json_object_set_new(d, "amount", json_integer(viewer->metered ? viewer->meter.total_amount : 0));
	/* A running session keeps the currency it started with (see edit). */
	json_object_set_new(d, "currency", json_string(viewer->metered && viewer->meter.currency != NULL ?
		viewer->meter.currency : viewer->room->settings.currency));
	json_object_set_new(d, "stopped", json_boolean(g_atomic_int_get(&viewer->stopped)));
	return d;
}

static void paystream_stop_if_listed(paystream_viewer *viewer, gpointer data, paystream_outbox *box) {
	GHashTable *stops = data;	/* session id -> reason, as kept */
	const char *reason = viewer->session_id != NULL ? g_hash_table_lookup(stops, viewer->session_id) : NULL;
	if(reason != NULL)
		paystream_metering_stop_locked(viewer, reason, box);
}

void paystream_metering_stop_sessions(GHashTable *stops) {
	/* Each reason replaced, in place, by the one kept (before any room lock). */
	GHashTableIter iter;
	gpointer reason;
	g_hash_table_iter_init(&iter, stops);
	while(g_hash_table_iter_next(&iter, NULL, &reason))
		g_hash_table_iter_replace(&iter, (gpointer)paystream_stop_reason(reason));
	paystream_rooms_foreach_viewer(paystream_stop_if_listed, stops);
}

int paystream_metering_check_token(const char *jwt, const char *room, paystream_token_role role,
		paystream_token *out, char *error, size_t errlen) {
	memset(out, 0, sizeof(*out));
	if(paystream_general.token_secret == NULL) {
		g_snprintf(error, errlen, "This server checks no tokens (no token_secret configured)");
		return PAYSTREAM_ERROR_INVALID_TOKEN;
	}
	const char *secrets[] = { paystream_general.token_secret, paystream_general.token_secret_previous, NULL };
	paystream_token_status status = paystream_token_verify(jwt, secrets, room, time(NULL), out);
	if(status != PAYSTREAM_TOKEN_OK) {
		g_snprintf(error, errlen, "Token refused: %s", paystream_token_status_name(status));
		paystream_token_clear(out);
		return PAYSTREAM_ERROR_INVALID_TOKEN;
	}
	if(out->role != role) {
		g_snprintf(error, errlen, "Token refused: wrong_role (a %s token is needed)",
			role == PAYSTREAM_TOKEN_ROLE_VIEWER ? "viewer" : "publisher");
		paystream_token_clear(out);
		return PAYSTREAM_ERROR_INVALID_TOKEN;
	}
	return 0;
}

/* ---- the ticker ----------------------------------------------------- */

/* Add amount to (*others)[currency], creating the object if needed. */
static void paystream_add_other(json_t **others, const char *currency, gint64 amount) {
	if(*others == NULL)
		*others = json_object();
	json_t *sum = json_object_get(*others, currency);
	if(sum != NULL)
		json_integer_set(sum, json_integer_value(sum) + amount);
	else
		json_object_set_new(*others, currency, json_integer(amount));
}

/* Move (*others)[currency] out of the object: returns it (0 if absent). */
static gint64 paystream_take_other(json_t **others, const char *currency) {
	json_t *sum = *others != NULL ? json_object_get(*others, currency) : NULL;
	gint64 amount = sum != NULL ? json_integer_value(sum) : 0;
	if(sum != NULL)
		json_object_del(*others, currency);
	if(*others != NULL && json_object_size(*others) == 0)
		g_clear_pointer(others, json_decref);
	return amount;
}

void paystream_metering_currency_changed_locked(paystream_room *room, const char *old_currency) {
	if(g_strcmp0(old_currency, room->settings.currency) == 0)
		return;
	/* What was summed in the old currency stays in it, apart. */
	if(room->show_amount > 0)
		paystream_add_other(&room->show_other, old_currency, room->show_amount);
	if(room->usage_amount > 0)
		paystream_add_other(&room->usage_other, old_currency, room->usage_amount);
	room->show_amount = paystream_take_other(&room->show_other, room->settings.currency);
	room->usage_amount = paystream_take_other(&room->usage_other, room->settings.currency);
}

/* The first ticker second the budget or the token's expiry does not pay
 * for (the ticker stops the session there anyway; this only keeps the
 * relay from running ahead of a late ticker). now_second is the ticker's
 * second in progress and now_s the wall-clock second it began in: the
 * caller's (the ticker's visit knows them without reading a clock). */
static void paystream_relay_cutoff_locked(paystream_viewer *viewer, guint64 now_second, gint64 now_s) {
	guint64 until = G_MAXUINT64;
	paystream_meter *m = &viewer->meter;
	if(m->budget >= 0 && m->price_per_second > 0 && m->budget >= m->total_amount) {
		guint64 seconds = (guint64)((m->budget - m->total_amount) / m->price_per_second);
		/* From now on, less what the marked seconds not billed yet will take
		 * (a session resumed after a long stop has ticked_to far behind). */
		guint64 base = MAX(viewer->ticked_to, now_second), owed = 0;
		/* (Only the seconds a visit can still bill: at most 63, however
		 * long the session has been stopped.) */
		guint64 first = base + 1 > PAYSTREAM_METER_LOOKBACK ? base + 1 - PAYSTREAM_METER_LOOKBACK : 0;
		for(guint64 second = MAX(viewer->ticked_to, first); second < base && owed < seconds; second++)
			owed += paystream_meter_marked(&viewer->media_marks, second) ? 1 : 0;
		until = base + (seconds - owed);
	}
	/* The token's expiry in ticker seconds, as paystream_account_locked cuts
	 * (to within a second: wall-clock against monotonic seconds). Written
	 * so that a huge exp cannot overflow. */
	gint64 left = viewer->token_exp - (now_s - PAYSTREAM_TOKEN_LEEWAY);
	guint64 expiry = left <= 0 ? now_second : (left > (gint64)(G_MAXUINT64 / 4) ? G_MAXUINT64 : now_second + (guint64)left);
	viewer->relay_until = MIN(until, expiry);
}

/* Bill the seconds [viewer->ticked_to, upto) the relay marked (meter.h),
 * the last of them ending at now_ms: the meter, the room's sums, the
 * viewer's `tick` event (into box; none when box is NULL). Room lock held. */
static void paystream_account_locked(paystream_viewer *viewer, guint64 upto, gint64 now_ms, paystream_outbox *box) {
	/* Nothing after the token's expiry (leeway included), on every path:
	 * the ticker's, a stop's, an end's. Wall-clock seconds against the
	 * ticker's monotonic ones: exact to a second, as is the now_ms given
	 * as the end of the last second. (Written so that a huge exp cannot
	 * overflow.) */
	gint64 expired_for = now_ms / 1000 - PAYSTREAM_TOKEN_LEEWAY - viewer->token_exp;
	if(expired_for > 0) {
		upto = (guint64)expired_for < upto ? upto - (guint64)expired_for : 0;
		now_ms -= expired_for * 1000;
	}
	if(upto <= viewer->ticked_to)
		return;
	paystream_room *room = viewer->room;
	guint counted = paystream_meter_tick_seconds(&viewer->meter, &viewer->media_marks, viewer->ticked_to, upto, now_ms);
	viewer->ticked_to = upto;
	/* (upto is the second that began at now_ms: no clock to read here.) */
	paystream_relay_cutoff_locked(viewer, upto, now_ms / 1000);
	if(counted == 0)
		return;
	gint64 amount = viewer->meter.price_per_second * (gint64)counted;	/* within the meter's totals */
	room->show_seconds += counted;
	room->usage_seconds += counted;
	if(g_strcmp0(viewer->meter.currency, room->settings.currency) == 0) {
		room->show_amount += amount;
		room->usage_amount += amount;
	} else {
		paystream_add_other(&room->show_other, viewer->meter.currency, amount);
		paystream_add_other(&room->usage_other, viewer->meter.currency, amount);
	}
	viewer->ticks_since_event += counted;
	if(box != NULL && viewer->ticks_since_event >= room->settings.tick_notify) {
		viewer->ticks_since_event %= room->settings.tick_notify;
		json_t *event = paystream_event_new("tick", room->id);
		json_object_set_new(event, "seconds", json_integer(viewer->meter.total_seconds));
		json_object_set_new(event, "amount", json_integer(viewer->meter.total_amount));
		json_object_set_new(event, "currency", json_string(viewer->meter.currency));
		paystream_outbox_add(box, viewer->session, event, NULL, FALSE);
	}
}

/* The ticker's visit of one viewer: the seconds up to to, the last of them
 * ending at now_ms. */
static void paystream_tick_viewer_locked(paystream_viewer *viewer, guint64 to, gint64 now_ms, paystream_outbox *box,
		paystream_record_clock *clock) {
	/* A token that expired: the seconds before its expiry are billed
	 * (paystream_account_locked cuts them there), then it stops. */
	paystream_account_locked(viewer, to, now_ms, box);
	if(now_ms / 1000 - PAYSTREAM_TOKEN_LEEWAY >= viewer->token_exp) {
		paystream_stop_now_locked(viewer, "token_expired", box);
		return;
	}
	if(viewer->meter.stopped) {
		/* The meter stopped itself: its budget cannot pay the next second. */
		paystream_stop_now_locked(viewer, viewer->meter.stop_reason, box);
		return;
	}
	if(now_ms - viewer->last_record_ms >= (gint64)paystream_general.billing_interval * 1000) {
		viewer->last_record_ms = now_ms;
		paystream_take_tick_record(viewer, clock);
	}
}

/* The seconds [from, to) of one room (one, unless the ticker was late);
 * returns its usage summary when one is due. */
static json_t *paystream_tick_room(paystream_room *room, guint64 from, guint64 to, gint64 now_ms, gboolean summary_due,
		paystream_outbox *box, paystream_record_clock *clock) {
	json_t *summary = NULL;
	janus_mutex_lock(&room->mutex);
	paystream_performer *performer = room->performer;
	gboolean live = performer != NULL && g_atomic_int_get(&performer->live);
	guint paying = 0;
	GHashTableIter iter;
	gpointer value;
	g_hash_table_iter_init(&iter, room->viewers);
	while(g_hash_table_iter_next(&iter, NULL, &value)) {
		paystream_viewer *viewer = value;
		if(!viewer->metered || viewer->finished || g_atomic_int_get(&viewer->stopped))
			continue;
		paying++;
		paystream_tick_viewer_locked(viewer, to, now_ms, box, clock);
	}
	room->ticks_since_earnings += live ? (guint32)(to - from) : 0;
	if(live && room->ticks_since_earnings >= room->settings.tick_notify) {
		room->ticks_since_earnings %= room->settings.tick_notify;
		json_t *event = paystream_event_new("earnings", room->id);
		json_object_set_new(event, "viewers", json_integer(g_hash_table_size(room->viewers)));
		json_object_set_new(event, "paying_viewers", json_integer(paying));
		json_object_set_new(event, "seconds", json_integer(room->show_seconds));
		json_object_set_new(event, "amount", json_integer(room->show_amount));
		json_object_set_new(event, "currency", json_string(room->settings.currency));
		if(room->show_other != NULL)
			json_object_set_new(event, "other_currencies", json_deep_copy(room->show_other));
		paystream_outbox_add(box, performer->session, event, NULL, FALSE);
	}
	if(summary_due && (room->usage_seconds > 0 || paying > 0)) {
		summary = json_pack("{sssIsIsI}", "room", room->id, "paying_viewers", (json_int_t)paying,
			"seconds", (json_int_t)room->usage_seconds, "amount", (json_int_t)room->usage_amount);
		json_object_set_new(summary, "currency", json_string(room->settings.currency));
		if(room->usage_other != NULL)
			json_object_set_new(summary, "other_currencies", json_incref(room->usage_other));
		g_clear_pointer(&room->usage_other, json_decref);
		room->usage_seconds = 0;
		room->usage_amount = 0;
	}
	janus_mutex_unlock(&room->mutex);
	return summary;
}

/* Account for the whole seconds [from, to) since the ticker started. */
static void paystream_tick(gint64 now_ms, guint64 from, guint64 to) {
	guint64 interval = paystream_general.billing_interval;
	gboolean summary_due = from / interval != to / interval;
	GList *summaries = NULL;
	paystream_outbox box = PAYSTREAM_OUTBOX_INIT;
	paystream_record_clock clock = { 0 };
	GList *rooms = paystream_rooms_list();
	for(GList *l = rooms; l; l = l->next) {
		json_t *summary = paystream_tick_room(l->data, from, to, now_ms, summary_due, &box, &clock);
		if(summary != NULL)
			summaries = g_list_prepend(summaries, summary);
	}
	g_list_free_full(rooms, paystream_room_unref_cb);
	/* Records first, durably; then what viewers and handlers are told. */
	paystream_backlog_flush();
	paystream_billing_commit();
	paystream_outbox_flush(&box);
	for(GList *l = summaries; l; l = l->next) {
		json_t *summary = l->data;
		paystream_notify(NULL, "room_usage", json_string_value(json_object_get(summary, "room")), summary);
	}
	g_list_free(summaries);
}

gint64 paystream_ticker_epoch_us;

/* One visit per whole second since the epoch (g_get_monotonic_time and
 * janus_get_monotonic_time, which the relay uses, are both CLOCK_MONOTONIC). A visit that comes late (the
 * spool's commit waited for a slow disk, the machine stalled) takes every
 * second since the last one: the relay marked them meanwhile (meter.h). */
static gpointer paystream_ticker_loop(gpointer data) {
	gint64 epoch = __atomic_load_n(&paystream_ticker_epoch_us, __ATOMIC_RELAXED);
	guint64 done = 0;	/* seconds accounted: [0, done) */
	g_mutex_lock(&paystream_ticker_mutex);
	while(paystream_ticker_running) {
		gint64 next = epoch + (gint64)(done + 1) * G_USEC_PER_SEC;
		if(g_cond_wait_until(&paystream_ticker_cond, &paystream_ticker_mutex, next) || !paystream_ticker_running)
			continue;	/* woken (stop) or spurious: look again */
		guint64 to = paystream_ticker_second(g_get_monotonic_time());
		if(to <= done)
			continue;
		g_mutex_unlock(&paystream_ticker_mutex);
		if(to - done > PAYSTREAM_METER_LOOKBACK)
			JANUS_LOG(LOG_ERR, "[paystream] the ticker is %" G_GUINT64_FORMAT " s late: only the last %d are "
				"billed, %" G_GUINT64_FORMAT " s of viewers' media are not\n", to - done - 1, PAYSTREAM_METER_LOOKBACK,
				to - done - PAYSTREAM_METER_LOOKBACK);
		else if(to - done > 1)
			JANUS_LOG(LOG_WARN, "[paystream] the ticker is %" G_GUINT64_FORMAT " s late: accounting for those "
				"seconds now\n", to - done - 1);
		paystream_tick(janus_get_real_time() / 1000, done, to);
		done = to;
		g_mutex_lock(&paystream_ticker_mutex);
	}
	g_mutex_unlock(&paystream_ticker_mutex);
	return NULL;
}

void paystream_metering_init(void) {
	__atomic_store_n(&paystream_ticker_epoch_us, g_get_monotonic_time(), __ATOMIC_RELAXED);
}

void paystream_ticker_start(void) {
	paystream_ticker_running = TRUE;
	paystream_ticker_thread = g_thread_new("paystream ticker", paystream_ticker_loop, NULL);
}

void paystream_ticker_stop(void) {
	if(paystream_ticker_thread == NULL)
		return;
	g_mutex_lock(&paystream_ticker_mutex);
	paystream_ticker_running = FALSE;
	g_cond_broadcast(&paystream_ticker_cond);
	g_mutex_unlock(&paystream_ticker_mutex);
	g_thread_join(paystream_ticker_thread);
	paystream_ticker_thread = NULL;
}

void paystream_metering_flush(void) {
	paystream_backlog_flush();
	paystream_billing_commit();
}

void paystream_metering_deinit(void) {
	GString *left = paystream_backlog_take();
	if(left == NULL)
		return;
	if(left->len > 0) {
		/* Refused by a full or broken spool until the end: never on disk. */
		guint records = 0;
		for(gsize i = 0; i < left->len; i++)
			records += left->str[i] == '\n';
		JANUS_LOG(LOG_ERR, "[paystream] %u usage record(s) could not be spooled before shutdown and are lost "
			"(the spool was full or broken; see the spool_error event)\n", records);
	}
	g_string_free(left, TRUE);
}
