// paystream.js - a small ES module wrapping janus.js for the paystream plugin
// (janus.plugin.paystream). See docs/CLIENT.md for the API and an example.
//
// The page loads the two classic scripts first (they define the globals this
// module uses):
//   <script src="lib/adapter.js"></script>   (webrtc-adapter: janus.js needs `adapter`)
//   <script src="lib/janus.js"></script>
//
// No build step, no framework.

export const PLUGIN = 'janus.plugin.paystream';

// docs/API.md "Error codes": stable code -> [name, readable text].
export const ERRORS = {
	440: ['invalid_json', 'The request was not valid JSON.'],
	441: ['invalid_request', 'The server did not understand the request.'],
	442: ['missing_element', 'A required field is missing.'],
	443: ['invalid_element', 'A field has a wrong value.'],
	444: ['no_such_room', 'There is no room with this name.'],
	445: ['room_exists', 'A room with this name already exists.'],
	446: ['unauthorized', 'Not authorized (wrong or missing secret).'],
	447: ['wrong_stream_key', 'The stream key is wrong.'],
	448: ['wrong_pin', 'The room PIN is wrong or missing.'],
	449: ['performer_present', 'Someone is already live in this room. Use "take over" with the right key to replace that connection.'],
	450: ['wrong_state', 'That is not possible right now.'],
	451: ['room_full', 'The room is full.'],
	452: ['invalid_jsep', 'The media negotiation failed (bad or missing offer/answer).'],
	453: ['invalid_sdp', 'Your browser offered no audio or video format this room accepts.'],
	454: ['no_such_participant', 'No such participant in the room.'],
	455: ['viewer_id_taken', 'You are already watching this room in another window or tab.'],
	456: ['config_error', 'The server could not save the change.'],
	457: ['token_required', 'This room needs a ticket (viewer token).'],
	458: ['invalid_token', 'Your ticket (token) was refused.'],
	459: ['billing_unavailable', 'Payments are unavailable right now; try again in a moment.'],
	460: ['invalid_tip', 'That tip is not allowed (amount or message out of limits, or already sent).'],
	461: ['rate_limited', 'Too many tips at once; wait a second.'],
	462: ['stopped', 'Your viewing session was stopped.'],
	499: ['internal_error', 'The server had an internal error.'],
};

// Token refusal reasons (error 458's text carries one of these).
const TOKEN_REASONS = {
	malformed: 'it is malformed', unsupported_alg: 'it is signed with an unsupported algorithm',
	bad_signature: 'its signature is wrong', token_expired: 'it has expired',
	not_yet_valid: 'it is not valid yet', wrong_room: 'it is for another room',
	missing_claim: 'it lacks a required field', wrong_role: 'it has the wrong role',
};

// `stopped` reasons and what a viewer reads.
export const STOP_REASONS = {
	insufficient_funds: 'out of funds',
	budget_exhausted: 'budget spent',
	token_expired: 'token expired',
	kicked: 'kicked',
	room_destroyed: 'room closed',
};

export class PaystreamError extends Error {
	constructor(code, text, request) {
		const known = ERRORS[code];
		let message = known ? known[1] : (text || 'Error ' + code);
		if (code === 458 && text) {
			const reason = Object.keys(TOKEN_REASONS).find((r) => text.includes(r));
			if (reason) message = 'Your ticket (token) was refused: ' + TOKEN_REASONS[reason] + '.';
		}
		super(message);
		this.code = code;
		this.name_ = known ? known[0] : 'error';
		this.detail = text || '';
		this.request = request || null;
	}
	get codeName() { return this.name_; }
}

// Default Janus servers for a page: WebSockets on 8188, then HTTP on 8088, on
// the page's own host. `server` (a URL, or several separated by commas)
// overrides them.
export function janusServers(server, loc = window.location) {
	if (server) {
		const list = String(server).split(',').map((s) => s.trim()).filter(Boolean);
		return list.length === 1 ? list[0] : list;
	}
	const secure = loc.protocol === 'https:';
	const host = loc.hostname.includes(':') ? '[' + loc.hostname + ']' : loc.hostname;
	return [(secure ? 'wss://' : 'ws://') + host + ':8188',
		(secure ? 'https://' : 'http://') + host + ':8088/janus'];
}

function janusGlobal() {
	const J = globalThis.Janus;
	if (!J) throw new Error('janus.js is not loaded (add <script src="lib/janus.js"> before this module)');
	return J;
}

