// Helpers shared by the demo pages (not part of the paystream.js API).

export const $ = (id) => document.getElementById(id);

export function params() {
	return new URLSearchParams(window.location.search);
}

// setState(state, text): the page's state badge and <body data-state>.
// Every change is also kept in window.paystreamStates ({state, text, at:
// performance.now()}, the last 200) so a test or a support person can see
// short-lived states such as `reconnecting`.
export function setState(state, text) {
	if (document.body.dataset.state !== state) {
		const log = window.paystreamStates || (window.paystreamStates = []);
		log.push({ state, text, at: performance.now() });
		if (log.length > 200) log.shift();
	}
	document.body.dataset.state = state;
	const badge = $('state');
	if (badge) {
		badge.dataset.state = state;
		badge.textContent = text;
	}
}

export function showError(text) {
	const el = $('error');
	if (el) el.textContent = text || '';
}

export function errorText(err) {
	if (!err) return '';
	if (err.code) return err.message + ' (error ' + err.code + (err.codeName ? ' ' + err.codeName : '') + ')';
	return err.message || String(err);
}

// addTip(list, tip): one tip in a feed, newest first. Everything the
// viewer typed goes in with textContent, never as HTML.
export function addTip(list, tip) {
	const li = document.createElement('li');
	li.dataset.tipId = tip.tip_id || '';
	const who = document.createElement('span');
	who.className = 'who';
	who.textContent = tip.display || 'someone';
	const amt = document.createElement('span');
	amt.className = 'amt';
	amt.textContent = tip.amount + ' ' + (tip.currency || '');
	li.append(who, amt);
	if (tip.message) {
		const msg = document.createElement('span');
		msg.className = 'msg';
		msg.textContent = tip.message;
		li.append(msg);
	}
	list.prepend(li);
	while (list.children.length > 100) list.lastChild.remove();
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
