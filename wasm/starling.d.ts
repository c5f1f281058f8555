// starling.d.ts: types of the Starling JavaScript API (starling.js).
// Keep in step with starling.js; tests/wasm/types_check.ts uses every
// declaration and tests/wasm/node_test.mjs compares the exports.

/** An actor id in its printable form: 16 hex digits (the node), a dot, the local id in decimal. */
export type ActorId = string;

/** Priority classes, most urgent first. Strict priority between classes, FIFO inside one. */
export type Priority = 'critical' | 'high' | 'normal' | 'low' | 'background';

/** What a message is. Replies to `ctx.ask` settle its promise and never reach onMessage. */
export type MessageKind = 'send' | 'ask' | 'reply' | 'chunk' | 'end' | 'fail' | 'cancel' | 'down' | 'exit';

/** Why an actor stopped. */
export type StopReason = 'normal' | 'crash' | 'killed' | 'noproc' | 'noconnection' | 'shutdown';

/** What a full mailbox does with a new message. */
export type Overflow = 'reject' | 'drop-new' | 'drop-oldest';

/** A 64-bit id made by the API (ask id, monitor ref, timer id): a Number while exact, else a BigInt. */
export type Ref = number | bigint;

/** The name of a Starling error, e.g. 'SL_ERR_TIMEOUT' (sl_err_name() in C). */
export type ErrorCode = `SL_ERR_${string}`;

/**
 * A value that travels as msgpack: null/undefined (nil), booleans, numbers,
 * BigInts (64-bit), strings, bytes (Uint8Array, ArrayBuffer, any view),
 * arrays, Maps, plain objects of such values, and Ext.
 */
export type Value =
  | null
  | undefined
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | ArrayBuffer
  | ArrayBufferView
  | Ext
  | Value[]
  | Map<Value, Value>
  | { [key: string]: Value };

/** Every error the API reports: `code` is the C error name, `errno` its (negative) value. */
export class StarlingError extends Error {
  constructor(code: ErrorCode, message?: string, errno?: number);
  readonly name: 'StarlingError';
  readonly code: ErrorCode;
  readonly errno: number | undefined;
}

/** A msgpack extension value. */
export class Ext {
  constructor(type: number, data: Uint8Array | ArrayLike<number>);
  readonly type: number;
  readonly data: Uint8Array;
}

/** A message as an actor receives it. Its fields stay valid after the callback. */
export interface Message {
  readonly kind: MessageKind;
  /** The sender; null when sent from outside any actor (node.send). */
  readonly from: ActorId | null;
  readonly to: ActorId;
  /** The user's message type (0 unless the sender gave one). */
  readonly type: number;
  readonly prio: Priority;
  /** Ask id (ask, cancel), monitor ref (down), timer id (timer messages), else 0. */
  readonly corr: Ref;
  /** The decoded payload; undefined when the message had none. */
  readonly value: any;
  /** kind 'fail': the error name. */
  readonly error?: ErrorCode;
  /** kind 'down' and 'exit': why the actor `from` stopped, and its code. */
  readonly reason?: StopReason;
  readonly code?: number;
}

export interface SendOptions {
  /** Default 'normal'. */
  prio?: Priority;
  /** The user's message type, 0..2^32-1; default 0. */
  type?: number;
}

export interface AskOptions extends SendOptions {
  /** Milliseconds until the ask fails with SL_ERR_TIMEOUT (the replier gets 'cancel'); 0 = none; default 30000. */
  deadlineMs?: number;
  /** Aborting cancels the ask (the replier gets 'cancel') and rejects with the signal's reason. */
  signal?: AbortSignal;
  /** For streamed replies: called with each chunk; the promise then resolves with the end's value. */
  onChunk?: (value: any) => void;
}

export interface ReplyOptions {
  /** Default: the type of the ask. */
  type?: number;
}

/** The callbacks of an actor written in JavaScript; all optional. `this` is the behaviour object. */
export interface Behavior {
  /** Called once, inside spawn(), before any message. Throwing (or rejecting) crashes the actor. */
  onStart?(ctx: ActorContext): void | Promise<void>;
  /**
   * Called for each message, one at a time; an async handler runs only to its first
   * `await` before the next message may be handled. Throwing (or rejecting) crashes
   * the actor (code JS_EXCEPTION_CODE).
   */
  onMessage?(ctx: ActorContext, msg: Message): void | Promise<void>;
  /** Called once when the actor stops, for any reason; it may still send. */
  onStop?(ctx: ActorContext, reason: StopReason): void | Promise<void>;
}