let initPromise = null;
function initJanus(debug) {
	if (!initPromise) {
		initPromise = new Promise((resolve) => {
			const J = janusGlobal();
			J.init({ debug: debug || false, dependencies: J.useDefaultDependencies(), callback: resolve });
		});
	}
	return initPromise;
}

function randomId() {
	if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
	return Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 12);
}

class Emitter {
	constructor() { this._listeners = new Map(); }
	// on(name, fn): name is an event name or '*' (fn(name, data)). Returns an unsubscribe function.
	on(name, fn) {
		if (!this._listeners.has(name)) this._listeners.set(name, new Set());
		this._listeners.get(name).add(fn);
		return () => this._listeners.get(name).delete(fn);
	}
	emit(name, ...args) {
		for (const fn of this._listeners.get(name) || []) {
			try { fn(...args); } catch (e) { console.error('paystream listener', name, e); }
		}
		for (const fn of this._listeners.get('*') || []) {
			try { fn(name, ...args); } catch (e) { console.error('paystream listener *', e); }
		}
	}
}

// A connection to Janus (one Janus session). Events: 'disconnected' (reason),
// 'destroyed'.
export class PaystreamClient extends Emitter {
	constructor() {
		super();
		this.janus = null;
		this.connected = false;
	}

	// PaystreamClient.connect({server, iceServers, debug}) -> Promise<PaystreamClient>
	static async connect(opts = {}) {
		await initJanus(opts.debug);
		const client = new PaystreamClient();
		const J = janusGlobal();
		await new Promise((resolve, reject) => {
			let up = false;
			client.janus = new J({
				server: janusServers(opts.server),
				iceServers: opts.iceServers || [],
				success: () => { up = true; client.connected = true; resolve(); },
				error: (err) => {
					client.connected = false;
					if (!up) reject(new Error('Cannot reach the streaming server (' + err + ')'));
					else client.emit('disconnected', String(err));
				},
				destroyed: () => { client.connected = false; client.emit('destroyed'); },
			});
		});
		return client;
	}

	_attach(callbacks) {
		return new Promise((resolve, reject) => {
			this.janus.attach(Object.assign({
				plugin: PLUGIN,
				opaqueId: 'paystream-' + randomId(),
				success: resolve,
				error: (e) => reject(new Error('Cannot attach to the paystream plugin: ' + e)),
			}, callbacks));
		});
	}

	// A synchronous request (list, exists, ...) on a short-lived handle.
	async request(body) {
		const handle = await this._attach({});
		try {
			const data = await new Promise((resolve, reject) => {
				handle.send({ message: body, success: resolve, error: (e) => reject(new Error(e)) });
			});
			if (data && data.paystream === 'error') throw new PaystreamError(data.error_code, data.error, body.request);
			return data;
		} finally {
			handle.detach();
		}
	}

	// publish(opts) -> Promise<Performer> (resolves once 'published' arrived).
	async publish(opts) {
		const p = new Performer(this, opts);
		await p._start();
		return p;
	}

	// watch(opts) -> Promise<Viewer> (resolves once 'watching' arrived).
	async watch(opts) {
		const v = new Viewer(this, opts);
		await v._start();
		return v;
	}

	destroy() {
		if (!this.janus) return Promise.resolve();
		return new Promise((resolve) => {
			this.janus.destroy({ success: resolve, error: resolve, unload: false });
			setTimeout(resolve, 3000);
		});
	}
}

class Role extends Emitter {
	constructor(client) {
		super();
		this.client = client;
		this.handle = null;
		this.lastRequest = null;
		this.closed = false;
	}

	_send(body, jsep) {
		this.lastRequest = body.request;
		return new Promise((resolve, reject) => {
			if (!this.handle) return reject(new Error('not connected'));
			this.handle.send({
				message: body, jsep,
				success: (data) => {
					if (data && data.paystream === 'error') reject(new PaystreamError(data.error_code, data.error, body.request));
					else resolve(data);
				},
				error: (e) => reject(new Error(String(e))),
			});
		});
	}

	_callbacks() {
		return {
			onmessage: (msg, jsep) => this._onmessage(msg, jsep),
			webrtcState: (up, reason) => this.emit(up ? 'webrtcup' : 'hangup', reason),
			iceState: (state) => this.emit('ice', state),
			oncleanup: () => this.emit('cleanup'),
			detached: () => this.emit('detached'),
		};
	}

	_onmessage(msg, jsep) {
		const name = msg && msg.paystream;
		if (!name) return;
		if (name === 'error') {
			const err = new PaystreamError(msg.error_code, msg.error, this.lastRequest);
			this._onerror(err);
			this.emit('error', err);
			return;
		}
		this._onevent(name, msg, jsep);
		this.emit(name, msg, jsep);
	}

