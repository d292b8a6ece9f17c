/* test_meter.c - per-second accounting: which seconds count, budgets,
 * refreshes, overflow, and records that always add up to the totals. */
#include "unit.h"

#include <glib.h>

#include "../../plugin/meter.h"

#define T0 1700000000000LL

/* Tick n times from *now (advancing it a second each time), the relay having
 * sent media in those seconds or not; returns how many seconds counted. */
static int run(paystream_meter *m, gboolean media, int n, gint64 *now) {
	int counted = 0;
	for(int i = 0; i < n; i++) {
		*now += 1000;
		if(paystream_meter_tick(m, media, *now))
			counted++;
	}
	return counted;
}

int main(void) {
	no_plan();
	paystream_meter m;
	paystream_meter_record r;
	gint64 now = T0;

	/* A real session: 10 billable seconds at 7 per second. */
	paystream_meter_init(&m, 7, "credits", PAYSTREAM_METER_NO_BUDGET);
	is_str(m.currency, "credits", "currency copied");
	ok(!m.stopped, "a new meter runs");
	ok(!paystream_meter_take_record(&m, &r), "nothing to record yet");
	is_int(run(&m, TRUE, 10, &now), 10, "10 billable seconds counted");
	is_int(m.total_seconds, 10, "total seconds");
	is_int(m.total_amount, 70, "total amount = 10 x price");
	ok(paystream_meter_take_record(&m, &r), "a record");
	is_int(r.seq, 1, "first record seq 1");
	is_int(r.seconds, 10, "record seconds");
	is_int(r.amount, 70, "record amount");
	is_int(r.start_ms, T0, "span starts at the start of the first second");
	is_int(r.end_ms, T0 + 10000, "span ends at the last tick");
	ok(!paystream_meter_take_record(&m, &r), "pending span reset");

	/* A second without media is free: the relay sends none while the viewer
	 * is paused, waiting or offered, its PeerConnection down, or the
	 * performer offline, so those seconds are never billed. */
	is_int(run(&m, FALSE, 5, &now), 0, "no media relayed: not counted");
	is_int(m.total_seconds, 10, "totals unchanged by free seconds");
	ok(!paystream_meter_take_record(&m, &r), "free seconds make no record");
	is_int(run(&m, TRUE, 2, &now), 2, "back to watching");
	run(&m, FALSE, 4, &now);	/* paused */
	is_int(run(&m, TRUE, 1, &now), 1, "resumed");
	ok(paystream_meter_take_record(&m, &r), "record across a pause");
	is_int(r.seq, 2, "second record seq 2");
	is_int(r.seconds, 3, "3 counted seconds in the span");
	is_int(r.amount, 21, "their amount");
	is_int(r.end_ms - r.start_ms, 7000, "the span covers the paused seconds too");
	paystream_meter_stop(&m, "left");
	paystream_meter_stop(&m, "kicked");
	is_str(m.stop_reason, "left", "first stop reason kept");
	is_int(run(&m, TRUE, 3, &now), 0, "stopped: nothing counted");
	ok(!paystream_meter_refresh(&m, 1000000), "a refresh does not restart a meter that left");
	paystream_meter_clear(&m);
	ok(m.currency == NULL, "clear frees the currency");

	/* Budget exhaustion exactly at the boundary. */
	paystream_meter_init(&m, 5, NULL, 50);
	is_int(run(&m, TRUE, 9, &now), 9, "9 seconds within a budget of 10 seconds");
	ok(!m.stopped, "still running with one second left");
	ok(paystream_meter_tick(&m, TRUE, now += 1000), "the 10th second is paid exactly");
	is_int(m.total_amount, 50, "total equals the budget");
	ok(m.stopped, "stopped at once: the next second cannot be paid");
	is_str(m.stop_reason, "budget_exhausted", "reason budget_exhausted");
	ok(!paystream_meter_tick(&m, TRUE, now += 1000), "the 11th second is not counted");
	is_int(m.total_amount, 50, "never above the budget");

	/* Refresh extends. */
	ok(paystream_meter_refresh(&m, 60), "a refreshed budget restarts the meter");
	ok(!m.stopped && m.stop_reason == NULL, "running again");
	is_int(run(&m, TRUE, 5, &now), 2, "two more seconds fit in the new budget");
	is_int(m.total_amount, 60, "total at the new budget");
	ok(m.stopped, "stopped again at the new boundary");
	ok(!paystream_meter_refresh(&m, 64), "a budget that pays no full second does not restart");
	ok(paystream_meter_refresh(&m, PAYSTREAM_METER_NO_BUDGET), "no budget any more: runs");
	is_int(run(&m, TRUE, 3, &now), 3, "unlimited");
	ok(!paystream_meter_refresh(&m, 70), "a running meter whose new budget is spent stops");
	is_str(m.stop_reason, "budget_exhausted", "because of the budget");
	gint64 rec_seconds = 0, rec_amount = 0;
	while(paystream_meter_take_record(&m, &r)) {
		rec_seconds += r.seconds;
		rec_amount += r.amount;
	}
	is_int(rec_seconds, m.total_seconds, "records cover every second");
	is_int(rec_amount, m.total_amount, "records cover every amount");
	paystream_meter_clear(&m);

	/* A budget that does not divide by the price. */
	paystream_meter_init(&m, 3, NULL, 10);
	is_int(run(&m, TRUE, 10, &now), 3, "3 seconds of 3 in a budget of 10");
	is_int(m.total_amount, 9, "9 spent, 1 left unspent");
	paystream_meter_clear(&m);
	paystream_meter_init(&m, 3, NULL, 2);
	ok(m.stopped, "a budget below the price stops at init");
	is_str(m.stop_reason, "budget_exhausted", "reason");
	paystream_meter_clear(&m);
	paystream_meter_init(&m, 0, "credits", 0);
	is_int(run(&m, TRUE, 4, &now), 4, "free room: seconds still counted");
	is_int(m.total_amount, 0, "for nothing");
	ok(!m.stopped, "a zero budget is enough for a free room");
	paystream_meter_clear(&m);
	paystream_meter_init(&m, -1, NULL, PAYSTREAM_METER_NO_BUDGET);
	ok(m.stopped, "a negative price stops the meter");
	is_str(m.stop_reason, "invalid_price", "reason invalid_price");
	paystream_meter_clear(&m);

	/* Overflow: the second that would overflow is not counted. */
	paystream_meter_init(&m, G_MAXINT64 / 2, NULL, PAYSTREAM_METER_NO_BUDGET);
	is_int(run(&m, TRUE, 3, &now), 2, "two huge seconds counted");
	ok(m.stopped, "the third would overflow");
	is_str(m.stop_reason, "amount_overflow", "reason amount_overflow");
	is_int(m.total_amount, (G_MAXINT64 / 2) * 2, "total is exact, not wrapped");
	paystream_meter_clear(&m);
	paystream_meter_init(&m, G_MAXINT64, NULL, G_MAXINT64);
	is_int(run(&m, TRUE, 2, &now), 1, "price = budget = max: one second");
	is_str(m.stop_reason, "budget_exhausted", "then the budget");
	paystream_meter_clear(&m);

	/* Seconds marked by the relay, accounted by the ticker (paystream_meter_tick_seconds). */
	{
		paystream_meter mm;
		paystream_media_marks media = { 0, 0 };
		paystream_meter_init(&mm, 2, NULL, PAYSTREAM_METER_NO_BUDGET);
		paystream_meter_mark(&media, 5);
		paystream_meter_mark(&media, 5);
		is_int(paystream_meter_tick_seconds(&mm, &media, 5, 6, T0), 1, "one marked second, billed once");
		is_int(paystream_meter_tick_seconds(&mm, &media, 6, 7, T0 + 1000), 0, "a second without media: free");
		/* A ticker 6 s late (a slow disk): every marked second is still billed. */
		for(guint64 sec = 7; sec < 13; sec++)
			if(sec != 9)
				paystream_meter_mark(&media, sec);
		paystream_meter_mark(&media, 13);	/* the second in progress when the ticker wakes */
		is_int(paystream_meter_tick_seconds(&mm, &media, 7, 13, T0 + 7000), 5,
			"a late visit bills the 5 marked seconds of 6");
		ok(paystream_meter_take_record(&mm, &r), "a record of them");
		is_int(r.seconds, 6, "with the seconds before");
		is_int(r.start_ms, T0 - 1000, "from the first second's start");
		is_int(r.end_ms, T0 + 7000, "to the last one's end");
		is_int(paystream_meter_tick_seconds(&mm, &media, 13, 14, T0 + 8000), 1,
			"the second in progress is billed at the next visit");
		/* Marks are only read: a second is billed by the visit whose range
		 * holds it, never by a later one. */
		is_int(paystream_meter_tick_seconds(&mm, &media, 14, 15, T0 + 9000), 0, "not billed again");
		is_int(paystream_meter_tick_seconds(&mm, &media, 15, 15 + 64, T0 + 73000), 0,
			"nor 64 seconds later, when its bit would stand for another second");
		/* Media in 10..39, then none, the ticker stalled until 110: the
		 * seconds it can look back at (46..109) had no media. */
		paystream_media_marks old = { 0, 0 };
		for(guint64 sec = 10; sec < 40; sec++)
			paystream_meter_mark(&old, sec);
		gint64 before = mm.total_seconds;
		is_int(paystream_meter_tick_seconds(&mm, &old, 10, 110, T0 + 110000), 0,
			"a stall longer than the lookback bills no second without media");
		/* Media only in second 10, visits at 73 and 75. */
		paystream_media_marks once = { 0, 0 };
		paystream_meter_mark(&once, 10);
		is_int(paystream_meter_tick_seconds(&mm, &once, 0, 73, T0), 1, "second 10, within the lookback");
		is_int(paystream_meter_tick_seconds(&mm, &once, 73, 75, T0 + 2000), 0, "and no phantom 74 (10 + 64)");
		is_int(mm.total_seconds, before + 1, "totals");
		/* The relay clears the seconds it skipped. */
		paystream_media_marks gap = { 0, 0 };
		for(guint64 sec = 36; sec < 41; sec++)
			paystream_meter_mark(&gap, sec);
		paystream_meter_mark(&gap, 100);
		ok(!paystream_meter_marked(&gap, 36) && paystream_meter_marked(&gap, 37) && paystream_meter_marked(&gap, 40) &&
			!paystream_meter_marked(&gap, 41) && !paystream_meter_marked(&gap, 99) && paystream_meter_marked(&gap, 100),
			"a gap of 59 s: the marks within the last 64 s kept, the skipped seconds unmarked");
		paystream_meter_mark(&gap, 101);
		paystream_meter_mark(&gap, 150);
		ok(paystream_meter_marked(&gap, 100) && paystream_meter_marked(&gap, 101) && paystream_meter_marked(&gap, 150) &&
			!paystream_meter_marked(&gap, 102) && !paystream_meter_marked(&gap, 149) && !paystream_meter_marked(&gap, 164),
			"a gap of 49 s: the seconds before it kept, the skipped ones and later ones unmarked");
		paystream_meter_mark(&gap, 80);
		ok(!paystream_meter_marked(&gap, 80) && !paystream_meter_marked(&gap, 144), "a mark 70 s late is ignored");
		paystream_meter_mark(&gap, 90);
		ok(paystream_meter_marked(&gap, 90) && !paystream_meter_marked(&gap, 154), "one 60 s late is its own second");
		paystream_meter_mark(&gap, 155);
		ok(!paystream_meter_marked(&gap, 90) && !paystream_meter_marked(&gap, 154) && paystream_meter_marked(&gap, 155),
			"and is gone once the relay moved 64 s past it");
		paystream_meter_mark(&gap, 149);
		ok(paystream_meter_marked(&gap, 149) && paystream_meter_marked(&gap, 150), "a mark 1 s late is kept");
		/* Longer than the lookback: the last 63 seconds are billed. */
		paystream_media_marks all = { 0, 0 };
		for(guint64 sec = 200; sec < 300; sec++)
			paystream_meter_mark(&all, sec);
		before = mm.total_seconds;
		is_int(paystream_meter_tick_seconds(&mm, &all, 100, 300, T0 + 300000), PAYSTREAM_METER_LOOKBACK,
			"a stall of 200 s with media throughout: the last 63 seconds");
		is_int(mm.total_amount, 2 * mm.total_seconds, "amount");
		paystream_meter_clear(&mm);
		/* A budget that runs out in a late visit stops it there. */
		paystream_meter_init(&mm, 2, NULL, 3 * 2);
		paystream_media_marks five = { 0, 0 };
		for(guint64 sec = 0; sec < 5; sec++)
			paystream_meter_mark(&five, sec);
		is_int(paystream_meter_tick_seconds(&mm, &five, 0, 5, T0), 3, "3 seconds of 5 in a budget of 3");
		ok(mm.stopped, "then stopped");
		is_str(mm.stop_reason, "budget_exhausted", "by its budget");
		paystream_meter_clear(&mm);
	}

	/* Whether a budget would pay for one more second, changing nothing. */
	{
		paystream_meter fm;
		paystream_meter_init(&fm, 5, NULL, 100);
		gint64 t = T0;
		run(&fm, TRUE, 4, &t);	/* 20 spent */
		ok(paystream_meter_budget_fits(&fm, PAYSTREAM_METER_NO_BUDGET), "no budget fits");
		ok(paystream_meter_budget_fits(&fm, 25), "25 pays one more second after 20");
		ok(!paystream_meter_budget_fits(&fm, 24), "24 does not");
		ok(!paystream_meter_budget_fits(&fm, 10), "nor a budget below what was spent");
		is_int(fm.budget, 100, "the meter's own budget unchanged");
		ok(!fm.stopped, "and it still runs");
		ok(!paystream_meter_refresh(&fm, 24), "refresh agrees: 24 stops it");
		paystream_meter_clear(&fm);
	}

	/* Records split the totals exactly, however they are taken. */
	GRand *rand = g_rand_new_with_seed(42);
	paystream_meter_init(&m, 13, NULL, 13 * 5000);
	gint64 sum_s = 0, sum_a = 0;
	guint64 expect_seq = 1;
	gboolean seq_ok = TRUE, amounts_ok = TRUE;
	for(int i = 0; i < 12000; i++) {
		now += 1000;
		paystream_meter_tick(&m, g_rand_int_range(rand, 0, 5) != 0, now);
		if(g_rand_int_range(rand, 0, 7) == 0 && paystream_meter_take_record(&m, &r)) {
			if(r.seq != expect_seq++)
				seq_ok = FALSE;
			if(r.amount != r.seconds * 13)
				amounts_ok = FALSE;
			sum_s += r.seconds;
			sum_a += r.amount;
		}
	}
	if(paystream_meter_take_record(&m, &r)) {
		sum_s += r.seconds;
		sum_a += r.amount;
	}
	g_rand_free(rand);
	ok(m.stopped && m.total_amount == 13 * 5000, "random session ends at its budget");
	is_int(sum_s, m.total_seconds, "sum of record seconds = total seconds");
	is_int(sum_a, m.total_amount, "sum of record amounts = total amount");
	ok(seq_ok, "record seqs are 1, 2, 3... without gaps");
	ok(amounts_ok, "each record's amount is its seconds x price");
	paystream_meter_clear(&m);
	/* A record the spool refused goes back: nothing lost, seq reused. */
	{
		paystream_meter pb;
		gint64 t = 1000000;
		paystream_meter_init(&pb, 5, "credits", PAYSTREAM_METER_NO_BUDGET);
		run(&pb, TRUE, 3, &t);
		paystream_meter_record r1, r2;
		ok(paystream_meter_take_record(&pb, &r1), "take a record to put back");
		run(&pb, TRUE, 2, &t);
		paystream_meter_put_back(&pb, &r1);
		ok(paystream_meter_take_record(&pb, &r2), "take it again with the newer seconds");
		is_int(r2.seq, r1.seq, "the seq is reused");
		is_int(r2.seconds, 5, "3 put back + 2 newer seconds");
		is_int(r2.amount, 25, "their amount");
		is_int(r2.start_ms, r1.start_ms, "the span starts where the put-back record started");
		paystream_meter_record r3;
		run(&pb, TRUE, 1, &t);
		ok(paystream_meter_take_record(&pb, &r3), "a newer record");
		paystream_meter_put_back(&pb, &r2);
		is_int(pb.pending_seconds, 0, "an older record cannot be put back");
		paystream_meter_clear(&pb);
	}
	return done_testing();
}
