/*! cdp.js: the first-party browser tracker of the serverless CDP. No build step, no dependencies.
 *
 *   <script>
 *     window.cdp = window.cdp || [];
 *     ["load", "page", "track", "identify", "reset", "flush"].forEach(function (m) {
 *       window.cdp[m] = window.cdp[m] || function () { window.cdp.push([m].concat([].slice.call(arguments))); };
 *     });
 *     cdp.load("YOUR_WRITE_KEY");   // host defaults to where this file was loaded from
 *     cdp.page();
 *   </script>
 *   <script async src="https://YOUR-COLLECTOR/v1/cdp.js"></script>
 *
 * Events are queued in localStorage (so a closed tab or a failed request loses nothing), sent
 * in batches to /v1/batch as text/plain (no CORS preflight), with navigator.sendBeacon when the
 * page is hidden, and retried with backoff on network errors, 429 and 5xx.
 */
(function (window, document) {
  "use strict";

  var VERSION = "1.0.0";
  var ANON_KEY = "cdp_anonymous_id";
  var USER_KEY = "cdp_user_id";
  var QUEUE_KEY = "cdp_queue";
  var COOKIE = "cdp_aid";
  var MAX_BATCH = 50;
  var MAX_QUEUE = 1000;
  var MAX_BEACON_BYTES = 60000; // sendBeacon payloads are capped at 64 KiB in browsers

  var previous = window.cdp;
  if (previous && previous.loaded) {
    return;
  }

  var state = {
    writeKey: null,
    host: null,
    flushInterval: 1000,
    queue: [],
    timer: null,
    sending: false,
    failures: 0,
  };

  function storageGet(key) {
    try {
      return window.localStorage.getItem(key);
    } catch (e) {
      return null;
    }
  }

  function storageSet(key, value) {
    try {
      if (value === null) {
        window.localStorage.removeItem(key);
      } else {
        window.localStorage.setItem(key, value);
      }
    } catch (e) {
      /* private mode or full: the in-memory queue still works */
    }
  }

  function readCookie(name) {
    var parts = (document.cookie || "").split(/;\s*/);
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (eq > 0 && parts[i].slice(0, eq) === name) {
        return decodeURIComponent(parts[i].slice(eq + 1));
      }
    }
    return null;
  }

  function writeCookie(name, value, days) {
    var expires = new Date(Date.now() + days * 864e5).toUTCString();
    var secure = window.location && window.location.protocol === "https:" ? "; Secure" : "";
    document.cookie =
      name + "=" + encodeURIComponent(value) + "; expires=" + expires + "; path=/; SameSite=Lax" + secure;
  }

  function uuid() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    var bytes = new Uint8Array(16);
    if (window.crypto && window.crypto.getRandomValues) {
      window.crypto.getRandomValues(bytes);
    } else {
      for (var i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = [];
    for (var j = 0; j < 16; j++) hex.push((bytes[j] + 0x100).toString(16).slice(1));
    return (
      hex.slice(0, 4).join("") + "-" + hex.slice(4, 6).join("") + "-" + hex.slice(6, 8).join("") + "-" +
      hex.slice(8, 10).join("") + "-" + hex.slice(10).join("")
    );
  }

  function anonymousId() {
    var id = readCookie(COOKIE) || storageGet(ANON_KEY);
    if (!id) {
      id = uuid();
    }
    // Keep both copies: a cookie survives storage clearing, storage survives cookie expiry.
    writeCookie(COOKIE, id, 365);
    storageSet(ANON_KEY, id);
    return id;
  }

  function pageContext() {
    var loc = window.location || {};
    return {
      path: loc.pathname,
      referrer: document.referrer,
      search: loc.search,
      title: document.title,
      url: loc.href,
    };
  }

  function baseEvent(type, fields) {
    var event = {
      type: type,
      messageId: uuid(),
      timestamp: new Date().toISOString(),
      anonymousId: anonymousId(),
      context: {
        library: { name: "cdp.js", version: VERSION },
        page: pageContext(),
        userAgent: window.navigator ? window.navigator.userAgent : undefined,
        locale: window.navigator ? window.navigator.language : undefined,
      },
    };
    var userId = storageGet(USER_KEY);
    if (userId) {
      event.userId = userId;
    }
    for (var key in fields) {
      if (Object.prototype.hasOwnProperty.call(fields, key) && fields[key] !== undefined) {
        event[key] = fields[key];
      }
    }
    return event;
  }

  function loadQueue() {
    try {
      var saved = JSON.parse(storageGet(QUEUE_KEY) || "[]");
      return Array.isArray(saved) ? saved : [];
    } catch (e) {
      return [];
    }
  }

  function saveQueue() {
    storageSet(QUEUE_KEY, state.queue.length ? JSON.stringify(state.queue) : null);
  }

  function enqueue(event) {
    state.queue.push(event);
    if (state.queue.length > MAX_QUEUE) {
      state.queue.splice(0, state.queue.length - MAX_QUEUE);
    }
    saveQueue();
    schedule(state.queue.length >= MAX_BATCH ? 0 : state.flushInterval);
  }

  function schedule(delay) {
    if (state.timer !== null || !state.writeKey) {
      return;
    }
    state.timer = window.setTimeout(function () {
      state.timer = null;
      flush();
    }, delay);
  }

  function payload(events) {
    return JSON.stringify({ batch: events, sentAt: new Date().toISOString(), writeKey: state.writeKey });
  }

  function settle(sent, ok) {
    state.sending = false;
    if (ok) {
      var ids = {};
      for (var i = 0; i < sent.length; i++) ids[sent[i].messageId] = true;
      state.queue = state.queue.filter(function (e) {
        return !ids[e.messageId];
      });
      state.failures = 0;
      saveQueue();
      if (state.queue.length) schedule(0);
    } else {
      // Exponential backoff with jitter, at most a minute; the events stay queued.
      state.failures += 1;
      var delay = Math.min(60000, 500 * Math.pow(2, state.failures)) * (0.5 + Math.random() / 2);
      schedule(delay);
    }
  }

  function flush() {
    if (state.sending || !state.queue.length || !state.writeKey) {
      return;
    }
    var sent = state.queue.slice(0, MAX_BATCH);
    state.sending = true;
    var done = false;
    function finish(ok) {
      if (!done) {
        done = true;
        settle(sent, ok);
      }
    }
    try {
      window
        .fetch(state.host + "/v1/batch", {
          method: "POST",
          headers: { "Content-Type": "text/plain;charset=UTF-8" },
          body: payload(sent),
          keepalive: true,
          credentials: "omit",
        })
        .then(function (response) {
          // 2xx: kept. 400/401/413: the collector refused (and quarantined) them, so a retry
          // cannot help. 429 and 5xx: retry later.
          finish(response.status < 500 && response.status !== 429);
        })
        .catch(function () {
          finish(false);
        });
    } catch (e) {
      finish(false);
    }
  }

  function beaconAll() {
    if (!state.queue.length || !state.writeKey || !window.navigator || !window.navigator.sendBeacon) {
      return;
    }
    var remaining = [];
    var i = 0;
    while (i < state.queue.length) {
      var chunk = state.queue.slice(i, i + MAX_BATCH);
      var body = payload(chunk);
      while (body.length > MAX_BEACON_BYTES && chunk.length > 1) {
        chunk = chunk.slice(0, Math.ceil(chunk.length / 2));
        body = payload(chunk);
      }
      var queued = false;
      try {
        queued = window.navigator.sendBeacon(state.host + "/v1/batch", new Blob([body], { type: "text/plain" }));
      } catch (e) {
        queued = false;
      }
      if (!queued) {
        remaining = remaining.concat(chunk);
      }
      i += chunk.length;
    }
    // A beacon cannot report failure after queueing; the messageIds let the CDP deduplicate
    // if the same events are sent again from storage on the next page.
    state.queue = remaining;
    saveQueue();
  }

  function defaultHost() {
    var script = document.currentScript;
    if (!script) {
      var scripts = document.getElementsByTagName("script");
      for (var i = scripts.length - 1; i >= 0; i--) {
        if (/\/v1\/cdp\.js(\?|$)/.test(scripts[i].src || "")) {
          script = scripts[i];
          break;
        }
      }
    }
    return script && script.src ? script.src.replace(/\/v1\/cdp\.js.*$/, "") : "";
  }

  var cdp = {
    loaded: true,
    VERSION: VERSION,
    load: function (writeKey, options) {
      options = options || {};
      state.writeKey = writeKey;
      state.host = (options.host || state.host || defaultHost()).replace(/\/+$/, "");
      if (options.flushInterval !== undefined) state.flushInterval = options.flushInterval;
      anonymousId();
      schedule(0);
    },
    page: function (name, properties) {
      if (typeof name === "object" && name !== null) {
        properties = name;
        name = undefined;
      }
      var props = pageContext();
      for (var key in properties || {}) props[key] = properties[key];
      enqueue(baseEvent("page", { name: name, properties: props }));
    },
    track: function (event, properties) {
      enqueue(baseEvent("track", { event: event, properties: properties || {} }));
    },
    identify: function (userId, traits) {
      if (typeof userId === "object" && userId !== null) {
        traits = userId;
        userId = undefined;
      }
      if (userId !== undefined && userId !== null) {
        storageSet(USER_KEY, String(userId));
      }
      enqueue(baseEvent("identify", { traits: traits || {} }));
    },
    reset: function () {
      storageSet(USER_KEY, null);
      storageSet(ANON_KEY, null);
      writeCookie(COOKIE, "", -1);
    },
    flush: flush,
    anonymousId: anonymousId,
    user: function () {
      return { anonymousId: anonymousId(), userId: storageGet(USER_KEY) };
    },
    _queue: function () {
      return state.queue.slice();
    },
  };

  state.queue = loadQueue();
  window.cdp = cdp;

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") beaconAll();
  });
  window.addEventListener("pagehide", beaconAll);

  // Replay what the page called before this file arrived (the snippet's stub queue).
  var script = document.currentScript;
  var attributeKey = script && script.getAttribute ? script.getAttribute("data-write-key") : null;
  if (attributeKey) cdp.load(attributeKey);
  if (previous && previous.length) {
    var calls = [].slice.call(previous);
    calls.sort(function (a, b) {
      return (a[0] === "load" ? 0 : 1) - (b[0] === "load" ? 0 : 1);
    });
    for (var c = 0; c < calls.length; c++) {
      var method = calls[c][0];
      if (typeof cdp[method] === "function") cdp[method].apply(cdp, calls[c].slice(1));
    }
  }
})(window, document);
