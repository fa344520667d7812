/* Sou: the service worker that lets the two pages used where there is no network open
 * there too — the customer's offline payments (/pay/offline) and the point of sale (/pos),
 * which both sign and check codes on the device.
 *
 * Served by the node at /sw.js (pos/codes/pages.py), scope "/", with its first line naming what it
 * keeps: `self.souOffline = {version, pages, assets}` (the version is a hash of the assets,
 * so a new release is a new worker with new caches). What it does:
 *  - those pages (the signed-in member's HTML): network first, so that nobody online sees
 *    a stale balance; the copy kept answers only when the node cannot be reached;
 *  - their scripts, style, icon and QR code reader and writer: from the cache first;
 *  - anything else (the API above all, and every other page) is left to the network and
 *    never kept;
 *  - a session started or ended (whoever comes next may be someone else) forgets the pages.
 * A release's first page load may still run the previous scripts (the new worker installs
 * meanwhile and takes over at once): the next load has the new ones.
 * Like the other scripts it holds no text of its own.
 */
"use strict";

const { version, pages, assets } = self.souOffline;
const ASSETS = "sou-assets-" + version;
const PAGES = "sou-pages-" + version;
// Requests that start or end a session (a counter device's pairing starts one): after them
// the pages kept may be another member's, or nobody's.
const SESSION_CHANGES = ["/login", "/logout", "/join", "/api/v1/session", "/api/v1/pos/pair"];

/** The page kept for `path`, if the node answers it as a page of this member. */
async function keepPage(cache, path, response) {
  if (response.ok && response.type === "basic") {
    await cache.put(path, response.clone());
  } else if (response.status < 500) {
    await cache.delete(path);  // sent to log in, or refused: nothing to show offline
  }
  return response;
}

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    await (await caches.open(ASSETS)).addAll(assets);
    const kept = await caches.open(PAGES);
    // Both pages are asked for: the member keeps those the node shows them (a resident
    // has no point of sale).
    await Promise.all(pages.map(async (path) => {
      try {
        await keepPage(kept, path, await fetch(path, { credentials: "same-origin", redirect: "manual" }));
      } catch (offline) {
        // No network while installing: the page is kept the next time it is opened.
      }
    }));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    const old = (await caches.keys()).filter((name) => name.startsWith("sou-") && name !== ASSETS && name !== PAGES);
    await Promise.all(old.map((name) => caches.delete(name)));
    await self.clients.claim();
  })());
});

async function page(request, path) {
  const kept = await caches.open(PAGES);
  let response;
  try {
    response = await fetch(request);
  } catch (offline) {
    const copy = await kept.match(path);
    if (copy) return copy;
    throw offline;
  }
  if (response.status >= 500) {  // a proxy's answer while the node is down
    const copy = await kept.match(path);
    if (copy) return copy;
  }
  return keepPage(kept, path, response);
}

async function asset(request, path) {
  const cache = await caches.open(ASSETS);
  const copy = await cache.match(path);
  if (copy) return copy;
  const response = await fetch(request);
  if (response.ok) await cache.put(path, response.clone());
  return response;
}

async function forgetPages() {
  const names = await caches.keys();
  await Promise.all(names.filter((name) => name.startsWith("sou-pages-")).map((name) => caches.delete(name)));
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.method !== "GET") {
    if (SESSION_CHANGES.includes(url.pathname)) event.waitUntil(forgetPages());
    return;  // sent as it is
  }
  if (request.mode === "navigate" && pages.includes(url.pathname)) {
    event.respondWith(page(request, url.pathname));
  } else if (!url.search && assets.includes(url.pathname)) {
    event.respondWith(asset(request, url.pathname));
  }
});
