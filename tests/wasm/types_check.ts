// types_check.ts: uses every declaration of wasm/starling.d.ts the way an
// application would; `tsc --strict --noEmit` must accept it
// (tests/wasm_types_test.sh). It is type-checked, never run.
import Starling, {
  Starling as Named, StarlingError, Ext, encode, decode, check, DEFAULT_LIMITS, PRIORITIES, KINDS, REASONS,
  JS_EXCEPTION_CODE, encodeEnvelope, decodeEnvelope, frameHeaderSize, writeFrameHeader, readFrameHeader,
} from '../../wasm/starling.js';
import type {
  ActorContext, ActorId, Behavior, CreateOptions, Envelope, ErrorCode, Message, NodeStats, Priority, Ref,
  SpawnOptions, StarlingNode, StopReason, Value, Limits, MessageKind, Overflow, AskOptions, SendOptions, ReplyOptions,
} from '../../wasm/starling.js';

async function main(): Promise<void> {
  const opts: CreateOptions = { nodeId: '00000000000000a1', mailboxCapacity: 64, batch: 8, slice: 1024, budgetMs: 4, maxMessageSize: 1 << 20, wasm: new URL('https://example.invalid/starling-core.wasm'), onError: (err, actor) => console.error(err, actor) };
  const node: StarlingNode = await Starling.create(opts);
  const other: StarlingNode = await Named.create();
  const counter: ActorId = node.spawn('counter', { init: 10, name: 'c', mailboxCapacity: 8, overflow: 'drop-oldest' as Overflow });
  const behavior: Behavior = {
    onStart(ctx: ActorContext) {
      const me: ActorId = ctx.self;
      const n: StarlingNode = ctx.node;
      const ref: Ref = ctx.monitor(counter);
      ctx.demonitor(ref);
      ctx.link(counter);
      ctx.unlink(counter);
      ctx.trapExit(true);
      const t1: Ref = ctx.sendAfter(me, 10, 'tick', { prio: 'low', type: 3 });
      const t2: Ref = ctx.sendEvery(me, 10, { x: [1, 2n, new Uint8Array(1)] });
      ctx.cancelTimer(t1);
      ctx.cancelTimer(t2);
      ctx.send(counter, 1);
      const child: ActorId = ctx.spawn({}, { linkTo: me, trapExit: false });
      void n;
      void child;
    },
    async onMessage(ctx: ActorContext, msg: Message) {
      const k: MessageKind = msg.kind;
      const from: ActorId | null = msg.from;
      const p: Priority = msg.prio;
      const r: StopReason | undefined = msg.reason;
      const e: ErrorCode | undefined = msg.error;
      const c: number | undefined = msg.code;
      const corr: Ref = msg.corr;
      void [k, from, p, r, e, c, corr, msg.to, msg.type, msg.value];
      if (msg.kind === 'ask') {
        const ro: ReplyOptions = { type: 2 };
        ctx.replyChunk(msg, 'a', ro);
        ctx.replyEnd(msg);
        ctx.reply(msg, null);
        ctx.replyError(msg, 'SL_ERR_INVAL');
        ctx.replyError(msg, -2);
      }
      const ao: AskOptions = { deadlineMs: 100, prio: 'critical', signal: new AbortController().signal, onChunk: (v) => void v };
      const got: number = await ctx.ask<number>(counter, 'get', ao);
      void got;
      ctx.stop('normal', 0);
    },
    onStop(ctx: ActorContext, reason: StopReason) {
      void reason;
    },
  };
  const so: SpawnOptions = { name: 'js' };
  const a: ActorId = node.spawn(behavior, so);
  const sendOpts: SendOptions = { prio: 'background' };
  node.send(a, undefined, sendOpts);
  const v: string = await node.ask<string>(a, 'x', { deadlineMs: 0 });
  node.stopActor(a, 'killed');
  const alive: boolean = node.alive(a);
  node.register('n', counter);
  node.unregister('n');
  const w: ActorId | null = node.whereis('c');
  const s: NodeStats = node.stats();
  const agents: string[] = node.agents();
  node.onError = (err: unknown) => void err;
  void [v, alive, w, s.deadLetters, agents, node.id, other.id];
  await node.shutdown();

  try {
    await node.ask(counter, 1);
  } catch (err) {
    if (err instanceof StarlingError) {
      const code: ErrorCode = err.code;
      const errno: number | undefined = err.errno;
      void [code, errno, err.message];
    }
  }
  const val: Value = { a: [1, 'b', null, true, 2n, new Map<Value, Value>([[1, 2]]), new Ext(1, [1, 2])] };
  const bytes: Uint8Array = encode(val);
  const lim: Limits = { maxDepth: 4, extAllow: [1], maxSize: DEFAULT_LIMITS.maxSize };
  const back: unknown = decode(bytes, { limits: lim, maps: 'map' });
  const bad: ErrorCode | null = check(bytes, lim);
  const env: Envelope = decodeEnvelope(encodeEnvelope({ prio: 2, kind: 0, flags: 0, type: 7, to: { node: 1n, local: 5n }, from: { node: 2n, local: 9n }, corr: 0n, status: 0, code: 0, payload: bytes }, 1n, 2n), 1n, 2n);
  const hdr = readFrameHeader(writeFrameHeader(37), 1n << 20n);
  const size: number = frameHeaderSize(64n);
  const names: readonly string[] = [...PRIORITIES, ...KINDS, ...REASONS];
  const crash: 1 = JS_EXCEPTION_CODE;
  void [back, bad, env.payload, hdr && hdr.length, size, names, crash];
}

void main();
