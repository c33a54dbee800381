// Viral Globe's script for a campaign's own site: <script src="https://SERVER/vg.js" defer></script>
//
// A visitor who arrives through a tracked link lands with `?vg=CODE`; the code is kept in this
// site's own localStorage (first party, no cookies), so that what the visitor does later on the
// site is credited to the link that brought them:
//   viralglobe.share({channel, sharer?})            -> Promise of the visitor's own link (a URL)
//   viralglobe.convert({goal, value_cents?, id?})   -> Promise, resolved once it is recorded
//   viralglobe.code()                               -> the code that brought this visitor, or null
// Conversions reported by a browser are recorded as unverified: report revenue you must trust
// from your server (POST /v1/events, `share` = the link's share id). No dependencies.
(function () {
  "use strict";
  var KEY = "viralglobe.vg";
  var CODE = /^[0-9A-Za-z]{11}$/;
  var script = document.currentScript;
  var server = script ? new URL(script.src).origin : "";

  function store(code) {
    try { localStorage.setItem(KEY, code); } catch (e) { /* storage off: this page only */ }
  }
  function stored() {
    try { return localStorage.getItem(KEY); } catch (e) { return null; }
  }

  var arrived = new URLSearchParams(location.search).get("vg");
  var current = arrived && CODE.test(arrived) ? arrived : stored();
  if (current && !CODE.test(current)) current = null;
  if (arrived && current === arrived) store(arrived);

  // text/plain: a simple request, so the browser sends it without a CORS preflight.
  function post(path, body) {
    return fetch(server + path, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: JSON.stringify(body),
      credentials: "omit",
      keepalive: true,
    }).then(function (response) {
      return response.json().then(function (answer) {
        if (!response.ok) throw new Error(answer.error || "HTTP " + response.status);
        return answer;
      });
    });
  }
  function need() {
    return current
      ? Promise.resolve(current)
      : Promise.reject(new Error("this visitor did not arrive through a tracked link"));
  }

  window.viralglobe = {
    code: function () { return current; },
    share: function (options) {
      options = options || {};
      return need().then(function (code) {
        var body = { channel: options.channel };
        if (options.sharer) body.sharer = options.sharer;
        return post("/v1/links/" + code + "/share", body);
      }).then(function (link) { return link.url; });
    },
    convert: function (options) {
      options = options || {};
      return need().then(function (code) {
        var body = { goal: options.goal, value_cents: options.value_cents || 0 };
        if (options.id) body.id = String(options.id);
        return post("/v1/links/" + code + "/conversions", body);
      });
    },
  };
})();