	_onerror() {}
	_onevent() {}

	get pc() {
		return this.handle && this.handle.webrtcStuff ? this.handle.webrtcStuff.pc : null;
	}

	// Leaves the role and drops the handle (a later publish/watch uses a new one).
	async leave() {
		if (this.closed) return;
		this.closed = true;
		try {
			await Promise.race([this._send({ request: 'leave' }), new Promise((r) => setTimeout(r, 2000))]);
		} catch (e) { /* already gone */ }
		await new Promise((resolve) => {
			if (!this.handle) return resolve();
			this.handle.detach({ success: resolve, error: resolve });
			setTimeout(resolve, 2000);
		});
		this.handle = null;
	}
}

// The performer. opts: room, streamKey or token, display, takeover, bitrate,
// stream (a MediaStream to send; else the default camera and microphone),
// simulcast (default true).
// Events: published, earnings, tip, replaced, kicked, destroyed, error,
// webrtcup, hangup, ice, localtrack.
export class Performer extends Role {
	constructor(client, opts) {
		super(client);
		this.opts = Object.assign({ simulcast: true }, opts);
		this.info = null;
	}

	async _start() {
		const o = this.opts;
		this.handle = await this.client._attach(Object.assign(this._callbacks(), {
			onlocaltrack: (track, on) => this.emit('localtrack', track, on),
		}));
		const tracks = [];
		const stream = o.stream;
		const audio = stream ? stream.getAudioTracks()[0] : null;
		const video = stream ? stream.getVideoTracks()[0] : null;
		// dontStop: the caller's tracks outlive this handle (janus.js would stop them on hang-up).
		if (!stream || audio) tracks.push({ type: 'audio', capture: audio || true, recv: false, dontStop: !!audio });
		if (!stream || video) tracks.push({ type: 'video', capture: video || true, recv: false, simulcast: !!o.simulcast, dontStop: !!video });
		const offer = await new Promise((resolve, reject) => {
			this.handle.createOffer({ tracks, success: resolve, error: (e) => reject(new Error('Cannot start the camera/microphone: ' + (e && e.message || e))) });
		});
		const body = { request: 'publish', room: o.room };
		if (o.streamKey) body.stream_key = o.streamKey;
		if (o.token) body.token = o.token;
		if (o.display) body.display = o.display;
		if (o.takeover) body.takeover = true;
		if (o.bitrate) body.bitrate = o.bitrate;
		const result = new Promise((resolve, reject) => {
			const offs = [
				this.on('published', (msg) => { offs.forEach((f) => f()); resolve(msg); }),
				this.on('error', (err) => { offs.forEach((f) => f()); reject(err); }),
			];
		});
		try {
			await this._send(body, offer);
			this.info = await result;
		} catch (e) {
			await this._drop();
			throw e;
		}
		return this;
	}

	async _drop() {
		this.closed = true;
		if (this.handle) {
			const h = this.handle;
			this.handle = null;
			await new Promise((resolve) => { h.detach({ success: resolve, error: resolve }); setTimeout(resolve, 2000); });
		}
	}

	_onevent(name, msg, jsep) {
		if (name === 'published' && jsep) this.handle.handleRemoteJsep({ jsep });
	}

	// configure({bitrate, keyframe})
	configure(opts = {}) {
		const body = { request: 'configure' };
		if (opts.bitrate !== undefined) body.bitrate = opts.bitrate;
		if (opts.keyframe) body.keyframe = true;
		return this._send(body);
	}

	// Sends a new camera or microphone track without renegotiating.
	async replaceTrack(track) {
		const pc = this.pc;
		if (!pc) return;
		const sender = pc.getSenders().find((s) => s.track && s.track.kind === track.kind);
		if (sender) await sender.replaceTrack(track);
	}

	// Stops publishing and gives up the handle.
	stop() { return this.leave(); }
}

// A viewer. opts: room, token, pin, display, viewerId.
// Events: watching, live, offline, started, paused, resumed, configured,
// simulcast, tick, stopped, tip, tip_result, refreshed, kicked, destroyed,
// left, error, track (MediaStream), webrtcup, hangup, ice.
export class Viewer extends Role {
	constructor(client, opts) {
		super(client);
		this.opts = opts;
		this.stream = new MediaStream();
		this.tips = new Map(); // tip_id -> {resolve, reject, onpending}
		this.info = null;
	}