export interface SpawnOptions {
  /** Register this name (1..128 bytes of UTF-8) for the actor, atomically. */
  name?: string;
  /** Max queued messages; default the node's mailboxCapacity. */
  mailboxCapacity?: number;
  /** Default 'reject' (the sender gets SL_ERR_MAILBOX_FULL). */
  overflow?: Overflow;
  /** Receive 'exit' messages instead of dying with linked actors. */
  trapExit?: boolean;
  /** Link to this actor atomically at spawn. */
  linkTo?: ActorId;
  /** C agents only: the value handed to the agent's on_start as msgpack. */
  init?: Value;
}

/** What an actor's callbacks receive. Usable from async continuations too, until the actor stops. */
export interface ActorContext {
  readonly self: ActorId;
  readonly node: StarlingNode;
  /** Send a message (copied). Throws StarlingError: SL_ERR_NOACTOR, SL_ERR_MAILBOX_FULL, SL_ERR_MSG_TOO_BIG, ... */
  send(to: ActorId, value?: Value, opts?: SendOptions): void;
  /**
   * Send a message that may be lost: to another node it is one WebTransport
   * datagram (never fragmented or retransmitted), so it must fit
   * node.unreliableMax(to); throws SL_ERR_MSG_TOO_BIG otherwise.
   */
  sendUnreliable(to: ActorId, value?: Value, opts?: SendOptions): void;
  /** Ask and get the reply (or the chunks of a streamed reply), or a StarlingError (SL_ERR_TIMEOUT, SL_ERR_ACTOR_DOWN, ...). */
  ask<T = any>(to: ActorId, value?: Value, opts?: AskOptions): Promise<T>;
  /** Answer an ask (`msg` is the ask message). A second final reply throws SL_ERR_CANCELLED. */
  reply(msg: Message, value?: Value, opts?: ReplyOptions): void;
  /** Stream an answer: chunks, then replyEnd. */
  replyChunk(msg: Message, value?: Value, opts?: ReplyOptions): void;
  replyEnd(msg: Message, value?: Value, opts?: ReplyOptions): void;
  /** Fail an ask with an error name or negative code; the asker's promise rejects with it. */
  replyError(msg: Message, error: ErrorCode | number): void;
  /** Watch an actor: a 'down' message (corr = the returned ref) when it stops. */
  monitor(target: ActorId): Ref;
  demonitor(ref: Ref): void;
  /** Link both ways: a crash of one stops the other, unless it traps exits. */
  link(other: ActorId): void;
  unlink(other: ActorId): void;
  trapExit(on?: boolean): void;
  /** Deliver a 'send' message (corr = the timer id) after `ms`, or every `ms`. */
  sendAfter(to: ActorId, ms: number, value?: Value, opts?: SendOptions): Ref;
  sendEvery(to: ActorId, ms: number, value?: Value, opts?: SendOptions): Ref;
  cancelTimer(timer: Ref): void;
  /** Stop this actor after the current callback, with a reason and code shown in 'down'/'exit'. */
  stop(reason?: StopReason, code?: number): void;
  /** node.spawn(). */
  spawn(behavior: Behavior | string, opts?: SpawnOptions): ActorId;
}

export interface NodeStats {
  spawned: number;
  stopped: number;
  crashed: number;
  sent: number;
  processed: number;
  deadLetters: number;
  dropped: number;
  lateReplies: number;
  timeouts: number;
  alive: number;
  timers: number;
}

/** A Starling node running on this page's event loop. */
export interface StarlingNode {
  /** The node id: 16 hex digits. */
  readonly id: string;
  /** Where actor failures (exceptions in callbacks, undecodable payloads) are reported. */
  onError: (err: unknown, actor: ActorId | null) => void;
  /** Spawn an actor written in JavaScript, or the C agent of that name. Throws StarlingError. */
  spawn(behavior: Behavior | string, opts?: SpawnOptions): ActorId;
  /** The C agents compiled into the module. */
  agents(): string[];
  /** Send from outside any actor (msg.from is null). */
  send(to: ActorId, value?: Value, opts?: SendOptions): void;
  /** Ask from outside any actor (the asker the replier sees is a hidden actor of the node). */
  ask<T = any>(to: ActorId, value?: Value, opts?: AskOptions): Promise<T>;
  /** Stop an actor (at the next safe point). */
  stopActor(id: ActorId, reason?: StopReason): void;
  alive(id: ActorId): boolean;
  register(name: string, id: ActorId): void;
  unregister(name: string): void;
  whereis(name: string): ActorId | null;
  stats(): NodeStats;
  /** A node that joined a cluster: its gateway's node id (null for a local node). */
  readonly gateway: string | null;
  /** The actors the gateway exposed to this node, by name. */
  exposed(): Map<string, ActorId>;
  /**
   * Why this node is not connected to its gateway (yet, or again): null when
   * no attempt failed since it was last welcomed; else how many failed and
   * how the last one ended (a browser reports a refused token or origin, a
   * wrong path or certificate hash and an absent gateway alike:
   * "Opening handshake failed.").
   */
  connectFailure(): { failures: number; code: ErrorCode; reason: string } | null;
  /** The largest payload sendUnreliable() takes for `to` now (0: none). */
  unreliableMax(to: ActorId): number;
  /** Told when the gateway (or a node behind it) comes up or goes down. */
  onPeer: ((node: string, up: boolean) => void) | null;
  /** Stop every actor (onStop with 'shutdown'), then free the node. Idempotent. */
  shutdown(): Promise<void>;
}

