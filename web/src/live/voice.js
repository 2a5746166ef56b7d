// Tour voice over WebRTC, signalled through the server's `rtc.signal` relay (docs/protocol.md).
//
// A star around the guide, not a full mesh: every member opens one peer connection to the guide
// and offers two audio transceivers, [0] its microphone <-> the guide's voice, [1] receive-only,
// on which the guide relays the spotlighted member (RTCRtpSender.replaceTrack, so a spotlight
// change needs no renegotiation). N members cost the guide N connections, each member one.
// The microphone is asked for only when the visitor joins (or leads) a tour; refused, the tour
// works on: the member still hears the guide.

const SPEAKING_LEVEL = 0.02; // RMS of the microphone signal above which the speaking flag is set

export class Voice {
  /**
   * @param {(message: object) => boolean} send sends a control message to the tour server
   * @param {() => void} onChange called when mic state or peers change (to redraw the UI)
   */
  constructor(send, onChange = () => {}) {
    this.send = send;
    this.onChange = onChange;
    this.role = null; // "guide" | "member" | null
    this.guideId = null;
    this.micState = "off"; // off | asking | on | refused | unavailable
    this.mic = null;
    this.micPromise = null;
    this.selfMuted = false;
    this.guideMuted = false;
    this.peers = new Map(); // avatar id -> {pc, pendingIce, audio, track}
    this.spotlight = null;
    this.muted = new Set();
    this._level = null;
  }

  get micTrack() {
    return this.mic?.getAudioTracks()[0] ?? null;
  }

  /** Whether the local microphone is live and loud enough to light the speaking flag. */
  get speaking() {
    if (!this._level || !this.micTrack?.enabled) return false;
    const { analyser, buffer } = this._level;
    analyser.getFloatTimeDomainData(buffer);
    let sum = 0;
    for (const v of buffer) sum += v * v;
    return Math.sqrt(sum / buffer.length) > SPEAKING_LEVEL;
  }

  describe() {
    return {
      role: this.role,
      mic: this.micState,
      selfMuted: this.selfMuted,
      guideMuted: this.guideMuted,
      peers: Object.fromEntries([...this.peers].map(([id, p]) => [id, p.pc.connectionState])),
    };
  }

  /** Audio bytes received and sent per peer and transceiver (mid), from getStats(): for tests. */
  async stats() {
    const out = {};
    for (const [id, peer] of this.peers) {
      const report = await peer.pc.getStats();
      const entry = { state: peer.pc.connectionState, received: {}, sent: {} };
      report.forEach((s) => {
        if (s.kind !== "audio") return;
        if (s.type === "inbound-rtp") entry.received[s.mid] = s.bytesReceived;
        if (s.type === "outbound-rtp") entry.sent[s.mid] = s.bytesSent;
      });
      out[id] = entry;
    }
    return out;
  }

  async _askMic() {
    if (this.micPromise) return this.micPromise;
    this.micState = "asking";
    this.onChange();
    this.micPromise = (async () => {
      try {
        if (!navigator.mediaDevices?.getUserMedia) throw Object.assign(new Error("no media devices"), { name: "NotFoundError" });
        this.mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
        this.micState = "on";
        this._meter();
        this._applyMute();
      } catch (error) {
        this.micState = error?.name === "NotAllowedError" || error?.name === "SecurityError" ? "refused" : "unavailable";
      }
      this.onChange();
      return this.mic;
    })();
    return this.micPromise;
  }

  _meter() {
    try {
      const context = new AudioContext();
      const analyser = context.createAnalyser();
      analyser.fftSize = 512;
      context.createMediaStreamSource(this.mic).connect(analyser);
      this._level = { context, analyser, buffer: new Float32Array(analyser.fftSize) };
    } catch {
      this._level = null; // no speaking flag; the voice itself still works
    }
  }

  /** Join a tour's voice as a member: ask for the mic, then offer to the guide. */
  async joinAsMember(guideId) {
    if (this.role === "member" && this.guideId === guideId) return;
    this.stop();
    this.role = "member";
    this.guideId = guideId;
    await this._askMic();
    if (this.role !== "member" || this.guideId !== guideId) return; // left meanwhile
    const peer = this._peer(guideId);
    const track = this.micTrack;
    if (track) peer.pc.addTransceiver(track, { direction: "sendrecv", streams: [this.mic] });
    else peer.pc.addTransceiver("audio", { direction: "recvonly" });
    peer.pc.addTransceiver("audio", { direction: "recvonly" }); // the spotlighted member, relayed
    const offer = await peer.pc.createOffer();
    await peer.pc.setLocalDescription(offer);
    this._signal(guideId, "offer", peer.pc.localDescription);
  }

  /** Lead a tour's voice: ask for the mic; members' offers are answered as they come. */
  async lead() {
    if (this.role === "guide") return;
    this.stop();
    this.role = "guide";
    this.guideId = null;
    await this._askMic();
  }

