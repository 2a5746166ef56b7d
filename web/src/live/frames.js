// The binary pose codec of the tour protocol (docs/protocol.md "Pose frames (binary)").
//
// encodePose writes the very bytes server/tours/frames.py encode_pose writes for the same input
// (Python's round() rounds halves to even, so roundHalfEven below does too); decodeFrame reads a
// server 0x02 frame into plain objects. No three.js here: tests call both through the page.

export const POSE = 0x01;
export const FRAME = 0x02;
export const VERSION = 1;
export const RECORD_SIZE = 24;
export const HANDS_SIZE = 20;
export const FAR_RECORD_SIZE = 10;
export const FRAME_HEADER_SIZE = 8;
export const FLAG_HANDS = 1;
export const FLAG_TELEPORTED = 2;
export const FLAG_VR = 4;
export const FLAG_SPEAKING = 8;
const RESERVED_FLAGS = 0xf0;
const MAX_COORD_MM = 1_000_000;
const MIN_Y_MM = -10_000;
const MAX_Y_MM = 100_000;
// Smallest three: ±1/√2, the largest magnitude a non-largest component can have, maps to ±32767
// (16-bit head) or ±511 (10-bit hand fields).
const S16 = 32767 * Math.SQRT2;
const S10 = 511 * Math.SQRT2;

export class FrameError extends Error {}

export function roundHalfEven(value) {
  const rounded = Math.round(value);
  // Math.round sends every .5 up; Python's round sends it to the even neighbour.
  return Math.abs(value % 1) === 0.5 ? 2 * Math.round(value / 2) : rounded;
}

function smallestThree(rotation) {
  let sum = 0;
  for (const c of rotation) sum += c * c;
  const norm = Math.sqrt(sum);
  if (!Number.isFinite(norm) || norm < 1e-9) throw new RangeError("rotation is not a usable quaternion");
  const q = Array.from(rotation, (c) => c / norm);
  let qi = 0; // ties go to the lowest index, as in frames.py
  for (let i = 1; i < 4; i += 1) if (Math.abs(q[i]) > Math.abs(q[qi])) qi = i;
  const sign = q[qi] < 0 ? -1 : 1; // q and -q are the same rotation: make the largest positive
  const rest = [];
  for (let i = 0; i < 4; i += 1) if (i !== qi) rest.push(sign * q[i]);
  return { qi, rest };
}

function quantise(value, scale, limit) {
  return Math.max(-limit, Math.min(limit, roundHalfEven(value * scale)));
}

function expand(qi, rest) {
  const largest = Math.sqrt(Math.max(0, 1 - (rest[0] * rest[0] + rest[1] * rest[1] + rest[2] * rest[2])));
  const out = rest.slice();
  out.splice(qi, 0, largest);
  return out;
}

function encodeQuat10(rotation) {
  const { qi, rest } = smallestThree(rotation);
  let word = qi * 2 ** 30;
  [20, 10, 0].forEach((shift, i) => {
    word += (quantise(rest[i], S10, 511) & 0x3ff) * 2 ** shift;
  });
  return word;
}

function decodeQuat10(word) {
  const rest = [20, 10, 0].map((shift) => {
    const field = Math.floor(word / 2 ** shift) & 0x3ff;
    return (field & 0x200 ? field - 0x400 : field) / S10;
  });
  return expand(Math.floor(word / 2 ** 30), rest);
}

function mm(value, low, high, what) {
  if (!Number.isFinite(value)) throw new RangeError(`${what} is not a finite number`);
  const out = roundHalfEven(value * 1000);
  if (out < low || out > high) throw new RangeError(`${what} ${value} m is out of range`);
  return out;
}

/**
 * Encode a client 0x01 pose message.
 * @param {number[]} position head position [x, y, z] in metres, hall coordinates
 * @param {number[]} rotation head rotation [x, y, z, w] (normalised here)
 * @param {number} flags FLAG_* bits; FLAG_HANDS is set here when hands are given
 * @param {null|Array<{offset: number[], rotation: number[]}>} hands left and right, offsets in
 *   metres from the head
 * @returns {ArrayBuffer} 25 bytes, or 45 with hands
 * @throws {RangeError} reserved flags, FLAG_HANDS without hands, a value out of range, a zero quaternion
 */