	async _start() {
		const o = this.opts;
		this.handle = await this.client._attach(Object.assign(this._callbacks(), {
			onremotetrack: (track, mid, on) => this._onTrack(track, on),
		}));
		const body = { request: 'watch', room: o.room };
		if (o.token) body.token = o.token;
		if (o.pin) body.pin = o.pin;
		if (o.display) body.display = o.display;
		if (o.viewerId) body.viewer_id = o.viewerId;
		const result = new Promise((resolve, reject) => {
			const offs = [
				this.on('watching', (msg) => { offs.forEach((f) => f()); resolve(msg); }),
				this.on('error', (err) => { offs.forEach((f) => f()); reject(err); }),
			];
		});
		try {
			await this._send(body);
			this.info = await result;
		} catch (e) {
			this.closed = true;
			if (this.handle) { const h = this.handle; this.handle = null; h.detach(); }
			throw e;
		}
		return this;
	}

	_onTrack(track, on) {
		for (const t of this.stream.getTracks()) {
			if (t.kind === track.kind && t !== track) this.stream.removeTrack(t);
		}
		if (on && !this.stream.getTracks().includes(track)) this.stream.addTrack(track);
		if (!on && this.stream.getTracks().includes(track)) this.stream.removeTrack(track);
		this.emit('track', this.stream, track, on);
	}

	_onevent(name, msg, jsep) {
		if (jsep && jsep.type === 'offer') this._answer(jsep);
		if (name === 'tip_result') {
			const t = this.tips.get(msg.tip_id);
			if (!t) return;
			if (msg.status === 'pending') {
				if (t.onpending) t.onpending(msg);
			} else {
				this.tips.delete(msg.tip_id);
				t.resolve(msg);
			}
		}
	}

	_onerror(err) {
		if (err.request === 'tip') {
			// The plugin answers requests in order: fail the oldest tip still waiting for its first reply.
			for (const [id, t] of this.tips) {
				if (!t.replied) { this.tips.delete(id); t.reject(err); break; }
			}
		}
	}

	_answer(jsep) {
		this.handle.createAnswer({
			jsep,
			// No capture: the offered audio and video are accepted receive-only.
			tracks: [{ type: 'data' }],
			success: (answer) => {
				this._send({ request: 'start' }, answer).catch((e) => this.emit('error', e));
			},
			error: (e) => this.emit('error', new Error('Cannot answer the offer: ' + (e && e.message || e))),
		});
	}

	pause() { return this._send({ request: 'pause' }); }
	resume() { return this._send({ request: 'resume' }); }

	// setQuality('high'|'medium'|'low') or a substream number 0..2.
	setQuality(q, temporal) {
		const substream = typeof q === 'number' ? q : { high: 2, medium: 1, low: 0 }[q];
		const body = { request: 'configure', substream };
		if (temporal !== undefined) body.temporal = temporal;
		return this._send(body);
	}

	// refresh(token) -> Promise of the `refreshed` event ({exp, budget, resumed});
	// rejects with a PaystreamError (e.g. 458 when the token is refused). The
	// new token's exp and budget replace the old ones; a session stopped with
	// budget_exhausted gets media again when the new budget pays for more.
	refresh(token) {
		return new Promise((resolve, reject) => {
			const offs = [
				this.on('refreshed', (msg) => { offs.forEach((f) => f()); this.opts.token = token; resolve(msg); }),
				this.on('error', (err) => { if (err.request === 'refresh') { offs.forEach((f) => f()); reject(err); } }),
			];
			this._send({ request: 'refresh', token }).catch((e) => { offs.forEach((f) => f()); reject(e); });
		});
	}

	// tip({amount, message, tipId, onpending}) -> Promise<tip_result> that
	// resolves with the final result (status accepted, declined or failed), or
	// rejects with a PaystreamError (e.g. 460, 461).
	tip({ amount, message, tipId, onpending } = {}) {
		const tip_id = tipId || randomId();
		const body = { request: 'tip', amount: Number(amount), tip_id };
		if (message) body.message = message;
		return new Promise((resolve, reject) => {
			const entry = { resolve, reject, replied: false, onpending: (m) => { entry.replied = true; if (onpending) onpending(m); } };
			this.tips.set(tip_id, entry);
			this._send(body).catch((e) => { this.tips.delete(tip_id); reject(e); });
		});
	}
}

// Formats an amount of the room's unit: "12 credits".
export function formatAmount(amount, currency) {
	return (amount === undefined || amount === null ? 0 : amount) + ' ' + (currency || '');
}