export interface CreateOptions {
  /** 16 hex digits, not all zero; default random. */
  nodeId?: string;
  /** Default capacity of a mailbox (default 4096). */
  mailboxCapacity?: number;
  /** Max messages per actor per turn (default 64). */
  batch?: number;
  /** Max messages per macrotask before the page gets control back (default 8192). */
  slice?: number;
  /** Max milliseconds per macrotask (default 8; 0 = only `slice`). */
  budgetMs?: number;
  /** Max payload bytes (default 64 MiB). */
  maxMessageSize?: number;
  /** starling-core.wasm: a URL (default: next to starling.js), its bytes, or a compiled module. */
  wasm?: string | URL | ArrayBuffer | ArrayBufferView | WebAssembly.Module;
  onError?: (err: unknown, actor: ActorId | null) => void;
}

export interface ConnectOptions extends CreateOptions {
  /** The gateway's WebTransport URL, e.g. https://127.0.0.1:4433/starling (the token may be in the query). */
  url: string;
  /** SHA-256 of the gateway's certificate (64 hex digits or 32 bytes): serverCertificateHashes. */
  certificateHash?: string | ArrayBuffer | ArrayBufferView;
  /** The session token (default: the URL's `token` parameter). */
  token?: string;
  /**
   * Reject when no welcome came within this (default 10000 ms; an integer
   * 1 .. 2^31-1, setTimeout's range); attempts
   * that fail before are retried with the backoff below. The rejection is
   * SL_ERR_NOCONN with the last failure when attempts failed (see
   * connectFailure()), SL_ERR_TIMEOUT when none ended.
   */
  connectTimeoutMs?: number;
  /** Reconnection backoff after a lost session (default 100 .. 5000 ms). */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /**
   * An attempt whose session opened but got no welcome within this (default
   * 5000 ms) fails with SL_ERR_TIMEOUT "no welcome within ... ms: not a
   * Starling gateway, or it is stuck", and is retried.
   */
  welcomeTimeoutMs?: number;
  onPeer?: (node: string, up: boolean) => void;
}

export declare const Starling: {
  create(opts?: CreateOptions): Promise<StarlingNode>;
  /** Join a cluster through a gateway node; resolves once the gateway gave the node its id. */
  connect(opts: ConnectOptions): Promise<StarlingNode>;
};
export default Starling;

export declare const PRIORITIES: readonly Priority[];
export declare const KINDS: readonly MessageKind[];
export declare const REASONS: readonly StopReason[];
/** The crash code of an actor whose callback threw. */
export declare const JS_EXCEPTION_CODE: 1;

export interface Limits {
  maxDepth?: number;
  maxSize?: number;
  maxElements?: number;
  maxStrLen?: number;
  maxBinLen?: number;
  maxExtLen?: number;
  /** Allowed ext types (-128..127); default none. */
  extAllow?: readonly number[];
}
export declare const DEFAULT_LIMITS: Readonly<Required<Limits>>;

/** Encode a value as msgpack (canonical: shortest formats, as msgpack-c writes). */
export declare function encode(value: Value): Uint8Array;
/** Decode exactly one msgpack value under the limits of the C validator. Throws StarlingError (SL_ERR_DECODE_*). */
export declare function decode(bytes: Uint8Array | ArrayBuffer | ArrayBufferView, options?: { limits?: Limits; maps?: 'object' | 'map' }): any;
/** Validate without decoding: null if acceptable, else the error name. */
export declare function check(bytes: Uint8Array | ArrayBuffer | ArrayBufferView, limits?: Limits): ErrorCode | null;

/** An envelope (schemas/README.md): 64-bit fields are BigInts. */
export interface Envelope {
  prio: number;
  kind: number;
  flags: number;
  type: number;
  to: { node: bigint; local: bigint };
  from: { node: bigint; local: bigint };
  corr: bigint;
  status: number;
  code: number;
  payload: Uint8Array;
}
export declare function encodeEnvelope(e: Envelope, impliedToNode: bigint, impliedFromNode: bigint): Uint8Array;
export declare function decodeEnvelope(bytes: Uint8Array, impliedToNode: bigint, impliedFromNode: bigint, limits?: Limits): Envelope;
export declare function frameHeaderSize(length: bigint | number): number;
export declare function writeFrameHeader(length: bigint | number): Uint8Array;
export declare function readFrameHeader(bytes: Uint8Array, maxFrame?: bigint): { length: bigint; headerLength: number } | null;