export function encodePose(position, rotation, flags = 0, hands = null) {
  if (flags < 0 || flags > 0xff || flags & RESERVED_FLAGS) throw new RangeError("reserved flag bits");
  if (flags & FLAG_HANDS && !hands) throw new RangeError("FLAG_HANDS set without hands");
  if (hands) flags |= FLAG_HANDS;
  const buffer = new ArrayBuffer(hands ? 45 : 25);
  const view = new DataView(buffer);
  const x = mm(position[0], -MAX_COORD_MM, MAX_COORD_MM, "x");
  const y = mm(position[1], MIN_Y_MM, MAX_Y_MM, "y");
  const z = mm(position[2], -MAX_COORD_MM, MAX_COORD_MM, "z");
  const { qi, rest } = smallestThree(rotation);
  view.setUint8(0, POSE);
  view.setUint32(1, 0, true); // the id: the server writes the sender's
  view.setUint8(5, flags);
  view.setUint8(6, qi);
  rest.forEach((value, i) => view.setInt16(7 + 2 * i, quantise(value, S16, 32767), true));
  view.setInt32(13, x, true);
  view.setInt32(17, y, true);
  view.setInt32(21, z, true);
  if (hands) {
    hands.forEach((hand, h) => {
      const at = 25 + 10 * h;
      hand.offset.forEach((v, i) => view.setInt16(at + 2 * i, mm(v, -32767, 32767, "hand offset"), true));
      view.setUint32(at + 6, encodeQuat10(hand.rotation), true);
    });
  }
  return buffer;
}

function decodeRecord(view, offset) {
  if (offset + RECORD_SIZE > view.byteLength) throw new FrameError(`truncated avatar record at byte ${offset}`);
  const flags = view.getUint8(offset + 4);
  const qi = view.getUint8(offset + 5);
  if (flags & RESERVED_FLAGS || qi > 3) throw new FrameError(`avatar record at byte ${offset}: bad flags or qi`);
  const rest = [0, 1, 2].map((i) => view.getInt16(offset + 6 + 2 * i, true) / S16);
  const record = {
    id: view.getUint32(offset, true),
    flags,
    position: [0, 1, 2].map((i) => view.getInt32(offset + 12 + 4 * i, true) / 1000),
    rotation: expand(qi, rest),
    hands: null,
  };
  let end = offset + RECORD_SIZE;
  if (flags & FLAG_HANDS) {
    if (end + HANDS_SIZE > view.byteLength) throw new FrameError(`truncated hand records at byte ${end}`);
    record.hands = [0, 1].map((h) => {
      const at = end + 10 * h;
      return {
        offset: [0, 1, 2].map((i) => view.getInt16(at + 2 * i, true) / 1000),
        rotation: decodeQuat10(view.getUint32(at + 6, true)),
      };
    });
    end += HANDS_SIZE;
  }
  return { record, end };
}

/**
 * Decode a server 0x02 frame.
 * @param {ArrayBuffer} data the whole binary websocket message
 * @returns {{tick: number, near: object[], far: object[]}} near records {id, flags, position,
 *   rotation, hands}; far records {id, position: [x, z], yaw (radians), flags}
 * @throws {FrameError} another kind or version, a bad record, or a length that does not match
 */
export function decodeFrame(data) {
  const view = new DataView(data);
  if (view.byteLength < FRAME_HEADER_SIZE) throw new FrameError("a frame needs 8 header bytes");
  if (view.getUint8(0) !== FRAME || view.getUint8(1) !== VERSION) throw new FrameError("not a version 1 pose frame");
  const tick = view.getUint16(2, true);
  const nearCount = view.getUint16(4, true);
  const farCount = view.getUint16(6, true);
  let offset = FRAME_HEADER_SIZE;
  const near = [];
  for (let n = 0; n < nearCount; n += 1) {
    const { record, end } = decodeRecord(view, offset);
    near.push(record);
    offset = end;
  }
  if (view.byteLength - offset !== farCount * FAR_RECORD_SIZE) throw new FrameError("far records do not fill the frame");
  const far = [];
  for (let n = 0; n < farCount; n += 1, offset += FAR_RECORD_SIZE) {
    far.push({
      id: view.getUint32(offset, true),
      position: [view.getInt16(offset + 4, true) / 10, view.getInt16(offset + 6, true) / 10],
      yaw: view.getUint8(offset + 8) * ((2 * Math.PI) / 256),
      flags: view.getUint8(offset + 9),
    });
  }
  return { tick, near, far };
}
