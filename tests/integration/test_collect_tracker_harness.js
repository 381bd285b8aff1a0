// Runs functions/collect/static/cdp.js in a minimal browser-like context on Node (fetch, Blob,
// crypto are Node's own), against a real collector. Prints one JSON line of what it observed.
"use strict";
const vm = require("vm");
const fs = require("fs");
const [srcPath, host, writeKey, scenario] = process.argv.slice(2);
const src = fs.readFileSync(srcPath, "utf8");

function storage(initial) {
  const m = new Map(Object.entries(initial || {}));
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => m.set(k, String(v)),
    removeItem: (k) => m.delete(k),
    dump: () => Object.fromEntries(m),
  };
}

function browser(opts) {
  const listeners = {};
  const cookies = new Map(Object.entries(opts.cookies || {}));
  const stats = { fetches: 0, failedFetches: 0, beacons: 0, statuses: [] };
  const pending = [];
  const document = {
    referrer: "https://www.google.com/",
    title: "Test page",
    currentScript: null,
    visibilityState: "visible",
    getElementsByTagName: () => [],
    addEventListener: (type, fn) => (listeners[type] = fn),
    get cookie() {
      return [...cookies].map(([k, v]) => `${k}=${v}`).join("; ");
    },
    set cookie(text) {
      const [pair, ...attrs] = text.split(/;\s*/);
      const eq = pair.indexOf("=");
      const expires = attrs.find((a) => a.toLowerCase().startsWith("expires="));
      if (expires && new Date(expires.slice(8)) < new Date()) cookies.delete(pair.slice(0, eq));
      else cookies.set(pair.slice(0, eq), pair.slice(eq + 1));
    },
  };
  const failFirst = opts.failFirst || 0;
  const window = {
    document,
    localStorage: opts.storage,
    location: { href: "https://shop.example/p?q=1", pathname: "/p", search: "?q=1", protocol: "https:" },
    navigator: {
      userAgent: "cdp-js-test",
      language: "en-GB",
      sendBeacon: (url, blob) => {
        stats.beacons += 1;
        pending.push(fetch(url, { method: "POST", body: blob, headers: { "Content-Type": "text/plain" } }));
        return true;
      },
    },
    fetch: (url, init) => {
      stats.fetches += 1;
      if (opts.alwaysFail || stats.fetches <= failFirst) {
        stats.failedFetches += 1;
        return Promise.reject(new TypeError("network down"));
      }
      return fetch(url, init).then((r) => {
        stats.statuses.push(r.status);
        return r;
      });
    },
    setTimeout: (fn, ms) => setTimeout(fn, Math.min(ms, opts.maxDelay || ms)),
    crypto: globalThis.crypto,
    Blob,
    addEventListener: (type, fn) => (listeners[type] = fn),
  };
  window.window = window;
  if (opts.before) opts.before(window);
  vm.createContext(window);
  vm.runInContext(src, window);
  return { window, listeners, stats, pending, cookies };
}

async function until(check, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

async function main() {
  const store = storage();
  let b;
  if (scenario === "basic") {
    b = browser({ storage: store });
    const cdp = b.window.cdp;
    cdp.load(writeKey, { host });
    cdp.page();
    cdp.identify("user-42", { email: "ada@example.com" });
    cdp.track("Clicked", { n: 1 });
  } else if (scenario === "snippet") {
    b = browser({
      storage: store,
      before: (w) => {
        w.cdp = [];
        w.cdp.push(["track", "Early", { n: 1 }]);
        w.cdp.push(["load", writeKey, { host }]);
      },
    });
  } else if (scenario === "retry") {
    b = browser({ storage: store, failFirst: 2, maxDelay: 200 });
    b.window.cdp.load(writeKey, { host });
    b.window.cdp.track("Retried", {});
  } else if (scenario === "beacon") {
    b = browser({ storage: store });
    b.window.cdp.load(writeKey, { host, flushInterval: 60000 });
    b.window.cdp.track("Left", { n: 1 });
    b.window.cdp.track("Left", { n: 2 });
    b.listeners.pagehide();
    await Promise.all(b.pending);
  } else if (scenario === "persist") {
    const first = browser({ storage: store, alwaysFail: true, maxDelay: 50 });
    first.window.cdp.load(writeKey, { host });
    first.window.cdp.track("Offline", {});
    await until(() => first.stats.failedFetches >= 1, 2000);
    // The tab closes while offline; the next page load sends what was kept.
    b = browser({ storage: store, cookies: Object.fromEntries(first.cookies) });
    b.window.cdp.load(writeKey, { host });
  }
  // Drained: nothing left queued, and something actually went out (a fetch or a beacon).
  const drained = await until(() => b.window.cdp._queue().length === 0 && b.stats.fetches + b.stats.beacons >= 1, 15000);
  await Promise.all(b.pending);
  console.log(
    JSON.stringify({
      drained,
      anonymousId: b.window.cdp.user().anonymousId,
      userId: b.window.cdp.user().userId,
      cookie: b.window.document.cookie,
      stats: b.stats,
    })
  );
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