  /** Leave the tour's voice: close every connection and release the microphone. */
  stop() {
    for (const id of [...this.peers.keys()]) this.drop(id);
    this.mic?.getTracks().forEach((t) => t.stop());
    this._level?.context.close().catch(() => {});
    this._level = null;
    this.mic = null;
    this.micPromise = null;
    this.micState = "off";
    this.role = null;
    this.guideId = null;
    this.spotlight = null;
    this.muted = new Set();
    this.guideMuted = false;
    this.onChange();
  }

  drop(id) {
    const peer = this.peers.get(id);
    if (!peer) return;
    peer.pc.close();
    peer.audio?.pause();
    this.peers.delete(id);
    this.onChange();
  }

  setSelfMuted(muted) {
    this.selfMuted = muted;
    this._applyMute();
    this.onChange();
  }

  /** The tour's mute list and spotlight changed (tour state from the server). */
  update({ me, muted, spotlight }) {
    this.muted = new Set(muted);
    this.guideMuted = this.muted.has(me);
    this._applyMute();
    for (const [id, peer] of this.peers) if (peer.audio) peer.audio.muted = this.role === "guide" && this.muted.has(id);
    if (this.role === "guide" && spotlight !== this.spotlight) {
      this.spotlight = spotlight;
      this._relaySpotlight();
    }
  }

  _applyMute() {
    const track = this.micTrack;
    if (track) track.enabled = !this.selfMuted && !this.guideMuted;
  }

  _relaySpotlight() {
    const source = this.spotlight === null ? null : this.peers.get(this.spotlight);
    const track = source && !this.muted.has(this.spotlight) ? source.track : null;
    for (const [id, peer] of this.peers) {
      const relay = peer.pc.getTransceivers()[1];
      if (!relay || relay.stopped) continue;
      relay.sender.replaceTrack(id === this.spotlight ? null : track).catch(() => {});
    }
  }

  _peer(id) {
    this.drop(id);
    const pc = new RTCPeerConnection({ iceServers: [] });
    const peer = { pc, pendingIce: [], audio: null, track: null };
    pc.addEventListener("icecandidate", (event) => {
      if (event.candidate) this._signal(id, "ice", event.candidate);
    });
    pc.addEventListener("track", (event) => this._track(id, peer, event));
    pc.addEventListener("connectionstatechange", () => this.onChange());
    this.peers.set(id, peer);
    this.onChange();
    return peer;
  }

  _track(id, peer, event) {
    const index = peer.pc.getTransceivers().indexOf(event.transceiver);
    if (this.role === "guide" && index === 0) {
      peer.track = event.track; // a member's voice: the guide hears it, and relays it when spotlighted
      if (this.spotlight === id) this._relaySpotlight();
    }
    const audio = new Audio();
    audio.autoplay = true;
    audio.srcObject = new MediaStream([event.track]);
    audio.muted = this.role === "guide" && this.muted.has(id);
    audio.play().catch(() => {}); // autoplay may wait for a gesture; the join click usually was one
    if (index === 0) peer.audio = audio;
    else peer.relayAudio = audio;
  }

  _signal(to, kind, payload) {
    this.send({ type: "rtc.signal", to, kind, data: JSON.stringify(payload) });
  }

  /** An rtc.signal from the server: {from, kind, data}; handled one at a time, in order, so
   * ICE candidates that follow an offer wait until the answer is made. */
  receive(message) {
    this._queue = (this._queue ?? Promise.resolve()).then(() => this._receive(message));
    return this._queue;
  }

  async _receive({ from, kind, data }) {
    let payload;
    try {
      payload = JSON.parse(data);
    } catch {
      return;
    }
    try {
      if (kind === "offer" && this.role === "guide") await this._answer(from, payload);
      else if (kind === "answer" && this.role === "member" && from === this.guideId) {
        const peer = this.peers.get(from);
        if (!peer) return;
        await peer.pc.setRemoteDescription(payload);
        await this._flushIce(peer);
      } else if (kind === "ice") {
        const peer = this.peers.get(from);
        if (!peer) return;
        if (peer.pc.remoteDescription) await peer.pc.addIceCandidate(payload);
        else peer.pendingIce.push(payload);
      }
    } catch (error) {
      console.warn("live: voice signalling failed", error);
    }
  }

  async _answer(from, offer) {
    await this._askMic();
    const peer = this._peer(from);
    await peer.pc.setRemoteDescription(offer);
    const [voice, relay] = peer.pc.getTransceivers();
    if (voice) {
      voice.direction = "sendrecv";
      if (this.micTrack) await voice.sender.replaceTrack(this.micTrack);
    }
    if (relay) relay.direction = "sendonly";
    const answer = await peer.pc.createAnswer();
    await peer.pc.setLocalDescription(answer);
    this._signal(from, "answer", peer.pc.localDescription);
    await this._flushIce(peer);
    this._relaySpotlight();
  }

  async _flushIce(peer) {
    const pending = peer.pendingIce.splice(0);
    for (const candidate of pending) await peer.pc.addIceCandidate(candidate).catch(() => {});
  }
}
