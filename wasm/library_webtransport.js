/*
 * library_webtransport.js: the JavaScript half of the browser's transport
 * (transport_web.c), linked by Emscripten (--js-library). Each sl__wt_*
 * function here is a wasm import declared in transport_web.h; the
 * _sl__wt_on_* functions it calls are C exports.
 *
 * One JS object per session and per stream, found by a small integer handle
 * (C keeps the handle, we keep C's pointer). Everything we call in C runs
 * from a promise continuation or a macrotask of our own, never from inside
 * an import, and never after C told us to forget the object (`dead`).
 *
 * Writes are copied out of the module's memory at once (small ones into
 * buffers used again once their write settled), cut into pieces of at most
 * 64 KiB, and written to the stream's writer in order (queued until
 * createBidirectionalStream/createUnidirectionalStream resolved); each
 * resolved write tells C how many bytes the browser took. Reads happen only
 * when C asks (it asks when everything delivered so far was consumed), one
 * BYOB read of at most READ_CHUNK bytes at a time, copied into a buffer
 * from C's allocator (sl__wt_alloc); a read asked for while data is being
 * delivered is issued after the next write or a few microtasks later. The
 * module's memory may grow during any call into C, so HEAPU8 is read again
 * after every such call.
 *
 * Nothing here assumes Node.js: it runs in a page or a worker. Macrotasks
 * and microtasks are library_starling.js's (slLoop), which this library
 * depends on.
 */
