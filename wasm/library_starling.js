/*
 * library_starling.js: the JavaScript half of the browser platform, linked
 * into the module by Emscripten (--js-library). Each function here is a wasm
 * import of platform.c or bridge.c (declared in web_int.h).
 *
 * The event loop: sl__web_post() queues one microtask (a promise reaction;
 * the node got work while idle; while the transport delivers data it is
 * held and run right after the delivery, see runHeld) or macrotask (it
 * yields to the page) that calls back into sl__web_on_post();
 * sl__web_timer() keeps one setTimeout per node that calls
 * sl__web_on_timer(). A macrotask is a MessageChannel message in a page or a
 * worker (not clamped to 4 ms like nested setTimeout(0), and run after
 * rendering and input got their turn), setImmediate under Node.js (a
 * MessageChannel port would keep Node's loop alive), setTimeout(0) as the
 * last resort. Posts of all nodes share one channel; a node posts at most
 * one turn at a time (platform.c keeps the flag), so nothing is ever
 * polled and an idle node costs nothing.
 *
 * JavaScript actors: their callbacks go to the object starling.js installs
 * as Module.slHost (dispatch by the actor's JS handle). A pure C program
 * using only platform.c never calls those.
 */
mergeInto(LibraryManager.library, {
  $slLoop: {
    /* node pointer -> {timer} while the node lives; made on first use, as
       Emscripten serialises this object into the module's source text */
    nodes: null,
    queue: [],        /* macrotasks posted on the channel, in order */
    post: null,       /* function(fn): run fn in a new macrotask */
    macrotask: function(fn) {
      if (!slLoop.post) {
        if (typeof setImmediate == 'function') {
          slLoop.post = function(f) { setImmediate(f); };
        } else if (typeof MessageChannel == 'function') {
          var ch = new MessageChannel();
          ch.port1.onmessage = function() {
            var f = slLoop.queue.shift();
            if (f) f();
          };
          slLoop.post = function(f) {
            slLoop.queue.push(f);
            ch.port2.postMessage(0);
          };
        } else {
          slLoop.post = function(f) { setTimeout(f, 0); };
        }
      }
      slLoop.post(fn);
    },
    /* A microtask as the reaction to a resolved promise: queueMicrotask()
       costs Chromium ~0.5 us more per call (a callback object made and
       entered from Blink's C++), a promise reaction stays inside V8. An
       exception thrown by fn is reported as an unhandled rejection. */
    resolved: null,
    microtask: function(fn) {
      if (!slLoop.resolved) slLoop.resolved = Promise.resolve();
      slLoop.resolved.then(fn);
    },
    /* While the transport hands data read from the network to C
       (library_webtransport.js sets `holding`), a turn posted as a microtask
       is held instead and run by runHeld() as soon as that call returned, in
       the same promise reaction: an answer reaches its asker's continuation
       one reaction sooner. */
    holding: false,
    held: [],         /* turns held: held[0 .. nheld) (an array's length set
                         to 0 would drop its storage, made again per ask);
                         none is added while they run (`holding` is off) */
    nheld: 0,
    runHeld: function() {
      var n = slLoop.nheld;
      if (!n) return;
      var h = slLoop.held;
      slLoop.nheld = 0;
      var i = 0;
      try {
        for (; i < n; i++) {
          var f = h[i];
          h[i] = null;
          f();
        }
      } finally {   /* a turn threw: the rest still run, later */
        for (i++; i < n; i++) {
          slLoop.microtask(h[i]);
          h[i] = null;
        }
      }
    },
    state: function(n) {
      if (!slLoop.nodes) slLoop.nodes = new Map();
      var st = slLoop.nodes.get(n);
      if (!st) {
        st = { timer: null, run: null };
        /* the node's turn, made once (a turn is posted per message that
           finds the node idle) */
        st.run = function() {
          /* a node freed meanwhile (or a new one at the same address) is not ours */
          if (slLoop.current(n, st)) _sl__web_on_post(n);
        };
        slLoop.nodes.set(n, st);
      }
      return st;
    },
    current: function(n, st) {
      return slLoop.nodes !== null && slLoop.nodes.get(n) === st;
    },
  },

  sl__web_now_ms: function() {
    return performance.now();
  },

  sl__web_post__deps: ['$slLoop'],
  sl__web_post: function(n, soon) {
    var st = slLoop.state(n);
    if (!soon) slLoop.macrotask(st.run);
    else if (slLoop.holding) slLoop.held[slLoop.nheld++] = st.run;
    else slLoop.microtask(st.run);
  },

  sl__web_timer__deps: ['$slLoop'],
  sl__web_timer: function(n, ms) {
    var st = slLoop.state(n);
    if (st.timer !== null) {
      clearTimeout(st.timer);
      st.timer = null;
    }
    if (ms >= 0) {
      /* setTimeout takes at most 2^31-1 ms (~24.8 days); a longer delay
         fires at once (browsers wrap it, Node.js makes it 1 ms), which for
         a far deadline would run the node over and over. Fired early, the
         node finds nothing due and arms the timer again for the rest. */
      if (ms > 2147483647) ms = 2147483647;
      st.timer = setTimeout(function() {
        st.timer = null;
        if (slLoop.current(n, st)) _sl__web_on_timer(n);
      }, ms);
    }
  },

  sl__web_forget__deps: ['$slLoop'],
  sl__web_forget: function(n) {
    var st = slLoop.nodes && slLoop.nodes.get(n);
    if (st) {
      if (st.timer !== null) clearTimeout(st.timer);
      slLoop.nodes.delete(n);
    }
  },

  sl__web_random: function(buf, len) {
    crypto.getRandomValues(HEAPU8.subarray(buf, buf + len));
  },

  /* An exception must never unwind through the core's frames (it would
     leave the core inside sl_core_run for good): the host catches what user
     code throws, and these catch anything else and crash only the actor. */
  sl__web_js_start: function(handle, self) {
    try {
      return Module['slHost'].start(handle, self);
    } catch (e) {
      err('starling: on_start of JS actor ' + handle + ' failed: ' + (e && e.stack || e));
      return 1;
    }
  },

  sl__web_js_message: function(handle, self, msg) {
    try {
      return Module['slHost'].message(handle, self, msg);
    } catch (e) {
      err('starling: on_message of JS actor ' + handle + ' failed: ' + (e && e.stack || e));
      return 1;
    }
  },

  sl__web_js_stop: function(handle, reason) {
    try {
      Module['slHost'].stop(handle, reason);
    } catch (e) {
      err('starling: on_stop of JS actor ' + handle + ' failed: ' + (e && e.stack || e));
    }
  },

  sl__web_js_peer: function(n, lo, hi, up) {
    try {
      Module['slHost'].peer(n, lo >>> 0, hi >>> 0, !!up);
    } catch (e) {
      err('starling: peer callback failed: ' + (e && e.stack || e));
    }
  },

  sl__web_js_stopped: function(n) {
    try {
      Module['slHost'].stopped(n);
    } catch (e) {
      err('starling: node stop callback failed: ' + (e && e.stack || e));
    }
  },
});
