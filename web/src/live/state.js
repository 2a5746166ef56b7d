// What the page knows of the hall's live side: members, live and scheduled tours, the tour this
// visitor is in, chat. Server messages in, plain data out; no DOM, no three.js, no socket.
//
// Tour events of one's own tour are applied in seq order (docs/protocol.md "Tour events"): a
// repeated seq is dropped, a gap makes apply() answer {sync: tourId} and the events wait for the
// snapshot. Other tours are only announced (started, ended) and their seqs are not tracked.

export const MAX_MESSAGES = 200;

function summaryOf(snapshot) {
  return {
    id: snapshot.id,
    title: snapshot.title,
    guide: snapshot.guide,
    members: Array.isArray(snapshot.members) ? snapshot.members.length : snapshot.members,
    capacity: snapshot.capacity,
  };
}

export class LiveState {
  constructor() {
    this.me = null; // {id, name, role}
    this.members = new Map(); // avatar id -> {id, name, role, away}
    this.tours = new Map(); // live tour id -> {id, title, guide, members (count), capacity}
    this.scheduled = []; // [{id, title, capacity}]
    this.tour = null; // the snapshot of the tour this visitor is in (kept up to date)
    this.messages = [];
    this.note = null; // a one-off line for the tour panel ("the guide removed you from the tour")
    this.waitingSync = null; // tour id whose snapshot is awaited after a gap
  }

  get isGuide() {
    return Boolean(this.tour && this.me && this.tour.guide.id === this.me.id);
  }

  get mayGuide() {
    return this.me?.role === "guide" || this.me?.role === "admin";
  }

  welcome(message) {
    this.me = message.you;
    this.members = new Map(message.members.map((m) => [m.id, m]));
    this.tours = new Map(message.tours.map((t) => [t.id, summaryOf(t)]));
    this.scheduled = message.scheduled ?? [];
    const mine = message.tour_id ? message.tours.find((t) => t.id === message.tour_id) : null;
    // A resume keeps the tour; its missed events (or a snapshot) follow this message.
    if (mine && (!this.tour || this.tour.id !== mine.id)) this.tour = structuredClone(mine);
    if (!message.tour_id) this.tour = null;
    this.waitingSync = null;
  }

  presence(message) {
    for (const { event, member } of message.changes) {
      if (event === "leave") this.members.delete(member.id);
      else this.members.set(member.id, member);
    }
  }

  chat(message) {
    this.messages.push(message);
    if (this.messages.length > MAX_MESSAGES) this.messages.splice(0, this.messages.length - MAX_MESSAGES);
  }

  /** A tour.snapshot: ours when we are its guide or a member; otherwise it only updates the list. */
  snapshot(tour) {
    this.tours.set(tour.id, summaryOf(tour));
    this.scheduled = this.scheduled.filter((s) => s.id !== tour.id);
    const id = this.me?.id;
    const ours = tour.guide.id === id || tour.members.some((m) => m.id === id);
    if (ours) {
      this.tour = structuredClone(tour);
      this.note = null;
    } else if (this.tour?.id === tour.id) {
      this.tour = null;
    }
    if (this.waitingSync === tour.id) this.waitingSync = null;
    return ours;
  }

  /**
   * Apply a tour.event.
   * @returns {{applied: boolean, sync?: string, event?: object}} sync: the tour id to re-sync
   */
  event(message) {
    const { tour_id: tourId, seq, event } = message;
    if (event.kind === "started") {
      this.tours.set(tourId, { ...event.tour });
      this.scheduled = this.scheduled.filter((s) => s.id !== tourId);
    }
    if (event.kind === "ended") this.tours.delete(tourId);
    const tour = this.tour;
    if (!tour || tour.id !== tourId) {
      this._countMembers(tourId, event);
      return { applied: event.kind === "started" || event.kind === "ended", event };
    }
    // The end is final whatever came before it: never held back behind a gap.
    if (seq !== null && seq !== undefined && event.kind !== "ended") {
      if (seq <= tour.seq) return { applied: false };
      if (this.waitingSync === tourId) return { applied: false };
      if (seq > tour.seq + 1) {
        this.waitingSync = tourId;
        return { applied: false, sync: tourId };
      }
      tour.seq = seq;
    }
    this._applyToOwn(tour, event);
    this._countMembers(tourId, event);
    return { applied: true, event };
  }

  /** A tour.sync was refused (not_found): the tour is gone. */
  syncFailed(tourId) {
    if (this.waitingSync === tourId) this.waitingSync = null;
    this.tours.delete(tourId);
    if (this.tour?.id !== tourId) return false;
    this.tour = null;
    this.note = "The tour has ended.";
    return true;
  }

  _countMembers(tourId, event) {
    const summary = this.tours.get(tourId);
    if (!summary) return;
    if (event.kind === "member_joined") summary.members += 1;
    if (event.kind === "member_left") summary.members = Math.max(0, summary.members - 1);
  }

  _applyToOwn(tour, event) {
    switch (event.kind) {
      case "member_joined":
        if (!tour.members.some((m) => m.id === event.member.id)) tour.members.push(event.member);
        break;
      case "member_left":
        tour.members = tour.members.filter((m) => m.id !== event.member);
        tour.hands = tour.hands.filter((h) => h !== event.member);
        if (event.member === this.me?.id) {
          this.tour = null;
          this.note = event.reason === "kicked" ? "The guide removed you from the tour." : null;
        }
        break;
      case "follow":
        tour.follow = event.on;
        break;
      case "stop":
        tour.stop = event.booth_id ? { booth_id: event.booth_id } : null;
        break;
      case "point":
        tour.pointing = event.product_id;
        break;
      case "spotlight":
        tour.spotlight = event.member;
        if (event.hands) tour.hands = event.hands;
        break;
      case "mute":
        tour.muted = event.muted ? [...new Set([...tour.muted, event.member])] : tour.muted.filter((m) => m !== event.member);
        break;
      case "hands":
        tour.hands = event.hands;
        break;
      case "ended":
        this.tour = null;
        this.note = "The tour has ended.";
        break;
      default:
        break;
    }
  }
}