mergeInto(LibraryManager.library, {
  $slWT__deps: ['$slLoop'],
  $slWT: {
    READ_CHUNK: 65536,   /* = SL__WT_READ_CHUNK in transport_web.h */
    PIECE: 65536,        /* largest single writer.write() */
    SMALL: 2048,         /* writes up to this size are copied into pooled buffers */
    POOL_MAX: 32,
    pool: [],            /* views of ArrayBuffers of SMALL bytes whose write settled */
    DGRAM_QUEUE: 256,    /* datagram writes not yet resolved before SL_ERR_AGAIN */
    next: 1,             /* next handle */
    sessions: null,      /* handle -> session; made on first use (this object is
                            serialised into the module's text by Emscripten) */
    streams: null,       /* handle -> stream */
    transports: null,    /* C transport pointer -> true while alive */
    init: function() {
      if (!slWT.sessions) {
        slWT.sessions = new Map();
        slWT.streams = new Map();
        slWT.transports = new Map();
      }
    },
    /* A WebTransportError carrying a stream error code, for abort()/cancel().
       Chromium 156 has the older constructor, WebTransportError({streamErrorCode,
       message}), with an 8-bit code (clamped); the current spec's is
       (message, {streamErrorCode}) with 32 bits. Whichever carries the code. */
    streamError: function(code) {
      try {
        var e = new WebTransportError({ streamErrorCode: code });
        if (e.streamErrorCode === code) return e;
      } catch (x) { /* the other form */ }
      try {
        return new WebTransportError('', { streamErrorCode: code });
      } catch (x) {
        return new Error('stream error ' + code);
      }
    },
    /* The largest stream error code this browser can send (255 or 2^32-1). */
    maxCode: -1,
    /* The peer's code of a stream-level WebTransportError, or -1. */
    codeOf: function(e) {
      if (e && e.source === 'stream' && typeof e.streamErrorCode === 'number') return e.streamErrorCode >>> 0;
      return -1;
    },
    /* Copy JS bytes into a fresh C buffer; 0 when len is 0 or no memory. */
    toC: function(t, bytes) {
      var n = bytes.byteLength;
      if (!n) return 0;
      var p = _sl__wt_alloc(t, n);
      if (p) HEAPU8.set(bytes, p);   /* HEAPU8 read after the allocation */
      return p;
    },
    stringToC: function(t, str) {
      var n = lengthBytesUTF8(str) + 1;
      var p = _sl__wt_alloc(t, n);
      if (p) stringToUTF8(str, p, n);
      return p;
    },
    newStream: function(sess, bidi, local, c) {
      var st = {
        id: slWT.next++, s: c, sess: sess, bidi: bidi, local: local, dead: false,
        writable: null, writer: null, pending: [], finishReq: false, resetCode: null,
        wrEnded: false, order: 0,
        readable: null, reader: null, byob: false, wantRead: false, readBusy: false,
        readDone: false, stopCode: null, buf: null, readLater: false,
        inflight: [],    /* pieces written and not yet settled, in order */
        /* the stream's promise handlers, made once rather than per call (a
           stream carries a write and a read per round trip) */
        onWritten: null, onWriteFailed: null, onRead: null, onReadFailed: null,
      };
      st.onWritten = function() { slWT.written(st, true); };
      st.onWriteFailed = function() { slWT.written(st, false); };
      st.onRead = function(r) { slWT.got(st, r); };
      st.onReadFailed = function(e) { slWT.readFailed(st, e); };
      slWT.streams.set(st.id, st);
      sess.streams.add(st);
      return st;
    },
    /* The browser's stream exists: attach writer and reader, replay what
       C did meanwhile. */
    attach: function(st, writable, readable) {
      if (writable) {
        st.writable = writable;
        try { if (st.order) writable.sendOrder = st.order; } catch (e) { /* not supported */ }
        st.writer = writable.getWriter();
        st.writer.closed.then(function() {}, function(e) {
          if (st.dead || st.wrEnded) return;
          st.wrEnded = true;
          var code = slWT.codeOf(e);
          if (code >= 0) _sl__wt_on_write_end(st.s, 1, code);
          else slWT.failed(st, _sl__wt_on_write_end);
        });
        var p = st.pending;
        st.pending = [];
        for (var i = 0; i < p.length; i++) slWT.writePiece(st, p[i]);
        if (st.resetCode !== null) slWT.abort(st);
        else if (st.finishReq) slWT.close(st);
      }
      if (readable) {
        st.readable = readable;
        try {
          st.reader = readable.getReader({ mode: 'byob' });
          st.byob = true;
        } catch (e) {
          st.reader = readable.getReader();
        }
        st.reader.closed.then(function() {}, function() {});
        if (st.stopCode !== null) slWT.cancel(st);
        else if (st.wantRead) slWT.read(st);
      }
    },
    /* The bytes of one write: a fresh ArrayBuffer costs the browser several
       microseconds in writer.write() (a backing store made, tracked and later
       collected), so small writes go through buffers of our own, used again
       once the write that carried them settled (then the stream is done with
       them). A buffer of exactly SMALL bytes is one of the pool's. */
    copyOut: function(data, len) {
      if (len > slWT.SMALL) return HEAPU8.slice(data, data + len);
      var v = slWT.pool.pop();
      if (!v || v.length !== len) v = new Uint8Array(v ? v.buffer : new ArrayBuffer(slWT.SMALL), 0, len);
      if (len <= 256) {   /* a loop makes no view of the source */
        for (var i = 0; i < len; i++) v[i] = HEAPU8[data + i];
      } else {
        v.set(HEAPU8.subarray(data, data + len));
      }
      return v;
    },
    release: function(piece) {
      var b = piece.buffer;
      if (b.byteLength === slWT.SMALL && slWT.pool.length < slWT.POOL_MAX) slWT.pool.push(piece);
    },
    writePiece: function(st, piece) {
      st.inflight.push(piece);
      st.writer.write(piece).then(st.onWritten, st.onWriteFailed);
      slWT.issueLater();
    },
    /* A write settled (a stream's writes settle in the order they were made);
       after a failure, writer.closed reports it. */
    written: function(st, ok) {
      var piece = st.inflight.shift();
      slWT.release(piece);
      if (ok && !st.dead && st.resetCode === null) _sl__wt_on_sent(st.s, piece.byteLength);
    },
    close: function(st) {
      st.writer.close().then(function() {
        if (st.dead || st.wrEnded) return;
        st.wrEnded = true;
        _sl__wt_on_write_end(st.s, 0, 0);
      }, function() { /* writer.closed reports it */ });
    },
    abort: function(st) {
      st.wrEnded = true;
      st.writer.abort(slWT.streamError(st.resetCode)).catch(function() {});
    },
    cancel: function(st) {
      st.readDone = true;
      st.reader.cancel(slWT.streamError(st.stopCode)).catch(function() {});
    },
    /* Reads asked for while data is being delivered to C wait (in `later`)
       until something is written or a few microtasks have passed, whichever
       comes first: issuing a BYOB read costs the page several microseconds,
       and right after an answer arrived that is the time in which the next
       request is being made (a request/answer loop would pay it on every
       round trip; after the write it overlaps the network's flight). */
    delivering: false,
    later: [],         /* later[0 .. nlater): not emptied by length = 0,
                          which would drop the array's storage */
    nlater: 0,
    laterHops: 0,
    LATER_HOPS: 4,
    issueLater: function() {
      var l = slWT.later;
      var n = slWT.nlater;
      /* a write made while data is being delivered (C answering at once)
         leaves them: they would only be deferred again */
      if (!n || slWT.delivering) return;
      slWT.nlater = 0;
      for (var i = 0; i < n; i++) {
        var st = l[i];
        l[i] = null;
        st.readLater = false;
        slWT.read(st);
      }
    },
    hopLater: function() {
      if (!slWT.nlater) {
        slWT.laterHops = 0;
        return;
      }
      if (--slWT.laterHops > 0) slLoop.microtask(slWT.hopLater);
      else slWT.issueLater();
    },
    read: function(st) {
      if (st.dead || st.readDone) return;
      if (!st.reader) {
        st.wantRead = true;
        return;
      }
      if (st.readBusy || st.readLater) return;
      if (slWT.delivering) {   /* got() starts the hops once C returned */
        st.readLater = true;
        slWT.later[slWT.nlater++] = st;
        return;
      }
      st.readBusy = true;
      var p;
      if (st.byob) {
        var buf = st.buf && st.buf.byteLength === slWT.READ_CHUNK ? st.buf : new ArrayBuffer(slWT.READ_CHUNK);
        st.buf = null;
        p = st.reader.read(new Uint8Array(buf));
      } else {
        p = st.reader.read();
      }
      p.then(st.onRead, st.onReadFailed);
    },
    /* A read of the stream completed: hand the bytes to C. */
    got: function(st, r) {
      st.readBusy = false;
      if (st.dead || st.readDone) return;
      var t = st.sess.t;
      var v = r.value;
      var n = v ? v.byteLength : 0;
      if (!r.done && n === 0) {   /* nothing: read again */
        if (st.byob && v) st.buf = v.buffer;
        slWT.read(st);
        return;
      }
      var ptr = 0;
      if (n) {
        ptr = slWT.toC(t, v);
        if (!ptr) {               /* no memory: give the stream up */
          st.stopCode = 0;
          slWT.cancel(st);
          _sl__wt_on_read_end(st.s, 2, 0);
          return;
        }
      }
      if (st.byob && v) st.buf = v.buffer;  /* reuse the (transferred) buffer */
      if (r.done) st.readDone = true;
      slWT.delivering = true;
      slLoop.holding = true;
      var ok = false;
      try {
        _sl__wt_on_data(st.s, ptr, n, r.done ? 1 : 0);
        ok = true;
      } finally {
        slWT.delivering = false;
        slLoop.holding = false;
        if (!ok) slLoop.microtask(slLoop.runHeld);
      }
      /* the node's turn for this data runs now (an answer settles its ask and
         queues the asker's continuation); the hops for deferred reads are
         queued after it, so that the continuation's write comes first */
      slLoop.runHeld();
      if (slWT.nlater && !slWT.laterHops) {
        slWT.laterHops = slWT.LATER_HOPS;
        slLoop.microtask(slWT.hopLater);
      }
    },
    readFailed: function(st, e) {
      st.readBusy = false;
      if (st.dead || st.readDone) return;
      st.readDone = true;
      var code = slWT.codeOf(e);
      if (code >= 0) _sl__wt_on_read_end(st.s, 1, code);
      else slWT.failed(st, _sl__wt_on_read_end);
    },
    acceptLoop: function(sess, readable, bidi) {
      var r = readable.getReader();
      var next = function() {
        r.read().then(function(res) {
          if (res.done || sess.dead) return;
          var st = slWT.newStream(sess, bidi, false, 0);
          var c = _sl__wt_on_stream_open(sess.c, st.id, bidi ? 1 : 0);
          if (!c || sess.dead) {
            slWT.streams.delete(st.id);
            sess.streams.delete(st);
            var code = slWT.streamError(0);
            if (bidi) {
              res.value.readable.cancel(code).catch(function() {});
              res.value.writable.abort(code).catch(function() {});
            } else {
              res.value.cancel(code).catch(function() {});
            }
          } else {
            st.s = c;
            if (bidi) slWT.attach(st, res.value.writable, res.value.readable);
            else slWT.attach(st, null, res.value);
          }
          next();
        }, function() { /* the session ended: `closed` reports it */ });
      };
      next();
    },
    datagramLoop: function(sess) {
      var r = sess.wt.datagrams.readable.getReader();
      var next = function() {
        r.read().then(function(res) {
          if (res.done || sess.dead) return;
          var v = res.value;
          var p = slWT.toC(sess.t, v);
          if (p || !v.byteLength) _sl__wt_on_datagram(sess.c, p, v.byteLength);
          next();
        }, function() {});
      };
      next();
    },
    /* The token of a live transport (C pointer), made on first use. */
    transport: function(t) {
      slWT.init();
      var tok = slWT.transports.get(t);
      if (!tok) {
        tok = {};
        slWT.transports.set(t, tok);
      }
      return tok;
    },
    /* A stream failed without a stream error code: most often because its
       session is ending, which `closed` reports right after; so tell C in a
       later macrotask, and only if the session is still there. */
    failed: function(st, fn) {
      slLoop.macrotask(function() {
        if (!st.dead && !st.sess.ended) fn(st.s, 2, 0);
      });
    },
    forgetStream: function(st) {
      st.dead = true;
      slWT.streams.delete(st.id);
      st.sess.streams.delete(st);
    },
  },

  sl__wt_post__deps: ['$slWT'],
  sl__wt_post: function(t) {
    var tok = slWT.transport(t);
    slLoop.macrotask(function() {
      /* a transport freed meanwhile (or a new one at its address) is not ours */
      if (slWT.transports.get(t) === tok) _sl__wt_on_post(t);
    });
  },

  sl__wt_transport_forget__deps: ['$slWT'],
  sl__wt_transport_forget: function(t) {
    slWT.init();
    slWT.transports.delete(t);
  },

  sl__wt_connect__deps: ['$slWT'],
  sl__wt_connect: function(t, c, url, pin) {
    slWT.init();
    if (typeof WebTransport != 'function') return -2;
    var opts = {};
    if (pin) opts.serverCertificateHashes = [{ algorithm: 'sha-256', value: HEAPU8.slice(pin, pin + 32) }];
    var wt;
    try {
      wt = new WebTransport(UTF8ToString(url), opts);
    } catch (e) {
      return -1;
    }
    slWT.transport(t);
    var sess = { id: slWT.next++, t: t, c: c, wt: wt, dead: false, ended: false, streams: new Set(),
                 dgWriter: null, dgQueued: 0 };
    slWT.sessions.set(sess.id, sess);
    wt.ready.then(function() {
      if (sess.dead) return;
      _sl__wt_on_ready(c);
      if (sess.dead) return;
      slWT.acceptLoop(sess, wt.incomingBidirectionalStreams, true);
      slWT.acceptLoop(sess, wt.incomingUnidirectionalStreams, false);
      slWT.datagramLoop(sess);
    }, function() { /* `closed` rejects too */ });
    wt.closed.then(function(info) {
      sess.ended = true;
      if (sess.dead) return;
      var reason = info && info.reason ? String(info.reason) : '';
      _sl__wt_on_closed(c, 0, (info && info.closeCode || 0) >>> 0, slWT.stringToC(t, reason));
    }, function(e) {
      sess.ended = true;
      if (sess.dead) return;
      var msg = String(e && e.message || e || 'session failed');
      _sl__wt_on_closed(c, 1, 0, slWT.stringToC(t, msg));
    });
    return sess.id;
  },

  sl__wt_session_close__deps: ['$slWT'],
  sl__wt_session_close: function(js, code, reason, len) {
    var sess = slWT.sessions.get(js);
    if (!sess) return;
    try {
      sess.wt.close({ closeCode: code >>> 0, reason: UTF8ToString(reason, len) });
    } catch (e) { /* already closed */ }
  },

  sl__wt_session_forget__deps: ['$slWT'],
  sl__wt_session_forget: function(js) {
    var sess = slWT.sessions.get(js);
    if (!sess) return;
    sess.dead = true;
    sess.streams.forEach(function(st) { slWT.forgetStream(st); });
    slWT.sessions.delete(js);
    try { sess.wt.close(); } catch (e) { /* already closed */ }
  },

  sl__wt_datagram_max__deps: ['$slWT'],
  sl__wt_datagram_max: function(js) {
    var sess = slWT.sessions.get(js);
    if (!sess) return 0;
    var n = sess.wt.datagrams && sess.wt.datagrams.maxDatagramSize;
    return typeof n == 'number' && n > 0 ? n : 0;
  },

  sl__wt_datagram_send__deps: ['$slWT'],
  sl__wt_datagram_send: function(js, data, len) {
    var sess = slWT.sessions.get(js);
    if (!sess) return -2;
    if (sess.dgQueued >= slWT.DGRAM_QUEUE) return -1;
    try {
      if (!sess.dgWriter) sess.dgWriter = sess.wt.datagrams.writable.getWriter();
    } catch (e) {
      return -2;
    }
    var bytes = slWT.copyOut(data, len);
    sess.dgQueued++;
    var done = function() {
      sess.dgQueued--;
      slWT.release(bytes);
    };
    sess.dgWriter.write(bytes).then(done, done);
    return 0;
  },

  sl__wt_stream_open__deps: ['$slWT'],
  sl__wt_stream_open: function(js, s, bidi, order) {
    var sess = slWT.sessions.get(js);
    var st = slWT.newStream(sess, !!bidi, true, s);
    st.order = order;
    var opts = { sendOrder: order };
    var p;
    try {
      p = bidi ? sess.wt.createBidirectionalStream(opts) : sess.wt.createUnidirectionalStream(opts);
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(function(x) {
      if (st.dead) {
        var code = slWT.streamError(0);
        if (bidi) {
          x.writable.abort(code).catch(function() {});
          x.readable.cancel(code).catch(function() {});
        } else {
          x.abort(code).catch(function() {});
        }
        return;
      }
      if (bidi) slWT.attach(st, x.writable, x.readable);
      else slWT.attach(st, x, null);
    }, function() {
      if (st.dead) return;
      /* no stream (session gone or refused): both sides end */
      st.wrEnded = st.readDone = true;
      slWT.failed(st, _sl__wt_on_write_end);
      if (bidi) slWT.failed(st, _sl__wt_on_read_end);
    });
    return st.id;
  },

  sl__wt_stream_write__deps: ['$slWT'],
  sl__wt_stream_write: function(js, data, len) {
    var st = slWT.streams.get(js);
    if (!st) return -1;
    var bytes;
    try {
      bytes = slWT.copyOut(data, len);
    } catch (e) {
      return -1;
    }
    for (var off = 0; off < len; off += slWT.PIECE) {
      var piece = len <= slWT.PIECE ? bytes : bytes.subarray(off, Math.min(len, off + slWT.PIECE));
      if (st.writer) slWT.writePiece(st, piece);
      else st.pending.push(piece);
    }
    return 0;
  },

  sl__wt_stream_finish__deps: ['$slWT'],
  sl__wt_stream_finish: function(js) {
    var st = slWT.streams.get(js);
    if (!st) return;
    st.finishReq = true;
    if (st.writer) slWT.close(st);
  },

  sl__wt_stream_reset__deps: ['$slWT'],
  sl__wt_stream_reset: function(js, code) {
    var st = slWT.streams.get(js);
    if (!st) return;
    st.resetCode = code >>> 0;
    st.pending = [];
    if (st.writer) slWT.abort(st);
  },

  sl__wt_stream_stop__deps: ['$slWT'],
  sl__wt_stream_stop: function(js, code) {
    var st = slWT.streams.get(js);
    if (!st) return;
    st.stopCode = code >>> 0;
    st.wantRead = false;
    if (st.reader) slWT.cancel(st);
    else st.readDone = true;
  },

  sl__wt_stream_read__deps: ['$slWT'],
  sl__wt_stream_read: function(js) {
    var st = slWT.streams.get(js);
    if (st) slWT.read(st);
  },

  sl__wt_stream_order__deps: ['$slWT'],
  sl__wt_stream_order: function(js, order) {
    var st = slWT.streams.get(js);
    if (!st) return;
    st.order = order;
    try { if (st.writable) st.writable.sendOrder = order; } catch (e) { /* not supported */ }
  },

  sl__wt_max_code__deps: ['$slWT'],
  sl__wt_max_code: function() {
    if (slWT.maxCode < 0) {
      /* what each constructor form keeps of the largest code */
      var best = 0;
      try {
        var a = new WebTransportError({ streamErrorCode: 0xffffffff }).streamErrorCode;
        if (typeof a == 'number' && a > best) best = a;
      } catch (x) { /* not this form */ }
      try {
        var b = new WebTransportError('', { streamErrorCode: 0xffffffff }).streamErrorCode;
        if (typeof b == 'number' && b > best) best = b;
      } catch (x) { /* not this form */ }
      slWT.maxCode = best;
    }
    return slWT.maxCode;
  },

  sl__wt_stream_forget__deps: ['$slWT'],
  sl__wt_stream_forget: function(js) {
    var st = slWT.streams.get(js);
    if (st) slWT.forgetStream(st);
  },
});
